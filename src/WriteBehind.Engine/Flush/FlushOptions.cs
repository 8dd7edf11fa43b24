// What a flush is asked to do (FlushOptions) and how a failed one reports what it did (FlushFailedException).
using System;
using WriteBehind.Engine.Store;

namespace WriteBehind.Engine
{
    /// <summary>How much one flush takes and how: batch and commit sizes, limits, lease and retry times.</summary>
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

        /// <summary>A copy to change without touching this one.</summary>
        public FlushOptions Clone() => (FlushOptions)MemberwiseClone();
    }

    /// <summary>The flush ended on an error; <see cref="Result"/> says what it did before.</summary>
    public sealed class FlushFailedException : WriteBehindException
    {
        /// <summary>The flush failed with <paramref name="errorId"/>; <paramref name="result"/> holds what it did before.</summary>
        public FlushFailedException(string errorId, string message, FlushResult result, Exception inner)
            : base(errorId, message, inner)
        {
            Result = result;
        }

        /// <summary>What the flush did before it failed (InFlight counts the items still in a lease).</summary>
        public FlushResult Result { get; }
    }
}
