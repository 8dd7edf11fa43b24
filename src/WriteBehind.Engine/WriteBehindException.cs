using System;

namespace WriteBehind.Engine
{
    /// <summary>Stable error ids; the cmdlets put them into ErrorRecord.FullyQualifiedErrorId.</summary>
    public static class ErrorIds
    {
        /// <summary>A user id outside the grammar (1-128 characters of A-Z a-z 0-9 _ . @ -).</summary>
        public const string InvalidUserId = "InvalidUserId";
        /// <summary>Profile or patch text that is not a strict JSON object.</summary>
        public const string InvalidProfileJson = "InvalidProfileJson";
        /// <summary>A queue item that does not parse (update/set/delete:user:id...).</summary>
        public const string InvalidQueueItem = "InvalidQueueItem";
        /// <summary>The queue reached the high-water mark (under Block: for longer than the backpressure timeout).</summary>
        public const string QueueFull = "QueueFull";
        /// <summary>Redis could not be reached, or the connection was lost.</summary>
        public const string RedisUnavailable = "RedisUnavailable";
        /// <summary>Redis answered a command with an error.</summary>
        public const string RedisCommandFailed = "RedisCommandFailed";
        /// <summary>The store could not be reached or was busy (transient).</summary>
        public const string StoreUnavailable = "StoreUnavailable";
        /// <summary>The store refused an operation (not transient).</summary>
        public const string StoreFailed = "StoreFailed";
        /// <summary>A store URI or path that cannot be parsed or resolved.</summary>
        public const string InvalidStoreUri = "InvalidStoreUri";
        /// <summary>A mapped table (-StoreTable ...) does not fit the database: a table, key column or mapped column is missing.</summary>
        public const string StoreMappingInvalid = "StoreMappingInvalid";
        /// <summary>A setting out of range or inconsistent with another.</summary>
        public const string InvalidConfiguration = "InvalidConfiguration";
        /// <summary>The partition count differs from the one this key prefix was set up with.</summary>
        public const string PartitionMismatch = "PartitionMismatch";
        /// <summary>A Redis Cluster with one partition: it needs -Partitions or a key prefix with a hash tag ({...}).</summary>
        public const string ClusterNeedsHashTag = "ClusterNeedsHashTag";
        /// <summary>Fewer replicas than ReplicaAcks acknowledged a write in time.</summary>
        public const string ReplicationTimeout = "ReplicationTimeout";
        /// <summary>ReplicaAcks is above 0 but the server does not run WAIT (Garnet); checked at connect.</summary>
        public const string ReplicaAcksUnsupported = "ReplicaAcksUnsupported";
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
        /// <summary>An error with a stable id (<see cref="ErrorIds"/>) and a message free of secrets.</summary>
        public WriteBehindException(string errorId, string message, Exception inner = null) : base(message, inner)
        {
            ErrorId = errorId;
        }

        /// <summary>The stable id of the error (one of <see cref="ErrorIds"/>).</summary>
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
