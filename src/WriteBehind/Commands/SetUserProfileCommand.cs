using System;
using System.Collections.Generic;
using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Writes profiles to the cache at once and queues their persist, atomically.</summary>
    [Cmdlet(VerbsCommon.Set, "UserProfile", SupportsShouldProcess = true)]
    [OutputType(typeof(UserProfile))]
    public sealed class SetUserProfileCommand : WriteBehindCmdlet
    {
        private const int ChunkSize = 1000;
        private readonly List<KeyValuePair<string, string>> _buffer = new List<KeyValuePair<string, string>>(ChunkSize);

        [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
        [Alias("Id")]
        [ValidateNotNullOrEmpty]
        public string UserId { get; set; }

        /// <summary>JSON text (stored byte for byte), a dictionary, or an object whose properties become the profile.</summary>
        [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Json")]
        public object Profile { get; set; }

        /// <summary>Warm the cache only: no persist is queued.</summary>
        [Parameter]
        public SwitchParameter CacheOnly { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override void ProcessRecord()
        {
            string json;
            try
            {
                UserIds.Validate(UserId);
                json = ProfileJson.FromInput(Profile);
            }
            catch (WriteBehindException ex)
            {
                WriteFailure(ex, UserId);
                return;
            }
            if (!ShouldProcess(KeyNames.Field(UserId), CacheOnly ? "Set cached profile" : "Set profile and queue its persist")) return;
            _buffer.Add(new KeyValuePair<string, string>(UserId, json));
            if (_buffer.Count >= ChunkSize) Send();
        }

        protected override void EndProcessing() => Send();

        private void Send()
        {
            if (_buffer.Count == 0) return;
            var chunk = _buffer.ToArray();
            _buffer.Clear();
            if (!TrySendChunk(chunk, p => p.Key, c => c.SetProfilesAsync(chunk, queue: !CacheOnly), out long[] versions)) return;
            if (!PassThru) return;
            for (int i = 0; i < chunk.Length; i++)
                WriteObject(new UserProfile(chunk[i].Key, chunk[i].Value, versions[i], ProfileSource.Cache));
        }
    }
}
