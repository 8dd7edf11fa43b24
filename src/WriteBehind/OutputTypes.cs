using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>A profile as Get-UserProfile and Set-UserProfile -PassThru show it.</summary>
    public sealed class UserProfile
    {
        public UserProfile(string userId, string json, long version, ProfileSource source)
        {
            UserId = userId;
            Json = json;
            Version = version;
            Source = source;
        }

        private PSObject _profile;
        private bool _parsed;

        public string UserId { get; }
        /// <summary>The profile's fields as properties (read from <see cref="Json"/> when first asked for).</summary>
        public PSObject Profile
        {
            get
            {
                if (!_parsed)
                {
                    _profile = ProfileJson.ToObject(Json) as PSObject;
                    _parsed = true;
                }
                return _profile;
            }
        }
        /// <summary>The JSON text, byte for byte as cached.</summary>
        public string Json { get; }
        public long Version { get; }
        public ProfileSource Source { get; }
    }

    /// <summary>What Clear-WriteQueue dropped.</summary>
    public sealed class WriteQueueClearResult
    {
        public WriteQueueClearResult(string queue, long dropped)
        {
            Queue = queue;
            Dropped = dropped;
        }

        public string Queue { get; }
        public long Dropped { get; }
    }

    /// <summary>What Add-WriteQueueItem -PassThru and Remove-UserProfile -PassThru report per item.</summary>
    public sealed class WriteQueueItem
    {
        public WriteQueueItem(string queue, string item)
        {
            Queue = queue;
            Item = item;
        }

        public string Queue { get; }
        public string Item { get; }
    }
}
