using System;
using System.Management.Automation;
using WriteBehind.Engine;
using WriteBehind.Engine.Store;

namespace WriteBehind.Commands
{
    /// <summary>One profile as Invoke-WriteBehindFlush -Writer hands it to the script block: its newest state and
    /// version. <see cref="Reject"/> dead-letters it for good while the rest of the group commits.</summary>
    public sealed class FlushRow
    {
        private PSObject _profile;
        private bool _parsed;

        internal FlushRow(ProfileRow row)
        {
            UserId = row.UserId;
            Json = row.Json;
            Version = row.Version;
            IsDeleted = row.IsDeleted;
        }

        public string UserId { get; }
        /// <summary>The profile's JSON text, byte for byte as cached; null when it is deleted.</summary>
        public string Json { get; }
        /// <summary>The profile's fields as properties (null when it is deleted).</summary>
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
        /// <summary>The profile's version: write the row only when it is newer than the one the target holds.</summary>
        public long Version { get; }
        /// <summary>True for a delete (a versioned tombstone).</summary>
        public bool IsDeleted { get; }
        /// <summary>The reason given to <see cref="Reject"/>, or null.</summary>
        public string RejectReason { get; private set; }

        /// <summary>Declines this row for good: its items go to the dead-letter list with the reason; the other rows
        /// of the group count as committed when the script block returns.</summary>
        public void Reject(string reason)
        {
            RejectReason = string.IsNullOrWhiteSpace(reason) ? "rejected" : reason;
        }

        public override string ToString() => UserId + " v" + Version + (IsDeleted ? " (deleted)" : "");
    }
}
