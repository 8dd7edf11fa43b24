using System;

namespace WriteBehind.Engine
{
    /// <summary>Where a profile read came from.</summary>
    public enum ProfileSource
    {
        /// <summary>The Redis cache.</summary>
        Cache,
        /// <summary>The store (a cache miss, read through).</summary>
        Store,
    }

    /// <summary>One flush's accounting: Dequeued = Persisted + Coalesced + DeadLettered (+ InFlight when
    /// the flush ended on an error).</summary>
    public sealed class FlushResult
    {
        /// <summary>Items this flush took from the queue.</summary>
        public long Dequeued { get; set; }
        /// <summary>Distinct profiles whose latest state the store committed (or already held).</summary>
        public long Persisted { get; set; }
        /// <summary>Items folded into another item's store write for the same profile in the same batch.</summary>
        public long Coalesced { get; set; }
        /// <summary>Items moved to the dead-letter list: poison items and items of rows the store refused for good.</summary>
        public long DeadLettered { get; set; }
        /// <summary>Items dequeued by this flush that are still in a lease (only when it ended on an error).</summary>
        public long InFlight { get; set; }
        /// <summary>Items of expired leases (of crashed or failed flushers) re-persisted by this flush.</summary>
        public long Recovered { get; set; }
        /// <summary>Store rows skipped because the store already held that version or a newer one.</summary>
        public long StaleSkipped { get; set; }
        /// <summary>Leases this flush took that held at least one item (each up to BatchSize items).</summary>
        public int Batches { get; set; }
        /// <summary>Wall-clock time from the start of the flush to its end.</summary>
        public TimeSpan Duration { get; set; }
        /// <summary>Dequeued items per second of <see cref="Duration"/> (0 when no time passed).</summary>
        public double ItemsPerSecond => Duration.TotalSeconds > 0 ? Math.Round(Dequeued / Duration.TotalSeconds, 1) : 0;
        /// <summary>When the flush started, in UTC (with <see cref="Duration"/>, when it ended).</summary>
        public DateTimeOffset StartedAt { get; set; }
        /// <summary>The message of the error the flush ended on (null when it did not fail); free of secrets.</summary>
        public string Error { get; set; }
        /// <summary>The stable id of the error the flush ended on (null when it did not fail).</summary>
        public string ErrorId { get; set; }
        /// <summary>True when the flush found the flushers paused (Suspend-WriteBehindFlush) and took no
        /// further batch; <see cref="PausedReason"/> says why.</summary>
        public bool Paused { get; set; }
        /// <summary>The reason given to Suspend-WriteBehindFlush (null when not paused or none was given).</summary>
        public string PausedReason { get; set; }
        /// <summary>True when a stop request (Ctrl+C, SIGINT) ended the flush after the batch in hand.</summary>
        public bool Stopped { get; set; }
    }

    /// <summary>Whether the flushers are paused (Suspend-WriteBehindFlush), since when, why and by whom.</summary>
    public sealed class FlushPause
    {
        /// <summary>True while the pause key exists: flushers take no new batch.</summary>
        public bool Paused { get; set; }
        /// <summary>When the flushers were first paused (null when they are not paused).</summary>
        public DateTimeOffset? Since { get; set; }
        /// <summary>The reason given to Suspend-WriteBehindFlush (null when none was given).</summary>
        public string Reason { get; set; }
        /// <summary>The host and user that paused them.</summary>
        public string By { get; set; }
        /// <summary>The Redis key that holds the pause, so operators can find it.</summary>
        public string KeyName { get; set; }
    }

    /// <summary>What a running flush reports after each store commit (for Write-Progress).</summary>
    public sealed class FlushProgress
    {
        /// <summary>Items taken from the queue so far.</summary>
        public long Dequeued { get; set; }
        /// <summary>Items the queue still held when the last lease was taken.</summary>
        public long Remaining { get; set; }
        /// <summary>Dequeued items per second of the flush so far.</summary>
        public double ItemsPerSecond { get; set; }
        /// <summary>Leases taken so far.</summary>
        public int Batches { get; set; }
        /// <summary>Distinct profiles the last store commit wrote.</summary>
        public int BatchProfiles { get; set; }
        /// <summary>How long the last store commit took.</summary>
        public TimeSpan BatchDuration { get; set; }
    }

    /// <summary>What Get-WriteBehindStatus returns: where the cache and store are, how far behind the store is, and how the flushes went.</summary>
    public sealed class WriteBehindStatus
    {
        /// <summary>The Redis endpoint(s), never with a password.</summary>
        public string Redis { get; set; }
        /// <summary>The store URI, never with a password.</summary>
        public string Store { get; set; }
        /// <summary>The key prefix every Redis key of this deployment starts with ("" for the seed's names).</summary>
        public string KeyPrefix { get; set; }
        /// <summary>How many partitions the profiles are spread over.</summary>
        public int Partitions { get; set; } = 1;
        /// <summary>Each partition's figures (one entry unless -Partitions is above 1).</summary>
        public PartitionStatus[] PartitionDetails { get; set; }
        /// <summary>Items waiting in every partition's queue.</summary>
        public long QueueDepth { get; set; }
        /// <summary>Items taken by a flusher and not yet acknowledged (in a lease), every partition.</summary>
        public long InFlight { get; set; }
        /// <summary>Leases held now (live and expired), every partition.</summary>
        public long Leases { get; set; }
        /// <summary>Leases past their expiry: their flusher died or stalled, and the next flush re-persists them.</summary>
        public long ExpiredLeases { get; set; }
        /// <summary>Items in the dead-letter lists, every partition.</summary>
        public long DeadLetters { get; set; }
        /// <summary>Profiles in the Redis cache, every partition.</summary>
        public long CachedProfiles { get; set; }
        /// <summary>Live profiles in the store (null when the store was not asked or could not be read).</summary>
        public long? StoredProfiles { get; set; }
        /// <summary>The queue depth at which producers fail with QueueFull or wait (0: unbounded).</summary>
        public long HighWaterMark { get; set; }
        /// <summary>When the last flush of any flusher ended (null before the first).</summary>
        public DateTimeOffset? LastFlushAt { get; set; }
        /// <summary>Items the last flush took from the queue.</summary>
        public long? LastFlushDequeued { get; set; }
        /// <summary>The last flush's rate, in dequeued items per second.</summary>
        public double? LastFlushItemsPerSecond { get; set; }
        /// <summary>The error the last flush ended on (null when it succeeded).</summary>
        public string LastFlushError { get; set; }
        /// <summary>The age of the oldest pending item (zero when the queue is empty), on Redis's clock. Kept by the
        /// module's scripts without a flush; an upper bound (never less than the real age) except for items only a
        /// raw producer pushed onto an empty queue, which count from when a status or flush first saw them.</summary>
        public TimeSpan? Lag { get; set; }
        /// <summary>When the oldest pending item was pushed at the latest (null when the queue is empty).</summary>
        public DateTimeOffset? OldestPendingSince { get; set; }
        /// <summary>Duration of the last flush.</summary>
        public TimeSpan? LastFlushDuration { get; set; }
        /// <summary>Totals of every flush of every flusher since the counters began (kept in Redis, in write_queue:stats).</summary>
        public FlushTotals Totals { get; set; } = new FlushTotals();
        /// <summary>Whether the flushers are paused (Suspend-WriteBehindFlush), since when and why.</summary>
        public bool Paused { get; set; }
        /// <summary>When the flushers were paused (null when they are not).</summary>
        public DateTimeOffset? PausedSince { get; set; }
        /// <summary>The reason given to Suspend-WriteBehindFlush.</summary>
        public string PausedReason { get; set; }
    }

    /// <summary>Cumulative flush counters shared by every flusher (HINCRBY in write_queue:stats).</summary>
    public sealed class FlushTotals
    {
        /// <summary>Items every flush took from the queue.</summary>
        public long Dequeued { get; set; }
        /// <summary>Profile states every flush committed to the store.</summary>
        public long Persisted { get; set; }
        /// <summary>Items folded into another item's store write.</summary>
        public long Coalesced { get; set; }
        /// <summary>Items every flush moved to the dead-letter lists.</summary>
        public long DeadLettered { get; set; }
        /// <summary>Items of expired leases that flushes re-persisted.</summary>
        public long Recovered { get; set; }
        /// <summary>Flushes that ended on an error.</summary>
        public long FlushErrors { get; set; }
    }

    /// <summary>One partition's queue, leases, dead letters and current owner (the flusher draining it).</summary>
    public sealed class PartitionStatus
    {
        /// <summary>The partition's index (0 for the single partition).</summary>
        public int Partition { get; set; }
        /// <summary>The Redis key of this partition's queue.</summary>
        public string Queue { get; set; }
        /// <summary>Items waiting in this partition's queue.</summary>
        public long QueueDepth { get; set; }
        /// <summary>Items of this partition in a lease, not yet acknowledged.</summary>
        public long InFlight { get; set; }
        /// <summary>Leases held on this partition now (live and expired).</summary>
        public long Leases { get; set; }
        /// <summary>This partition's leases past their expiry.</summary>
        public long ExpiredLeases { get; set; }
        /// <summary>Items in this partition's dead-letter list.</summary>
        public long DeadLetters { get; set; }
        /// <summary>Profiles of this partition in the Redis cache.</summary>
        public long CachedProfiles { get; set; }
        /// <summary>The flusher that owns this partition now (null when none holds it, or with a single partition).</summary>
        public string Owner { get; set; }
        /// <summary>The age of this partition's oldest pending item (see WriteBehindStatus.Lag).</summary>
        public TimeSpan Lag { get; set; }
        /// <summary>When this partition's oldest pending item was pushed at the latest (null when its queue is empty).</summary>
        public DateTimeOffset? OldestPendingSince { get; set; }
    }

    /// <summary>An item the flush could not persist, kept byte for byte in a dead-letter list with why it failed.</summary>
    public sealed class DeadLetter
    {
        /// <summary>Wraps one dead-letter entry as read from Redis.</summary>
        public DeadLetter(long index, string item, string reason, int attempts, DateTimeOffset? firstFailure, DateTimeOffset? lastFailure)
        {
            Index = index;
            Item = item;
            Reason = reason;
            Attempts = attempts;
            FirstFailure = firstFailure;
            LastFailure = lastFailure;
        }

        /// <summary>Position in the dead-letter list, oldest first.</summary>
        public long Index { get; }
        /// <summary>The original item text (bytes that are not UTF-8 show as U+FFFD; see ItemBytes).</summary>
        public string Item { get; }
        /// <summary>The original item, byte for byte.</summary>
        public byte[] ItemBytes { get; set; }
        /// <summary>The partition whose dead-letter list holds it.</summary>
        public int Partition { get; set; }
        /// <summary>Why the item failed (the parse error, or the store's reason for refusing its row).</summary>
        public string Reason { get; }
        /// <summary>How many times the item was dead-lettered (restored and failed again, it counts up).</summary>
        public int Attempts { get; }
        /// <summary>When the item first failed (null when not recorded).</summary>
        public DateTimeOffset? FirstFailure { get; }
        /// <summary>When the item last failed (null when not recorded).</summary>
        public DateTimeOffset? LastFailure { get; }
    }
}
