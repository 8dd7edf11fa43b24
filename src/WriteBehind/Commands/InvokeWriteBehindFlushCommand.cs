using System;
using System.Diagnostics;
using System.Management.Automation;
using WriteBehind.Engine;

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

        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            if (!ShouldProcess($"{connection.Layout.QueueName} -> {connection.StoreUri}", "Flush the write queue into the store")) return;
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
                if (StopToken.IsCancellationRequested) WriteStopped(ex.Result);
                else WriteObject(ex.Result);
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
            if (StopToken.IsCancellationRequested) WriteStopped(result);
            else WriteObject(result);
        }

        /// <summary>A stop request (Ctrl+C, SIGINT, a stopped pipeline) ended the flush after the batch in hand.
        /// A stopping pipeline takes no output and no warnings any more, so the result also goes to -OutVariable
        /// (which the runtime would fill from the output) and the line to the host directly.</summary>
        private void WriteStopped(FlushResult result)
        {
            string line = string.Format(System.Globalization.CultureInfo.InvariantCulture,
                "Invoke-WriteBehindFlush stopped on request after the batch in hand: dequeued {0}, persisted {1}, coalesced {2}, dead-lettered {3}, recovered {4}, in flight {5}, {6:F1} s. Nothing is lost.",
                result.Dequeued, result.Persisted, result.Coalesced, result.DeadLettered, result.Recovered, result.InFlight, result.Duration.TotalSeconds);
            try
            {
                WriteWarning(line);
                WriteObject(result);
            }
            catch (PipelineStoppedException)
            {
                AddToOutVariable(result);
                if (WarningsWanted())
                {
                    try { Host?.UI?.WriteWarningLine(line); }
                    catch (Exception) { /* a host without a UI: the result is still in -OutVariable */ }
                }
                throw;
            }
        }

        private bool WarningsWanted()
        {
            var preference = GetVariableValue("WarningPreference");
            if (MyInvocation.BoundParameters.TryGetValue("WarningAction", out var action)) preference = action;
            string text = preference?.ToString();
            return text != nameof(ActionPreference.SilentlyContinue) && text != nameof(ActionPreference.Ignore);
        }

        private void AddToOutVariable(FlushResult result)
        {
            if (!MyInvocation.BoundParameters.TryGetValue("OutVariable", out var value) || value == null) return;
            string name = value.ToString().TrimStart('+');
            if (name.Length == 0) return;
            if (SessionState.PSVariable.GetValue(name) is System.Collections.IList list && !list.IsFixedSize && !list.IsReadOnly) list.Add(result);
            else SessionState.PSVariable.Set(name, new System.Collections.ArrayList { result });
        }

        private void CompleteProgress(ProgressRecord record, bool shown)
        {
            if (!shown) return;
            record.RecordType = ProgressRecordType.Completed;
            try { WriteProgress(record); }
            catch (PipelineStoppedException) { /* a stopping pipeline takes no progress: WriteStopped reports instead */ }
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
