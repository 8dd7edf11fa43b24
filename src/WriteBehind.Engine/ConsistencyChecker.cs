using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;

namespace WriteBehind.Engine
{
    /// <summary>How a profile's cache and store states differ (Test-WriteBehindConsistency).</summary>
    public enum DriftKind
    {
        /// <summary>The cache has the profile; the store has no row for it.</summary>
        MissingInStore,
        /// <summary>The store's row is older than (or differs from) the cache's state.</summary>
        StaleInStore,
        /// <summary>The cache deleted the profile (a newer tombstone); the store still has it live.</summary>
        DeletedInCacheButInStore,
        /// <summary>The store holds a newer version than the cache knows (the cache lost data).</summary>
        StoreAheadOfCache,
    }

    /// <summary>One profile whose cache and store states differ.</summary>
    public sealed class DriftRecord
    {
        /// <summary>The user id (without the <c>user:</c> of its cache field).</summary>
        public string UserId { get; set; }
        /// <summary>How the two states differ.</summary>
        public DriftKind Kind { get; set; }
        /// <summary>The version the cache knows (0 when it never had one).</summary>
        public long CacheVersion { get; set; }
        /// <summary>The version the store holds (null when it has no row).</summary>
        public long? StoreVersion { get; set; }
        /// <summary>The id has items in the queue or in flight, so the drift may be the flush not done yet.</summary>
        public bool Pending { get; set; }
        /// <summary>True when -Repair fixed it: queued a persist of the cached state, or read the store's newer copy back into the cache.</summary>
        public bool Repaired { get; set; }
    }

    /// <summary>The verdict of a consistency check: whether the store holds what the cache holds, now or once pending items flush.</summary>
    public enum ConsistencyState
    {
        /// <summary>Cache and store agree for every profile and nothing is queued or in flight.</summary>
        Consistent,
        /// <summary>No drift beyond what the queued or in-flight items will converge once flushed.</summary>
        Pending,
        /// <summary>Cache and store differ for some profile with nothing pending that would converge it.</summary>
        Drifted,
    }

    /// <summary>What Test-WriteBehindConsistency returns: how many profiles were compared and what differs.</summary>
    public sealed class ConsistencyReport
    {
        /// <summary>Profiles compared (every id the cache knows, live or deleted).</summary>
        public long ProfilesChecked { get; set; }
        /// <summary>Profiles whose cache and store differ with nothing pending for them (drift the flush will not fix).</summary>
        public int DriftCount { get; set; }
        /// <summary>Profiles with items still queued or in flight: their newer state has not reached the store yet.</summary>
        public int PendingCount { get; set; }
        /// <summary>Items queued or in flight (every partition), poison included.</summary>
        public long PendingItems { get; set; }
        /// <summary>Drifted profiles -Repair fixed (see <see cref="DriftRecord.Repaired"/>).</summary>
        public int Repaired { get; set; }
        /// <summary>No drift and nothing pending: the store holds what the cache holds, now.</summary>
        public bool IsConsistent => DriftCount == 0 && PendingCount == 0 && PendingItems == 0;
        /// <summary>The verdict: Drifted when any drift has nothing pending, else Consistent or Pending.</summary>
        public ConsistencyState State => DriftCount > 0 ? ConsistencyState.Drifted : IsConsistent ? ConsistencyState.Consistent : ConsistencyState.Pending;
        /// <summary>Every difference found, those explained by pending items included (Pending true).</summary>
        public IReadOnlyList<DriftRecord> Drift { get; set; }
        /// <summary>One line for the console: the verdict and the counts behind it.</summary>
        public string Summary
        {
            get
            {
                string pending = $"{PendingCount} profile(s) with {PendingItems} item(s) still queued or in flight";
                switch (State)
                {
                    case ConsistencyState.Consistent:
                        return $"consistent: {ProfilesChecked} profiles checked, nothing pending";
                    case ConsistencyState.Pending:
                        return $"not yet consistent: no drift in {ProfilesChecked} profiles checked, but {pending}";
                    default:
                        return $"{DriftCount} drifted of {ProfilesChecked}: " +
                               string.Join(", ", Drift.Where(d => !d.Pending).GroupBy(d => d.Kind).Select(g => $"{g.Count()} {g.Key}")) +
                               (PendingItems > 0 ? "; " + pending : "");
                }
            }
        }
    }

    /// <summary>Compares every profile the cache knows (live or deleted) with the store, page by page.</summary>
    public sealed class ConsistencyChecker
    {
        private const int PageSize = 1000;
        private readonly WriteBehindConnection _connection;

        /// <summary>A checker over this connection's cache and store.</summary>
        public ConsistencyChecker(WriteBehindConnection connection) => _connection = connection;

        /// <summary>The module's table keeps the text byte for byte; a mapped table may compare by meaning.</summary>
        private bool SameProfile(string cacheJson, string storedJson) =>
            _connection.Store is Store.IMappedProfileStore mapped
                ? mapped.SameProfile(cacheJson, storedJson)
                : string.Equals(storedJson, cacheJson, StringComparison.Ordinal);

        /// <summary>Compares every profile page by page; with <paramref name="repair"/> also fixes the drift nothing pending explains.</summary>
        public async Task<ConsistencyReport> CheckAsync(bool repair, CancellationToken cancellationToken)
        {
            var (pending, pendingItems) = await PendingIdsAsync().ConfigureAwait(false);
            var drift = new List<DriftRecord>();
            long checkedCount = 0;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var page = new List<string>(PageSize);

            async Task CheckPage()
            {
                if (page.Count == 0) return;
                var ids = page.ToArray();
                page.Clear();
                var state = await _connection.ReadStateAsync(ids).ConfigureAwait(false);
                var stored = await _connection.Store.GetAsync(ids, cancellationToken).ConfigureAwait(false);
                for (int i = 0; i < ids.Length; i++)
                {
                    checkedCount++;
                    long cacheVersion = state[i].Version;
                    stored.TryGetValue(ids[i], out var row);
                    DriftKind? kind = null;
                    if (!state[i].IsDeleted)
                    {
                        if (row == null) kind = DriftKind.MissingInStore;
                        else if (row.Version > cacheVersion) kind = DriftKind.StoreAheadOfCache;
                        else if (row.Version < cacheVersion || row.IsDeleted || !SameProfile(state[i].Json, row.Json)) kind = DriftKind.StaleInStore;
                    }
                    else if (row != null && !row.IsDeleted)
                    {
                        kind = row.Version < cacheVersion ? DriftKind.DeletedInCacheButInStore : DriftKind.StoreAheadOfCache;
                    }
                    if (kind.HasValue)
                        drift.Add(new DriftRecord { UserId = ids[i], Kind = kind.Value, CacheVersion = cacheVersion, StoreVersion = row?.Version, Pending = pending.Contains(ids[i]) });
                }
            }

            // Every id with a version (live or tombstone), then cached profiles a raw writer left without one,
            // partition by partition.
            foreach (var key in _connection.Layout.Partitions.SelectMany(keys => new[] { keys.Versions, keys.Cache }))
            {
                foreach (var entry in _connection.ScanHash(key, "user:*", PageSize))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    string id = ((string)entry.Name).Substring(5);
                    if (!seen.Add(id)) continue;
                    page.Add(id);
                    if (page.Count == PageSize) await CheckPage().ConfigureAwait(false);
                }
                await CheckPage().ConfigureAwait(false);
            }

            var report = new ConsistencyReport
            {
                ProfilesChecked = checkedCount,
                Drift = drift,
                DriftCount = drift.Count(d => !d.Pending),
                PendingCount = pending.Count,
                PendingItems = pendingItems,
            };
            if (repair) report.Repaired = await RepairAsync(drift).ConfigureAwait(false);
            return report;
        }

        /// <summary>Queues a persist of the cache's current state for store drift, and reads the store's
        /// newer copy back into the cache where the cache lost it.</summary>
        private async Task<int> RepairAsync(List<DriftRecord> drift)
        {
            int repaired = 0;
            var persist = drift.Where(d => !d.Pending && d.Kind != DriftKind.StoreAheadOfCache).ToList();
            for (int start = 0; start < persist.Count; start += PageSize)
            {
                var chunk = persist.Skip(start).Take(PageSize).ToList();
                await _connection.EnqueueAsync(chunk.Select(d => "set:user:" + d.UserId).ToList()).ConfigureAwait(false);
                foreach (var d in chunk) d.Repaired = true;
                repaired += chunk.Count;
            }
            foreach (var d in drift.Where(x => !x.Pending && x.Kind == DriftKind.StoreAheadOfCache))
            {
                var rows = await _connection.Store.GetAsync(new[] { d.UserId }, CancellationToken.None).ConfigureAwait(false);
                if (!rows.TryGetValue(d.UserId, out var row) || row.IsDeleted) continue;
                if (await _connection.ReadThroughAsync(d.UserId, row.Json, row.Version).ConfigureAwait(false) == row.Json)
                {
                    d.Repaired = true;
                    repaired++;
                }
            }
            return repaired;
        }

        /// <summary>The ids of every item queued or in flight, and how many items there are.</summary>
        private async Task<(HashSet<string> Ids, long Items)> PendingIdsAsync()
        {
            var ids = new HashSet<string>(StringComparer.Ordinal);
            long count = 0;
            var lists = new List<RedisKey>();
            foreach (var keys in _connection.Layout.Partitions)
            {
                lists.Add(keys.Queue);
                var leases = await _connection.RedisAsync(db => db.SortedSetRangeByRankAsync(keys.Leases)).ConfigureAwait(false);
                lists.AddRange(leases.Select(l => (RedisKey)(string)l));
            }
            foreach (var list in lists)
            {
                for (long start = 0; ; start += 10000)
                {
                    var items = await _connection.RedisAsync(db => db.ListRangeAsync(list, start, start + 9999)).ConfigureAwait(false);
                    count += items.Length;
                    foreach (var item in items)
                        if (QueueItem.TryParse(item, out var parsed, out _)) ids.Add(parsed.UserId);
                    if (items.Length < 10000) break;
                }
            }
            return (ids, count);
        }
    }
}
