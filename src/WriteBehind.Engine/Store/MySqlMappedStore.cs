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
    internal sealed partial class MySqlMappedStore : IMappedProfileStore
    {
        private const string CreateVersionsSql =
            "CREATE TABLE IF NOT EXISTS wb_versions(" +
            "table_name varchar(190) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, " +
            "`key` varchar(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, " +
            "version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, updated_at datetime(6) NOT NULL, " +
            "PRIMARY KEY (table_name, `key`)) ENGINE=InnoDB";

        private readonly MySqlServer _server;
        private readonly SemaphoreSlim _gate = new SemaphoreSlim(1, 1);
        private volatile Layout _layout;
        private volatile bool _versionsReady;

        private sealed class Layout : MappedLayout
        {
            public string Target;
            public string KeyCollation;
            public string BatchTable;
            public string NewerSql;
            public string VersionsSql;
            public string UpsertSql;
            public string DeleteSql;
            public string ReadSql;
        }

        public MySqlMappedStore(string connectionString, string description, StoreMapping mapping)
        {
            _server = new MySqlServer(connectionString, description, nameof(MySqlMappedStore));
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
            _server.RunAsync(what + " table " + Mapping.Table + " in it", rowsInvolved, cancellationToken,
                connection => _layout == null || (prepare && !_versionsReady) ? PrepareAsync(connection, prepare, cancellationToken) : Task.CompletedTask,
                operation);

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
            layout.CheckKey(row.UserId, "`" + layout.Key.Column + "`");
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

        public Task<IReadOnlyDictionary<string, ProfileRow>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken)
        {
            var distinct = StoreArguments.DistinctIds(userIds);
            return RunAsync("read " + distinct.Count + " row(s) from", false, cancellationToken, async connection =>
            {
                var result = new Dictionary<string, ProfileRow>(StringComparer.Ordinal);
                foreach (var row in await ReadAsync(connection, distinct, cancellationToken).ConfigureAwait(false)) result[row.UserId] = row;
                return (IReadOnlyDictionary<string, ProfileRow>)result;
            });
        }

        private async Task<List<ProfileRow>> ReadAsync(MySqlConnection connection, IEnumerable<string> userIds, CancellationToken cancellationToken)
        {
            Layout layout = _layout;
            var ids = layout.Key.Kind == ColumnKind.Integer ? userIds.Where(id => MappedValues.TryIntegerKey(id, out _)).ToList() : userIds.ToList();
            var rows = new List<ProfileRow>(ids.Count);
            if (ids.Count == 0) return rows;
            string idsJson = MappedValues.JsonStringArray(ids);
            using (var command = new MySqlCommand(layout.ReadSql, connection))
            {
                command.Parameters.AddWithValue("@ids", idsJson);
                command.Parameters.AddWithValue("@table", layout.TableName);
                using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        rows.Add(layout.ReadProfile(reader, r => new DateTimeOffset(DateTime.SpecifyKind(r.GetDateTime(3), DateTimeKind.Utc)), JsonOf));
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

        public Task<IReadOnlyList<ProfileRow>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken)
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
                return (IReadOnlyList<ProfileRow>)ids.Where(byId.ContainsKey).Select(id => byId[id]).ToList();
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
    }
}
