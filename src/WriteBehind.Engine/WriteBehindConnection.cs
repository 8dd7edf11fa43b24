// The front of the engine: one open connection to Redis and the store, over the parts that do the work.
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Cache;
using WriteBehind.Engine.Queue;
using WriteBehind.Engine.Redis;
using WriteBehind.Engine.Status;
using WriteBehind.Engine.Store;

namespace WriteBehind.Engine
{
    /// <summary>An open connection to the cache/queue (Redis) and, opened on first use, the store. All the
    /// module's Redis work goes through here; every multi-key change is one Lua script. The work itself is
    /// done by the parts: <see cref="RedisConnector"/> connects (with <see cref="RedisTls"/>, the
    /// <see cref="RedisPermission"/> probe and the <see cref="LayoutCheck"/>), <see cref="RedisSession"/> runs
    /// every call (errors by <see cref="RedisErrors"/>), <see cref="ProfileCache"/>, <see cref="WriteQueue"/>,
    /// <see cref="DeadLetterList"/>, <see cref="FlushSwitch"/> and <see cref="StatusReader"/> own their keys.</summary>
    public sealed partial class WriteBehindConnection : IDisposable
    {
        private readonly RedisSession _redis;
        private readonly ProfileCache _cache;
        private readonly WriteQueue _queue;
        private readonly DeadLetterList _deadLetters;
        private readonly FlushSwitch _pause;
        private readonly StatusReader _status;
        private readonly object _storeLock = new object();
        private IProfileStore _store;

        private WriteBehindConnection(RedisSession redis)
        {
            _redis = redis;
            _cache = new ProfileCache(redis);
            _queue = new WriteQueue(redis);
            _deadLetters = new DeadLetterList(redis, _queue);
            _pause = new FlushSwitch(redis);
            _status = new StatusReader(redis, _pause, () => Store, StoreUri);
        }

        /// <summary>The options this connection was opened with (a copy; no password is readable from it).</summary>
        public WriteBehindOptions Options => _redis.Options;
        /// <summary>Every partition's keys.</summary>
        public KeyLayout Layout => _redis.Layout;
        /// <summary>The first partition's keys (the only one unless -Partitions is above 1).</summary>
        public KeyNames Keys => _redis.Keys;
        /// <summary>True when connected to a Redis Cluster.</summary>
        public bool IsCluster { get; private set; }
        /// <summary>The Redis endpoint(s), safe to print: never the password.</summary>
        public string RedisEndpoint => _redis.Endpoint;
        /// <summary>The store URI, safe to print: never the password.</summary>
        public string StoreUri => StoreFactory.Display(Options.Store);
        /// <summary>The Redis user the connection authenticated as ("default" when none was named).</summary>
        public string RedisUser => _redis.RedisUser;
        /// <summary>Whether the connection uses TLS.</summary>
        public bool UsesTls => _redis.Config.Ssl;

        /// <summary>Names no secret.</summary>
        public override string ToString() => $"WriteBehind: Redis {RedisEndpoint}{(UsesTls ? " (TLS)" : "")} as {RedisUser}; store {StoreUri}; key prefix '{Keys.Prefix}'";
        /// <summary>Whether the Redis multiplexer is connected now.</summary>
        public bool IsConnected => _redis.Mux.IsConnected;
        internal IDatabase Database => _redis.Database;

        /// <summary>Connects to Redis (null <paramref name="options"/>: from the environment), checks TLS, the ACL permissions and the partition layout, and returns the open connection; the store opens on first use.</summary>
        public static async Task<WriteBehindConnection> ConnectAsync(WriteBehindOptions options)
        {
            options = options?.Clone() ?? WriteBehindOptions.FromEnvironment();
            _ = new KeyLayout(options.KeyPrefix, options.Partitions);   // checks the prefix and count first
            if (options.ReplicaAcks < 0)
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, "ReplicaAcks must not be negative.");
            var config = RedisConnector.Configure(options, out var tls);
            string endpoint = RedisConnector.EndpointsOf(config);
            var mux = await RedisConnector.ConnectAsync(config, endpoint, options, tls, checkRefused: true).ConfigureAwait(false);
            var connection = new WriteBehindConnection(new RedisSession(mux, config, options, endpoint));
            try
            {
                await RedisPermission.CheckAsync(connection._redis).ConfigureAwait(false);
                connection.IsCluster = await LayoutCheck.CheckAsync(connection._redis).ConfigureAwait(false);
                await ReplicaCheck.CheckAsync(connection._redis).ConfigureAwait(false);
            }
            catch (Exception)
            {
                connection.Dispose();
                throw;
            }
            return connection;
        }

        /// <summary>The store, opened on first use.</summary>
        public IProfileStore Store
        {
            get
            {
                lock (_storeLock)
                {
                    if (_store == null) _store = StoreFactory.Open(Options);
                    return _store;
                }
            }
        }

        /// <summary>The open store's description, or the URI when the store cannot be opened (safe to print).</summary>
        public string StoreDescription
        {
            get { try { return Store.Description; } catch (WriteBehindException) { return StoreUri; } }
        }

        // ---- Redis calls for the engine's other parts (Flusher, ConsistencyChecker, QueueCensus) ----

        /// <summary>Runs one call on the database; a Redis failure comes out as a WriteBehindException.</summary>
        internal Task<T> RedisAsync<T>(Func<IDatabase, Task<T>> call) => _redis.RunAsync(call);

        /// <summary>A producer's write: QueueFull at the high-water mark, or under the Block policy a retry until there is room.</summary>
        internal Task<T> ProduceAsync<T>(Func<IDatabase, Task<T>> call, CancellationToken cancellationToken = default) => _redis.ProduceAsync(call, cancellationToken);

        /// <summary>Under <see cref="WriteBehindOptions.ReplicaAcks"/>, waits for the replicas of the master holding <paramref name="key"/>.</summary>
        internal Task EnsureReplicatedAsync(RedisKey key, string what) => _redis.EnsureReplicatedAsync(key, what);

        /// <summary>HSCANs a hash, its failures as WriteBehindExceptions like every other call's.</summary>
        internal IEnumerable<HashEntry> ScanHash(RedisKey key, RedisValue pattern, int pageSize) => _redis.Guarded(Database.HashScan(key, pattern, pageSize));

        /// <summary>Removes the password from a message, whatever the message is.</summary>
        internal static string Scrub(string message, WriteBehindOptions options) => RedisErrors.Scrub(message, options);

        internal static FlushTotals TotalsOf(IReadOnlyDictionary<string, RedisValue> stats) => StatusReader.TotalsOf(stats);

        // ---- the profile cache ----

        /// <summary>Writes profiles (already validated JSON) to the cache, bumps their versions and queues
        /// their persists, in one script per partition. Returns the new versions.
        /// <paramref name="pipelined"/>: the caller sends its next call before this one's reply, so the script
        /// goes as EVAL text (no NOSCRIPT retry that the next call could overtake). <paramref name="cancellationToken"/>
        /// ends a backpressure wait (Block policy); a call once sent is not cancelled. <paramref name="withVersions"/>
        /// false: the caller has no use for the versions (they come back as 0), and Redis sends one count instead.
        /// </summary>
        public Task<long[]> SetProfilesAsync(IReadOnlyList<KeyValuePair<string, string>> profiles, bool queue, bool pipelined = false, CancellationToken cancellationToken = default, bool withVersions = true) =>
            _cache.SetProfilesAsync(profiles, queue, pipelined, cancellationToken, withVersions);

        /// <summary>Removes profiles from the cache and queues their versioned tombstones, atomically per
        /// partition. Returns for each id whether a cached profile was removed.
        /// <paramref name="pipelined"/>: the caller sends its next call before this one's reply, so the script
        /// goes as EVAL text (no NOSCRIPT retry that the next call could overtake). <paramref name="cancellationToken"/>
        /// ends a backpressure wait (Block policy); a call once sent is not cancelled.
        /// </summary>
        public Task<bool[]> RemoveProfilesAsync(IReadOnlyList<string> userIds, bool pipelined = false, CancellationToken cancellationToken = default) =>
            _cache.RemoveProfilesAsync(userIds, pipelined, cancellationToken);

        /// <summary>The cache's current JSON (null when absent or deleted) and version (0 when it never had
        /// one) of each profile, read together in one script.</summary>
        public Task<ProfileRow[]> ReadStateAsync(IReadOnlyList<string> userIds) => _cache.ReadStateAsync(userIds);

        /// <summary>Cached state of profiles (null entries for ids not in the cache).</summary>
        public Task<ProfileRow[]> GetCachedAsync(IReadOnlyList<string> userIds) => _cache.GetCachedAsync(userIds);

        /// <summary>Versions known to the cache (also for deleted profiles: the tombstones).</summary>
        public Task<long?[]> GetVersionsAsync(IReadOnlyList<string> userIds) => _cache.GetVersionsAsync(userIds);

        /// <summary>Streams every cached profile (HSCAN), with versions fetched page by page.</summary>
        public IEnumerable<ProfileRow> ScanCached(string userIdPattern = "*", int pageSize = 1000) => _cache.ScanCached(userIdPattern, pageSize);

        /// <summary>Up to <paramref name="max"/> cached user ids that start with <paramref name="prefix"/>
        /// (glob characters in it are matched literally).</summary>
        public IEnumerable<string> ScanUserIds(string prefix, int max) => _cache.ScanUserIds(prefix, max);

        /// <summary>Puts a store row back into the cache after a miss unless the cache knows newer state.
        /// Returns the JSON now cached, or null when the cache has newer state (e.g. a newer delete).</summary>
        public Task<string> ReadThroughAsync(string userId, string json, long version) => _cache.ReadThroughAsync(userId, json, version);

        // ---- the write queue ----

        /// <summary>The queue an item goes to: its user id's partition (an item with no readable id: the first).</summary>
        public string QueueOf(string item) => _queue.QueueOf(item);

        /// <summary>LPUSHes items (already checked against the grammar) to their partitions' queues. Returns
        /// the depth after of the last queue written.
        /// <paramref name="pipelined"/>: the caller sends its next call before this one's reply, so the script
        /// goes as EVAL text (no NOSCRIPT retry that the next call could overtake). <paramref name="cancellationToken"/>
        /// ends a backpressure wait (Block policy); a call once sent is not cancelled.
        /// </summary>
        public Task<long> EnqueueAsync(IReadOnlyList<string> items, bool pipelined = false, CancellationToken cancellationToken = default) =>
            _queue.EnqueueAsync(items, pipelined, cancellationToken);

        /// <summary>Deletes every partition's queue; returns how many items it held.</summary>
        public Task<long> ClearQueueAsync() => _queue.ClearAsync();

        /// <summary>Items waiting in every partition's queue.</summary>
        public Task<long> GetQueueDepthAsync() => _queue.GetDepthAsync();

        /// <summary>The pending items, oldest first (partition by partition).</summary>
        public Task<string[]> GetQueueItemsAsync(long max = 1000) => _queue.GetItemsAsync(max);

        /// <summary>Blocks until the queue holds an item or the timeout passes, and takes nothing (on a
        /// connection of its own, opened on first use).</summary>
        public Task<bool> WaitForItemsAsync(TimeSpan timeout) => _queue.WaitForItemsAsync(timeout);

        // ---- dead letters ----

        /// <summary>Up to <paramref name="max"/> dead-lettered items with their failure details, oldest first.</summary>
        public Task<DeadLetter[]> GetDeadLettersAsync(long max = long.MaxValue) => _deadLetters.GetAsync(max);

        /// <summary>Requeues dead-lettered items. A poison item goes back as it was; the items of a row the
        /// store refused go back as <c>set:user:&lt;id&gt;</c> (persist the cached state), because their
        /// effect is already in the cache and must not be merged again. Returns per item whether it was found.</summary>
        public Task<bool[]> RestoreDeadLettersAsync(IReadOnlyList<DeadLetter> entries) => _deadLetters.TakeAsync(entries, restore: true);

        /// <summary>Deletes dead-lettered items for good. Returns per item whether it was found.</summary>
        public Task<bool[]> RemoveDeadLettersAsync(IReadOnlyList<DeadLetter> entries) => _deadLetters.TakeAsync(entries, restore: false);

        /// <summary>What Restore-WriteBehindDeadLetter pushes back for an entry.</summary>
        public static string RequeueTextOf(DeadLetter entry) => DeadLetterList.RequeueTextOf(entry);

        // ---- status and pausing ----

        /// <summary>The deployment's status; with <paramref name="includeStore"/> also counts the store's live profiles.</summary>
        public Task<WriteBehindStatus> GetStatusAsync(bool includeStore, CancellationToken cancellationToken) => _status.GetStatusAsync(includeStore, cancellationToken);

        /// <summary>Pauses every flusher of this prefix at its next batch boundary (never mid-batch):
        /// producers keep working up to the high-water mark. Keeps the first pause's time when already paused.</summary>
        public Task<FlushPause> SuspendFlushAsync(string reason) => _pause.SuspendAsync(reason);

        /// <summary>Lets the flushers go on. Returns the pause that was lifted (Paused false when there was none).</summary>
        public Task<FlushPause> ResumeFlushAsync() => _pause.ResumeAsync();

        /// <summary>Whether the flushers are paused, since when and why.</summary>
        public Task<FlushPause> GetPauseAsync() => _pause.GetAsync();

        /// <summary>Closes the Redis connections and the store.</summary>
        public void Dispose()
        {
            _queue.Dispose();
            lock (_storeLock)
            {
                _store?.Dispose();
                _store = null;
            }
            _redis.Mux.Dispose();
        }
    }
}
