using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;
using LuaScript = WriteBehind.Engine.Redis.LuaScript;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>
    /// A server that crashes in the middle of a script may replay only a prefix of the script's writes
    /// (Garnet does, from its AOF: issue 15). These tests cut each script that moves items or writes
    /// profiles after its k-th write, for every k, run the flush a restarted module would run, and check
    /// that nothing is lost, nothing merged twice, and cache and store converge. The cut is a shim
    /// prepended to the script text: a local <c>redis</c> whose <c>call</c> raises after k writes (Redis
    /// keeps the writes a failing script made before its error, which is exactly a replayed prefix).
    /// </summary>
    [Collection(RedisCollection.Name)]
    public sealed class PartialReplayTests
    {
        private static readonly HashSet<string> Writes = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        {
            "LMOVE", "LPUSH", "RPUSH", "LREM", "LSET", "LTRIM", "HSET", "HDEL", "ZADD", "ZREM", "RENAME", "DEL", "SET", "PEXPIRE", "HINCRBY",
        };

        private readonly RedisFixture _fixture;

        public PartialReplayTests(RedisFixture fixture) => _fixture = fixture;

        private static string CutText(LuaScript script, int cut) =>
            "local __redis, __writes = redis, 0\n" +
            "local __w = { " + string.Join(", ", Writes.Select(w => w + " = true")) + " }\n" +
            "local redis = setmetatable({ call = function(cmd, ...)\n" +
            "  if __w[string.upper(cmd)] then\n" +
            "    __writes = __writes + 1\n" +
            "    if __writes > " + cut + " then error('WB_TEST_CUT after " + cut + " writes') end\n" +
            "  end\n" +
            "  return __redis.call(cmd, ...)\n" +
            "end }, { __index = __redis })\n" + script.Text;

        /// <summary>Runs the script cut after <paramref name="cut"/> writes; true when it ran to its end.</summary>
        private static async Task<bool> RunCutAsync(IDatabase db, LuaScript script, int cut, RedisKey[] keys, RedisValue[] args)
        {
            try
            {
                await db.ScriptEvaluateAsync(CutText(script, cut), keys, args);
                return true;
            }
            catch (RedisServerException ex) when (ex.Message.Contains("WB_TEST_CUT"))
            {
                return false;
            }
        }

        private static Task<FlushResult> FlushAsync(WriteBehindConnection c) =>
            new Flusher(c).FlushAsync(new FlushOptions { LeaseDuration = TimeSpan.FromSeconds(30) }, null, CancellationToken.None);

        private static async Task<Dictionary<string, (string Json, long Version)>> CacheAsync(RedisTestContext ctx)
        {
            var cache = (await ctx.Db.HashGetAllAsync(ctx.Keys.Cache)).ToDictionary(e => ((string)e.Name).Substring(5), e => (string)e.Value);
            var state = new Dictionary<string, (string, long)>();
            foreach (var e in await ctx.Db.HashGetAllAsync(ctx.Keys.Versions))
            {
                string id = ((string)e.Name).Substring(5);
                state[id] = (cache.TryGetValue(id, out var j) ? j : null, (long)e.Value);
            }
            foreach (var id in cache.Keys.Where(k => !state.ContainsKey(k))) state[id] = (cache[id], 0);
            return state;
        }

        /// <summary>Queue, leases and redo records empty; the store equal to the cache for every id.</summary>
        private static async Task AssertConvergedAsync(RedisTestContext ctx, int cut)
        {
            var db = ctx.Db;
            Assert.True(0 == await db.ListLengthAsync(ctx.Keys.Queue), $"cut {cut}: queue not empty");
            Assert.True(0 == await db.SortedSetLengthAsync(ctx.Keys.Leases), $"cut {cut}: a lease is left");
            Assert.True(0 == await db.HashLengthAsync(ctx.Keys.Redo), $"cut {cut}: a redo record is left");
            var cache = await CacheAsync(ctx);
            var stored = await ctx.Connection.Store.GetAsync(cache.Keys.ToList(), CancellationToken.None);
            foreach (var kv in cache)
            {
                Assert.True(stored.TryGetValue(kv.Key, out var row), $"cut {cut}: {kv.Key} not in the store");
                Assert.True(kv.Value.Version == row.Version, $"cut {cut}: {kv.Key} store version {row.Version}, cache {kv.Value.Version}");
                Assert.True(kv.Value.Json == row.Json, $"cut {cut}: {kv.Key} store '{row.Json}', cache '{kv.Value.Json}'");
            }
        }

        private static async Task<long> CountAsync(IDatabase db, RedisKey list, string item) =>
            (await db.ListRangeAsync(list)).Count(v => (string)v == item);

        private static RedisKey[] LeaseKeys(KeyNames k, string leaseKey) =>
            new RedisKey[] { k.Queue, k.Cache, k.Versions, leaseKey, k.Leases, k.DeadLetters, k.DeadLetterInfo, k.Redo, k.PendingAge };

        [Fact]
        public async Task Lease_cut_after_any_write_loses_nothing_and_merges_nothing_twice()
        {
            bool completed = false;
            for (int cut = 0; !completed; cut++)
            {
                Assert.True(cut < 100, "the lease script never completed");
                var ctx = await RedisTestContext.CreateAsync(_fixture);
                try
                {
                    var conn = ctx.Connection;
                    var k = ctx.Keys;
                    await conn.SetProfilesAsync(new[] { new KeyValuePair<string, string>("a", """{"name":"a"}"""), new KeyValuePair<string, string>("b", """{"name":"b"}""") }, queue: true);
                    await FlushAsync(conn); // a and b at version 1 in cache and store
                    // oldest first: patches to a, b, a new id n, a raw delete of d, a poison item in between
                    await conn.SetProfilesAsync(new[] { new KeyValuePair<string, string>("d", """{"name":"d"}""") }, queue: false);
                    foreach (var item in new[] { """update:user:a:{"p1":"1"}""", "poison", """update:user:b:{"p2":"2"}""", """update:user:a:{"p3":"3"}""",
                                                 """update:user:n:{"x":"1"}""", "delete:user:d", "set:user:b:1" })
                        await ctx.Db.ListLeftPushAsync(k.Queue, item);

                    long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                    completed = await RunCutAsync(ctx.Db, Scripts.Lease, cut, LeaseKeys(k, k.LeasePrefix + "cut"), new RedisValue[] { 100, now - 1000, now });

                    // after the restart: a newer patch to a field of a, then the flush of the restarted module
                    await ctx.Db.ListLeftPushAsync(k.Queue, """update:user:a:{"p1":"new"}""");
                    var r = await FlushAsync(conn);
                    Assert.True(r.Error == null, $"cut {cut}: {r.Error}");

                    var cache = await CacheAsync(ctx);
                    Assert.Equal(("""{"name":"a","p1":"new","p3":"3"}""", 4L), cache["a"]);
                    Assert.Equal(("""{"name":"b","p2":"2"}""", 2L), cache["b"]);
                    Assert.Equal(("""{"x":"1"}""", 1L), cache["n"]);
                    Assert.Equal(((string)null, 2L), cache["d"]);
                    // dead-lettered, at most twice (a cut between the dead letter and the lease's registration
                    // duplicates it), never lost
                    Assert.InRange(await CountAsync(ctx.Db, k.DeadLetters, "poison"), 1, 2);
                    Assert.True(await ctx.Db.HashExistsAsync(k.DeadLetterInfo, "poison"), $"cut {cut}: the poison item has no reason");
                    await AssertConvergedAsync(ctx, cut);
                }
                finally { await ctx.DisposeAsync(); }
            }
        }

        [Fact]
        public async Task Lease_cut_twice_in_a_row_still_merges_each_patch_once()
        {
            // a crash cuts the lease, and a second crash cuts the call that finishes the staged batch
            for (int first = 1; first <= 6; first++)
            {
                for (int second = 0; second <= 8; second++)
                {
                    var ctx = await RedisTestContext.CreateAsync(_fixture);
                    try
                    {
                        var k = ctx.Keys;
                        foreach (var item in new[] { """update:user:a:{"p1":"1"}""", """update:user:a:{"p2":"2"}""", """update:user:b:{"q":"1"}""" })
                            await ctx.Db.ListLeftPushAsync(k.Queue, item);
                        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                        await RunCutAsync(ctx.Db, Scripts.Lease, first, LeaseKeys(k, k.LeasePrefix + "cut1"), new RedisValue[] { 100, now - 1000, now });
                        await RunCutAsync(ctx.Db, Scripts.Lease, second, LeaseKeys(k, k.LeasePrefix + "cut2"), new RedisValue[] { 100, now - 1000, now });
                        var r = await FlushAsync(ctx.Connection);
                        Assert.True(r.Error == null, $"cuts {first}/{second}: {r.Error}");
                        var cache = await CacheAsync(ctx);
                        Assert.Equal(("""{"p1":"1","p2":"2"}""", 2L), cache["a"]);
                        Assert.Equal(("""{"q":"1"}""", 1L), cache["b"]);
                        await AssertConvergedAsync(ctx, first * 100 + second);
                    }
                    finally { await ctx.DisposeAsync(); }
                }
            }
        }

        [Fact]
        public async Task Set_and_remove_cut_after_any_write_leave_cache_and_store_convergent()
        {
            foreach (var script in new[] { Scripts.SetProfiles, Scripts.RemoveProfiles })
            {
                bool completed = false;
                for (int cut = 0; !completed; cut++)
                {
                    Assert.True(cut < 50, script.Name + " never completed");
                    var ctx = await RedisTestContext.CreateAsync(_fixture);
                    try
                    {
                        var conn = ctx.Connection;
                        var k = ctx.Keys;
                        await conn.SetProfilesAsync(new[] { new KeyValuePair<string, string>("a", """{"v":"1"}"""), new KeyValuePair<string, string>("b", """{"v":"1"}""") }, queue: true);
                        await FlushAsync(conn);
                        var keys = new RedisKey[] { k.Cache, k.Versions, k.Queue, k.Redo, k.PendingAge };
                        var args = script == Scripts.SetProfiles
                            ? new RedisValue[] { "1", 0, "1", "user:a", """{"v":"2"}""", "user:b", """{"v":"2"}""" }
                            : new RedisValue[] { 0, "user:a", "user:b" };
                        completed = await RunCutAsync(ctx.Db, script, cut, keys, args);
                        var r = await FlushAsync(conn);
                        Assert.True(r.Error == null, $"{script.Name} cut {cut}: {r.Error}");
                        var cache = await CacheAsync(ctx);
                        foreach (var id in new[] { "a", "b" })
                        {
                            // either the write happened or not, per profile; never a new JSON without its persist
                            var (json, version) = cache[id];
                            if (script == Scripts.SetProfiles) Assert.Contains(json, new[] { """{"v":"1"}""", """{"v":"2"}""" });
                            Assert.InRange(version, 1, 2);
                            if (completed) Assert.Equal(script == Scripts.SetProfiles ? """{"v":"2"}""" : null, json);
                        }
                        await AssertConvergedAsync(ctx, cut);
                    }
                    finally { await ctx.DisposeAsync(); }
                }
            }
        }

        [Fact]
        public async Task Read_through_cut_after_any_write_never_leaves_a_half_written_profile()
        {
            bool completed = false;
            for (int cut = 0; !completed; cut++)
            {
                Assert.True(cut < 20, "read_through never completed");
                var ctx = await RedisTestContext.CreateAsync(_fixture);
                try
                {
                    var conn = ctx.Connection;
                    var k = ctx.Keys;
                    await conn.SetProfilesAsync(new[] { new KeyValuePair<string, string>("a", """{"v":"1"}""") }, queue: true);
                    await FlushAsync(conn);
                    await ctx.Db.HashDeleteAsync(k.Cache, "user:a");
                    await ctx.Db.HashDeleteAsync(k.Versions, "user:a"); // evicted: only the store has it (v1)
                    completed = await RunCutAsync(ctx.Db, Scripts.ReadThrough, cut, new RedisKey[] { k.Cache, k.Versions, k.Redo },
                        new RedisValue[] { "user:a", """{"v":"1"}""", 1 });
                    // after the restart: a patch to it, flushed
                    await ctx.Db.ListLeftPushAsync(k.Queue, """update:user:a:{"w":"2"}""");
                    var r = await FlushAsync(conn);
                    Assert.True(r.Error == null, $"cut {cut}: {r.Error}");
                    var cache = await CacheAsync(ctx);
                    // the patch lands on the stored profile (read back in full, or not at all: then it starts a
                    // profile of its own, as on any cache miss) and reaches the store
                    Assert.Contains(cache["a"], new[] { ("""{"v":"1","w":"2"}""", 2L), ("""{"w":"2"}""", 1L) });
                    var stored = await conn.Store.GetAsync(new[] { "a" }, CancellationToken.None);
                    Assert.True(cache["a"].Version > 1 ? stored["a"].Json == cache["a"].Json : stored["a"].Version == 1,
                        $"cut {cut}: store '{stored["a"].Json}' v{stored["a"].Version}, cache '{cache["a"].Json}' v{cache["a"].Version}");
                    if (completed) Assert.Equal(("""{"v":"1","w":"2"}""", 2L), cache["a"]);
                }
                finally { await ctx.DisposeAsync(); }
            }
        }

        private static string Packed(params string[] tokens) => string.Concat(tokens.Select(t => System.Text.Encoding.UTF8.GetByteCount(t) + ":" + t));

        [Theory]
        [InlineData(false)]
        [InlineData(true)]
        public async Task A_redo_record_left_by_a_cut_script_is_applied_in_either_format(bool before)
        {
            // The states of a 'lease' record are triples (field, version with a 'd' when deleted, JSON); a record
            // written by the module before that (#sets, sets, #dels, dels, #vers, vers) is still applied.
            var ctx = await RedisTestContext.CreateAsync(_fixture);
            try
            {
                var k = ctx.Keys;
                await ctx.Connection.SetProfilesAsync(new[] { new KeyValuePair<string, string>("a", """{"v":"1"}"""), new KeyValuePair<string, string>("d", """{"v":"1"}""") }, queue: true);
                await FlushAsync(ctx.Connection);
                string record = before
                    ? Packed("2", "user:a", """{"v":"from the record"}""", "1", "user:d", "4", "user:a", "5", "user:d", "6")
                    : Packed("user:a", "5", """{"v":"from the record"}""", "user:d", "6d", "");
                await ctx.Db.HashSetAsync(k.Redo, "lease", record);
                await ctx.Db.ListLeftPushAsync(k.Queue, """update:user:b:{"x":"1"}""");

                var r = await FlushAsync(ctx.Connection);

                Assert.True(r.Error == null, r.Error);
                var cache = await CacheAsync(ctx);
                Assert.Equal(("""{"v":"from the record"}""", 5L), cache["a"]);
                Assert.Equal(((string)null, 6L), cache["d"]);
                Assert.Equal(("""{"x":"1"}""", 1L), cache["b"]);
                Assert.Equal(0, await ctx.Db.HashLengthAsync(k.Redo));
            }
            finally { await ctx.DisposeAsync(); }
        }

        [Fact]
        public async Task Reject_and_restore_cut_after_any_write_only_duplicate_an_item()
        {
            foreach (bool restore in new[] { false, true })
            {
                bool completed = false;
                for (int cut = 0; !completed; cut++)
                {
                    Assert.True(cut < 20, "never completed");
                    var ctx = await RedisTestContext.CreateAsync(_fixture);
                    try
                    {
                        var k = ctx.Keys;
                        string item = """update:user:a:{"x":"1"}""";
                        RedisKey from, to;
                        if (restore)
                        {
                            await ctx.Db.ListLeftPushAsync(k.DeadLetters, item);
                            await ctx.Db.HashSetAsync(k.DeadLetterInfo, item, "1|1|1|test");
                            // a newer entry that stays: the script marks the copy it takes and drops the mark (LSET, LREM)
                            await ctx.Db.ListLeftPushAsync(k.DeadLetters, "stays");
                            completed = await RunCutAsync(ctx.Db, Scripts.DeadLetters, cut, new RedisKey[] { k.DeadLetters, k.DeadLetterInfo, k.Queue, k.PendingAge },
                                new RedisValue[] { "restore", item, item });
                            from = k.DeadLetters; to = k.Queue;
                        }
                        else
                        {
                            string lease = k.LeasePrefix + "r";
                            await ctx.Db.ListLeftPushAsync(lease, item);
                            completed = await RunCutAsync(ctx.Db, Scripts.Reject, cut, new RedisKey[] { lease, k.DeadLetters, k.DeadLetterInfo },
                                new RedisValue[] { 1, "a", "refused" });
                            from = lease; to = k.DeadLetters;
                        }
                        long left = await CountAsync(ctx.Db, from, item), arrived = await CountAsync(ctx.Db, to, item);
                        Assert.True(left + arrived >= 1, $"cut {cut}: the item is in neither list");
                        if (completed) Assert.Equal((0L, 1L), (left, arrived));
                        if (!restore && arrived > 0) Assert.True(await ctx.Db.HashExistsAsync(k.DeadLetterInfo, item), $"cut {cut}: a dead letter without its reason");
                        if (restore)
                        {
                            Assert.Equal(1L, await CountAsync(ctx.Db, k.DeadLetters, "stays"));
                            // whatever a cut left, the reader shows the entries and nothing else
                            var shown = (await ctx.Connection.GetDeadLettersAsync()).Select(e => e.Item).ToList();
                            Assert.Equal(left > 0 ? new[] { item, "stays" } : new[] { "stays" }, shown);
                        }
                    }
                    finally { await ctx.DisposeAsync(); }
                }
            }
        }
    }
}
