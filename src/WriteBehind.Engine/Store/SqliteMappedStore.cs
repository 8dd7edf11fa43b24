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
    /// Flushes into the application's own table in a SQLite file through a <see cref="StoreMapping"/>. A commit
    /// is one transaction of set-based statements, the same for any number of rows: the batch goes in as one JSON
    /// array parameter (<c>json_each</c>) into a per-connection staging table, rows whose version is not newer than
    /// <c>wb_versions</c>' are dropped from it, then <c>wb_versions</c> and the user's table are upserted (and
    /// deleted rows removed) from what is left.
    /// </summary>
    /// <remarks>
    /// SQLite itself accepts any value in any column (type affinity), so this store checks each value against
    /// the column's declared type (INTEGER, REAL, NUMERIC/DECIMAL, BOOLEAN, DATE/TIME, JSON, TEXT) and refuses a
    /// row whose value does not fit (a <see cref="StoreException"/> naming the column and the value): the flusher
    /// dead-letters that row and persists the rest. Constraint failures (NOT NULL, CHECK, UNIQUE) are SQLite's own.
    /// </remarks>
    public sealed class SqliteMappedStore : IMappedProfileStore
    {
        private const string CreateVersionsSql =
            "CREATE TABLE IF NOT EXISTS main.wb_versions(" +
            "table_name TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, " +
            "updated_at TEXT NOT NULL, PRIMARY KEY (table_name, key)) WITHOUT ROWID";

        private readonly string _fullPath;
        private readonly int _busyTimeoutMs;
        private readonly SemaphoreSlim _gate = new SemaphoreSlim(1, 1);
        private SqliteConnection _connection;
        private volatile Layout _layout;
        private volatile bool _disposed;

        private sealed class Layout
        {
            public string TableName;
            public MappedColumn Key;
            public List<MappedColumn> Columns;
            public MappedColumn Json;
            public string StageSql;
            public string DropStaleSql;
            public string VersionsSql;
            public string UpsertSql;
            public string DeleteSql;
            public string ReadSql;
            public string StagingTableSql;
        }

        public SqliteMappedStore(string filePath, StoreMapping mapping, TimeSpan? busyTimeout = null)
        {
            if (string.IsNullOrWhiteSpace(filePath))
                throw new ArgumentException("A SQLite file path is required.", nameof(filePath));
            _fullPath = Path.GetFullPath(filePath);
            _busyTimeoutMs = (int)(busyTimeout ?? TimeSpan.FromMilliseconds(1000)).TotalMilliseconds;
            Mapping = mapping ?? throw new ArgumentNullException(nameof(mapping));
        }

        public StoreMapping Mapping { get; }

        public string Description => "sqlite:" + _fullPath + " table " + Mapping.Table;

        public Task ValidateAsync(CancellationToken cancellationToken) => CheckAsync(cancellationToken);

        /// <summary>Reads the catalog and checks the mapping on a connection of its own; creates nothing.</summary>
        public Task CheckAsync(CancellationToken cancellationToken)
        {
            return RunAsync("check the mapping against", cancellationToken, _ => true, check: true);
        }

        public bool SameProfile(string cacheJson, string storedJson)
        {
            Layout layout = _layout;
            // A JSON column keeps the text byte for byte (SQLite stores TEXT as given).
            if (layout == null || layout.Json != null) return string.Equals(cacheJson, storedJson, StringComparison.Ordinal);
            return MappedValues.SameByMeaning(layout.Columns, cacheJson, storedJson);
        }

        public Task<StoreCommitResult> CommitAsync(IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            StoreArguments.CheckRows(rows);
            return RunAsync("commit " + rows.Count + " row(s) to", cancellationToken, connection => Commit(connection, rows, cancellationToken));
        }

        private StoreCommitResult Commit(SqliteConnection connection, IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            if (rows.Count == 0) return new StoreCommitResult(0, 0);
            Layout layout = _layout;
            ProfileRow[] ordered = MappedValues.NewestPerId(rows);
            string batch = BatchJson(layout, ordered);
            cancellationToken.ThrowIfCancellationRequested();
            int applied;
            using (SqliteTransaction transaction = connection.BeginTransaction())
            {
                Execute(connection, transaction, "DELETE FROM temp.wb_batch");
                Execute(connection, transaction, layout.StageSql, ("$rows", batch));
                Execute(connection, transaction, layout.DropStaleSql, ("$table", layout.TableName));
                applied = Execute(connection, transaction, layout.VersionsSql, ("$table", layout.TableName),
                    ("$now", DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture)));
                Execute(connection, transaction, layout.UpsertSql);
                if (layout.DeleteSql != null) Execute(connection, transaction, layout.DeleteSql);
                Execute(connection, transaction, "DELETE FROM temp.wb_batch");
                transaction.Commit();
            }
            return new StoreCommitResult(applied, rows.Count - applied);
        }

        /// <summary>The batch as one JSON array of rows [id, key value, version, deleted, column values..., json],
        /// each value already converted to what its column takes (or the row refused).</summary>
        private static string BatchJson(Layout layout, ProfileRow[] rows)
        {
            var sb = new StringBuilder(rows.Length * 64);
            sb.Append('[');
            for (int i = 0; i < rows.Length; i++)
            {
                ProfileRow row = rows[i];
                if (i > 0) sb.Append(',');
                sb.Append('[');
                Json.JsonText.WriteString(sb, row.UserId);
                sb.Append(',');
                if (layout.Key.Kind == ColumnKind.Integer)
                {
                    if (!MappedValues.TryIntegerKey(row.UserId, out long key))
                        throw new StoreException($"user id '{row.UserId}' is not an integer in canonical form, as the key column \"{layout.Key.Column}\" ({layout.Key.TypeName}) needs", null);
                    sb.Append(key.ToString(CultureInfo.InvariantCulture));
                }
                else
                {
                    Json.JsonText.WriteString(sb, row.UserId);
                }
                sb.Append(',').Append(row.Version.ToString(CultureInfo.InvariantCulture)).Append(',').Append(row.IsDeleted ? '1' : '0');
                var members = row.IsDeleted ? null : MappedValues.Members(row.Json);
                foreach (MappedColumn column in layout.Columns)
                {
                    sb.Append(',');
                    string raw = null;
                    members?.TryGetValue(column.Field, out raw);
                    AppendValue(sb, row.UserId, column, MappedValues.ColumnText(raw, column.Kind), raw);
                }
                if (layout.Json != null)
                {
                    sb.Append(',');
                    Json.JsonText.WriteString(sb, row.Json);
                }
                sb.Append(']');
            }
            sb.Append(']');
            return sb.ToString();
        }

        private static void AppendValue(StringBuilder sb, string userId, MappedColumn column, string text, string raw)
        {
            if (text == null) { sb.Append("null"); return; }
            switch (column.Kind)
            {
                case ColumnKind.Integer:
                    if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long integer))
                        throw Refused(userId, column, raw, "not an integer");
                    sb.Append(integer.ToString(CultureInfo.InvariantCulture));
                    return;
                case ColumnKind.Real:
                    if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double real) || double.IsNaN(real) || double.IsInfinity(real))
                        throw Refused(userId, column, raw, "not a number");
                    sb.Append(real.ToString("R", CultureInfo.InvariantCulture));
                    return;
                case ColumnKind.Numeric:
                    if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double number) || double.IsNaN(number) || double.IsInfinity(number))
                        throw Refused(userId, column, raw, "not a number");
                    Json.JsonText.WriteString(sb, text); // NUMERIC affinity turns the text into an integer or a real
                    return;
                case ColumnKind.Boolean:
                    if (!MappedValues.TryBoolean(text, out bool flag))
                        throw Refused(userId, column, raw, "not a boolean");
                    sb.Append(flag ? '1' : '0');
                    return;
                case ColumnKind.Timestamp:
                    if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out _))
                        throw Refused(userId, column, raw, "not an ISO 8601 date or time");
                    Json.JsonText.WriteString(sb, text);
                    return;
                default:
                    Json.JsonText.WriteString(sb, text);
                    return;
            }
        }

        private static StoreException Refused(string userId, MappedColumn column, string raw, string why)
        {
            string shown = raw.Length > 64 ? raw.Substring(0, 64) + "..." : raw;
            return new StoreException($"column \"{column.Column}\" ({column.TypeName}) refuses {shown} of user '{userId}': {why}", null);
        }

        public Task<IReadOnlyDictionary<string, StoredProfile>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken)
        {
            var distinct = StoreArguments.DistinctIds(userIds);
            return RunAsync("read " + distinct.Count + " row(s) from", cancellationToken, connection =>
            {
                var result = new Dictionary<string, StoredProfile>(StringComparer.Ordinal);
                foreach (var row in Read(connection, distinct)) result[row.UserId] = row;
                return (IReadOnlyDictionary<string, StoredProfile>)result;
            });
        }

        private List<StoredProfile> Read(SqliteConnection connection, IEnumerable<string> userIds)
        {
            Layout layout = _layout;
            var ids = layout.Key.Kind == ColumnKind.Integer ? userIds.Where(id => MappedValues.TryIntegerKey(id, out _)).ToList() : userIds.ToList();
            var rows = new List<StoredProfile>(ids.Count);
            if (ids.Count == 0) return rows;
            var idsJson = new StringBuilder(ids.Count * 12).Append('[');
            for (int i = 0; i < ids.Count; i++)
            {
                if (i > 0) idsJson.Append(',');
                Json.JsonText.WriteString(idsJson, ids[i]);
            }
            idsJson.Append(']');
            using (SqliteTransaction transaction = connection.BeginTransaction(deferred: true))
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = layout.ReadSql;
                command.Parameters.Add("$ids", SqliteType.Text).Value = idsJson.ToString();
                command.Parameters.Add("$table", SqliteType.Text).Value = layout.TableName;
                using (SqliteDataReader reader = command.ExecuteReader())
                {
                    while (reader.Read())
                    {
                        string id = reader.GetString(0);
                        bool versioned = !reader.IsDBNull(1);
                        long version = versioned ? reader.GetInt64(1) : 0;
                        bool tombstone = versioned && reader.GetInt64(2) != 0;
                        DateTimeOffset updatedAt = versioned && DateTimeOffset.TryParse(reader.GetString(3), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)
                            ? at : DateTimeOffset.MinValue;
                        bool present = reader.GetInt64(4) != 0;
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
                                    texts[c] = JsonOf(layout.Columns[c].Kind, reader.IsDBNull(5 + c) ? null : reader.GetValue(5 + c));
                                json = MappedValues.Rebuild(layout.Columns, texts);
                            }
                        }
                        rows.Add(new StoredProfile(id, json, version, updatedAt));
                    }
                }
                transaction.Commit();
            }
            return rows;
        }

        /// <summary>A stored value as JSON text, by the column's kind.</summary>
        private static string JsonOf(ColumnKind kind, object value)
        {
            if (value == null) return null;
            var sb = new StringBuilder();
            switch (value)
            {
                case long l:
                    if (kind == ColumnKind.Boolean) return l != 0 ? "true" : "false";
                    if (kind == ColumnKind.Text || kind == ColumnKind.Timestamp) { Json.JsonText.WriteString(sb, l.ToString(CultureInfo.InvariantCulture)); return sb.ToString(); }
                    return l.ToString(CultureInfo.InvariantCulture);
                case double d:
                    if (double.IsNaN(d) || double.IsInfinity(d)) return "null";
                    string r = d.ToString("R", CultureInfo.InvariantCulture);
                    if (kind == ColumnKind.Text || kind == ColumnKind.Timestamp) { Json.JsonText.WriteString(sb, r); return sb.ToString(); }
                    return r;
                case string s:
                    if (kind == ColumnKind.Json && IsJson(s)) return s;
                    Json.JsonText.WriteString(sb, s);
                    return sb.ToString();
                case byte[] bytes:
                    Json.JsonText.WriteString(sb, Convert.ToBase64String(bytes));
                    return sb.ToString();
                default:
                    Json.JsonText.WriteString(sb, Convert.ToString(value, CultureInfo.InvariantCulture));
                    return sb.ToString();
            }
        }

        private static bool IsJson(string text)
        {
            try
            {
                using (System.Text.Json.JsonDocument.Parse(text)) return true;
            }
            catch (System.Text.Json.JsonException) { return false; }
        }

        public Task<IReadOnlyList<StoredProfile>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken)
        {
            if (limit < 1)
                throw new ArgumentOutOfRangeException(nameof(limit));
            return RunAsync("read a page of", cancellationToken, connection =>
            {
                var ids = new List<string>();
                using (SqliteCommand command = connection.CreateCommand())
                {
                    command.CommandText = "SELECT key FROM main.wb_versions WHERE table_name = $table" + (afterUserId == null ? "" : " AND key > $after") + " ORDER BY key LIMIT $limit";
                    command.Parameters.Add("$table", SqliteType.Text).Value = _layout.TableName;
                    if (afterUserId != null) command.Parameters.Add("$after", SqliteType.Text).Value = afterUserId;
                    command.Parameters.Add("$limit", SqliteType.Integer).Value = limit;
                    using (var reader = command.ExecuteReader())
                        while (reader.Read()) ids.Add(reader.GetString(0));
                }
                var byId = Read(connection, ids).ToDictionary(r => r.UserId, StringComparer.Ordinal);
                return (IReadOnlyList<StoredProfile>)ids.Where(byId.ContainsKey).Select(id => byId[id]).ToList();
            });
        }

        /// <summary>Profiles the module wrote to the table and has not deleted (wb_versions' live rows).</summary>
        public Task<long> CountAsync(CancellationToken cancellationToken)
        {
            return RunAsync("count the rows of", cancellationToken, connection =>
            {
                using (SqliteCommand command = connection.CreateCommand())
                {
                    command.CommandText = "SELECT COUNT(*) FROM main.wb_versions WHERE table_name = $table AND deleted = 0";
                    command.Parameters.Add("$table", SqliteType.Text).Value = _layout.TableName;
                    return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
                }
            });
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _gate.Wait();
            try { CloseConnection(); }
            finally { _gate.Release(); }
        }

        private async Task<T> RunAsync<T>(string what, CancellationToken cancellationToken, Func<SqliteConnection, T> work, bool check = false)
        {
            if (_disposed) throw new ObjectDisposedException(nameof(SqliteMappedStore));
            cancellationToken.ThrowIfCancellationRequested();
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (_disposed) throw new ObjectDisposedException(nameof(SqliteMappedStore));
                try
                {
                    if (check)
                    {
                        if (_layout == null)
                        {
                            using (SqliteConnection probe = Open())
                                _layout = ReadCatalog(probe);
                        }
                        return work(null);
                    }
                    return work(EnsureOpen());
                }
                catch (SqliteException ex)
                {
                    if (SqliteProfileStore.IsTransient(ex.SqliteErrorCode))
                    {
                        CloseConnection();
                        throw new StoreUnavailableException("SQLite store " + _fullPath + " is unavailable; could not " + what + " table " + Mapping.Table + ": " + ex.Message, ex);
                    }
                    throw new StoreException("SQLite store " + _fullPath + ": could not " + what + " table " + Mapping.Table + ": " + ex.Message, ex);
                }
                catch (IOException ex)
                {
                    CloseConnection();
                    throw new StoreUnavailableException("SQLite store " + _fullPath + " is unavailable; could not " + what + " table " + Mapping.Table + ": " + ex.Message, ex);
                }
            }
            finally
            {
                _gate.Release();
            }
        }

        /// <summary>Opens the file (which must exist: the user's table is in it), checks the mapping, creates
        /// wb_versions when missing and the staging table; caller holds the gate.</summary>
        private SqliteConnection EnsureOpen()
        {
            if (_connection != null) return _connection;
            var connection = Open();
            try
            {
                // The file is the application's: its journal mode stays as the application set it.
                Layout layout = _layout ?? ReadCatalog(connection);
                Execute(connection, null, CreateVersionsSql);
                Execute(connection, null, "DROP TABLE IF EXISTS temp.wb_batch");
                Execute(connection, null, layout.StagingTableSql);
                _layout = layout;
            }
            catch
            {
                connection.Dispose();
                throw;
            }
            _connection = connection;
            return connection;
        }

        /// <summary>A connection to the user's file, which must exist (the user's table is in it).</summary>
        private SqliteConnection Open()
        {
            SqliteNative.EnsureLoaded();
            if (!File.Exists(_fullPath))
                throw MappedValues.Missing("sqlite:" + _fullPath, Mapping.Table, new[] { "the file does not exist (the user's table must be in it)" });
            var builder = new SqliteConnectionStringBuilder
            {
                DataSource = _fullPath,
                Mode = SqliteOpenMode.ReadWrite,
                Cache = SqliteCacheMode.Private,
                Pooling = false,
            };
            var connection = new SqliteConnection(builder.ToString());
            try
            {
                connection.DefaultTimeout = Math.Max(1, (int)Math.Ceiling(_busyTimeoutMs / 1000.0));
                connection.Open();
                Execute(connection, null, "PRAGMA busy_timeout = " + _busyTimeoutMs.ToString(CultureInfo.InvariantCulture));
                return connection;
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }

        private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"") + "\"";

        /// <summary>The column's kind from its declared type, by SQLite's affinity rules plus BOOLEAN, DATE/TIME and JSON.</summary>
        internal static ColumnKind KindOf(string declared)
        {
            string t = (declared ?? "").ToUpperInvariant();
            if (t.Contains("BOOL")) return ColumnKind.Boolean;
            if (t.Contains("INT")) return ColumnKind.Integer;
            if (t.Contains("JSON")) return ColumnKind.Json;
            if (t.Contains("CHAR") || t.Contains("CLOB") || t.Contains("TEXT")) return ColumnKind.Text;
            if (t.Contains("REAL") || t.Contains("FLOA") || t.Contains("DOUB")) return ColumnKind.Real;
            if (t.Contains("DATE") || t.Contains("TIME")) return ColumnKind.Timestamp;
            if (t.Contains("DEC") || t.Contains("NUM")) return ColumnKind.Numeric;
            return ColumnKind.Other;
        }

        private sealed class CatalogColumn
        {
            public string Name;
            public string Declared;
            public int Position;
            public bool NotNull;
            public bool HasDefault;
            public int PrimaryKey;
        }

        private Layout ReadCatalog(SqliteConnection connection)
        {
            Mapping.SplitTable(out string schema, out string table);
            if (schema != null && !string.Equals(schema, "main", StringComparison.OrdinalIgnoreCase))
                throw MappedValues.Missing(Description, Mapping.Table, new[] { $"a SQLite store's table is in the schema 'main', not '{schema}'" });
            string tableName = null;
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.CommandText = "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name = $t COLLATE NOCASE ORDER BY name = $t DESC LIMIT 1";
                command.Parameters.Add("$t", SqliteType.Text).Value = table;
                tableName = command.ExecuteScalar() as string;
            }
            if (tableName == null)
                throw MappedValues.Missing(Description, Mapping.Table, new[] { $"there is no table '{Mapping.Table}'" });

            var columns = new List<CatalogColumn>();
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.CommandText = "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk, cid FROM pragma_table_info($t, 'main') ORDER BY cid";
                command.Parameters.Add("$t", SqliteType.Text).Value = tableName;
                using (var reader = command.ExecuteReader())
                {
                    while (reader.Read())
                    {
                        columns.Add(new CatalogColumn
                        {
                            Name = reader.GetString(0),
                            Declared = reader.IsDBNull(1) ? "" : reader.GetString(1),
                            NotNull = reader.GetInt64(2) != 0,
                            HasDefault = reader.GetInt64(3) != 0,
                            PrimaryKey = (int)reader.GetInt64(4),
                            Position = (int)reader.GetInt64(5),
                        });
                    }
                }
            }
            var problems = new List<string>();
            // SQLite's identifiers are case-insensitive.
            CatalogColumn Find(string name) =>
                columns.FirstOrDefault(c => c.Name == name) ?? columns.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase));

            CatalogColumn key = Find(Mapping.KeyColumn);
            ColumnKind keyKind = ColumnKind.Text;
            if (key == null)
            {
                problems.Add($"table {tableName} has no key column '{Mapping.KeyColumn}'");
            }
            else
            {
                keyKind = KindOf(key.Declared);
                if (keyKind != ColumnKind.Integer) keyKind = ColumnKind.Text;
                bool unique = key.PrimaryKey > 0 && columns.Count(c => c.PrimaryKey > 0) == 1;
                if (!unique)
                {
                    using (SqliteCommand command = connection.CreateCommand())
                    {
                        command.CommandText =
                            "SELECT COUNT(*) FROM pragma_index_list($t, 'main') il WHERE il.\"unique\" = 1 AND il.partial = 0 " +
                            "AND (SELECT COUNT(*) FROM pragma_index_info(il.name, 'main')) = 1 " +
                            "AND (SELECT name FROM pragma_index_info(il.name, 'main')) = $k COLLATE NOCASE";
                        command.Parameters.Add("$t", SqliteType.Text).Value = tableName;
                        command.Parameters.Add("$k", SqliteType.Text).Value = key.Name;
                        unique = Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture) > 0;
                    }
                }
                if (!unique)
                    problems.Add($"the key column '{key.Name}' is neither the primary key nor unique on its own");
            }
            var mapped = new List<MappedColumn>();
            var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            if (key != null) used.Add(key.Name);
            foreach (var pair in Mapping.Columns)
            {
                CatalogColumn column = Find(pair.Value);
                if (column == null) { problems.Add($"table {tableName} has no column '{pair.Value}' (for the field '{pair.Key}')"); continue; }
                used.Add(column.Name);
                mapped.Add(new MappedColumn(pair.Key, column.Name, KindOf(column.Declared), column.Declared.Length == 0 ? "no type" : column.Declared, column.Position));
            }
            MappedColumn json = null;
            if (Mapping.JsonColumn != null)
            {
                CatalogColumn column = Find(Mapping.JsonColumn);
                if (column == null) problems.Add($"table {tableName} has no JSON column '{Mapping.JsonColumn}'");
                else if (KindOf(column.Declared) != ColumnKind.Text && KindOf(column.Declared) != ColumnKind.Json && KindOf(column.Declared) != ColumnKind.Other)
                    problems.Add($"the JSON column '{column.Name}' is {column.Declared}: it must be TEXT or JSON");
                else { used.Add(column.Name); json = new MappedColumn(null, column.Name, ColumnKind.Text, column.Declared, column.Position); }
            }
            foreach (var column in columns.Where(c => c.NotNull && !c.HasDefault && !used.Contains(c.Name)))
                problems.Add($"the column '{column.Name}' is NOT NULL without a default and not mapped (every new row would be refused)");
            if (problems.Count > 0)
                throw MappedValues.Missing(Description, Mapping.Table, problems);

            var layout = new Layout
            {
                TableName = tableName,
                Key = new MappedColumn(null, key.Name, keyKind, key.Declared, key.Position),
                Columns = MappedValues.InRebuildOrder(Mapping, mapped),
                Json = json,
            };
            BuildStatements(layout, "main." + Quote(tableName));
            return layout;
        }

        private void BuildStatements(Layout layout, string target)
        {
            int n = layout.Columns.Count;
            var aliases = Enumerable.Range(0, n).Select(i => "c" + i.ToString(CultureInfo.InvariantCulture)).ToList();
            var staged = new List<string> { "k", "kv", "version", "deleted" };
            staged.AddRange(aliases);
            if (layout.Json != null) staged.Add("cj");
            // No declared types: the values keep the storage class they were given.
            layout.StagingTableSql = "CREATE TEMP TABLE wb_batch(n INTEGER PRIMARY KEY, " + string.Join(", ", staged) + ")";
            layout.StageSql = "INSERT INTO temp.wb_batch(" + string.Join(", ", staged) + ") SELECT " +
                string.Join(", ", staged.Select((_, i) => "json_extract(r.value, '$[" + i.ToString(CultureInfo.InvariantCulture) + "]')")) +
                " FROM json_each($rows) r ORDER BY r.key";
            layout.DropStaleSql = "DELETE FROM temp.wb_batch WHERE EXISTS (SELECT 1 FROM main.wb_versions v " +
                "WHERE v.table_name = $table AND v.key = temp.wb_batch.k AND v.version >= temp.wb_batch.version)";
            layout.VersionsSql = "INSERT INTO main.wb_versions(table_name, key, version, deleted, updated_at) " +
                "SELECT $table, k, version, deleted, $now FROM temp.wb_batch WHERE true " +
                "ON CONFLICT(table_name, key) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, updated_at = excluded.updated_at";
            var targetColumns = new List<string> { Quote(layout.Key.Column) };
            var selected = new List<string> { "kv" };
            for (int i = 0; i < n; i++) { targetColumns.Add(Quote(layout.Columns[i].Column)); selected.Add(aliases[i]); }
            if (layout.Json != null) { targetColumns.Add(Quote(layout.Json.Column)); selected.Add("cj"); }
            layout.UpsertSql = "INSERT INTO " + target + "(" + string.Join(", ", targetColumns) + ") SELECT " + string.Join(", ", selected) +
                " FROM temp.wb_batch WHERE deleted = 0 ORDER BY n ON CONFLICT(" + Quote(layout.Key.Column) + ") DO UPDATE SET " +
                string.Join(", ", targetColumns.Skip(1).Select(c => c + " = excluded." + c));
            layout.DeleteSql = Mapping.DeleteMode == StoreDeleteMode.Delete
                ? "DELETE FROM " + target + " WHERE " + Quote(layout.Key.Column) + " IN (SELECT kv FROM temp.wb_batch WHERE deleted = 1)"
                : null;
            string keyExpr = layout.Key.Kind == ColumnKind.Integer ? "CAST(q.value AS INTEGER)" : "q.value";
            var read = new StringBuilder("SELECT q.value, v.version, v.deleted, v.updated_at, t." + Quote(layout.Key.Column) + " IS NOT NULL");
            foreach (var column in layout.Columns) read.Append(", t.").Append(Quote(column.Column));
            if (layout.Json != null) read.Append(", t.").Append(Quote(layout.Json.Column));
            read.Append(" FROM json_each($ids) q LEFT JOIN main.wb_versions v ON v.table_name = $table AND v.key = q.value ")
                .Append("LEFT JOIN ").Append(target).Append(" t ON t.").Append(Quote(layout.Key.Column)).Append(" = ").Append(keyExpr)
                .Append(" WHERE v.key IS NOT NULL OR t.").Append(Quote(layout.Key.Column)).Append(" IS NOT NULL");
            layout.ReadSql = read.ToString();
        }

        private static int Execute(SqliteConnection connection, SqliteTransaction transaction, string sql, params (string Name, string Value)[] parameters)
        {
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = sql;
                foreach (var p in parameters) command.Parameters.Add(p.Name, SqliteType.Text).Value = p.Value;
                return command.ExecuteNonQuery();
            }
        }

        private void CloseConnection()
        {
            SqliteConnection connection = _connection;
            _connection = null;
            if (connection == null) return;
            try { connection.Dispose(); } catch (Exception) { /* closing a broken connection must not hide the error */ }
        }
    }
}
