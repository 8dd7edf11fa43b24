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

    /// <summary>QueueFull for part of a call: with several partitions each partition's script runs on its own, so a
    /// partition at its high-water mark refuses its records while the others' were written. <see cref="Refused"/>
    /// says which records (by index in the call) were refused; <see cref="Accepted"/> is the call's reply for the
    /// others (refused entries left at their default).</summary>
    public sealed class QueueFullPartlyException : WriteBehindException
    {
        /// <summary>A QueueFull of which only the records flagged in <paramref name="refused"/> were refused.</summary>
        public QueueFullPartlyException(WriteBehindException queueFull, bool[] refused, object accepted)
            : base(ErrorIds.QueueFull, queueFull.Message, queueFull)
        {
            Refused = refused;
            Accepted = accepted;
        }

        /// <summary>For each record of the call, whether its partition refused it.</summary>
        public bool[] Refused { get; }

        /// <summary>The reply for the records written (the same shape as the call's full reply).</summary>
        public object Accepted { get; }
    }
}
