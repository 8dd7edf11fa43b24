// Redis error translation: the one place that turns what StackExchange.Redis throws into WriteBehindExceptions.
using System;
using StackExchange.Redis;

namespace WriteBehind.Engine.Redis
{
    /// <summary>Turns what StackExchange.Redis throws into a <see cref="WriteBehindException"/> with a stable
    /// ErrorId and no secret in its text: a full queue (QueueFull), a lost, timed-out or closed connection
    /// (RedisUnavailable), an ACL refusal (RedisPermissionDenied), any other server error (RedisCommandFailed),
    /// and the failures of the first connect. Every Redis call of the module goes through <see cref="Translate"/>.</summary>
    internal sealed class RedisErrors
    {
        /// <summary>What queue scripts (common.lua's high-water check) raise when a producer would pass the mark.</summary>
        private const string QueueFullMarker = "WB_QUEUE_FULL";

        private readonly WriteBehindOptions _options;
        private readonly string _endpoint;
        private readonly KeyNames _keys;
        private readonly int _syncTimeoutMs;

        public RedisErrors(WriteBehindOptions options, string endpoint, KeyNames keys, int syncTimeoutMs)
        {
            _options = options;
            _endpoint = endpoint;
            _keys = keys;
            _syncTimeoutMs = syncTimeoutMs;
        }

        /// <summary>The module's exception for a Redis failure, or null for an exception that is not one
        /// (it then propagates as it is).</summary>
        public WriteBehindException Translate(Exception ex)
        {
            // A synchronous wait (the HSCAN cursor's MoveNext) wraps the failure in an AggregateException.
            if (ex is AggregateException aggregate && aggregate.Flatten().InnerExceptions.Count == 1)
                ex = aggregate.Flatten().InnerExceptions[0];
            switch (ex)
            {
                case RedisServerException server when server.Message.IndexOf(QueueFullMarker, StringComparison.Ordinal) >= 0:
                    string said = server.Message.Substring(server.Message.IndexOf(QueueFullMarker, StringComparison.Ordinal) + QueueFullMarker.Length + 1);
                    return new WriteBehindException(ErrorIds.QueueFull, "The write queue is full: " + said + ". Run Invoke-WriteBehindFlush or raise -HighWaterMark.");
                case RedisConnectionException _:
                case TimeoutException _:   // RedisTimeoutException among them
                case ObjectDisposedException _:
                    return ConnectionLost(ex);
                case RedisPermissionException permission:
                    return RedisPermission.Denied(Scrub(permission.Message, _options), _options.RedisUser, _endpoint, permission.Script, _keys, permission.DeniedCommands);
                case RedisServerException server when RedisPermission.IsDenied(server.Message):
                    return RedisPermission.Denied(Scrub(server.Message, _options), _options.RedisUser, _endpoint, null, _keys);
                case RedisServerException server:
                    return new WriteBehindException(ErrorIds.RedisCommandFailed,
                        $"Redis at {_endpoint} refused a command: {Scrub(FirstLine(server.Message), _options)}", null);
                default:
                    return null;
            }
        }

        /// <summary>Redis went away after the connection was made: one sentence that names the endpoint, says
        /// what happened in a few words (not StackExchange.Redis's backlog diagnostics) and what to check.
        /// Commands fail at once while the connection is down (BacklogPolicy.FailFast) instead of waiting in
        /// the backlog for the command timeout.</summary>
        private WriteBehindException ConnectionLost(Exception ex)
        {
            if (ex is ObjectDisposedException)
                return new WriteBehindException(ErrorIds.RedisUnavailable,
                    $"The connection to Redis at {_endpoint} was closed (Disconnect-WriteBehind or the module removed): connect again with Connect-WriteBehind.", null);
            string what = ex is RedisTimeoutException || ex.Message.IndexOf("timed out", StringComparison.OrdinalIgnoreCase) >= 0
                ? $"it did not answer within {_syncTimeoutMs} ms"
                : "the server closed the connection or cannot be reached";
            return new WriteBehindException(ErrorIds.RedisUnavailable,
                $"Lost the connection to Redis at {_endpoint} ({what}): check that the server is running and reachable from this machine " +
                "(host, port, firewall, TLS), then run the command again.", null);
        }

        /// <summary>Every endpoint refused the TCP connection outright (nothing listens on the port).</summary>
        public static WriteBehindException ConnectionRefused(string endpoint) =>
            new WriteBehindException(ErrorIds.RedisUnavailable,
                $"Cannot connect to Redis at {endpoint}: the connection was refused (is the server running, and are the host and port right?)", null);

        /// <summary>A failed connect as a WriteBehindException without secrets: TLS validation (what the
        /// certificate check found), authentication, a missing ACL permission, or an unreachable server.</summary>
        public static WriteBehindException ConnectFailure(Exception ex, string endpoint, WriteBehindOptions options, RedisTls.Check tls)
        {
            if (tls?.Failure != null)
                return new WriteBehindException(ErrorIds.TlsValidationFailed,
                    $"Cannot connect to Redis at {endpoint}: the server's TLS certificate did not validate: {tls.Failure}", null);
            string all = ex.ToString();
            if (RedisPermission.IsDenied(all))
            {
                int at = all.IndexOf("NOPERM", StringComparison.Ordinal);
                string said = at >= 0 ? all.Substring(at) : all;
                return RedisPermission.Denied(Scrub(said, options), options.RedisUser, endpoint, null, new KeyNames(options.KeyPrefix));
            }
            string reason = Reason(ex, options);
            if (!options.UseTls && reason.StartsWith("the server did not answer", StringComparison.Ordinal))
                reason += " A TLS port answers a plain client with nothing: connect with -UseTls if it is one.";
            return new WriteBehindException(ErrorIds.RedisUnavailable, $"Cannot connect to Redis at {endpoint}: {reason}", null);
        }

        private static string Reason(Exception ex, WriteBehindOptions options)
        {
            string msg = ex.Message;
            if (msg.IndexOf("NOAUTH", StringComparison.Ordinal) >= 0 || msg.IndexOf("WRONGPASS", StringComparison.Ordinal) >= 0
                || msg.IndexOf("AuthenticationFailure", StringComparison.Ordinal) >= 0)
                return "authentication failed (check the user name and password)";
            int cut = msg.IndexOf(" on ", StringComparison.Ordinal);
            if (msg.StartsWith("It was not possible to connect", StringComparison.Ordinal))
                return "the server did not answer (is it running, and is the port right?)";
            return Scrub(cut > 0 ? msg.Substring(0, cut) : msg, options);
        }

        /// <summary>Removes the password from a message, whatever the message is.</summary>
        public static string Scrub(string message, WriteBehindOptions options)
        {
            if (string.IsNullOrEmpty(message)) return message;
            if (!string.IsNullOrEmpty(options?.RedisPassword)) message = message.Replace(options.RedisPassword, "***");
            try
            {
                var parsed = ConfigurationOptions.Parse(options?.Redis ?? "", ignoreUnknown: true);
                if (!string.IsNullOrEmpty(parsed.Password)) message = message.Replace(parsed.Password, "***");
            }
            catch (Exception) { /* an unparsable string has no password to hide beyond the option itself */ }
            return message;
        }

        private static string FirstLine(string s)
        {
            int nl = s.IndexOf('\n');
            return nl < 0 ? s : s.Substring(0, nl).TrimEnd('\r');
        }
    }
}
