using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Queue;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>
    /// Restore-/Remove-WriteBehindDeadLetter (Queue/DeadLetterList.cs, dead_letters.lua) against a real server:
    /// whatever the order and the positions of the entries taken, each takes the oldest copy of its item, the
    /// others stay in their order, an item's info goes with its last copy, and restored items reach the queue
    /// in the order asked. The script takes every entry in one pass (LSET over the copies, one LREM), not a
    /// scan of the list per entry: a restore of 20,000 entries newest first used to block the server for seconds.
    /// </summary>
    [Collection(RedisCollection.Name)]
    public sealed class DeadLetterTakeTests : IAsyncLifetime
    {
        private readonly RedisFixture _fixture;
        private RedisTestContext _ctx;

        public DeadLetterTakeTests(RedisFixture fixture) => _fixture = fixture;
        public async Task InitializeAsync() => _ctx = await RedisTestContext.CreateAsync(_fixture);
        public async Task DisposeAsync() { if (_ctx != null) await _ctx.DisposeAsync(); }

        private KeyNames Keys => _ctx.Keys;
        private IDatabase Db => _ctx.Db;

        /// <summary>Dead-letters <paramref name="items"/> oldest first (LPUSH, as the flush does), each with an info.</summary>
        private async Task SeedAsync(IEnumerable<string> items)
        {
            foreach (string item in items)
            {
                await Db.ListLeftPushAsync(Keys.DeadLetters, item);
                await Db.HashSetAsync(Keys.DeadLetterInfo, item, "1|1|1|test reason");
            }
        }

        private async Task<string[]> DeadOldestFirstAsync() =>
            (await Db.ListRangeAsync(Keys.DeadLetters, 0, -1)).Reverse().Select(v => (string)v).ToArray();

        private async Task<string[]> QueueOldestFirstAsync() =>
            (await Db.ListRangeAsync(Keys.Queue, 0, -1)).Reverse().Select(v => (string)v).ToArray();

        public static IEnumerable<object[]> Orders() => new[]
        {
            new object[] { "oldest first" }, new object[] { "newest first" }, new object[] { "every third, newest first" },
            new object[] { "the middle" }, new object[] { "all" },
        };

        [Theory]
        [MemberData(nameof(Orders))]
        public async Task Restore_takes_the_entries_asked_in_any_order_and_keeps_the_rest_in_order(string order)
        {
            var items = Enumerable.Range(1, 300).Select(i => $"update:user:d{i}:{{bad").ToList();
            await SeedAsync(items);
            var all = await _ctx.Connection.GetDeadLettersAsync();
            Assert.Equal(items, all.Select(e => e.Item));
            IEnumerable<DeadLetter> chosen = order switch
            {
                "oldest first" => all.Take(100),
                "newest first" => all.Reverse().Take(100),
                "every third, newest first" => all.Where((e, i) => i % 3 == 0).Reverse(),
                "the middle" => all.Skip(120).Take(60),
                _ => all,
            };
            var asked = chosen.ToList();

            bool[] found = await _ctx.Connection.RestoreDeadLettersAsync(asked);

            Assert.All(found, Assert.True);
            var taken = new HashSet<string>(asked.Select(e => e.Item));
            Assert.Equal(items.Where(i => !taken.Contains(i)), await DeadOldestFirstAsync());
            Assert.Equal(asked.Select(e => e.Item), await QueueOldestFirstAsync());
            foreach (string item in items)
                Assert.Equal(!taken.Contains(item), await Db.HashExistsAsync(Keys.DeadLetterInfo, item));
        }

        [Fact]
        public async Task Copies_of_one_item_go_oldest_first_and_its_info_with_the_last()
        {
            // oldest first: x, a, x, b, x (three copies of x)
            await SeedAsync(new[] { "x", "a", "x", "b", "x" });
            var x = (await _ctx.Connection.GetDeadLettersAsync()).First(e => e.Item == "x");

            bool[] found = await _ctx.Connection.RemoveDeadLettersAsync(new[] { x, x });

            Assert.Equal(new[] { true, true }, found);
            Assert.Equal(new[] { "a", "b", "x" }, await DeadOldestFirstAsync());
            Assert.True(await Db.HashExistsAsync(Keys.DeadLetterInfo, "x"), "one copy of x is left, so is its info");

            found = await _ctx.Connection.RemoveDeadLettersAsync(new[] { x, x });

            Assert.Equal(new[] { true, false }, found);
            Assert.Equal(new[] { "a", "b" }, await DeadOldestFirstAsync());
            Assert.False(await Db.HashExistsAsync(Keys.DeadLetterInfo, "x"));
        }

        [Fact]
        public async Task A_taken_mark_left_by_a_cut_script_is_not_shown_and_the_next_take_drops_it()
        {
            // what a server crash between the script's LSETs and its LREM leaves behind
            await SeedAsync(new[] { "a", "b" });
            await Db.ListLeftPushAsync(Keys.DeadLetters, DeadLetterList.Taken);

            var shown = await _ctx.Connection.GetDeadLettersAsync();
            Assert.Equal(new[] { "a", "b" }, shown.Select(e => e.Item));

            bool[] found = await _ctx.Connection.RemoveDeadLettersAsync(new[] { shown[0] });

            Assert.Equal(new[] { true }, found);
            Assert.Equal(new[] { "b" }, await DeadOldestFirstAsync());
        }

        [Fact]
        public void The_taken_mark_is_the_same_text_in_the_script_and_the_reader()
        {
            string lua = WriteBehind.Engine.Redis.Scripts.DeadLetters.Text;
            var m = Regex.Match(lua, @"^local TAKEN = '(.*)'$", RegexOptions.Multiline);
            Assert.True(m.Success, "dead_letters.lua defines TAKEN");
            Assert.Equal(DeadLetterList.Taken, m.Groups[1].Value.Replace("\\0", "\0"));
        }
    }
}
