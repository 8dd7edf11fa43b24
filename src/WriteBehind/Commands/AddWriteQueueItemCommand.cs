using System.Collections.Generic;
using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Queues deferred patches (update:user:&lt;id&gt;:&lt;json&gt;) with LPUSH.</summary>
    [Cmdlet(VerbsCommon.Add, "WriteQueueItem", SupportsShouldProcess = true, DefaultParameterSetName = ItemSet)]
    [OutputType(typeof(WriteQueueItem))]
    public sealed class AddWriteQueueItemCommand : WriteBehindCmdlet
    {
        private const string UpdateSet = "Update";
        private const string ItemSet = "Item";
        private const int ChunkSize = 1000;
        private readonly List<string> _buffer = new List<string>(ChunkSize);

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

        private void Buffer(string item)
        {
            if (!ShouldProcess(item, "LPUSH to the write queue")) return;
            _buffer.Add(item);
            if (_buffer.Count >= ChunkSize) Send();
        }

        protected override void EndProcessing() => Send();

        private void Send()
        {
            if (_buffer.Count == 0) return;
            var chunk = _buffer.ToArray();
            _buffer.Clear();
            if (!TrySendChunk(chunk, item => item, c => c.EnqueueAsync(chunk), out _)) return;
            if (PassThru)
                foreach (var item in chunk) WriteObject(new WriteQueueItem(ResolvedConnection.QueueOf(item), item));
        }
    }
}
