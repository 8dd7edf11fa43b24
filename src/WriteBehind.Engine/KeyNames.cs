using System;

namespace WriteBehind.Engine
{
    /// <summary>Every Redis key the module uses, derived from one prefix. With no prefix the cache and
    /// queue are exactly the seed's <c>user_profiles</c> and <c>write_queue</c>; a prefix such as
    /// <c>{wb}</c> (a Redis Cluster hash tag) or <c>app1:</c> moves all of them at once.</summary>
    public sealed class KeyNames
    {
        public KeyNames(string prefix = null)
        {
            Prefix = prefix ?? string.Empty;
            if (Prefix.IndexOfAny(new[] { ' ', '\r', '\n', '\t' }) >= 0)
                throw new ArgumentException("The key prefix must not contain whitespace.", nameof(prefix));
            Cache = Prefix + "user_profiles";
            Queue = Prefix + "write_queue";
            Versions = Prefix + "user_profiles:versions";
            Leases = Prefix + "write_queue:leases";
            LeasePrefix = Prefix + "write_queue:lease:";
            DeadLetters = Prefix + "write_queue:dead";
            DeadLetterInfo = Prefix + "write_queue:dead:info";
            Stats = Prefix + "write_queue:stats";
        }

        public string Prefix { get; }
        /// <summary>HASH: field <c>user:&lt;id&gt;</c> → profile JSON text.</summary>
        public string Cache { get; }
        /// <summary>LIST of pending items; producers LPUSH, the flush takes from the right.</summary>
        public string Queue { get; }
        /// <summary>HASH: field <c>user:&lt;id&gt;</c> → version (kept after a delete: the tombstone).</summary>
        public string Versions { get; }
        /// <summary>ZSET: lease key → expiry (ms since the Unix epoch).</summary>
        public string Leases { get; }
        /// <summary>Prefix of the LIST that holds one flusher's in-flight items.</summary>
        public string LeasePrefix { get; }
        /// <summary>LIST of dead-lettered items, each the original text byte for byte.</summary>
        public string DeadLetters { get; }
        /// <summary>HASH: dead item text → "attempts|first ms|last ms|reason".</summary>
        public string DeadLetterInfo { get; }
        /// <summary>HASH of the last flush's figures.</summary>
        public string Stats { get; }

        public static string Field(string userId) => "user:" + userId;
    }
}
