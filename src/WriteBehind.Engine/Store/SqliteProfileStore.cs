using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
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
    public sealed class SqliteProfileStore : IProfileStore
    {
        /// <summary>The schema version this code writes and understands.</summary>
        internal const int CurrentSchemaVersion = 1;

        /// <summary>Most parameters put in one IN (...) list.</summary>
        internal const int MaxParametersPerQuery = 500;

        private static readonly TimeSpan DefaultBusyTimeout = TimeSpan.FromMilliseconds(1000);

        private const string UpsertSql =
            "INSERT INTO user_profiles(user_id, json, version, deleted, updated_at) " +
            "VALUES($user_id, $json, $version, $deleted, $updated_at) " +
            "ON CONFLICT(user_id) DO UPDATE SET json = excluded.json, version = excluded.version, " +
            "deleted = excluded.deleted, updated_at = excluded.updated_at " +
            "WHERE excluded.version > user_profiles.version";

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
        private readonly SemaphoreSlim _gate = new SemaphoreSlim(1, 1);
        private SqliteConnection _connection;
        private volatile bool _disposed;

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
        }

        public string Description => StoreFactory.SqliteUri(_fullPath);

        /// <summary>Full path of the database file.</summary>
        public string FilePath => _fullPath;

        public Task<StoreCommitResult> CommitAsync(IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            StoreArguments.CheckRows(rows);

            return RunAsync("commit " + rows.Count + " row(s) to", cancellationToken, connection => Commit(connection, rows, cancellationToken));
        }

        public Task<IReadOnlyDictionary<string, StoredProfile>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken)
        {
            var distinct = StoreArguments.DistinctIds(userIds);

            return RunAsync("read " + distinct.Count + " row(s) from", cancellationToken, connection => Get(connection, distinct, cancellationToken));
        }

        public Task<IReadOnlyList<StoredProfile>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken)
        {
            if (limit < 1)
                throw new ArgumentOutOfRangeException(nameof(limit));
            return RunAsync("read a page of", cancellationToken, connection =>
            {
                var page = new List<StoredProfile>(Math.Min(limit, 4096));
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
                            page.Add(new StoredProfile(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1),
                                reader.GetInt64(2), ParseTimestamp(reader.GetString(3))));
                        }
                    }
                }
                return (IReadOnlyList<StoredProfile>)page;
            });
        }

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

        public void Dispose()
        {
            if (_disposed)
                return;
            _disposed = true;

            // Wait for an operation in flight to finish with the connection before closing it.
            _gate.Wait();
            try
            {
                CloseConnection();
            }
            finally
            {
                _gate.Release();
            }
        }

        private static StoreCommitResult Commit(SqliteConnection connection, IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            if (rows.Count == 0)
                return new StoreCommitResult(0, 0);

            string updatedAt = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture);
            int applied = 0;
            int stale = 0;

            // BeginTransaction() issues BEGIN IMMEDIATE: the write lock is taken (or the busy timeout hit)
            // up front rather than halfway through the batch.
            using (SqliteTransaction transaction = connection.BeginTransaction())
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = UpsertSql;
                SqliteParameter userId = command.Parameters.Add("$user_id", SqliteType.Text);
                SqliteParameter json = command.Parameters.Add("$json", SqliteType.Text);
                SqliteParameter version = command.Parameters.Add("$version", SqliteType.Integer);
                SqliteParameter deleted = command.Parameters.Add("$deleted", SqliteType.Integer);
                SqliteParameter updated = command.Parameters.Add("$updated_at", SqliteType.Text);
                updated.Value = updatedAt;
                command.Prepare();

                // Ids in key order: each B-tree page is visited once per batch, while it is hot.
                var ordered = new ProfileRow[rows.Count];
                for (int i = 0; i < ordered.Length; i++) ordered[i] = rows[i];
                Array.Sort(ordered, (a, b) => string.CompareOrdinal(a.UserId, b.UserId));
                rows = ordered;
                for (int i = 0; i < rows.Count; i++)
                {
                    if ((i & 0xFF) == 0)
                        cancellationToken.ThrowIfCancellationRequested(); // disposing the transaction rolls back

                    ProfileRow row = rows[i];
                    userId.Value = row.UserId;
                    json.Value = row.IsDeleted ? (object)DBNull.Value : row.Json;
                    version.Value = row.Version;
                    deleted.Value = row.IsDeleted ? 1L : 0L;

                    // changes() of the upsert: 1 when inserted or updated, 0 when the WHERE kept the stored row.
                    if (command.ExecuteNonQuery() == 1)
                        applied++;
                    else
                        stale++;
                }

                transaction.Commit();
            }

            return new StoreCommitResult(applied, stale);
        }

        private static IReadOnlyDictionary<string, StoredProfile> Get(SqliteConnection connection, List<string> ids, CancellationToken cancellationToken)
        {
            var result = new Dictionary<string, StoredProfile>(StringComparer.Ordinal);
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
                                result[userId] = new StoredProfile(userId, json, version, updatedAt);
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

        private async Task<T> RunAsync<T>(string what, CancellationToken cancellationToken, Func<SqliteConnection, T> work)
        {
            ThrowIfDisposed();
            cancellationToken.ThrowIfCancellationRequested();

            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ThrowIfDisposed();
                try
                {
                    return work(EnsureOpen());
                }
                catch (SqliteException ex)
                {
                    if (IsTransient(ex.SqliteErrorCode))
                    {
                        // The connection may be wedged (file replaced, I/O error...): start afresh next time.
                        CloseConnection();
                        throw new StoreUnavailableException(
                            "SQLite store " + Description + " is unavailable; could not " + what + " it: " + ex.Message, ex);
                    }
                    throw new StoreException("SQLite store " + Description + ": could not " + what + " it: " + ex.Message, ex);
                }
                catch (IOException ex)
                {
                    CloseConnection();
                    throw new StoreUnavailableException(
                        "SQLite store " + Description + " is unavailable; could not " + what + " it: " + ex.Message, ex);
                }
            }
            finally
            {
                _gate.Release();
            }
        }

        /// <summary>SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL,
        /// including their extended codes (the primary code is the low byte).</summary>
        internal static bool IsTransient(int sqliteErrorCode)
        {
            switch (sqliteErrorCode & 0xFF)
            {
                case 5:  // SQLITE_BUSY
                case 6:  // SQLITE_LOCKED
                case 10: // SQLITE_IOERR
                case 13: // SQLITE_FULL
                case 14: // SQLITE_CANTOPEN
                case 15: // SQLITE_PROTOCOL
                    return true;
                default:
                    return false;
            }
        }

        /// <summary>Opens the connection and brings the schema up to date; caller holds the gate.</summary>
        private SqliteConnection EnsureOpen()
        {
            if (_connection != null)
                return _connection;

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

            var builder = new SqliteConnectionStringBuilder
            {
                DataSource = _fullPath,
                Mode = SqliteOpenMode.ReadWriteCreate,
                Cache = SqliteCacheMode.Private,
                // One long-lived connection per store: no pool, so Dispose really closes the file.
                Pooling = false,
            };

            var connection = new SqliteConnection(builder.ToString());
            try
            {
                // Microsoft.Data.Sqlite retries busy/locked statements itself until the command timeout
                // (whole seconds, 0 = forever); keep that bound in step with busy_timeout.
                connection.DefaultTimeout = Math.Max(1, (int)Math.Ceiling(_busyTimeoutMs / 1000.0));
                connection.Open();

                Execute(connection, "PRAGMA busy_timeout = " + _busyTimeoutMs.ToString(CultureInfo.InvariantCulture));
                Execute(connection, "PRAGMA journal_mode = WAL");
                Execute(connection, "PRAGMA synchronous = NORMAL");
                // Flush batches upsert ids in random order: every row dirties its own B-tree page. A larger
                // page cache and a larger autocheckpoint let pages dirtied by consecutive batches be written
                // back once instead of once per batch.
                Execute(connection, "PRAGMA cache_size = -65536");
                Execute(connection, "PRAGMA wal_autocheckpoint = 16384");

                EnsureSchema(connection);
            }
            catch
            {
                connection.Dispose();
                throw;
            }

            _connection = connection;
            return connection;
        }

        private void EnsureSchema(SqliteConnection connection)
        {
            long version = ReadSchemaVersion(connection);
            CheckSchemaVersion(version);
            // A user_profiles table that is not the module's (an application's own) is refused before
            // anything is written: the module never creates, alters or drops a table it does not own.
            CheckTableShape(connection, null);
            if (version == CurrentSchemaVersion)
                return;

            using (SqliteTransaction transaction = connection.BeginTransaction())
            {
                // Another process may have got there first.
                version = ReadSchemaVersion(connection, transaction);
                CheckSchemaVersion(version);
                CheckTableShape(connection, transaction);
                if (version < 1)
                {
                    Execute(connection, CreateSchemaSql, transaction);
                    Execute(connection, "DELETE FROM wb_schema", transaction);
                    Execute(connection, "INSERT INTO wb_schema(version) VALUES(1)", transaction);
                }
                // Future migrations: if (version < 2) { ...; UPDATE wb_schema SET version = 2 }
                transaction.Commit();
            }
        }

        private void CheckSchemaVersion(long version)
        {
            if (version > CurrentSchemaVersion)
            {
                throw new InvalidOperationException(
                    "SQLite store " + Description + " has schema version " + version.ToString(CultureInfo.InvariantCulture) +
                    ", newer than the version " + CurrentSchemaVersion.ToString(CultureInfo.InvariantCulture) +
                    " this WriteBehind understands. Upgrade WriteBehind or point it at another file.");
            }
        }

        /// <summary>Checks what the file already holds without creating or changing anything (opened
        /// read-write so that a WAL-mode file can be read, but nothing is written): nothing to
        /// check when the file does not exist yet; otherwise its schema version must not be newer than this
        /// code's and a user_profiles table must be the module's (else <see cref="WriteBehindException"/>
        /// with <see cref="ErrorIds.StoreTableMismatch"/>).</summary>
        public Task CheckAsync(CancellationToken cancellationToken)
        {
            ThrowIfDisposed();
            cancellationToken.ThrowIfCancellationRequested();
            if (!File.Exists(_fullPath))
                return Task.CompletedTask;
            try
            {
                SqliteNative.EnsureLoaded();
                var builder = new SqliteConnectionStringBuilder { DataSource = _fullPath, Mode = SqliteOpenMode.ReadWrite, Pooling = false };
                using (var connection = new SqliteConnection(builder.ToString()))
                {
                    connection.DefaultTimeout = Math.Max(1, (int)Math.Ceiling(_busyTimeoutMs / 1000.0));
                    connection.Open();
                    Execute(connection, "PRAGMA busy_timeout = " + _busyTimeoutMs.ToString(CultureInfo.InvariantCulture));
                    CheckSchemaVersion(ReadSchemaVersion(connection));
                    CheckTableShape(connection, null);
                }
            }
            catch (SqliteException ex)
            {
                if (IsTransient(ex.SqliteErrorCode))
                    throw new StoreUnavailableException("SQLite store " + Description + " is unavailable; could not check it: " + ex.Message, ex);
                throw new StoreException("SQLite store " + Description + ": could not check it: " + ex.Message, ex);
            }
            return Task.CompletedTask;
        }

        /// <summary>An existing user_profiles table must have the module's columns, user_id as its key, and
        /// no other column the module's upsert could not fill.</summary>
        private void CheckTableShape(SqliteConnection connection, SqliteTransaction transaction)
        {
            var columns = new List<StoreColumn>();
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('user_profiles')";
                using (SqliteDataReader reader = command.ExecuteReader())
                {
                    while (reader.Read())
                    {
                        columns.Add(new StoreColumn(reader.GetString(0), reader.IsDBNull(1) ? "" : reader.GetString(1),
                            reader.GetInt64(2) != 0, !reader.IsDBNull(3), reader.GetInt64(4)));
                    }
                }
            }
            if (columns.Count == 0)
                return;
            bool userIdIsKey = columns.Count(c => c.KeyPosition > 0) == 1 && columns.Any(c => c.KeyPosition > 0 && c.Is("user_id"));
            if (!userIdIsKey)
            {
                // A unique index on user_id alone serves ON CONFLICT(user_id) as well as the primary key.
                using (SqliteCommand command = connection.CreateCommand())
                {
                    command.Transaction = transaction;
                    command.CommandText =
                        "SELECT COUNT(*) FROM pragma_index_list('user_profiles') AS l WHERE l.\"unique\" = 1 AND l.partial = 0 AND " +
                        "(SELECT COUNT(*) FROM pragma_index_info(l.name)) = 1 AND " +
                        "(SELECT name FROM pragma_index_info(l.name)) = 'user_id' COLLATE NOCASE";
                    userIdIsKey = Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture) > 0;
                }
            }
            // SQLite converts a value to its column's type affinity: under a numeric user_id, '007' is stored
            // as 7 (and never found again); under a text version, 10 is stored as '10', which sorts before '9'.
            var typeProblems = new List<string>();
            foreach (StoreColumn column in columns)
            {
                string affinity = Affinity(column.Type);
                if (column.Is("user_id") && affinity != "TEXT" && affinity != "BLOB")
                    typeProblems.Add("user_id is " + column.Type + ", not TEXT (with " + affinity + " affinity SQLite stores the id 007 as 7)");
                else if (column.Is("version") && affinity != "INTEGER" && affinity != "NUMERIC")
                    typeProblems.Add("version is " + (column.Type.Length == 0 ? "untyped" : column.Type) + ", not INTEGER (with " + affinity + " affinity SQLite compares versions as text: 10 before 9)");
            }
            StoreTableShape.ThrowIfNotTheModules(Description, columns, userIdIsKey, typeProblems);
        }

        /// <summary>The type affinity of a declared column type, by SQLite's rules (section 3.1 of its datatype page).</summary>
        private static string Affinity(string declaredType)
        {
            string t = declaredType.ToUpperInvariant();
            if (t.Contains("INT")) return "INTEGER";
            if (t.Contains("CHAR") || t.Contains("CLOB") || t.Contains("TEXT")) return "TEXT";
            if (t.Length == 0 || t.Contains("BLOB")) return "BLOB";
            if (t.Contains("REAL") || t.Contains("FLOA") || t.Contains("DOUB")) return "REAL";
            return "NUMERIC";
        }

        /// <summary>The version in wb_schema, or 0 when the table is missing or empty.</summary>
        private static long ReadSchemaVersion(SqliteConnection connection, SqliteTransaction transaction = null)
        {
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'wb_schema'";
                if (Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture) == 0)
                    return 0;

                command.CommandText = "SELECT MAX(version) FROM wb_schema";
                object value = command.ExecuteScalar();
                return value == null || value is DBNull ? 0 : Convert.ToInt64(value, CultureInfo.InvariantCulture);
            }
        }

        private static void Execute(SqliteConnection connection, string sql, SqliteTransaction transaction = null)
        {
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = sql;
                command.ExecuteNonQuery();
            }
        }

        private void CloseConnection()
        {
            SqliteConnection connection = _connection;
            _connection = null;
            if (connection == null)
                return;
            try
            {
                connection.Dispose();
            }
            catch (Exception)
            {
                // Closing a broken connection must not hide the error that broke it.
            }
        }

        private void ThrowIfDisposed()
        {
            if (_disposed)
                throw new ObjectDisposedException(nameof(SqliteProfileStore));
        }
    }
}
