// The flush loop's front: one flush (recovery, then the partitions' queues), the continuous mode, the counters.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Metrics;
using WriteBehind.Engine.Store;

namespace WriteBehind.Engine
{
    /// <summary>Drains the queue into the store: lease (atomic pop-and-apply in Lua) → commit (one store
    /// transaction, versioned) → ack. An item leaves its lease only after the store committed its effect;
    /// a lease whose flusher died expires and is re-persisted by a later flush from the cache's current
    /// state, never re-merged.</summary>
    public sealed partial class Flusher
    {
        private static readonly Random Jitter = new Random();
        private readonly WriteBehindConnection _connection;
        private readonly LeaseClient _leases;

        /// <summary>A flusher over this connection's queue, cache and store.</summary>
        public Flusher(WriteBehindConnection connection)
        {
            _connection = connection ?? throw new ArgumentNullException(nameof(connection));
            _leases = new LeaseClient(connection);
        }

        /// <summary>Messages for -Verbose; raised on the flushing thread, so the caller queues them.</summary>
        public event Action<string> Log;

        /// <summary>Runs one flush until the queue is empty or a limit in <paramref name="options"/> is reached; reports each commit to <paramref name="progress"/>.</summary>
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
                var expired = await _leases.ExpiredAsync(layout, now).ConfigureAwait(false);
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
                                if (await _leases.OwnAsync(keys, "take", _ownerToken, options.LeaseDuration).ConfigureAwait(false)) owned.Add(keys);
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
                                    try { await _leases.OwnAsync(keys, "release", _ownerToken, options.LeaseDuration).ConfigureAwait(false); }
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
