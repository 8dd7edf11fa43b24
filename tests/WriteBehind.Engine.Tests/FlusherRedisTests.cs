using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.Sqlite;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;
using WriteBehind.Engine.Store;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>
    /// The engine against a real Redis and a real SQLite store: the seed scenario, byte-exact merges,
    /// the invariants of DESIGN.md (nothing lost, nothing applied twice, store never backwards, coalescing,
    /// bounded, accounted), poison items, concurrency and failures. Raw StackExchange.Redis commands prove
    /// interop with producers and readers that know nothing of the module.
    /// </summary>
    [Collection(RedisCollection.Name)]
    public sealed class FlusherRedisTests : IAsyncLifetime
    {
        private static readonly UTF8Encoding Utf8 = new UTF8Encoding(false, true);
        private readonly RedisFixture _fixture;
        private RedisTestContext _ctx;

        public FlusherRedisTests(RedisFixture fixture)
        {
            _fixture = fixture;
        }

        public async Task InitializeAsync() => _ctx = await RedisTestContext.CreateAsync(_fixture);

        public async Task DisposeAsync()
        {
            if (_ctx != null) await _ctx.DisposeAsync();
        }

        private WriteBehindConnection Conn => _ctx.Connection;
        private KeyNames Keys => _ctx.Keys;
        private IDatabase Db => _ctx.Db;

        private static KeyValuePair<string, string> P(string id, string json) => new KeyValuePair<string, string>(id, json);

        private Task<FlushResult> FlushAsync(FlushOptions options = null, WriteBehindConnection connection = null) =>
            new Flusher(connection ?? Conn).FlushAsync(options ?? new FlushOptions(), null, CancellationToken.None);

        private async Task<string> HGetAsync(string id)
        {
            var v = await Db.HashGetAsync(Keys.Cache, "user:" + id);
            return v.IsNull ? null : (string)v;
        }

        private async Task<long?> VersionAsync(string id)
        {
            var v = await Db.HashGetAsync(Keys.Versions, "user:" + id);
            return v.IsNull ? (long?)null : (long)v;
        }

        private async Task<ProfileRow> StoredAsync(string id)
        {
            var rows = await Conn.Store.GetAsync(new[] { id }, CancellationToken.None);
            return rows.TryGetValue(id, out var row) ? row : null;
        }

        private static void AssertAccounted(FlushResult r) =>
            Assert.Equal(r.Dequeued, r.Persisted + r.Coalesced + r.DeadLettered + r.InFlight);

        /// <summary>Asserts cache JSON (raw HGET, byte for byte) and store row and versions agree.</summary>
        private async Task AssertPersistedAsync(string id, string expectedJson)
        {
            byte[] raw = await Db.HashGetAsync(Keys.Cache, "user:" + id);
            Assert.NotNull(raw);
            Assert.Equal(expectedJson, Utf8.GetString(raw));
            Assert.Equal(Utf8.GetBytes(expectedJson), raw);
            long? version = await VersionAsync(id);
            Assert.NotNull(version);
            var stored = await StoredAsync(id);
            Assert.NotNull(stored);
            Assert.Equal(expectedJson, stored.Json);
            Assert.Equal(version.Value, stored.Version);
        }

        // ------------------------------------------------------------------------------------------------
        // 1. The seed scenario
        // ------------------------------------------------------------------------------------------------

        [Fact]
        public async Task Seed_scenario_raw_lpush_is_flushed_into_cache_and_store()
        {
            await Conn.SetProfilesAsync(new[]
            {
                P("1001", """{"name":"Alice","age":"30"}"""),
                P("1002", """{"name":"Bob","age":"25"}"""),
            }, queue: true);
            await Conn.ClearQueueAsync();
            Assert.Equal(0, await Db.ListLengthAsync(Keys.Queue));
            Assert.Equal(Keys.Prefix + "write_queue", Keys.Queue);
            Assert.Equal(Keys.Prefix + "user_profiles", Keys.Cache);

            await Db.ListLeftPushAsync(Keys.Queue, """update:user:1001:{"age":"31"}""");

            var result = await FlushAsync();

            Assert.Equal(1, result.Dequeued);
            Assert.Equal(1, result.Persisted);
            Assert.Equal(0, result.Coalesced);
            Assert.Equal(0, result.DeadLettered);
            Assert.Equal(0, await Db.ListLengthAsync(Keys.Queue));
            Assert.Equal("""{"name":"Alice","age":"31"}""", await HGetAsync("1001"));
            Assert.Equal("""{"name":"Bob","age":"25"}""", await HGetAsync("1002"));

            long versionInRedis = (long)await Db.HashGetAsync(Keys.Versions, "user:1001");
            Assert.Equal(2, versionInRedis); // 1 for the set, 1 for the patch
            var stored = await StoredAsync("1001");
            Assert.NotNull(stored);
            Assert.Equal("""{"name":"Alice","age":"31"}""", stored.Json);
            Assert.Equal(versionInRedis, stored.Version);
            Assert.Equal(0, await Db.SortedSetLengthAsync(Keys.Leases));
        }

        // ------------------------------------------------------------------------------------------------
        // 2. Byte-exact values (invariant 4)
        // ------------------------------------------------------------------------------------------------

        [Fact]
        public async Task Merge_keeps_every_other_byte_of_the_profile()
        {
            const string profile =
                """{"big":12345678901234567890,"f":1.0,"e":1e3,"nested":{"a":[1,{"b":"c"}],"d":null},"arr":[1.50,"x",true],"u":"é ü 🙂 \u00e9","q":"say \"hi\"\n","age":"30"}""";
            const string expected =
                """{"big":12345678901234567890,"f":1.0,"e":1e3,"nested":{"a":[1,{"b":"c"}],"d":null},"arr":[1.50,"x",true],"u":"é ü 🙂 \u00e9","q":"say \"hi\"\n","age":"31"}""";
            await Conn.SetProfilesAsync(new[] { P("b1", profile) }, queue: false);
            await Db.ListLeftPushAsync(Keys.Queue, """update:user:b1:{"age":"31"}""");

            var result = await FlushAsync();

            Assert.Equal(1, result.Persisted);
            await AssertPersistedAsync("b1", expected);
            Assert.Equal(2, await VersionAsync("b1"));
        }

        [Fact]
        public async Task Merge_appends_new_fields_matches_escaped_names_keeps_whitespace_replaces_nested_and_creates_missing()
        {
            // raw HSETs: profiles written by another program (no version yet)
            await Db.HashSetAsync(Keys.Cache, new[]
            {
                new HashEntry("user:add", """{"name":"A"}"""),
                new HashEntry("user:esc", """{"name":"A","age":"30"}"""),
                new HashEntry("user:ws", """{ "name" : "A" , "age" : "30" }"""),
                new HashEntry("user:nest", """{"n":{"a":1,"b":[1,2]},"z":0}"""),
                new HashEntry("user:empty", "{}"),
            });
            await Db.ListLeftPushAsync(Keys.Queue, new RedisValue[]
            {
                """update:user:add:{"city":"Paris"}""",
                """update:user:esc:{"\u0061ge":"31"}""",
                """update:user:ws:{"age":"31"}""",
                """update:user:nest:{"n":{"c":2}}""",
                """update:user:missing:{"age":"31"}""",
                """update:user:empty:{"a":1}""",
            });

            var result = await FlushAsync();

            Assert.Equal(6, result.Dequeued);
            Assert.Equal(6, result.Persisted);
            Assert.Equal(0, result.DeadLettered);
            await AssertPersistedAsync("add", """{"name":"A","city":"Paris"}""");
            await AssertPersistedAsync("esc", """{"name":"A","age":"31"}""");
            await AssertPersistedAsync("ws", """{ "name" : "A" , "age" : "31" }""");
            await AssertPersistedAsync("nest", """{"n":{"c":2},"z":0}""");
            await AssertPersistedAsync("missing", """{"age":"31"}""");
            await AssertPersistedAsync("empty", """{"a":1}""");
            Assert.Equal(1, await VersionAsync("missing"));
        }

        [Fact]
        public async Task A_one_member_patch_replaces_a_one_member_profile_only_when_name_and_text_allow_it()
        {
            // lease.lua takes the usual patch ({"name":"value"}, plain ASCII) into a profile that is exactly one
            // plain string member of the same name as the patch's own text; every near miss merges on the text.
            await Db.HashSetAsync(Keys.Cache, new[]
            {
                new HashEntry("user:same", """{"age":"30"}"""),
                new HashEntry("user:other", """{"name":"A"}"""),
                new HashEntry("user:prefix", """{"ag":"30"}"""),
                new HashEntry("user:longer", """{"agee":"30"}"""),
                new HashEntry("user:escname", """{"\u0061ge":"30"}"""),
                new HashEntry("user:escvalue", """{"age":"3\"0"}"""),
                new HashEntry("user:number", """{"age":30}"""),
                new HashEntry("user:trailing", """{"age":"30"} """),
                new HashEntry("user:spaced", """{"age": "30"}"""),
                new HashEntry("user:two", """{"age":"30","x":"y"}"""),
            });
            var ids = new[] { "same", "other", "prefix", "longer", "escname", "escvalue", "number", "trailing", "spaced", "two" };
            await Db.ListLeftPushAsync(Keys.Queue, ids.Select(id => (RedisValue)("update:user:" + id + ":{\"age\":\"31\"}")).ToArray());
            // a profile the batch itself creates, patched again in the same batch
            await Db.ListLeftPushAsync(Keys.Queue, new RedisValue[] { """update:user:twice:{"age":"31"}""", """update:user:twice:{"age":"32"}""" });

            var result = await FlushAsync();

            Assert.Equal(12, result.Dequeued);
            Assert.Equal(0, result.DeadLettered);
            await AssertPersistedAsync("same", """{"age":"31"}""");
            await AssertPersistedAsync("other", """{"name":"A","age":"31"}""");
            await AssertPersistedAsync("prefix", """{"ag":"30","age":"31"}""");
            await AssertPersistedAsync("longer", """{"agee":"30","age":"31"}""");
            await AssertPersistedAsync("escname", """{"\u0061ge":"31"}""");
            await AssertPersistedAsync("escvalue", """{"age":"31"}""");
            await AssertPersistedAsync("number", """{"age":"31"}""");
            await AssertPersistedAsync("trailing", """{"age":"31"} """);
            await AssertPersistedAsync("spaced", """{"age": "31"}""");
            await AssertPersistedAsync("two", """{"age":"31","x":"y"}""");
            await AssertPersistedAsync("twice", """{"age":"32"}""");
            Assert.Equal(1, await VersionAsync("same"));
            Assert.Equal(2, await VersionAsync("twice"));
        }

        // ------------------------------------------------------------------------------------------------
        // 3. Nothing applied twice (invariant 2): a flusher that dies after the lease script merged
        // ------------------------------------------------------------------------------------------------

        // The exact text the engine sends (helpers prepended), so the test runs what a flusher runs.
        private static string LeaseScriptText() => WriteBehind.Engine.Redis.Scripts.Lease.Text;

        /// <summary>Runs lease.lua exactly as the Flusher does, but with an expiry already past, and never
        /// commits or acknowledges: the flusher "died" right after the atomic pop-and-merge.</summary>
        private async Task<(string leaseKey, RedisResult[] raw)> LeaseAndDieAsync(int max)
        {
            string leaseKey = Keys.LeasePrefix + Guid.NewGuid().ToString("N");
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var keys = new RedisKey[] { Keys.Queue, Keys.Cache, Keys.Versions, leaseKey, Keys.Leases, Keys.DeadLetters, Keys.DeadLetterInfo, Keys.Redo, Keys.PendingAge };
            var args = new RedisValue[] { max, now - 1000, now };
            var raw = (RedisResult[])await Db.ScriptEvaluateAsync(LeaseScriptText(), keys, args);
            return (leaseKey, raw);
        }

        [Fact]
        public async Task Crash_after_merge_then_newer_write_recovery_repersists_and_never_reverts()
        {
            await Conn.SetProfilesAsync(new[] { P("1001", """{"name":"Alice","age":"30"}""") }, queue: true);
            await FlushAsync();
            await Db.ListLeftPushAsync(Keys.Queue, """update:user:1001:{"age":"31"}""");

            var (leaseKey, raw) = await LeaseAndDieAsync(10);

            // the lease script popped and merged atomically: { dequeued, dead, leased, superseded, resumed, states }
            Assert.Equal(1, (long)raw[LeaseReply.Dequeued]);
            Assert.Equal(0, (long)raw[LeaseReply.DeadLettered]);
            Assert.Equal(1, (long)raw[LeaseReply.Leased]);
            Assert.Equal(0, (long)raw[LeaseReply.Resumed]);
            var state = Assert.Single(LeaseReply.States(raw));
            Assert.Equal("1001", state.UserId);
            Assert.Equal("""{"name":"Alice","age":"31"}""", state.Json);
            Assert.Equal(2, state.Version);
            Assert.Equal(0, await Db.ListLengthAsync(Keys.Queue));
            Assert.Equal(new[] { """update:user:1001:{"age":"31"}""" }, (await Db.ListRangeAsync(leaseKey)).Select(v => (string)v).ToArray());
            Assert.NotNull(await Db.SortedSetScoreAsync(Keys.Leases, leaseKey));
            Assert.Equal("""{"name":"Alice","age":"31"}""", await HGetAsync("1001"));

            // a newer write to the same field, after the merge and before anyone recovers the lease
            long[] v = await Conn.SetProfilesAsync(new[] { P("1001", """{"name":"Alice","age":"40"}""") }, queue: true);
            Assert.Equal(new long[] { 3 }, v);

            var result = await FlushAsync();

            Assert.True(result.Recovered >= 1, $"Recovered = {result.Recovered}");
            Assert.Equal(1, result.Recovered);
            Assert.Equal(1, result.Dequeued); // the set item
            AssertAccounted(result);
            Assert.Equal("""{"name":"Alice","age":"40"}""", await HGetAsync("1001"));
            Assert.Equal(3, await VersionAsync("1001")); // no re-merge: no extra bump
            await AssertPersistedAsync("1001", """{"name":"Alice","age":"40"}""");
            Assert.Equal(0, await Db.SortedSetLengthAsync(Keys.Leases));
            Assert.False(await Db.KeyExistsAsync(leaseKey));
        }

        [Fact]
        public async Task Crash_after_merge_recovery_persists_the_current_cache_state_once()
        {
            await Conn.SetProfilesAsync(new[] { P("7", """{"n":[1],"age":"30"}""") }, queue: false); // v1, nothing queued
            await Db.ListLeftPushAsync(Keys.Queue, """update:user:7:{"age":"31"}""");
            var (leaseKey, _) = await LeaseAndDieAsync(10); // v2, merged, never committed
            Assert.Null(await StoredAsync("7"));

            // the newer state reaches only the cache (no queue item): only recovery can persist it
            await Conn.SetProfilesAsync(new[] { P("7", """{"n":[1],"age":"40"}""") }, queue: false); // v3

            var result = await FlushAsync(new FlushOptions { RecoverOnly = true });

            Assert.Equal(1, result.Recovered);
            Assert.Equal(0, result.Dequeued);
            await AssertPersistedAsync("7", """{"n":[1],"age":"40"}""");
            Assert.Equal(3, (await StoredAsync("7")).Version);
            Assert.Equal(0, await Db.SortedSetLengthAsync(Keys.Leases));
            Assert.False(await Db.KeyExistsAsync(leaseKey));

            // a second recovery pass finds nothing to do and changes nothing
            var again = await FlushAsync();
            Assert.Equal(0, again.Recovered);
            Assert.Equal(0, again.Dequeued);
            Assert.Equal(3, await VersionAsync("7"));
        }

        // ------------------------------------------------------------------------------------------------
        // 4. Poison items
        // ------------------------------------------------------------------------------------------------

        [Fact]
        public async Task Poison_items_are_dead_lettered_byte_for_byte_and_never_block_good_ones()
        {
            const string luaText = """{"a":"]]..redis.call('FLUSHALL')..[["}""";
            await Db.StringSetAsync(_ctx.Prefix + "sentinel", "still here");
            await Conn.SetProfilesAsync(new[] { P("1001", """{"name":"Alice"}"""), P("1002", """{"name":"Bob"}""") }, queue: false);

            byte[] B(string s) => Utf8.GetBytes(s);
            byte[] invalidUtf8 = B("update:user:1001:{\"a\":\"").Concat(new byte[] { 0xFF }).Concat(B("\"}")).ToArray();
            byte[] withNul = B("update:user:1001:{\"a\":\"x\0y\"}");
            string longId = new string('a', 129);

            // (bytes, poison?) in queue order, oldest first
            var items = new List<(byte[] bytes, bool poison)>
            {
                (B("""update:user:2001:{"g":1}"""), false),
                (B("""updat:user:1:{}"""), true),
                (B("""update:user::{"a":1}"""), true),
                (B("""update:user:2002:{"g":2}"""), false),
                (B("""update:user:10 01:{"a":1}"""), true),
                (B("""update:user:1001:{"a":}"""), true),
                (B("""update:user:1001:[1,2]"""), true),
                (B(""), true),
                (B("""update:user:2003:{"g":3}"""), false),
                (B("""update:user:1001:{"a":1} x"""), true),
                (B("""update:user:1001:{"a":1,"a":2}"""), true),
                (invalidUtf8, true),
                (B("""update:user:2001:{"h":1}"""), false),
                (withNul, true),
                (B("update:user:" + longId + ":{\"a\":1}"), true),
                (B("update:user:1001:" + luaText), false),
                (B("set:user:1001:abc"), true),
                (B("delete:user:1001:x1"), true),
                (B("""update:user:2004:{"g":4}"""), false),
            };
            foreach (var (bytes, _) in items)
                await Db.ListLeftPushAsync(Keys.Queue, bytes);

            var result = await FlushAsync();

            int poisonCount = items.Count(i => i.poison);
            Assert.Equal(13, poisonCount);
            Assert.Equal(items.Count, result.Dequeued);
            Assert.Equal(poisonCount, result.DeadLettered);
            Assert.Equal(5, result.Persisted); // 2001, 2002, 2003, 2004, 1001
            Assert.Equal(1, result.Coalesced); // second patch of 2001
            Assert.Equal(result.Dequeued, result.Persisted + result.Coalesced + result.DeadLettered);
            Assert.Equal(0, await Db.ListLengthAsync(Keys.Queue));

            // the dead-letter list, LPUSHed: newest first; every item byte for byte
            var dead = (await Db.ListRangeAsync(Keys.DeadLetters, 0, -1)).Select(v => (byte[])v).ToList();
            var expectedDead = items.Where(i => i.poison).Select(i => i.bytes).Reverse().ToList();
            Assert.Equal(expectedDead.Count, dead.Count);
            for (int i = 0; i < dead.Count; i++)
                Assert.Equal(expectedDead[i], dead[i]);

            var letters = await Conn.GetDeadLettersAsync();
            Assert.Equal(poisonCount, letters.Length);
            var poisonInOrder = items.Where(i => i.poison).ToList();
            for (int i = 0; i < letters.Length; i++)
            {
                Assert.False(string.IsNullOrWhiteSpace(letters[i].Reason), $"dead letter {i} has no reason");
                Assert.Equal(1, letters[i].Attempts);
                if (!poisonInOrder[i].bytes.Contains((byte)0xFF))
                    Assert.Equal(Utf8.GetString(poisonInOrder[i].bytes), letters[i].Item);
            }

            // the good ones around them
            await AssertPersistedAsync("2001", """{"g":1,"h":1}""");
            await AssertPersistedAsync("2002", """{"g":2}""");
            await AssertPersistedAsync("2003", """{"g":3}""");
            await AssertPersistedAsync("2004", """{"g":4}""");
            // Lua-meaningful text is data: applied literally, nothing flushed
            await AssertPersistedAsync("1001", """{"name":"Alice","a":"]]..redis.call('FLUSHALL')..[["}""");
            Assert.Equal("still here", (string)await Db.StringGetAsync(_ctx.Prefix + "sentinel"));
            Assert.Equal("""{"name":"Bob"}""", await HGetAsync("1002"));
            Assert.Equal(2, await VersionAsync("1001"));
        }

        [Fact]
        public async Task Raw_items_the_cmdlets_refuse_are_dead_lettered_and_every_item_is_accounted_for_honestly()
        {
            await Conn.SetProfilesAsync(new[] { P("k1", """{"a":1}""") }, queue: false); // v1, cached, nothing queued
            var items = new[]
            {
                """update:user:6005:{"n":{"b":1,"b":2}}""",   // duplicate names in a nested object
                "set:user:k1:99999999999999999999",            // a version no 64-bit integer holds
                "delete:user:k1:007",                          // leading zeros
                "set:user:k1:0",
                "set:user:77:3",                               // nothing cached, no version
                "delete:user:78:4",
                "set:user:79",
                "delete:user:80",                              // a deferred delete with nothing to delete
                "set:user:k1:1",                               // persists k1
            };
            foreach (var item in items) await Db.ListLeftPushAsync(Keys.Queue, item);

            var result = await FlushAsync();

            AssertAccounted(result);
            Assert.Equal(9, result.Dequeued);
            Assert.Equal(7, result.DeadLettered);
            Assert.Equal(1, result.Persisted);
            Assert.Equal(1, result.Coalesced); // the delete of 80: no store write
            Assert.Equal(0, result.StaleSkipped);
            var reasons = (await Conn.GetDeadLettersAsync()).ToDictionary(l => l.Item, l => l.Reason);
            Assert.Equal("invalid JSON patch: duplicate member name \"b\" at offset 12", reasons[items[0]]);
            const string version = " item: expected a version after the id (1 to 9007199254740991, digits without sign or leading zero)";
            Assert.Equal("set" + version, reasons[items[1]]);
            Assert.Equal("delete" + version, reasons[items[2]]);
            Assert.Equal("set" + version, reasons[items[3]]);
            Assert.Equal("no cached profile and no version for user 77: nothing to persist", reasons[items[4]]);
            Assert.Equal("no cached profile and no version for user 78: nothing to persist", reasons[items[5]]);
            Assert.Equal("no cached profile and no version for user 79: nothing to persist", reasons[items[6]]);
            // the C# validator (Add-WriteQueueItem) refuses the poison with the same reasons
            for (int i = 0; i < 4; i++)
            {
                Assert.False(QueueItem.TryParse(items[i], out _, out string reason));
                Assert.Equal(reasons[items[i]], reason);
            }
            Assert.Null(await HGetAsync("6005"));
            Assert.False(reasons.ContainsKey("delete:user:80"));
            foreach (var id in new[] { "6005", "77", "78", "79", "80" })
            {
                Assert.Null(await StoredAsync(id));
                Assert.Null(await VersionAsync(id));
            }
            await AssertPersistedAsync("k1", """{"a":1}""");
        }

        [Fact]
        public async Task A_set_or_delete_of_a_profile_an_earlier_item_of_the_batch_created_is_persisted()
        {
            // the check for "nothing to persist" looks at the state the batch has made so far
            await Db.ListLeftPushAsync(Keys.Queue, """update:user:n1:{"a":1}""");
            await Db.ListLeftPushAsync(Keys.Queue, "set:user:n1");
            await Db.ListLeftPushAsync(Keys.Queue, "delete:user:n1");
            await Db.ListLeftPushAsync(Keys.Queue, "delete:user:n1:2");

            var result = await FlushAsync();

            AssertAccounted(result);
            Assert.Equal(0, result.DeadLettered);
            Assert.Equal(1, result.Persisted);
            Assert.Equal(3, result.Coalesced);
            var tomb = await StoredAsync("n1");
            Assert.Null(tomb.Json);
            Assert.Equal(2, tomb.Version);
        }

        // ------------------------------------------------------------------------------------------------
        // 5. Coalescing (invariant 6)
        // ------------------------------------------------------------------------------------------------

        [Fact]
        public async Task Fifty_patches_to_one_profile_cost_one_store_write()
        {
            await Conn.SetProfilesAsync(new[] { P("c1", """{"name":"Z","n":0}""") }, queue: false); // v1
            var pushes = new List<RedisValue>();
            for (int i = 1; i <= 50; i++)
                pushes.Add(i % 10 == 0 ? $"update:user:c1:{{\"n\":{i},\"k{i}\":\"v{i}\"}}" : $"update:user:c1:{{\"n\":{i}}}");
            pushes.Insert(25, """update:user:c2:{"x":"y"}""");
            foreach (var p in pushes) await Db.ListLeftPushAsync(Keys.Queue, p);

            var result = await FlushAsync(new FlushOptions { BatchSize = 1000 });

            Assert.Equal(51, result.Dequeued);
            Assert.Equal(1, result.Batches);
            Assert.Equal(2, result.Persisted);
            Assert.Equal(49, result.Coalesced);
            Assert.Equal(0, result.DeadLettered);
            await AssertPersistedAsync("c1", """{"name":"Z","n":50,"k10":"v10","k20":"v20","k30":"v30","k40":"v40","k50":"v50"}""");
            Assert.Equal(51, await VersionAsync("c1")); // 1 set + 50 patches
            Assert.Equal(51, (await StoredAsync("c1")).Version);
            await AssertPersistedAsync("c2", """{"x":"y"}""");
            Assert.Equal(1, await VersionAsync("c2"));
        }

        [Fact]
        public async Task A_batch_whose_states_span_several_reply_strings_is_read_whole_and_in_order()
        {
            // lease.lua returns the touched states packed in strings of about 32 KB: 80 profiles of ~1 KB
            // make three of them; every state must come back, once, in first-touch order, and be persisted.
            string filler = new string('x', 1000);
            var items = new List<string>();
            for (int i = 0; i < 80; i++) items.Add($"update:user:big{i}:{{\"n\":\"{i}\",\"f\":\"{filler}\"}}");
            items.Add("""update:user:big3:{"n":"again"}""");
            items.Add("delete:user:nobody");
            foreach (var item in items) await Db.ListLeftPushAsync(Keys.Queue, item);

            var (_, raw) = await LeaseAndDieAsync(1000);

            Assert.True(raw.Length >= LeaseReply.Counts + 3, $"expected the states in 3 or more strings, got {raw.Length - LeaseReply.Counts}");
            Assert.Equal(82, (long)raw[LeaseReply.Dequeued]);
            Assert.Equal(82, (long)raw[LeaseReply.Leased]);
            var states = LeaseReply.States(raw);
            Assert.Equal(Enumerable.Range(0, 80).Select(i => "big" + i), states.Select(r => r.UserId));
            Assert.Equal($"{{\"n\":\"again\",\"f\":\"{filler}\"}}", states[3].Json);
            Assert.Equal(2, states[3].Version);
            Assert.All(states.Where(r => r.UserId != "big3"), r => Assert.Equal(1, r.Version));

            // the lease's flusher "died": recovery persists what the reply said
            var result = await FlushAsync(new FlushOptions { LeaseDuration = TimeSpan.FromSeconds(30) });
            Assert.Equal(82, result.Recovered);
            await AssertPersistedAsync("big79", $"{{\"n\":\"79\",\"f\":\"{filler}\"}}");
            await AssertPersistedAsync("big3", $"{{\"n\":\"again\",\"f\":\"{filler}\"}}");
        }

        [Fact]
        public async Task The_lease_reply_tells_a_deleted_profile_from_an_empty_cached_text()
        {
            // a deleted profile comes back as a tombstone (null JSON); a cached text, even an empty one
            // (written by a raw HSET), comes back as that text
            await Db.HashSetAsync(Keys.Cache, "user:e", "");
            await Db.HashSetAsync(Keys.Versions, "user:e", 1);
            await Conn.SetProfilesAsync(new[] { P("f", """{"v":"1"}""") }, queue: false);
            await Db.ListLeftPushAsync(Keys.Queue, "set:user:e:1");
            await Db.ListLeftPushAsync(Keys.Queue, "delete:user:f");

            var (_, raw) = await LeaseAndDieAsync(10);

            var states = LeaseReply.States(raw).ToDictionary(r => r.UserId);
            Assert.Equal("", states["e"].Json);
            Assert.False(states["e"].IsDeleted);
            Assert.Equal(1, states["e"].Version);
            Assert.Null(states["f"].Json);
            Assert.Equal(2, states["f"].Version);
        }

        [Fact]
        public void The_lease_reply_reader_and_the_scripts_agree_on_the_state_stride()
        {
            // one definition each side: redo.lua's STATE_TOKENS (add_state writes that many tokens a state)
            // and LeaseReply.TokensPerState (the reader takes that many)
            var text = WriteBehind.Engine.Redis.Scripts.Lease.Text;
            var m = System.Text.RegularExpressions.Regex.Match(text, @"local STATE_TOKENS = (\d+)");
            Assert.True(m.Success, "redo.lua defines no STATE_TOKENS");
            Assert.Equal(LeaseReply.TokensPerState, int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            var add = System.Text.RegularExpressions.Regex.Match(text, @"local function add_state\(out, n, field, version_text, json\)[\s\S]*?return n \+ (\d+)");
            Assert.True(add.Success, "redo.lua's add_state not found");
            Assert.Equal(2 * LeaseReply.TokensPerState, int.Parse(add.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        }

        // ------------------------------------------------------------------------------------------------
        // 6. Deletes are versioned tombstones (invariant 3)
        // ------------------------------------------------------------------------------------------------

        [Fact]
        public async Task Deleted_profile_is_a_tombstone_and_a_stale_patch_never_revives_it()
        {
            await Conn.SetProfilesAsync(new[] { P("d1", """{"name":"Dora","age":"30"}""") }, queue: true); // v1
            await FlushAsync();
            await AssertPersistedAsync("d1", """{"name":"Dora","age":"30"}""");

            // a patch queued before the delete, flushed after it
            await Db.ListLeftPushAsync(Keys.Queue, """update:user:d1:{"age":"99"}""");
            bool[] removed = await Conn.RemoveProfilesAsync(new[] { "d1" }); // v2
            Assert.Equal(new[] { true }, removed);
            Assert.Null(await HGetAsync("d1"));

            var result = await FlushAsync(new FlushOptions { BatchSize = 1 });

            Assert.Equal(2, result.Dequeued);
            Assert.Equal(0, result.DeadLettered);
            AssertAccounted(result);
            Assert.Null(await HGetAsync("d1"));
            Assert.Equal(2, await VersionAsync("d1"));
            var tomb = await StoredAsync("d1");
            Assert.NotNull(tomb);
            Assert.Null(tomb.Json);
            Assert.True(tomb.IsDeleted);
            Assert.Equal(2, tomb.Version);

            // a patch pushed after the delete does not revive it either
            await Db.ListLeftPushAsync(Keys.Queue, """update:user:d1:{"age":"100"}""");
            await FlushAsync();
            Assert.Null(await HGetAsync("d1"));
            Assert.False(await Db.HashExistsAsync(Keys.Cache, "user:d1"));
            tomb = await StoredAsync("d1");
            Assert.Null(tomb.Json);
            Assert.Equal(2, tomb.Version);
            Assert.Equal(0, await Conn.Store.CountAsync(CancellationToken.None));

            // only a new set brings it back, at a higher version
            long[] v = await Conn.SetProfilesAsync(new[] { P("d1", """{"name":"Dora II"}""") }, queue: true);
            Assert.Equal(new long[] { 3 }, v);
            await FlushAsync();
            await AssertPersistedAsync("d1", """{"name":"Dora II"}""");
            Assert.Equal(3, (await StoredAsync("d1")).Version);
        }

        [Fact]
        public async Task Malformed_patch_to_a_deleted_profile_is_still_dead_lettered()
        {
            // DESIGN: "Anything that does not parse is a poison item: it goes to the dead-letter list with
            // its original text byte for byte and a reason. It never blocks the items behind it and is never dropped."
            await Conn.SetProfilesAsync(new[] { P("x1", """{"a":1}""") }, queue: true); // v1
            await Conn.RemoveProfilesAsync(new[] { "x1" });                                // v2, tombstone
            await FlushAsync();
            const string poison = """update:user:x1:{"a":}""";
            await Db.ListLeftPushAsync(Keys.Queue, poison);

            var result = await FlushAsync();

            Assert.Equal(1, result.Dequeued);
            Assert.Equal(1, result.DeadLettered);
            Assert.Equal(new[] { poison }, (await Db.ListRangeAsync(Keys.DeadLetters, 0, -1)).Select(v => (string)v).ToArray());
            Assert.Null(await HGetAsync("x1"));
            Assert.Equal(2, await VersionAsync("x1"));
        }

        [Fact]
        public async Task Raw_deferred_delete_removes_cached_profile_and_persists_tombstone()
        {
            await Conn.SetProfilesAsync(new[] { P("r1", """{"a":1}""") }, queue: true); // v1
            await Db.ListLeftPushAsync(Keys.Queue, "delete:user:r1");

            var result = await FlushAsync();

            Assert.Equal(2, result.Dequeued);
            Assert.Equal(1, result.Persisted);
            Assert.Equal(1, result.Coalesced);
            Assert.Null(await HGetAsync("r1"));
            Assert.Equal(2, await VersionAsync("r1"));
            var tomb = await StoredAsync("r1");
            Assert.Null(tomb.Json);
            Assert.Equal(2, tomb.Version);
        }

        [Fact]
        public async Task Set_profiles_without_versions_gets_one_count_and_writes_the_same_versions_and_persists()
        {
            // Set-UserProfile without -PassThru: the script replies with how many it wrote, not a version each
            // (one integer instead of a chunk's worth), and writes cache, versions and queued persists as ever.
            await Conn.SetProfilesAsync(new[] { P("nv1", """{"v":"1"}""") }, queue: true);
            var keys = new RedisKey[] { Keys.Cache, Keys.Versions, Keys.Queue, Keys.Redo, Keys.PendingAge };
            var reply = await Scripts.SetProfiles.EvaluateAsync(Db, keys,
                new RedisValue[] { "1", 0, "0", "user:nv1", """{"v":"2"}""", "user:nv2", """{"v":"1"}""", "user:nv1", """{"v":"3"}""" });
            Assert.Equal(ResultType.Integer, reply.Resp2Type);
            Assert.Equal(3, (long)reply);
            var versions = await Conn.SetProfilesAsync(new[] { P("nv2", """{"v":"2"}"""), P("nv3", """{"v":"1"}""") }, queue: false, withVersions: false);
            Assert.Equal(new long[] { 0, 0 }, versions);
            Assert.Equal("""{"v":"3"}""", await HGetAsync("nv1"));
            Assert.Equal(3, await VersionAsync("nv1"));
            Assert.Equal(2, await VersionAsync("nv2"));
            Assert.Equal("""{"v":"2"}""", await HGetAsync("nv2"));
            Assert.Equal(1, await VersionAsync("nv3"));
            var queued = (await Db.ListRangeAsync(Keys.Queue, 0, -1)).Select(v => (string)v).Reverse().ToArray();
            Assert.Equal(new[] { "set:user:nv1:1", "set:user:nv1:2", "set:user:nv2:1", "set:user:nv1:3" }, queued);
            var flush = await FlushAsync();
            Assert.Null(flush.Error);
            Assert.Equal(3, (await StoredAsync("nv1")).Version);
            Assert.Equal("""{"v":"2"}""", (await StoredAsync("nv2")).Json);
        }

        // ------------------------------------------------------------------------------------------------
        // 7. Order across batches
        // ------------------------------------------------------------------------------------------------

        [Fact]
        public async Task Patches_apply_oldest_first_across_batches()
        {
            for (int i = 1; i <= 10; i++)
                await Db.ListLeftPushAsync(Keys.Queue, $"update:user:o1:{{\"v\":\"{i}\"}}");

            // One lease per store commit: every batch is its own transaction.
            var result = await FlushAsync(new FlushOptions { BatchSize = 3, CommitSize = 3 });

            Assert.Equal(10, result.Dequeued);
            Assert.Equal(4, result.Batches);
            Assert.Equal(4, result.Persisted); // one per batch
            Assert.Equal(6, result.Coalesced);
            await AssertPersistedAsync("o1", """{"v":"10"}""");
            Assert.Equal(10, await VersionAsync("o1"));
        }

        [Fact]
        public async Task Leases_grouped_into_one_commit_coalesce_across_batches()
        {
            for (int i = 1; i <= 10; i++)
                await Db.ListLeftPushAsync(Keys.Queue, $"update:user:o3:{{\"v\":\"{i}\"}}");

            var result = await FlushAsync(new FlushOptions { BatchSize = 3, CommitSize = 1000 });

            Assert.Equal(10, result.Dequeued);
            Assert.Equal(4, result.Batches);
            Assert.Equal(1, result.Persisted); // four leases, one store write of the latest state
            Assert.Equal(9, result.Coalesced);
            await AssertPersistedAsync("o3", """{"v":"10"}""");
            Assert.Equal(10, await VersionAsync("o3"));
            Assert.Equal(0, await Db.SortedSetLengthAsync(Keys.Leases));
        }

        [Fact]
        public async Task Patches_apply_oldest_first_within_a_batch()
        {
            for (int i = 1; i <= 10; i++)
                await Db.ListLeftPushAsync(Keys.Queue, $"update:user:o2:{{\"v\":\"{i}\",\"k{i}\":{i}}}");

            var result = await FlushAsync(new FlushOptions { BatchSize = 1000 });

            Assert.Equal(1, result.Batches);
            Assert.Equal(1, result.Persisted);
            Assert.Equal(9, result.Coalesced);
            // new fields are appended in the order the patches were queued
            await AssertPersistedAsync("o2", """{"v":"10","k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10}""");
        }

        // ------------------------------------------------------------------------------------------------
        // 8. Concurrent flushers
        // ------------------------------------------------------------------------------------------------

        private sealed class Model
        {
            public string Json;
            public long Version;
        }

        private static string MergeCounter(string json, long counter)
        {
            if (json.Contains("\"c\":"))
                return Regex.Replace(json, "\"c\":\\d+", "\"c\":" + counter);
            return json == "{}" ? "{\"c\":" + counter + "}" : json.Substring(0, json.Length - 1) + ",\"c\":" + counter + "}";
        }

        [Fact]
        public async Task Four_flushers_in_parallel_leave_store_equal_to_cache()
        {
            const int total = 20_000;
            const int idCount = 500;
            var rnd = new Random(12345);
            string Id(int i) => "u" + i.ToString("D3");
            var model = new Dictionary<string, Model>();
            var counters = new Dictionary<string, long>();
            var deferred = new List<(string id, long counter)>();
            int produced = 0, setSeq = 0;
            Model M(string id) => model.TryGetValue(id, out var m) ? m : model[id] = new Model();

            while (produced < total)
            {
                int roll = rnd.Next(100);
                int run = Math.Min(1 + rnd.Next(40), total - produced);
                if (roll < 70)
                {
                    var values = new RedisValue[run];
                    for (int k = 0; k < run; k++)
                    {
                        string id = Id(rnd.Next(idCount));
                        long c = counters.TryGetValue(id, out var prev) ? prev + 1 : 1;
                        counters[id] = c;
                        values[k] = $"update:user:{id}:{{\"c\":{c}}}";
                        deferred.Add((id, c));
                    }
                    await Db.ListLeftPushAsync(Keys.Queue, values);
                }
                else if (roll < 90)
                {
                    var profiles = new List<KeyValuePair<string, string>>(run);
                    for (int k = 0; k < run; k++)
                    {
                        string id = Id(rnd.Next(idCount));
                        string json = $"{{\"id\":\"{id}\",\"s\":{++setSeq}}}";
                        profiles.Add(P(id, json));
                        var m = M(id);
                        m.Json = json;
                        m.Version++;
                    }
                    await Conn.SetProfilesAsync(profiles, queue: true);
                }
                else
                {
                    var ids = new List<string>(run);
                    for (int k = 0; k < run; k++)
                    {
                        string id = Id(rnd.Next(idCount));
                        ids.Add(id);
                        var m = M(id);
                        m.Json = null;
                        m.Version++;
                    }
                    await Conn.RemoveProfilesAsync(ids);
                }
                produced += run;
            }
            Assert.Equal(total, await Db.ListLengthAsync(Keys.Queue));

            // deferred patches take effect at flush time, in queue order; a deleted profile is never revived
            foreach (var (id, c) in deferred)
            {
                var m = M(id);
                if (m.Json == null && m.Version > 0) continue;
                m.Json = MergeCounter(m.Json ?? "{}", c);
                m.Version++;
            }

            var connections = new List<WriteBehindConnection>();
            for (int i = 0; i < 4; i++) connections.Add(await _ctx.ConnectAsync());
            var results = await Task.WhenAll(connections.Select(c => Task.Run(() =>
                new Flusher(c).FlushAsync(new FlushOptions { BatchSize = 250 }, null, CancellationToken.None))));

            Assert.Equal(total, results.Sum(r => r.Dequeued));
            Assert.Equal(total, results.Sum(r => r.Persisted + r.Coalesced + r.DeadLettered));
            Assert.Equal(0, results.Sum(r => r.DeadLettered));
            Assert.Equal(0, results.Sum(r => r.InFlight));
            Assert.Equal(0, await Db.ListLengthAsync(Keys.Queue));
            Assert.Equal(0, await Db.SortedSetLengthAsync(Keys.Leases));
            Assert.Equal(0, await _fixture.CountKeysAsync(Keys.LeasePrefix));
            Assert.Equal(0, await Db.ListLengthAsync(Keys.DeadLetters));

            var allIds = Enumerable.Range(0, idCount).Select(Id).ToList();
            var cached = await Conn.GetCachedAsync(allIds);
            var versions = await Conn.GetVersionsAsync(allIds);
            var stored = await Conn.Store.GetAsync(allIds, CancellationToken.None);
            int mismatches = 0;
            var firstMismatch = new StringBuilder();
            for (int i = 0; i < allIds.Count; i++)
            {
                string id = allIds[i];
                model.TryGetValue(id, out var m);
                string expectJson = m?.Json;
                long? expectVersion = m == null ? (long?)null : m.Version;
                stored.TryGetValue(id, out var row);
                string problem = null;
                if (cached[i]?.Json != expectJson) problem = $"cache {cached[i]?.Json ?? "<none>"} != model {expectJson ?? "<none>"}";
                else if (versions[i] != expectVersion) problem = $"version {versions[i]} != model {expectVersion}";
                else if (m == null && row != null) problem = "store has a row for an untouched id";
                else if (m != null && row == null) problem = "store has no row";
                else if (m != null && (row.Json != expectJson || row.Version != expectVersion))
                    problem = $"store ({row.Json ?? "<tombstone>"}, v{row.Version}) != cache ({expectJson ?? "<tombstone>"}, v{expectVersion})";
                if (problem != null)
                {
                    if (mismatches++ == 0) firstMismatch.Append(id).Append(": ").Append(problem);
                }
            }
            Assert.True(mismatches == 0, $"{mismatches} ids differ; first: {firstMismatch}");
            Assert.True(model.Values.Any(m => m.Json == null), "the mix should contain deleted profiles");
        }

        // ------------------------------------------------------------------------------------------------
        // 9. Store outage: nothing lost
        // ------------------------------------------------------------------------------------------------

        [Fact]
        public async Task Store_outage_fails_the_flush_keeps_the_lease_and_the_next_flush_recovers()
        {
            // create the store file (WAL mode, schema) first
            await Conn.SetProfilesAsync(new[] { P("s0", """{"x":0}""") }, queue: true);
            await FlushAsync();
            await AssertPersistedAsync("s0", """{"x":0}""");

            await Conn.SetProfilesAsync(new[] { P("s1", """{"name":"S","age":"30"}""") }, queue: true); // v1
            await Db.ListLeftPushAsync(Keys.Queue, """update:user:s1:{"age":"31"}""");           // v2 when leased
            await Db.ListLeftPushAsync(Keys.Queue, """update:user:s2:{"a":1}""");

            SqliteNative.EnsureLoaded();
            FlushFailedException failure;
            using (var locker = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = _ctx.StorePath, Pooling = false }.ToString()))
            {
                locker.Open();
                using (var begin = locker.CreateCommand())
                {
                    begin.CommandText = "BEGIN EXCLUSIVE";
                    begin.ExecuteNonQuery();
                }

                failure = await Assert.ThrowsAsync<FlushFailedException>(() =>
                    FlushAsync(new FlushOptions { RetryTimeout = TimeSpan.FromSeconds(1) }));

                Assert.Equal("StoreUnavailable", failure.ErrorId);
                Assert.Equal(3, failure.Result.Dequeued);
                Assert.Equal(3, failure.Result.InFlight);
                Assert.Equal(0, failure.Result.Persisted);
                AssertAccounted(failure.Result);

                // nothing lost: the items are in a lease, the cache has the merge
                var status = await Conn.GetStatusAsync(includeStore: false, CancellationToken.None);
                Assert.Equal(3, status.InFlight);
                Assert.Equal(1, await Db.SortedSetLengthAsync(Keys.Leases));
                Assert.Equal(0, await Db.ListLengthAsync(Keys.Queue));
                Assert.Equal("""{"name":"S","age":"31"}""", await HGetAsync("s1"));

                using (var rollback = locker.CreateCommand())
                {
                    rollback.CommandText = "ROLLBACK";
                    rollback.ExecuteNonQuery();
                }
            }

            var result = await FlushAsync();

            Assert.Equal(3, result.Recovered);
            Assert.Equal(0, result.Dequeued);
            await AssertPersistedAsync("s1", """{"name":"S","age":"31"}""");
            await AssertPersistedAsync("s2", """{"a":1}""");
            Assert.Equal(2, (await StoredAsync("s1")).Version);
            Assert.Equal(0, await Db.SortedSetLengthAsync(Keys.Leases));
            Assert.Equal(0, (await Conn.GetStatusAsync(includeStore: false, CancellationToken.None)).InFlight);
        }

        // ------------------------------------------------------------------------------------------------
        // 10. Backpressure (invariant 7)
        // ------------------------------------------------------------------------------------------------

        [Fact]
        public async Task High_water_mark_refuses_producers_and_writes_nothing()
        {
            var opts = _ctx.Options.Clone();
            opts.HighWaterMark = 5;
            using var conn = await WriteBehindConnection.ConnectAsync(opts);

            var six = Enumerable.Range(1, 6).Select(i => $"update:user:q{i}:{{\"a\":{i}}}").ToArray();
            var ex = await Assert.ThrowsAsync<WriteBehindException>(() => conn.EnqueueAsync(six));
            Assert.Equal("QueueFull", ex.ErrorId);
            Assert.Equal(0, await Db.ListLengthAsync(Keys.Queue));
            Assert.False(await Db.KeyExistsAsync(Keys.Queue));

            var profiles = Enumerable.Range(1, 6).Select(i => P("h" + i, $"{{\"a\":{i}}}")).ToArray();
            ex = await Assert.ThrowsAsync<WriteBehindException>(() => conn.SetProfilesAsync(profiles, queue: true));
            Assert.Equal("QueueFull", ex.ErrorId);
            // integers as integers on both servers (Garnet's Lua 5.4 once printed the count as "6.0")
            Assert.Contains("queue depth 0 + 6 exceeds the high-water mark 5", ex.Message);
            Assert.Equal(0, await Db.ListLengthAsync(Keys.Queue));
            for (int i = 1; i <= 6; i++)
            {
                Assert.True((await Db.HashGetAsync(Keys.Cache, "user:h" + i)).IsNull);
                Assert.True((await Db.HashGetAsync(Keys.Versions, "user:h" + i)).IsNull);
            }

            ex = await Assert.ThrowsAsync<WriteBehindException>(() => conn.RemoveProfilesAsync(Enumerable.Range(1, 6).Select(i => "h" + i).ToArray()));
            Assert.Equal("QueueFull", ex.ErrorId);
            Assert.Equal(0, await Db.ListLengthAsync(Keys.Queue));
            Assert.False(await Db.KeyExistsAsync(Keys.Versions));

            // up to the mark is fine; one past it is not
            Assert.Equal(5, await conn.EnqueueAsync(six.Take(5).ToArray()));
            ex = await Assert.ThrowsAsync<WriteBehindException>(() => conn.EnqueueAsync(new[] { six[5] }));
            Assert.Equal("QueueFull", ex.ErrorId);
            Assert.Equal(5, await Db.ListLengthAsync(Keys.Queue));
        }

        // ------------------------------------------------------------------------------------------------
        // 11. Redis unreachable
        // ------------------------------------------------------------------------------------------------

        [Fact]
        public async Task Unreachable_redis_names_the_endpoint_and_never_the_password()
        {
            int port = RedisFixture.FreePort();
            var opts = new WriteBehindOptions
            {
                Redis = $"127.0.0.1:{port},password=s3cret-PW",
                KeyPrefix = _ctx.Prefix,
                Store = _ctx.Options.Store,
                ConnectTimeout = TimeSpan.FromSeconds(2),
            };

            var ex = await Assert.ThrowsAsync<WriteBehindException>(() => WriteBehindConnection.ConnectAsync(opts));

            Assert.Equal("RedisUnavailable", ex.ErrorId);
            Assert.Contains("127.0.0.1:" + port, ex.Message);
            Assert.DoesNotContain("s3cret-PW", ex.Message);
            Assert.DoesNotContain("s3cret-PW", ex.ToString());
            for (var inner = ex.InnerException; inner != null; inner = inner.InnerException)
                Assert.DoesNotContain("s3cret-PW", inner.Message);
        }
    }
}
