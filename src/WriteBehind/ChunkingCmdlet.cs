using System;
using System.Collections.Generic;
using System.Management.Automation;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Base of the cmdlets that batch pipeline input (Set-UserProfile, Remove-UserProfile,
    /// Add-WriteQueueItem, Get-UserProfile -UserId): records go into chunks, each chunk is one engine call,
    /// and up to <see cref="MaxInFlight"/> chunks' round trips run while the pipeline fills the next one.
    /// Chunks are sent, and their results written, in the order the records came; Write* is called only here,
    /// on the pipeline thread. A chunk refused with QueueFull wrote nothing (with several partitions: nothing of the full partitions): each refused record gets its own
    /// error and the pipeline goes on. Any other failure ends the command, after the chunks already sent have
    /// been waited for and reported. EndProcessing sends the rest and waits for every chunk in flight; a stop
    /// request (Ctrl+C) sends nothing more, waits for the chunks in flight, and says on the host what was
    /// written (<see cref="StopReport"/>).</summary>
    /// <typeparam name="TItem">One buffered record, as the engine call takes it.</typeparam>
    /// <typeparam name="TReply">What the engine call returns for a chunk.</typeparam>
    public abstract class ChunkingCmdlet<TItem, TReply> : WriteBehindCmdlet, IDisposable
    {
        /// <summary>Chunks sent and not yet reported, at most; 1 while a refused chunk may be retried
        /// (<see cref="CanPipeline"/> false), since a later chunk must never overtake it.</summary>
        protected const int MaxInFlight = 4;

        private readonly Queue<InFlight> _inFlight = new Queue<InFlight>(MaxInFlight);
        private TItem[] _buffer;
        private int _count;
        private long _received;
        private long _written;
        private long _refused;
        private long _notConfirmed;
        private bool _disposing;   // past the pipeline: outcomes are counted, nothing more is written

        private sealed class InFlight
        {
            public TItem[] Items;
            public Task<TReply> Reply;
        }

        /// <summary>Records per engine call.</summary>
        protected abstract int ChunkSize { get; }

        /// <summary>Starts the engine call for one chunk. <paramref name="pipelined"/>: later chunks may be
        /// sent before its reply (the engine then must not retry it behind them).</summary>
        protected abstract Task<TReply> SendAsync(WriteBehindConnection connection, TItem[] chunk, bool pipelined, CancellationToken cancellationToken);

        /// <summary>The target a record's ErrorRecord names.</summary>
        protected abstract object TargetOf(TItem item);

        /// <summary>Writes what a chunk's call returned (-PassThru objects), on the pipeline thread.</summary>
        protected abstract void Completed(TItem[] chunk, TReply reply);

        /// <summary>Whether several chunks may be in flight. False under -Backpressure Block for the writers:
        /// there a refused chunk waits and is sent again, and the chunk behind it must not be applied first.</summary>
        protected virtual bool CanPipeline(WriteBehindConnection connection) => connection.Options.Backpressure != BackpressurePolicy.Block;

        /// <summary>The host line after a stop request: the records written (acknowledged by Redis), those
        /// received but not sent (not written), and those sent whose call failed (not confirmed); null for none
        /// (reads).</summary>
        protected virtual string StopReport(long written, long notSent, long notConfirmed) => null;

        /// <summary>"&lt;Cmdlet&gt; stopped on request: N &lt;what&gt;; M received but not sent were not written."</summary>
        protected static string StopLine(string cmdlet, long written, string what, long notSent, long notConfirmed)
        {
            var line = new System.Text.StringBuilder();
            line.Append(cmdlet).Append(" stopped on request: ").Append(written.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(' ').Append(what);
            if (notSent > 0) line.Append("; ").Append(notSent.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(" received but not sent were not written");
            if (notConfirmed > 0) line.Append("; ").Append(notConfirmed.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(" sent whose reply failed may or may not have been written (each chunk whole or not at all)");
            return line.Append('.').ToString();
        }

        /// <summary>Buffers one record; a full chunk is sent.</summary>
        [MethodImpl(HotPath.Optimize)]
        protected void Add(TItem item)
        {
            if (_buffer == null) _buffer = new TItem[ChunkSize];
            _buffer[_count++] = item;
            _received++;
            if (_count == _buffer.Length) Dispatch(last: false);
            else if (_inFlight.Count > 0 && _inFlight.Peek().Reply.IsCompleted) Report(_inFlight.Dequeue());
        }

        protected override void EndProcessing()
        {
            Dispatch(last: true);
            while (_inFlight.Count > 0) Report(_inFlight.Dequeue());
        }

        [MethodImpl(HotPath.Optimize)]
        private void Dispatch(bool last)
        {
            // Once stopping, nothing more is sent: what is buffered is reported as not written.
            if (_count == 0 || StopToken.IsCancellationRequested) return;
            var connection = ResolvedConnection;
            bool pipeline = CanPipeline(connection);
            while (_inFlight.Count >= (pipeline ? MaxInFlight : 1)) Report(_inFlight.Dequeue());
            var chunk = _buffer;
            if (_count < chunk.Length) Array.Resize(ref chunk, _count);
            _buffer = null;
            _count = 0;
            // The last chunk has no chunk behind it, so a NOSCRIPT retry cannot be overtaken.
            bool pipelined = pipeline && !last;
            Task<TReply> reply;
            try { reply = SendAsync(connection, chunk, pipelined, StopToken); }
            catch (Exception ex) { reply = FromException(ex); }
            _inFlight.Enqueue(new InFlight { Items = chunk, Reply = reply });
            if (!pipeline) Report(_inFlight.Dequeue());
        }

        private static Task<TReply> FromException(Exception ex)
        {
            var failed = new TaskCompletionSource<TReply>();
            failed.SetException(ex);
            return failed.Task;
        }

        /// <summary>Waits for a chunk and writes its outcome.</summary>
        [MethodImpl(HotPath.Optimize)]
        private void Report(InFlight chunk)
        {
            TReply reply;
            try
            {
                reply = chunk.Reply.GetAwaiter().GetResult();
            }
            catch (WriteBehindException ex) when (ex.ErrorId == ErrorIds.QueueFull)
            {
                Refused(chunk, ex);
                return;
            }
            catch (OperationCanceledException) when (StopToken.IsCancellationRequested)
            {
                // a backpressure wait ended by the stop request: the chunk was refused, nothing written
                _refused += chunk.Items.Length;
                return;
            }
            catch (Exception ex)
            {
                _notConfirmed += chunk.Items.Length;
                // The chunks sent after it are waited for and reported before the command ends.
                while (_inFlight.Count > 0)
                {
                    var next = _inFlight.Dequeue();
                    if (!Succeeded(next, out TReply later)) continue;
                    _written += next.Items.Length;
                    Completed(next.Items, later);
                }
                ThrowFailure(ex, null);
                return;
            }
            _written += chunk.Items.Length;
            Completed(chunk.Items, reply);
        }

        private bool Succeeded(InFlight chunk, out TReply reply)
        {
            try
            {
                reply = chunk.Reply.GetAwaiter().GetResult();
                return true;
            }
            catch (Exception ex)
            {
                if (ex is WriteBehindException wbe && wbe.ErrorId == ErrorIds.QueueFull)
                    Refused(chunk, wbe);
                else if (ex is OperationCanceledException)
                    _refused += chunk.Items.Length;
                else
                    _notConfirmed += chunk.Items.Length;
                reply = default;
                return false;
            }
        }

        /// <summary>A chunk a full queue refused: each refused record gets its own QueueFull. With several
        /// partitions only the full partitions' records are refused; the others' were written and complete.</summary>
        private void Refused(InFlight chunk, WriteBehindException queueFull)
        {
            if (queueFull is QueueFullPartlyException partly && partly.Refused.Length == chunk.Items.Length && partly.Accepted is TReply accepted)
            {
                var written = new List<TItem>(chunk.Items.Length);
                var kept = new List<int>(chunk.Items.Length);
                for (int i = 0; i < chunk.Items.Length; i++)
                {
                    if (!partly.Refused[i]) { written.Add(chunk.Items[i]); kept.Add(i); continue; }
                    _refused++;
                    if (!_disposing) WriteFailure(queueFull, TargetOf(chunk.Items[i]));
                }
                _written += written.Count;
                if (!_disposing) Completed(written.ToArray(), Keep(accepted, kept));
                return;
            }
            _refused += chunk.Items.Length;
            if (_disposing) return;
            foreach (var item in chunk.Items) WriteFailure(queueFull, TargetOf(item));
        }

        /// <summary>A reply cut down to the records kept: an array reply (one entry per record) keeps their entries;
        /// any other reply stands for the call as a whole.</summary>
        private static TReply Keep(TReply reply, List<int> kept)
        {
            if (!(reply is Array all)) return reply;
            var some = Array.CreateInstance(all.GetType().GetElementType(), kept.Count);
            for (int j = 0; j < kept.Count; j++) some.SetValue(all.GetValue(kept[j]), j);
            return (TReply)(object)some;
        }

        /// <summary>After a stop request (or a downstream command that took all it wanted) the chunks still in
        /// flight are waited for here: they were sent, and each is applied whole or not at all. After a stop
        /// request the host is told what was written.</summary>
        public void Dispose()
        {
            _disposing = true;
            while (_inFlight.Count > 0)
            {
                var chunk = _inFlight.Dequeue();
                if (Succeeded(chunk, out _)) _written += chunk.Items.Length;
            }
            if (!StopToken.IsCancellationRequested) return;
            long notSent = _received - _written - _refused - _notConfirmed;
            string line = StopReport(_written, notSent < 0 ? 0 : notSent, _notConfirmed);
            if (line == null || !WarningsWanted()) return;
            try { Host?.UI?.WriteWarningLine(line); }
            catch (Exception) { /* a host without a UI */ }
        }
    }
}
