using System.Management.Automation;
using WriteBehind.Engine;
using WriteBehind.Engine.Store;

namespace WriteBehind.Commands
{
    /// <summary>Compares every profile's version and JSON in the cache with the store and reports drift.</summary>
    [Cmdlet(VerbsDiagnostic.Test, "WriteBehindConsistency", SupportsShouldProcess = true)]
    [OutputType(typeof(ConsistencyReport), typeof(bool))]
    public sealed class TestWriteBehindConsistencyCommand : WriteBehindCmdlet
    {
        /// <summary>Queue what is needed to converge (a persist of the cache's state), and read back into
        /// the cache what only the store still has.</summary>
        [Parameter]
        public SwitchParameter Repair { get; set; }

        /// <summary>Output only $true (consistent: no drift and nothing queued or in flight) or $false.</summary>
        [Parameter]
        public SwitchParameter Quiet { get; set; }

        /// <summary>With -Quiet: $true also while items are queued or in flight, as long as nothing drifts
        /// beyond what they will converge (for a check that runs beside busy producers).</summary>
        [Parameter]
        public SwitchParameter IgnorePending { get; set; }

        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            bool repair = Repair && ShouldProcess(connection.Layout.QueueName, "Queue persists for drifted profiles");
            ConsistencyReport report;
            try
            {
                report = Run(ct => new ConsistencyChecker(connection).CheckAsync(repair, ct));
            }
            catch (System.Exception ex) when (ex is WriteBehindException || ex is StoreException)
            {
                ThrowFailure(ex, null);
                return;
            }
            WriteVerbose(report.Summary);
            if (Quiet) { WriteObject(IgnorePending ? report.DriftCount == 0 : report.IsConsistent); return; }
            WriteObject(report);
        }
    }
}
