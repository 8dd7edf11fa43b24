using System;

namespace WriteBehind.Engine
{
    public enum ProfileSource { Cache, Store }

    /// <summary>One flush's accounting: Dequeued = Persisted + Coalesced + DeadLettered (+ InFlight when
    /// the flush ended on an error).</summary>
    public sealed class FlushResult
    {
        public long Dequeued { get; set; }
        /// <summary>Distinct profiles whose latest state the store committed (or already held).</summary>
        public long Persisted { get; set; }
        /// <summary>Items folded into another item's store write for the same profile in the same batch.</summary>
        public long Coalesced { get; set; }
        public long DeadLettered { get; set; }
        /// <summary>Items dequeued by this flush that are still in a lease (only when it ended on an error).</summary>
        public long InFlight { get; set; }
        /// <summary>Items of expired leases (of crashed or failed flushers) re-persisted by this flush.</summary>
        public long Recovered { get; set; }
        /// <summary>Store rows skipped because the store already held that version or a newer one.</summary>
        public long StaleSkipped { get; set; }
        public int Batches { get; set; }
        public TimeSpan Duration { get; set; }
        public double ItemsPerSecond => Duration.TotalSeconds > 0 ? Math.Round(Dequeued / Duration.TotalSeconds, 1) : 0;
        public DateTimeOffset StartedAt { get; set; }
        public string Error { get; set; }
        /// <summary>The stable id of the error the flush ended on (null when it did not fail).</summary>
        public string ErrorId { get; set; }
        /// <summary>True when the flush found the flushers paused (Suspend-WriteBehindFlush) and took no
        /// further batch; <see cref="PausedReason"/> says why.</summary>
        public bool Paused { get; set; }
        public string PausedReason { get; set; }
        /// <summary>True when a stop request (Ctrl+C, SIGINT) ended the flush after the batch in hand.</summary>
        public bool Stopped { get; set; }
    }

    /// <summary>Whether the flushers are paused (Suspend-WriteBehindFlush), since when, why and by whom.</summary>
    public sealed class FlushPause
    {
        public bool Paused { get; set; }
        public DateTimeOffset? Since { get; set; }
        public string Reason { get; set; }
        /// <summary>The host and user that paused them.</summary>
        public string By { get; set; }
        public string KeyName { get; set; }
    }

    public sealed class FlushProgress
    {
        public long Dequeued { get; set; }
        public long Remaining { get; set; }
        public double ItemsPerSecond { get; set; }
        public int Batches { get; set; }
        public int BatchProfiles { get; set; }
        public TimeSpan BatchDuration { get; set; }
    }

    public sealed class WriteBehindStatus
    {
        public string Redis { get; set; }
        public string Store { get; set; }
        public string KeyPrefix { get; set; }
        public int Partitions { get; set; } = 1;
        /// <summary>Each partition's figures (one entry unless -Partitions is above 1).</summary>
        public PartitionStatus[] PartitionDetails { get; set; }
        public long QueueDepth { get; set; }
        public long InFlight { get; set; }
        public long Leases { get; set; }
        public long ExpiredLeases { get; set; }
        public long DeadLetters { get; set; }
        public long CachedProfiles { get; set; }
        public long? StoredProfiles { get; set; }
        public long HighWaterMark { get; set; }
        public DateTimeOffset? LastFlushAt { get; set; }
        public long? LastFlushDequeued { get; set; }
        public double? LastFlushItemsPerSecond { get; set; }
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
        public DateTimeOffset? PausedSince { get; set; }
        public string PausedReason { get; set; }
    }

    /// <summary>Cumulative flush counters shared by every flusher (HINCRBY in write_queue:stats).</summary>
    public sealed class FlushTotals
    {
        public long Dequeued { get; set; }
        public long Persisted { get; set; }
        public long Coalesced { get; set; }
        public long DeadLettered { get; set; }
        public long Recovered { get; set; }
        public long FlushErrors { get; set; }
    }

    /// <summary>One partition's queue, leases, dead letters and current owner (the flusher draining it).</summary>
    public sealed class PartitionStatus
    {
        public int Partition { get; set; }
        public string Queue { get; set; }
        public long QueueDepth { get; set; }
        public long InFlight { get; set; }
        public long Leases { get; set; }
        public long ExpiredLeases { get; set; }
        public long DeadLetters { get; set; }
        public long CachedProfiles { get; set; }
        public string Owner { get; set; }
        /// <summary>The age of this partition's oldest pending item (see WriteBehindStatus.Lag).</summary>
        public TimeSpan Lag { get; set; }
        public DateTimeOffset? OldestPendingSince { get; set; }
    }

    public sealed class DeadLetter
    {
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
        public string Reason { get; }
        public int Attempts { get; }
        public DateTimeOffset? FirstFailure { get; }
        public DateTimeOffset? LastFailure { get; }
    }
}
