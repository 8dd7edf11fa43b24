using System.Management.Automation;
using System.Threading;
using System.Threading.Tasks;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Deletes profiles from the cache at once and queues versioned tombstones, atomically.</summary>
    [Cmdlet(VerbsCommon.Remove, "UserProfile", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(WriteQueueItem))]
    public sealed class RemoveUserProfileCommand : ChunkingCmdlet<string, bool[]>
    {
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Id")]
        [ArgumentCompleter(typeof(UserIdCompleter))]
        [ValidateNotNullOrEmpty]
        public string[] UserId { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override int ChunkSize => 1000;

        protected override void ProcessRecord()
        {
            foreach (var id in UserId)
            {
                try { UserIds.Validate(id); }
                catch (WriteBehindException ex) { WriteFailure(ex, id); continue; }
                if (!ConfirmsSilently && !ShouldProcess(KeyNames.Field(id), "Remove profile and queue its delete")) continue;
                Add(id);
            }
        }

        protected override Task<bool[]> SendAsync(WriteBehindConnection connection, string[] chunk, bool pipelined, CancellationToken cancellationToken) =>
            connection.RemoveProfilesAsync(chunk, pipelined, cancellationToken);

        protected override object TargetOf(string item) => item;

        protected override void Completed(string[] chunk, bool[] removed)
        {
            if (!PassThru) return;
            var layout = ResolvedConnection.Layout;
            foreach (var id in chunk) WriteObject(new WriteQueueItem(layout.Of(id).Queue, "delete:user:" + id));
        }

        protected override string StopReport(long written, long notSent, long notConfirmed) =>
            StopLine("Remove-UserProfile", written, "profile(s) removed from the cache and their deletes queued", notSent, notConfirmed);
    }
}
