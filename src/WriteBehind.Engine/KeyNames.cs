using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Text;

namespace WriteBehind.Engine
{
    /// <summary>The Redis keys of one partition, derived from one prefix. With one partition and no prefix
    /// the cache and queue are exactly the seed's <c>user_profiles</c> and <c>write_queue</c>; a prefix such
    /// as <c>{wb}</c> (a Redis Cluster hash tag) or <c>app1:</c> moves all of them at once. Partition k of
    /// several adds the hash tag <c>{k}</c> to each of its keys (<c>write_queue{3}</c>), so every script
    /// runs on keys of one cluster slot.</summary>
    public sealed class KeyNames
    {
        /// <summary>The keys of the single, untagged partition under <paramref name="prefix"/> (null: none).</summary>
        public KeyNames(string prefix = null) : this(prefix, -1) { }

        /// <param name="partition">-1 for the single, untagged partition; else the partition's index.</param>
        /// <param name="prefix">Prepended to every key ("" or null: the seed's names).</param>
        public KeyNames(string prefix, int partition)
        {
            Prefix = prefix ?? string.Empty;
            if (Prefix.IndexOfAny(new[] { ' ', '\r', '\n', '\t' }) >= 0)
                throw new ArgumentException("The key prefix must not contain whitespace.", nameof(prefix));
            Partition = Math.Max(partition, 0);
            string tag = partition < 0 ? string.Empty : "{" + partition.ToString(System.Globalization.CultureInfo.InvariantCulture) + "}";
            Tag = tag;
            Cache = Prefix + "user_profiles" + tag;
            Queue = Prefix + "write_queue" + tag;
            Versions = Prefix + "user_profiles:versions" + tag;
            Leases = Prefix + "write_queue:leases" + tag;
            LeasePrefix = Prefix + "write_queue:lease" + tag + ":";
            DeadLetters = Prefix + "write_queue:dead" + tag;
            DeadLetterInfo = Prefix + "write_queue:dead:info" + tag;
            Owner = Prefix + "write_queue:owner" + tag;
            PendingAge = Prefix + "write_queue:pending" + tag;
            Redo = Prefix + "write_queue:redo" + tag;
            Stats = Prefix + "write_queue:stats";
            Paused = Prefix + "write_queue:paused";
        }

        /// <summary>The key prefix every key starts with ("" for none).</summary>
        public string Prefix { get; }
        /// <summary>This partition's index (0 for the single partition).</summary>
        public int Partition { get; }
        /// <summary>The hash tag on this partition's keys ("" for the single partition).</summary>
        public string Tag { get; }
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
        /// <summary>STRING: the flusher that owns this partition now (with an expiry); only with several partitions.</summary>
        public string Owner { get; }
        /// <summary>HASH: when the oldest pending item was pushed at the latest (<c>since</c>, ms on Redis's clock),
        /// and a checkpoint (<c>mark</c>, <c>left</c>) the lease script advances it by; written by the scripts.</summary>
        public string PendingAge { get; }
        /// <summary>HASH: the states a script cut short by a server crash had started to write (redo.lua);
        /// empty between scripts otherwise.</summary>
        public string Redo { get; }
        /// <summary>HASH of the last flush's figures (one for all partitions, written outside scripts).</summary>
        public string Stats { get; }
        /// <summary>HASH (present only while paused): since (ms), reason, by. Every flusher honours it at its next batch boundary.</summary>
        public string Paused { get; }

        /// <summary>The hash field of a profile in <see cref="Cache"/> and <see cref="Versions"/>.</summary>
        [MethodImpl(HotPath.Optimize)]
        public static string Field(string userId) => "user:" + userId;
    }

    /// <summary>All partitions of a deployment. A profile id belongs to partition
    /// <c>FNV-1a-32(UTF-8 bytes of the id) mod N</c>; the lease script checks the same function in Lua.</summary>
    public sealed class KeyLayout
    {
        /// <summary>The most partitions a deployment may have.</summary>
        public const int MaxPartitions = 1024;

        /// <summary>The keys of <paramref name="partitions"/> partitions under <paramref name="prefix"/>; refuses a count out of range or a prefix with a hash tag when there are several.</summary>
        public KeyLayout(string prefix, int partitions)
        {
            if (partitions < 1 || partitions > MaxPartitions)
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, $"Partitions must be between 1 and {MaxPartitions}.");
            prefix = prefix ?? string.Empty;
            if (partitions > 1 && prefix.IndexOf('{') >= 0 && prefix.IndexOf('}') > prefix.IndexOf('{'))
                throw new WriteBehindException(ErrorIds.InvalidConfiguration,
                    "A key prefix with a hash tag ({...}) would put every partition into one Redis Cluster slot: use a prefix without braces with -Partitions.");
            Prefix = prefix;
            var list = new KeyNames[partitions];
            for (int i = 0; i < partitions; i++) list[i] = partitions == 1 ? new KeyNames(prefix) : new KeyNames(prefix, i);
            Partitions = list;
            LayoutKey = prefix + "write_queue:partitions";
        }

        /// <summary>The key prefix every key starts with ("" for none).</summary>
        public string Prefix { get; }
        /// <summary>Each partition's keys, by index.</summary>
        public IReadOnlyList<KeyNames> Partitions { get; }
        /// <summary>How many partitions the profiles are spread over (1: the seed's key names).</summary>
        public int Count => Partitions.Count;
        /// <summary>STRING: the partition count every client of this prefix must use (written when it is above 1).</summary>
        public string LayoutKey { get; }
        /// <summary>The flush statistics hash, one for all partitions.</summary>
        public string Stats => Partitions[0].Stats;
        /// <summary>The pause key, one for all partitions.</summary>
        public string Paused => Partitions[0].Paused;
        /// <summary>The queue's name for messages: <c>write_queue</c>, or <c>write_queue{0..15}</c> for all partitions.</summary>
        public string QueueName => Count == 1 ? Partitions[0].Queue : Prefix + "write_queue{0.." + (Count - 1) + "}";
        /// <summary>The dead-letter list's name for messages, like <see cref="QueueName"/>.</summary>
        public string DeadLettersName => Count == 1 ? Partitions[0].DeadLetters : Prefix + "write_queue:dead{0.." + (Count - 1) + "}";

        /// <summary>The keys of the partition <paramref name="userId"/> belongs to.</summary>
        public KeyNames Of(string userId) => Partitions[IndexOf(userId, Count)];

        /// <summary>The partition of <paramref name="userId"/> among <paramref name="partitions"/>: FNV-1a-32 of its UTF-8 bytes, modulo the count.</summary>
        public static int IndexOf(string userId, int partitions)
        {
            if (partitions <= 1) return 0;
            return (int)(Fnv1a(userId) % (uint)partitions);
        }

        /// <summary>The 32-bit FNV-1a hash of the UTF-8 bytes of <paramref name="s"/> (null as empty), as the lease script computes it.</summary>
        public static uint Fnv1a(string s)
        {
            unchecked
            {
                uint h = 2166136261;
                foreach (byte b in Encoding.UTF8.GetBytes(s ?? string.Empty))
                {
                    h ^= b;
                    h *= 16777619;
                }
                return h;
            }
        }
    }
}
