using System;
using System.Management.Automation;
using System.Net;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Opens the connection the other cmdlets use by default.</summary>
    [Cmdlet(VerbsCommunications.Connect, "WriteBehind")]
    [OutputType(typeof(WriteBehindConnection))]
    public sealed class ConnectWriteBehindCommand : PSCmdlet
    {
        /// <summary>StackExchange.Redis configuration, e.g. "localhost:6379" or "host:6380,ssl=true".</summary>
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

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void EndProcessing()
        {
            WriteBehindOptions options;
            try
            {
                options = WriteBehindOptions.FromEnvironment();
                if (Redis != null) options.Redis = Redis;
                if (Store != null) options.Store = Store;
                if (KeyPrefix != null) options.KeyPrefix = KeyPrefix;
                if (HighWaterMark >= 0) options.HighWaterMark = HighWaterMark;
                options.Backpressure = Backpressure;
                options.BackpressureTimeout = BackpressureTimeout;
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
                // Fail now on a malformed store URI (or one that carries a password) rather than at the first flush.
                WriteBehind.Engine.Store.StoreFactory.Validate(options.Store, options.StoreUser);
                new KeyNames(options.KeyPrefix);
            }
            catch (WriteBehindException ex)
            {
                ThrowTerminatingError(new ErrorRecord(ex, ex.ErrorId, WriteBehindCmdlet.CategoryOf(ex.ErrorId), WriteBehind.Engine.Store.StoreFactory.Display(Store)));
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
            ConnectionRegistry.SetDefault(connection);
            WriteVerbose($"Connected to Redis at {connection.RedisEndpoint}; store {connection.StoreUri}; key prefix '{connection.Keys.Prefix}'.");
            if (PassThru) WriteObject(connection);
        }
    }
}
