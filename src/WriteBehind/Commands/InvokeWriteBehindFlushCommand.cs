using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Management.Automation;
using System.Threading;
using System.Threading.Tasks;
using WriteBehind.Engine;
using WriteBehind.Engine.Store;

namespace WriteBehind.Commands
{
    /// <summary>Drains the write queue into the store, oldest first, in batches.</summary>
    [Cmdlet(VerbsLifecycle.Invoke, "WriteBehindFlush", SupportsShouldProcess = true)]
    [OutputType(typeof(FlushResult))]
    public sealed class InvokeWriteBehindFlushCommand : WriteBehindCmdlet
    {
        [Parameter]
        [ValidateRange(1, 5000)]
        public int BatchSize { get; set; } = 1000;

        /// <summary>Items per store transaction (several leases are committed together).</summary>
        [Parameter]
        [ValidateRange(1, 1000000)]
        public int CommitSize { get; set; } = 20000;

        /// <summary>Stop after this many items (default: until the queue is empty).</summary>
        [Parameter]
        [ValidateRange(1, long.MaxValue)]
        public long MaxItems { get; set; }

        /// <summary>Take no new batch after this long.</summary>
        [Parameter]
        public TimeSpan MaxDuration { get; set; }

        /// <summary>How long a batch is safe from recovery by other flushers (renewed while it runs).</summary>
        [Parameter]
        public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(60);

        /// <summary>How long transient store errors are retried before the flush fails.</summary>
        [Parameter]
        public TimeSpan RetryTimeout { get; set; } = TimeSpan.FromSeconds(30);

        /// <summary>Only re-persist expired leases of crashed flushers; take nothing new.</summary>
        [Parameter]
        public SwitchParameter RecoverOnly { get; set; }

        /// <summary>Keep flushing until Ctrl+C (or -MaxDuration): drain, then wait for new items with a
        /// blocking pop, and drain again. The batch in hand is finished on stop.</summary>
        [Parameter]
        public SwitchParameter Continuous { get; set; }

        /// <summary>Hands each commit group to this script block (param($Rows)) instead of the store, on the pipeline thread.</summary>
        [Parameter]
        [ValidateNotNull]
        public ScriptBlock Writer { get; set; }

        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            if (!ShouldProcess($"{connection.Layout.QueueName} -> {(Writer != null ? "the writer script block" : connection.StoreUri)}", "Flush the write queue into the store")) return;
            var options = new FlushOptions
            {
                BatchSize = BatchSize,
                CommitSize = CommitSize,
                MaxItems = MaxItems,
                MaxDuration = MyInvocation.BoundParameters.ContainsKey(nameof(MaxDuration)) ? MaxDuration : (TimeSpan?)null,
                LeaseDuration = LeaseDuration,
                RetryTimeout = RetryTimeout,
                RecoverOnly = RecoverOnly,
            };
            var activity = "Flushing " + connection.Layout.QueueName;
            var progressRecord = new ProgressRecord(1, activity, "Starting");
            var throttle = Stopwatch.StartNew();
            bool reported = false;
            bool progressShown = false;
            FlushResult result;
            try
            {
                result = RunPumping((ct, post) =>
                {
                    if (Writer != null) options.Store = new WriterStore("writer script block", WriteOnPipelineThread(post));
                    var flusher = new Flusher(connection);
                    flusher.Log += message => post(() => WriteVerbose(message));
                    var progress = new SynchronousProgress<FlushProgress>(p =>
                    {
                        // the first report at once, then at most four a second
                        if (reported && throttle.ElapsedMilliseconds < 250) return;
                        reported = true;
                        throttle.Restart();
                        post(() =>
                        {
                            long total = p.Dequeued + p.Remaining;
                            progressRecord.StatusDescription = $"{p.Dequeued:N0} done, {p.Remaining:N0} remaining, {p.ItemsPerSecond:N0} items/s";
                            progressRecord.PercentComplete = total > 0 ? (int)Math.Min(100, p.Dequeued * 100 / total) : 100;
                            WriteProgress(progressRecord);
                            progressShown = true;
                        });
                    });
                    return Continuous ? flusher.RunContinuousAsync(options, progress, ct) : flusher.FlushAsync(options, progress, ct);
                });
            }
            catch (FlushFailedException ex)
            {
                CompleteProgress(progressRecord, progressShown);
                WriteObject(ex.Result);
                ThrowFailure(ex, connection.Layout.QueueName);
                return;
            }
            catch (WriteBehindException ex)
            {
                CompleteProgress(progressRecord, progressShown);
                ThrowFailure(ex, connection.Layout.QueueName);
                return;
            }
            CompleteProgress(progressRecord, progressShown);
            WriteObject(result);
        }

        /// <summary>Runs the writer script block on the pipeline thread (the one pumping <paramref name="post"/>) and
        /// completes when it returns: the flush's commit awaits it from the thread pool.</summary>
        private Func<IReadOnlyList<ProfileRow>, CancellationToken, Task<IReadOnlyDictionary<string, string>>> WriteOnPipelineThread(Action<Action> post)
        {
            return (rows, ct) =>
            {
                // The continuation must not run on the pipeline thread: it is busy pumping.
                var done = new TaskCompletionSource<IReadOnlyDictionary<string, string>>(TaskCreationOptions.RunContinuationsAsynchronously);
                post(() =>
                {
                    try
                    {
                        var handed = rows.Select(r => new FlushRow(r)).ToArray();
                        Writer.Invoke((object)handed);
                        IReadOnlyDictionary<string, string> declined = handed.Where(r => r.RejectReason != null)
                            .GroupBy(r => r.UserId, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().RejectReason, StringComparer.Ordinal);
                        done.SetResult(declined);
                    }
                    catch (Exception ex)
                    {
                        done.SetException(ex);
                    }
                });
                return done.Task;
            };
        }

        private void CompleteProgress(ProgressRecord record, bool shown)
        {
            if (!shown) return;
            record.RecordType = ProgressRecordType.Completed;
            WriteProgress(record);
        }

        /// <summary>IProgress that reports on the caller's thread (Progress&lt;T&gt; would post to the pool).</summary>
        private sealed class SynchronousProgress<T> : IProgress<T>
        {
            private readonly Action<T> _report;
            public SynchronousProgress(Action<T> report) => _report = report;
            public void Report(T value) => _report(value);
        }
    }
}
