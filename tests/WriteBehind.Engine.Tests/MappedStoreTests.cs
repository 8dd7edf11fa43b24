using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using WriteBehind.Engine.Store;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>A database holding the application's table <c>users(id integer PRIMARY KEY, name varchar(20), age integer)</c>,
    /// and raw SQL on it outside the store's code.</summary>
    public interface IMappedTarget : IDisposable
    {
        IProfileStore Open(StoreMapping mapping);
        /// <summary>The users table as id → (name, age), read with plain SQL.</summary>
        Dictionary<long, (string Name, long? Age)> Users();
        /// <summary>wb_versions as key → (version, deleted).</summary>
        Dictionary<string, (long Version, bool Deleted)> Versions();
        bool TableExists(string name);
        void Execute(string sql);
    }

    /// <summary>What a mapped table store keeps, against each database by a derived class: the version guard over
    /// the user's table and wb_versions together, tombstones (Delete and Keep), set-based batches, concurrent
    /// committers, typed values and refusals, and the catalog check.</summary>
    public abstract class MappedStoreTests
    {
        protected static readonly CancellationToken None = CancellationToken.None;
        protected abstract IMappedTarget CreateTarget();

        protected static StoreMapping Users(StoreDeleteMode mode = StoreDeleteMode.Delete) =>
            new StoreMapping("users", "id", new[] { Pair("name", "name"), Pair("age", "age") }, null, mode);

        private static KeyValuePair<string, string> Pair(string field, string column) => new KeyValuePair<string, string>(field, column);

        private static ProfileRow Row(string id, string json, long version) => new ProfileRow(id, json, version);

        [Fact]
        public async Task Versions_guard_the_users_table_and_tombstones_block_older_writes()
        {
            using var target = CreateTarget();
            using var store = target.Open(Users());

            Assert.Equal(1, (await store.CommitAsync(new[] { Row("1", "{\"name\":\"a\",\"age\":\"5\"}", 5) }, None)).Applied);
            var older = await store.CommitAsync(new[] { Row("1", "{\"name\":\"old\",\"age\":3}", 3), Row("1", "{\"name\":\"same\",\"age\":5}", 5) }, None);
            Assert.Equal(0, older.Applied);
            Assert.Equal(2, older.Stale);
            Assert.Equal(("a", (long?)5), target.Users()[1]);

            var newer = await store.CommitAsync(new[] { Row("1", "{\"name\":\"b\"}", 9), Row("1", "{\"name\":\"c\"}", 7) }, None);
            Assert.Equal(1, newer.Applied);
            Assert.Equal(1, newer.Stale);
            Assert.Equal(("b", (long?)null), target.Users()[1]); // a field the profile lacks is NULL
            Assert.Equal((9L, false), target.Versions()["1"]);

            Assert.Equal(1, (await store.CommitAsync(new[] { Row("1", null, 10) }, None)).Applied);
            Assert.False(target.Users().ContainsKey(1));
            Assert.Equal((10L, true), target.Versions()["1"]);
            var tomb = (await store.GetAsync(new[] { "1" }, None))["1"];
            Assert.True(tomb.IsDeleted);
            Assert.Equal(10, tomb.Version);

            // A replay of an older live version does not bring the row back; a newer one does.
            Assert.Equal(0, (await store.CommitAsync(new[] { Row("1", "{\"name\":\"b\"}", 9) }, None)).Applied);
            Assert.False(target.Users().ContainsKey(1));
            Assert.Equal(1, (await store.CommitAsync(new[] { Row("1", "{\"name\":\"back\",\"age\":1}", 11) }, None)).Applied);
            Assert.Equal(("back", (long?)1), target.Users()[1]);
            var back = (await store.GetAsync(new[] { "1", "2", "x" }, None));
            Assert.Equal("{\"name\":\"back\",\"age\":1}", back["1"].Json);
            Assert.Single(back);
            Assert.Equal(1L, await store.CountAsync(None));
        }

        [Fact]
        public async Task Keep_leaves_the_row_and_records_the_tombstone()
        {
            using var target = CreateTarget();
            using var store = target.Open(Users(StoreDeleteMode.Keep));
            await store.CommitAsync(new[] { Row("7", "{\"name\":\"kept\",\"age\":70}", 1) }, None);
            await store.CommitAsync(new[] { Row("7", null, 2) }, None);
            Assert.Equal(("kept", (long?)70), target.Users()[7]);
            Assert.Equal((2L, true), target.Versions()["7"]);
            Assert.True((await store.GetAsync(new[] { "7" }, None))["7"].IsDeleted);
            Assert.Equal(0L, await store.CountAsync(None));
        }

        [Fact]
        public async Task Batch_of_10000_rows_commits_in_one_call_and_a_replay_changes_nothing()
        {
            using var target = CreateTarget();
            using var store = target.Open(Users());
            var rows = Enumerable.Range(1, 10_000).Select(i => Row(i.ToString(), "{\"name\":\"n" + i + "\",\"age\":" + i + "}", 1)).ToArray();
            Assert.Equal(10_000, (await store.CommitAsync(rows, None)).Applied);
            Assert.Equal(10_000, (await store.CommitAsync(rows, None)).Stale);
            var half = Enumerable.Range(1, 10_000).Select(i => Row(i.ToString(), i % 2 == 0 ? null : "{\"name\":\"m" + i + "\",\"age\":" + (i + 1) + "}", i % 3 == 0 ? 1 : 2)).ToArray();
            var r = await store.CommitAsync(half, None);
            Assert.Equal(10_000 - 3_333, r.Applied);
            var users = target.Users();
            Assert.Equal(("m5", (long?)6), users[5]);     // odd, version 2: updated
            Assert.False(users.ContainsKey(4));           // even, version 2: deleted
            Assert.Equal(("n6", (long?)6), users[6]);      // version 1 again: stale
            Assert.Equal(("n9", (long?)9), users[9]);
            Assert.Equal(10_000 - 3_334, users.Count);     // 5,000 - 1,667 deleted... and the rest live
        }

        [Fact]
        public async Task Concurrent_committers_with_out_of_order_versions_leave_the_newest_in_the_users_table()
        {
            using var target = CreateTarget();
            const int ids = 30, versions = 20;
            var random = new Random(99);
            var all = (from v in Enumerable.Range(1, versions) from i in Enumerable.Range(1, ids)
                       select Row(i.ToString(), v % 6 == 0 ? null : "{\"name\":\"v" + v + "\",\"age\":" + v + "}", v))
                      .OrderBy(_ => random.Next()).ToList();
            var stores = Enumerable.Range(0, 4).Select(_ => target.Open(Users())).ToArray();
            try
            {
                await Task.WhenAll(stores.Select((store, s) => Task.Run(async () =>
                {
                    var mine = all.Where((_, n) => n % stores.Length == s).ToList();
                    for (int start = 0; start < mine.Count; start += 15)
                    {
                        var batch = mine.Skip(start).Take(15).ToArray();
                        while (true)
                        {
                            try { await store.CommitAsync(batch, None); break; }
                            catch (StoreUnavailableException) { await Task.Delay(1 + s * 3); }
                        }
                    }
                })));
            }
            finally
            {
                foreach (var s in stores) s.Dispose();
            }
            var users = target.Users();
            var found = target.Versions();
            for (int i = 1; i <= ids; i++)
            {
                Assert.Equal((20L, false), found[i.ToString()]);
                Assert.Equal(("v20", (long?)20), users[i]);
            }
        }

        [Fact]
        public async Task A_refused_value_fails_the_commit_as_a_row_error_and_writes_nothing()
        {
            using var target = CreateTarget();
            using var store = target.Open(Users());
            var ex = await Assert.ThrowsAsync<StoreException>(() => store.CommitAsync(new[] { Row("1", "{\"name\":\"ok\",\"age\":1}", 1), Row("2", "{\"age\":\"abc\"}", 1) }, None));
            Assert.IsNotType<StoreUnavailableException>(ex);
            Assert.Contains("abc", ex.Message);
            await Assert.ThrowsAsync<StoreException>(() => store.CommitAsync(new[] { Row("007", "{\"name\":\"x\"}", 1) }, None));
            Assert.Empty(target.Users());
            Assert.Empty(target.Versions());
            // 25.0 is a whole number: an integer column takes it.
            await store.CommitAsync(new[] { Row("3", "{\"name\":\"x\",\"age\":25.0}", 1) }, None);
            Assert.Equal(("x", (long?)25), target.Users()[3]);
        }

        [Fact]
        public async Task A_mapping_that_does_not_fit_is_StoreMappingInvalid_and_creates_nothing()
        {
            using var target = CreateTarget();
            var bad = new StoreMapping("users", "uid", new[] { Pair("name", "nom"), Pair("age", "age") });
            using var store = (IMappedProfileStore)target.Open(bad);
            var ex = await Assert.ThrowsAsync<WriteBehindException>(() => store.ValidateAsync(None));
            Assert.Equal(ErrorIds.StoreMappingInvalid, ex.ErrorId);
            Assert.Contains("'uid'", ex.Message);
            Assert.Contains("'nom'", ex.Message);
            await Assert.ThrowsAsync<WriteBehindException>(() => store.CommitAsync(new[] { Row("1", "{}", 1) }, None));
            Assert.False(target.TableExists("wb_versions"));

            target.Execute("CREATE TABLE strict_users(id integer PRIMARY KEY, email text NOT NULL, name text)");
            using var strict = (IMappedProfileStore)target.Open(new StoreMapping("strict_users", "id", new[] { Pair("name", "name") }));
            ex = await Assert.ThrowsAsync<WriteBehindException>(() => strict.ValidateAsync(None));
            Assert.Contains("'email' is NOT NULL without a default", ex.Message);
        }
    }

    internal sealed class SqliteMappedTarget : IMappedTarget
    {
        private readonly SqliteTarget _file = new SqliteTarget();

        public SqliteMappedTarget()
        {
            System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(_file.Path));
            Execute("CREATE TABLE users(id integer PRIMARY KEY, name varchar(20), age integer)");
        }

        public IProfileStore Open(StoreMapping mapping) => StoreFactory.Open(new WriteBehindOptions { Store = "sqlite://" + _file.Path, StoreMapping = mapping });

        public void Execute(string sql)
        {
            using var raw = SqliteTarget.OpenRaw(_file.Path);
            SqliteTarget.Exec(raw, sql);
        }

        public bool TableExists(string name)
        {
            using var raw = SqliteTarget.OpenRaw(_file.Path);
            return Convert.ToInt64(SqliteTarget.Scalar(raw, "SELECT count(*) FROM sqlite_master WHERE name = '" + name + "'")) > 0;
        }

        public Dictionary<long, (string Name, long? Age)> Users()
        {
            using var raw = SqliteTarget.OpenRaw(_file.Path);
            using var command = raw.CreateCommand();
            command.CommandText = "SELECT id, name, age, typeof(age) FROM users";
            var result = new Dictionary<long, (string, long?)>();
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                string type = reader.GetString(3);
                Assert.True(type == "integer" || type == "null", "age stored as " + type);
                result[reader.GetInt64(0)] = (reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? (long?)null : reader.GetInt64(2));
            }
            return result;
        }

        public Dictionary<string, (long Version, bool Deleted)> Versions()
        {
            var result = new Dictionary<string, (long, bool)>();
            if (!TableExists("wb_versions")) return result;
            using var raw = SqliteTarget.OpenRaw(_file.Path);
            using var command = raw.CreateCommand();
            command.CommandText = "SELECT key, version, deleted FROM wb_versions WHERE table_name = 'users'";
            using var reader = command.ExecuteReader();
            while (reader.Read()) result[reader.GetString(0)] = (reader.GetInt64(1), reader.GetInt64(2) != 0);
            return result;
        }

        public void Dispose() => _file.Dispose();
    }

    internal sealed class PostgresMappedTarget : IMappedTarget
    {
        private readonly PostgresTarget _db = new PostgresTarget();

        public PostgresMappedTarget() => Execute("CREATE TABLE users(id integer PRIMARY KEY, name varchar(20), age integer)");

        public IProfileStore Open(StoreMapping mapping) =>
            StoreFactory.Open(new WriteBehindOptions { Store = _db.Uri, StorePassword = TestPostgres.Password, StoreMapping = mapping });

        public void Execute(string sql) => _db.Scalar(sql);

        public bool TableExists(string name) => (bool)_db.Scalar("SELECT to_regclass(@n) IS NOT NULL", ("n", name));

        public Dictionary<long, (string Name, long? Age)> Users()
        {
            using var raw = TestPostgres.OpenRaw(_db.Database);
            using var command = new NpgsqlCommand("SELECT id, name, age FROM users", raw);
            var result = new Dictionary<long, (string, long?)>();
            using var reader = command.ExecuteReader();
            while (reader.Read())
                result[reader.GetInt32(0)] = (reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? (long?)null : reader.GetInt32(2));
            return result;
        }

        public Dictionary<string, (long Version, bool Deleted)> Versions()
        {
            var result = new Dictionary<string, (long, bool)>();
            if (!TableExists("wb_versions")) return result;
            using var raw = TestPostgres.OpenRaw(_db.Database);
            using var command = new NpgsqlCommand("SELECT key, version, deleted FROM wb_versions WHERE table_name = 'public.users'", raw);
            using var reader = command.ExecuteReader();
            while (reader.Read()) result[reader.GetString(0)] = (reader.GetInt64(1), reader.GetBoolean(2));
            return result;
        }

        public void Dispose() => _db.Dispose();
    }

    internal sealed class MariaDbMappedTarget : IMappedTarget
    {
        private readonly MariaDbTarget _db = new MariaDbTarget();

        public MariaDbMappedTarget() => Execute("CREATE TABLE users(id int PRIMARY KEY, name varchar(20), age int)");

        public IProfileStore Open(StoreMapping mapping) =>
            StoreFactory.Open(new WriteBehindOptions { Store = _db.Uri, StorePassword = TestMariaDb.Password, StoreMapping = mapping });

        public void Execute(string sql) => _db.Scalar(sql);

        public bool TableExists(string name) =>
            Convert.ToInt64(_db.Scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = @n", ("@n", name))) > 0;

        public Dictionary<long, (string Name, long? Age)> Users()
        {
            using var raw = TestMariaDb.OpenRaw(_db.Database);
            using var command = new MySqlConnector.MySqlCommand("SELECT id, name, age FROM users", raw);
            var result = new Dictionary<long, (string, long?)>();
            using var reader = command.ExecuteReader();
            while (reader.Read())
                result[reader.GetInt32(0)] = (reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? (long?)null : reader.GetInt32(2));
            return result;
        }

        public Dictionary<string, (long Version, bool Deleted)> Versions()
        {
            var result = new Dictionary<string, (long, bool)>();
            if (!TableExists("wb_versions")) return result;
            using var raw = TestMariaDb.OpenRaw(_db.Database);
            using var command = new MySqlConnector.MySqlCommand("SELECT `key`, version, deleted FROM wb_versions WHERE table_name LIKE '%.users'", raw);
            using var reader = command.ExecuteReader();
            while (reader.Read()) result[reader.GetString(0)] = (reader.GetInt64(1), Convert.ToInt64(reader.GetValue(2)) != 0);
            return result;
        }

        public void Dispose() => _db.Dispose();
    }

    public sealed class MariaDbMappedStoreTests : MappedStoreTests
    {
        protected override IMappedTarget CreateTarget() => new MariaDbMappedTarget();
    }

    public sealed class SqliteMappedStoreTests : MappedStoreTests
    {
        protected override IMappedTarget CreateTarget() => new SqliteMappedTarget();
    }

    [Collection(TestPostgres.Collection)]
    public sealed class PostgresMappedStoreTests : MappedStoreTests
    {
        protected override IMappedTarget CreateTarget() => new PostgresMappedTarget();
    }
}
