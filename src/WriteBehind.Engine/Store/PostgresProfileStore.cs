using System;
using System.Collections.Generic;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using NpgsqlTypes;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// A system of record in PostgreSQL (through Npgsql). Same contract as <see cref="SqliteProfileStore"/>:
    /// one statement per commit upserts every row of the batch (<c>INSERT ... SELECT unnest(...) ON
    /// CONFLICT ... DO UPDATE ... WHERE stored.version &lt; excluded.version</c>), deletes are versioned
    /// tombstones (json NULL), JSON is kept as <c>text</c> (byte for byte; never jsonb, which reorders keys
    /// and rewrites numbers), and pages come in ordinal id order (the id column is <c>COLLATE "C"</c>).
    /// </summary>
    /// <remarks>
    /// Errors: a failure that has nothing to do with the rows in hand (cannot connect, authentication,
    /// admin shutdown, connection exceptions 08xxx, serialization failures and deadlocks, insufficient
    /// resources 53xxx, timeouts, schema trouble) is a <see cref="StoreUnavailableException"/>: the flush
    /// keeps its batch and retries, then fails with nothing lost. Only a row the server refuses for good
    /// (data exceptions 22xxx such as a NUL character, integrity violations 23xxx, text that cannot be
    /// encoded) is a plain <see cref="StoreException"/>, which makes the flusher isolate and dead-letter
    /// that row. Messages name the store by its URI without any password.
    /// </remarks>
    public sealed class PostgresProfileStore : IProfileStore
    {
        // Any constant: serialises schema creation between processes that open a fresh database at once.
        private const long SchemaLockKey = 0x5752_4954_4542_4831; // "WRITEBH1"

        private const string CreateSchemaSql =
            "CREATE TABLE IF NOT EXISTS wb_schema(version integer NOT NULL);" +
            "CREATE TABLE IF NOT EXISTS user_profiles(" +
            "user_id text COLLATE \"C\" NOT NULL PRIMARY KEY, " +
            "json text NULL, " +
            "version bigint NOT NULL, " +
            "deleted boolean NOT NULL DEFAULT false, " +
            "updated_at timestamptz NOT NULL DEFAULT now());";

        // One statement for the whole batch. The rows come sorted by id (ordinal), so concurrent
        // committers lock rows in the same order. A row whose WHERE fails is not counted in the result.
        // The arrays are unnested in the select list (a ProjectSet node that streams the elements in array
        // order, side by side: the arrays have one length), not in FROM, where a Function Scan first copies
        // every row of the batch into a tuplestore (about 1 µs of server CPU per row, issue 13).
        internal const string UpsertSql =
            "INSERT INTO user_profiles AS stored (user_id, json, version, deleted, updated_at) " +
            "SELECT u.user_id, u.json, u.version, u.json IS NULL, now() " +
            "FROM (SELECT unnest(@ids) AS user_id, unnest(@jsons) AS json, unnest(@versions) AS version) AS u " +
            "ON CONFLICT (user_id) DO UPDATE SET json = excluded.json, version = excluded.version, " +
            "deleted = excluded.deleted, updated_at = excluded.updated_at " +
            "WHERE stored.version < excluded.version";

        private const string SelectColumns = "SELECT user_id, json, version, updated_at FROM user_profiles ";

        private readonly PostgresServer _server;
        private readonly SemaphoreSlim _schemaGate = new SemaphoreSlim(1, 1);
        private volatile bool _schemaReady;

        /// <param name="connectionString">An Npgsql connection string (may hold the password; never printed).</param>
        /// <param name="description">What to call the store in messages: its URI without any password.</param>
        /// <param name="certificateValidation">Checks the server's TLS certificate (sslrootcert); null: Npgsql's own checks.</param>
        public PostgresProfileStore(string connectionString, string description, System.Net.Security.RemoteCertificateValidationCallback certificateValidation = null)
        {
            _server = new PostgresServer(connectionString, description, certificateValidation, nameof(PostgresProfileStore));
        }

        /// <inheritdoc/>
        public string Description => _server.Description;

        /// <summary>For a mapped table on the same server (<see cref="PostgresMappedStore"/>).</summary>
        internal string ConnectionString => _server.ConnectionString;
        internal System.Net.Security.RemoteCertificateValidationCallback CertificateValidation => _server.CertificateValidation;

        /// <inheritdoc/>
        public Task<StoreCommitResult> CommitAsync(IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            StoreArguments.CheckRows(rows);
            return RunAsync("commit " + rows.Count + " row(s) to", rowsInvolved: true, cancellationToken,
                connection => CommitCore(connection, rows, cancellationToken));
        }

        /// <inheritdoc/>
        public Task<IReadOnlyDictionary<string, ProfileRow>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken)
        {
            var distinct = StoreArguments.DistinctIds(userIds);

            return RunAsync("read " + distinct.Count + " row(s) from", rowsInvolved: false, cancellationToken, async connection =>
            {
                var result = new Dictionary<string, ProfileRow>(StringComparer.Ordinal);
                if (distinct.Count == 0)
                    return (IReadOnlyDictionary<string, ProfileRow>)result;
                using (var command = new NpgsqlCommand(SelectColumns + "WHERE user_id = ANY(@ids)", connection))
                {
                    command.Parameters.Add(new NpgsqlParameter<string[]>("ids", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = distinct.ToArray() });
                    foreach (ProfileRow row in await ReadRowsAsync(command, cancellationToken).ConfigureAwait(false))
                        result[row.UserId] = row;
                }
                return (IReadOnlyDictionary<string, ProfileRow>)result;
            });
        }

        /// <inheritdoc/>
        public Task<IReadOnlyList<ProfileRow>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken)
        {
            if (limit < 1)
                throw new ArgumentOutOfRangeException(nameof(limit));
            return RunAsync("read a page of", rowsInvolved: false, cancellationToken, async connection =>
            {
                // user_id is COLLATE "C": byte order of UTF-8, which is ordinal order for the ASCII ids.
                string sql = afterUserId == null
                    ? SelectColumns + "ORDER BY user_id LIMIT @limit"
                    : SelectColumns + "WHERE user_id > @after ORDER BY user_id LIMIT @limit";
                using (var command = new NpgsqlCommand(sql, connection))
                {
                    if (afterUserId != null)
                        command.Parameters.Add(new NpgsqlParameter<string>("after", NpgsqlDbType.Text) { TypedValue = afterUserId });
                    command.Parameters.Add(new NpgsqlParameter<int>("limit", NpgsqlDbType.Integer) { TypedValue = limit });
                    return (IReadOnlyList<ProfileRow>)await ReadRowsAsync(command, cancellationToken).ConfigureAwait(false);
                }
            });
        }

        /// <inheritdoc/>
        public Task<long> CountAsync(CancellationToken cancellationToken)
        {
            return RunAsync("count the rows of", rowsInvolved: false, cancellationToken, async connection =>
            {
                using (var command = new NpgsqlCommand("SELECT count(*) FROM user_profiles WHERE NOT deleted", connection))
                    return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
            });
        }

        /// <summary>Closes the store's pooled connections.</summary>
        public void Dispose() => _server.Dispose();

        private static async Task<StoreCommitResult> CommitCore(NpgsqlConnection connection, IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            if (rows.Count == 0)
                return new StoreCommitResult(0, 0);

            // One row per id: the newest version of an id that occurs more than once (ON CONFLICT cannot
            // touch a row twice in one statement), in ordinal id order, so concurrent committers lock rows in
            // the same order; the others are stale by definition.
            ProfileRow[] ordered = MappedValues.NewestPerId(rows);
            var ids = new string[ordered.Length];
            var jsons = new string[ordered.Length];
            var versions = new long[ordered.Length];
            for (int i = 0; i < ordered.Length; i++)
            {
                ids[i] = ordered[i].UserId;
                jsons[i] = ordered[i].Json;
                versions[i] = ordered[i].Version;
            }

            using (var command = new NpgsqlCommand(UpsertSql, connection))
            {
                command.Parameters.Add(new NpgsqlParameter<string[]>("ids", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = ids });
                command.Parameters.Add(new NpgsqlParameter<string[]>("jsons", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = jsons });
                command.Parameters.Add(new NpgsqlParameter<long[]>("versions", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { TypedValue = versions });
                // A single statement is its own transaction: all rows or none.
                int applied = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                return new StoreCommitResult(applied, rows.Count - applied);
            }
        }

        private static Task<List<ProfileRow>> ReadRowsAsync(NpgsqlCommand command, CancellationToken cancellationToken) =>
            PostgresServer.ReadProfilesAsync(command, reader => reader.GetFieldValue<DateTime>(3) /* timestamptz: UTC */, cancellationToken);

        /// <inheritdoc/>
        public Task CheckAsync(CancellationToken cancellationToken)
        {
            return RunAsync("check", rowsInvolved: false, cancellationToken, async connection =>
            {
                CheckSchemaVersion(await ReadSchemaVersionAsync(connection, null, cancellationToken).ConfigureAwait(false));
                await CheckTableShapeAsync(connection, null, cancellationToken).ConfigureAwait(false);
                return true;
            }, ensureSchema: false);
        }

        private Task<T> RunAsync<T>(string what, bool rowsInvolved, CancellationToken cancellationToken, Func<NpgsqlConnection, Task<T>> operation,
            bool ensureSchema = true)
        {
            return _server.RunAsync(what + " it", rowsInvolved, cancellationToken,
                ensureSchema ? connection => _schemaReady ? Task.CompletedTask : EnsureSchemaAsync(connection, cancellationToken) : (Func<NpgsqlConnection, Task>)null,
                operation);
        }

        private async Task EnsureSchemaAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
        {
            await _schemaGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (_schemaReady)
                    return;
                long version = await ReadSchemaVersionAsync(connection, null, cancellationToken).ConfigureAwait(false);
                CheckSchemaVersion(version);
                // A user_profiles table that is not the module's (an application's own) is refused before
                // anything is written: the module never creates, alters or drops a table it does not own.
                await CheckTableShapeAsync(connection, null, cancellationToken).ConfigureAwait(false);
                if (version < StoreSchema.CurrentVersion)
                {
                    using (NpgsqlTransaction transaction = connection.BeginTransaction())
                    {
                        // Another process may be creating it right now: one at a time, then look again.
                        await ExecuteAsync(connection, transaction, "SELECT pg_advisory_xact_lock(" + SchemaLockKey.ToString(CultureInfo.InvariantCulture) + ")", cancellationToken).ConfigureAwait(false);
                        version = await ReadSchemaVersionAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
                        CheckSchemaVersion(version);
                        await CheckTableShapeAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
                        if (version < 1)
                        {
                            await ExecuteAsync(connection, transaction, CreateSchemaSql, cancellationToken).ConfigureAwait(false);
                            await ExecuteAsync(connection, transaction, "DELETE FROM wb_schema", cancellationToken).ConfigureAwait(false);
                            await ExecuteAsync(connection, transaction, "INSERT INTO wb_schema(version) VALUES(1)", cancellationToken).ConfigureAwait(false);
                        }
                        // Future migrations: if (version < 2) { ...; UPDATE wb_schema SET version = 2 }
                        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
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

        private const string TableColumnsSql =
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, " +
            "a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '' " +
            "FROM pg_attribute a WHERE a.attrelid = to_regclass('user_profiles') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

        // A unique index on user_id alone (the primary key or another) is what ON CONFLICT (user_id) needs.
        private const string UserIdIsKeySql =
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] " +
            "WHERE i.indrelid = to_regclass('user_profiles') AND i.indisunique AND i.indnatts = 1 AND i.indpred IS NULL AND a.attname = 'user_id')";

        /// <summary>An existing user_profiles table (in the search path) must have the module's columns with
        /// types its statements work with, user_id as its key, and no other column the upsert cannot fill.</summary>
        private async Task CheckTableShapeAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
        {
            var columns = new List<StoreColumn>();
            using (var command = new NpgsqlCommand(TableColumnsSql, connection, transaction))
            using (NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    columns.Add(new StoreColumn(reader.GetString(0), reader.GetString(1), reader.GetBoolean(2), reader.GetBoolean(3), 0));
            }
            if (columns.Count == 0)
                return;
            bool userIdIsKey;
            using (var command = new NpgsqlCommand(UserIdIsKeySql, connection, transaction))
                userIdIsKey = (bool)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            var typeProblems = new List<string>();
            foreach (StoreColumn column in columns)
            {
                string type = column.Type;
                bool isText = type == "text" || type.StartsWith("character varying", StringComparison.Ordinal);
                if (column.Is("user_id") && !isText)
                    typeProblems.Add("user_id is " + type + ", not text");
                else if (column.Is("json") && !isText)
                    typeProblems.Add("json is " + type + ", not text" + (type == "jsonb" || type == "json" ? " (" + type + " reorders keys or rewrites numbers; WriteBehind keeps the JSON text byte for byte)" : ""));
                else if (column.Is("version") && type != "bigint")
                    typeProblems.Add("version is " + type + ", not bigint");
                else if (column.Is("deleted") && type != "boolean")
                    typeProblems.Add("deleted is " + type + ", not boolean");
                else if (column.Is("updated_at") && !type.StartsWith("timestamp", StringComparison.Ordinal))
                    typeProblems.Add("updated_at is " + type + ", not timestamptz");
            }
            StoreTableShape.ThrowIfNotTheModules(Description, columns, userIdIsKey, typeProblems);
        }

        /// <summary>The version in wb_schema (in the connection's search path), or 0 when the table is missing or empty.</summary>
        private static async Task<long> ReadSchemaVersionAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
        {
            using (var command = new NpgsqlCommand("SELECT to_regclass('wb_schema') IS NOT NULL", connection, transaction))
            {
                if (!(bool)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))
                    return 0;
                command.CommandText = "SELECT max(version) FROM wb_schema";
                object value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                return value == null || value is DBNull ? 0 : Convert.ToInt64(value, CultureInfo.InvariantCulture);
            }
        }

        private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
        {
            using (var command = new NpgsqlCommand(sql, connection, transaction))
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
