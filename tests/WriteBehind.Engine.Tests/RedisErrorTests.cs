using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>
    /// Redis error translation (Redis/RedisErrors.cs) against a real server: whatever path a call takes (a
    /// script, a plain command, an HSCAN cursor, the blocking wait on its own connection), a server error is
    /// RedisCommandFailed and a closed connection is RedisUnavailable, each in one line naming the endpoint.
    /// A module key of the wrong type (a string where a hash or list belongs) makes the server refuse.
    /// </summary>
    [Collection(RedisCollection.Name)]
    public sealed class RedisErrorTests : IAsyncLifetime
    {
        private readonly RedisFixture _fixture;
        private RedisTestContext _ctx;

        public RedisErrorTests(RedisFixture fixture)
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

        private void AssertCommandFailed(WriteBehindException ex)
        {
            Assert.Equal(ErrorIds.RedisCommandFailed, ex.ErrorId);
            Assert.StartsWith($"Redis at {Conn.RedisEndpoint} refused a command: ", ex.Message);
            Assert.DoesNotContain("\n", ex.Message);
        }

        private void AssertClosed(WriteBehindException ex)
        {
            Assert.Equal(ErrorIds.RedisUnavailable, ex.ErrorId);
            Assert.Equal($"The connection to Redis at {Conn.RedisEndpoint} was closed (Disconnect-WriteBehind or the module removed): connect again with Connect-WriteBehind.", ex.Message);
        }

        [Fact]
        public async Task A_server_error_in_a_script_is_RedisCommandFailed_in_one_line()
        {
            await _ctx.Db.StringSetAsync(Keys.Cache, "not a hash");

            AssertCommandFailed(await Assert.ThrowsAsync<WriteBehindException>(
                () => Conn.SetProfilesAsync(new[] { new KeyValuePair<string, string>("e1", "{\"a\":1}") }, queue: true)));
            AssertCommandFailed(await Assert.ThrowsAsync<WriteBehindException>(() => Conn.GetCachedAsync(new[] { "e1" })));
        }

        [Fact]
        public async Task A_server_error_in_a_plain_command_or_a_cursor_is_RedisCommandFailed_alike()
        {
            await _ctx.Db.StringSetAsync(Keys.Cache, "not a hash");

            AssertCommandFailed(await Assert.ThrowsAsync<WriteBehindException>(() => Conn.GetStatusAsync(includeStore: false, CancellationToken.None)));
            AssertCommandFailed(Assert.Throws<WriteBehindException>(() => Conn.ScanCached().ToList()));
            AssertCommandFailed(Assert.Throws<WriteBehindException>(() => Conn.ScanUserIds("e", 10).ToList()));
        }

        [Fact]
        public async Task A_server_error_in_the_consistency_checks_scan_is_RedisCommandFailed()
        {
            await _ctx.Db.StringSetAsync(Keys.Versions, "not a hash");

            AssertCommandFailed(await Assert.ThrowsAsync<WriteBehindException>(() => new ConsistencyChecker(Conn).CheckAsync(repair: false, CancellationToken.None)));
        }

        [Fact]
        public async Task A_server_error_in_the_blocking_wait_is_RedisCommandFailed_like_every_other_call()
        {
            await _ctx.Db.StringSetAsync(Keys.Queue, "not a list");

            AssertCommandFailed(await Assert.ThrowsAsync<WriteBehindException>(() => Conn.WaitForItemsAsync(TimeSpan.FromMilliseconds(100))));
        }

        [Fact]
        public async Task A_write_no_replica_acknowledges_is_ReplicationTimeout_after_it_was_applied()
        {
            // the test server has no replicas: WAIT returns 0 once the timeout passes
            var opts = _ctx.Options.Clone();
            opts.ReplicaAcks = 1;
            opts.ReplicaTimeout = TimeSpan.FromMilliseconds(50);
            if (Environment.GetEnvironmentVariable("WRITEBEHIND_TEST_SERVER_KIND") == "Garnet")
            {
                // Garnet 2.2.8 has no WAIT: the connect refuses -ReplicaAcks before anything is written
                var refused = await Assert.ThrowsAsync<WriteBehindException>(() => WriteBehindConnection.ConnectAsync(opts));
                Assert.Equal(ErrorIds.ReplicaAcksUnsupported, refused.ErrorId);
                Assert.Contains("does not run WAIT", refused.Message);
                return;
            }
            using var conn = await WriteBehindConnection.ConnectAsync(opts);

            var ex = await Assert.ThrowsAsync<WriteBehindException>(
                () => conn.SetProfilesAsync(new[] { new KeyValuePair<string, string>("r1", "{\"a\":1}") }, queue: true));

            Assert.Equal("{\"a\":1}", (string)await _ctx.Db.HashGetAsync(Keys.Cache, "user:r1"));
            Assert.Equal(ErrorIds.ReplicationTimeout, ex.ErrorId);
            Assert.Equal($"Only 0 of 1 replica(s) acknowledged the profile write on {Keys.Cache} within 50 ms. " +
                         "The master applied it; a failover before the replicas catch up could lose it.", ex.Message);
            ex = await Assert.ThrowsAsync<WriteBehindException>(() => conn.EnqueueAsync(new[] { "update:user:r1:{\"a\":2}" }));
            Assert.Equal(ErrorIds.ReplicationTimeout, ex.ErrorId);
            Assert.Contains($"acknowledged the queued items on {Keys.Queue}", ex.Message);
        }

        [Fact]
        public async Task A_closed_connection_says_so_on_every_path()
        {
            var conn = await _ctx.ConnectAsync();
            conn.Dispose();

            AssertClosed(await Assert.ThrowsAsync<WriteBehindException>(() => conn.GetQueueDepthAsync()));
            AssertClosed(await Assert.ThrowsAsync<WriteBehindException>(() => conn.EnqueueAsync(new[] { "update:user:e1:{\"a\":1}" })));
            AssertClosed(await Assert.ThrowsAsync<WriteBehindException>(() => conn.GetDeadLettersAsync()));
            AssertClosed(Assert.Throws<WriteBehindException>(() => conn.ScanCached().ToList()));
        }
    }
}
