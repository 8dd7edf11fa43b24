// The flush loop's lease side: leasing groups of batches from the partitions' queues and draining them.
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
                        foreach (var lease in group.Leases) await _leases.AckAsync(lease).ConfigureAwait(false);
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
                        foreach (var keys in partitions) await _leases.OwnAsync(keys, "renew", _ownerToken, options.LeaseDuration).ConfigureAwait(false);
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
                        foreach (var lease in next.Leases) await _leases.ExpireNowAsync(lease).ConfigureAwait(false);
                    }
                }
                throw;
            }
        }

        /// <summary>Leases taken for one store transaction.</summary>
        private sealed class LeaseGroup
        {
            public readonly List<Lease> Leases = new List<Lease>();
            public readonly Dictionary<string, ProfileRow> Latest = new Dictionary<string, ProfileRow>(StringComparer.Ordinal);
            private List<ProfileRow> _rows;
            /// <summary>The latest state of each profile (made once, after the last <see cref="Add"/>).</summary>
            public List<ProfileRow> Rows => _rows ?? (_rows = Latest.Values.ToList());
            public IEnumerable<KeyNames> Partitions => Leases.Select(l => l.Keys).Distinct();
            public long Dequeued;
            public long DeadLettered;
            public long Leased;
            public int Batches;
            public bool Drained;

            public void Add(LeasedBatch batch)
            {
                _rows = null;
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
                var batches = await Task.WhenAll(round.Select(keys => _leases.LeaseAsync(keys, (int)want, options.LeaseDuration))).ConfigureAwait(false);
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
    }
}
