using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.Sqlite;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// A system of record in one SQLite file (WAL mode, synchronous=NORMAL). One connection per instance,
    /// opened on first use and serialised by a semaphore, so a batch commit costs one transaction.
    /// </summary>
    /// <remarks>
    /// Rows are versioned: an upsert applies only when its version is newer than the stored one, and a
    /// deleted profile is kept as a tombstone (json NULL, deleted 1) carrying its version, so a replayed
    /// or out-of-order older write can never bring it back.
    /// Microsoft.Data.Sqlite is synchronous underneath; the async methods run on the calling thread once
    /// the connection is theirs.
    /// </remarks>
    public sealed partial class SqliteProfileStore : IProfileStore
    {
        /// <summary>Most parameters put in one IN (...) list.</summary>
        internal const int MaxParametersPerQuery = 500;

        private static readonly TimeSpan DefaultBusyTimeout = TimeSpan.FromMilliseconds(1000);

        private const string CreateSchemaSql =
            "CREATE TABLE IF NOT EXISTS wb_schema(version INTEGER NOT NULL);" +
            "CREATE TABLE IF NOT EXISTS user_profiles(" +
            "user_id TEXT PRIMARY KEY NOT NULL, " +
            "json TEXT NULL, " +
            "version INTEGER NOT NULL, " +
            "deleted INTEGER NOT NULL DEFAULT 0, " +
            "updated_at TEXT NOT NULL) WITHOUT ROWID;";

        private readonly string _fullPath;
        private readonly int _busyTimeoutMs;
        private readonly bool _createDirectory;
        private readonly SqliteConnectionGate _gate;

        /// <param name="filePath">The database file; created when missing.</param>
        /// <param name="busyTimeout">How long a statement waits for another connection's lock before the
        /// operation fails with <see cref="StoreUnavailableException"/>; 5 seconds when null.</param>
        /// <param name="createDirectory">Create the file's folder when it is missing; otherwise a missing
        /// folder makes every operation fail with <see cref="StoreUnavailableException"/>.</param>
        public SqliteProfileStore(string filePath, TimeSpan? busyTimeout = null, bool createDirectory = true)
        {
            if (string.IsNullOrWhiteSpace(filePath))
                throw new ArgumentException("A SQLite file path is required.", nameof(filePath));

            TimeSpan timeout = busyTimeout ?? DefaultBusyTimeout;
            if (timeout < TimeSpan.Zero || timeout.TotalMilliseconds > int.MaxValue)
                throw new ArgumentOutOfRangeException(nameof(busyTimeout), "The busy timeout must be between 0 and int.MaxValue ms.");

            _fullPath = Path.GetFullPath(filePath);
            _busyTimeoutMs = (int)timeout.TotalMilliseconds;
            _createDirectory = createDirectory;
            _gate = new SqliteConnectionGate(Open, nameof(SqliteProfileStore));
        }

        /// <inheritdoc/>
        public string Description => StoreFactory.SqliteUri(_fullPath);

        /// <summary>Full path of the database file.</summary>
        public string FilePath => _fullPath;

        /// <inheritdoc/>
        public Task<StoreCommitResult> CommitAsync(IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            StoreArguments.CheckRows(rows);

            return RunAsync("commit " + rows.Count + " row(s) to", cancellationToken, connection => Commit(connection, rows, cancellationToken));
        }

        /// <inheritdoc/>
        public Task<IReadOnlyDictionary<string, ProfileRow>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken)
        {
            var distinct = StoreArguments.DistinctIds(userIds);

            return RunAsync("read " + distinct.Count + " row(s) from", cancellationToken, connection => Get(connection, distinct, cancellationToken));
        }

        /// <inheritdoc/>
        public Task<IReadOnlyList<ProfileRow>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken)
        {
            if (limit < 1)
                throw new ArgumentOutOfRangeException(nameof(limit));
            return RunAsync("read a page of", cancellationToken, connection =>
            {
                var page = new List<ProfileRow>(Math.Min(limit, 4096));
                using (SqliteCommand command = connection.CreateCommand())
                {
                    // user_id is TEXT with the default BINARY collation: ordinal order, matching the keyset.
                    command.CommandText = afterUserId == null
                        ? "SELECT user_id, json, version, updated_at FROM user_profiles ORDER BY user_id LIMIT $limit"
                        : "SELECT user_id, json, version, updated_at FROM user_profiles WHERE user_id > $after ORDER BY user_id LIMIT $limit";
                    if (afterUserId != null)
                        command.Parameters.Add("$after", SqliteType.Text).Value = afterUserId;
                    command.Parameters.Add("$limit", SqliteType.Integer).Value = limit;
                    using (SqliteDataReader reader = command.ExecuteReader())
                    {
                        while (reader.Read())
                        {
                            page.Add(new ProfileRow(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1),
                                reader.GetInt64(2), ParseTimestamp(reader.GetString(3))));
                        }
                    }
                }
                return (IReadOnlyList<ProfileRow>)page;
            });
        }

        /// <inheritdoc/>
        public Task<long> CountAsync(CancellationToken cancellationToken)
        {
            return RunAsync("count the rows of", cancellationToken, connection =>
            {
                using (SqliteCommand command = connection.CreateCommand())
                {
                    command.CommandText = "SELECT COUNT(*) FROM user_profiles WHERE deleted = 0";
                    return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
                }
            });
        }

        /// <summary>Closes the database file's connection.</summary>
        public void Dispose() => _gate.Dispose();

        private static StoreCommitResult Commit(SqliteConnection connection, IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            if (rows.Count == 0)
                return new StoreCommitResult(0, 0);

            string updatedAt = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture);
            int applied;

            // BeginTransaction() issues BEGIN IMMEDIATE: the write lock is taken (or the busy timeout hit)
            // up front rather than halfway through the batch.
            using (SqliteTransaction transaction = connection.BeginTransaction())
            {
                // Ids in key order: each B-tree page is visited once per batch, while it is hot.
                var ordered = new ProfileRow[rows.Count];
                for (int i = 0; i < ordered.Length; i++) ordered[i] = rows[i];
                Array.Sort(ordered, (a, b) => string.CompareOrdinal(a.UserId, b.UserId));
                applied = SqliteUpsert.Run(connection, ordered, updatedAt, cancellationToken);
                transaction.Commit();
            }

            return new StoreCommitResult(applied, rows.Count - applied);
        }

        private static IReadOnlyDictionary<string, ProfileRow> Get(SqliteConnection connection, List<string> ids, CancellationToken cancellationToken)
        {
            var result = new Dictionary<string, ProfileRow>(StringComparer.Ordinal);
            if (ids.Count == 0)
                return result;

            // A read transaction so that every batch sees the same snapshot.
            using (SqliteTransaction transaction = connection.BeginTransaction(deferred: true))
            {
                for (int start = 0; start < ids.Count; start += MaxParametersPerQuery)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    int count = Math.Min(MaxParametersPerQuery, ids.Count - start);

                    using (SqliteCommand command = connection.CreateCommand())
                    {
                        command.Transaction = transaction;
                        var sql = new StringBuilder("SELECT user_id, json, version, updated_at FROM user_profiles WHERE user_id IN (", 96 + count * 7);
                        for (int i = 0; i < count; i++)
                        {
                            string name = "$p" + i.ToString(CultureInfo.InvariantCulture);
                            if (i > 0)
                                sql.Append(',');
                            sql.Append(name);
                            command.Parameters.Add(name, SqliteType.Text).Value = ids[start + i];
                        }
                        sql.Append(')');
                        command.CommandText = sql.ToString();

                        using (SqliteDataReader reader = command.ExecuteReader())
                        {
                            while (reader.Read())
                            {
                                string userId = reader.GetString(0);
                                string json = reader.IsDBNull(1) ? null : reader.GetString(1);
                                long version = reader.GetInt64(2);
                                DateTimeOffset updatedAt = ParseTimestamp(reader.GetString(3));
                                result[userId] = new ProfileRow(userId, json, version, updatedAt);
                            }
                        }
                    }
                }

                transaction.Commit();
            }

            return result;
        }

        private static DateTimeOffset ParseTimestamp(string text)
        {
            return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out DateTimeOffset value)
                ? value
                : DateTimeOffset.MinValue;
        }

        private Task<T> RunAsync<T>(string what, CancellationToken cancellationToken, Func<SqliteConnection, T> work) =>
            _gate.RunAsync(Description, what + " it", cancellationToken, () => work(_gate.Connection));

        /// <summary>Opens the connection and brings the schema up to date; caller holds the gate.</summary>
        private SqliteConnection Open()
        {
            try
            {
                SqliteNative.EnsureLoaded();
            }
            catch (Exception ex) when (ex is TypeInitializationException || ex is DllNotFoundException
                                       || ex is EntryPointNotFoundException || ex is BadImageFormatException)
            {
                throw new StoreException(
                    "The native SQLite library (e_sqlite3) could not be loaded for " + SqliteNative.CurrentRid() + ": " + ex.Message, ex);
            }

            string directory = Path.GetDirectoryName(_fullPath);
            if (!string.IsNullOrEmpty(directory))
            {
                if (_createDirectory)
                    Directory.CreateDirectory(directory);
                else if (!Directory.Exists(directory))
                    throw new StoreUnavailableException("SQLite store " + Description + " is unavailable: its folder " + directory + " does not exist.", new DirectoryNotFoundException(directory));
            }

            // One long-lived connection per store: no pool, so Dispose really closes the file.
            SqliteConnection connection = SqliteConnectionGate.OpenFile(_fullPath, SqliteOpenMode.ReadWriteCreate, _busyTimeoutMs, privateCache: true);
            try
            {
                Execute(connection, "PRAGMA journal_mode = WAL");
                Execute(connection, "PRAGMA synchronous = NORMAL");
                // Flush batches upsert ids in random order: every row dirties its own B-tree page. A larger
                // page cache and a larger autocheckpoint let pages dirtied by consecutive batches be written
                // back once instead of once per batch. The cache is 16 MiB, not more: it is the flusher's one
                // memory that grows with the store (a 1M-row file is ~80 MB; at 64 MiB a 1M-item flush peaked
                // 1.45x the RSS of a 100k one), and pages it drops are still in the OS's page cache.
                Execute(connection, "PRAGMA cache_size = -16384");
                Execute(connection, "PRAGMA wal_autocheckpoint = 16384");

                EnsureSchema(connection);
            }
            catch
            {
                connection.Dispose();
                throw;
            }
            return connection;
        }

        private static void Execute(SqliteConnection connection, string sql, SqliteTransaction transaction = null) =>
            SqliteConnectionGate.Execute(connection, transaction, sql);
    }
}
