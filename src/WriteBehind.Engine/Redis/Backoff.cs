// The one retry policy of the Redis side: waits between attempts, growing up to a cap, until a deadline.
using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;

namespace WriteBehind.Engine.Redis
{
    /// <summary>Paces a loop that tries again: the first wait is <c>first</c>, each next one twice the last
    /// up to <c>max</c>, and no try starts once <c>timeout</c> has passed since the policy was made. A
    /// producer at the high-water mark under the Block policy retries on it; a wait for queue items that
    /// cannot block (several partitions) polls on it with a fixed period (first = max).</summary>
    internal sealed class Backoff
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly TimeSpan _max;
        private readonly TimeSpan _timeout;
        private TimeSpan _next;

        public Backoff(TimeSpan first, TimeSpan max, TimeSpan timeout)
        {
            _next = first;
            _max = max;
            _timeout = timeout;
        }

        /// <summary>A producer's retries while the queue is full: 20 ms doubling up to 500 ms.</summary>
        public static Backoff ForFullQueue(TimeSpan timeout) => new Backoff(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(500), timeout);

        /// <summary>Whether the deadline is still ahead, so another try may follow.</summary>
        public bool CanRetry => _clock.Elapsed < _timeout;

        /// <summary>Waits before the next try (a cancellation ends the wait with OperationCanceledException).</summary>
        public async Task WaitAsync(CancellationToken cancellationToken = default)
        {
            await Task.Delay(_next, cancellationToken).ConfigureAwait(false);
            _next = TimeSpan.FromTicks(Math.Min(_next.Ticks * 2, _max.Ticks));
        }
    }
}
