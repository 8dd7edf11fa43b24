using System.Collections.Generic;
using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Deletes profiles from the cache at once and queues versioned tombstones, atomically.</summary>
    [Cmdlet(VerbsCommon.Remove, "UserProfile", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
    [OutputType(typeof(WriteQueueItem))]
    public sealed class RemoveUserProfileCommand : WriteBehindCmdlet
    {
        private const int ChunkSize = 1000;
        private readonly List<string> _buffer = new List<string>(ChunkSize);

        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Id")]
        [ArgumentCompleter(typeof(UserIdCompleter))]
        [ValidateNotNullOrEmpty]
        public string[] UserId { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void ProcessRecord()
        {
            foreach (var id in UserId)
            {
                try { UserIds.Validate(id); }
                catch (WriteBehindException ex) { WriteFailure(ex, id); continue; }
                if (!ShouldProcess(KeyNames.Field(id), "Remove profile and queue its delete")) continue;
                _buffer.Add(id);
                if (_buffer.Count >= ChunkSize) Send();
            }
        }

        protected override void EndProcessing() => Send();

        private void Send()
        {
            if (_buffer.Count == 0) return;
            var chunk = _buffer.ToArray();
            _buffer.Clear();
            if (!TrySendChunk(chunk, id => id, c => c.RemoveProfilesAsync(chunk), out _)) return;
            if (PassThru)
                foreach (var id in chunk) WriteObject(new WriteQueueItem(ResolvedConnection.Layout.Of(id).Queue, "delete:user:" + id));
        }
    }
}
