using System.Management.Automation;
using WriteBehind.Engine;
using WriteBehind.Engine.Store;

namespace WriteBehind.Commands
{
    /// <summary>Queue depth, items in flight, dead letters, cached and stored profiles, last flush, lag.</summary>
    [Cmdlet(VerbsCommon.Get, "WriteBehindStatus")]
    [OutputType(typeof(WriteBehindStatus))]
    public sealed class GetWriteBehindStatusCommand : WriteBehindCmdlet
    {
        /// <summary>Skip counting the store's profiles (no store access).</summary>
        [Parameter]
        public SwitchParameter NoStore { get; set; }

        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            try
            {
                WriteObject(Run(ct => connection.GetStatusAsync(!NoStore, ct)));
            }
            catch (System.Exception ex) when (ex is WriteBehindException || ex is StoreException)
            {
                ThrowFailure(ex, null);
            }
        }
    }
}
