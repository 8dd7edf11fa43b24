using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;
using WriteBehind.Engine.Store;

namespace WriteBehind.Engine
{
    /// <summary>An open connection to the cache/queue (Redis) and, opened on first use, the store. All the
    /// module's Redis work goes through here; every multi-key change is one Lua script.</summary>
    public sealed partial class WriteBehindConnection : IDisposable
    {
        private readonly ConnectionMultiplexer _mux;
        private readonly ConfigurationOptions _config;
        private readonly object _storeLock = new object();
        private ConnectionMultiplexer _waiter;
        private IProfileStore _store;

        private WriteBehindConnection(ConnectionMultiplexer mux, ConfigurationOptions config, WriteBehindOptions options, string endpoint)
        {
            _mux = mux;
            _config = config;
            Options = options;
            RedisEndpoint = endpoint;
            Layout = new KeyLayout(options.KeyPrefix, options.Partitions);
            Keys = Layout.Partitions[0];
            Database = mux.GetDatabase();
        }

        public WriteBehindOptions Options { get; }
        /// <summary>Every partition's keys.</summary>
        public KeyLayout Layout { get; }
        /// <summary>The first partition's keys (the only one unless -Partitions is above 1).</summary>
        public KeyNames Keys { get; }
        /// <summary>True when connected to a Redis Cluster.</summary>
        public bool IsCluster { get; private set; }
        /// <summary>The Redis endpoint(s), safe to print: never the password.</summary>
        public string RedisEndpoint { get; }
        public string StoreUri => StoreFactory.Display(Options.Store);
        /// <summary>The Redis user the connection authenticated as ("default" when none was named).</summary>
        public string RedisUser => string.IsNullOrEmpty(Options.RedisUser) ? "default" : Options.RedisUser;
        /// <summary>Whether the connection uses TLS.</summary>
        public bool UsesTls => _config.Ssl;

        /// <summary>Names no secret.</summary>
        public override string ToString() => $"WriteBehind: Redis {RedisEndpoint}{(UsesTls ? " (TLS)" : "")} as {RedisUser}; store {StoreUri}; key prefix '{Keys.Prefix}'";
        public bool IsConnected => _mux.IsConnected;
        internal IDatabase Database { get; }

        public static async Task<WriteBehindConnection> ConnectAsync(WriteBehindOptions options)
        {
            options = options?.Clone() ?? WriteBehindOptions.FromEnvironment();
            var layout = new KeyLayout(options.KeyPrefix, options.Partitions);   // checks the prefix and count first
            if (options.ReplicaAcks < 0)
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, "ReplicaAcks must not be negative.");
            ConfigurationOptions config;
            try
            {
                config = ConfigurationOptions.Parse(options.Redis ?? WriteBehindOptions.DefaultRedis);
            }
            catch (Exception ex) when (ex is ArgumentException || ex is FormatException)
            {
                throw new WriteBehindException(ErrorIds.InvalidConfiguration,
                    "The Redis configuration string could not be parsed: " + Scrub(ex.Message, options), null);
            }
            if (!string.IsNullOrEmpty(config.Password) || !string.IsNullOrEmpty(config.User))
            {
                // Callers outside FromEnvironment may set Redis directly: keep the options free of the password.
                options.Redis = RedisSecrets.Split(options.Redis, out string user, out string password);
                if (options.RedisUser == null && user != null) options.RedisUser = user;
                if (options.RedisPassword == null && password != null) options.RedisPassword = password;
            }
            if (options.RedisUser != null) config.User = options.RedisUser;
            if (options.RedisPassword != null) config.Password = options.RedisPassword;
            var tls = ConfigureTls(config, options);
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
            string endpoint = string.Join(",", config.EndPoints.Select(FormatEndPoint));
            ConnectionMultiplexer mux;
            // StackExchange.Redis sometimes waits the whole connect timeout for a refused connection and
            // sometimes fails at once: a port nothing listens on is refused here, always at once.
            if (await EveryEndpointRefusesAsync(config).ConfigureAwait(false))
                throw new WriteBehindException(ErrorIds.RedisUnavailable,
                    $"Cannot connect to Redis at {endpoint}: the connection was refused (is the server running, and are the host and port right?)", null);
            try
            {
                mux = await ConnectionMultiplexer.ConnectAsync(config).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException || ex is TimeoutException || ex is System.Net.Sockets.SocketException)
            {
                throw ConnectFailure(ex, endpoint, options, tls);
            }
            var connection = new WriteBehindConnection(mux, config, options, endpoint);
            try
            {
                await connection.CheckPermissionsAsync().ConfigureAwait(false);
                // Its read of the layout key also proves the user may use the module's keys at all where
                // the permission check cannot be asked (an ACL user without them connects fine and would
                // otherwise fail only at the first cmdlet).
                await connection.CheckLayoutAsync().ConfigureAwait(false);
            }
            catch (Exception)
            {
                connection.Dispose();
                throw;
            }
            return connection;
        }

        // ARGV: pairs of a command line (words split on spaces; module keys hold no whitespace) and what to
        // report when the user may not run it. Every line carries the arguments its key extraction reads:
        // redis-server 7.0.15 crashes on redis.acl_check_cmd('evalsha') alone for a user with key patterns.
        private const string PermissionCheckScript =
            "local unpack = unpack or table.unpack\n" +
            "local denied = {}\n" +
            "for i = 1, #ARGV, 2 do\n" +
            "  local words = {}\n" +
            "  for w in string.gmatch(ARGV[i], '[^ ]+') do words[#words + 1] = w end\n" +
            "  if not redis.acl_check_cmd(unpack(words)) then denied[#denied + 1] = ARGV[i + 1] end\n" +
            "end\n" +
            "return denied";

        /// <summary>Asks Redis (redis.acl_check_cmd, Redis 7) whether the user may run every command the
        /// module and its scripts use, and write every module key: a script refused halfway through would
        /// leave its first writes behind (Redis does not roll a script back), so a user missing a grant is
        /// refused here, before any write. Skipped where it cannot be asked (no EVAL grant, Redis 6, Garnet):
        /// the first refused command then says what is missing.</summary>
        private static readonly string[] CheckedWithKey = { "set", "get", "pexpire" };

        private async Task CheckPermissionsAsync()
        {
            var args = new List<RedisValue>();
            foreach (string rule in (RedisAcl.ModuleCommands + " " + RedisAcl.PartitionCommands).Split(' '))
            {
                string command = rule.Substring(1);
                // EVAL/EVALSHA with their script and numkeys 0, WAIT with its two numbers, the owner key's
                // commands with that key (Redis refuses SET, GET and PEXPIRE without one); the others need no
                // arguments to be checked
                switch (command)
                {
                    case "eval": args.Add("eval return 0"); break;
                    case "evalsha": args.Add("evalsha 0000000000000000000000000000000000000000 0"); break;
                    case "wait": args.Add("wait 0 0"); break;
                    case "set": args.Add("set " + Keys.Owner + " v"); break;
                    case "get": args.Add("get " + Keys.Owner); break;
                    case "pexpire": args.Add("pexpire " + Keys.Owner + " 1"); break;
                    default: args.Add(command); break;
                }
                args.Add("+" + command);
            }
            foreach (var (command, key) in new[] {
                ("hset", Keys.Cache), ("hset", Keys.Versions), ("lpush", Keys.Queue), ("zadd", Keys.Leases),
                ("lpush", Keys.LeasePrefix + "check"), ("lpush", Keys.DeadLetters), ("hset", Keys.DeadLetterInfo), ("hset", Keys.Stats), ("hset", Keys.Paused),
                ("hset", Keys.PendingAge), ("hset", Keys.Redo), ("set", Keys.Owner), ("set", Layout.LayoutKey) })
            {
                args.Add($"{command} {key} f v");
                args.Add(key);
            }
            string[] denied;
            try
            {
                denied = (string[])await Database.ScriptEvaluateAsync(PermissionCheckScript, Array.Empty<RedisKey>(), args.ToArray()).ConfigureAwait(false);
            }
            catch (RedisServerException)
            {
                return;
            }
            if (denied == null || denied.Length == 0) return;
            var keys = denied.Where(d => !d.StartsWith("+", StringComparison.Ordinal)).ToArray();
            // The owner key's commands are checked with that key: when keys are refused too, their refusal
            // says nothing about the command itself.
            var commands = denied.Where(d => d.StartsWith("+", StringComparison.Ordinal)).Select(d => d.Substring(1))
                .Where(c => keys.Length == 0 || !CheckedWithKey.Contains(c)).ToArray();
            string who = $"Redis user '{RedisUser}' at {RedisEndpoint}";
            string message = commands.Length > 0
                ? $"{who} may not run {string.Join(", ", commands.Select(c => "'" + c + "'"))}, which the module needs"
                : $"{who} may not access the module's key(s) {string.Join(", ", keys.Select(k => "'" + k + "'"))} (to write them): every module key starts with " +
                  $"'{Keys.Cache}' or '{Keys.Queue}', so the user needs the key patterns '~{Keys.Cache}*' and '~{Keys.Queue}*'";
            throw new WriteBehindException(ErrorIds.RedisPermissionDenied,
                message + ". Grant the rules in WriteBehind's README, section \"Least privilege\".", null);
        }

        /// <summary>The first-connect failure as a WriteBehindException without secrets: TLS validation (what
        /// the certificate check found), authentication, a missing ACL permission, or an unreachable server.</summary>
        private static WriteBehindException ConnectFailure(Exception ex, string endpoint, WriteBehindOptions options, TlsCheck tls)
        {
            if (tls?.Failure != null)
                return new WriteBehindException(ErrorIds.TlsValidationFailed,
                    $"Cannot connect to Redis at {endpoint}: the server's TLS certificate did not validate: {tls.Failure}", null);
            string all = ex.ToString();
            if (RedisPermission.IsDenied(all))
            {
                int at = all.IndexOf("NOPERM", StringComparison.Ordinal);
                string said = at >= 0 ? all.Substring(at) : all;
                return new WriteBehindException(ErrorIds.RedisPermissionDenied,
                    RedisPermission.Describe(Scrub(said, options), options.RedisUser, endpoint, null, new KeyNames(options.KeyPrefix)), null);
            }
            string reason = Reason(ex, options);
            if (!options.UseTls && reason.StartsWith("the server did not answer", StringComparison.Ordinal))
                reason += " A TLS port answers a plain client with nothing: connect with -UseTls if it is one.";
            return new WriteBehindException(ErrorIds.RedisUnavailable, $"Cannot connect to Redis at {endpoint}: {reason}", null);
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

        /// <summary>What the certificate check found on the last handshake (null: nothing wrong).</summary>
        private sealed class TlsCheck
        {
            public volatile string Failure;
        }

        private static TlsCheck ConfigureTls(ConfigurationOptions config, WriteBehindOptions options)
        {
            if (options.UseTls || !string.IsNullOrEmpty(options.TlsCaCertificate)) config.Ssl = true;
            options.UseTls = config.Ssl;
            if (!config.Ssl) return null;
            if (!string.IsNullOrEmpty(options.TlsHostName)) config.SslHost = options.TlsHostName;
            var check = new TlsCheck();
            if (options.SkipCertificateCheck)
            {
                config.CertificateValidation += (sender, certificate, chain, errors) => true;
                return check;
            }
            X509Certificate2[] authorities = null;
            if (!string.IsNullOrEmpty(options.TlsCaCertificate))
            {
                authorities = LoadCertificates(options.TlsCaCertificate);
                // A private CA publishes no revocation list: the chain is checked against the given CA only.
                config.CheckCertificateRevocation = false;
            }
            config.CertificateValidation += (sender, certificate, chain, errors) =>
            {
                string failure = ValidateServerCertificate(certificate, errors, authorities);
                check.Failure = failure;
                return failure == null;
            };
            return check;
        }

        /// <summary>Every certificate in a PEM file (one or more BEGIN CERTIFICATE blocks) or a DER file.</summary>
        private static X509Certificate2[] LoadCertificates(string path)
        {
            byte[] bytes;
            try
            {
                bytes = System.IO.File.ReadAllBytes(path);
            }
            catch (Exception ex) when (ex is System.IO.IOException || ex is UnauthorizedAccessException || ex is ArgumentException || ex is NotSupportedException)
            {
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, $"The TLS CA certificate file '{path}' cannot be read: {ex.Message}", null);
            }
            try
            {
                string text = System.Text.Encoding.ASCII.GetString(bytes);
                var blocks = System.Text.RegularExpressions.Regex.Matches(text, @"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----");
                if (blocks.Count == 0) return new[] { new X509Certificate2(bytes) };
                var list = new List<X509Certificate2>();
                foreach (System.Text.RegularExpressions.Match b in blocks)
                    list.Add(new X509Certificate2(Convert.FromBase64String(System.Text.RegularExpressions.Regex.Replace(b.Groups[1].Value, @"\s", ""))));
                return list.ToArray();
            }
            catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException || ex is FormatException)
            {
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, $"The TLS CA certificate file '{path}' holds no certificate that can be read: {ex.Message}", null);
            }
        }

        /// <summary>Null when the server certificate is good: issued (through any intermediates the server sent)
        /// by one of <paramref name="authorities"/> (or, without them, trusted by the system), in its validity
        /// period, and naming the host. Otherwise why not.</summary>
        private static string ValidateServerCertificate(X509Certificate certificate, SslPolicyErrors errors, X509Certificate2[] authorities)
        {
            if (certificate == null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0) return "the server sent no certificate";
            if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
                return "the certificate does not name the host (give the name it carries with -TlsHostName)";
            if (authorities == null)
                return errors == SslPolicyErrors.None ? null : "the certificate chain is not trusted by this system (" + errors + "); give the CA with -TlsCaCertificate";
            var server = certificate as X509Certificate2 ?? new X509Certificate2(certificate);
            using (var chain = new X509Chain())
            {
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                chain.ChainPolicy.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
                foreach (var ca in authorities) chain.ChainPolicy.ExtraStore.Add(ca);
                chain.Build(server);
                var root = chain.ChainElements.Count > 0 ? chain.ChainElements[chain.ChainElements.Count - 1].Certificate : null;
                if (root == null || !authorities.Any(a => a.RawData.SequenceEqual(root.RawData)))
                    return $"it is not issued by the given CA (issuer: {server.Issuer})";
                foreach (var status in chain.ChainStatus)
                {
                    if (status.Status == X509ChainStatusFlags.NoError || status.Status == X509ChainStatusFlags.UntrustedRoot) continue;
                    return $"{status.Status}: {status.StatusInformation?.Trim()}";
                }
                return null;
            }
        }

        /// <summary>Commands StackExchange.Redis would send on its own that the module does not need, turned
        /// off so a least-privilege ACL user (RedisAcl.Rules) need not be granted them: the configuration
        /// change broadcast (SUBSCRIBE/PUBLISH __Booksleeve_MasterChanged), the tie-breaker key (GET
        /// __Booksleeve_TieBreak, outside the module's key patterns), CONFIG and SCRIPT.</summary>
        private static void ConfigureCommands(ConfigurationOptions config)
        {
            config.ConfigurationChannel = string.Empty;
            config.TieBreaker = string.Empty;
            // CONFIG GET (databases, replica-read-only) would need a grant that also reveals the server's
            // configuration; SCRIPT LOAD is not needed (the scripts go by EVALSHA, else EVAL).
            // CLIENT SETINFO (library name and version, Redis 7.2+) is not needed either.
            config.SetClientLibrary = false;
            config.CommandMap = CommandMap.Create(new HashSet<string> { "CONFIG", "SCRIPT" }, available: false);
        }

        /// <summary>On a cluster every script's keys must share a slot: the single partition needs a hash tag
        /// in its prefix. Every client of one prefix must agree on the partition count: the first client with
        /// several partitions records the count, and a client with another count is refused.</summary>
        private async Task CheckLayoutAsync()
        {
            IsCluster = _mux.GetEndPoints().Select(ep => _mux.GetServer(ep)).Any(s => s.ServerType == ServerType.Cluster);
            if (IsCluster && Layout.Count == 1 && !HasHashTag(Layout.Prefix))
                throw new WriteBehindException(ErrorIds.ClusterNeedsHashTag,
                    $"{RedisEndpoint} is a Redis Cluster: connect with -Partitions N (N of 2 or more; each partition's keys share a hash tag) " +
                    "or a -KeyPrefix with a hash tag such as '{wb}', so every script's keys are in one slot.");
            var recorded = await RedisAsync(db => db.StringGetAsync(Layout.LayoutKey)).ConfigureAwait(false);
            if (recorded.IsNull && Layout.Count > 1)
            {
                // A store of profiles under the unpartitioned names would be orphaned by a partitioned client.
                var single = new KeyNames(Layout.Prefix);
                bool legacy = false;
                if (!IsCluster || HasHashTag(Layout.Prefix))
                    legacy = await RedisAsync(db => db.KeyExistsAsync(single.Versions)).ConfigureAwait(false)
                          || await RedisAsync(db => db.KeyExistsAsync(single.Queue)).ConfigureAwait(false);
                if (legacy)
                    throw new WriteBehindException(ErrorIds.PartitionMismatch,
                        $"Redis at {RedisEndpoint} holds WriteBehind data with one partition ({single.Versions}, {single.Queue}) under prefix '{Layout.Prefix}': " +
                        $"connect without -Partitions, or drain and clear it before using {Layout.Count} partitions.");
                // SET NX, not SETNX (StackExchange.Redis's choice for When.NotExists), so the ACL needs +set only
                var set = await RedisAsync(db => db.ExecuteAsync("SET", (RedisKey)Layout.LayoutKey, Layout.Count, "NX")).ConfigureAwait(false);
                if (!set.IsNull) return;
                recorded = await RedisAsync(db => db.StringGetAsync(Layout.LayoutKey)).ConfigureAwait(false);
            }
            long count = recorded.IsNull ? 1 : (long)recorded;
            if (count != Layout.Count)
                throw new WriteBehindException(ErrorIds.PartitionMismatch,
                    $"The WriteBehind data under prefix '{Layout.Prefix}' at {RedisEndpoint} is spread over {count} partition(s) ({Layout.LayoutKey}); " +
                    $"this connection asked for {Layout.Count}. Every client of one prefix must use the same -Partitions.");
        }

        private static bool HasHashTag(string prefix)
        {
            int open = prefix.IndexOf('{');
            return open >= 0 && prefix.IndexOf('}', open + 1) > open + 1;
        }

        /// <summary>Under <see cref="WriteBehindOptions.ReplicaAcks"/>, waits until that many replicas of the
        /// master holding <paramref name="key"/> acknowledged every write sent before on this connection (Redis WAIT).</summary>
        internal async Task EnsureReplicatedAsync(RedisKey key, string what)
        {
            int want = Options.ReplicaAcks;
            if (want <= 0) return;
            long acked = await RedisAsync(async db =>
            {
                var endpoint = await db.IdentifyEndpointAsync(key).ConfigureAwait(false);
                var server = endpoint == null ? _mux.GetServer(_mux.GetEndPoints()[0]) : _mux.GetServer(endpoint);
                return (long)await server.ExecuteAsync("WAIT", want, (long)Options.ReplicaTimeout.TotalMilliseconds).ConfigureAwait(false);
            }).ConfigureAwait(false);
            if (acked < want)
                throw new WriteBehindException(ErrorIds.ReplicationTimeout,
                    $"Only {acked} of {want} replica(s) acknowledged {what} on {key} within {Options.ReplicaTimeout.TotalMilliseconds:F0} ms. " +
                    "The master applied it; a failover before the replicas catch up could lose it.");
        }

        /// <summary>Positions of <paramref name="items"/> grouped by the partition of their user id.</summary>
        private IEnumerable<KeyValuePair<KeyNames, List<int>>> ByPartition<T>(IReadOnlyList<T> items, Func<T, string> userIdOf)
        {
            if (Layout.Count == 1)
            {
                yield return new KeyValuePair<KeyNames, List<int>>(Keys, Enumerable.Range(0, items.Count).ToList());
                yield break;
            }
            var groups = new Dictionary<int, List<int>>();
            for (int i = 0; i < items.Count; i++)
            {
                string id = userIdOf(items[i]);
                int p = id == null ? 0 : KeyLayout.IndexOf(id, Layout.Count);
                if (!groups.TryGetValue(p, out var list)) groups[p] = list = new List<int>();
                list.Add(i);
            }
            foreach (var g in groups.OrderBy(g => g.Key)) yield return new KeyValuePair<KeyNames, List<int>>(Layout.Partitions[g.Key], g.Value);
        }

        /// <summary>The high-water mark each partition's queue is held to: the mark shared out evenly.</summary>
        private RedisValue HighWater => Options.HighWaterMark <= 0 || Layout.Count == 1
            ? Options.HighWaterMark
            : (Options.HighWaterMark + Layout.Count - 1) / Layout.Count;

        private static string FormatEndPoint(EndPoint ep)
        {
            switch (ep)
            {
                case DnsEndPoint dns: return dns.Host + ":" + dns.Port.ToString(CultureInfo.InvariantCulture);
                case IPEndPoint ip: return ip.ToString();
                default: return ep.ToString();
            }
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
        internal static string Scrub(string message, WriteBehindOptions options)
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

        /// <summary>The store, opened on first use.</summary>
        public IProfileStore Store
        {
            get
            {
                lock (_storeLock)
                {
                    if (_store == null) _store = StoreFactory.Open(Options);
                    return _store;
                }
            }
        }

        public string StoreDescription
        {
            get { try { return Store.Description; } catch (WriteBehindException) { return StoreUri; } }
        }

        internal async Task<T> RedisAsync<T>(Func<IDatabase, Task<T>> call)
        {
            try
            {
                return await call(Database).ConfigureAwait(false);
            }
            catch (RedisServerException ex) when (ex.Message.IndexOf("WB_QUEUE_FULL", StringComparison.Ordinal) >= 0)
            {
                string msg = ex.Message.Substring(ex.Message.IndexOf("WB_QUEUE_FULL", StringComparison.Ordinal) + "WB_QUEUE_FULL ".Length);
                throw new WriteBehindException(ErrorIds.QueueFull, "The write queue is full: " + msg + ". Run Invoke-WriteBehindFlush or raise -HighWaterMark.");
            }
            catch (Exception ex) when (ex is RedisConnectionException || ex is RedisTimeoutException || ex is ObjectDisposedException)
            {
                throw ConnectionLost(ex);
            }
            catch (RedisPermissionException ex)
            {
                throw PermissionDenied(Scrub(ex.Message, Options), ex.Script, ex.DeniedCommands);
            }
            catch (RedisServerException ex) when (RedisPermission.IsDenied(ex.Message))
            {
                throw PermissionDenied(Scrub(ex.Message, Options), null);
            }
            catch (RedisServerException ex)
            {
                throw new WriteBehindException(ErrorIds.RedisCommandFailed,
                    $"Redis at {RedisEndpoint} refused a command: {Scrub(FirstLine(ex.Message), Options)}", null);
            }
        }

        private WriteBehindException PermissionDenied(string serverMessage, WriteBehind.Engine.Redis.LuaScript script, string[] deniedCommands = null) =>
            new WriteBehindException(ErrorIds.RedisPermissionDenied,
                RedisPermission.Describe(serverMessage, Options.RedisUser, RedisEndpoint, script, Keys, deniedCommands), null);

        /// <summary>Enumerates a StackExchange.Redis cursor (HSCAN) with its failures as WriteBehindExceptions.</summary>
        private IEnumerable<T> Guarded<T>(IEnumerable<T> source)
        {
            IEnumerator<T> e;
            try { e = source.GetEnumerator(); }
            catch (Exception ex) when (ex is RedisException || ex is TimeoutException) { throw Translate(ex); }
            using (e)
            {
                while (true)
                {
                    try
                    {
                        if (!e.MoveNext()) yield break;
                    }
                    catch (Exception ex) when (ex is RedisException || ex is TimeoutException) { throw Translate(ex); }
                    yield return e.Current;
                }
            }
        }

        private WriteBehindException Translate(Exception ex)
        {
            if (ex is RedisServerException && RedisPermission.IsDenied(ex.Message)) return PermissionDenied(Scrub(ex.Message, Options), null);
            if (ex is RedisServerException) return new WriteBehindException(ErrorIds.RedisCommandFailed,
                $"Redis at {RedisEndpoint} refused a command: {Scrub(FirstLine(ex.Message), Options)}", null);
            return ConnectionLost(ex);
        }

        /// <summary>Redis went away after the connection was made: one sentence that names the endpoint, says
        /// what happened in a few words (not StackExchange.Redis's backlog diagnostics) and what to check.
        /// Commands fail at once while the connection is down (BacklogPolicy.FailFast) instead of waiting in
        /// the backlog for the command timeout.</summary>
        private WriteBehindException ConnectionLost(Exception ex)
        {
            if (ex is ObjectDisposedException)
                return new WriteBehindException(ErrorIds.RedisUnavailable,
                    $"The connection to Redis at {RedisEndpoint} was closed (Disconnect-WriteBehind or the module removed): connect again with Connect-WriteBehind.", null);
            string what = ex is RedisTimeoutException || ex.Message.IndexOf("timed out", StringComparison.OrdinalIgnoreCase) >= 0
                ? $"it did not answer within {_config.SyncTimeout} ms"
                : "the server closed the connection or cannot be reached";
            return new WriteBehindException(ErrorIds.RedisUnavailable,
                $"Lost the connection to Redis at {RedisEndpoint} ({what}): check that the server is running and reachable from this machine " +
                "(host, port, firewall, TLS), then run the command again.", null);
        }

        /// <summary>A producer's write: at the high-water mark it fails with QueueFull, or under the Block
        /// policy waits (backing off up to 500 ms) until the queue has room or the timeout passes.</summary>
        internal async Task<T> ProduceAsync<T>(Func<IDatabase, Task<T>> call)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int delay = 20;
            while (true)
            {
                try
                {
                    return await RedisAsync(call).ConfigureAwait(false);
                }
                catch (WriteBehindException ex) when (ex.ErrorId == ErrorIds.QueueFull
                                                      && Options.Backpressure == BackpressurePolicy.Block
                                                      && clock.Elapsed < Options.BackpressureTimeout)
                {
                    await Task.Delay(delay).ConfigureAwait(false);
                    delay = Math.Min(delay * 2, 500);
                }
            }
        }

        private static string FirstLine(string s)
        {
            int nl = s.IndexOf('\n');
            return nl < 0 ? s : s.Substring(0, nl).TrimEnd('\r');
        }

        /// <summary>Writes profiles (already validated JSON) to the cache, bumps their versions and queues
        /// their persists, in one script per partition. Returns the new versions.</summary>
        public async Task<long[]> SetProfilesAsync(IReadOnlyList<KeyValuePair<string, string>> profiles, bool queue)
        {
            var versions = new long[profiles.Count];
            await Task.WhenAll(ByPartition(profiles, p => p.Key).Select(async group =>
            {
                var keys = group.Key;
                var args = new RedisValue[2 + group.Value.Count * 2];
                args[0] = queue ? "1" : "0";
                args[1] = HighWater;
                for (int i = 0; i < group.Value.Count; i++)
                {
                    args[2 + 2 * i] = KeyNames.Field(profiles[group.Value[i]].Key);
                    args[3 + 2 * i] = profiles[group.Value[i]].Value;
                }
                var written = await ProduceAsync(async db => (long[])await Scripts.SetProfiles.EvaluateAsync(db,
                    new RedisKey[] { keys.Cache, keys.Versions, keys.Queue, keys.Redo, keys.PendingAge }, args).ConfigureAwait(false)).ConfigureAwait(false);
                await EnsureReplicatedAsync(keys.Cache, "the profile write").ConfigureAwait(false);
                for (int i = 0; i < group.Value.Count; i++) versions[group.Value[i]] = written[i];
            })).ConfigureAwait(false);
            return versions;
        }

        /// <summary>Removes profiles from the cache and queues their versioned tombstones, atomically per
        /// partition. Returns for each id whether a cached profile was removed.</summary>
        public async Task<bool[]> RemoveProfilesAsync(IReadOnlyList<string> userIds)
        {
            var removed = new bool[userIds.Count];
            await Task.WhenAll(ByPartition(userIds, id => id).Select(async group =>
            {
                var keys = group.Key;
                var args = new RedisValue[1 + group.Value.Count];
                args[0] = HighWater;
                for (int i = 0; i < group.Value.Count; i++) args[1 + i] = KeyNames.Field(userIds[group.Value[i]]);
                var result = await ProduceAsync(async db => (long[])await Scripts.RemoveProfiles.EvaluateAsync(db,
                    new RedisKey[] { keys.Cache, keys.Versions, keys.Queue, keys.Redo, keys.PendingAge }, args).ConfigureAwait(false)).ConfigureAwait(false);
                await EnsureReplicatedAsync(keys.Cache, "the delete").ConfigureAwait(false);
                for (int i = 0; i < group.Value.Count; i++) removed[group.Value[i]] = result[i] == 1;
            })).ConfigureAwait(false);
            return removed;
        }

        /// <summary>The queue an item goes to: its user id's partition (an item with no readable id: the first).</summary>
        public string QueueOf(string item) => Layout.Count == 1 ? Keys.Queue : Layout.Partitions[PartitionOfItem(item)].Queue;

        private int PartitionOfItem(string item)
        {
            if (Layout.Count == 1) return 0;
            string id = QueueItem.RoutingUserIdOf(item);
            return id == null ? 0 : KeyLayout.IndexOf(id, Layout.Count);
        }

        /// <summary>LPUSHes items (already checked against the grammar) to their partitions' queues. Returns
        /// the depth after of the last queue written.</summary>
        public async Task<long> EnqueueAsync(IReadOnlyList<string> items)
        {
            var depths = await Task.WhenAll(ByPartition(items, QueueItem.RoutingUserIdOf).Select(async group =>
            {
                var keys = group.Key;
                var args = new RedisValue[1 + group.Value.Count];
                args[0] = HighWater;
                for (int i = 0; i < group.Value.Count; i++) args[1 + i] = items[group.Value[i]];
                long depth = await ProduceAsync(async db => (long)await Scripts.Enqueue.EvaluateAsync(db, new RedisKey[] { keys.Queue, keys.PendingAge }, args).ConfigureAwait(false)).ConfigureAwait(false);
                await EnsureReplicatedAsync(keys.Queue, "the queued items").ConfigureAwait(false);
                return depth;
            })).ConfigureAwait(false);
            return depths.Length == 0 ? 0 : depths[depths.Length - 1];
        }

        public async Task<long> ClearQueueAsync()
        {
            long dropped = 0;
            foreach (var keys in Layout.Partitions)
                dropped += await RedisAsync(async db => (long)await Scripts.ClearQueue.EvaluateAsync(db, new RedisKey[] { keys.Queue, keys.PendingAge }, Array.Empty<RedisValue>()).ConfigureAwait(false)).ConfigureAwait(false);
            return dropped;
        }

        /// <summary>Items waiting in every partition's queue.</summary>
        public async Task<long> GetQueueDepthAsync()
        {
            if (Layout.Count == 1) return await RedisAsync(db => db.ListLengthAsync(Keys.Queue)).ConfigureAwait(false);
            var depths = await RedisAsync(db => Task.WhenAll(Layout.Partitions.Select(p => db.ListLengthAsync(p.Queue)))).ConfigureAwait(false);
            return depths.Sum();
        }

        /// <summary>The pending items, oldest first (partition by partition).</summary>
        public Task<string[]> GetQueueItemsAsync(long max = 1000) =>
            RedisAsync(async db =>
            {
                var all = new List<string>();
                foreach (var keys in Layout.Partitions)
                {
                    if (all.Count >= max) break;
                    var values = await db.ListRangeAsync(keys.Queue, -(max - all.Count), -1).ConfigureAwait(false);
                    Array.Reverse(values);
                    all.AddRange(values.Select(v => (string)v));
                }
                return all.ToArray();
            });

        /// <summary>The cache's current JSON (null when absent or deleted) and version (0 when it never had
        /// one) of each profile, read together in one script.</summary>
        public async Task<ProfileRow[]> ReadStateAsync(IReadOnlyList<string> userIds)
        {
            var rows = new ProfileRow[userIds.Count];
            await Task.WhenAll(ByPartition(userIds, id => id).Select(group => RedisAsync(async db =>
            {
                var fields = group.Value.Select(i => (RedisValue)KeyNames.Field(userIds[i])).ToArray();
                var raw = (RedisResult[])await Scripts.ReadState.EvaluateAsync(db, new RedisKey[] { group.Key.Cache, group.Key.Versions, group.Key.Redo }, fields).ConfigureAwait(false);
                for (int j = 0; j < group.Value.Count; j++)
                {
                    int i = group.Value[j];
                    rows[i] = new ProfileRow(userIds[i], raw[2 * j].IsNull ? null : (string)raw[2 * j], raw[2 * j + 1].IsNull ? 0 : (long)raw[2 * j + 1]);
                }
                return true;
            }))).ConfigureAwait(false);
            return rows;
        }

        /// <summary>Cached state of profiles (null entries for ids not in the cache).</summary>
        public async Task<ProfileState[]> GetCachedAsync(IReadOnlyList<string> userIds)
        {
            var rows = await ReadStateAsync(userIds).ConfigureAwait(false);
            return rows.Select(r => r.IsDeleted ? null : new ProfileState(r.UserId, r.Json, r.Version, ProfileSource.Cache)).ToArray();
        }

        /// <summary>Versions known to the cache (also for deleted profiles: the tombstones).</summary>
        public async Task<long?[]> GetVersionsAsync(IReadOnlyList<string> userIds)
        {
            var versions = new long?[userIds.Count];
            await Task.WhenAll(ByPartition(userIds, id => id).Select(group => RedisAsync(async db =>
            {
                var values = await db.HashGetAsync(group.Key.Versions, group.Value.Select(i => (RedisValue)KeyNames.Field(userIds[i])).ToArray()).ConfigureAwait(false);
                for (int j = 0; j < values.Length; j++) versions[group.Value[j]] = values[j].IsNull ? (long?)null : (long)values[j];
                return true;
            }))).ConfigureAwait(false);
            return versions;
        }

        /// <summary>Streams every cached profile (HSCAN), with versions fetched page by page.</summary>
        public IEnumerable<ProfileState> ScanCached(string userIdPattern = "*", int pageSize = 1000) =>
            Layout.Partitions.SelectMany(keys => ScanCached(keys, userIdPattern, pageSize));

        private IEnumerable<ProfileState> ScanCached(KeyNames keys, string userIdPattern, int pageSize)
        {
            var page = new List<HashEntry>(pageSize);
            var scan = Guarded(Database.HashScan(keys.Cache, "user:" + (userIdPattern ?? "*"), pageSize));
            foreach (var entry in scan)
            {
                page.Add(entry);
                if (page.Count == pageSize)
                {
                    foreach (var p in VersionPage(keys, page)) yield return p;
                    page.Clear();
                }
            }
            foreach (var p in VersionPage(keys, page)) yield return p;
        }

        /// <summary>Up to <paramref name="max"/> cached user ids that start with <paramref name="prefix"/>
        /// (glob characters in it are matched literally).</summary>
        public IEnumerable<string> ScanUserIds(string prefix, int max)
        {
            var escaped = new System.Text.StringBuilder("user:");
            foreach (char c in prefix ?? string.Empty)
            {
                if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') escaped.Append('\\');
                escaped.Append(c);
            }
            escaped.Append('*');
            string pattern = escaped.ToString();
            return Layout.Partitions.SelectMany(keys => Guarded(Database.HashScan(keys.Cache, pattern, 250))).Take(max).Select(e => ((string)e.Name).Substring(5));
        }

        private IEnumerable<ProfileState> VersionPage(KeyNames keys, List<HashEntry> page)
        {
            if (page.Count == 0) yield break;
            RedisValue[] versions;
            try { versions = Database.HashGet(keys.Versions, page.Select(e => e.Name).ToArray()); }
            catch (Exception ex) when (ex is RedisException || ex is TimeoutException) { throw Translate(ex); }
            for (int i = 0; i < page.Count; i++)
            {
                string field = page[i].Name;
                yield return new ProfileState(field.Substring(5), page[i].Value, versions[i].IsNull ? 0 : (long)versions[i], ProfileSource.Cache);
            }
        }

        /// <summary>Puts a store row back into the cache after a miss unless the cache knows newer state.
        /// Returns the JSON now cached, or null when the cache has newer state (e.g. a newer delete).</summary>
        public Task<string> ReadThroughAsync(string userId, string json, long version) =>
            RedisAsync(async db =>
            {
                var keys = Layout.Of(userId);
                var r = await Scripts.ReadThrough.EvaluateAsync(db, new RedisKey[] { keys.Cache, keys.Versions, keys.Redo },
                    new RedisValue[] { KeyNames.Field(userId), json, version }).ConfigureAwait(false);
                return r.IsNull ? null : (string)r;
            });

        public async Task<DeadLetter[]> GetDeadLettersAsync(long max = long.MaxValue)
        {
            return await RedisAsync(async db =>
            {
                var result = new List<DeadLetter>();
                foreach (var keys in Layout.Partitions)
                {
                    if (result.Count >= max) break;
                    long want = max == long.MaxValue ? -1 : max - result.Count - 1;
                    // LPUSHed: the left end holds the newest, the right end the oldest
                    var items = await db.ListRangeAsync(keys.DeadLetters, 0, want).ConfigureAwait(false);
                    Array.Reverse(items);
                    var infos = items.Length == 0 ? Array.Empty<RedisValue>() : await db.HashGetAsync(keys.DeadLetterInfo, items).ConfigureAwait(false);
                    for (int i = 0; i < items.Length; i++) result.Add(ParseDeadLetter(result.Count, keys.Partition, items[i], infos[i]));
                }
                return result.ToArray();
            }).ConfigureAwait(false);
        }

        /// <summary>Requeues dead-lettered items. A poison item goes back as it was; the items of a row the
        /// store refused go back as <c>set:user:&lt;id&gt;</c> (persist the cached state), because their
        /// effect is already in the cache and must not be merged again. Returns per item whether it was found.</summary>
        public Task<bool[]> RestoreDeadLettersAsync(IReadOnlyList<DeadLetter> entries) => TakeDeadLettersAsync(entries, restore: true);

        /// <summary>Deletes dead-lettered items for good. Returns per item whether it was found.</summary>
        public Task<bool[]> RemoveDeadLettersAsync(IReadOnlyList<DeadLetter> entries) => TakeDeadLettersAsync(entries, restore: false);

        /// <summary>What Restore-WriteBehindDeadLetter pushes back for an entry.</summary>
        public static string RequeueTextOf(DeadLetter entry)
        {
            if (entry.Reason != null && entry.Reason.StartsWith("store rejected", StringComparison.Ordinal))
                return "set:user:" + QueueItem.RoutingUserIdOf(entry.Item);
            return entry.Item;
        }

        private async Task<bool[]> TakeDeadLettersAsync(IReadOnlyList<DeadLetter> entries, bool restore)
        {
            var found = new bool[entries.Count];
            foreach (var group in Enumerable.Range(0, entries.Count).GroupBy(i => Math.Min(entries[i].Partition, Layout.Count - 1)))
            {
                var keys = Layout.Partitions[group.Key];
                var positions = group.ToList();
                // A restored item goes to its own partition's queue. When that is another partition (an item a
                // raw producer pushed to the wrong queue), it is queued there first and then taken out of this
                // dead-letter list: a crash in between leaves it in both places, never in neither.
                var here = new List<int>();
                foreach (int i in positions)
                {
                    string text = RequeueTextOf(entries[i]);
                    if (restore && Layout.Count > 1 && PartitionOfItem(text) != keys.Partition)
                    {
                        await EnqueueAsync(new[] { text }).ConfigureAwait(false);
                        var taken = await TakeDeadLettersAsync(keys, new[] { entries[i] }, restore: false).ConfigureAwait(false);
                        found[i] = taken[0];
                    }
                    else here.Add(i);
                }
                if (here.Count == 0) continue;
                var result = await TakeDeadLettersAsync(keys, here.Select(i => entries[i]).ToList(), restore).ConfigureAwait(false);
                for (int j = 0; j < here.Count; j++) found[here[j]] = result[j];
            }
            return found;
        }

        private Task<bool[]> TakeDeadLettersAsync(KeyNames keys, IReadOnlyList<DeadLetter> entries, bool restore)
        {
            var args = new RedisValue[1 + entries.Count * 2];
            args[0] = restore ? "restore" : "remove";
            for (int i = 0; i < entries.Count; i++)
            {
                args[1 + 2 * i] = entries[i].ItemBytes ?? (RedisValue)entries[i].Item;
                args[2 + 2 * i] = restore ? RequeueTextOf(entries[i]) : string.Empty;
            }
            var scriptKeys = new RedisKey[] { keys.DeadLetters, keys.DeadLetterInfo, keys.Queue, keys.PendingAge };
            return RedisAsync(async db =>
                ((long[])await Scripts.DeadLetters.EvaluateAsync(db, scriptKeys, args).ConfigureAwait(false)).Select(n => n == 1).ToArray());
        }

        private static DeadLetter ParseDeadLetter(long index, int partition, RedisValue item, RedisValue info)
        {
            string reason = null;
            int attempts = 0;
            DateTimeOffset? first = null, last = null;
            if (!info.IsNull)
            {
                string[] parts = ((string)info).Split(new[] { '|' }, 4);
                if (parts.Length == 4)
                {
                    int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out attempts);
                    if (long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long f)) first = DateTimeOffset.FromUnixTimeMilliseconds(f);
                    if (long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out long l)) last = DateTimeOffset.FromUnixTimeMilliseconds(l);
                    reason = parts[3];
                }
            }
            return new DeadLetter(index, item, reason, attempts, first, last) { ItemBytes = item, Partition = partition };
        }

        public async Task<WriteBehindStatus> GetStatusAsync(bool includeStore, CancellationToken cancellationToken)
        {
            var status = await RedisAsync(async db =>
            {
                var stats = db.HashGetAllAsync(Layout.Stats);
                var pause = ReadPauseAsync(db);
                var parts = await Task.WhenAll(Layout.Partitions.Select(keys => PartitionStatusAsync(db, keys))).ConfigureAwait(false);
                var s = (await stats.ConfigureAwait(false)).ToDictionary(e => (string)e.Name, e => e.Value);
                var paused = await pause.ConfigureAwait(false);
                var st = new WriteBehindStatus
                {
                    Redis = RedisEndpoint,
                    Store = StoreUri,
                    KeyPrefix = Keys.Prefix,
                    Partitions = Layout.Count,
                    PartitionDetails = parts,
                    QueueDepth = parts.Sum(p => p.QueueDepth),
                    DeadLetters = parts.Sum(p => p.DeadLetters),
                    CachedProfiles = parts.Sum(p => p.CachedProfiles),
                    Leases = parts.Sum(p => p.Leases),
                    ExpiredLeases = parts.Sum(p => p.ExpiredLeases),
                    InFlight = parts.Sum(p => p.InFlight),
                    HighWaterMark = Options.HighWaterMark,
                    Totals = TotalsOf(s),
                    Paused = paused.Paused,
                    PausedSince = paused.Since,
                    PausedReason = paused.Reason,
                };
                if (s.TryGetValue("lastFlushMs", out var ms) && ms.TryParse(out long lastMs)) st.LastFlushDuration = TimeSpan.FromMilliseconds(lastMs);
                if (s.TryGetValue("lastFlushAt", out var at)) st.LastFlushAt = DateTimeOffset.FromUnixTimeMilliseconds((long)at);
                if (s.TryGetValue("lastFlushDequeued", out var dq)) st.LastFlushDequeued = (long)dq;
                if (s.TryGetValue("lastFlushRate", out var rate)) st.LastFlushItemsPerSecond = double.Parse(rate, CultureInfo.InvariantCulture);
                if (s.TryGetValue("lastFlushError", out var err) && !err.IsNullOrEmpty) st.LastFlushError = err;
                // The age of the oldest pending item, from the scripts' records (no flush needed): the oldest partition's.
                st.Lag = parts.Max(p => p.Lag);
                st.OldestPendingSince = parts.Where(p => p.OldestPendingSince.HasValue).Select(p => p.OldestPendingSince).Min();
                return st;
            }).ConfigureAwait(false);
            if (includeStore)
            {
                try
                {
                    status.Store = Store.Description;
                    status.StoredProfiles = await Store.CountAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is StoreException || ex is WriteBehindException) { status.StoredProfiles = null; }
            }
            return status;
        }

        private static long ParseMs(RedisResult text) => long.Parse((string)text, NumberStyles.None, CultureInfo.InvariantCulture);

        private static async Task<PartitionStatus> PartitionStatusAsync(IDatabase db, KeyNames keys)
        {
            var batch = db.CreateBatch();
            var depth = batch.ListLengthAsync(keys.Queue);
            var dead = batch.ListLengthAsync(keys.DeadLetters);
            var cached = batch.HashLengthAsync(keys.Cache);
            var leases = batch.SortedSetRangeByScoreWithScoresAsync(keys.Leases);
            var owner = batch.StringGetAsync(keys.Owner);
            batch.Execute();
            var pending = Scripts.PendingAge.EvaluateAsync(db, new RedisKey[] { keys.Queue, keys.PendingAge }, Array.Empty<RedisValue>());
            await Task.WhenAll(depth, dead, cached, leases, owner, pending).ConfigureAwait(false);
            var age = (RedisResult[])pending.Result;
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            // every lease's length in one round trip
            var lengths = await Task.WhenAll(leases.Result.Select(l => db.ListLengthAsync((string)l.Element))).ConfigureAwait(false);
            return new PartitionStatus
            {
                Partition = keys.Partition,
                Queue = keys.Queue,
                QueueDepth = depth.Result,
                DeadLetters = dead.Result,
                CachedProfiles = cached.Result,
                Leases = leases.Result.Length,
                ExpiredLeases = leases.Result.Count(l => l.Score < now),
                InFlight = lengths.Sum(),
                Owner = owner.Result.IsNull ? null : (string)owner.Result,
                OldestPendingSince = age[1].IsNull ? (DateTimeOffset?)null : DateTimeOffset.FromUnixTimeMilliseconds(ParseMs(age[1])),
                Lag = age[1].IsNull ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Math.Max(0, ParseMs(age[2]) - ParseMs(age[1]))),
            };
        }

        /// <summary>Blocks until the queue holds an item or the timeout passes, and takes nothing: BLMOVE from
        /// the queue's right end to its right end leaves the list as it was. It runs on a connection of its
        /// own (opened on first use), because a blocking command would stall every other command sharing one.</summary>
        public async Task<bool> WaitForItemsAsync(TimeSpan timeout)
        {
            if (Layout.Count > 1)
            {
                // A blocking command waits on keys of one slot only: with several partitions, look every 100 ms.
                var clock = System.Diagnostics.Stopwatch.StartNew();
                while (true)
                {
                    if (await GetQueueDepthAsync().ConfigureAwait(false) > 0) return true;
                    if (clock.Elapsed >= timeout) return false;
                    await Task.Delay(100).ConfigureAwait(false);
                }
            }
            if (_waiter == null)
            {
                try
                {
                    var waiterConfig = _config.Clone();
                    waiterConfig.ClientName = "WriteBehind-wait";
                    _waiter = await ConnectionMultiplexer.ConnectAsync(waiterConfig).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RedisException || ex is TimeoutException)
                {
                    throw ConnectFailure(ex, RedisEndpoint, Options, null);
                }
            }
            var waiter = _waiter;
            try
            {
                var r = await waiter.GetDatabase().ExecuteAsync("BLMOVE", (RedisKey)Keys.Queue, (RedisKey)Keys.Queue, "RIGHT", "RIGHT",
                    Math.Max(0.01, timeout.TotalSeconds).ToString("0.###", CultureInfo.InvariantCulture)).ConfigureAwait(false);
                return !r.IsNull;
            }
            catch (RedisServerException ex) when (RedisPermission.IsDenied(ex.Message))
            {
                throw PermissionDenied(Scrub(ex.Message, Options), null);
            }
            catch (Exception ex) when (ex is RedisConnectionException || ex is RedisTimeoutException)
            {
                throw ConnectionLost(ex);
            }
        }

        public void Dispose()
        {
            _waiter?.Dispose();
            lock (_storeLock)
            {
                _store?.Dispose();
                _store = null;
            }
            _mux.Dispose();
        }
    }
}
