// Connecting to Redis: the StackExchange.Redis configuration built from the module's options, and the connect itself.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Threading.Tasks;
using StackExchange.Redis;

namespace WriteBehind.Engine.Redis
{
    /// <summary>Builds the StackExchange.Redis configuration from <see cref="WriteBehindOptions"/>
    /// (credentials kept out of the options, TLS, timeouts, the FailFast backlog, the commands a
    /// least-privilege user is not granted turned off) and opens a multiplexer with it, so that a refused
    /// port fails at once and every connect failure reads the same.</summary>
    internal static class RedisConnector
    {
        /// <summary>The configuration for <paramref name="options"/> (which loses any password the Redis string
        /// held), with the TLS check it installed (null for a plain connection).</summary>
        public static ConfigurationOptions Configure(WriteBehindOptions options, out RedisTls.Check tls)
        {
            ConfigurationOptions config;
            // Callers outside FromEnvironment may set Redis directly: keep the options free of the password
            // (user= and password= options; a redis:// URI comes back as a configuration string without them).
            options.Redis = RedisSecrets.Split(options.Redis, out string user, out string password);
            if (options.RedisUser == null && user != null) options.RedisUser = user;
            if (options.RedisPassword == null && password != null) options.RedisPassword = password;
            try
            {
                config = ConfigurationOptions.Parse(options.Redis ?? WriteBehindOptions.DefaultRedis);
            }
            catch (Exception ex) when (ex is ArgumentException || ex is FormatException)
            {
                throw new WriteBehindException(ErrorIds.InvalidConfiguration,
                    "The Redis configuration string could not be parsed: " + RedisErrors.Scrub(ex.Message, options), null);
            }
            if (options.RedisUser != null) config.User = options.RedisUser;
            if (options.RedisPassword != null) config.Password = options.RedisPassword;
            tls = RedisTls.Configure(config, options);
            ConfigureCommands(config);
            if ((options.Redis ?? "").IndexOf("connectTimeout", StringComparison.OrdinalIgnoreCase) < 0)
                config.ConnectTimeout = (int)options.ConnectTimeout.TotalMilliseconds;
            config.AbortOnConnectFail = true;
            config.ConnectRetry = 1;
            // While the connection is down a command fails at once (RedisUnavailable) instead of waiting in
            // StackExchange.Redis's backlog for the command timeout; the connection itself reconnects in the background.
            config.BacklogPolicy = BacklogPolicy.FailFast;
            config.ClientName = "WriteBehind";
            if (config.EndPoints.Count == 0) config.EndPoints.Add("localhost", 6379);
            return config;
        }

        /// <summary>The endpoint(s) of a configuration, safe to print.</summary>
        public static string EndpointsOf(ConfigurationOptions config) => string.Join(",", config.EndPoints.Select(FormatEndPoint));

        /// <summary>Opens a multiplexer; every failure comes back as a WriteBehindException that says why
        /// (<see cref="RedisErrors.ConnectFailure"/>).</summary>
        /// <param name="checkRefused">First look whether every endpoint refuses a TCP connection:
        /// StackExchange.Redis sometimes waits the whole connect timeout for a refused connection and
        /// sometimes fails at once; a port nothing listens on is refused here, always at once.</param>
        /// <param name="config">The configuration <see cref="Configure"/> built.</param>
        /// <param name="endpoint">The endpoint(s) as messages show them.</param>
        /// <param name="options">The options the failure messages are built from (and scrubbed of the password).</param>
        /// <param name="tls">The TLS check, whose findings explain a failed handshake (null without TLS).</param>
        public static async Task<ConnectionMultiplexer> ConnectAsync(ConfigurationOptions config, string endpoint, WriteBehindOptions options,
            RedisTls.Check tls, bool checkRefused)
        {
            if (checkRefused && await EveryEndpointRefusesAsync(config).ConfigureAwait(false))
                throw RedisErrors.ConnectionRefused(endpoint);
            try
            {
                return await ConnectionMultiplexer.ConnectAsync(config).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException || ex is TimeoutException || ex is System.Net.Sockets.SocketException)
            {
                throw RedisErrors.ConnectFailure(ex, endpoint, options, tls);
            }
        }

        /// <summary>Commands StackExchange.Redis would send on its own that the module does not need, turned
        /// off so a least-privilege ACL user (RedisAcl.Rules) need not be granted them: the configuration
        /// change broadcast (SUBSCRIBE/PUBLISH __Booksleeve_MasterChanged), the tie-breaker key (GET
        /// __Booksleeve_TieBreak, outside the module's key patterns), CONFIG, SCRIPT and the subscription connection.</summary>
        private static void ConfigureCommands(ConfigurationOptions config)
        {
            config.ConfigurationChannel = string.Empty;
            config.TieBreaker = string.Empty;
            // CONFIG GET (databases, replica-read-only) would need a grant that also reveals the server's
            // configuration; SCRIPT LOAD is not needed (the scripts go by EVALSHA, else EVAL).
            // CLIENT SETINFO (library name and version, Redis 7.2+) is not needed either.
            config.SetClientLibrary = false;
            // SUBSCRIBE off: the module uses no pub/sub, and without it StackExchange.Redis opens no second
            // (subscription) connection per server, which a connect would otherwise dial and handshake too.
            config.CommandMap = CommandMap.Create(new HashSet<string> { "CONFIG", "SCRIPT", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE" }, available: false);
        }

        /// <summary>True only when every endpoint refused a TCP connection outright; a timeout, a name that does
        /// not resolve or an accepted connection leave the answer to StackExchange.Redis.</summary>
        private static async Task<bool> EveryEndpointRefusesAsync(ConfigurationOptions config)
        {
            var timeout = TimeSpan.FromMilliseconds(Math.Max(100, config.ConnectTimeout));
            foreach (var ep in config.EndPoints)
            {
                string host; int port;
                switch (ep)
                {
                    case DnsEndPoint dns: host = dns.Host; port = dns.Port; break;
                    case IPEndPoint ip: host = ip.Address.ToString(); port = ip.Port; break;
                    default: return false;
                }
                try
                {
                    using (var client = new System.Net.Sockets.TcpClient())
                    {
                        var connect = client.ConnectAsync(host, port);
                        if (await Task.WhenAny(connect, Task.Delay(timeout)).ConfigureAwait(false) != connect)
                        {
                            _ = connect.ContinueWith(t => t.Exception, TaskScheduler.Default);
                            return false;
                        }
                        await connect.ConfigureAwait(false);
                        return false;
                    }
                }
                catch (System.Net.Sockets.SocketException ex) when (ex.SocketErrorCode == System.Net.Sockets.SocketError.ConnectionRefused) { }
                catch (Exception) { return false; }
            }
            return config.EndPoints.Count > 0;
        }

        private static string FormatEndPoint(EndPoint ep)
        {
            switch (ep)
            {
                case DnsEndPoint dns: return dns.Host + ":" + dns.Port.ToString(CultureInfo.InvariantCulture);
                case IPEndPoint ip: return ip.ToString();
                default: return ep.ToString();
            }
        }
    }
}
