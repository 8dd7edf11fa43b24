using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.Sqlite;
using WriteBehind.Engine.Store;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    public sealed class SqliteProfileStoreTests
    {
        private static readonly CancellationToken None = CancellationToken.None;

        /// <summary>A database file of its own in a fresh temp directory, removed (with -wal/-shm) afterwards.</summary>
        private sealed class TempDb : IDisposable
        {
            public TempDb()
            {
                Directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "wb-sqlite-tests-" + Guid.NewGuid().ToString("N"));
                // A subfolder that does not exist yet: the store must create it.
                Path = System.IO.Path.Combine(Directory, "nested", "profiles.db");
            }

            public string Directory { get; }
            public string Path { get; }

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

        private static SqliteConnection OpenRaw(string path)
        {
            SqliteNative.EnsureLoaded();
            var builder = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false };
            var connection = new SqliteConnection(builder.ToString());
            connection.Open();
            return connection;
        }

        private static object Scalar(SqliteConnection connection, string sql)
        {
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.CommandText = sql;
                return command.ExecuteScalar();
            }
        }

        private static void Exec(SqliteConnection connection, string sql)
        {
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.CommandText = sql;
                command.ExecuteNonQuery();
            }
        }

        private static ProfileRow Row(string id, string json, long version) => new ProfileRow(id, json, version);

        private static ProfileRow Tombstone(string id, long version) => new ProfileRow(id, null, version);

        private static async Task<StoredProfile> GetOne(SqliteProfileStore store, string id)
        {
            IReadOnlyDictionary<string, StoredProfile> rows = await store.GetAsync(new[] { id }, None);
            return rows.TryGetValue(id, out StoredProfile row) ? row : null;
        }

        [Fact]
        public async Task Schema_is_created_on_first_use_with_version_1()
        {
            using var db = new TempDb();
            using (var store = new SqliteProfileStore(db.Path))
            {
                Assert.False(File.Exists(db.Path)); // lazily opened
                Assert.Equal("sqlite:" + System.IO.Path.GetFullPath(db.Path), store.Description);

                Assert.Equal(0L, await store.CountAsync(None));
                Assert.True(File.Exists(db.Path));
            }

            using var raw = OpenRaw(db.Path);
            Assert.Equal(1L, Scalar(raw, "SELECT COUNT(*) FROM wb_schema"));
            Assert.Equal(1L, Scalar(raw, "SELECT version FROM wb_schema"));
            Assert.Equal("wal", Scalar(raw, "PRAGMA journal_mode"));

            string ddl = (string)Scalar(raw, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'user_profiles'");
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

            // Reopening an existing store does not add a second version row.
            using (var again = new SqliteProfileStore(db.Path))
                Assert.Equal(0L, await again.CountAsync(None));
            Assert.Equal(1L, Scalar(raw, "SELECT COUNT(*) FROM wb_schema"));
        }

        [Fact]
        public async Task Older_version_is_ignored_and_newer_applies()
        {
            using var db = new TempDb();
            using var store = new SqliteProfileStore(db.Path);

            StoreCommitResult first = await store.CommitAsync(new[] { Row("u1", "{\"v\":5}", 5) }, None);
            Assert.Equal(1, first.Applied);
            Assert.Equal(0, first.Stale);

            StoreCommitResult older = await store.CommitAsync(new[] { Row("u1", "{\"v\":3}", 3) }, None);
            Assert.Equal(0, older.Applied);
            Assert.Equal(1, older.Stale);
            StoredProfile stored = await GetOne(store, "u1");
            Assert.Equal("{\"v\":5}", stored.Json);
            Assert.Equal(5, stored.Version);

            StoreCommitResult newer = await store.CommitAsync(new[] { Row("u1", "{\"v\":9}", 9) }, None);
            Assert.Equal(1, newer.Applied);
            Assert.Equal(0, newer.Stale);
            stored = await GetOne(store, "u1");
            Assert.Equal("{\"v\":9}", stored.Json);
            Assert.Equal(9, stored.Version);
            Assert.False(stored.IsDeleted);
            Assert.InRange(stored.UpdatedAt, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(5));
            Assert.Equal(TimeSpan.Zero, stored.UpdatedAt.Offset);

            // Out of order within one batch: only the newest wins, whatever the order.
            StoreCommitResult mixed = await store.CommitAsync(new[] { Row("u1", "{\"v\":12}", 12), Row("u1", "{\"v\":10}", 10) }, None);
            Assert.Equal(1, mixed.Applied);
            Assert.Equal(1, mixed.Stale);
            Assert.Equal(12, (await GetOne(store, "u1")).Version);

            using var raw = OpenRaw(db.Path);
            string updatedAt = (string)Scalar(raw, "SELECT updated_at FROM user_profiles WHERE user_id = 'u1'");
            Assert.EndsWith("Z", updatedAt);
            DateTime parsed = DateTime.ParseExact(updatedAt, "o", System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.RoundtripKind);
            Assert.Equal(DateTimeKind.Utc, parsed.Kind);
        }

        [Fact]
        public async Task Equal_version_is_stale()
        {
            using var db = new TempDb();
            using var store = new SqliteProfileStore(db.Path);

            await store.CommitAsync(new[] { Row("u1", "{\"a\":1}", 4) }, None);
            StoreCommitResult again = await store.CommitAsync(new[] { Row("u1", "{\"a\":2}", 4) }, None);

            Assert.Equal(0, again.Applied);
            Assert.Equal(1, again.Stale);
            Assert.Equal("{\"a\":1}", (await GetOne(store, "u1")).Json);
        }

        [Fact]
        public async Task Tombstone_blocks_lower_version_and_higher_version_revives()
        {
            using var db = new TempDb();
            using var store = new SqliteProfileStore(db.Path);

            await store.CommitAsync(new[] { Row("u1", "{\"x\":1}", 1) }, None);
            StoreCommitResult deleted = await store.CommitAsync(new[] { Tombstone("u1", 2) }, None);
            Assert.Equal(1, deleted.Applied);

            StoredProfile tomb = await GetOne(store, "u1");
            Assert.NotNull(tomb); // tombstones are returned
            Assert.True(tomb.IsDeleted);
            Assert.Null(tomb.Json);
            Assert.Equal(2, tomb.Version);
            Assert.Equal(0L, await store.CountAsync(None));

            using (var raw = OpenRaw(db.Path))
            {
                Assert.Equal(1L, Scalar(raw, "SELECT deleted FROM user_profiles WHERE user_id = 'u1'"));
                Assert.Equal(1L, Scalar(raw, "SELECT json IS NULL FROM user_profiles WHERE user_id = 'u1'"));
            }

            // A stale replay of the old value cannot bring the profile back, nor can an equal version.
            StoreCommitResult stale = await store.CommitAsync(new[] { Row("u1", "{\"x\":1}", 1), Row("u1", "{\"x\":2}", 2) }, None);
            Assert.Equal(0, stale.Applied);
            Assert.Equal(2, stale.Stale);
            Assert.True((await GetOne(store, "u1")).IsDeleted);

            StoreCommitResult revived = await store.CommitAsync(new[] { Row("u1", "{\"x\":3}", 3) }, None);
            Assert.Equal(1, revived.Applied);
            StoredProfile back = await GetOne(store, "u1");
            Assert.False(back.IsDeleted);
            Assert.Equal("{\"x\":3}", back.Json);
            Assert.Equal(3, back.Version);
            Assert.Equal(1L, await store.CountAsync(None));

            // A tombstone for an id never seen is recorded too (and blocks older writes).
            await store.CommitAsync(new[] { Tombstone("ghost", 7) }, None);
            StoreCommitResult ghost = await store.CommitAsync(new[] { Row("ghost", "{}", 6) }, None);
            Assert.Equal(1, ghost.Stale);
            Assert.True((await GetOne(store, "ghost")).IsDeleted);
        }

        [Fact]
        public async Task Json_text_is_stored_byte_for_byte()
        {
            const string json = """{"n":12345678901234567890,"f":1.0,"e":1e3,"u":"\u00e9 ü 🙂","q":"a\"b"}""";

            using var db = new TempDb();
            using (var store = new SqliteProfileStore(db.Path))
            {
                await store.CommitAsync(new[] { Row("u1", json, 1) }, None);
                StoredProfile stored = await GetOne(store, "u1");
                Assert.Equal(json, stored.Json, StringComparer.Ordinal);
            }

            // A fresh instance reads the same, and the file holds exactly the UTF-8 of the text.
            using (var reopened = new SqliteProfileStore(db.Path))
                Assert.Equal(json, (await GetOne(reopened, "u1")).Json, StringComparer.Ordinal);

            using var raw = OpenRaw(db.Path);
            var bytes = (byte[])Scalar(raw, "SELECT CAST(json AS BLOB) FROM user_profiles WHERE user_id = 'u1'");
            Assert.Equal(Encoding.UTF8.GetBytes(json), bytes);
        }

        [Fact]
        public async Task Batch_of_10000_rows_commits_in_one_call()
        {
            using var db = new TempDb();
            using var store = new SqliteProfileStore(db.Path);

            ProfileRow[] rows = Enumerable.Range(0, 10_000)
                .Select(i => Row("user-" + i, "{\"i\":" + i + "}", 1))
                .ToArray();

            StoreCommitResult result = await store.CommitAsync(rows, None);
            Assert.Equal(10_000, result.Applied);
            Assert.Equal(0, result.Stale);
            Assert.Equal(10_000L, await store.CountAsync(None));

            // Replaying the whole batch changes nothing.
            StoreCommitResult replay = await store.CommitAsync(rows, None);
            Assert.Equal(0, replay.Applied);
            Assert.Equal(10_000, replay.Stale);

            // Half newer, half the same version.
            ProfileRow[] mixed = Enumerable.Range(0, 10_000)
                .Select(i => Row("user-" + i, "{\"i\":" + i + ",\"b\":2}", i % 2 == 0 ? 2 : 1))
                .ToArray();
            StoreCommitResult half = await store.CommitAsync(mixed, None);
            Assert.Equal(5_000, half.Applied);
            Assert.Equal(5_000, half.Stale);
            Assert.Equal(10_000L, await store.CountAsync(None));

            StoreCommitResult empty = await store.CommitAsync(Array.Empty<ProfileRow>(), None);
            Assert.Equal(0, empty.Applied);
            Assert.Equal(0, empty.Stale);
        }

        [Fact]
        public async Task GetAsync_spans_more_than_500_parameters()
        {
            using var db = new TempDb();
            using var store = new SqliteProfileStore(db.Path);

            const int count = 1_234;
            await store.CommitAsync(Enumerable.Range(0, count).Select(i => Row("id-" + i, "{\"i\":" + i + "}", i + 1)).ToArray(), None);
            await store.CommitAsync(new[] { Tombstone("id-7", 100) }, None);

            var ask = new List<string>();
            ask.AddRange(Enumerable.Range(0, count).Select(i => "id-" + i));
            ask.AddRange(Enumerable.Range(0, 300).Select(i => "missing-" + i)); // never stored: absent
            ask.AddRange(Enumerable.Range(0, 50).Select(i => "id-" + i)); // duplicates are fine

            IReadOnlyDictionary<string, StoredProfile> got = await store.GetAsync(ask, None);

            Assert.Equal(count, got.Count);
            for (int i = 0; i < count; i++)
            {
                StoredProfile row = got["id-" + i];
                Assert.Equal("id-" + i, row.UserId);
                if (i == 7)
                {
                    Assert.True(row.IsDeleted);
                    Assert.Equal(100, row.Version);
                }
                else
                {
                    Assert.Equal("{\"i\":" + i + "}", row.Json);
                    Assert.Equal(i + 1, row.Version);
                }
            }
            Assert.False(got.ContainsKey("missing-0"));

            Assert.Empty(await store.GetAsync(Array.Empty<string>(), None));
        }

        [Fact]
        public async Task CountAsync_excludes_tombstones()
        {
            using var db = new TempDb();
            using var store = new SqliteProfileStore(db.Path);

            await store.CommitAsync(new[] { Row("a", "{}", 1), Row("b", "{}", 1), Row("c", "{}", 1), Tombstone("d", 1) }, None);
            Assert.Equal(3L, await store.CountAsync(None));

            await store.CommitAsync(new[] { Tombstone("b", 2) }, None);
            Assert.Equal(2L, await store.CountAsync(None));

            IReadOnlyDictionary<string, StoredProfile> all = await store.GetAsync(new[] { "a", "b", "c", "d" }, None);
            Assert.Equal(4, all.Count);
        }

        [Fact]
        public async Task Locked_file_throws_StoreUnavailable_then_same_instance_recovers()
        {
            using var db = new TempDb();
            using var store = new SqliteProfileStore(db.Path, busyTimeout: TimeSpan.FromMilliseconds(200));
            await store.CommitAsync(new[] { Row("before", "{}", 1) }, None);

            using (SqliteConnection locker = OpenRaw(db.Path))
            {
                Exec(locker, "BEGIN EXCLUSIVE");

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

                Exec(locker, "ROLLBACK");
            }

            StoreCommitResult after = await store.CommitAsync(new[] { Row("after", "{}", 1) }, None);
            Assert.Equal(1, after.Applied);
            Assert.Equal(2L, await store.CountAsync(None));
            Assert.Null(await GetOne(store, "during"));
        }

        [Fact]
        public async Task Newer_schema_version_makes_first_use_throw()
        {
            using var db = new TempDb();
            System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(db.Path));
            using (SqliteConnection raw = OpenRaw(db.Path))
            {
                Exec(raw, "CREATE TABLE wb_schema(version INTEGER NOT NULL); INSERT INTO wb_schema(version) VALUES(99);");
            }

            using var store = new SqliteProfileStore(db.Path);
            InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => store.CountAsync(None));
            Assert.Contains("99", ex.Message);
            Assert.Contains(db.Path, ex.Message);

            // Every later use refuses too, and nothing was written to the file.
            await Assert.ThrowsAsync<InvalidOperationException>(() => store.CommitAsync(new[] { Row("u1", "{}", 1) }, None));
            using (SqliteConnection raw = OpenRaw(db.Path))
                Assert.Equal(0L, Scalar(raw, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'user_profiles'"));
        }

        [Fact]
        public async Task Cancelled_and_disposed_calls_throw()
        {
            using var db = new TempDb();
            var store = new SqliteProfileStore(db.Path);

            using (var cts = new CancellationTokenSource())
            {
                cts.Cancel();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(
                    () => store.CommitAsync(new[] { Row("u1", "{}", 1) }, cts.Token));
            }
            Assert.Equal(0L, await store.CountAsync(None));

            store.Dispose();
            store.Dispose(); // idempotent
            await Assert.ThrowsAsync<ObjectDisposedException>(() => store.CountAsync(None));
        }

        [Fact]
        public void Transient_error_codes_are_classified()
        {
            foreach (int code in new[] { 5, 6, 10, 13, 14, 15, 5 | (1 << 8), 10 | (12 << 8) })
                Assert.True(SqliteProfileStore.IsTransient(code), code.ToString());
            foreach (int code in new[] { 1, 11, 19, 26 })
                Assert.False(SqliteProfileStore.IsTransient(code), code.ToString());
        }
    }
}
