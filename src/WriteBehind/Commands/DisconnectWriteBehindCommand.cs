using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Closes the session's connection (or the one given).</summary>
    [Cmdlet(VerbsCommunications.Disconnect, "WriteBehind")]
    [OutputType(typeof(void))]
    public sealed class DisconnectWriteBehindCommand : PSCmdlet
    {
        [Parameter(ValueFromPipeline = true)]
        public WriteBehindConnection Connection { get; set; }

        protected override void ProcessRecord()
        {
            if (Connection == null)
            {
                if (!ConnectionRegistry.ClearDefault()) WriteVerbose("No connection was open.");
                return;
            }
            if (!ConnectionRegistry.ClearDefault(Connection)) Connection.Dispose();
        }
    }
}
