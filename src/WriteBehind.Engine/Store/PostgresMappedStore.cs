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
    internal sealed partial class PostgresMappedStore : IMappedProfileStore
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

        private readonly PostgresServer _server;
        private readonly SemaphoreSlim _gate = new SemaphoreSlim(1, 1);
        private volatile Layout _layout;
        private volatile bool _versionsReady;

        /// <summary>What validation found: the resolved names, the columns and the statements built from them.</summary>
        private sealed class Layout : MappedLayout
        {
            public string CommitSql;
            public string ReadSql;
        }

        public PostgresMappedStore(string connectionString, string description, StoreMapping mapping,
            System.Net.Security.RemoteCertificateValidationCallback certificateValidation = null)
        {
            _server = new PostgresServer(connectionString, description, certificateValidation, nameof(PostgresMappedStore));
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
                    layout.CheckKey(row.UserId, "\"" + layout.Key.Column + "\"");
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

        public Task<IReadOnlyDictionary<string, ProfileRow>> GetAsync(IReadOnlyCollection<string> userIds, CancellationToken cancellationToken)
        {
            var distinct = StoreArguments.DistinctIds(userIds);
            return RunAsync("read " + distinct.Count + " row(s) from", false, cancellationToken, async connection =>
            {
                var result = new Dictionary<string, ProfileRow>(StringComparer.Ordinal);
                Layout layout = _layout;
                // An id that is not a canonical integer can never have been written to an integer key.
                var ids = layout.Key.Kind == ColumnKind.Integer ? distinct.Where(id => MappedValues.TryIntegerKey(id, out _)).ToArray() : distinct.ToArray();
                if (ids.Length == 0) return (IReadOnlyDictionary<string, ProfileRow>)result;
                using (var command = new NpgsqlCommand(layout.ReadSql, connection))
                {
                    command.Parameters.Add(new NpgsqlParameter<string>("table", NpgsqlDbType.Text) { TypedValue = layout.TableName });
                    command.Parameters.Add(new NpgsqlParameter<string[]>("ids", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = ids });
                    using (NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                    {
                        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        {
                            ProfileRow row = ReadRow(layout, reader);
                            result[row.UserId] = row;
                        }
                    }
                }
                return (IReadOnlyDictionary<string, ProfileRow>)result;
            });
        }

        /// <summary>A row of <see cref="Layout.ReadSql"/> (<see cref="MappedLayout.ReadProfile"/>): each mapped column comes as its JSON text (to_json).</summary>
        private static ProfileRow ReadRow(Layout layout, NpgsqlDataReader reader) =>
            layout.ReadProfile(reader, r => new DateTimeOffset(DateTime.SpecifyKind(r.GetFieldValue<DateTime>(3), DateTimeKind.Utc)), (kind, value) => (string)value);

        public Task<IReadOnlyList<ProfileRow>> GetPageAsync(string afterUserId, int limit, CancellationToken cancellationToken)
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
                var page = new List<ProfileRow>(ids.Count);
                if (ids.Count == 0) return (IReadOnlyList<ProfileRow>)page;
                using (var command = new NpgsqlCommand(layout.ReadSql, connection))
                {
                    command.Parameters.Add(new NpgsqlParameter<string>("table", NpgsqlDbType.Text) { TypedValue = layout.TableName });
                    command.Parameters.Add(new NpgsqlParameter<string[]>("ids", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = ids.ToArray() });
                    var byId = new Dictionary<string, ProfileRow>(StringComparer.Ordinal);
                    using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        {
                            var row = ReadRow(layout, reader);
                            byId[row.UserId] = row;
                        }
                    foreach (string id in ids)
                        if (byId.TryGetValue(id, out var row)) page.Add(row);
                }
                return (IReadOnlyList<ProfileRow>)page;
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

        public void Dispose() => _server.Dispose();

        private Task<T> RunAsync<T>(string what, bool rowsInvolved, CancellationToken cancellationToken, Func<NpgsqlConnection, Task<T>> operation,
            bool prepare = true) =>
            _server.RunAsync(what + " table " + Mapping.Table, rowsInvolved, cancellationToken,
                connection => _layout == null || (prepare && !_versionsReady) ? PrepareAsync(connection, prepare, cancellationToken) : Task.CompletedTask,
                operation);

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
    }
}
