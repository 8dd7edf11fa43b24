using System.Management.Automation;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Queues deferred patches (update:user:&lt;id&gt;:&lt;json&gt;) with LPUSH.</summary>
    [Cmdlet(VerbsCommon.Add, "WriteQueueItem", SupportsShouldProcess = true, DefaultParameterSetName = ItemSet)]
    [OutputType(typeof(WriteQueueItem))]
    public sealed class AddWriteQueueItemCommand : ChunkingCmdlet<string, long>
    {
        private const string UpdateSet = "Update";
        private const string ItemSet = "Item";

        [Parameter(Mandatory = true, Position = 0, ParameterSetName = UpdateSet, ValueFromPipelineByPropertyName = true)]
        [Alias("Id")]
        [ArgumentCompleter(typeof(UserIdCompleter))]
        [ValidateNotNullOrEmpty]
        public string UserId { get; set; }

        /// <summary>The changed fields: JSON text (kept byte for byte), a dictionary or an object.</summary>
        [Parameter(Mandatory = true, Position = 1, ParameterSetName = UpdateSet, ValueFromPipelineByPropertyName = true)]
        [Alias("Patch")]
        public object Update { get; set; }

        /// <summary>Raw item text, checked against the grammar before it is pushed.</summary>
        [Parameter(Mandatory = true, ParameterSetName = ItemSet, ValueFromPipeline = true)]
        [AllowEmptyString]
        public string[] Item { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override int ChunkSize => 1000;

        [MethodImpl(HotPath.Optimize)]
        protected override void ProcessRecord()
        {
            if (ParameterSetName == ItemSet)
            {
                foreach (var item in Item)
                {
                    if (!QueueItem.TryParse(item, out _, out string reason))
                    {
                        WriteFailure(new WriteBehindException(ErrorIds.InvalidQueueItem,
                            $"'{Shorten(item)}' is not a valid queue item: {reason}."), item);
                        continue;
                    }
                    Buffer(item);
                }
                return;
            }
            string json;
            try
            {
                UserIds.Validate(UserId);
                json = ProfileJson.FromInput(Update, "update");
            }
            catch (WriteBehindException ex)
            {
                WriteFailure(ex, UserId);
                return;
            }
            Buffer(QueueItem.FormatUpdate(UserId, json));
        }

        private static string Shorten(string s) => s == null ? "" : (s.Length <= 60 ? s : s.Substring(0, 60) + "…");

        [MethodImpl(HotPath.Optimize)]
        private void Buffer(string item)
        {
            if (!ConfirmsSilently && !ShouldProcess(item, "LPUSH to the write queue")) return;
            Add(item);
        }

        protected override Task<long> SendAsync(WriteBehindConnection connection, string[] chunk, bool pipelined, CancellationToken cancellationToken) =>
            connection.EnqueueAsync(chunk, pipelined, cancellationToken);

        protected override object TargetOf(string item) => item;

        [MethodImpl(HotPath.Optimize)]
        protected override void Completed(string[] chunk, long depth)
        {
            if (!PassThru) return;
            var connection = ResolvedConnection;
            foreach (var item in chunk) WriteObject(new WriteQueueItem(connection.QueueOf(item), item));
        }

        protected override string StopReport(long written, long notSent, long notConfirmed) =>
            StopLine("Add-WriteQueueItem", written, "item(s) queued", notSent, notConfirmed);
    }
}
