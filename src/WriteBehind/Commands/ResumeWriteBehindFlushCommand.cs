using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Lets paused flushers go on (a continuous flusher resumes within a second).</summary>
    [Cmdlet(VerbsLifecycle.Resume, "WriteBehindFlush", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(FlushPause))]
    public sealed class ResumeWriteBehindFlushCommand : WriteBehindCmdlet
    {
        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            if (!ShouldProcess(connection.Layout.Paused, "Let the paused flushers go on")) return;
            try
            {
                var lifted = Run(_ => connection.ResumeFlushAsync());
                WriteVerbose(lifted.Paused
                    ? $"Lifted the pause of {connection.Layout.QueueName} (since {lifted.Since:u}{(lifted.Reason != null ? ", " + lifted.Reason : "")})."
                    : $"The flushers of {connection.Layout.QueueName} were not paused.");
                WriteObject(new FlushPause { Paused = false, KeyName = connection.Layout.Paused });
            }
            catch (WriteBehindException ex)
            {
                ThrowFailure(ex, connection.Layout.Paused);
            }
        }
    }
}
