using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.Sqlite;
using WriteBehind.Engine.Store;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>A database file of its own in a fresh temp directory, removed (with -wal/-shm) afterwards.</summary>
    internal sealed class SqliteTarget : IStoreTarget
    {
        public SqliteTarget()
        {
            Directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "wb-sqlite-tests-" + Guid.NewGuid().ToString("N"));
            // A subfolder that does not exist yet: the store must create it.
            Path = System.IO.Path.Combine(Directory, "nested", "profiles.db");
        }

        public string Directory { get; }
        public string Path { get; }

        public IProfileStore Open() => new SqliteProfileStore(Path);
        public string ExpectedDescription => "sqlite://" + System.IO.Path.GetFullPath(Path);
        public bool Exists() => File.Exists(Path);

        public static SqliteConnection OpenRaw(string path)
        {
            SqliteNative.EnsureLoaded();
            var builder = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false };
            var connection = new SqliteConnection(builder.ToString());
            connection.Open();
            return connection;
        }

        public static object Scalar(SqliteConnection connection, string sql)
        {
            using SqliteCommand command = connection.CreateCommand();
            command.CommandText = sql;
            return command.ExecuteScalar();
        }

        public static void Exec(SqliteConnection connection, string sql)
        {
            using SqliteCommand command = connection.CreateCommand();
            command.CommandText = sql;
            command.ExecuteNonQuery();
        }

        private object Scalar(string sql)
        {
            using var raw = OpenRaw(Path);
            return Scalar(raw, sql);
        }

        public Task<long> RawSchemaRowCountAsync() => Task.FromResult(Convert.ToInt64(Scalar("SELECT COUNT(*) FROM wb_schema")));
        public Task<long> RawSchemaVersionAsync() => Task.FromResult(Convert.ToInt64(Scalar("SELECT version FROM wb_schema")));
        public Task<bool> RawDeletedAsync(string userId) => Task.FromResult(Convert.ToInt64(Scalar($"SELECT deleted FROM user_profiles WHERE user_id = '{userId}'")) == 1);
        public Task<bool> RawJsonIsNullAsync(string userId) => Task.FromResult(Convert.ToInt64(Scalar($"SELECT json IS NULL FROM user_profiles WHERE user_id = '{userId}'")) == 1);
        public Task<byte[]> RawJsonBytesAsync(string userId) => Task.FromResult((byte[])Scalar($"SELECT CAST(json AS BLOB) FROM user_profiles WHERE user_id = '{userId}'"));
        public Task<bool> RawUserProfilesTableExistsAsync() =>
            Task.FromResult(Convert.ToInt64(Scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'user_profiles'")) == 1);

        public Task<bool> RawSchemaTableExistsAsync() =>
            Task.FromResult(File.Exists(Path) && Convert.ToInt64(Scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'wb_schema'")) == 1);

        public Task ExecuteRawAsync(string sql)
        {
            System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path));
            using var raw = OpenRaw(Path);
            Exec(raw, sql);
            return Task.CompletedTask;
        }

        public Task CreateSchemaTableAsync(long version)
        {
            System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path));
            using var raw = OpenRaw(Path);
            Exec(raw, $"CREATE TABLE wb_schema(version INTEGER NOT NULL); INSERT INTO wb_schema(version) VALUES({version});");
            return Task.CompletedTask;
        }

        public void Dispose()
        {
            SqliteConnection.ClearAllPools();
            try
            {
                if (System.IO.Directory.Exists(Directory))
                    System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (IOException)
            {
                // Best effort: a leftover temp folder must not fail a test.
            }
        }
    }

    /// <summary>The store contract against SQLite, plus what only SQLite has (WAL, file locks, its DDL).</summary>
    public sealed class SqliteProfileStoreTests : StoreContractTests
    {
        protected override IStoreTarget CreateTarget() => new SqliteTarget();

        [Theory]
        [InlineData("Server=db01;Database=profiles;Trusted_Connection=True")]
        [InlineData("Data Source=profiles.db;Password=Secret-42")]
        [InlineData("profiles")]
        [InlineData("redis://cache01:6379")]
        [InlineData("sqlite:///var/lib/app/x.db;Password=Secret-42")]
        [InlineData("sqlite:///var/lib/app/x.db?mode=ro&key=Secret-42")]
        public void A_store_value_that_is_no_documented_form_is_refused_without_repeating_it(string value)
        {
            var ex = Assert.Throws<WriteBehindException>(() => StoreFactory.Normalize(value));
            Assert.Equal(ErrorIds.InvalidStoreUri, ex.ErrorId);
            Assert.DoesNotContain("db01", ex.Message);
            Assert.DoesNotContain("Secret-42", ex.Message);
            Assert.DoesNotContain("Secret-42", StoreFactory.Display(value));
            Assert.Throws<WriteBehindException>(() => StoreFactory.Open(value).Dispose());
        }

        [Fact]
        public void Store_values_normalize_to_one_form_relative_paths_by_the_resolver_and_a_missing_folder_is_refused()
        {
            using var db = new SqliteTarget();
            System.IO.Directory.CreateDirectory(db.Directory);
            string Resolve(string path) => System.IO.Path.Combine(db.Directory, path);
            string expected = "sqlite://" + System.IO.Path.Combine(db.Directory, "p.db");
            Assert.Equal(expected, StoreFactory.Normalize("p.db", Resolve));
            Assert.Equal(expected, StoreFactory.Normalize("sqlite:p.db", Resolve));
            Assert.Equal(expected, StoreFactory.Normalize(expected));
            Assert.Equal(expected, StoreFactory.Normalize(System.IO.Path.Combine(db.Directory, "p.db")));
            Assert.Equal(expected.Replace("p.db", "p.sqlite3"), StoreFactory.Normalize("p.sqlite3", Resolve));
            Assert.Equal(expected, StoreFactory.Display(expected));
            Assert.Equal(expected, new SqliteProfileStore(System.IO.Path.Combine(db.Directory, "p.db")).Description);

            var missing = Assert.Throws<WriteBehindException>(() => StoreFactory.Normalize("sqlite://" + db.Path)); // its "nested" folder does not exist
            Assert.Equal(ErrorIds.InvalidStoreUri, missing.ErrorId);
            Assert.Contains(System.IO.Path.GetDirectoryName(db.Path), missing.Message);
            var folder = Assert.Throws<WriteBehindException>(() => StoreFactory.Normalize("sqlite://" + db.Directory));
            Assert.Contains("is a folder", folder.Message);
            Assert.Equal(WriteBehindOptions.DefaultStoreUri, StoreFactory.Normalize(WriteBehindOptions.DefaultStoreUri));
        }

        [Fact]
        public async Task A_store_opened_by_its_URI_does_not_create_a_missing_folder()
        {
            using var db = new SqliteTarget();
            using var store = StoreFactory.Open("sqlite://" + db.Path);
            await Assert.ThrowsAsync<StoreUnavailableException>(() => store.CountAsync(CancellationToken.None));
            Assert.False(System.IO.Directory.Exists(System.IO.Path.GetDirectoryName(db.Path)));
        }

        [Fact]
        public async Task Sqlite_schema_is_a_WAL_file_with_a_without_rowid_table()
        {
            using var db = new SqliteTarget();
            using (var store = new SqliteProfileStore(db.Path))
                Assert.Equal(0L, await store.CountAsync(None));

            using var raw = SqliteTarget.OpenRaw(db.Path);
            Assert.Equal("wal", SqliteTarget.Scalar(raw, "PRAGMA journal_mode"));
            string ddl = (string)SqliteTarget.Scalar(raw, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'user_profiles'");
            Assert.Contains("WITHOUT ROWID", ddl, StringComparison.OrdinalIgnoreCase);

            var columns = new List<(string Name, string Type, bool NotNull, bool Pk)>();
            using (SqliteCommand command = raw.CreateCommand())
            {
                command.CommandText = "PRAGMA table_info(user_profiles)";
                using SqliteDataReader reader = command.ExecuteReader();
                while (reader.Read())
                    columns.Add((reader.GetString(1), reader.GetString(2), reader.GetInt64(3) == 1, reader.GetInt64(5) > 0));
            }
            Assert.Equal(new[] { "user_id", "json", "version", "deleted", "updated_at" }, columns.Select(c => c.Name));
            Assert.True(columns[0].Pk);
            Assert.True(columns[0].NotNull);
            Assert.False(columns[1].NotNull);
            Assert.True(columns[2].NotNull);
            Assert.True(columns[4].NotNull);
        }

        [Fact]
        public async Task Sqlite_updated_at_is_round_trip_utc_text()
        {
            using var db = new SqliteTarget();
            using (var store = new SqliteProfileStore(db.Path))
                await store.CommitAsync(new[] { Row("u1", "{}", 1) }, None);

            using var raw = SqliteTarget.OpenRaw(db.Path);
            string updatedAt = (string)SqliteTarget.Scalar(raw, "SELECT updated_at FROM user_profiles WHERE user_id = 'u1'");
            Assert.EndsWith("Z", updatedAt);
            DateTime parsed = DateTime.ParseExact(updatedAt, "o", System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.RoundtripKind);
            Assert.Equal(DateTimeKind.Utc, parsed.Kind);
        }

        [Fact]
        public async Task Locked_file_throws_StoreUnavailable_then_same_instance_recovers()
        {
            using var db = new SqliteTarget();
            using var store = new SqliteProfileStore(db.Path, busyTimeout: TimeSpan.FromMilliseconds(200));
            await store.CommitAsync(new[] { Row("before", "{}", 1) }, None);

            using (SqliteConnection locker = SqliteTarget.OpenRaw(db.Path))
            {
                SqliteTarget.Exec(locker, "BEGIN EXCLUSIVE");

                var stopwatch = Stopwatch.StartNew();
                StoreUnavailableException ex = await Assert.ThrowsAsync<StoreUnavailableException>(
                    () => store.CommitAsync(new[] { Row("during", "{}", 1) }, None));
                stopwatch.Stop();

                Assert.IsAssignableFrom<StoreException>(ex);
                SqliteException inner = Assert.IsType<SqliteException>(ex.InnerException);
                Assert.Equal(5, inner.SqliteErrorCode & 0xFF); // SQLITE_BUSY
                Assert.Contains(db.Path, ex.Message);
                Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(15), "gave up after " + stopwatch.Elapsed);

                // WAL: readers are not blocked by the writer's lock.
                Assert.Equal(1L, await store.CountAsync(None));

                SqliteTarget.Exec(locker, "ROLLBACK");
            }

            StoreCommitResult after = await store.CommitAsync(new[] { Row("after", "{}", 1) }, None);
            Assert.Equal(1, after.Applied);
            Assert.Equal(2L, await store.CountAsync(None));
            Assert.Null(await GetOne(store, "during"));
        }

        [Fact]
        public async Task A_row_SQLite_refuses_mid_batch_fails_the_commit_for_good_and_rolls_all_of_it_back()
        {
            // The upsert runs through SQLite's own statement API (SqliteUpsert): an error of its step must come
            // out as Microsoft.Data.Sqlite's would (a SqliteException with SQLite's code, a StoreException that
            // is not transient), leave nothing of the batch, and leave the connection fit for the next commit.
            using var db = new SqliteTarget();
            using var store = new SqliteProfileStore(db.Path);
            await store.CommitAsync(new[] { Row("a", "{\"v\":1}", 1) }, None);
            await db.ExecuteRawAsync(
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON user_profiles WHEN NEW.user_id = 'n-bad' " +
                "BEGIN SELECT RAISE(ABORT, 'n-bad is refused'); END;");

            var batch = Enumerable.Range(0, 600).Select(i => Row("m" + i.ToString("D3"), "{}", 1))
                .Concat(new[] { Row("a", "{\"v\":2}", 2), Row("n-bad", "{}", 1), Row("z", "{}", 1) }).ToArray();
            StoreException ex = await Assert.ThrowsAsync<StoreException>(() => store.CommitAsync(batch, None));
            Assert.IsNotType<StoreUnavailableException>(ex);
            SqliteException inner = Assert.IsType<SqliteException>(ex.InnerException);
            Assert.Equal(19, inner.SqliteErrorCode & 0xFF); // SQLITE_CONSTRAINT
            Assert.Contains("n-bad is refused", ex.Message);
            Assert.Contains("could not commit 603 row(s) to it", ex.Message);

            Assert.Equal(1L, await store.CountAsync(None));
            Assert.Equal("{\"v\":1}", (await GetOne(store, "a")).Json);
            Assert.Null(await GetOne(store, "m000"));

            StoreCommitResult after = await store.CommitAsync(batch.Where(r => r.UserId != "n-bad").ToArray(), None);
            Assert.Equal(602, after.Applied);
            Assert.Equal(0, after.Stale);
            Assert.Equal("{\"v\":2}", (await GetOne(store, "a")).Json);
            Assert.Equal(602L, await store.CountAsync(None));
        }

        [Fact]
        public void Transient_error_codes_are_classified()
        {
            foreach (int code in new[] { 5, 6, 10, 13, 14, 15, 5 | (1 << 8), 10 | (12 << 8) })
                Assert.True(SqliteConnectionGate.IsTransient(code), code.ToString());
            foreach (int code in new[] { 1, 11, 19, 26 })
                Assert.False(SqliteConnectionGate.IsTransient(code), code.ToString());
        }
    }
}
