using System.Threading.Tasks;
using StackExchange.Redis;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>
    /// What a connect opens (Redis/RedisConnector.cs): one interactive connection per server and no
    /// subscription connection, since the module uses no pub/sub (issue 13, cold start: a second socket
    /// is a second dial and handshake in every process that connects).
    /// </summary>
    [Collection(RedisCollection.Name)]
    public sealed class RedisConnectTests : IAsyncLifetime
    {
        private readonly RedisFixture _fixture;
        private RedisTestContext _ctx;

        public RedisConnectTests(RedisFixture fixture)
        {
            _fixture = fixture;
        }

        public async Task InitializeAsync() => _ctx = await RedisTestContext.CreateAsync(_fixture);

        public async Task DisposeAsync()
        {
            if (_ctx != null) await _ctx.DisposeAsync();
        }

        [Fact]
        public async Task A_connection_opens_one_interactive_socket_and_no_subscription_socket()
        {
            var conn = _ctx.Connection;
            Assert.Equal(0, await conn.GetQueueDepthAsync());
            var mux = (ConnectionMultiplexer)conn.Database.Multiplexer;
            var counters = mux.GetServer(mux.GetEndPoints()[0]).GetCounters();
            Assert.Equal(1, counters.Interactive.SocketCount);
            Assert.Equal(0, counters.Subscription.SocketCount);
            Assert.False(mux.GetSubscriber().IsConnected());
        }
    }
}
