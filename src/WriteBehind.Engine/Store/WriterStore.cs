using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// A store whose commit is code the caller supplies (the cmdlets adapt a PowerShell script block to it: the
    /// counterpart of Hazelcast's MapStore). The flush hands it each commit group's rows, the newest state of each
    /// profile with its version. Contract: at least once (a group can be handed again after a crash, so the writer
    /// applies a row only when its version is newer than the one it holds); returning normally means every row not
    /// declined is committed; an exception is transient (the flush retries the group with backoff up to its retry
    /// timeout, then fails with the items still in flight); a declined row (user id → reason) is dead-lettered for good.
    /// The writer has no read side: reads and consistency checks use the connection's store.
    /// </summary>
    internal sealed class WriterStore : IProfileStore
    {
        private readonly Func<IReadOnlyList<ProfileRow>, CancellationToken, Task<IReadOnlyDictionary<string, string>>> _write;

        /// <param name="description">What to call the writer in messages.</param>
        /// <param name="write">Commits the rows; returns the rows it declined for good (user id → reason), or null.</param>
        public WriterStore(string description, Func<IReadOnlyList<ProfileRow>, CancellationToken, Task<IReadOnlyDictionary<string, string>>> write)
        {
            Description = description ?? "writer";
            _write = write ?? throw new ArgumentNullException(nameof(write));
        }

        public string Description { get; }

        public async Task<StoreCommitResult> CommitAsync(IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            StoreArguments.CheckRows(rows);
            if (rows.Count == 0) return new StoreCommitResult(0, 0);
            IReadOnlyDictionary<string, string> declined;
            try
            {
                declined = await _write(rows, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                string message = ex is AggregateException agg && agg.InnerExceptions.Count == 1 ? agg.InnerException.Message : ex.Message;
                throw new StoreUnavailableException("The " + Description + " failed: " + message, ex);
            }
            var rejected = (declined ?? new Dictionary<string, string>())
                .Where(d => rows.Any(r => string.Equals(r.UserId, d.Key, StringComparison.Ordinal)))
                .Select(d => new KeyValuePair<string, string>(d.Key, "declined by the " + Description + ": " + d.Value))
                .ToList();
            return new StoreCommitResult(rows.Count - rejected.Count, 0, rejected);
        }

        public Task<IReadOnlyDictionary<string, ProfileRow>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken) =>
            Task.FromResult((IReadOnlyDictionary<string, ProfileRow>)new Dictionary<string, ProfileRow>(StringComparer.Ordinal));

        public Task<IReadOnlyList<ProfileRow>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken) =>
            Task.FromResult((IReadOnlyList<ProfileRow>)Array.Empty<ProfileRow>());

        public Task<long> CountAsync(CancellationToken cancellationToken) => Task.FromResult(0L);

        /// <summary>Nothing to check: the script block is the target.</summary>
        public Task CheckAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Dispose()
        {
        }
    }
}
