using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using NpgsqlTypes;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// Flushes into the application's own PostgreSQL table through a <see cref="StoreMapping"/>. One statement
    /// per commit: data-modifying CTEs upsert the versions into <c>wb_versions</c> (<c>WHERE stored.version &lt;
    /// excluded.version</c>), then upsert (or delete) the user's rows of exactly the versions that went in, so both
    /// tables change in one transaction and the user's table never goes backwards. Values are handed as text and
    /// cast by PostgreSQL to each column's own type: a value the column refuses (<c>22P02</c> invalid input,
    /// <c>22001</c> too long, <c>23xxx</c> constraints) fails the statement with the server's message, and the
    /// flusher isolates and dead-letters that row.
    /// </summary>
    public sealed class PostgresMappedStore : IMappedProfileStore
    {
        // Any constant: serialises the creation of wb_versions between processes.
        private const long VersionsLockKey = 0x5752_4954_4542_4856; // "WRITEBHV"

        private const string CreateVersionsSql =
            "CREATE TABLE IF NOT EXISTS wb_versions(" +
            "table_name text NOT NULL, " +
            "key text COLLATE \"C\" NOT NULL, " +
            "version bigint NOT NULL, " +
            "deleted boolean NOT NULL DEFAULT false, " +
            "updated_at timestamptz NOT NULL DEFAULT now(), " +
            "PRIMARY KEY (table_name, key))";

        private readonly string _connectionString;
        private readonly System.Net.Security.RemoteCertificateValidationCallback _certificateValidation;
        private readonly string _description;
        private readonly SemaphoreSlim _gate = new SemaphoreSlim(1, 1);
        private volatile Layout _layout;
        private volatile bool _versionsReady;
        private volatile bool _disposed;

        /// <summary>What validation found: the resolved names, the columns and the statements built from them.</summary>
        private sealed class Layout
        {
            public string TableName;          // schema.table, as wb_versions.table_name
            public MappedColumn Key;
            public List<MappedColumn> Columns; // rebuild order
            public MappedColumn Json;
            public string CommitSql;
            public string ReadSql;
        }

        public PostgresMappedStore(string connectionString, string description, StoreMapping mapping,
            System.Net.Security.RemoteCertificateValidationCallback certificateValidation = null)
        {
            if (string.IsNullOrWhiteSpace(connectionString))
                throw new ArgumentException("A connection string is required.", nameof(connectionString));
            _connectionString = connectionString;
            _description = description ?? "postgres";
            Mapping = mapping ?? throw new ArgumentNullException(nameof(mapping));
            _certificateValidation = certificateValidation;
        }

        public StoreMapping Mapping { get; }

        public string Description => _description + " table " + Mapping.Table;

        public Task ValidateAsync(CancellationToken cancellationToken) => CheckAsync(cancellationToken);

        /// <summary>Reads the catalog and checks the mapping; creates nothing (not even wb_versions).</summary>
        public Task CheckAsync(CancellationToken cancellationToken) =>
            RunAsync("check the mapping against", false, cancellationToken, _ => Task.FromResult(true), prepare: false);

        public bool SameProfile(string cacheJson, string storedJson)
        {
            Layout layout = _layout;
            if (layout == null) return string.Equals(cacheJson, storedJson, StringComparison.Ordinal);
            if (layout.Json != null)
            {
                // text and json keep the profile byte for byte; jsonb reorders keys and rewrites numbers.
                if (string.Equals(cacheJson, storedJson, StringComparison.Ordinal)) return true;
                return layout.Json.TypeName == "jsonb" && cacheJson != null && storedJson != null && MappedValues.SameJson(cacheJson, storedJson);
            }
            return MappedValues.SameByMeaning(layout.Columns, cacheJson, storedJson);
        }

        public Task<StoreCommitResult> CommitAsync(IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            StoreArguments.CheckRows(rows);
            return RunAsync("commit " + rows.Count + " row(s) to", true, cancellationToken, async connection =>
            {
                if (rows.Count == 0) return new StoreCommitResult(0, 0);
                Layout layout = _layout;
                ProfileRow[] ordered = MappedValues.NewestPerId(rows);
                var keys = new string[ordered.Length];
                var versions = new long[ordered.Length];
                var deleted = new bool[ordered.Length];
                var values = layout.Columns.Select(_ => new string[ordered.Length]).ToArray();
                var jsons = new string[ordered.Length];
                for (int i = 0; i < ordered.Length; i++)
                {
                    ProfileRow row = ordered[i];
                    if (layout.Key.Kind == ColumnKind.Integer && !MappedValues.TryIntegerKey(row.UserId, out _))
                        throw new StoreException($"user id '{row.UserId}' is not an integer in canonical form, as the key column \"{layout.Key.Column}\" ({layout.Key.TypeName}) needs", null);
                    keys[i] = row.UserId;
                    versions[i] = row.Version;
                    deleted[i] = row.IsDeleted;
                    jsons[i] = row.Json;
                    if (row.IsDeleted) continue;
                    var members = MappedValues.Members(row.Json);
                    for (int c = 0; c < layout.Columns.Count; c++)
                    {
                        members.TryGetValue(layout.Columns[c].Field, out string raw);
                        values[c][i] = MappedValues.ColumnText(raw, layout.Columns[c].Kind);
                    }
                }
                using (var command = new NpgsqlCommand(layout.CommitSql, connection))
                {
                    command.Parameters.Add(new NpgsqlParameter<string>("table", NpgsqlDbType.Text) { TypedValue = layout.TableName });
                    command.Parameters.Add(new NpgsqlParameter<string[]>("keys", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = keys });
                    command.Parameters.Add(new NpgsqlParameter<long[]>("versions", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { TypedValue = versions });
                    command.Parameters.Add(new NpgsqlParameter<bool[]>("deleted", NpgsqlDbType.Array | NpgsqlDbType.Boolean) { TypedValue = deleted });
                    for (int c = 0; c < values.Length; c++)
                        command.Parameters.Add(new NpgsqlParameter<string[]>("c" + c.ToString(CultureInfo.InvariantCulture), NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = values[c] });
                    if (layout.Json != null)
                        command.Parameters.Add(new NpgsqlParameter<string[]>("cj", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = jsons });
                    int applied = Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
                    return new StoreCommitResult(applied, rows.Count - applied);
                }
            });
        }

        public Task<IReadOnlyDictionary<string, StoredProfile>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken)
        {
            var distinct = StoreArguments.DistinctIds(userIds);
            return RunAsync("read " + distinct.Count + " row(s) from", false, cancellationToken, async connection =>
            {
                var result = new Dictionary<string, StoredProfile>(StringComparer.Ordinal);
                Layout layout = _layout;
                // An id that is not a canonical integer can never have been written to an integer key.
                var ids = layout.Key.Kind == ColumnKind.Integer ? distinct.Where(id => MappedValues.TryIntegerKey(id, out _)).ToArray() : distinct.ToArray();
                if (ids.Length == 0) return (IReadOnlyDictionary<string, StoredProfile>)result;
                using (var command = new NpgsqlCommand(layout.ReadSql, connection))
                {
                    command.Parameters.Add(new NpgsqlParameter<string>("table", NpgsqlDbType.Text) { TypedValue = layout.TableName });
                    command.Parameters.Add(new NpgsqlParameter<string[]>("ids", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = ids });
                    using (NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                    {
                        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        {
                            StoredProfile row = ReadRow(layout, reader);
                            result[row.UserId] = row;
                        }
                    }
                }
                return (IReadOnlyDictionary<string, StoredProfile>)result;
            });
        }

        /// <summary>Columns of <see cref="Layout.ReadSql"/>: id, version, deleted, updated_at, row present, then each
        /// mapped column's JSON text (to_json), then the JSON column.</summary>
        private static StoredProfile ReadRow(Layout layout, NpgsqlDataReader reader)
        {
            string id = reader.GetString(0);
            bool versioned = !reader.IsDBNull(1);
            long version = versioned ? reader.GetInt64(1) : 0;
            bool tombstone = versioned && reader.GetBoolean(2);
            DateTimeOffset updatedAt = versioned
                ? new DateTimeOffset(DateTime.SpecifyKind(reader.GetFieldValue<DateTime>(3), DateTimeKind.Utc))
                : DateTimeOffset.MinValue;
            bool present = reader.GetBoolean(4);
            string json = null;
            if (!tombstone && present)
            {
                int jsonOrdinal = 5 + layout.Columns.Count;
                if (layout.Json != null && !reader.IsDBNull(jsonOrdinal))
                {
                    json = reader.GetString(jsonOrdinal);
                }
                else
                {
                    var texts = new string[layout.Columns.Count];
                    for (int c = 0; c < texts.Length; c++)
                        texts[c] = reader.IsDBNull(5 + c) ? null : reader.GetString(5 + c);
                    json = MappedValues.Rebuild(layout.Columns, texts);
                }
            }
            return new StoredProfile(id, json, version, updatedAt);
        }

        public Task<IReadOnlyList<StoredProfile>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken)
        {
            if (limit < 1)
                throw new ArgumentOutOfRangeException(nameof(limit));
            return RunAsync("read a page of", false, cancellationToken, async connection =>
            {
                Layout layout = _layout;
                var ids = new List<string>();
                string sql = "SELECT key FROM wb_versions WHERE table_name = @table" + (afterUserId == null ? "" : " AND key > @after") + " ORDER BY key LIMIT @limit";
                using (var command = new NpgsqlCommand(sql, connection))
                {
                    command.Parameters.Add(new NpgsqlParameter<string>("table", NpgsqlDbType.Text) { TypedValue = layout.TableName });
                    if (afterUserId != null)
                        command.Parameters.Add(new NpgsqlParameter<string>("after", NpgsqlDbType.Text) { TypedValue = afterUserId });
                    command.Parameters.Add(new NpgsqlParameter<int>("limit", NpgsqlDbType.Integer) { TypedValue = limit });
                    using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) ids.Add(reader.GetString(0));
                }
                var page = new List<StoredProfile>(ids.Count);
                if (ids.Count == 0) return (IReadOnlyList<StoredProfile>)page;
                using (var command = new NpgsqlCommand(layout.ReadSql, connection))
                {
                    command.Parameters.Add(new NpgsqlParameter<string>("table", NpgsqlDbType.Text) { TypedValue = layout.TableName });
                    command.Parameters.Add(new NpgsqlParameter<string[]>("ids", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = ids.ToArray() });
                    var byId = new Dictionary<string, StoredProfile>(StringComparer.Ordinal);
                    using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        {
                            var row = ReadRow(layout, reader);
                            byId[row.UserId] = row;
                        }
                    foreach (string id in ids)
                        if (byId.TryGetValue(id, out var row)) page.Add(row);
                }
                return (IReadOnlyList<StoredProfile>)page;
            });
        }

        /// <summary>Profiles the module wrote to the table and has not deleted (wb_versions' live rows).</summary>
        public Task<long> CountAsync(CancellationToken cancellationToken)
        {
            return RunAsync("count the rows of", false, cancellationToken, async connection =>
            {
                using (var command = new NpgsqlCommand("SELECT count(*) FROM wb_versions WHERE table_name = @table AND NOT deleted", connection))
                {
                    command.Parameters.Add(new NpgsqlParameter<string>("table", NpgsqlDbType.Text) { TypedValue = _layout.TableName });
                    return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
                }
            });
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            try
            {
                using (var connection = new NpgsqlConnection(_connectionString))
                    NpgsqlConnection.ClearPool(connection);
            }
            catch (Exception)
            {
                // Closing a broken connection must not hide the error that broke it.
            }
        }

        private async Task<T> RunAsync<T>(string what, bool rowsInvolved, CancellationToken cancellationToken, Func<NpgsqlConnection, Task<T>> operation,
            bool prepare = true)
        {
            if (_disposed)
                throw new ObjectDisposedException(nameof(PostgresMappedStore));
            cancellationToken.ThrowIfCancellationRequested();
            NpgsqlConnection connection = null;
            bool opened = false;
            try
            {
                connection = new NpgsqlConnection(_connectionString);
                if (_certificateValidation != null)
                    connection.UserCertificateValidationCallback = _certificateValidation;
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                opened = true;
                if (_layout == null || (prepare && !_versionsReady))
                    await PrepareAsync(connection, prepare, cancellationToken).ConfigureAwait(false);
                return await operation(connection).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (ObjectDisposedException) when (_disposed)
            {
                throw;
            }
            catch (StoreException)
            {
                throw; // a row this code refuses before the server sees it
            }
            catch (Exception ex) when (ex is NpgsqlException || ex is IOException || ex is SocketException || ex is TimeoutException
                                       || ex is OperationCanceledException || ex is EncoderFallbackException || ex is ArgumentException
                                       || ex is InvalidCastException || (ex is InvalidOperationException && !(ex is ObjectDisposedException)))
            {
                string message = "PostgreSQL store " + _description + (opened ? "" : " is unavailable") + ": could not " + what + " table " + Mapping.Table + ": " + PostgresProfileStore.Describe(ex);
                if (rowsInvolved && opened && PostgresProfileStore.IsRowError(ex))
                    throw new StoreException(message, ex);
                throw new StoreUnavailableException(message, ex);
            }
            finally
            {
                if (connection != null)
                {
                    try { connection.Dispose(); } catch (Exception) { /* a broken connection is dropped from the pool */ }
                }
            }
        }

        /// <summary>Checks the mapping against the catalog, creates wb_versions when missing and builds the statements.</summary>
        private async Task PrepareAsync(NpgsqlConnection connection, bool createVersions, CancellationToken cancellationToken)
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (_layout == null)
                    _layout = await ReadCatalogAsync(connection, cancellationToken).ConfigureAwait(false);
                if (!createVersions || _versionsReady) return;
                using (var check = new NpgsqlCommand("SELECT to_regclass('wb_versions') IS NOT NULL", connection))
                {
                    if (!(bool)await check.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))
                    {
                        using (NpgsqlTransaction transaction = connection.BeginTransaction())
                        {
                            using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(" + VersionsLockKey.ToString(CultureInfo.InvariantCulture) + ")", connection, transaction))
                                await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                            using (var create = new NpgsqlCommand(CreateVersionsSql, connection, transaction))
                                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                        }
                    }
                }
                _versionsReady = true;
            }
            finally
            {
                _gate.Release();
            }
        }

        private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"") + "\"";

        private static ColumnKind KindOf(string baseType, string category)
        {
            switch (baseType)
            {
                case "int2": case "int4": case "int8": return ColumnKind.Integer;
                case "float4": case "float8": return ColumnKind.Real;
                case "numeric": return ColumnKind.Numeric;
                case "bool": return ColumnKind.Boolean;
                case "json": case "jsonb": return ColumnKind.Json;
            }
            switch (category)
            {
                case "S": return ColumnKind.Text;
                case "D": return ColumnKind.Timestamp;
                default: return ColumnKind.Other;
            }
        }

        private sealed class CatalogColumn
        {
            public string Name;
            public short Number;
            public string TypeName;
            public string BaseType;
            public ColumnKind Kind;
            public bool RequiredWithoutDefault;
        }

        private async Task<Layout> ReadCatalogAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
        {
            Mapping.SplitTable(out string schema, out string table);
            uint oid = 0;
            string schemaName = null, tableName = null;
            const string findTable =
                "SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
                "WHERE c.relkind IN ('r', 'p') AND (c.relname = @t OR c.relname = lower(@t)) " +
                "AND (CASE WHEN @s::text IS NULL THEN n.nspname = ANY(current_schemas(false)) ELSE (n.nspname = @s OR n.nspname = lower(@s)) END) " +
                "ORDER BY (c.relname = @t) DESC, array_position(current_schemas(false), n.nspname::text) LIMIT 1";
            using (var command = new NpgsqlCommand(findTable, connection))
            {
                command.Parameters.Add(new NpgsqlParameter("t", NpgsqlDbType.Text) { Value = table });
                command.Parameters.Add(new NpgsqlParameter("s", NpgsqlDbType.Text) { Value = (object)schema ?? DBNull.Value });
                using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        oid = reader.GetFieldValue<uint>(0);
                        schemaName = reader.GetString(1);
                        tableName = reader.GetString(2);
                    }
                }
            }
            if (oid == 0)
                throw MappedValues.Missing(_description, Mapping.Table, new[] { $"there is no table '{Mapping.Table}'" + (schema == null ? " in the search path" : "") });

            var columns = new List<CatalogColumn>();
            const string readColumns =
                "SELECT a.attname, a.attnum, format_type(a.atttypid, NULL), b.typname, b.typcategory::text, " +
                "a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' " +
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid " +
                "JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END " +
                "WHERE a.attrelid = @oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";
            using (var command = new NpgsqlCommand(readColumns, connection))
            {
                command.Parameters.Add(new NpgsqlParameter("oid", NpgsqlDbType.Oid) { Value = oid });
                using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        columns.Add(new CatalogColumn
                        {
                            Name = reader.GetString(0),
                            Number = reader.GetInt16(1),
                            TypeName = reader.GetString(2),
                            BaseType = reader.GetString(3),
                            Kind = KindOf(reader.GetString(3), reader.GetString(4)),
                            RequiredWithoutDefault = reader.GetBoolean(5),
                        });
                    }
                }
            }

            var problems = new List<string>();
            string qualified = schemaName + "." + tableName;
            CatalogColumn Find(string name) =>
                columns.FirstOrDefault(c => c.Name == name) ?? columns.FirstOrDefault(c => c.Name == name.ToLowerInvariant());

            CatalogColumn key = Find(Mapping.KeyColumn);
            if (key == null)
            {
                problems.Add($"table {qualified} has no key column '{Mapping.KeyColumn}'");
            }
            else
            {
                if (key.Kind != ColumnKind.Text && key.Kind != ColumnKind.Integer)
                    problems.Add($"the key column '{key.Name}' is {key.TypeName}: it must be a text or an integer type");
                using (var command = new NpgsqlCommand(
                    "SELECT EXISTS(SELECT 1 FROM pg_index i WHERE i.indrelid = @oid AND i.indisunique AND i.indnatts = 1 AND i.indkey[0] = @num " +
                    "AND i.indpred IS NULL AND i.indexprs IS NULL)", connection))
                {
                    command.Parameters.Add(new NpgsqlParameter("oid", NpgsqlDbType.Oid) { Value = oid });
                    command.Parameters.Add(new NpgsqlParameter("num", NpgsqlDbType.Smallint) { Value = key.Number });
                    if (!(bool)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))
                        problems.Add($"the key column '{key.Name}' is neither the primary key nor unique on its own");
                }
            }
            var mapped = new List<MappedColumn>();
            var used = new HashSet<string>(StringComparer.Ordinal);
            if (key != null) used.Add(key.Name);
            foreach (var pair in Mapping.Columns)
            {
                CatalogColumn column = Find(pair.Value);
                if (column == null) { problems.Add($"table {qualified} has no column '{pair.Value}' (for the field '{pair.Key}')"); continue; }
                used.Add(column.Name);
                mapped.Add(new MappedColumn(pair.Key, column.Name, column.Kind, column.TypeName, column.Number));
            }
            MappedColumn json = null;
            if (Mapping.JsonColumn != null)
            {
                CatalogColumn column = Find(Mapping.JsonColumn);
                if (column == null) problems.Add($"table {qualified} has no JSON column '{Mapping.JsonColumn}'");
                else if (column.Kind != ColumnKind.Text && column.Kind != ColumnKind.Json) problems.Add($"the JSON column '{column.Name}' is {column.TypeName}: it must be text, json or jsonb");
                else { used.Add(column.Name); json = new MappedColumn(null, column.Name, column.Kind, column.BaseType == "jsonb" ? "jsonb" : column.TypeName, column.Number); }
            }
            foreach (var column in columns.Where(c => c.RequiredWithoutDefault && !used.Contains(c.Name)))
                problems.Add($"the column '{column.Name}' is NOT NULL without a default and not mapped (every new row would be refused)");
            if (problems.Count > 0)
                throw MappedValues.Missing(_description, Mapping.Table, problems);

            var layout = new Layout
            {
                TableName = qualified,
                Key = new MappedColumn(null, key.Name, key.Kind, key.TypeName, key.Number),
                Columns = MappedValues.InRebuildOrder(Mapping, mapped),
                Json = json,
            };
            BuildStatements(layout, Quote(schemaName) + "." + Quote(tableName));
            return layout;
        }

        private void BuildStatements(Layout layout, string target)
        {
            var n = layout.Columns.Count;
            string Cast(string expression, MappedColumn column) => "CAST(" + expression + " AS " + column.TypeName + ")";
            string keyCast = Cast("a.k", layout.Key);
            var aliases = Enumerable.Range(0, n).Select(i => "c" + i.ToString(CultureInfo.InvariantCulture)).ToList();
            var arrays = new List<string> { "@keys", "@versions", "@deleted" };
            arrays.AddRange(aliases.Select(a => "@" + a));
            var names = new List<string> { "k", "version", "deleted" };
            names.AddRange(aliases);
            if (layout.Json != null) { arrays.Add("@cj"); names.Add("cj"); }
            names.Add("n");

            var targetColumns = new List<string> { Quote(layout.Key.Column) };
            var selected = new List<string> { keyCast };
            for (int i = 0; i < n; i++)
            {
                targetColumns.Add(Quote(layout.Columns[i].Column));
                selected.Add(Cast("a." + aliases[i], layout.Columns[i]));
            }
            if (layout.Json != null)
            {
                targetColumns.Add(Quote(layout.Json.Column));
                selected.Add(Cast("a.cj", layout.Json));
            }
            string updates = string.Join(", ", targetColumns.Skip(1).Select(c => c + " = excluded." + c));

            var sql = new StringBuilder();
            sql.Append("WITH u AS (SELECT * FROM unnest(").Append(string.Join(", ", arrays)).Append(") WITH ORDINALITY AS u(").Append(string.Join(", ", names)).Append(")), ");
            sql.Append("v AS (INSERT INTO wb_versions AS s (table_name, key, version, deleted, updated_at) ")
               .Append("SELECT @table, u.k, u.version, u.deleted, now() FROM u ORDER BY u.n ")
               .Append("ON CONFLICT (table_name, key) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, updated_at = excluded.updated_at ")
               .Append("WHERE s.version < excluded.version RETURNING s.key), ");
            sql.Append("a AS (SELECT u.* FROM u JOIN v ON v.key = u.k), ");
            sql.Append("w AS (INSERT INTO ").Append(target).Append(" AS t (").Append(string.Join(", ", targetColumns)).Append(") ")
               .Append("SELECT ").Append(string.Join(", ", selected)).Append(" FROM a WHERE NOT a.deleted ORDER BY a.n ")
               .Append("ON CONFLICT (").Append(Quote(layout.Key.Column)).Append(") DO UPDATE SET ").Append(updates).Append(" RETURNING 1)");
            if (Mapping.DeleteMode == StoreDeleteMode.Delete)
                sql.Append(", d AS (DELETE FROM ").Append(target).Append(" AS t USING a WHERE a.deleted AND t.").Append(Quote(layout.Key.Column)).Append(" = ").Append(keyCast).Append(" RETURNING 1)");
            sql.Append(" SELECT count(*) FROM v");
            layout.CommitSql = sql.ToString();

            var read = new StringBuilder("SELECT q.id, s.version, s.deleted, s.updated_at, t.");
            read.Append(Quote(layout.Key.Column)).Append(" IS NOT NULL");
            foreach (var column in layout.Columns) read.Append(", to_json(t.").Append(Quote(column.Column)).Append(")::text");
            if (layout.Json != null) read.Append(", t.").Append(Quote(layout.Json.Column)).Append("::text");
            read.Append(" FROM unnest(@ids) AS q(id) LEFT JOIN wb_versions s ON s.table_name = @table AND s.key = q.id ")
                .Append("LEFT JOIN ").Append(target).Append(" t ON t.").Append(Quote(layout.Key.Column)).Append(" = ").Append(Cast("q.id", layout.Key))
                .Append(" WHERE s.key IS NOT NULL OR t.").Append(Quote(layout.Key.Column)).Append(" IS NOT NULL");
            layout.ReadSql = read.ToString();
        }
    }
}
