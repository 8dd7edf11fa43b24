using System;
using System.Globalization;
using System.IO;

namespace WriteBehind.Engine
{
    /// <summary>What a producer does when the queue is at the high-water mark.</summary>
    public enum BackpressurePolicy
    {
        /// <summary>Fail at once with QueueFull.</summary>
        Fail,
        /// <summary>Wait for the flush to make room, up to the backpressure timeout, then fail with QueueFull.</summary>
        Block,
    }

    /// <summary>Where the cache, queue and store are, and the limits. Built by Connect-WriteBehind or from
    /// the environment (WRITEBEHIND_REDIS, WRITEBEHIND_REDIS_USER, WRITEBEHIND_REDIS_PASSWORD, WRITEBEHIND_REDIS_TLS,
    /// WRITEBEHIND_REDIS_CA, WRITEBEHIND_STORE, WRITEBEHIND_STORE_USER, WRITEBEHIND_STORE_PASSWORD, WRITEBEHIND_KEY_PREFIX,
    /// WRITEBEHIND_HIGH_WATER_MARK, WRITEBEHIND_PARTITIONS, WRITEBEHIND_REPLICA_ACKS).
    /// The passwords are kept out of every public property: <see cref="Redis"/> never holds the Redis one (a
    /// <c>password=</c> from the environment is moved out of the string), and <see cref="ToString"/> names no secret.</summary>
    public sealed class WriteBehindOptions
    {
        /// <summary>The Redis configuration string used when none is given.</summary>
        public const string DefaultRedis = "localhost:6379";
        /// <summary>The high-water mark used when none is given (10 million items).</summary>
        public const long DefaultHighWaterMark = 10_000_000;

        /// <summary>A StackExchange.Redis configuration string (endpoints and options), without a password:
        /// <see cref="FromEnvironment"/> moves a <c>password=</c>/<c>user=</c> of WRITEBEHIND_REDIS into
        /// <see cref="RedisUser"/> and the (internal) password, and Connect-WriteBehind refuses a -Redis that holds one.</summary>
        public string Redis { get; set; } = DefaultRedis;
        /// <summary>The Redis ACL user to authenticate as (null: the default user).</summary>
        public string RedisUser { get; set; }
        /// <summary>Internal on purpose: the options object is reachable from PowerShell
        /// (<c>$connection.Options</c>), and no property there may show the password.</summary>
        internal string RedisPassword { get; set; }
        /// <summary>Whether a Redis password is set (the password itself is not readable here).</summary>
        public bool HasRedisPassword => !string.IsNullOrEmpty(RedisPassword);
        /// <summary>Connect to Redis over TLS (also on when the configuration string says <c>ssl=true</c>).</summary>
        public bool UseTls { get; set; }
        /// <summary>Path of a PEM or DER file with the CA certificate(s) the server certificate must chain to
        /// (instead of the system's trust store).</summary>
        public string TlsCaCertificate { get; set; }
        /// <summary>The name the server certificate must carry (default: the endpoint's host).</summary>
        public string TlsHostName { get; set; }
        /// <summary>Accept any server certificate (TLS without authentication of the server).</summary>
        public bool SkipCertificateCheck { get; set; }
        /// <summary>Store URI: <c>sqlite:///abs/path.db</c>, <c>sqlite:relative.db</c>, a plain path, or
        /// <c>postgres://user@host:port/database?sslmode=require</c> (never with a password).</summary>
        public string Store { get; set; } = DefaultStoreUri;
        /// <summary>The store server's user (PostgreSQL); wins over a user in the URI. From -StoreCredential or WRITEBEHIND_STORE_USER.</summary>
        public string StoreUser { get; set; }
        /// <summary>The store server's password, in memory only; never printed. From -StoreCredential or WRITEBEHIND_STORE_PASSWORD.</summary>
        internal string StorePassword { get; set; }
        /// <summary>Whether a store password is set (the password itself is not readable here).</summary>
        public bool HasStorePassword => !string.IsNullOrEmpty(StorePassword);
        /// <summary>The application's own table to flush into (null: the module's own user_profiles table).</summary>
        public Store.StoreMapping StoreMapping { get; set; }
        /// <summary>Prepended to every Redis key ("" for the seed's names; e.g. {wb} for a Redis Cluster hash tag).</summary>
        public string KeyPrefix { get; set; } = string.Empty;
        /// <summary>Producers fail with QueueFull when the queue would pass this depth (0: unbounded).</summary>
        public long HighWaterMark { get; set; } = DefaultHighWaterMark;
        /// <summary>How long connecting to Redis may take before it fails with RedisUnavailable.</summary>
        public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);
        /// <summary>What a producer does at the high-water mark: fail at once (QueueFull), or wait for the
        /// flush to make room for up to <see cref="BackpressureTimeout"/>, then fail.</summary>
        public BackpressurePolicy Backpressure { get; set; } = BackpressurePolicy.Fail;
        /// <summary>How long a producer waits for room under <see cref="BackpressurePolicy.Block"/> before it fails with QueueFull.</summary>
        public TimeSpan BackpressureTimeout { get; set; } = TimeSpan.FromSeconds(30);
        /// <summary>How many partitions the profiles are spread over (1: the seed's key names; several: one
        /// hash tag per partition, for Redis Cluster). Every client of one prefix must use the same count.</summary>
        public int Partitions { get; set; } = 1;
        /// <summary>Replicas that must acknowledge (Redis WAIT) a producer's write before it returns, and a
        /// lease's changes before the store sees them (0: do not wait; Redis's asynchronous replication).</summary>
        public int ReplicaAcks { get; set; }
        /// <summary>How long to wait for those acknowledgements before failing with ReplicationTimeout.</summary>
        public TimeSpan ReplicaTimeout { get; set; } = TimeSpan.FromSeconds(2);

        /// <summary>The default store file: &lt;LocalApplicationData&gt;/WriteBehind/writebehind.db
        /// (~/.local/share/WriteBehind/writebehind.db on Linux, %LOCALAPPDATA%\WriteBehind\writebehind.db on Windows).</summary>
        public static string DefaultStorePath =>
            Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify),
                         "WriteBehind", "writebehind.db");

        /// <summary>The default store as a URI: <c>sqlite://</c> and <see cref="DefaultStorePath"/>.</summary>
        public static string DefaultStoreUri => "sqlite://" + (DefaultStorePath.StartsWith("/") ? "" : "/") + DefaultStorePath.Replace('\\', '/');

        /// <summary>Options read from the WRITEBEHIND_* environment variables, defaults for those not set; throws InvalidConfiguration for a malformed value.</summary>
        public static WriteBehindOptions FromEnvironment()
        {
            var o = new WriteBehindOptions();
            string redis = Environment.GetEnvironmentVariable("WRITEBEHIND_REDIS");
            if (!string.IsNullOrWhiteSpace(redis))
            {
                // The environment is an allowed source of a password: take it out of the string.
                o.Redis = RedisSecrets.Split(redis, out string user, out string password);
                if (user != null) o.RedisUser = user;
                if (password != null) o.RedisPassword = password;
            }
            string redisUser = Environment.GetEnvironmentVariable("WRITEBEHIND_REDIS_USER");
            if (!string.IsNullOrEmpty(redisUser)) o.RedisUser = redisUser;
            string redisPassword = Environment.GetEnvironmentVariable("WRITEBEHIND_REDIS_PASSWORD");
            if (!string.IsNullOrEmpty(redisPassword)) o.RedisPassword = redisPassword;
            string tls = Environment.GetEnvironmentVariable("WRITEBEHIND_REDIS_TLS");
            if (!string.IsNullOrWhiteSpace(tls))
            {
                switch (tls.Trim().ToLowerInvariant())
                {
                    case "true": case "1": case "yes": o.UseTls = true; break;
                    case "false": case "0": case "no": o.UseTls = false; break;
                    default: throw new WriteBehindException(ErrorIds.InvalidConfiguration, "WRITEBEHIND_REDIS_TLS must be true or false.");
                }
            }
            string ca = Environment.GetEnvironmentVariable("WRITEBEHIND_REDIS_CA");
            if (!string.IsNullOrWhiteSpace(ca)) { o.TlsCaCertificate = ca; o.UseTls = o.UseTls || string.IsNullOrWhiteSpace(tls); }
            string store = Environment.GetEnvironmentVariable("WRITEBEHIND_STORE");
            if (!string.IsNullOrWhiteSpace(store)) o.Store = store;
            string storeUser = Environment.GetEnvironmentVariable("WRITEBEHIND_STORE_USER");
            if (!string.IsNullOrEmpty(storeUser)) o.StoreUser = storeUser;
            string storePassword = Environment.GetEnvironmentVariable("WRITEBEHIND_STORE_PASSWORD");
            if (!string.IsNullOrEmpty(storePassword)) o.StorePassword = storePassword;
            string prefix = Environment.GetEnvironmentVariable("WRITEBEHIND_KEY_PREFIX");
            if (!string.IsNullOrEmpty(prefix)) o.KeyPrefix = prefix;
            o.HighWaterMark = IntegerFromEnvironment("WRITEBEHIND_HIGH_WATER_MARK", o.HighWaterMark);
            o.Partitions = (int)IntegerFromEnvironment("WRITEBEHIND_PARTITIONS", o.Partitions, int.MaxValue);
            o.ReplicaAcks = (int)IntegerFromEnvironment("WRITEBEHIND_REPLICA_ACKS", o.ReplicaAcks, int.MaxValue);
            return o;
        }

        private static long IntegerFromEnvironment(string name, long fallback, long max = long.MaxValue)
        {
            string text = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrWhiteSpace(text)) return fallback;
            if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value) || value > max)
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, name + " must be a non-negative integer.");
            return value;
        }

        /// <summary>A copy to change without touching this one (the passwords are copied too).</summary>
        public WriteBehindOptions Clone() => (WriteBehindOptions)MemberwiseClone();

        /// <summary>Names no secret: the configuration string (which holds no password) and the store.</summary>
        public override string ToString() =>
            $"Redis {Redis}{(UseTls ? " (TLS)" : "")}{(RedisUser != null ? " as " + RedisUser : "")}{(HasRedisPassword ? " with a password" : "")}; store {Store}";
    }
}
