using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>
    /// A real Redis for the engine tests (never a mock). The endpoint comes from WRITEBEHIND_TEST_REDIS
    /// (e.g. "127.0.0.1:6379"); when that is unset, a throwaway <c>redis-server</c> (on PATH) is started on a
    /// free loopback port with persistence off, and stopped when the fixture is disposed.
    /// Tests never touch keys outside their own unique prefix (see <see cref="RedisTestContext"/>).
    /// </summary>
    public sealed class RedisFixture : IDisposable
    {
        public const string EnvironmentVariable = "WRITEBEHIND_TEST_REDIS";

        private readonly Process _server;

        public RedisFixture()
        {
            string endpoint = Environment.GetEnvironmentVariable(EnvironmentVariable);
            if (string.IsNullOrWhiteSpace(endpoint))
            {
                int port = FreePort();
                var psi = new ProcessStartInfo("redis-server")
                {
                    UseShellExecute = false,
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                    CreateNoWindow = true,
                };
                foreach (string a in new[] { "--port", port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
                    psi.ArgumentList.Add(a);
                try
                {
                    _server = Process.Start(psi) ?? throw new InvalidOperationException("redis-server did not start.");
                }
                catch (System.ComponentModel.Win32Exception ex)
                {
                    throw new InvalidOperationException(
                        $"{EnvironmentVariable} is not set and redis-server could not be started (is it on PATH?): {ex.Message}", ex);
                }
                // Drain its output so a chatty server never blocks on a full pipe.
                _server.OutputDataReceived += (_, __) => { };
                _server.ErrorDataReceived += (_, __) => { };
                _server.BeginOutputReadLine();
                _server.BeginErrorReadLine();
                endpoint = "127.0.0.1:" + port;
                StartedServer = true;
            }

            Endpoint = endpoint.Trim();
            Mux = ConnectWithRetry(Endpoint, TimeSpan.FromSeconds(15));
        }

        /// <summary>The configuration string tests hand to WriteBehindOptions.Redis.</summary>
        public string Endpoint { get; }

        /// <summary>True when this fixture started its own redis-server.</summary>
        public bool StartedServer { get; }

        /// <summary>A raw StackExchange.Redis connection for interop checks (LPUSH, HGET, LRANGE...).</summary>
        public ConnectionMultiplexer Mux { get; }

        public IDatabase Db => Mux.GetDatabase();

        public IServer Server => Mux.GetServer(Mux.GetEndPoints().First());

        private ConnectionMultiplexer ConnectWithRetry(string endpoint, TimeSpan within)
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    var config = ConfigurationOptions.Parse(endpoint);
                    config.AbortOnConnectFail = true;
                    config.ConnectTimeout = 2000;
                    config.SyncTimeout = 30000;
                    config.AsyncTimeout = 30000;
                    var mux = ConnectionMultiplexer.Connect(config);
                    mux.GetDatabase().Ping();
                    return mux;
                }
                catch (Exception ex) when (ex is RedisException || ex is TimeoutException)
                {
                    if (_server != null && _server.HasExited)
                        throw new InvalidOperationException($"redis-server exited with code {_server.ExitCode} before accepting connections.", ex);
                    if (clock.Elapsed > within)
                    {
                        StopServer();
                        throw new InvalidOperationException($"Redis at {endpoint} did not answer within {within.TotalSeconds} s.", ex);
                    }
                    Thread.Sleep(100);
                }
            }
        }

        /// <summary>A TCP port nothing listens on (bound then released at once).</summary>
        public static int FreePort()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            return port;
        }

        /// <summary>Deletes every key under a prefix (SCAN, never KEYS on a shared server).</summary>
        public async Task DeleteKeysAsync(string prefix)
        {
            var keys = new List<RedisKey>();
            await foreach (var key in Server.KeysAsync(pattern: prefix + "*", pageSize: 1000))
                keys.Add(key);
            for (int i = 0; i < keys.Count; i += 500)
                await Db.KeyDeleteAsync(keys.Skip(i).Take(500).ToArray());
        }

        public async Task<long> CountKeysAsync(string prefix)
        {
            long n = 0;
            await foreach (var _ in Server.KeysAsync(pattern: prefix + "*", pageSize: 1000)) n++;
            return n;
        }

        private void StopServer()
        {
            if (_server == null) return;
            try
            {
                if (!_server.HasExited)
                {
                    _server.Kill();
                    _server.WaitForExit(5000);
                }
            }
            catch (InvalidOperationException) { /* already gone */ }
            _server.Dispose();
        }

        public void Dispose()
        {
            Mux?.Dispose();
            StopServer();
        }
    }

    [CollectionDefinition(Name)]
    public sealed class RedisCollection : ICollectionFixture<RedisFixture>
    {
        public const string Name = "Redis";
    }

    /// <summary>
    /// One test's world: its own key prefix ("t-&lt;guid&gt;:"), its own SQLite store file in a fresh temp
    /// directory, and a WriteBehindConnection on both. Disposing closes every connection it opened,
    /// deletes the prefix's keys and the store files.
    /// </summary>
    public sealed class RedisTestContext : IAsyncDisposable
    {
        private readonly RedisFixture _fixture;
        private readonly List<WriteBehindConnection> _connections = new List<WriteBehindConnection>();

        private RedisTestContext(RedisFixture fixture, long highWaterMark)
        {
            _fixture = fixture;
            Prefix = "t-" + Guid.NewGuid().ToString("N") + ":";
            Directory = Path.Combine(Path.GetTempPath(), "wb-engine-tests-" + Guid.NewGuid().ToString("N"));
            System.IO.Directory.CreateDirectory(Directory);
            StorePath = Path.Combine(Directory, "store.db");
            Options = new WriteBehindOptions
            {
                Redis = fixture.Endpoint,
                KeyPrefix = Prefix,
                Store = "sqlite:///" + StorePath.TrimStart('/'),
                HighWaterMark = highWaterMark,
            };
            Keys = new KeyNames(Prefix);
        }

        public string Prefix { get; }
        public string Directory { get; }
        public string StorePath { get; }
        public WriteBehindOptions Options { get; }
        public KeyNames Keys { get; }
        public WriteBehindConnection Connection { get; private set; }
        public IDatabase Db => _fixture.Db;
        public RedisFixture Fixture => _fixture;

        public static async Task<RedisTestContext> CreateAsync(RedisFixture fixture, long highWaterMark = WriteBehindOptions.DefaultHighWaterMark)
        {
            var ctx = new RedisTestContext(fixture, highWaterMark);
            ctx.Connection = await ctx.ConnectAsync();
            return ctx;
        }

        /// <summary>Another connection (own multiplexer, own store instance on the same file).</summary>
        public async Task<WriteBehindConnection> ConnectAsync()
        {
            var c = await WriteBehindConnection.ConnectAsync(Options);
            lock (_connections) _connections.Add(c);
            return c;
        }

        public async ValueTask DisposeAsync()
        {
            lock (_connections)
            {
                foreach (var c in _connections)
                {
                    try { c.Dispose(); } catch (Exception) { /* best effort */ }
                }
                _connections.Clear();
            }
            try { await _fixture.DeleteKeysAsync(Prefix); } catch (Exception) { /* best effort */ }
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            for (int attempt = 0; attempt < 5; attempt++)
            {
                try
                {
                    if (System.IO.Directory.Exists(Directory)) System.IO.Directory.Delete(Directory, recursive: true);
                    break;
                }
                catch (IOException) { await Task.Delay(100); }
                catch (UnauthorizedAccessException) { await Task.Delay(100); }
            }
        }
    }
}
