using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Metrics;
using WriteBehind.Engine.Redis;
using WriteBehind.Engine.Store;

namespace WriteBehind.Engine
{
    public sealed class FlushOptions
    {
        /// <summary>Items taken from the queue per lease (one Lua call).</summary>
        public int BatchSize { get; set; } = 1000;
        /// <summary>Items per store transaction: several leases are committed together (random ids dirty a
        /// B-tree page each, so bigger transactions write far fewer pages per row).</summary>
        public int CommitSize { get; set; } = 20000;
        /// <summary>Stop after this many items (0: no limit).</summary>
        public long MaxItems { get; set; }
        /// <summary>Stop taking new batches after this long (null: no limit).</summary>
        public TimeSpan? MaxDuration { get; set; }
        /// <summary>How long a lease is safe from recovery by other flushers without being renewed.</summary>
        public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(60);
        /// <summary>How long transient store errors are retried before the flush gives up.</summary>
        public TimeSpan RetryTimeout { get; set; } = TimeSpan.FromSeconds(30);
        /// <summary>Only reclaim expired leases; take nothing new from the queue.</summary>
        public bool RecoverOnly { get; set; }
        /// <summary>Commit into this store instead of the connection's (a PowerShell writer, <see cref="WriterStore"/>).</summary>
        public IProfileStore Store { get; set; }

        public FlushOptions Clone() => (FlushOptions)MemberwiseClone();
    }

    /// <summary>The flush ended on an error; <see cref="Result"/> says what it did before.</summary>
    public sealed class FlushFailedException : WriteBehindException
    {
        public FlushFailedException(string errorId, string message, FlushResult result, Exception inner)
            : base(errorId, message, inner)
        {
            Result = result;
        }

        public FlushResult Result { get; }
    }

    /// <summary>Drains the queue into the store: lease (atomic pop-and-apply in Lua) → commit (one store
    /// transaction, versioned) → ack. An item leaves its lease only after the store committed its effect;
    /// a lease whose flusher died expires and is re-persisted by a later flush from the cache's current
    /// state, never re-merged.</summary>
    public sealed class Flusher
    {
        private static readonly Random Jitter = new Random();
        private readonly WriteBehindConnection _connection;

        public Flusher(WriteBehindConnection connection)
        {
            _connection = connection ?? throw new ArgumentNullException(nameof(connection));
        }

        /// <summary>Messages for -Verbose; raised on the flushing thread, so the caller queues them.</summary>
        public event Action<string> Log;

        public async Task<FlushResult> FlushAsync(FlushOptions options, IProgress<FlushProgress> progress, CancellationToken cancellationToken)
        {
            options = options ?? new FlushOptions();
            if (options.BatchSize < 1 || options.BatchSize > 5000)
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, "BatchSize must be between 1 and 5000.");
            if (options.CommitSize < 1)
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, "CommitSize must be at least 1.");
            var result = new FlushResult { StartedAt = DateTimeOffset.UtcNow };
            var clock = Stopwatch.StartNew();
            IProfileStore store = options.Store ?? _connection.Store;
            var layout = _connection.Layout;
            // Paused (Suspend-WriteBehindFlush): take nothing, not even expired leases; say so.
            var pause = await _connection.GetPauseAsync().ConfigureAwait(false);
            if (pause.Paused)
            {
                result.Paused = true;
                result.PausedReason = pause.Reason;
                Log?.Invoke($"paused{(pause.Since.HasValue ? " since " + pause.Since.Value.ToString("u", CultureInfo.InvariantCulture) : "")}{(pause.Reason != null ? " (" + pause.Reason + ")" : "")}: no batch taken");
                result.Duration = clock.Elapsed;
                return result;
            }
            try
            {
                // Expired leases are reclaimed in every partition, owned or not: the claim is atomic, and the
                // re-persist writes the cache's current state, so it is safe beside the partition's owner.
                // The expired leases of all partitions are looked up together (one round trip per master).
                long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                var expired = await _connection.RedisAsync(db => Task.WhenAll(layout.Partitions.Select(
                    keys => db.SortedSetRangeByScoreAsync(keys.Leases, double.NegativeInfinity, now)))).ConfigureAwait(false);
                for (int p = 0; p < layout.Count; p++)
                    if (expired[p].Length > 0)
                        await RecoverAsync(layout.Partitions[p], expired[p], now, store, options, result, cancellationToken).ConfigureAwait(false);
                if (!options.RecoverOnly)
                {
                    if (layout.Count == 1)
                    {
                        await DrainAsync(layout.Partitions, store, options, progress, result, clock, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        // Several flushers share the partitions: each takes up to PartitionsAtOnce partitions by a
                        // lease of its own (an owner key with an expiry), drains them together (their masters
                        // work in parallel, and one store transaction takes rows of all of them), lets them go and
                        // takes the next free ones. Starting at a random partition spreads concurrent flushers.
                        // Correctness never depends on ownership (leases are atomic, store writes versioned); it
                        // keeps flushers from contending.
                        int start;
                        lock (Jitter) start = Jitter.Next(layout.Count);
                        int next = 0;
                        while (next < layout.Count && !LimitReached(options, result.Dequeued, clock, cancellationToken) && !result.Paused)
                        {
                            var owned = new List<KeyNames>();
                            for (; next < layout.Count && owned.Count < PartitionsAtOnce; next++)
                            {
                                var keys = layout.Partitions[(start + next) % layout.Count];
                                if (await OwnAsync(keys, "take", options).ConfigureAwait(false)) owned.Add(keys);
                            }
                            if (owned.Count == 0) break;
                            try
                            {
                                await DrainAsync(owned, store, options, progress, result, clock, cancellationToken).ConfigureAwait(false);
                            }
                            finally
                            {
                                foreach (var keys in owned)
                                {
                                    try { await OwnAsync(keys, "release", options).ConfigureAwait(false); }
                                    catch (WriteBehindException) { /* it expires by itself */ }
                                }
                            }
                        }
                    }
                }
                result.Duration = clock.Elapsed;
                result.Stopped = cancellationToken.IsCancellationRequested;
                await WriteStatsAsync(result).ConfigureAwait(false);
                return result;
            }
            catch (Exception ex)
            {
                result.Duration = clock.Elapsed;
                string errorId = ex is WriteBehindException wbe ? wbe.ErrorId : ErrorIds.StoreFailed;
                result.Error = ex.Message;
                result.ErrorId = errorId;
                result.Stopped = cancellationToken.IsCancellationRequested;
                FlushInstruments.Errors.Add(1, new KeyValuePair<string, object>("error.type", errorId));
                try { await WriteStatsAsync(result).ConfigureAwait(false); } catch (WriteBehindException) { /* Redis is the failure */ }
                throw new FlushFailedException(errorId,
                    ex.Message + string.Format(CultureInfo.InvariantCulture,
                        " Nothing is lost: {0} item(s) stay in flight and the next flush re-persists them.", result.InFlight),
                    result, ex);
            }
        }

        /// <summary>Whether the flushers were paused since this flush began (one GET at a batch boundary).</summary>
        private async Task<bool> PausedNowAsync(FlushResult result)
        {
            var pause = await _connection.GetPauseAsync().ConfigureAwait(false);
            if (!pause.Paused) return false;
            result.Paused = true;
            result.PausedReason = pause.Reason;
            Log?.Invoke($"paused{(pause.Reason != null ? " (" + pause.Reason + ")" : "")}: the batch in hand is finished, no next one is taken");
            return true;
        }

        private static bool LimitReached(FlushOptions options, long dequeued, Stopwatch clock, CancellationToken cancellationToken) =>
            cancellationToken.IsCancellationRequested
            || (options.MaxItems > 0 && dequeued >= options.MaxItems)
            || (options.MaxDuration.HasValue && clock.Elapsed >= options.MaxDuration.Value);

        /// <summary>How many partitions one flusher drains together.</summary>
        internal const int PartitionsAtOnce = 4;

        /// <summary>This flusher's name in a partition's owner key.</summary>
        private readonly string _ownerToken = Environment.MachineName + ":" + System.Diagnostics.Process.GetCurrentProcess().Id + ":" + Guid.NewGuid().ToString("N").Substring(0, 8);

        private async Task<bool> OwnAsync(KeyNames keys, string op, FlushOptions options)
        {
            var r = await _connection.RedisAsync(db => Scripts.Owner.EvaluateAsync(db, new RedisKey[] { keys.Owner },
                new RedisValue[] { op, _ownerToken, (long)options.LeaseDuration.TotalMilliseconds })).ConfigureAwait(false);
            return (long)r == 1;
        }

        /// <summary>Leases, commits and acknowledges the queues of these partitions until they are empty or a
        /// limit is reached.</summary>
        private async Task DrainAsync(IReadOnlyList<KeyNames> partitions, IProfileStore store, FlushOptions options, IProgress<FlushProgress> progress,
            FlushResult result, Stopwatch clock, CancellationToken cancellationToken)
        {
            var active = new List<KeyNames>(partitions);
            Task<LeaseGroup> leasing = null;
            try
            {
                var group = await LeaseGroupAsync(active, options, result.Dequeued, clock, cancellationToken).ConfigureAwait(false);
                while (group.Dequeued > 0)
                {
                    var groupClock = Stopwatch.StartNew();
                    Absorb(result, group);
                    // The lease scripts' changes (merges, versions) reach the replicas before the store sees them.
                    foreach (var keys in group.Partitions)
                        await _connection.EnsureReplicatedAsync(keys.Queue, "the leased batch").ConfigureAwait(false);
                    // A pause is honoured here, at the batch boundary: the group in hand is committed, no next one is taken.
                    if (!group.Drained && await PausedNowAsync(result).ConfigureAwait(false)) group.Drained = true;
                    // Lease the next group while this one commits: they hold different items, and the
                    // store's version check makes their commit order irrelevant.
                    leasing = group.Drained ? null : LeaseGroupAsync(active, options, result.Dequeued, clock, cancellationToken);
                    if (group.Leased > 0)
                    {
                        var commit = await CommitAsync(store, group.Leases, group.Rows, options, cancellationToken).ConfigureAwait(false);
                        foreach (var lease in group.Leases) await AckAsync(lease).ConfigureAwait(false);
                        result.InFlight -= group.Leased;
                        // Rows the store refused for good took their items to the dead-letter list.
                        int persistedRows = group.Rows.Count - commit.Rejected.Count;
                        result.Persisted += persistedRows;
                        result.DeadLettered += commit.RejectedItems;
                        result.Coalesced += group.Leased - commit.RejectedItems - persistedRows;
                        result.StaleSkipped += commit.Stale;
                        FlushInstruments.AddItems(persistedRows, "persisted");
                        FlushInstruments.AddItems(group.Leased - commit.RejectedItems - persistedRows, "coalesced");
                        FlushInstruments.AddItems(commit.RejectedItems, "dead_lettered");
                    }
                    FlushInstruments.Dequeued.Add(group.Dequeued);
                    FlushInstruments.AddItems(group.DeadLettered, "dead_lettered");
                    FlushInstruments.BatchDuration.Record(groupClock.Elapsed.TotalSeconds);
                    if (_connection.Layout.Count > 1)
                        foreach (var keys in partitions) await OwnAsync(keys, "renew", options).ConfigureAwait(false);
                    Log?.Invoke(string.Format(CultureInfo.InvariantCulture,
                        "commit: {0} items in {1} lease(s), {2} profiles, {3} dead-lettered, {4:F1} ms{5}",
                        group.Dequeued, group.Leases.Count, group.Rows.Count, group.DeadLettered, groupClock.Elapsed.TotalMilliseconds,
                        _connection.Layout.Count > 1
                            ? " (partition " + string.Join(", ", group.Partitions.Select(k => k.Partition.ToString(CultureInfo.InvariantCulture))) + ")"
                            : ""));
                    if (progress != null)
                    {
                        long remaining = await _connection.GetQueueDepthAsync().ConfigureAwait(false);
                        progress.Report(new FlushProgress
                        {
                            Dequeued = result.Dequeued,
                            Remaining = remaining,
                            Batches = result.Batches,
                            BatchProfiles = group.Rows.Count,
                            BatchDuration = groupClock.Elapsed,
                            ItemsPerSecond = clock.Elapsed.TotalSeconds > 0 ? result.Dequeued / clock.Elapsed.TotalSeconds : 0,
                        });
                    }
                    if (leasing == null) break;
                    group = await leasing.ConfigureAwait(false);
                    leasing = null;
                }
            }
            catch (Exception)
            {
                if (leasing != null)
                {
                    // A group leased ahead of a failed commit waits for the next flush, like the failed one.
                    LeaseGroup next;
                    try { next = await leasing.ConfigureAwait(false); } catch (Exception) { next = null; }
                    if (next != null)
                    {
                        Absorb(result, next);
                        foreach (var lease in next.Leases) await ExpireNowAsync(lease).ConfigureAwait(false);
                    }
                }
                throw;
            }
        }

        /// <summary>One in-flight lease: its list and the partition it belongs to.</summary>
        private sealed class Lease
        {
            public Lease(KeyNames keys, string key)
            {
                Keys = keys;
                Key = key;
            }

            public KeyNames Keys { get; }
            public string Key { get; }
        }

        /// <summary>Leases taken for one store transaction.</summary>
        private sealed class LeaseGroup
        {
            public readonly List<Lease> Leases = new List<Lease>();
            public readonly Dictionary<string, ProfileRow> Latest = new Dictionary<string, ProfileRow>(StringComparer.Ordinal);
            public List<ProfileRow> Rows => Latest.Values.ToList();
            public IEnumerable<KeyNames> Partitions => Leases.Select(l => l.Keys).Distinct();
            public long Dequeued;
            public long DeadLettered;
            public long Leased;
            public int Batches;
            public bool Drained;

            public void Add(LeasedBatch batch)
            {
                Batches += batch.Dequeued > 0 ? 1 : 0;
                Dequeued += batch.Dequeued;
                DeadLettered += batch.DeadLettered;
                Leased += batch.Leased;
                if (batch.Leased > 0) Leases.Add(batch.Lease);
                foreach (var row in batch.Rows)
                {
                    if (!Latest.TryGetValue(row.UserId, out var known) || row.Version >= known.Version)
                        Latest[row.UserId] = row;
                }
            }
        }

        private static void Absorb(FlushResult result, LeaseGroup group)
        {
            result.Dequeued += group.Dequeued;
            result.DeadLettered += group.DeadLettered;
            result.InFlight += group.Leased;
            result.Batches += group.Batches;
        }

        /// <summary>Leases batches from the active partitions (several at once, each on its own master) until
        /// the group holds CommitSize items, the queues are drained, or a limit is reached; a partition whose
        /// queue gave less than asked leaves <paramref name="active"/>. Several changes to one profile across
        /// the group keep only the latest state.</summary>
        private async Task<LeaseGroup> LeaseGroupAsync(List<KeyNames> active, FlushOptions options, long dequeuedBefore, Stopwatch clock, CancellationToken cancellationToken)
        {
            var group = new LeaseGroup();
            while (group.Leased < options.CommitSize && active.Count > 0)
            {
                long dequeued = dequeuedBefore + group.Dequeued;
                if (LimitReached(options, dequeued, clock, cancellationToken)) break;
                long want = options.BatchSize;
                int at = 1;
                if (options.MaxItems > 0) want = Math.Min(want, options.MaxItems - dequeued);
                else at = (int)Math.Min(active.Count, Math.Max(1, (options.CommitSize - group.Leased + want - 1) / want));
                var round = active.Take(at).ToList();
                var batches = await Task.WhenAll(round.Select(keys => LeaseAsync(keys, (int)want, options))).ConfigureAwait(false);
                for (int i = 0; i < round.Count; i++)
                {
                    group.Add(batches[i]);
                    if (batches[i].Dequeued < want && !batches[i].Resumed) active.Remove(round[i]);
                }
                // the next round starts with the partitions that were not asked this time
                if (active.Count > round.Count)
                    foreach (var keys in round.Where(active.Contains).ToList()) { active.Remove(keys); active.Add(keys); }
            }
            group.Drained = active.Count == 0 || LimitReached(options, dequeuedBefore + group.Dequeued, clock, cancellationToken);
            return group;
        }

        private sealed class LeasedBatch
        {
            public Lease Lease;
            public long Dequeued;
            public long DeadLettered;
            public long Leased;
            /// <summary>The batch a lease cut short by a server crash had merged, finished by this call: the
            /// queue may hold more than it gave.</summary>
            public bool Resumed;
            public List<ProfileRow> Rows;
        }

        private async Task<LeasedBatch> LeaseAsync(KeyNames keys, int max, FlushOptions options)
        {
            string leaseKey = keys.LeasePrefix + Guid.NewGuid().ToString("N");
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            long expiry = now + (long)options.LeaseDuration.TotalMilliseconds;
            var scriptKeys = new RedisKey[] { keys.Queue, keys.Cache, keys.Versions, leaseKey, keys.Leases, keys.DeadLetters, keys.DeadLetterInfo, keys.Redo, keys.PendingAge };
            var args = new RedisValue[] { max, expiry, now, _connection.Layout.Count, keys.Partition };
            var raw = await _connection.RedisAsync(async db =>
                (RedisResult[])await Scripts.Lease.EvaluateAsync(db, scriptKeys, args).ConfigureAwait(false)).ConfigureAwait(false);
            var batch = new LeasedBatch
            {
                Lease = new Lease(keys, leaseKey),
                Dequeued = (long)raw[0],
                DeadLettered = (long)raw[1],
                Leased = (long)raw[2],
                Resumed = (long)raw[4] == 1,
                Rows = new List<ProfileRow>((raw.Length - 5) / 3),
            };
            for (int i = 5; i + 2 < raw.Length; i += 3)
                batch.Rows.Add(new ProfileRow((string)raw[i], raw[i + 1].IsNull ? null : (string)raw[i + 1], (long)raw[i + 2]));
            return batch;
        }

        /// <summary>Flushes until cancelled or <see cref="FlushOptions.MaxDuration"/> passes: drains the queue,
        /// then waits for new items with a blocking pop (no sleep-polling) and drains again. A stop request
        /// lets the batch in hand finish; nothing is lost. Returns the totals of every pass.</summary>
        public async Task<FlushResult> RunContinuousAsync(FlushOptions options, IProgress<FlushProgress> progress, CancellationToken cancellationToken)
        {
            options = options ?? new FlushOptions();
            var total = new FlushResult { StartedAt = DateTimeOffset.UtcNow };
            var clock = Stopwatch.StartNew();
            while (!cancellationToken.IsCancellationRequested)
            {
                var remaining = options.MaxDuration.HasValue ? options.MaxDuration.Value - clock.Elapsed : (TimeSpan?)null;
                if (remaining.HasValue && remaining.Value <= TimeSpan.Zero) break;
                var pass = options.Clone();
                pass.MaxDuration = remaining;
                if (options.MaxItems > 0)
                {
                    if (total.Dequeued >= options.MaxItems) break;
                    pass.MaxItems = options.MaxItems - total.Dequeued;
                }
                FlushResult r;
                try
                {
                    r = await FlushAsync(pass, progress, cancellationToken).ConfigureAwait(false);
                }
                catch (FlushFailedException ex)
                {
                    Add(total, ex.Result);
                    total.Duration = clock.Elapsed;
                    throw new FlushFailedException(ex.ErrorId, ex.Message, total, ex.InnerException);
                }
                Add(total, r);
                if (r.Paused)
                {
                    // Paused: look again every second (one GET) until resumed, stopped or MaxDuration passes.
                    total.Paused = true;
                    total.PausedReason = r.PausedReason;
                    while (!cancellationToken.IsCancellationRequested && !(options.MaxDuration.HasValue && clock.Elapsed >= options.MaxDuration.Value))
                    {
                        try { await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false); }
                        catch (OperationCanceledException) { break; }
                        if (!(await _connection.GetPauseAsync().ConfigureAwait(false)).Paused)
                        {
                            Log?.Invoke("resumed");
                            total.Paused = false;
                            total.PausedReason = null;
                            break;
                        }
                    }
                    continue;
                }
                if (r.Dequeued > 0 || cancellationToken.IsCancellationRequested) continue;
                // Idle: block until an item arrives, waking at least every second to honour stop and MaxDuration.
                var wait = TimeSpan.FromSeconds(1);
                if (remaining.HasValue && remaining.Value < wait) wait = remaining.Value;
                if (wait > TimeSpan.Zero) await _connection.WaitForItemsAsync(wait).ConfigureAwait(false);
            }
            total.Duration = clock.Elapsed;
            total.Stopped = cancellationToken.IsCancellationRequested;
            return total;
        }

        private static void Add(FlushResult total, FlushResult r)
        {
            total.Dequeued += r.Dequeued;
            total.Persisted += r.Persisted;
            total.Coalesced += r.Coalesced;
            total.DeadLettered += r.DeadLettered;
            total.InFlight += r.InFlight;
            total.Recovered += r.Recovered;
            total.StaleSkipped += r.StaleSkipped;
            total.Batches += r.Batches;
            total.Error = r.Error ?? total.Error;
            total.ErrorId = r.ErrorId ?? total.ErrorId;
        }

        private sealed class CommitOutcome
        {
            public int Applied;
            public int Stale;
            public readonly List<KeyValuePair<ProfileRow, string>> Rejected = new List<KeyValuePair<ProfileRow, string>>();
            public long RejectedItems;
            /// <summary>Rows the store declined on purpose (a writer's Reject) in a commit that went in.</summary>
            public int Declined;
        }

        /// <summary>The store refused this commit for a reason retrying will not fix.</summary>
        private sealed class StoreRejectedException : Exception
        {
            public StoreRejectedException(StoreException inner) : base(inner.InnerException?.Message ?? inner.Message, inner) { }
        }

        /// <summary>Commits a lease's rows while a background loop keeps the lease alive. A row the store
        /// refuses for good is isolated by splitting the batch and dead-lettered with the store's message;
        /// the rest is persisted. When no row of the batch goes in, the store itself is failing: the
        /// flush fails and the lease is kept.</summary>
        private async Task<CommitOutcome> CommitAsync(IProfileStore store, IReadOnlyList<Lease> leases, List<ProfileRow> rows,
            FlushOptions options, CancellationToken cancellationToken)
        {
            var outcome = new CommitOutcome();
            // A tombstone at version 0 is a delete of a profile nobody ever wrote: nothing to persist.
            var toWrite = rows.Where(r => !(r.IsDeleted && r.Version == 0)).ToList();
            if (toWrite.Count == 0) return outcome;
            using (StartRenewal(leases, options))
            {
                await CommitIsolatingAsync(store, leases, toWrite, options, cancellationToken, outcome).ConfigureAwait(false);
                if (outcome.Rejected.Count == toWrite.Count && outcome.Declined < toWrite.Count)
                {
                    foreach (var lease in leases) await ExpireNowAsync(lease).ConfigureAwait(false);
                    throw new WriteBehindException(ErrorIds.StoreFailed,
                        $"The store ({store.Description}) refused every row of the batch: {outcome.Rejected[0].Value}");
                }
            }
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            foreach (var rejected in outcome.Rejected)
            {
                string reason = "store rejected: " + rejected.Value;
                // the row's items are in the leases of its own partition
                var home = _connection.Layout.Of(rejected.Key.UserId);
                foreach (var lease in leases.Where(l => l.Keys == home))
                {
                    outcome.RejectedItems += await _connection.RedisAsync(async db =>
                        (long)await Scripts.Reject.EvaluateAsync(db, new RedisKey[] { lease.Key, home.DeadLetters, home.DeadLetterInfo },
                            new RedisValue[] { now, rejected.Key.UserId, reason }).ConfigureAwait(false)).ConfigureAwait(false);
                }
                Log?.Invoke($"the store rejected the row of user '{rejected.Key.UserId}'; its items were dead-lettered: {rejected.Value}");
            }
            return outcome;
        }

        private async Task CommitIsolatingAsync(IProfileStore store, IReadOnlyList<Lease> leases, List<ProfileRow> rows,
            FlushOptions options, CancellationToken cancellationToken, CommitOutcome outcome)
        {
            try
            {
                var r = await CommitWithRetryAsync(store, leases, rows, options, cancellationToken).ConfigureAwait(false);
                outcome.Applied += r.Applied;
                outcome.Stale += r.Stale;
                foreach (var declined in r.Rejected)
                {
                    var row = rows.FirstOrDefault(x => string.Equals(x.UserId, declined.Key, StringComparison.Ordinal));
                    if (row == null) continue;
                    outcome.Rejected.Add(new KeyValuePair<ProfileRow, string>(row, declined.Value));
                    outcome.Declined++;
                }
            }
            catch (StoreRejectedException ex)
            {
                if (rows.Count == 1)
                {
                    outcome.Rejected.Add(new KeyValuePair<ProfileRow, string>(rows[0], ex.Message));
                    return;
                }
                int half = rows.Count / 2;
                await CommitIsolatingAsync(store, leases, rows.GetRange(0, half), options, cancellationToken, outcome).ConfigureAwait(false);
                await CommitIsolatingAsync(store, leases, rows.GetRange(half, rows.Count - half), options, cancellationToken, outcome).ConfigureAwait(false);
            }
        }

        private async Task<StoreCommitResult> CommitWithRetryAsync(IProfileStore store, IReadOnlyList<Lease> leases, List<ProfileRow> rows,
            FlushOptions options, CancellationToken cancellationToken)
        {
            var retryClock = Stopwatch.StartNew();
            var delay = TimeSpan.FromMilliseconds(50);
            while (true)
            {
                try
                {
                    // The batch in hand is finished even when the caller asked to stop: it is not cancelled.
                    var committed = await store.CommitAsync(rows, CancellationToken.None).ConfigureAwait(false);
                    FlushInstruments.CommitDuration.Record(retryClock.Elapsed.TotalSeconds);
                    return committed;
                }
                catch (StoreUnavailableException ex)
                {
                    if (retryClock.Elapsed >= options.RetryTimeout || cancellationToken.IsCancellationRequested)
                    {
                        foreach (var lease in leases) await ExpireNowAsync(lease).ConfigureAwait(false);
                        throw new WriteBehindException(ErrorIds.StoreUnavailable,
                            $"The store ({store.Description}) was unavailable for {retryClock.Elapsed.TotalSeconds:F1} s: {ex.InnerException?.Message ?? ex.Message}.", ex);
                    }
                    Log?.Invoke($"store unavailable ({ex.InnerException?.Message ?? ex.Message}); retrying in {delay.TotalMilliseconds:F0} ms");
                    double jittered;
                    lock (Jitter) jittered = delay.TotalMilliseconds * (0.5 + Jitter.NextDouble());
                    try { await Task.Delay(TimeSpan.FromMilliseconds(jittered), cancellationToken).ConfigureAwait(false); }
                    catch (OperationCanceledException) { /* give up on the next turn, leaving the lease for recovery */ }
                    delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 2000));
                }
                catch (StoreException ex)
                {
                    throw new StoreRejectedException(ex);
                }
            }
        }

        /// <summary>Keeps a lease from expiring while its commit runs (every third of the lease duration).</summary>
        private IDisposable StartRenewal(IReadOnlyList<Lease> leases, FlushOptions options)
        {
            var stop = new CancellationTokenSource();
            var period = TimeSpan.FromTicks(Math.Max(options.LeaseDuration.Ticks / 3, TimeSpan.FromMilliseconds(50).Ticks));
            Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    try
                    {
                        await Task.Delay(period, stop.Token).ConfigureAwait(false);
                        foreach (var lease in leases) await RenewAsync(lease, options).ConfigureAwait(false);
                        if (_connection.Layout.Count > 1)
                            foreach (var keys in leases.Select(l => l.Keys).Distinct()) await OwnAsync(keys, "renew", options).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) { break; }
                    catch (WriteBehindException) { /* Redis trouble surfaces at the ack */ }
                }
            });
            return new Stopper(stop);
        }

        private sealed class Stopper : IDisposable
        {
            private readonly CancellationTokenSource _stop;
            public Stopper(CancellationTokenSource stop) => _stop = stop;
            public void Dispose() => _stop.Cancel();
        }

        private Task AckAsync(Lease lease) =>
            _connection.RedisAsync(db => Scripts.Ack.EvaluateAsync(db, new RedisKey[] { lease.Key, lease.Keys.Leases }, Array.Empty<RedisValue>()));

        private Task RenewAsync(Lease lease, FlushOptions options) =>
            _connection.RedisAsync(db => Scripts.Renew.EvaluateAsync(db, new RedisKey[] { lease.Keys.Leases, lease.Key },
                new RedisValue[] { DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + (long)options.LeaseDuration.TotalMilliseconds }));

        /// <summary>Hands a lease that could not be committed to the next flush at once (no waiting for expiry).</summary>
        private async Task ExpireNowAsync(Lease lease)
        {
            try
            {
                await _connection.RedisAsync(db => db.SortedSetAddAsync(lease.Keys.Leases, lease.Key, 0, When.Exists)).ConfigureAwait(false);
            }
            catch (WriteBehindException) { /* it expires by itself */ }
        }

        /// <summary>Re-persists the profiles of expired leases from the cache's current state (no re-merge).</summary>
        private async Task RecoverAsync(KeyNames keys, RedisValue[] expired, long now, IProfileStore store, FlushOptions options,
            FlushResult result, CancellationToken cancellationToken)
        {
            foreach (var leaseValue in expired)
            {
                if (cancellationToken.IsCancellationRequested) break;
                string leaseKey = leaseValue;
                long expiry = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + (long)options.LeaseDuration.TotalMilliseconds;
                var claimed = await _connection.RedisAsync(async db =>
                    await Scripts.Claim.EvaluateAsync(db, new RedisKey[] { keys.Leases, leaseKey },
                        new RedisValue[] { now, expiry, "0" }).ConfigureAwait(false)).ConfigureAwait(false);
                if (claimed.IsNull) continue;
                var items = (string[])claimed;
                var ids = items.Select(QueueItem.RoutingUserIdOf).Distinct(StringComparer.Ordinal).ToList();
                var rows = new List<ProfileRow>(ids.Count);
                for (int start = 0; start < ids.Count; start += 1000)
                    rows.AddRange(await _connection.ReadStateAsync(ids.Skip(start).Take(1000).ToList()).ConfigureAwait(false));
                await _connection.EnsureReplicatedAsync(keys.Leases, "the reclaimed lease").ConfigureAwait(false);
                var lease = new Lease(keys, leaseKey);
                var commit = await CommitAsync(store, new[] { lease }, rows, options, cancellationToken).ConfigureAwait(false);
                await AckAsync(lease).ConfigureAwait(false);
                result.Recovered += items.Length - commit.RejectedItems;
                FlushInstruments.AddItems(items.Length - commit.RejectedItems, "recovered");
                result.StaleSkipped += commit.Stale;
                Log?.Invoke($"recovered an expired lease: {items.Length} items, {rows.Count} profiles re-persisted");
            }
        }

        private Task WriteStatsAsync(FlushResult result)
        {
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            return _connection.RedisAsync(async db =>
            {
                long depth = await _connection.GetQueueDepthAsync().ConfigureAwait(false);
                var entries = new List<HashEntry>
                {
                    new HashEntry("lastFlushAt", now),
                    new HashEntry("lastFlushDequeued", result.Dequeued),
                    new HashEntry("lastFlushRate", result.ItemsPerSecond.ToString("R", CultureInfo.InvariantCulture)),
                    new HashEntry("lastFlushError", result.Error ?? string.Empty),
                    new HashEntry("lastFlushMs", (long)result.Duration.TotalMilliseconds),
                };
                if (depth == 0 && result.Error == null) entries.Add(new HashEntry("lastDrainedAt", now));
                string key = _connection.Layout.Stats;
                await db.HashSetAsync(key, entries.ToArray()).ConfigureAwait(false);
                // Every flusher adds to the same counters (the Prometheus text's _total metrics).
                var increments = new List<Task>();
                void Add(string field, long by) { if (by != 0) increments.Add(db.HashIncrementAsync(key, field, by)); }
                Add("totalDequeued", result.Dequeued);
                Add("totalPersisted", result.Persisted);
                Add("totalCoalesced", result.Coalesced);
                Add("totalDeadLettered", result.DeadLettered);
                Add("totalRecovered", result.Recovered);
                Add("totalFlushErrors", result.Error != null ? 1 : 0);
                await Task.WhenAll(increments).ConfigureAwait(false);
                return true;
            });
        }
    }
}
