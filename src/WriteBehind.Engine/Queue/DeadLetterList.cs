// The dead-letter lists in Redis: reading entries with their reasons, and restoring or removing them.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;

namespace WriteBehind.Engine.Queue
{
    /// <summary>Each partition's dead-letter list (the original item text, byte for byte) and its info hash
    /// (attempts, first and last failure, reason). Restoring puts an item back on its own partition's queue;
    /// the dead_letters script takes entries out by their exact bytes.</summary>
    internal sealed class DeadLetterList
    {
        private readonly RedisSession _redis;
        private readonly WriteQueue _queue;

        public DeadLetterList(RedisSession redis, WriteQueue queue)
        {
            _redis = redis;
            _queue = queue;
        }

        private KeyLayout Layout => _redis.Layout;

        /// <summary>What dead_letters.lua (its <c>TAKEN</c>) writes over the entries it takes before one LREM drops
        /// them all; a server crash between the two can leave some behind, which readers skip and the next
        /// restore or remove drops.</summary>
        internal const string Taken = "\0WriteBehind: dead letter taken\0";

        /// <summary>Up to <paramref name="max"/> entries, oldest first, partition by partition.</summary>
        public async Task<DeadLetter[]> GetAsync(long max)
        {
            return await _redis.RunAsync(async db =>
            {
                var result = new List<DeadLetter>();
                foreach (var keys in Layout.Partitions)
                {
                    if (result.Count >= max) break;
                    long want = max == long.MaxValue ? -1 : max - result.Count - 1;
                    // LPUSHed: the left end holds the newest, the right end the oldest
                    var items = await db.ListRangeAsync(keys.DeadLetters, 0, want).ConfigureAwait(false);
                    if (Array.IndexOf(items, (RedisValue)Taken) >= 0) items = items.Where(i => i != Taken).ToArray();
                    Array.Reverse(items);
                    var infos = items.Length == 0 ? Array.Empty<RedisValue>() : await db.HashGetAsync(keys.DeadLetterInfo, items).ConfigureAwait(false);
                    for (int i = 0; i < items.Length; i++) result.Add(Parse(result.Count, keys.Partition, items[i], infos[i]));
                }
                return result.ToArray();
            }).ConfigureAwait(false);
        }

        /// <summary>What Restore-WriteBehindDeadLetter pushes back for an entry: a poison item as it was; for
        /// the items of a row the store refused <c>set:user:&lt;id&gt;</c> (persist the cached state), because
        /// their effect is already in the cache and must not be merged again.</summary>
        public static string RequeueTextOf(DeadLetter entry)
        {
            if (entry.Reason != null && entry.Reason.StartsWith("store rejected", StringComparison.Ordinal))
                return "set:user:" + QueueItem.RoutingUserIdOf(entry.Item);
            return entry.Item;
        }

        /// <summary>Takes entries out of their dead-letter lists, requeueing them when <paramref name="restore"/>
        /// is set. Returns per entry whether it was found.</summary>
        public async Task<bool[]> TakeAsync(IReadOnlyList<DeadLetter> entries, bool restore)
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
                    if (restore && Layout.Count > 1 && _queue.PartitionOf(text) != keys.Partition)
                    {
                        await _queue.EnqueueAsync(new[] { text }).ConfigureAwait(false);
                        var taken = await TakeAsync(keys, new[] { entries[i] }, restore: false).ConfigureAwait(false);
                        found[i] = taken[0];
                    }
                    else here.Add(i);
                }
                if (here.Count == 0) continue;
                var result = await TakeAsync(keys, here.Select(i => entries[i]).ToList(), restore).ConfigureAwait(false);
                for (int j = 0; j < here.Count; j++) found[here[j]] = result[j];
            }
            return found;
        }

        private Task<bool[]> TakeAsync(KeyNames keys, IReadOnlyList<DeadLetter> entries, bool restore)
        {
            var args = new RedisValue[1 + entries.Count * 2];
            args[0] = restore ? "restore" : "remove";
            for (int i = 0; i < entries.Count; i++)
            {
                args[1 + 2 * i] = entries[i].ItemBytes ?? (RedisValue)entries[i].Item;
                args[2 + 2 * i] = restore ? RequeueTextOf(entries[i]) : string.Empty;
            }
            var scriptKeys = new RedisKey[] { keys.DeadLetters, keys.DeadLetterInfo, keys.Queue, keys.PendingAge };
            return _redis.RunAsync(async db =>
                ((long[])await Scripts.DeadLetters.EvaluateAsync(db, scriptKeys, args).ConfigureAwait(false)).Select(n => n == 1).ToArray());
        }

        /// <summary>An entry from its item and its info ("attempts|first ms|last ms|reason", when there is one).</summary>
        private static DeadLetter Parse(long index, int partition, RedisValue item, RedisValue info)
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
    }
}
