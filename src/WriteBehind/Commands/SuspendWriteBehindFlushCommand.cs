using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Pauses every flusher of the connection's key prefix at its next batch boundary (maintenance).</summary>
    [Cmdlet(VerbsLifecycle.Suspend, "WriteBehindFlush", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(FlushPause))]
    public sealed class SuspendWriteBehindFlushCommand : WriteBehindCmdlet
    {
        /// <summary>Why (shown by Get-WriteBehindStatus, the metrics and every paused flusher).</summary>
        [Parameter(Position = 0)]
        [ValidateLength(0, 500)]
        public string Reason { get; set; }

        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            if (!ShouldProcess(connection.Layout.Paused, "Pause every flusher at its next batch boundary")) return;
            try
            {
                var pause = Run(_ => connection.SuspendFlushAsync(Reason));
                WriteVerbose($"Flushers of {connection.Layout.QueueName} paused since {pause.Since:u}{(pause.Reason != null ? " (" + pause.Reason + ")" : "")}; producers go on up to the high-water mark.");
                WriteObject(pause);
            }
            catch (WriteBehindException ex)
            {
                ThrowFailure(ex, connection.Layout.Paused);
            }
        }
    }
}
