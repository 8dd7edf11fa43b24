using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Empties the write queue (pending persists are dropped; the cache is untouched).</summary>
    [Cmdlet(VerbsCommon.Clear, "WriteQueue", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [OutputType(typeof(WriteQueueClearResult))]
    public sealed class ClearWriteQueueCommand : WriteBehindCmdlet
    {
        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            if (!ShouldProcess(connection.Layout.QueueName, "Drop every pending item")) return;
            try
            {
                long dropped = Run(_ => connection.ClearQueueAsync());
                WriteObject(new WriteQueueClearResult(connection.Layout.QueueName, dropped));
            }
            catch (WriteBehindException ex)
            {
                ThrowFailure(ex, connection.Layout.QueueName);
            }
        }
    }
}
