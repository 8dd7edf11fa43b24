using System;

namespace WriteBehind.Engine
{
    /// <summary>One profile's state wherever it is read or written: the cache, the queue's flush, the store. Its JSON
    /// text (null for a delete, a versioned tombstone) and version, and, when it was read, where from
    /// (<see cref="Source"/>) and when the store last wrote it (<see cref="UpdatedAt"/>).</summary>
    public sealed class ProfileRow
    {
        /// <summary>A profile on its way to the store (the flush's rows).</summary>
        public ProfileRow(string userId, string json, long version)
            : this(userId, json, version, null, null)
        {
        }

        /// <summary>A profile as read from the cache or the store.</summary>
        public ProfileRow(string userId, string json, long version, ProfileSource source)
            : this(userId, json, version, source, null)
        {
        }

        /// <summary>A profile as a store holds it, with the time the store last wrote it.</summary>
        public ProfileRow(string userId, string json, long version, DateTimeOffset updatedAt)
            : this(userId, json, version, ProfileSource.Store, updatedAt)
        {
        }

        private ProfileRow(string userId, string json, long version, ProfileSource? source, DateTimeOffset? updatedAt)
        {
            UserId = userId ?? throw new ArgumentNullException(nameof(userId));
            Json = json;
            Version = version;
            Source = source;
            UpdatedAt = updatedAt;
        }

        /// <summary>The user id (without the <c>user:</c> of its cache field).</summary>
        public string UserId { get; }
        /// <summary>The JSON text, byte for byte; null when the profile is deleted (a tombstone).</summary>
        public string Json { get; }
        /// <summary>The version this state has in Redis: the store writes it only over an older one.</summary>
        public long Version { get; }
        /// <summary>True for a delete (a versioned tombstone).</summary>
        public bool IsDeleted => Json == null;
        /// <summary>Where the row was read from; null for a row on its way to the store.</summary>
        public ProfileSource? Source { get; }
        /// <summary>When the store last wrote the row; null when it was not read from a store.</summary>
        public DateTimeOffset? UpdatedAt { get; }
    }
}
