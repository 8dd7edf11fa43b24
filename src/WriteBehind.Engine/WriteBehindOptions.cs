using System;
using System.Globalization;
using System.IO;

namespace WriteBehind.Engine
{
    public enum BackpressurePolicy { Fail, Block }

    /// <summary>Where the cache, queue and store are, and the limits. Built by Connect-WriteBehind or from
    /// the environment (WRITEBEHIND_REDIS, WRITEBEHIND_STORE, WRITEBEHIND_STORE_USER, WRITEBEHIND_STORE_PASSWORD, WRITEBEHIND_KEY_PREFIX, WRITEBEHIND_HIGH_WATER_MARK).</summary>
    public sealed class WriteBehindOptions
    {
        public const string DefaultRedis = "localhost:6379";
        public const long DefaultHighWaterMark = 10_000_000;

        /// <summary>A StackExchange.Redis configuration string (endpoints and options). May hold a
        /// password; it is never printed.</summary>
        public string Redis { get; set; } = DefaultRedis;
        public string RedisUser { get; set; }
        public string RedisPassword { get; set; }
        /// <summary>Store URI: <c>sqlite:///abs/path.db</c>, <c>sqlite:relative.db</c>, a plain path, or
        /// <c>postgres://user@host:port/database?sslmode=require</c> (never with a password).</summary>
        public string Store { get; set; } = DefaultStoreUri;
        /// <summary>The store server's user (PostgreSQL); wins over a user in the URI. From -StoreCredential or WRITEBEHIND_STORE_USER.</summary>
        public string StoreUser { get; set; }
        /// <summary>The store server's password, in memory only; never printed. From -StoreCredential or WRITEBEHIND_STORE_PASSWORD.</summary>
        public string StorePassword { get; set; }
        public string KeyPrefix { get; set; } = string.Empty;
        /// <summary>Producers fail with QueueFull when the queue would pass this depth (0: unbounded).</summary>
        public long HighWaterMark { get; set; } = DefaultHighWaterMark;
        public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);
        /// <summary>What a producer does at the high-water mark: fail at once (QueueFull), or wait for the
        /// flush to make room for up to <see cref="BackpressureTimeout"/>, then fail.</summary>
        public BackpressurePolicy Backpressure { get; set; } = BackpressurePolicy.Fail;
        public TimeSpan BackpressureTimeout { get; set; } = TimeSpan.FromSeconds(30);

        /// <summary>The default store file: &lt;LocalApplicationData&gt;/WriteBehind/writebehind.db
        /// (~/.local/share/WriteBehind/writebehind.db on Linux, %LOCALAPPDATA%\WriteBehind\writebehind.db on Windows).</summary>
        public static string DefaultStorePath =>
            Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.DoNotVerify),
                         "WriteBehind", "writebehind.db");

        public static string DefaultStoreUri => "sqlite://" + (DefaultStorePath.StartsWith("/") ? "" : "/") + DefaultStorePath.Replace('\\', '/');

        public static WriteBehindOptions FromEnvironment()
        {
            var o = new WriteBehindOptions();
            string redis = Environment.GetEnvironmentVariable("WRITEBEHIND_REDIS");
            if (!string.IsNullOrWhiteSpace(redis)) o.Redis = redis;
            string store = Environment.GetEnvironmentVariable("WRITEBEHIND_STORE");
            if (!string.IsNullOrWhiteSpace(store)) o.Store = store;
            string storeUser = Environment.GetEnvironmentVariable("WRITEBEHIND_STORE_USER");
            if (!string.IsNullOrEmpty(storeUser)) o.StoreUser = storeUser;
            string storePassword = Environment.GetEnvironmentVariable("WRITEBEHIND_STORE_PASSWORD");
            if (!string.IsNullOrEmpty(storePassword)) o.StorePassword = storePassword;
            string prefix = Environment.GetEnvironmentVariable("WRITEBEHIND_KEY_PREFIX");
            if (!string.IsNullOrEmpty(prefix)) o.KeyPrefix = prefix;
            string hw = Environment.GetEnvironmentVariable("WRITEBEHIND_HIGH_WATER_MARK");
            if (!string.IsNullOrWhiteSpace(hw))
            {
                if (!long.TryParse(hw, NumberStyles.None, CultureInfo.InvariantCulture, out long mark))
                    throw new WriteBehindException(ErrorIds.InvalidConfiguration, "WRITEBEHIND_HIGH_WATER_MARK must be a non-negative integer.");
                o.HighWaterMark = mark;
            }
            return o;
        }

        public WriteBehindOptions Clone() => (WriteBehindOptions)MemberwiseClone();
    }
}
