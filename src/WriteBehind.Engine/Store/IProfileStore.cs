using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace WriteBehind.Engine.Store
{
    /// <summary>What one store commit did with its rows.</summary>
    public sealed class StoreCommitResult
    {
        /// <summary>A commit that declined no row.</summary>
        public StoreCommitResult(int applied, int stale)
        {
            Applied = applied;
            Stale = stale;
            Rejected = Array.Empty<KeyValuePair<string, string>>();
        }

        /// <param name="rejected">Rows the store declined for good in a commit that otherwise went in: user id → reason
        /// (a writer's <c>$row.Reject('reason')</c>); the flusher dead-letters their items.</param>
        /// <param name="applied">Rows written because their version was newer.</param>
        /// <param name="stale">Rows left alone because the store held that version or a newer one.</param>
        public StoreCommitResult(int applied, int stale, IReadOnlyList<KeyValuePair<string, string>> rejected)
            : this(applied, stale)
        {
            Rejected = rejected ?? Array.Empty<KeyValuePair<string, string>>();
        }

        /// <summary>Rows inserted, updated or deleted because the incoming version was newer.</summary>
        public int Applied { get; }
        /// <summary>Rows left alone because the store already held that version or a newer one.</summary>
        public int Stale { get; }
        /// <summary>Rows declined for good (user id → reason); never retried.</summary>
        public IReadOnlyList<KeyValuePair<string, string>> Rejected { get; }
    }

    /// <summary>The system of record. Every write is conditional on the incoming version being newer
    /// than the stored one, so replays, duplicates and out-of-order commits are harmless.</summary>
    public interface IProfileStore : IDisposable
    {
        /// <summary>A description safe to print (no password).</summary>
        string Description { get; }

        /// <summary>Upserts live rows and records tombstones for deleted ones, in one transaction, each only
        /// when its version is newer than the stored one.</summary>
        Task<StoreCommitResult> CommitAsync(IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken);

        /// <summary>Returns the stored rows for these ids (tombstones included, with Json null); ids the
        /// store never saw are absent from the result.</summary>
        Task<IReadOnlyDictionary<string, ProfileRow>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken);

        /// <summary>Up to <paramref name="limit"/> rows (tombstones included) with user ids after
        /// <paramref name="afterUserId"/> (null: from the start), in ordinal id order: a keyset page for
        /// walking the whole store in constant memory.</summary>
        Task<IReadOnlyList<ProfileRow>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken);

        /// <summary>Number of live (not deleted) profiles.</summary>
        Task<long> CountAsync(CancellationToken cancellationToken);

        /// <summary>Checks what the store already holds, creating and changing nothing: a schema version
        /// newer than this code's, or a user_profiles table that is not the module's (an application's own,
        /// <see cref="ErrorIds.StoreTableMismatch"/>), is refused here as at first use. Throws
        /// <see cref="StoreUnavailableException"/> when the store cannot be reached.</summary>
        Task CheckAsync(CancellationToken cancellationToken);
    }

    /// <summary>The argument checks every store makes the same way.</summary>
    internal static class StoreArguments
    {
        public static void CheckRows(IReadOnlyList<ProfileRow> rows)
        {
            if (rows == null)
                throw new ArgumentNullException(nameof(rows));
            for (int i = 0; i < rows.Count; i++)
            {
                if (rows[i] == null)
                    throw new ArgumentException("Row " + i + " is null.", nameof(rows));
            }
        }

        /// <summary>The ids once each, in their first order.</summary>
        public static List<string> DistinctIds(IReadOnlyCollection<string> userIds)
        {
            if (userIds == null)
                throw new ArgumentNullException(nameof(userIds));
            var distinct = new List<string>(userIds.Count);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (string id in userIds)
            {
                if (id == null)
                    throw new ArgumentException("A user id is null.", nameof(userIds));
                if (seen.Add(id))
                    distinct.Add(id);
            }
            return distinct;
        }
    }
}
