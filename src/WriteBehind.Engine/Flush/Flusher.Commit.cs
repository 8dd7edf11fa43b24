// The flush loop's store side: committing leased rows (isolating refused ones, retrying outages) and recovering expired leases.
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
    public sealed partial class Flusher
    {
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
                    foreach (var lease in leases) await _leases.ExpireNowAsync(lease).ConfigureAwait(false);
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
                    outcome.RejectedItems += await _leases.RejectAsync(lease, now, rejected.Key.UserId, reason).ConfigureAwait(false);
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
                        foreach (var lease in leases) await _leases.ExpireNowAsync(lease).ConfigureAwait(false);
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
                        foreach (var lease in leases) await _leases.RenewAsync(lease, options.LeaseDuration).ConfigureAwait(false);
                        if (_connection.Layout.Count > 1)
                            foreach (var keys in leases.Select(l => l.Keys).Distinct()) await _leases.OwnAsync(keys, "renew", _ownerToken, options.LeaseDuration).ConfigureAwait(false);
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

        /// <summary>Re-persists the profiles of expired leases from the cache's current state (no re-merge).</summary>
        private async Task RecoverAsync(KeyNames keys, RedisValue[] expired, long now, IProfileStore store, FlushOptions options,
            FlushResult result, CancellationToken cancellationToken)
        {
            foreach (var leaseValue in expired)
            {
                if (cancellationToken.IsCancellationRequested) break;
                string leaseKey = leaseValue;
                var items = await _leases.ClaimAsync(keys, leaseKey, now, options.LeaseDuration).ConfigureAwait(false);
                if (items == null) continue;
                var ids = items.Select(QueueItem.RoutingUserIdOf).Distinct(StringComparer.Ordinal).ToList();
                var rows = new List<ProfileRow>(ids.Count);
                for (int start = 0; start < ids.Count; start += 1000)
                    rows.AddRange(await _connection.ReadStateAsync(ids.Skip(start).Take(1000).ToList()).ConfigureAwait(false));
                await _connection.EnsureReplicatedAsync(keys.Leases, "the reclaimed lease").ConfigureAwait(false);
                var lease = new Lease(keys, leaseKey);
                var commit = await CommitAsync(store, new[] { lease }, rows, options, cancellationToken).ConfigureAwait(false);
                await _leases.AckAsync(lease).ConfigureAwait(false);
                result.Recovered += items.Length - commit.RejectedItems;
                FlushInstruments.AddItems(items.Length - commit.RejectedItems, "recovered");
                result.StaleSkipped += commit.Stale;
                Log?.Invoke($"recovered an expired lease: {items.Length} items, {rows.Count} profiles re-persisted");
            }
        }
    }
}
