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
    internal sealed partial class SqliteMappedStore : IMappedProfileStore
    {
        private const string CreateVersionsSql =
            "CREATE TABLE IF NOT EXISTS main.wb_versions(" +
            "table_name TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, " +
            "updated_at TEXT NOT NULL, PRIMARY KEY (table_name, key)) WITHOUT ROWID";

        private readonly string _fullPath;
        private readonly int _busyTimeoutMs;
        private readonly SqliteConnectionGate _gate;
        private volatile Layout _layout;

        private sealed class Layout : MappedLayout
        {
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
            _gate = new SqliteConnectionGate(EnsureOpen, nameof(SqliteMappedStore));
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

        public Task<IReadOnlyDictionary<string, ProfileRow>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken)
        {
            var distinct = StoreArguments.DistinctIds(userIds);
            return RunAsync("read " + distinct.Count + " row(s) from", cancellationToken, connection =>
            {
                var result = new Dictionary<string, ProfileRow>(StringComparer.Ordinal);
                foreach (var row in Read(connection, distinct)) result[row.UserId] = row;
                return (IReadOnlyDictionary<string, ProfileRow>)result;
            });
        }

        private List<ProfileRow> Read(SqliteConnection connection, IEnumerable<string> userIds)
        {
            Layout layout = _layout;
            var ids = layout.Key.Kind == ColumnKind.Integer ? userIds.Where(id => MappedValues.TryIntegerKey(id, out _)).ToList() : userIds.ToList();
            var rows = new List<ProfileRow>(ids.Count);
            if (ids.Count == 0) return rows;
            string idsJson = MappedValues.JsonStringArray(ids);
            using (SqliteTransaction transaction = connection.BeginTransaction(deferred: true))
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = layout.ReadSql;
                command.Parameters.Add("$ids", SqliteType.Text).Value = idsJson;
                command.Parameters.Add("$table", SqliteType.Text).Value = layout.TableName;
                using (SqliteDataReader reader = command.ExecuteReader())
                {
                    while (reader.Read())
                        rows.Add(layout.ReadProfile(reader, UpdatedAt, JsonOf));
                }
                transaction.Commit();
            }
            return rows;
        }

        private static DateTimeOffset UpdatedAt(System.Data.Common.DbDataReader reader) =>
            DateTimeOffset.TryParse(reader.GetString(3), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) ? at : DateTimeOffset.MinValue;

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

        public Task<IReadOnlyList<ProfileRow>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken)
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
                return (IReadOnlyList<ProfileRow>)ids.Where(byId.ContainsKey).Select(id => byId[id]).ToList();
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

        public void Dispose() => _gate.Dispose();

        private Task<T> RunAsync<T>(string what, CancellationToken cancellationToken, Func<SqliteConnection, T> work, bool check = false) =>
            _gate.RunAsync(_fullPath, what + " table " + Mapping.Table, cancellationToken, () =>
            {
                if (!check)
                    return work(_gate.Connection);
                if (_layout == null)
                {
                    using (SqliteConnection probe = Open())
                        _layout = ReadCatalog(probe);
                }
                return work(null);
            });

        /// <summary>Opens the file (which must exist: the user's table is in it), checks the mapping, creates
        /// wb_versions when missing and the staging table; caller holds the gate.</summary>
        private SqliteConnection EnsureOpen()
        {
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
            return connection;
        }

        /// <summary>A connection to the user's file, which must exist (the user's table is in it).</summary>
        private SqliteConnection Open()
        {
            SqliteNative.EnsureLoaded();
            if (!File.Exists(_fullPath))
                throw MappedValues.Missing("sqlite:" + _fullPath, Mapping.Table, new[] { "the file does not exist (the user's table must be in it)" });
            return SqliteConnectionGate.OpenFile(_fullPath, SqliteOpenMode.ReadWrite, _busyTimeoutMs, privateCache: true);
        }

        private static int Execute(SqliteConnection connection, SqliteTransaction transaction, string sql, params (string Name, string Value)[] parameters) =>
            SqliteConnectionGate.Execute(connection, transaction, sql, parameters);
    }
}
