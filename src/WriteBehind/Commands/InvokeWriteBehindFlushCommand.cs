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

        /// <summary>Serve the Prometheus metrics on http://127.0.0.1:&lt;port&gt;/metrics while the flush runs.</summary>
        [Parameter]
        [ValidateRange(1, 65535)]
        public int MetricsPort { get; set; }

        /// <summary>Serve the metrics on this HttpListener prefix (e.g. http://+:9464/) instead of loopback.</summary>
        [Parameter]
        [ValidatePattern("^https?://")]
        public string MetricsPrefix { get; set; }

        /// <summary>Append one JSON line per run to this file.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string LogPath { get; set; }

        /// <summary>Hands each commit group to this script block (param($Rows)) instead of the store, on the pipeline thread.</summary>
        [Parameter]
        [ValidateNotNull]
        public ScriptBlock Writer { get; set; }

        protected override void EndProcessing()
        {
            WriteBehindConnection connection;
            try
            {
                connection = ResolveConnection();
            }
            catch (WriteBehindException ex)
            {
                // a run that could not even connect is a failed run too
                if (LogPath != null && !MyInvocation.BoundParameters.ContainsKey("WhatIf"))
                    Log(SessionState.Path.GetUnresolvedProviderPathFromPSPath(LogPath),
                        new FlushResult { StartedAt = DateTimeOffset.UtcNow, Error = ex.Message, ErrorId = ex.ErrorId }, null);
                ThrowFailure(ex, null);
                return;
            }
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
            string logPath = LogPath == null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(LogPath);
            WriteBehind.Engine.Metrics.MetricsServer metrics = null;
            if (MetricsPort > 0 || MetricsPrefix != null)
            {
                try
                {
                    metrics = new WriteBehind.Engine.Metrics.MetricsServer(MetricsPrefix ?? WriteBehind.Engine.Metrics.MetricsServer.LoopbackPrefix(MetricsPort),
                        ct => WriteBehind.Engine.Metrics.PrometheusText.RenderAsync(connection, ct));
                }
                catch (WriteBehindException ex)
                {
                    ThrowFailure(ex, MetricsPrefix ?? MetricsPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    return;
                }
                WriteVerbose($"Serving metrics at {metrics.MetricsUri} while the flush runs.");
            }
            try
            {
                Flush(connection, options, logPath);
            }
            finally
            {
                metrics?.Dispose();
            }
        }

        private void Flush(WriteBehindConnection connection, FlushOptions options, string logPath)
        {
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
                Log(logPath, ex.Result, connection);
                if (StopToken.IsCancellationRequested) WriteStopped(ex.Result);
                else WriteObject(ex.Result);
                ThrowFailure(ex, connection.Layout.QueueName);
                return;
            }
            catch (WriteBehindException ex)
            {
                CompleteProgress(progressRecord, progressShown);
                Log(logPath, new FlushResult { StartedAt = DateTimeOffset.UtcNow, Error = ex.Message, ErrorId = ex.ErrorId, Stopped = StopToken.IsCancellationRequested }, connection);
                ThrowFailure(ex, connection.Layout.QueueName);
                return;
            }
            CompleteProgress(progressRecord, progressShown);
            Log(logPath, result, connection);
            if (result.Paused && !StopToken.IsCancellationRequested)
                WriteWarning($"The flushers of {connection.Layout.QueueName} are paused{(result.PausedReason != null ? " (" + result.PausedReason + ")" : "")}: " +
                             $"{(result.Dequeued > 0 ? "the flush stopped after the batch in hand" : "no batch was taken")}. Resume-WriteBehindFlush lets them go on.");
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

        private void AddToOutVariable(FlushResult result)
        {
            if (!MyInvocation.BoundParameters.TryGetValue("OutVariable", out var value) || value == null) return;
            string name = value.ToString().TrimStart('+');
            if (name.Length == 0) return;
            if (SessionState.PSVariable.GetValue(name) is System.Collections.IList list && !list.IsFixedSize && !list.IsReadOnly) list.Add(result);
            else SessionState.PSVariable.Set(name, new System.Collections.ArrayList { result });
        }

        /// <summary>-LogPath: one JSON line for this run. A log that cannot be written is a warning, never a failed flush.</summary>
        private void Log(string path, FlushResult result, WriteBehindConnection connection)
        {
            if (path == null || result == null) return;
            try
            {
                RunLog.Append(path, result, connection?.Layout.QueueName, connection?.StoreUri, Continuous);
            }
            catch (Exception ex) when (ex is System.IO.IOException || ex is UnauthorizedAccessException || ex is WriteBehindException)
            {
                try { WriteWarning($"Cannot append to the run log '{path}': {ex.Message}"); }
                catch (PipelineStoppedException) { /* stopping: nothing more can be said */ }
            }
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
