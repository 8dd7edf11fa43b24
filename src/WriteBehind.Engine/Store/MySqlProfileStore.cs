using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using MySqlConnector;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// A system of record in MariaDB (10.6+) or MySQL (8.0+), through MySqlConnector. Same contract as the other
    /// stores: one set-based upsert per commit (the batch as one JSON array parameter read by <c>JSON_TABLE</c>,
    /// <c>INSERT ... SELECT ... ON DUPLICATE KEY UPDATE</c> that changes a row only when the incoming version is
    /// newer), deletes as versioned tombstones (json NULL), the JSON in a <c>longtext utf8mb4_bin</c> column byte for
    /// byte (never the JSON type, which MySQL normalises), ids in an <c>ascii_bin</c> column (ordinal order).
    /// </summary>
    /// <remarks>
    /// Errors: a failure that does not depend on the rows (cannot connect, authentication, server gone, deadlock
    /// 1213, lock wait timeout 1205, timeouts) is a <see cref="StoreUnavailableException"/> (the flush retries); a row
    /// the server refuses for good (SQLSTATE 22xxx/23xxx, incorrect values 1366/1292/1265/1411, invalid JSON) is a
    /// plain <see cref="StoreException"/>, which makes the flusher isolate and dead-letter that row.
    /// </remarks>
    internal sealed class MySqlProfileStore : IProfileStore
    {
        private const string CreateSchemaSql =
            "CREATE TABLE IF NOT EXISTS wb_schema(version int NOT NULL) ENGINE=InnoDB;" +
            "CREATE TABLE IF NOT EXISTS user_profiles(" +
            "user_id varchar(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, " +
            "json longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL, " +
            "version bigint NOT NULL, " +
            "deleted boolean NOT NULL DEFAULT false, " +
            "updated_at datetime(6) NOT NULL) ENGINE=InnoDB";

        // The batch's rows: [id, json ("" for a tombstone), version, deleted].
        private const string BatchTable =
            "JSON_TABLE(@rows, '$[*]' COLUMNS(n FOR ORDINALITY, k varchar(128) CHARACTER SET ascii PATH '$[0]', " +
            "js longtext CHARACTER SET utf8mb4 PATH '$[1]', v bigint PATH '$[2]', d int PATH '$[3]')) AS j";

        private const string LockSql = "SELECT COUNT(*) FROM user_profiles WHERE user_id IN (SELECT j.k FROM " + BatchTable + ") FOR UPDATE";

        // Assignments run left to right: version last, so the IFs compare with the stored version.
        private const string UpsertSql =
            "INSERT INTO user_profiles(user_id, json, version, deleted, updated_at) " +
            "SELECT j.k, IF(j.d, NULL, j.js), j.v, j.d, UTC_TIMESTAMP(6) FROM " + BatchTable + " ORDER BY j.n " +
            "ON DUPLICATE KEY UPDATE json = IF(VALUES(version) > version, VALUES(json), json), " +
            "deleted = IF(VALUES(version) > version, VALUES(deleted), deleted), " +
            "updated_at = IF(VALUES(version) > version, VALUES(updated_at), updated_at), " +
            "version = GREATEST(version, VALUES(version))";

        private const string SelectColumns = "SELECT user_id, json, version, updated_at FROM user_profiles ";

        private readonly MySqlServer _server;
        private readonly SemaphoreSlim _schemaGate = new SemaphoreSlim(1, 1);
        private volatile bool _schemaReady;

        /// <param name="connectionString">A MySqlConnector connection string (may hold the password; never printed).</param>
        /// <param name="description">What to call the store in messages: its URI without any password.</param>
        public MySqlProfileStore(string connectionString, string description)
        {
            _server = new MySqlServer(connectionString, description, nameof(MySqlProfileStore));
        }

        public string Description => _server.Description;

        /// <summary>For a mapped table on the same server (<see cref="MySqlMappedStore"/>).</summary>
        internal string ConnectionString => _server.ConnectionString;

        public Task<StoreCommitResult> CommitAsync(IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            StoreArguments.CheckRows(rows);
            return RunAsync("commit " + rows.Count + " row(s) to", true, cancellationToken, async connection =>
            {
                if (rows.Count == 0) return new StoreCommitResult(0, 0);
                ProfileRow[] ordered = MappedValues.NewestPerId(rows);
                var batch = new StringBuilder(ordered.Length * 48).Append('[');
                for (int i = 0; i < ordered.Length; i++)
                {
                    if (i > 0) batch.Append(',');
                    batch.Append('[');
                    Json.JsonText.WriteString(batch, ordered[i].UserId);
                    batch.Append(',');
                    Json.JsonText.WriteString(batch, ordered[i].Json ?? string.Empty);
                    batch.Append(',').Append(ordered[i].Version.ToString(CultureInfo.InvariantCulture)).Append(',').Append(ordered[i].IsDeleted ? '1' : '0').Append(']');
                }
                batch.Append(']');
                string rowsJson = batch.ToString();
                using (MySqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
                {
                    long existing;
                    using (var command = new MySqlCommand(LockSql, connection, transaction))
                    {
                        command.Parameters.AddWithValue("@rows", rowsJson);
                        existing = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
                    }
                    long changed;
                    using (var command = new MySqlCommand(UpsertSql, connection, transaction))
                    {
                        command.Parameters.AddWithValue("@rows", rowsJson);
                        changed = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    }
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                    // Affected rows: 1 per insert, 2 per update, 0 per row left alone (the existing rows are locked).
                    long inserted = ordered.Length - existing;
                    int applied = (int)(inserted + (changed - inserted) / 2);
                    return new StoreCommitResult(applied, rows.Count - applied);
                }
            });
        }

        public Task<IReadOnlyDictionary<string, ProfileRow>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken)
        {
            var distinct = StoreArguments.DistinctIds(userIds);
            return RunAsync("read " + distinct.Count + " row(s) from", false, cancellationToken, async connection =>
            {
                var result = new Dictionary<string, ProfileRow>(StringComparer.Ordinal);
                if (distinct.Count == 0) return (IReadOnlyDictionary<string, ProfileRow>)result;
                string idsJson = MappedValues.JsonStringArray(distinct);
                using (var command = new MySqlCommand(SelectColumns +
                    "WHERE user_id IN (SELECT q.k FROM JSON_TABLE(@ids, '$[*]' COLUMNS(k varchar(128) CHARACTER SET ascii PATH '$')) AS q)", connection))
                {
                    command.Parameters.AddWithValue("@ids", idsJson);
                    foreach (var row in await ReadRowsAsync(command, cancellationToken).ConfigureAwait(false)) result[row.UserId] = row;
                }
                return (IReadOnlyDictionary<string, ProfileRow>)result;
            });
        }

        public Task<IReadOnlyList<ProfileRow>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken)
        {
            if (limit < 1)
                throw new ArgumentOutOfRangeException(nameof(limit));
            return RunAsync("read a page of", false, cancellationToken, async connection =>
            {
                // user_id is ascii_bin: byte order, which is ordinal order for the ASCII ids.
                string sql = afterUserId == null
                    ? SelectColumns + "ORDER BY user_id LIMIT @limit"
                    : SelectColumns + "WHERE user_id > @after ORDER BY user_id LIMIT @limit";
                using (var command = new MySqlCommand(sql, connection))
                {
                    if (afterUserId != null) command.Parameters.AddWithValue("@after", afterUserId);
                    command.Parameters.AddWithValue("@limit", limit);
                    return (IReadOnlyList<ProfileRow>)await ReadRowsAsync(command, cancellationToken).ConfigureAwait(false);
                }
            });
        }

        public Task<long> CountAsync(CancellationToken cancellationToken)
        {
            return RunAsync("count the rows of", false, cancellationToken, async connection =>
            {
                using (var command = new MySqlCommand("SELECT COUNT(*) FROM user_profiles WHERE NOT deleted", connection))
                    return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
            });
        }

        public Task CheckAsync(CancellationToken cancellationToken)
        {
            return RunAsync("check", false, cancellationToken, async connection =>
            {
                CheckSchemaVersion(await ReadSchemaVersionAsync(connection, cancellationToken).ConfigureAwait(false));
                await CheckTableShapeAsync(connection, cancellationToken).ConfigureAwait(false);
                return true;
            }, ensureSchema: false);
        }

        public void Dispose() => _server.Dispose();

        private static Task<List<ProfileRow>> ReadRowsAsync(MySqlCommand command, CancellationToken cancellationToken) =>
            MySqlServer.ReadProfilesAsync(command, reader => reader.GetDateTime(3), cancellationToken);

        private Task<T> RunAsync<T>(string what, bool rowsInvolved, CancellationToken cancellationToken, Func<MySqlConnection, Task<T>> operation,
            bool ensureSchema = true)
        {
            return _server.RunAsync(what + " it", rowsInvolved, cancellationToken,
                ensureSchema ? connection => _schemaReady ? Task.CompletedTask : EnsureSchemaAsync(connection, cancellationToken) : (Func<MySqlConnection, Task>)null,
                operation);
        }

        private async Task EnsureSchemaAsync(MySqlConnection connection, CancellationToken cancellationToken)
        {
            await _schemaGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (_schemaReady) return;
                long version = await ReadSchemaVersionAsync(connection, cancellationToken).ConfigureAwait(false);
                CheckSchemaVersion(version);
                await CheckTableShapeAsync(connection, cancellationToken).ConfigureAwait(false);
                if (version < StoreSchema.CurrentVersion)
                {
                    // Another process may be creating it right now: one at a time (a named lock), then look again.
                    using (var command = new MySqlCommand("SELECT GET_LOCK('writebehind_schema', 30)", connection))
                        await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                    try
                    {
                        version = await ReadSchemaVersionAsync(connection, cancellationToken).ConfigureAwait(false);
                        CheckSchemaVersion(version);
                        await CheckTableShapeAsync(connection, cancellationToken).ConfigureAwait(false);
                        if (version < 1)
                        {
                            // DDL commits by itself in MySQL: the version row goes in last, once the tables exist.
                            using (var command = new MySqlCommand(CreateSchemaSql, connection))
                                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                            using (var command = new MySqlCommand("DELETE FROM wb_schema; INSERT INTO wb_schema(version) VALUES(1)", connection))
                                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                        }
                    }
                    finally
                    {
                        using (var command = new MySqlCommand("SELECT RELEASE_LOCK('writebehind_schema')", connection))
                            await command.ExecuteScalarAsync(CancellationToken.None).ConfigureAwait(false);
                    }
                }
                _schemaReady = true;
            }
            finally
            {
                _schemaGate.Release();
            }
        }

        private void CheckSchemaVersion(long version) => StoreSchema.ThrowIfNewer(_server.Kind, Description, version, "database");

        /// <summary>A user_profiles table already in the database must be the module's, not an application's own
        /// (<see cref="ErrorIds.StoreTableMismatch"/>).</summary>
        private async Task CheckTableShapeAsync(MySqlConnection connection, CancellationToken cancellationToken)
        {
            var columns = new List<StoreColumn>();
            using (var command = new MySqlCommand(
                "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE = 'NO', COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%' " +
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'user_profiles' ORDER BY ORDINAL_POSITION", connection))
            using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    columns.Add(new StoreColumn(reader.GetString(0), reader.GetString(1).ToLowerInvariant(),
                        Convert.ToInt64(reader.GetValue(2), CultureInfo.InvariantCulture) != 0, Convert.ToInt64(reader.GetValue(3), CultureInfo.InvariantCulture) != 0, 0));
            }
            if (columns.Count == 0)
                return;
            bool userIdIsKey;
            using (var command = new MySqlCommand(
                "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'user_profiles' " +
                "GROUP BY INDEX_NAME HAVING COUNT(*) = 1 AND MAX(NON_UNIQUE) = 0 AND MAX(COLUMN_NAME) = 'user_id') AS u", connection))
                userIdIsKey = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) > 0;
            var typeProblems = new List<string>();
            foreach (StoreColumn column in columns)
            {
                string type = column.Type;
                bool isText = type == "varchar" || type == "char" || type.EndsWith("text", StringComparison.Ordinal);
                if (column.Is("user_id") && !isText) typeProblems.Add("user_id is " + type + ", not varchar");
                else if (column.Is("json") && !isText) typeProblems.Add("json is " + type + ", not longtext" + (type == "json" ? " (MySQL's json type rewrites the text; WriteBehind keeps it byte for byte)" : ""));
                else if (column.Is("version") && type != "bigint") typeProblems.Add("version is " + type + ", not bigint");
                else if (column.Is("deleted") && type != "tinyint" && type != "boolean") typeProblems.Add("deleted is " + type + ", not boolean");
                else if (column.Is("updated_at") && type != "datetime" && type != "timestamp") typeProblems.Add("updated_at is " + type + ", not datetime");
            }
            StoreTableShape.ThrowIfNotTheModules(Description, columns, userIdIsKey, typeProblems);
        }

        private static async Task<long> ReadSchemaVersionAsync(MySqlConnection connection, CancellationToken cancellationToken)
        {
            using (var command = new MySqlCommand(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'wb_schema'", connection))
            {
                if (Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) == 0)
                    return 0;
                command.CommandText = "SELECT MAX(version) FROM wb_schema";
                object value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                return value == null || value is DBNull ? 0 : Convert.ToInt64(value, CultureInfo.InvariantCulture);
            }
        }
    }
}
