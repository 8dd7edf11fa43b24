// Get-WriteBehindStatus's numbers: depth, in flight, leases, dead letters, lag and flush totals, per partition and summed.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;
using WriteBehind.Engine.Store;

namespace WriteBehind.Engine.Status
{
    /// <summary>Builds a <see cref="WriteBehindStatus"/>: every partition's queue, leases, dead letters,
    /// cache size, owner and oldest pending item (one batch and one script each), the shared flush
    /// counters and pause, and, when asked, the store's row count.</summary>
    internal sealed class StatusReader
    {
        private readonly RedisSession _redis;
        private readonly FlushSwitch _pause;
        private readonly Func<IProfileStore> _store;
        private readonly string _storeUri;

        public StatusReader(RedisSession redis, FlushSwitch pause, Func<IProfileStore> store, string storeUri)
        {
            _redis = redis;
            _pause = pause;
            _store = store;
            _storeUri = storeUri;
        }

        public async Task<WriteBehindStatus> GetStatusAsync(bool includeStore, CancellationToken cancellationToken)
        {
            var layout = _redis.Layout;
            var status = await _redis.RunAsync(async db =>
            {
                var stats = db.HashGetAllAsync(layout.Stats);
                var pause = _pause.ReadAsync(db);
                var parts = await Task.WhenAll(layout.Partitions.Select(keys => PartitionStatusAsync(db, keys))).ConfigureAwait(false);
                var s = (await stats.ConfigureAwait(false)).ToDictionary(e => (string)e.Name, e => e.Value);
                var paused = await pause.ConfigureAwait(false);
                var st = new WriteBehindStatus
                {
                    Redis = _redis.Endpoint,
                    Store = _storeUri,
                    KeyPrefix = _redis.Keys.Prefix,
                    Partitions = layout.Count,
                    PartitionDetails = parts,
                    QueueDepth = parts.Sum(p => p.QueueDepth),
                    DeadLetters = parts.Sum(p => p.DeadLetters),
                    CachedProfiles = parts.Sum(p => p.CachedProfiles),
                    Leases = parts.Sum(p => p.Leases),
                    ExpiredLeases = parts.Sum(p => p.ExpiredLeases),
                    InFlight = parts.Sum(p => p.InFlight),
                    HighWaterMark = _redis.Options.HighWaterMark,
                    Totals = TotalsOf(s),
                    Paused = paused.Paused,
                    PausedSince = paused.Since,
                    PausedReason = paused.Reason,
                };
                if (s.TryGetValue("lastFlushMs", out var ms) && ms.TryParse(out long lastMs)) st.LastFlushDuration = TimeSpan.FromMilliseconds(lastMs);
                if (s.TryGetValue("lastFlushAt", out var at)) st.LastFlushAt = DateTimeOffset.FromUnixTimeMilliseconds((long)at);
                if (s.TryGetValue("lastFlushDequeued", out var dq)) st.LastFlushDequeued = (long)dq;
                if (s.TryGetValue("lastFlushRate", out var rate)) st.LastFlushItemsPerSecond = double.Parse((string)rate, CultureInfo.InvariantCulture);
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
                    var store = _store();
                    status.Store = store.Description;
                    status.StoredProfiles = await store.CountAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is StoreException || ex is WriteBehindException) { status.StoredProfiles = null; }
            }
            return status;
        }

        /// <summary>The flush counters the flushers add to (the stats hash's total* fields).</summary>
        public static FlushTotals TotalsOf(IReadOnlyDictionary<string, RedisValue> stats)
        {
            long Get(string name) => stats.TryGetValue(name, out var v) && v.TryParse(out long n) ? n : 0;
            return new FlushTotals
            {
                Dequeued = Get("totalDequeued"),
                Persisted = Get("totalPersisted"),
                Coalesced = Get("totalCoalesced"),
                DeadLettered = Get("totalDeadLettered"),
                Recovered = Get("totalRecovered"),
                FlushErrors = Get("totalFlushErrors"),
            };
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
    }
}
