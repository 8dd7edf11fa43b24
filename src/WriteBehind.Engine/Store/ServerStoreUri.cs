using System;
using System.Collections.Generic;
using System.Globalization;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// The part of a server store URI (<c>scheme://[user@]host[:port]/database[?key=value&amp;...]</c>) that the
    /// PostgreSQL and MariaDB/MySQL stores share: authority, [IPv6] host, port, database, user and the query's
    /// pairs. It never takes a password (the URI's user part or the query) and its messages never echo the URI.
    /// </summary>
    internal sealed class ServerStoreUri
    {
        internal const string PasswordAdvice =
            "The store URI must not carry a password: give it with Connect-WriteBehind -StoreCredential or the WRITEBEHIND_STORE_PASSWORD environment variable.";

        public string Scheme { get; private set; }
        public string Host { get; private set; }
        public int Port { get; private set; }
        public string Database { get; private set; }
        public string User { get; private set; }
        public List<KeyValuePair<string, string>> Parameters { get; } = new List<KeyValuePair<string, string>>();
        /// <summary>The host as a URI shows it ([IPv6] in brackets).</summary>
        public string ShownHost => Host.IndexOf(':') >= 0 ? "[" + Host + "]" : Host;

        private readonly string _kind;

        private ServerStoreUri(string kind) { _kind = kind; }

        /// <param name="kind">The database named in messages ("PostgreSQL", "MariaDB/MySQL").</param>
        /// <param name="exampleScheme">The scheme the messages' example uses ("postgres", "mysql").</param>
        /// <param name="user">The user from the credential or WRITEBEHIND_STORE_USER; wins over the URI's.</param>
        /// <param name="passwordKeys">Query keys that would carry a secret (refused).</param>
        /// <param name="uri">The store URI as the user gave it (never with a password).</param>
        /// <param name="defaultPort">The port when the URI names none.</param>
        public static ServerStoreUri Parse(string uri, string user, string kind, string exampleScheme, int defaultPort, params string[] passwordKeys)
        {
            var parsed = new ServerStoreUri(kind);
            int schemeEnd = uri.IndexOf("://", StringComparison.Ordinal);
            parsed.Scheme = uri.Substring(0, schemeEnd).ToLowerInvariant();
            string rest = uri.Substring(schemeEnd + 3);
            int pathStart = rest.IndexOfAny(new[] { '/', '?', '#' });
            string authority = pathStart < 0 ? rest : rest.Substring(0, pathStart);
            string afterAuthority = pathStart < 0 ? string.Empty : rest.Substring(pathStart);
            int at = authority.LastIndexOf('@');
            string userInfo = at < 0 ? null : authority.Substring(0, at);
            string hostPort = at < 0 ? authority : authority.Substring(at + 1);
            if (userInfo != null && userInfo.IndexOf(':') >= 0)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, PasswordAdvice);

            string path = afterAuthority, query = string.Empty;
            int q = afterAuthority.IndexOf('?');
            if (q >= 0) { path = afterAuthority.Substring(0, q); query = afterAuthority.Substring(q + 1); }
            if (path.IndexOf('#') >= 0 || query.IndexOf('#') >= 0)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, $"A {kind} store URI takes no fragment (#...).");

            foreach (string pair in query.Split(new[] { '&' }, StringSplitOptions.RemoveEmptyEntries))
            {
                int eq = pair.IndexOf('=');
                string key = Uri.UnescapeDataString(eq < 0 ? pair : pair.Substring(0, eq)).Trim().ToLowerInvariant();
                string value = eq < 0 ? string.Empty : Uri.UnescapeDataString(pair.Substring(eq + 1).Replace('+', ' '));
                if (Array.IndexOf(passwordKeys, key) >= 0)
                    throw new WriteBehindException(ErrorIds.InvalidStoreUri, PasswordAdvice);
                parsed.Parameters.Add(new KeyValuePair<string, string>(key, value));
            }

            // Host: a name, an IPv4 address or [IPv6]; the default port unless given.
            string host = hostPort;
            int port = defaultPort;
            if (hostPort.StartsWith("[", StringComparison.Ordinal))
            {
                int close = hostPort.IndexOf(']');
                if (close < 0) throw new WriteBehindException(ErrorIds.InvalidStoreUri, $"The {kind} store URI has an unclosed [IPv6] host.");
                host = hostPort.Substring(1, close - 1);
                string tail = hostPort.Substring(close + 1);
                if (tail.Length > 0)
                {
                    if (tail[0] != ':') throw new WriteBehindException(ErrorIds.InvalidStoreUri, $"The {kind} store URI has text after its [IPv6] host.");
                    port = parsed.ParsePort(tail.Substring(1));
                }
            }
            else
            {
                int colon = hostPort.LastIndexOf(':');
                if (colon >= 0) { host = hostPort.Substring(0, colon); port = parsed.ParsePort(hostPort.Substring(colon + 1)); }
            }
            host = Uri.UnescapeDataString(host);
            if (host.Length == 0 || host.IndexOf(',') >= 0)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, $"The {kind} store URI names no host (or several): use {exampleScheme}://user@host:port/database.");

            string database = Uri.UnescapeDataString(path.TrimStart('/'));
            if (database.Length == 0 || database.IndexOf('/') >= 0)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, $"The {kind} store URI names no database: use {exampleScheme}://user@host:port/database.");

            string effectiveUser = !string.IsNullOrEmpty(user) ? user : (userInfo == null ? null : Uri.UnescapeDataString(userInfo));
            if (string.IsNullOrEmpty(effectiveUser))
                throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                    $"The {kind} store URI names no user: use {exampleScheme}://user@host:port/database, -StoreCredential or WRITEBEHIND_STORE_USER.");

            parsed.Host = host;
            parsed.Port = port;
            parsed.Database = database;
            parsed.User = effectiveUser;
            return parsed;
        }

        private int ParsePort(string text)
        {
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port < 1 || port > 65535)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, $"The {_kind} store URI has an invalid port (1-65535).");
            return port;
        }

        /// <summary>A query parameter's whole seconds (0-3600).</summary>
        public int Seconds(string key, string text)
        {
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) || seconds > 3600)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, $"The {_kind} store URI parameter '{key}' must be whole seconds (0-3600).");
            return seconds;
        }
    }
}
