using System;

namespace WriteBehind.Engine
{
    /// <summary>Stable error ids; the cmdlets put them into ErrorRecord.FullyQualifiedErrorId.</summary>
    public static class ErrorIds
    {
        public const string InvalidUserId = "InvalidUserId";
        public const string InvalidProfileJson = "InvalidProfileJson";
        public const string InvalidQueueItem = "InvalidQueueItem";
        public const string QueueFull = "QueueFull";
        public const string RedisUnavailable = "RedisUnavailable";
        public const string RedisCommandFailed = "RedisCommandFailed";
        public const string StoreUnavailable = "StoreUnavailable";
        public const string StoreFailed = "StoreFailed";
        public const string InvalidStoreUri = "InvalidStoreUri";
        /// <summary>A mapped table (-StoreTable ...) does not fit the database: a table, key column or mapped column is missing.</summary>
        public const string StoreMappingInvalid = "StoreMappingInvalid";
        public const string InvalidConfiguration = "InvalidConfiguration";
        public const string PartitionMismatch = "PartitionMismatch";
        public const string ClusterNeedsHashTag = "ClusterNeedsHashTag";
        public const string ReplicationTimeout = "ReplicationTimeout";
        /// <summary>A password in a plain parameter (Connect-WriteBehind -Redis '...,password=...').</summary>
        public const string PasswordInParameter = "PasswordInParameter";
        /// <summary>Redis refused a command or key to the connection's user (a NOPERM reply, ACL).</summary>
        public const string RedisPermissionDenied = "RedisPermissionDenied";
        /// <summary>The Redis server's TLS certificate did not validate.</summary>
        public const string TlsValidationFailed = "TlsValidationFailed";
        /// <summary>The store already has a user_profiles table that is not the module's (an application's own).</summary>
        public const string StoreTableMismatch = "StoreTableMismatch";
    }

    /// <summary>An error the engine explains itself; <see cref="ErrorId"/> is stable across versions.</summary>
    public class WriteBehindException : Exception
    {
        public WriteBehindException(string errorId, string message, Exception inner = null) : base(message, inner)
        {
            ErrorId = errorId;
        }

        public string ErrorId { get; }
    }
}
