// The write queue in Redis: enqueueing items to their partitions, clearing, depth, listing, and waiting for items.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;

namespace WriteBehind.Engine.Queue
{
    /// <summary>The queue lists of every partition: an item goes to its user id's partition (LPUSH by the
    /// enqueue script, held to the high-water mark), the flush takes from the right. Waiting for items
    /// blocks on a connection of its own, opened on first use and closed with this queue.</summary>
    internal sealed class WriteQueue : IDisposable
    {
        private readonly RedisSession _redis;
        private ConnectionMultiplexer _waiter;

        public WriteQueue(RedisSession redis)
        {
            _redis = redis;
        }

        private KeyLayout Layout => _redis.Layout;

        /// <summary>The queue an item goes to: its user id's partition (an item with no readable id: the first).</summary>
        public string QueueOf(string item) => Layout.Count == 1 ? _redis.Keys.Queue : Layout.Partitions[PartitionOf(item)].Queue;

        /// <summary>The partition index of an item's queue.</summary>
        public int PartitionOf(string item)
        {
            if (Layout.Count == 1) return 0;
            string id = QueueItem.RoutingUserIdOf(item);
            return id == null ? 0 : KeyLayout.IndexOf(id, Layout.Count);
        }

        /// <summary>LPUSHes items (already checked against the grammar) to their partitions' queues. Returns
        /// the depth after of the last queue written.</summary>
        public async Task<long> EnqueueAsync(IReadOnlyList<string> items, bool pipelined = false, CancellationToken cancellationToken = default)
        {
            var refusals = new PartitionRefusals(items.Count);
            var depths = await Task.WhenAll(_redis.ByPartition(items, QueueItem.RoutingUserIdOf).Select(group => refusals.Run(group.Value, async () =>
            {
                var keys = group.Key;
                var args = EnqueueArgs(items, group.Value, _redis.HighWater);
                long depth = await _redis.ProduceAsync(async db => (long)await Scripts.Enqueue.EvaluateAsync(db, new RedisKey[] { keys.Queue, keys.PendingAge }, args, pipelined).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
                await _redis.EnsureReplicatedAsync(keys.Queue, "the queued items").ConfigureAwait(false);
                return depth;
            }))).ConfigureAwait(false);
            long last = depths.Length == 0 ? 0 : depths[depths.Length - 1];
            refusals.ThrowIfAny(last);
            return last;
        }

        // enqueue.lua's ARGV for one partition's items (a loop over every record of a chunk).
        [MethodImpl(HotPath.Optimize)]
        private static RedisValue[] EnqueueArgs(IReadOnlyList<string> items, List<int> positions, RedisValue highWater)
        {
            var args = new RedisValue[1 + positions.Count];
            args[0] = highWater;
            for (int i = 0; i < positions.Count; i++) args[1 + i] = items[positions[i]];
            return args;
        }

        /// <summary>Drops every pending item (not the in-flight leases). Returns how many were dropped.</summary>
        public async Task<long> ClearAsync()
        {
            long dropped = 0;
            foreach (var keys in Layout.Partitions)
                dropped += await _redis.RunAsync(async db => (long)await Scripts.ClearQueue.EvaluateAsync(db, new RedisKey[] { keys.Queue, keys.PendingAge }, Array.Empty<RedisValue>()).ConfigureAwait(false)).ConfigureAwait(false);
            return dropped;
        }

        /// <summary>Items waiting in every partition's queue.</summary>
        public async Task<long> GetDepthAsync()
        {
            if (Layout.Count == 1) return await _redis.RunAsync(db => db.ListLengthAsync(_redis.Keys.Queue)).ConfigureAwait(false);
            var depths = await _redis.RunAsync(db => Task.WhenAll(Layout.Partitions.Select(p => db.ListLengthAsync(p.Queue)))).ConfigureAwait(false);
            return depths.Sum();
        }

        /// <summary>The pending items, oldest first (partition by partition).</summary>
        public Task<string[]> GetItemsAsync(long max) =>
            _redis.RunAsync(async db =>
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

        /// <summary>Blocks until the queue holds an item or the timeout passes, and takes nothing: BLMOVE from
        /// the queue's right end to its right end leaves the list as it was. It runs on a connection of its
        /// own (opened on first use), because a blocking command would stall every other command sharing one.</summary>
        public async Task<bool> WaitForItemsAsync(TimeSpan timeout)
        {
            if (Layout.Count > 1)
            {
                // A blocking command waits on keys of one slot only: with several partitions, look every 100 ms.
                var poll = new Backoff(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(100), timeout);
                while (true)
                {
                    if (await GetDepthAsync().ConfigureAwait(false) > 0) return true;
                    if (!poll.CanRetry) return false;
                    await poll.WaitAsync().ConfigureAwait(false);
                }
            }
            if (_waiter == null)
            {
                var waiterConfig = _redis.Config.Clone();
                waiterConfig.ClientName = "WriteBehind-wait";
                _waiter = await RedisConnector.ConnectAsync(waiterConfig, _redis.Endpoint, _redis.Options, null, checkRefused: false).ConfigureAwait(false);
            }
            var waiter = _waiter;
            try
            {
                var r = await waiter.GetDatabase().ExecuteAsync("BLMOVE", (RedisKey)_redis.Keys.Queue, (RedisKey)_redis.Keys.Queue, "RIGHT", "RIGHT",
                    Math.Max(0.01, timeout.TotalSeconds).ToString("0.###", CultureInfo.InvariantCulture)).ConfigureAwait(false);
                return !r.IsNull;
            }
            catch (Exception ex) when (_redis.Errors.Translate(ex) is WriteBehindException translated)
            {
                throw translated;
            }
        }

        public void Dispose() => _waiter?.Dispose();
    }
}
