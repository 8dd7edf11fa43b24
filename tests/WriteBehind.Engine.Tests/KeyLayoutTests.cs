using System;
using System.Linq;
using System.Threading.Tasks;
using StackExchange.Redis;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>Key names per partition, and the partition function: the C# one the producers route by
    /// and the Lua one the lease script checks must agree for every id.</summary>
    [Collection(RedisCollection.Name)]
    public sealed class KeyLayoutTests
    {
        private readonly RedisFixture _fixture;

        public KeyLayoutTests(RedisFixture fixture) => _fixture = fixture;

        [Fact]
        public void OnePartitionWithoutPrefixUsesTheSeedNames()
        {
            var layout = new KeyLayout(null, 1);
            var keys = Assert.Single(layout.Partitions);
            Assert.Equal("user_profiles", keys.Cache);
            Assert.Equal("write_queue", keys.Queue);
            Assert.Equal("user_profiles:versions", keys.Versions);
            Assert.Equal("write_queue:leases", keys.Leases);
            Assert.Equal("write_queue:dead", keys.DeadLetters);
            Assert.Equal("write_queue:redo", keys.Redo);
        }

        [Fact]
        public void EveryKeyOfAPartitionCarriesItsHashTag()
        {
            var layout = new KeyLayout("app:", 16);
            Assert.Equal(16, layout.Count);
            var p = layout.Partitions[3];
            foreach (var key in new[] { p.Cache, p.Queue, p.Versions, p.Leases, p.LeasePrefix + "x", p.DeadLetters, p.DeadLetterInfo, p.Owner, p.Redo })
            {
                Assert.StartsWith("app:", key);
                // the first {...} of a key is its cluster hash tag
                int open = key.IndexOf('{');
                Assert.Equal("3", key.Substring(open + 1, key.IndexOf('}', open) - open - 1));
            }
            Assert.Equal("app:write_queue{3}", p.Queue);
            Assert.Equal("app:user_profiles{3}", p.Cache);
        }

        [Theory]
        [InlineData("{wb}")]
        [InlineData("a{x}b:")]
        public void AHashTaggedPrefixIsRefusedWithSeveralPartitions(string prefix)
        {
            var ex = Assert.Throws<WriteBehindException>(() => new KeyLayout(prefix, 2));
            Assert.Equal(ErrorIds.InvalidConfiguration, ex.ErrorId);
            Assert.Equal("{wb}user_profiles", new KeyLayout("{wb}", 1).Partitions[0].Cache);
        }

        [Theory]
        [InlineData(0)]
        [InlineData(1025)]
        public void APartitionCountOutOfRangeIsRefused(int count) =>
            Assert.Equal(ErrorIds.InvalidConfiguration, Assert.Throws<WriteBehindException>(() => new KeyLayout("", count)).ErrorId);

        [Fact]
        public void TheFunctionIsFnv1a32()
        {
            // reference values of FNV-1a 32-bit
            Assert.Equal(0x811c9dc5u, KeyLayout.Fnv1a(""));
            Assert.Equal(0xe40c292cu, KeyLayout.Fnv1a("a"));
            Assert.Equal(0xbf9cf968u, KeyLayout.Fnv1a("foobar"));
        }

        [Fact]
        public async Task TheLeaseScriptsLuaFunctionAgreesWithCSharpForEveryId()
        {
            var rnd = new Random(7);
            const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-";
            var ids = Enumerable.Range(0, 3000).Select(i => i < 1000 ? i.ToString() :
                new string(Enumerable.Range(0, 1 + rnd.Next(128)).Select(_ => alphabet[rnd.Next(alphabet.Length)]).ToArray())).ToArray();
            foreach (int n in new[] { 2, 3, 16, 1000, 1024 })
            {
                var text = ReadCommon() + "\nlocal out = {} for i = 1, #ARGV do out[i] = partition_of(ARGV[i], " + n + ") end return out";
                var lua = (long[])await _fixture.Db.ScriptEvaluateAsync(text, null, ids.Select(id => (RedisValue)id).ToArray());
                for (int i = 0; i < ids.Length; i++)
                    Assert.True(KeyLayout.IndexOf(ids[i], n) == lua[i], $"id '{ids[i]}' of {n}: C# {KeyLayout.IndexOf(ids[i], n)}, Lua {lua[i]}");
            }
        }

        private static string ReadCommon()
        {
            using var stream = typeof(KeyLayout).Assembly.GetManifestResourceStream("WriteBehind.Engine.Lua.common.lua");
            using var reader = new System.IO.StreamReader(stream);
            return reader.ReadToEnd();
        }
    }
}
