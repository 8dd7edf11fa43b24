using System;
using System.Management.Automation;
using System.Net;
using WriteBehind.Engine;
using WriteBehind.Engine.Store;

namespace WriteBehind.Commands
{
    /// <summary>Opens the connection the other cmdlets use by default.</summary>
    [Cmdlet(VerbsCommunications.Connect, "WriteBehind")]
    [OutputType(typeof(WriteBehindConnection))]
    public sealed class ConnectWriteBehindCommand : PSCmdlet
    {
        /// <summary>StackExchange.Redis configuration, e.g. "localhost:6379" or "host:6380,ssl=true", or a
        /// redis:// / rediss:// URI. A password here is refused (PasswordInParameter): use -Credential or
        /// WRITEBEHIND_REDIS_PASSWORD.</summary>
        [Parameter(Position = 0)]
        [ValidateNotNullOrEmpty]
        public string Redis { get; set; }

        [Parameter]
        [Credential]
        public PSCredential Credential { get; set; }

        /// <summary>Store URI, e.g. sqlite:///var/lib/app/profiles.db.</summary>
        [Parameter(Position = 1)]
        [ValidateNotNullOrEmpty]
        public string Store { get; set; }

        /// <summary>User and password for a store server (PostgreSQL); the store URI never carries a password.</summary>
        [Parameter]
        [Credential]
        public PSCredential StoreCredential { get; set; }

        /// <summary>The application's own table to flush into ([schema.]table) instead of the module's user_profiles.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string StoreTable { get; set; }

        /// <summary>The mapped table's key column (primary key or unique): it gets the user id.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string StoreKeyColumn { get; set; }

        /// <summary>Top-level JSON field → column: a hashtable (or [ordered]) of field = 'column', or names that are both.</summary>
        [Parameter]
        [ValidateNotNull]
        public object StoreColumns { get; set; }

        /// <summary>A column of the mapped table that also keeps the whole profile text.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string StoreJsonColumn { get; set; }

        /// <summary>What a delete does to the mapped table's row: Delete it (default) or Keep it (the tombstone is in wb_versions either way).</summary>
        [Parameter]
        public StoreDeleteMode StoreDeleteMode { get; set; }

        /// <summary>A .psd1 file with Table, KeyColumn, Columns, JsonColumn, DeleteMode (the parameters win over it).</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string StoreMapping { get; set; }

        /// <summary>Prefix for every key (e.g. "app1:" or a cluster hash tag "{wb}").</summary>
        [Parameter]
        [AllowEmptyString]
        public string KeyPrefix { get; set; }

        /// <summary>Queue depth past which producers get QueueFull (0: unbounded).</summary>
        [Parameter]
        [ValidateRange(0, long.MaxValue)]
        public long HighWaterMark { get; set; } = -1;

        /// <summary>At the high-water mark: Fail at once (QueueFull), or Block until there is room.</summary>
        [Parameter]
        public BackpressurePolicy Backpressure { get; set; } = BackpressurePolicy.Fail;

        /// <summary>How long a producer waits under -Backpressure Block before it fails with QueueFull.</summary>
        [Parameter]
        public TimeSpan BackpressureTimeout { get; set; } = TimeSpan.FromSeconds(30);

        /// <summary>Spread the profiles over this many partitions, each with its own hash-tagged keys (Redis Cluster).</summary>
        [Parameter]
        [ValidateRange(1, KeyLayout.MaxPartitions)]
        public int Partitions { get; set; }

        /// <summary>Replicas that must acknowledge (WAIT) each producer write, and each leased batch before the store sees it.</summary>
        [Parameter]
        [ValidateRange(0, 16)]
        public int ReplicaAcks { get; set; } = -1;

        /// <summary>How long to wait for -ReplicaAcks before failing with ReplicationTimeout.</summary>
        [Parameter]
        public TimeSpan ReplicaTimeout { get; set; } = TimeSpan.FromSeconds(2);

        /// <summary>Connect to Redis over TLS.</summary>
        [Parameter]
        public SwitchParameter UseTls { get; set; }

        /// <summary>PEM or DER file with the CA certificate the server's certificate must chain to (implies -UseTls).</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string TlsCaCertificate { get; set; }

        /// <summary>The name the server's certificate must carry (default: the endpoint's host).</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string TlsHostName { get; set; }

        /// <summary>Accept any server certificate (writes a warning).</summary>
        [Parameter]
        public SwitchParameter SkipCertificateCheck { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void EndProcessing()
        {
            WriteBehindOptions options = null;
            try
            {
                string redis = null, redisUser = null;
                if (Redis != null)
                {
                    redis = RedisSecrets.Split(Redis, out redisUser, out string inlinePassword);
                    if (inlinePassword != null)
                        throw new WriteBehindException(ErrorIds.PasswordInParameter,
                            "-Redis holds a password (password=..., or in a redis:// URI). A password on a command line ends up in the history, transcripts and " +
                            "process lists: pass it with -Credential (PSCredential) or the environment (WRITEBEHIND_REDIS_PASSWORD, or a " +
                            "password= in WRITEBEHIND_REDIS), and remove it from -Redis.");
                }
                options = WriteBehindOptions.FromEnvironment();
                if (redis != null)
                {
                    options.Redis = redis;
                    if (redisUser != null) options.RedisUser = redisUser;
                }
                if (Store != null) options.Store = Store;
                if (KeyPrefix != null) options.KeyPrefix = KeyPrefix;
                if (HighWaterMark >= 0) options.HighWaterMark = HighWaterMark;
                options.Backpressure = Backpressure;
                options.BackpressureTimeout = BackpressureTimeout;
                if (Partitions > 0) options.Partitions = Partitions;
                if (ReplicaAcks >= 0) options.ReplicaAcks = ReplicaAcks;
                options.ReplicaTimeout = ReplicaTimeout;
                if (UseTls) options.UseTls = true;
                if (TlsCaCertificate != null)
                {
                    options.TlsCaCertificate = SessionState.Path.GetUnresolvedProviderPathFromPSPath(TlsCaCertificate);
                    options.UseTls = true;
                }
                if (TlsHostName != null) options.TlsHostName = TlsHostName;
                if (SkipCertificateCheck)
                {
                    options.SkipCertificateCheck = true;
                    options.UseTls = true;
                    WriteWarning("-SkipCertificateCheck: the Redis server's TLS certificate is not checked. The connection is encrypted, " +
                                 "but anyone between this machine and the server can pretend to be it and read the password and the data.");
                }
                if (Credential != null && Credential != PSCredential.Empty)
                {
                    if (!string.IsNullOrEmpty(Credential.UserName) && Credential.UserName != "default") options.RedisUser = Credential.UserName;
                    options.RedisPassword = new NetworkCredential(string.Empty, Credential.Password).Password;
                }
                if (StoreCredential != null && StoreCredential != PSCredential.Empty)
                {
                    if (!string.IsNullOrEmpty(StoreCredential.UserName)) options.StoreUser = StoreCredential.UserName;
                    options.StorePassword = new NetworkCredential(string.Empty, StoreCredential.Password).Password;
                }
                var mappingParameters = new StoreMappingReader.Settings
                {
                    Table = StoreTable,
                    KeyColumn = StoreKeyColumn,
                    Columns = StoreColumns,
                    JsonColumn = StoreJsonColumn,
                    DeleteMode = MyInvocation.BoundParameters.ContainsKey(nameof(StoreDeleteMode)) ? StoreDeleteMode : (StoreDeleteMode?)null,
                };
                string mappingFile = StoreMapping != null
                    ? SessionState.Path.GetUnresolvedProviderPathFromPSPath(StoreMapping)
                    : (string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(StoreMappingReader.EnvironmentVariable))
                        ? null
                        : System.IO.Path.GetFullPath(Environment.GetEnvironmentVariable(StoreMappingReader.EnvironmentVariable)));
                options.StoreMapping = StoreMappingReader.Build(mappingParameters, mappingFile);
                // Fail now on a malformed store URI (or one that carries a password, or a value that is no store
                // URI at all) rather than at the first flush; a relative SQLite path is PowerShell's, not the process's.
                options.Store = StoreFactory.Normalize(options.Store, ResolvePath, options.StoreUser);
                new KeyLayout(options.KeyPrefix, options.Partitions);
            }
            catch (WriteBehindException ex)
            {
                ThrowTerminatingError(new ErrorRecord(ex, ex.ErrorId, WriteBehindCmdlet.CategoryOf(ex.ErrorId),
                    ex.ErrorId == ErrorIds.PasswordInParameter ? null : StoreFactory.Display(Store ?? options?.Store)));
                return;
            }
            catch (ArgumentException ex)
            {
                ThrowTerminatingError(new ErrorRecord(ex, ErrorIds.InvalidConfiguration, ErrorCategory.InvalidArgument, KeyPrefix));
                return;
            }
            WriteBehindConnection connection;
            try
            {
                connection = WriteBehindConnection.ConnectAsync(options).GetAwaiter().GetResult();
            }
            catch (WriteBehindException ex)
            {
                ThrowTerminatingError(new ErrorRecord(ex, ex.ErrorId, WriteBehindCmdlet.CategoryOf(ex.ErrorId), null));
                return;
            }
            if (!CheckStore(connection)) return;
            ConnectionRegistry.SetDefault(connection);
            WriteVerbose($"Connected to Redis at {connection.RedisEndpoint}{(connection.UsesTls ? " over TLS" : "")} as {connection.RedisUser}; store {connection.StoreUri}{(options.StoreMapping != null ? " table " + options.StoreMapping : "")}; key prefix '{connection.Keys.Prefix}'; {connection.Layout.Count} partition(s){(connection.IsCluster ? " on a Redis Cluster" : "")}.");
            if (PassThru) WriteObject(connection);
        }

        /// <summary>A relative store path (or ~, or a PowerShell drive's) as PowerShell resolves it: against the
        /// current location, or the current file-system location while that is another provider's (Env:, say).</summary>
        internal static Func<string, string> PathResolver(SessionState sessionState) =>
            path =>
            {
                string resolved = sessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out ProviderInfo provider, out _);
                if (provider.Name == "FileSystem") return resolved;
                if (!System.IO.Path.IsPathRooted(path) && path.IndexOf(':') < 0)
                    return System.IO.Path.Combine(sessionState.Path.CurrentFileSystemLocation.ProviderPath, path);
                throw new ArgumentException($"it is a path of the {provider.Name} provider, not of a file.");
            };

        private string ResolvePath(string path) => PathResolver(SessionState)(path);

        /// <summary>Checks the store's shape now, before anything is written to it: a table that is not the
        /// module's ends the command. A store that cannot be reached now does not: producers work without
        /// it, and the flush retries it.</summary>
        private bool CheckStore(WriteBehindConnection connection)
        {
            try
            {
                connection.Store.CheckAsync(System.Threading.CancellationToken.None).GetAwaiter().GetResult();
            }
            catch (StoreUnavailableException ex)
            {
                string message = $"The store cannot be used now ({ex.Message.TrimEnd('.')}). The cache and the queue work without it; the flush retries it.";
                // -Debug turns warnings into prompts (WarningPreference Inquire), which fail a non-interactive
                // session: there the debug stream it asked for carries the message instead.
                if (MyInvocation.BoundParameters.ContainsKey("Debug") && !MyInvocation.BoundParameters.ContainsKey("WarningAction"))
                    WriteDebug(message);
                else
                    WriteWarning(message);
            }
            catch (Exception ex) when (ex is WriteBehindException || ex is StoreException || ex is InvalidOperationException)
            {
                connection.Dispose();
                string errorId = ex is WriteBehindException wbe ? wbe.ErrorId : ErrorIds.StoreFailed;
                ThrowTerminatingError(new ErrorRecord(ex, errorId, WriteBehindCmdlet.CategoryOf(errorId), connection.StoreUri));
                return false;
            }
            return true;
        }
    }
}
