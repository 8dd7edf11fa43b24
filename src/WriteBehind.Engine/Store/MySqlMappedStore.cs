using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using MySqlConnector;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// Flushes into the application's own MariaDB/MySQL table through a <see cref="StoreMapping"/>. A commit is one
    /// transaction of a fixed number of set-based statements over the batch as one JSON array (<c>JSON_TABLE</c>):
    /// the batch's <c>wb_versions</c> rows are locked and the keys whose incoming version is newer are selected;
    /// <c>wb_versions</c> and the user's table are upserted (deleted rows removed) for exactly those keys. Values go
    /// in as text and the server converts them to the column's type (strict mode refuses what does not fit, with
    /// its message); booleans and date/times are first put in the form MariaDB takes (1/0, UTC <c>yyyy-MM-dd HH:mm:ss</c>).
    /// </summary>
    public sealed class MySqlMappedStore : IMappedProfileStore
    {
        private const string CreateVersionsSql =
            "CREATE TABLE IF NOT EXISTS wb_versions(" +
            "table_name varchar(190) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, " +
            "`key` varchar(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, " +
            "version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, updated_at datetime(6) NOT NULL, " +
            "PRIMARY KEY (table_name, `key`)) ENGINE=InnoDB";

        private readonly MySqlProfileStore _server;
        private readonly SemaphoreSlim _gate = new SemaphoreSlim(1, 1);
        private volatile Layout _layout;
        private volatile bool _versionsReady;

        private sealed class Layout
        {
            public string TableName;
            public string Target;
            public MappedColumn Key;
            public string KeyCollation;
            public List<MappedColumn> Columns;
            public MappedColumn Json;
            public string BatchTable;
            public string NewerSql;
            public string VersionsSql;
            public string UpsertSql;
            public string DeleteSql;
            public string ReadSql;
        }

        public MySqlMappedStore(string connectionString, string description, StoreMapping mapping)
        {
            _server = new MySqlProfileStore(connectionString, description);
            Mapping = mapping ?? throw new ArgumentNullException(nameof(mapping));
        }

        public StoreMapping Mapping { get; }

        public string Description => _server.Description + " table " + Mapping.Table;

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
                // A text column keeps the profile byte for byte; MySQL's JSON type normalises it.
                if (string.Equals(cacheJson, storedJson, StringComparison.Ordinal)) return true;
                return layout.Json.Kind == ColumnKind.Json && cacheJson != null && storedJson != null && MappedValues.SameJson(cacheJson, storedJson);
            }
            return MappedValues.SameByMeaning(layout.Columns, cacheJson, storedJson);
        }

        private Task<T> RunAsync<T>(string what, bool rowsInvolved, CancellationToken cancellationToken, Func<MySqlConnection, Task<T>> operation,
            bool prepare = true) =>
            _server.RunAsync(what + " table " + Mapping.Table + " in", rowsInvolved, cancellationToken, async connection =>
            {
                if (_layout == null || (prepare && !_versionsReady)) await PrepareAsync(connection, prepare, cancellationToken).ConfigureAwait(false);
                return await operation(connection).ConfigureAwait(false);
            }, ensureSchema: false);

        public Task<StoreCommitResult> CommitAsync(IReadOnlyList<ProfileRow> rows, CancellationToken cancellationToken)
        {
            StoreArguments.CheckRows(rows);
            return RunAsync("commit " + rows.Count + " row(s) to", true, cancellationToken, async connection =>
            {
                if (rows.Count == 0) return new StoreCommitResult(0, 0);
                Layout layout = _layout;
                ProfileRow[] ordered = MappedValues.NewestPerId(rows);
                var encoded = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (ProfileRow row in ordered) encoded[row.UserId] = Encode(layout, row);
                using (MySqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
                {
                    var newer = new HashSet<string>(StringComparer.Ordinal);
                    using (var command = new MySqlCommand(layout.NewerSql, connection, transaction))
                    {
                        command.Parameters.AddWithValue("@rows", "[" + string.Join(",", encoded.Values) + "]");
                        command.Parameters.AddWithValue("@table", layout.TableName);
                        using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) newer.Add(reader.GetString(0));
                    }
                    if (newer.Count > 0)
                    {
                        var applied = ordered.Where(r => newer.Contains(r.UserId)).ToList();
                        string all = "[" + string.Join(",", applied.Select(r => encoded[r.UserId])) + "]";
                        await ExecuteAsync(connection, transaction, layout.VersionsSql, cancellationToken, ("@rows", all), ("@table", layout.TableName)).ConfigureAwait(false);
                        var live = applied.Where(r => !r.IsDeleted).ToList();
                        if (live.Count > 0)
                            await ExecuteAsync(connection, transaction, layout.UpsertSql, cancellationToken, ("@rows", "[" + string.Join(",", live.Select(r => encoded[r.UserId])) + "]")).ConfigureAwait(false);
                        var gone = applied.Where(r => r.IsDeleted).ToList();
                        if (gone.Count > 0 && layout.DeleteSql != null)
                            await ExecuteAsync(connection, transaction, layout.DeleteSql, cancellationToken, ("@rows", "[" + string.Join(",", gone.Select(r => encoded[r.UserId])) + "]")).ConfigureAwait(false);
                    }
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                    return new StoreCommitResult(newer.Count, rows.Count - newer.Count);
                }
            });
        }

        private static async Task ExecuteAsync(MySqlConnection connection, MySqlTransaction transaction, string sql, CancellationToken cancellationToken,
            params (string Name, string Value)[] parameters)
        {
            using (var command = new MySqlCommand(sql, connection, transaction))
            {
                foreach (var p in parameters) command.Parameters.AddWithValue(p.Name, p.Value);
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        /// <summary>One row of the batch: [id, version, deleted, column texts..., json].</summary>
        private static string Encode(Layout layout, ProfileRow row)
        {
            if (layout.Key.Kind == ColumnKind.Integer && !MappedValues.TryIntegerKey(row.UserId, out _))
                throw new StoreException($"user id '{row.UserId}' is not an integer in canonical form, as the key column `{layout.Key.Column}` ({layout.Key.TypeName}) needs", null);
            var sb = new StringBuilder(64).Append('[');
            Json.JsonText.WriteString(sb, row.UserId);
            sb.Append(',').Append(row.Version.ToString(CultureInfo.InvariantCulture)).Append(',').Append(row.IsDeleted ? '1' : '0');
            var members = row.IsDeleted ? null : MappedValues.Members(row.Json);
            foreach (MappedColumn column in layout.Columns)
            {
                string raw = null;
                members?.TryGetValue(column.Field, out raw);
                string text = MappedValues.ColumnText(raw, column.Kind);
                if (text != null && column.Kind == ColumnKind.Boolean && MappedValues.TryBoolean(text, out bool flag)) text = flag ? "1" : "0";
                if (text != null && column.Kind == ColumnKind.Timestamp &&
                    DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) && text.IndexOf('T') >= 0)
                    text = at.UtcDateTime.ToString(column.TypeName == "date" ? "yyyy-MM-dd" : "yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture);
                sb.Append(',');
                Json.JsonText.WriteString(sb, text);
            }
            if (layout.Json != null)
            {
                sb.Append(',');
                Json.JsonText.WriteString(sb, row.Json);
            }
            return sb.Append(']').ToString();
        }

        public Task<IReadOnlyDictionary<string, StoredProfile>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken)
        {
            var distinct = StoreArguments.DistinctIds(userIds);
            return RunAsync("read " + distinct.Count + " row(s) from", false, cancellationToken, async connection =>
            {
                var result = new Dictionary<string, StoredProfile>(StringComparer.Ordinal);
                foreach (var row in await ReadAsync(connection, distinct, cancellationToken).ConfigureAwait(false)) result[row.UserId] = row;
                return (IReadOnlyDictionary<string, StoredProfile>)result;
            });
        }

        private async Task<List<StoredProfile>> ReadAsync(MySqlConnection connection, IEnumerable<string> userIds, CancellationToken cancellationToken)
        {
            Layout layout = _layout;
            var ids = layout.Key.Kind == ColumnKind.Integer ? userIds.Where(id => MappedValues.TryIntegerKey(id, out _)).ToList() : userIds.ToList();
            var rows = new List<StoredProfile>(ids.Count);
            if (ids.Count == 0) return rows;
            var json = new StringBuilder(ids.Count * 12).Append('[');
            for (int i = 0; i < ids.Count; i++)
            {
                if (i > 0) json.Append(',');
                Json.JsonText.WriteString(json, ids[i]);
            }
            json.Append(']');
            using (var command = new MySqlCommand(layout.ReadSql, connection))
            {
                command.Parameters.AddWithValue("@ids", json.ToString());
                command.Parameters.AddWithValue("@table", layout.TableName);
                using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        string id = reader.GetString(0);
                        bool versioned = !reader.IsDBNull(1);
                        long version = versioned ? reader.GetInt64(1) : 0;
                        bool tombstone = versioned && Convert.ToInt64(reader.GetValue(2), CultureInfo.InvariantCulture) != 0;
                        DateTimeOffset updatedAt = versioned ? new DateTimeOffset(DateTime.SpecifyKind(reader.GetDateTime(3), DateTimeKind.Utc)) : DateTimeOffset.MinValue;
                        bool present = Convert.ToInt64(reader.GetValue(4), CultureInfo.InvariantCulture) != 0;
                        string profile = null;
                        if (!tombstone && present)
                        {
                            int jsonOrdinal = 5 + layout.Columns.Count;
                            if (layout.Json != null && !reader.IsDBNull(jsonOrdinal))
                            {
                                profile = reader.GetString(jsonOrdinal);
                            }
                            else
                            {
                                var texts = new string[layout.Columns.Count];
                                for (int c = 0; c < texts.Length; c++)
                                    texts[c] = JsonOf(layout.Columns[c].Kind, reader.IsDBNull(5 + c) ? null : reader.GetValue(5 + c));
                                profile = MappedValues.Rebuild(layout.Columns, texts);
                            }
                        }
                        rows.Add(new StoredProfile(id, profile, version, updatedAt));
                    }
                }
            }
            return rows;
        }

        private static string JsonOf(ColumnKind kind, object value)
        {
            if (value == null) return null;
            var sb = new StringBuilder();
            switch (value)
            {
                case bool b: return b ? "true" : "false";
                case sbyte _: case byte _: case short _: case ushort _: case int _: case uint _: case long _: case ulong _:
                    if (kind == ColumnKind.Boolean) return Convert.ToInt64(value, CultureInfo.InvariantCulture) != 0 ? "true" : "false";
                    return Convert.ToString(value, CultureInfo.InvariantCulture);
                case decimal d: return d.ToString(CultureInfo.InvariantCulture);
                case double f: return double.IsNaN(f) || double.IsInfinity(f) ? "null" : f.ToString("R", CultureInfo.InvariantCulture);
                case float g: return float.IsNaN(g) || float.IsInfinity(g) ? "null" : ((double)g).ToString("R", CultureInfo.InvariantCulture);
                case DateTime t:
                    Json.JsonText.WriteString(sb, t.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture));
                    return sb.ToString();
                case string s:
                    if (kind == ColumnKind.Json) return s;
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

        public Task<IReadOnlyList<StoredProfile>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken)
        {
            if (limit < 1)
                throw new ArgumentOutOfRangeException(nameof(limit));
            return RunAsync("read a page of", false, cancellationToken, async connection =>
            {
                var ids = new List<string>();
                using (var command = new MySqlCommand("SELECT `key` FROM wb_versions WHERE table_name = @table" + (afterUserId == null ? "" : " AND `key` > @after") +
                    " ORDER BY `key` LIMIT @limit", connection))
                {
                    command.Parameters.AddWithValue("@table", _layout.TableName);
                    if (afterUserId != null) command.Parameters.AddWithValue("@after", afterUserId);
                    command.Parameters.AddWithValue("@limit", limit);
                    using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) ids.Add(reader.GetString(0));
                }
                var byId = (await ReadAsync(connection, ids, cancellationToken).ConfigureAwait(false)).ToDictionary(r => r.UserId, StringComparer.Ordinal);
                return (IReadOnlyList<StoredProfile>)ids.Where(byId.ContainsKey).Select(id => byId[id]).ToList();
            });
        }

        /// <summary>Profiles the module wrote to the table and has not deleted (wb_versions' live rows).</summary>
        public Task<long> CountAsync(CancellationToken cancellationToken)
        {
            return RunAsync("count the rows of", false, cancellationToken, async connection =>
            {
                using (var command = new MySqlCommand("SELECT COUNT(*) FROM wb_versions WHERE table_name = @table AND NOT deleted", connection))
                {
                    command.Parameters.AddWithValue("@table", _layout.TableName);
                    return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
                }
            });
        }

        public void Dispose() => _server.Dispose();

        private async Task PrepareAsync(MySqlConnection connection, bool createVersions, CancellationToken cancellationToken)
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (_layout == null)
                    _layout = await ReadCatalogAsync(connection, cancellationToken).ConfigureAwait(false);
                if (!createVersions || _versionsReady) return;
                using (var command = new MySqlCommand(CreateVersionsSql, connection))
                    await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                _versionsReady = true;
            }
            finally
            {
                _gate.Release();
            }
        }

        private static string Quote(string identifier) => "`" + identifier.Replace("`", "``") + "`";

        private static ColumnKind KindOf(string dataType, string columnType)
        {
            switch (dataType)
            {
                case "tinyint":
                    return columnType.StartsWith("tinyint(1)", StringComparison.Ordinal) ? ColumnKind.Boolean : ColumnKind.Integer;
                case "smallint": case "mediumint": case "int": case "bigint": return ColumnKind.Integer;
                case "bit": return columnType == "bit(1)" ? ColumnKind.Boolean : ColumnKind.Other;
                case "boolean": case "bool": return ColumnKind.Boolean;
                case "decimal": return ColumnKind.Numeric;
                case "float": case "double": return ColumnKind.Real;
                case "date": case "datetime": case "timestamp": case "time": return ColumnKind.Timestamp;
                case "json": return ColumnKind.Json;
                case "char": case "varchar": case "tinytext": case "text": case "mediumtext": case "longtext": case "enum": case "set": return ColumnKind.Text;
                default: return ColumnKind.Other;
            }
        }

        private sealed class CatalogColumn
        {
            public string Name;
            public string DataType;
            public string ColumnType;
            public string Collation;
            public string Charset;
            public int Position;
            public bool RequiredWithoutDefault;
            public ColumnKind Kind;
        }

        private async Task<Layout> ReadCatalogAsync(MySqlConnection connection, CancellationToken cancellationToken)
        {
            Mapping.SplitTable(out string schema, out string table);
            string schemaName = null, tableName = null;
            using (var command = new MySqlCommand(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(@s, DATABASE()) AND TABLE_NAME = @t " +
                "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME = BINARY @t DESC LIMIT 1", connection))
            {
                command.Parameters.AddWithValue("@s", (object)schema ?? DBNull.Value);
                command.Parameters.AddWithValue("@t", table);
                using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        schemaName = reader.GetString(0);
                        tableName = reader.GetString(1);
                    }
                }
            }
            if (tableName == null)
                throw MappedValues.Missing(_server.Description, Mapping.Table, new[] { $"there is no table '{Mapping.Table}'" + (schema == null ? " in the URI's database" : "") });

            var columns = new List<CatalogColumn>();
            using (var command = new MySqlCommand(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COLLATION_NAME, CHARACTER_SET_NAME, ORDINAL_POSITION, " +
                "IS_NULLABLE = 'NO' AND COLUMN_DEFAULT IS NULL AND EXTRA NOT LIKE '%auto_increment%' AND EXTRA NOT LIKE '%GENERATED%' " +
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t ORDER BY ORDINAL_POSITION", connection))
            {
                command.Parameters.AddWithValue("@s", schemaName);
                command.Parameters.AddWithValue("@t", tableName);
                using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        var c = new CatalogColumn
                        {
                            Name = reader.GetString(0),
                            DataType = reader.GetString(1).ToLowerInvariant(),
                            ColumnType = reader.GetString(2).ToLowerInvariant(),
                            Collation = reader.IsDBNull(3) ? null : reader.GetString(3),
                            Charset = reader.IsDBNull(4) ? null : reader.GetString(4),
                            Position = Convert.ToInt32(reader.GetValue(5), CultureInfo.InvariantCulture),
                            RequiredWithoutDefault = Convert.ToInt64(reader.GetValue(6), CultureInfo.InvariantCulture) != 0,
                        };
                        c.Kind = KindOf(c.DataType, c.ColumnType);
                        columns.Add(c);
                    }
                }
            }
            var problems = new List<string>();
            string qualified = schemaName + "." + tableName;
            // Column names are case-insensitive in MariaDB/MySQL.
            CatalogColumn Find(string name) =>
                columns.FirstOrDefault(c => c.Name == name) ?? columns.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase));

            CatalogColumn key = Find(Mapping.KeyColumn);
            if (key == null)
            {
                problems.Add($"table {qualified} has no key column '{Mapping.KeyColumn}'");
            }
            else
            {
                if (key.Kind != ColumnKind.Text && key.Kind != ColumnKind.Integer)
                    problems.Add($"the key column '{key.Name}' is {key.ColumnType}: it must be a text or an integer type");
                using (var command = new MySqlCommand(
                    "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t " +
                    "GROUP BY INDEX_NAME HAVING COUNT(*) = 1 AND MAX(NON_UNIQUE) = 0 AND MAX(COLUMN_NAME) = @k) AS u", connection))
                {
                    command.Parameters.AddWithValue("@s", schemaName);
                    command.Parameters.AddWithValue("@t", tableName);
                    command.Parameters.AddWithValue("@k", key.Name);
                    if (Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) == 0)
                        problems.Add($"the key column '{key.Name}' is neither the primary key nor unique on its own");
                }
            }
            var mapped = new List<MappedColumn>();
            var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            if (key != null) used.Add(key.Name);
            foreach (var pair in Mapping.Columns)
            {
                CatalogColumn column = Find(pair.Value);
                if (column == null) { problems.Add($"table {qualified} has no column '{pair.Value}' (for the field '{pair.Key}')"); continue; }
                used.Add(column.Name);
                mapped.Add(new MappedColumn(pair.Key, column.Name, column.Kind, column.DataType, column.Position));
            }
            MappedColumn json = null;
            if (Mapping.JsonColumn != null)
            {
                CatalogColumn column = Find(Mapping.JsonColumn);
                if (column == null) problems.Add($"table {qualified} has no JSON column '{Mapping.JsonColumn}'");
                else if (column.Kind != ColumnKind.Text && column.Kind != ColumnKind.Json) problems.Add($"the JSON column '{column.Name}' is {column.ColumnType}: it must be a text type or json");
                else { used.Add(column.Name); json = new MappedColumn(null, column.Name, column.Kind, column.DataType, column.Position); }
            }
            foreach (var column in columns.Where(c => c.RequiredWithoutDefault && !used.Contains(c.Name)))
                problems.Add($"the column '{column.Name}' is NOT NULL without a default and not mapped (every new row would be refused)");
            if (problems.Count > 0)
                throw MappedValues.Missing(_server.Description, Mapping.Table, problems);

            var layout = new Layout
            {
                TableName = qualified,
                Target = Quote(schemaName) + "." + Quote(tableName),
                Key = new MappedColumn(null, key.Name, key.Kind, key.DataType, key.Position),
                KeyCollation = key.Kind == ColumnKind.Text ? key.Collation : null,
                Columns = MappedValues.InRebuildOrder(Mapping, mapped),
                Json = json,
            };
            BuildStatements(layout, key.Charset);
            return layout;
        }

        private void BuildStatements(Layout layout, string keyCharset)
        {
            int n = layout.Columns.Count;
            var columns = new List<string> { "n FOR ORDINALITY", "k varchar(128) CHARACTER SET ascii PATH '$[0]'", "v bigint PATH '$[1]'", "d int PATH '$[2]'" };
            for (int i = 0; i < n; i++) columns.Add("c" + i.ToString(CultureInfo.InvariantCulture) + " longtext CHARACTER SET utf8mb4 PATH '$[" + (3 + i).ToString(CultureInfo.InvariantCulture) + "]'");
            if (layout.Json != null) columns.Add("cj longtext CHARACTER SET utf8mb4 PATH '$[" + (3 + n).ToString(CultureInfo.InvariantCulture) + "]'");
            layout.BatchTable = "JSON_TABLE(@rows, '$[*]' COLUMNS(" + string.Join(", ", columns) + ")) AS j";
            // The key as the user's table compares it: an integer, or text in the key column's own collation.
            string keyOf(string alias) => layout.KeyCollation != null
                ? "CONVERT(" + alias + ".k USING " + (keyCharset ?? "utf8mb4") + ") COLLATE " + layout.KeyCollation
                : alias + ".k";
            string keyIds = layout.KeyCollation != null
                ? "CONVERT(q.k USING " + (keyCharset ?? "utf8mb4") + ") COLLATE " + layout.KeyCollation
                : "q.k";

            // The keys whose incoming version is newer; FOR UPDATE locks their wb_versions rows (and, for new keys,
            // the gap) until the commit, so the statements below see what this one saw.
            layout.NewerSql = "SELECT j.k FROM " + layout.BatchTable + " LEFT JOIN wb_versions AS s ON s.table_name = @table AND s.`key` = j.k " +
                "WHERE s.`key` IS NULL OR s.version < j.v ORDER BY j.n FOR UPDATE";
            layout.VersionsSql = "INSERT INTO wb_versions(table_name, `key`, version, deleted, updated_at) " +
                "SELECT @table, j.k, j.v, j.d, UTC_TIMESTAMP(6) FROM " + layout.BatchTable + " ORDER BY j.n " +
                "ON DUPLICATE KEY UPDATE deleted = IF(VALUES(version) > version, VALUES(deleted), deleted), " +
                "updated_at = IF(VALUES(version) > version, VALUES(updated_at), updated_at), version = GREATEST(version, VALUES(version))";
            var targetColumns = new List<string> { Quote(layout.Key.Column) };
            var selected = new List<string> { keyOf("j") };
            for (int i = 0; i < n; i++) { targetColumns.Add(Quote(layout.Columns[i].Column)); selected.Add("j.c" + i.ToString(CultureInfo.InvariantCulture)); }
            if (layout.Json != null) { targetColumns.Add(Quote(layout.Json.Column)); selected.Add("j.cj"); }
            layout.UpsertSql = "INSERT INTO " + layout.Target + "(" + string.Join(", ", targetColumns) + ") SELECT " + string.Join(", ", selected) +
                " FROM " + layout.BatchTable + " ORDER BY j.n ON DUPLICATE KEY UPDATE " +
                string.Join(", ", targetColumns.Skip(1).Select(c => c + " = VALUES(" + c + ")"));
            layout.DeleteSql = Mapping.DeleteMode == StoreDeleteMode.Delete
                ? "DELETE t FROM " + layout.Target + " AS t JOIN " + layout.BatchTable + " ON t." + Quote(layout.Key.Column) + " = " + keyOf("j")
                : null;
            var read = new StringBuilder("SELECT q.k, s.version, s.deleted, s.updated_at, t." + Quote(layout.Key.Column) + " IS NOT NULL");
            foreach (var column in layout.Columns) read.Append(", t.").Append(Quote(column.Column));
            if (layout.Json != null) read.Append(", t.").Append(Quote(layout.Json.Column));
            read.Append(" FROM JSON_TABLE(@ids, '$[*]' COLUMNS(k varchar(128) CHARACTER SET ascii PATH '$')) AS q ")
                .Append("LEFT JOIN wb_versions AS s ON s.table_name = @table AND s.`key` = q.k ")
                .Append("LEFT JOIN ").Append(layout.Target).Append(" AS t ON t.").Append(Quote(layout.Key.Column)).Append(" = ").Append(keyIds)
                .Append(" WHERE s.`key` IS NOT NULL OR t.").Append(Quote(layout.Key.Column)).Append(" IS NOT NULL");
            layout.ReadSql = read.ToString();
        }
    }
}
