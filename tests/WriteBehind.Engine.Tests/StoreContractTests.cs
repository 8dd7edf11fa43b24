using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using WriteBehind.Engine.Store;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>One store for one test: a fresh SQLite file or a fresh PostgreSQL database, plus raw access
    /// (outside the store's code) to check what it really wrote.</summary>
    public interface IStoreTarget : IDisposable
    {
        /// <summary>A new store instance on this target (each call: its own instance, same data).</summary>
        IProfileStore Open();
        /// <summary>What <see cref="IProfileStore.Description"/> must say.</summary>
        string ExpectedDescription { get; }
        /// <summary>True once the store created anything (the file, the tables).</summary>
        bool Exists();
        Task<long> RawSchemaRowCountAsync();
        Task<long> RawSchemaVersionAsync();
        Task<bool> RawDeletedAsync(string userId);
        Task<bool> RawJsonIsNullAsync(string userId);
        /// <summary>The stored JSON's bytes (UTF-8) as the database holds them.</summary>
        Task<byte[]> RawJsonBytesAsync(string userId);
        /// <summary>Creates wb_schema holding this version (and nothing else).</summary>
        Task CreateSchemaTableAsync(long version);
        Task<bool> RawUserProfilesTableExistsAsync();
        /// <summary>Whether wb_schema exists (false when the database or file does not exist at all).</summary>
        Task<bool> RawSchemaTableExistsAsync();
        /// <summary>Runs SQL on the target outside the store (creating the file or database as needed).</summary>
        Task ExecuteRawAsync(string sql);
    }

    /// <summary>
    /// The contract every <see cref="IProfileStore"/> keeps (versioned upserts, tombstones, byte-exact
    /// JSON, keyset pages in ordinal order, schema versioning), run against each store by a derived class.
    /// </summary>
    public abstract class StoreContractTests
    {
        protected static readonly CancellationToken None = CancellationToken.None;

        protected abstract IStoreTarget CreateTarget();

        protected static ProfileRow Row(string id, string json, long version) => new ProfileRow(id, json, version);

        protected static ProfileRow Tombstone(string id, long version) => new ProfileRow(id, null, version);

        protected static async Task<ProfileRow> GetOne(IProfileStore store, string id)
        {
            IReadOnlyDictionary<string, ProfileRow> rows = await store.GetAsync(new[] { id }, None);
            return rows.TryGetValue(id, out ProfileRow row) ? row : null;
        }

        [Fact]
        public async Task Schema_is_created_on_first_use_with_version_1()
        {
            using var target = CreateTarget();
            using (var store = target.Open())
            {
                Assert.False(target.Exists()); // lazily opened
                Assert.Equal(target.ExpectedDescription, store.Description);
                Assert.Equal(0L, await store.CountAsync(None));
                Assert.True(target.Exists());
            }
            Assert.Equal(1L, await target.RawSchemaRowCountAsync());
            Assert.Equal(1L, await target.RawSchemaVersionAsync());

            // Reopening an existing store does not add a second version row.
            using (var again = target.Open())
                Assert.Equal(0L, await again.CountAsync(None));
            Assert.Equal(1L, await target.RawSchemaRowCountAsync());
        }

        [Fact]
        public async Task Older_version_is_ignored_and_newer_applies()
        {
            using var target = CreateTarget();
            using var store = target.Open();

            StoreCommitResult first = await store.CommitAsync(new[] { Row("u1", "{\"v\":5}", 5) }, None);
            Assert.Equal(1, first.Applied);
            Assert.Equal(0, first.Stale);

            StoreCommitResult older = await store.CommitAsync(new[] { Row("u1", "{\"v\":3}", 3) }, None);
            Assert.Equal(0, older.Applied);
            Assert.Equal(1, older.Stale);
            ProfileRow stored = await GetOne(store, "u1");
            Assert.Equal("{\"v\":5}", stored.Json);
            Assert.Equal(5, stored.Version);

            StoreCommitResult newer = await store.CommitAsync(new[] { Row("u1", "{\"v\":9}", 9) }, None);
            Assert.Equal(1, newer.Applied);
            Assert.Equal(0, newer.Stale);
            stored = await GetOne(store, "u1");
            Assert.Equal("{\"v\":9}", stored.Json);
            Assert.Equal(9, stored.Version);
            Assert.False(stored.IsDeleted);
            Assert.InRange(stored.UpdatedAt.Value, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(5));
            Assert.Equal(TimeSpan.Zero, stored.UpdatedAt.Value.Offset);

            // Out of order within one batch: only the newest wins, whatever the order.
            StoreCommitResult mixed = await store.CommitAsync(new[] { Row("u1", "{\"v\":12}", 12), Row("u1", "{\"v\":10}", 10) }, None);
            Assert.Equal(1, mixed.Applied);
            Assert.Equal(1, mixed.Stale);
            Assert.Equal(12, (await GetOne(store, "u1")).Version);
            Assert.Equal("{\"v\":12}", (await GetOne(store, "u1")).Json);
        }

        [Fact]
        public async Task Equal_version_is_stale()
        {
            using var target = CreateTarget();
            using var store = target.Open();

            await store.CommitAsync(new[] { Row("u1", "{\"a\":1}", 4) }, None);
            StoreCommitResult again = await store.CommitAsync(new[] { Row("u1", "{\"a\":2}", 4) }, None);

            Assert.Equal(0, again.Applied);
            Assert.Equal(1, again.Stale);
            Assert.Equal("{\"a\":1}", (await GetOne(store, "u1")).Json);
        }

        [Fact]
        public async Task Tombstone_blocks_lower_version_and_higher_version_revives()
        {
            using var target = CreateTarget();
            using var store = target.Open();

            await store.CommitAsync(new[] { Row("u1", "{\"x\":1}", 1) }, None);
            StoreCommitResult deleted = await store.CommitAsync(new[] { Tombstone("u1", 2) }, None);
            Assert.Equal(1, deleted.Applied);

            ProfileRow tomb = await GetOne(store, "u1");
            Assert.NotNull(tomb); // tombstones are returned
            Assert.True(tomb.IsDeleted);
            Assert.Null(tomb.Json);
            Assert.Equal(2, tomb.Version);
            Assert.Equal(0L, await store.CountAsync(None));
            Assert.True(await target.RawDeletedAsync("u1"));
            Assert.True(await target.RawJsonIsNullAsync("u1"));

            // A stale replay of the old value cannot bring the profile back, nor can an equal version.
            StoreCommitResult stale = await store.CommitAsync(new[] { Row("u1", "{\"x\":1}", 1), Row("u1", "{\"x\":2}", 2) }, None);
            Assert.Equal(0, stale.Applied);
            Assert.Equal(2, stale.Stale);
            Assert.True((await GetOne(store, "u1")).IsDeleted);

            StoreCommitResult revived = await store.CommitAsync(new[] { Row("u1", "{\"x\":3}", 3) }, None);
            Assert.Equal(1, revived.Applied);
            ProfileRow back = await GetOne(store, "u1");
            Assert.False(back.IsDeleted);
            Assert.Equal("{\"x\":3}", back.Json);
            Assert.Equal(3, back.Version);
            Assert.Equal(1L, await store.CountAsync(None));
            Assert.False(await target.RawDeletedAsync("u1"));

            // A tombstone for an id never seen is recorded too (and blocks older writes).
            await store.CommitAsync(new[] { Tombstone("ghost", 7) }, None);
            StoreCommitResult ghost = await store.CommitAsync(new[] { Row("ghost", "{}", 6) }, None);
            Assert.Equal(1, ghost.Stale);
            Assert.True((await GetOne(store, "ghost")).IsDeleted);
        }

        public static IEnumerable<object[]> ByteExactJson() => new[]
        {
            new object[] { """{"n":12345678901234567890,"f":1.0,"e":1e3,"u":"\u00e9 ü 🙂","q":"a\"b"}""" },
            new object[] { """{"big":-123456789012345678901234567890.000100e-0005,"small":1E+2,"neg":-0.0,"z":0}""" },
            new object[] { """{"esc":"\\ \/ \b\f\n\r\t \u0000 \ud83d\ude00 \u20AC","raw":"日本語 ñ Ω 🙂 \u200b"}""" },
            new object[] { "{ \"spaced\" :\t[ 1 , 2 ,{\"a\" : null} ] ,\n\"b\":true }" },
            new object[] { """{"z":1,"a":2,"m":{"y":[],"b":{}}}""" },
        };

        [Theory]
        [MemberData(nameof(ByteExactJson))]
        public async Task Json_text_is_stored_byte_for_byte(string json)
        {
            using var target = CreateTarget();
            using (var store = target.Open())
            {
                await store.CommitAsync(new[] { Row("u1", json, 1) }, None);
                Assert.Equal(json, (await GetOne(store, "u1")).Json, StringComparer.Ordinal);
                IReadOnlyList<ProfileRow> page = await store.GetPageAsync(null, 10, None);
                Assert.Equal(json, Assert.Single(page).Json, StringComparer.Ordinal);
            }

            // A fresh instance reads the same, and the database holds exactly the UTF-8 of the text.
            using (var reopened = target.Open())
                Assert.Equal(json, (await GetOne(reopened, "u1")).Json, StringComparer.Ordinal);
            Assert.Equal(Encoding.UTF8.GetBytes(json), await target.RawJsonBytesAsync("u1"));
        }

        [Fact]
        public async Task Batch_of_10000_rows_commits_in_one_call()
        {
            using var target = CreateTarget();
            using var store = target.Open();

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
            Assert.Equal("{\"i\":42,\"b\":2}", (await GetOne(store, "user-42")).Json);
            Assert.Equal("{\"i\":43}", (await GetOne(store, "user-43")).Json);

            StoreCommitResult empty = await store.CommitAsync(Array.Empty<ProfileRow>(), None);
            Assert.Equal(0, empty.Applied);
            Assert.Equal(0, empty.Stale);
        }

        [Fact]
        public async Task GetAsync_spans_more_than_500_ids()
        {
            using var target = CreateTarget();
            using var store = target.Open();

            const int count = 1_234;
            await store.CommitAsync(Enumerable.Range(0, count).Select(i => Row("id-" + i, "{\"i\":" + i + "}", i + 1)).ToArray(), None);
            await store.CommitAsync(new[] { Tombstone("id-7", 100) }, None);

            var ask = new List<string>();
            ask.AddRange(Enumerable.Range(0, count).Select(i => "id-" + i));
            ask.AddRange(Enumerable.Range(0, 300).Select(i => "missing-" + i)); // never stored: absent
            ask.AddRange(Enumerable.Range(0, 50).Select(i => "id-" + i)); // duplicates are fine

            IReadOnlyDictionary<string, ProfileRow> got = await store.GetAsync(ask, None);

            Assert.Equal(count, got.Count);
            for (int i = 0; i < count; i++)
            {
                ProfileRow row = got["id-" + i];
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
            using var target = CreateTarget();
            using var store = target.Open();

            await store.CommitAsync(new[] { Row("a", "{}", 1), Row("b", "{}", 1), Row("c", "{}", 1), Tombstone("d", 1) }, None);
            Assert.Equal(3L, await store.CountAsync(None));

            await store.CommitAsync(new[] { Tombstone("b", 2) }, None);
            Assert.Equal(2L, await store.CountAsync(None));

            IReadOnlyDictionary<string, ProfileRow> all = await store.GetAsync(new[] { "a", "b", "c", "d" }, None);
            Assert.Equal(4, all.Count);
        }

        [Fact]
        public async Task GetPageAsync_walks_every_row_in_ordinal_id_order()
        {
            using var target = CreateTarget();
            using var store = target.Open();

            // Case, digits, punctuation of the id alphabet: ordinal order differs from any linguistic one.
            string[] ids = { "b", "B", "a", "A", "_x", "-y", ".z", "@w", "10", "9", "a.b", "a-b", "a_b", "Zed", "zed", "user@example.com" };
            await store.CommitAsync(ids.Select((id, i) => Row(id, "{\"i\":" + i + "}", 1)).ToArray(), None);
            await store.CommitAsync(new[] { Tombstone("a", 5) }, None);

            var walked = new List<ProfileRow>();
            string after = null;
            while (true)
            {
                IReadOnlyList<ProfileRow> page = await store.GetPageAsync(after, 3, None);
                Assert.InRange(page.Count, 0, 3);
                if (page.Count == 0) break;
                walked.AddRange(page);
                after = page[page.Count - 1].UserId;
            }

            string[] expected = ids.OrderBy(x => x, StringComparer.Ordinal).ToArray();
            Assert.Equal(expected, walked.Select(r => r.UserId).ToArray());
            Assert.True(walked.Single(r => r.UserId == "a").IsDeleted); // tombstones included
            Assert.Equal(5, walked.Single(r => r.UserId == "a").Version);
            Assert.Empty(await store.GetPageAsync("zzz", 10, None));
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.GetPageAsync(null, 0, None));
        }

        [Fact]
        public async Task Concurrent_committers_with_out_of_order_versions_never_move_a_row_backwards()
        {
            using var target = CreateTarget();
            const int ids = 40;
            int versions = 30; // not const: the final-state check below depends on it
            // Every (id, version) pair, shuffled, split over 4 committers (each its own store instance),
            // each committing small overlapping batches at the same time.
            var random = new Random(1234);
            var all = (from v in Enumerable.Range(1, versions) from i in Enumerable.Range(0, ids)
                       select Row("c" + i, v % 7 == 0 ? null : "{\"id\":" + i + ",\"v\":" + v + "}", v))
                      .OrderBy(_ => random.Next()).ToList();
            var stores = Enumerable.Range(0, 4).Select(_ => target.Open()).ToArray();
            try
            {
                int applied = 0, stale = 0;
                var observed = new Dictionary<string, long>();
                var violations = new List<string>();
                var watcher = Task.Run(async () =>
                {
                    // A reader that checks, while the committers run, that no stored version ever decreases.
                    using var reader = target.Open();
                    var ask = Enumerable.Range(0, ids).Select(i => "c" + i).ToArray();
                    for (int round = 0; round < 40; round++)
                    {
                        IReadOnlyDictionary<string, ProfileRow> rows;
                        try { rows = await reader.GetAsync(ask, None); }
                        catch (StoreUnavailableException) { continue; } // SQLite: a busy writer
                        foreach (var row in rows.Values)
                        {
                            lock (observed)
                            {
                                if (observed.TryGetValue(row.UserId, out long seen) && row.Version < seen)
                                    violations.Add(row.UserId + " went from " + seen + " to " + row.Version);
                                observed[row.UserId] = row.Version;
                            }
                        }
                        await Task.Delay(5);
                    }
                });
                var committers = stores.Select((store, s) => Task.Run(async () =>
                {
                    var mine = all.Where((_, n) => n % stores.Length == s).ToList();
                    for (int start = 0; start < mine.Count; start += 25)
                    {
                        var batch = mine.Skip(start).Take(25).ToArray();
                        while (true)
                        {
                            try
                            {
                                StoreCommitResult r = await store.CommitAsync(batch, None);
                                Interlocked.Add(ref applied, r.Applied);
                                Interlocked.Add(ref stale, r.Stale);
                                break;
                            }
                            catch (StoreUnavailableException)
                            {
                                // Busy (SQLite) or a deadlock / serialization failure (PostgreSQL): retry, as the flusher does.
                                await Task.Delay(1 + s * 3);
                            }
                        }
                    }
                })).ToArray();
                await Task.WhenAll(committers);
                await watcher;

                Assert.Empty(violations);
                Assert.Equal(all.Count, applied + stale);
                Assert.InRange(applied, ids, all.Count);
                using var check = target.Open();
                var final = await check.GetAsync(Enumerable.Range(0, ids).Select(i => "c" + i).ToArray(), None);
                Assert.Equal(ids, final.Count);
                foreach (var row in final.Values)
                {
                    Assert.Equal(versions, row.Version); // the newest version won everywhere
                    int i = int.Parse(row.UserId.Substring(1));
                    if (versions % 7 == 0) Assert.True(row.IsDeleted);
                    else Assert.Equal("{\"id\":" + i + ",\"v\":" + versions + "}", row.Json);
                }
            }
            finally
            {
                foreach (var s in stores) s.Dispose();
            }
        }

        [Fact]
        public async Task Newer_schema_version_makes_first_use_throw()
        {
            using var target = CreateTarget();
            await target.CreateSchemaTableAsync(99);

            using var store = target.Open();
            InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => store.CountAsync(None));
            Assert.Contains("99", ex.Message);
            Assert.Contains(target.ExpectedDescription.Substring(target.ExpectedDescription.IndexOf(':') + 1), ex.Message);

            // Every later use refuses too, and nothing else was created.
            await Assert.ThrowsAsync<InvalidOperationException>(() => store.CommitAsync(new[] { Row("u1", "{}", 1) }, None));
            Assert.False(await target.RawUserProfilesTableExistsAsync());
        }

        [Fact]
        public async Task CheckAsync_on_a_fresh_target_creates_nothing()
        {
            using var target = CreateTarget();
            using var store = target.Open();
            await store.CheckAsync(None);
            Assert.False(target.Exists());
            Assert.False(await target.RawSchemaTableExistsAsync());
        }

        [Fact]
        public async Task An_application_table_named_user_profiles_is_refused_before_anything_is_written()
        {
            using var target = CreateTarget();
            await target.ExecuteRawAsync("CREATE TABLE user_profiles(id integer PRIMARY KEY, name text NOT NULL, age integer)");

            using var store = target.Open();
            var ex = await Assert.ThrowsAsync<WriteBehindException>(() => store.CheckAsync(None));
            Assert.Equal(ErrorIds.StoreTableMismatch, ex.ErrorId);
            Assert.Contains("table user_profiles", ex.Message);
            Assert.Contains("no columns user_id, json, version, deleted, updated_at", ex.Message);
            // SQLite's integer primary key is the rowid (it fills itself); PostgreSQL's is NOT NULL without a default.
            Assert.Matches("the columns? (id, )?name (is|are) NOT NULL without a default", ex.Message);
            Assert.Contains("its columns: id, name, age", ex.Message);

            // First use refuses the same way, every time, and writes nothing: no wb_schema beside the table.
            var commit = await Assert.ThrowsAsync<WriteBehindException>(() => store.CommitAsync(new[] { Row("u1", "{}", 1) }, None));
            Assert.Equal(ErrorIds.StoreTableMismatch, commit.ErrorId);
            var read = await Assert.ThrowsAsync<WriteBehindException>(() => store.GetAsync(new[] { "u1" }, None));
            Assert.Equal(ErrorIds.StoreTableMismatch, read.ErrorId);
            Assert.False(await target.RawSchemaTableExistsAsync());
        }

        [Fact]
        public async Task A_user_profiles_table_keyed_otherwise_is_refused()
        {
            using var target = CreateTarget();
            await target.ExecuteRawAsync("CREATE TABLE user_profiles(user_id text NOT NULL, json text NULL, version bigint NOT NULL, deleted boolean NOT NULL, updated_at timestamp NOT NULL)");

            using var store = target.Open();
            var ex = await Assert.ThrowsAsync<WriteBehindException>(() => store.CheckAsync(None));
            Assert.Equal(ErrorIds.StoreTableMismatch, ex.ErrorId);
            Assert.Contains("user_id is not its primary key", ex.Message);
            Assert.False(await target.RawSchemaTableExistsAsync());
        }

        [Fact]
        public async Task A_user_profiles_table_of_the_modules_columns_with_a_numeric_user_id_is_refused()
        {
            // An application's table with the same names: SQLite would store the id 007 as 7 and never find it.
            using var target = CreateTarget();
            await target.ExecuteRawAsync("CREATE TABLE user_profiles(user_id integer PRIMARY KEY, json text NULL, version bigint NOT NULL, deleted boolean NOT NULL, updated_at timestamp NOT NULL)");

            using var store = target.Open();
            var ex = await Assert.ThrowsAsync<WriteBehindException>(() => store.CheckAsync(None));
            Assert.Equal(ErrorIds.StoreTableMismatch, ex.ErrorId);
            Assert.Matches("(?i)user_id is int(eger)?, not", ex.Message);
            var commit = await Assert.ThrowsAsync<WriteBehindException>(() => store.CommitAsync(new[] { Row("007", "{}", 1) }, None));
            Assert.Equal(ErrorIds.StoreTableMismatch, commit.ErrorId);
            Assert.False(await target.RawSchemaTableExistsAsync());
        }

        [Fact]
        public async Task A_user_profiles_table_of_the_modules_columns_with_a_text_version_is_refused()
        {
            // Compared as text, version 10 is older than 9: a newer state would never replace the stored one.
            using var target = CreateTarget();
            await target.ExecuteRawAsync("CREATE TABLE user_profiles(user_id varchar(128) PRIMARY KEY, json text NULL, version text NOT NULL, deleted boolean NOT NULL, updated_at timestamp NOT NULL)");

            using var store = target.Open();
            var ex = await Assert.ThrowsAsync<WriteBehindException>(() => store.CheckAsync(None));
            Assert.Equal(ErrorIds.StoreTableMismatch, ex.ErrorId);
            Assert.Contains("version is text, not", ex.Message, StringComparison.OrdinalIgnoreCase);
            Assert.False(await target.RawSchemaTableExistsAsync());
        }

        [Fact]
        public async Task Cancelled_and_disposed_calls_throw()
        {
            using var target = CreateTarget();
            var store = target.Open();

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
    }
}
