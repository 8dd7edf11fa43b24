using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;
using WriteBehind.Engine.Store;

namespace WriteBehind.Engine
{
    /// <summary>An open connection to the cache/queue (Redis) and, opened on first use, the store. All the
    /// module's Redis work goes through here; every multi-key change is one Lua script.</summary>
    public sealed class WriteBehindConnection : IDisposable
    {
        private readonly ConnectionMultiplexer _mux;
        private readonly ConfigurationOptions _config;
        private readonly object _storeLock = new object();
        private ConnectionMultiplexer _waiter;
        private IProfileStore _store;

        private WriteBehindConnection(ConnectionMultiplexer mux, ConfigurationOptions config, WriteBehindOptions options, string endpoint)
        {
            _mux = mux;
            _config = config;
            Options = options;
            RedisEndpoint = endpoint;
            Keys = new KeyNames(options.KeyPrefix);
            Database = mux.GetDatabase();
        }

        public WriteBehindOptions Options { get; }
        public KeyNames Keys { get; }
        /// <summary>The Redis endpoint(s), safe to print: never the password.</summary>
        public string RedisEndpoint { get; }
        public string StoreUri => StoreFactory.Display(Options.Store);
        public bool IsConnected => _mux.IsConnected;
        internal IDatabase Database { get; }

        public static async Task<WriteBehindConnection> ConnectAsync(WriteBehindOptions options)
        {
            options = options?.Clone() ?? WriteBehindOptions.FromEnvironment();
            ConfigurationOptions config;
            try
            {
                config = ConfigurationOptions.Parse(options.Redis ?? WriteBehindOptions.DefaultRedis);
            }
            catch (Exception ex) when (ex is ArgumentException || ex is FormatException)
            {
                throw new WriteBehindException(ErrorIds.InvalidConfiguration,
                    "The Redis configuration string could not be parsed: " + Scrub(ex.Message, options), null);
            }
            if (options.RedisUser != null) config.User = options.RedisUser;
            if (options.RedisPassword != null) config.Password = options.RedisPassword;
            if ((options.Redis ?? "").IndexOf("connectTimeout", StringComparison.OrdinalIgnoreCase) < 0)
                config.ConnectTimeout = (int)options.ConnectTimeout.TotalMilliseconds;
            config.AbortOnConnectFail = true;
            config.ConnectRetry = 1;
            config.ClientName = "WriteBehind";
            if (config.EndPoints.Count == 0) config.EndPoints.Add("localhost", 6379);
            string endpoint = string.Join(",", config.EndPoints.Select(FormatEndPoint));
            try
            {
                var mux = await ConnectionMultiplexer.ConnectAsync(config).ConfigureAwait(false);
                return new WriteBehindConnection(mux, config, options, endpoint);
            }
            catch (Exception ex) when (ex is RedisException || ex is TimeoutException || ex is System.Net.Sockets.SocketException)
            {
                throw new WriteBehindException(ErrorIds.RedisUnavailable,
                    $"Cannot connect to Redis at {endpoint}: {Reason(ex, options)}", null);
            }
        }

        private static string FormatEndPoint(EndPoint ep)
        {
            switch (ep)
            {
                case DnsEndPoint dns: return dns.Host + ":" + dns.Port.ToString(CultureInfo.InvariantCulture);
                case IPEndPoint ip: return ip.ToString();
                default: return ep.ToString();
            }
        }

        private static string Reason(Exception ex, WriteBehindOptions options)
        {
            string msg = ex.Message;
            if (msg.IndexOf("NOAUTH", StringComparison.Ordinal) >= 0 || msg.IndexOf("WRONGPASS", StringComparison.Ordinal) >= 0
                || msg.IndexOf("AuthenticationFailure", StringComparison.Ordinal) >= 0)
                return "authentication failed (check the user name and password)";
            int cut = msg.IndexOf(" on ", StringComparison.Ordinal);
            if (msg.StartsWith("It was not possible to connect", StringComparison.Ordinal))
                return "the server did not answer (is it running, and is the port right?)";
            return Scrub(cut > 0 ? msg.Substring(0, cut) : msg, options);
        }

        /// <summary>Removes the password from a message, whatever the message is.</summary>
        internal static string Scrub(string message, WriteBehindOptions options)
        {
            if (string.IsNullOrEmpty(message)) return message;
            if (!string.IsNullOrEmpty(options?.RedisPassword)) message = message.Replace(options.RedisPassword, "***");
            try
            {
                var parsed = ConfigurationOptions.Parse(options?.Redis ?? "", ignoreUnknown: true);
                if (!string.IsNullOrEmpty(parsed.Password)) message = message.Replace(parsed.Password, "***");
            }
            catch (Exception) { /* an unparsable string has no password to hide beyond the option itself */ }
            return message;
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

        public string StoreDescription
        {
            get { try { return Store.Description; } catch (WriteBehindException) { return StoreUri; } }
        }

        internal async Task<T> RedisAsync<T>(Func<IDatabase, Task<T>> call)
        {
            try
            {
                return await call(Database).ConfigureAwait(false);
            }
            catch (RedisServerException ex) when (ex.Message.IndexOf("WB_QUEUE_FULL", StringComparison.Ordinal) >= 0)
            {
                string msg = ex.Message.Substring(ex.Message.IndexOf("WB_QUEUE_FULL", StringComparison.Ordinal) + "WB_QUEUE_FULL ".Length);
                throw new WriteBehindException(ErrorIds.QueueFull, "The write queue is full: " + msg + ". Run Invoke-WriteBehindFlush or raise -HighWaterMark.");
            }
            catch (Exception ex) when (ex is RedisConnectionException || ex is RedisTimeoutException || ex is ObjectDisposedException)
            {
                throw new WriteBehindException(ErrorIds.RedisUnavailable,
                    $"Lost the connection to Redis at {RedisEndpoint}: {Scrub(Summary(ex.Message), Options)}", null);
            }
            catch (RedisServerException ex)
            {
                throw new WriteBehindException(ErrorIds.RedisCommandFailed,
                    $"Redis at {RedisEndpoint} refused a command: {Scrub(FirstLine(ex.Message), Options)}", null);
            }
        }

        /// <summary>A producer's write: at the high-water mark it fails with QueueFull, or under the Block
        /// policy waits (backing off up to 500 ms) until the queue has room or the timeout passes.</summary>
        internal async Task<T> ProduceAsync<T>(Func<IDatabase, Task<T>> call)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int delay = 20;
            while (true)
            {
                try
                {
                    return await RedisAsync(call).ConfigureAwait(false);
                }
                catch (WriteBehindException ex) when (ex.ErrorId == ErrorIds.QueueFull
                                                      && Options.Backpressure == BackpressurePolicy.Block
                                                      && clock.Elapsed < Options.BackpressureTimeout)
                {
                    await Task.Delay(delay).ConfigureAwait(false);
                    delay = Math.Min(delay * 2, 500);
                }
            }
        }

        /// <summary>StackExchange.Redis's failure without its connection diagnostics ("... on host:port/Interactive, ...").</summary>
        private static string Summary(string message)
        {
            string line = FirstLine(message);
            int cut = line.IndexOf(" on ", StringComparison.Ordinal);
            return cut > 0 ? line.Substring(0, cut) : line;
        }

        private static string FirstLine(string s)
        {
            int nl = s.IndexOf('\n');
            return nl < 0 ? s : s.Substring(0, nl).TrimEnd('\r');
        }

        private RedisValue HighWater => Options.HighWaterMark;

        /// <summary>Writes profiles (already validated JSON) to the cache, bumps their versions and queues
        /// their persists, in one script per call. Returns the new versions.</summary>
        public Task<long[]> SetProfilesAsync(IReadOnlyList<KeyValuePair<string, string>> profiles, bool queue)
        {
            var args = new RedisValue[2 + profiles.Count * 2];
            args[0] = queue ? "1" : "0";
            args[1] = HighWater;
            for (int i = 0; i < profiles.Count; i++)
            {
                args[2 + 2 * i] = KeyNames.Field(profiles[i].Key);
                args[3 + 2 * i] = profiles[i].Value;
            }
            var keys = new RedisKey[] { Keys.Cache, Keys.Versions, Keys.Queue };
            return ProduceAsync(async db => (long[])await Scripts.SetProfiles.EvaluateAsync(db, keys, args).ConfigureAwait(false));
        }

        /// <summary>Removes profiles from the cache and queues their versioned tombstones, atomically.
        /// Returns for each id whether a cached profile was removed.</summary>
        public Task<bool[]> RemoveProfilesAsync(IReadOnlyList<string> userIds)
        {
            var args = new RedisValue[1 + userIds.Count];
            args[0] = HighWater;
            for (int i = 0; i < userIds.Count; i++) args[1 + i] = KeyNames.Field(userIds[i]);
            var keys = new RedisKey[] { Keys.Cache, Keys.Versions, Keys.Queue };
            return ProduceAsync(async db =>
                ((long[])await Scripts.RemoveProfiles.EvaluateAsync(db, keys, args).ConfigureAwait(false)).Select(x => x == 1).ToArray());
        }

        /// <summary>LPUSHes items (already checked against the grammar). Returns the queue depth after.</summary>
        public Task<long> EnqueueAsync(IReadOnlyList<string> items)
        {
            var args = new RedisValue[1 + items.Count];
            args[0] = HighWater;
            for (int i = 0; i < items.Count; i++) args[1 + i] = items[i];
            var keys = new RedisKey[] { Keys.Queue };
            return ProduceAsync(async db => (long)await Scripts.Enqueue.EvaluateAsync(db, keys, args).ConfigureAwait(false));
        }

        public Task<long> ClearQueueAsync() =>
            RedisAsync(async db => (long)await Scripts.ClearQueue.EvaluateAsync(db, new RedisKey[] { Keys.Queue }, Array.Empty<RedisValue>()).ConfigureAwait(false));

        public Task<long> GetQueueDepthAsync() => RedisAsync(db => db.ListLengthAsync(Keys.Queue));

        /// <summary>The pending items, oldest first.</summary>
        public Task<string[]> GetQueueItemsAsync(long max = 1000) =>
            RedisAsync(async db =>
            {
                var values = await db.ListRangeAsync(Keys.Queue, -max, -1).ConfigureAwait(false);
                Array.Reverse(values);
                return values.Select(v => (string)v).ToArray();
            });

        /// <summary>The cache's current JSON (null when absent or deleted) and version (0 when it never had
        /// one) of each profile, read together in one script.</summary>
        public Task<ProfileRow[]> ReadStateAsync(IReadOnlyList<string> userIds) =>
            RedisAsync(async db =>
            {
                var fields = userIds.Select(id => (RedisValue)KeyNames.Field(id)).ToArray();
                var raw = (RedisResult[])await Scripts.ReadState.EvaluateAsync(db, new RedisKey[] { Keys.Cache, Keys.Versions }, fields).ConfigureAwait(false);
                var rows = new ProfileRow[userIds.Count];
                for (int i = 0; i < rows.Length; i++)
                    rows[i] = new ProfileRow(userIds[i], raw[2 * i].IsNull ? null : (string)raw[2 * i], raw[2 * i + 1].IsNull ? 0 : (long)raw[2 * i + 1]);
                return rows;
            });

        /// <summary>Cached state of profiles (null entries for ids not in the cache).</summary>
        public async Task<ProfileState[]> GetCachedAsync(IReadOnlyList<string> userIds)
        {
            var rows = await ReadStateAsync(userIds).ConfigureAwait(false);
            return rows.Select(r => r.IsDeleted ? null : new ProfileState(r.UserId, r.Json, r.Version, ProfileSource.Cache)).ToArray();
        }

        /// <summary>Versions known to the cache (also for deleted profiles: the tombstones).</summary>
        public Task<long?[]> GetVersionsAsync(IReadOnlyList<string> userIds) =>
            RedisAsync(async db =>
            {
                var values = await db.HashGetAsync(Keys.Versions, userIds.Select(id => (RedisValue)KeyNames.Field(id)).ToArray()).ConfigureAwait(false);
                return values.Select(v => v.IsNull ? (long?)null : (long)v).ToArray();
            });

        /// <summary>Streams every cached profile (HSCAN), with versions fetched page by page.</summary>
        public IEnumerable<ProfileState> ScanCached(string userIdPattern = "*", int pageSize = 1000)
        {
            var page = new List<HashEntry>(pageSize);
            IEnumerable<HashEntry> scan;
            try
            {
                scan = Database.HashScan(Keys.Cache, "user:" + (userIdPattern ?? "*"), pageSize);
            }
            catch (Exception ex) when (ex is RedisConnectionException || ex is RedisTimeoutException)
            {
                throw new WriteBehindException(ErrorIds.RedisUnavailable, $"Lost the connection to Redis at {RedisEndpoint}.", null);
            }
            foreach (var entry in scan)
            {
                page.Add(entry);
                if (page.Count == pageSize)
                {
                    foreach (var p in VersionPage(page)) yield return p;
                    page.Clear();
                }
            }
            foreach (var p in VersionPage(page)) yield return p;
        }

        /// <summary>Up to <paramref name="max"/> cached user ids that start with <paramref name="prefix"/>
        /// (glob characters in it are matched literally).</summary>
        public IEnumerable<string> ScanUserIds(string prefix, int max)
        {
            var escaped = new System.Text.StringBuilder("user:");
            foreach (char c in prefix ?? string.Empty)
            {
                if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') escaped.Append('\\');
                escaped.Append(c);
            }
            escaped.Append('*');
            return Database.HashScan(Keys.Cache, escaped.ToString(), 250).Take(max).Select(e => ((string)e.Name).Substring(5));
        }

        private IEnumerable<ProfileState> VersionPage(List<HashEntry> page)
        {
            if (page.Count == 0) yield break;
            var versions = Database.HashGet(Keys.Versions, page.Select(e => e.Name).ToArray());
            for (int i = 0; i < page.Count; i++)
            {
                string field = page[i].Name;
                yield return new ProfileState(field.Substring(5), page[i].Value, versions[i].IsNull ? 0 : (long)versions[i], ProfileSource.Cache);
            }
        }

        /// <summary>Puts a store row back into the cache after a miss unless the cache knows newer state.
        /// Returns the JSON now cached, or null when the cache has newer state (e.g. a newer delete).</summary>
        public Task<string> ReadThroughAsync(string userId, string json, long version) =>
            RedisAsync(async db =>
            {
                var r = await Scripts.ReadThrough.EvaluateAsync(db, new RedisKey[] { Keys.Cache, Keys.Versions },
                    new RedisValue[] { KeyNames.Field(userId), json, version }).ConfigureAwait(false);
                return r.IsNull ? null : (string)r;
            });

        public async Task<DeadLetter[]> GetDeadLettersAsync(long max = long.MaxValue)
        {
            return await RedisAsync(async db =>
            {
                // LPUSHed: the left end holds the newest, the right end the oldest
                var items = await db.ListRangeAsync(Keys.DeadLetters, 0, max == long.MaxValue ? -1 : max - 1).ConfigureAwait(false);
                Array.Reverse(items);
                var infos = items.Length == 0 ? Array.Empty<RedisValue>() : await db.HashGetAsync(Keys.DeadLetterInfo, items).ConfigureAwait(false);
                var result = new DeadLetter[items.Length];
                for (int i = 0; i < items.Length; i++) result[i] = ParseDeadLetter(i, items[i], infos[i]);
                return result;
            }).ConfigureAwait(false);
        }

        /// <summary>Requeues dead-lettered items. A poison item goes back as it was; the items of a row the
        /// store refused go back as <c>set:user:&lt;id&gt;</c> (persist the cached state), because their
        /// effect is already in the cache and must not be merged again. Returns per item whether it was found.</summary>
        public Task<bool[]> RestoreDeadLettersAsync(IReadOnlyList<DeadLetter> entries) => TakeDeadLettersAsync(entries, restore: true);

        /// <summary>Deletes dead-lettered items for good. Returns per item whether it was found.</summary>
        public Task<bool[]> RemoveDeadLettersAsync(IReadOnlyList<DeadLetter> entries) => TakeDeadLettersAsync(entries, restore: false);

        /// <summary>What Restore-WriteBehindDeadLetter pushes back for an entry.</summary>
        public static string RequeueTextOf(DeadLetter entry)
        {
            if (entry.Reason != null && entry.Reason.StartsWith("store rejected", StringComparison.Ordinal))
                return "set:user:" + QueueItem.UserIdOf(entry.Item);
            return entry.Item;
        }

        private Task<bool[]> TakeDeadLettersAsync(IReadOnlyList<DeadLetter> entries, bool restore)
        {
            var args = new RedisValue[1 + entries.Count * 2];
            args[0] = restore ? "restore" : "remove";
            for (int i = 0; i < entries.Count; i++)
            {
                args[1 + 2 * i] = entries[i].ItemBytes ?? (RedisValue)entries[i].Item;
                args[2 + 2 * i] = restore ? RequeueTextOf(entries[i]) : string.Empty;
            }
            var keys = new RedisKey[] { Keys.DeadLetters, Keys.DeadLetterInfo, Keys.Queue };
            return RedisAsync(async db =>
                ((long[])await Scripts.DeadLetters.EvaluateAsync(db, keys, args).ConfigureAwait(false)).Select(n => n == 1).ToArray());
        }

        private static DeadLetter ParseDeadLetter(long index, RedisValue item, RedisValue info)
        {
            string reason = null;
            int attempts = 0;
            DateTimeOffset? first = null, last = null;
            if (!info.IsNull)
            {
                string[] parts = ((string)info).Split(new[] { '|' }, 4);
                if (parts.Length == 4)
                {
                    int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out attempts);
                    if (long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long f)) first = DateTimeOffset.FromUnixTimeMilliseconds(f);
                    if (long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out long l)) last = DateTimeOffset.FromUnixTimeMilliseconds(l);
                    reason = parts[3];
                }
            }
            return new DeadLetter(index, item, reason, attempts, first, last) { ItemBytes = item };
        }

        public async Task<WriteBehindStatus> GetStatusAsync(bool includeStore, CancellationToken cancellationToken)
        {
            var status = await RedisAsync(async db =>
            {
                var batch = db.CreateBatch();
                var depth = batch.ListLengthAsync(Keys.Queue);
                var dead = batch.ListLengthAsync(Keys.DeadLetters);
                var cached = batch.HashLengthAsync(Keys.Cache);
                var leases = batch.SortedSetRangeByScoreWithScoresAsync(Keys.Leases);
                var stats = batch.HashGetAllAsync(Keys.Stats);
                batch.Execute();
                await Task.WhenAll(depth, dead, cached, leases, stats).ConfigureAwait(false);
                long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                // every lease's length in one round trip
                var lengths = await Task.WhenAll(leases.Result.Select(l => db.ListLengthAsync((string)l.Element))).ConfigureAwait(false);
                long inFlight = lengths.Sum();
                var s = stats.Result.ToDictionary(e => (string)e.Name, e => e.Value);
                var st = new WriteBehindStatus
                {
                    Redis = RedisEndpoint,
                    Store = StoreUri,
                    KeyPrefix = Keys.Prefix,
                    QueueDepth = depth.Result,
                    DeadLetters = dead.Result,
                    CachedProfiles = cached.Result,
                    Leases = leases.Result.Length,
                    ExpiredLeases = leases.Result.Count(l => l.Score < now),
                    InFlight = inFlight,
                    HighWaterMark = Options.HighWaterMark,
                };
                if (s.TryGetValue("lastFlushAt", out var at)) st.LastFlushAt = DateTimeOffset.FromUnixTimeMilliseconds((long)at);
                if (s.TryGetValue("lastFlushDequeued", out var dq)) st.LastFlushDequeued = (long)dq;
                if (s.TryGetValue("lastFlushRate", out var rate)) st.LastFlushItemsPerSecond = double.Parse(rate, CultureInfo.InvariantCulture);
                if (s.TryGetValue("lastFlushError", out var err) && !err.IsNullOrEmpty) st.LastFlushError = err;
                if (st.QueueDepth == 0 && st.InFlight == 0) st.Lag = TimeSpan.Zero;
                else if (s.TryGetValue("lastDrainedAt", out var drained))
                    st.Lag = TimeSpan.FromMilliseconds(Math.Max(0, now - (long)drained));
                return st;
            }).ConfigureAwait(false);
            if (includeStore)
            {
                try
                {
                    status.Store = Store.Description;
                    status.StoredProfiles = await Store.CountAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (StoreException) { status.StoredProfiles = null; }
            }
            return status;
        }

        /// <summary>Blocks until the queue holds an item or the timeout passes, and takes nothing: BLMOVE from
        /// the queue's right end to its right end leaves the list as it was. It runs on a connection of its
        /// own (opened on first use), because a blocking command would stall every other command sharing one.</summary>
        public async Task<bool> WaitForItemsAsync(TimeSpan timeout)
        {
            if (_waiter == null)
            {
                try
                {
                    var waiterConfig = _config.Clone();
                    waiterConfig.ClientName = "WriteBehind-wait";
                    _waiter = await ConnectionMultiplexer.ConnectAsync(waiterConfig).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RedisException || ex is TimeoutException)
                {
                    throw new WriteBehindException(ErrorIds.RedisUnavailable, $"Cannot connect to Redis at {RedisEndpoint}: {Reason(ex, Options)}", null);
                }
            }
            var waiter = _waiter;
            try
            {
                var r = await waiter.GetDatabase().ExecuteAsync("BLMOVE", (RedisKey)Keys.Queue, (RedisKey)Keys.Queue, "RIGHT", "RIGHT",
                    Math.Max(0.01, timeout.TotalSeconds).ToString("0.###", CultureInfo.InvariantCulture)).ConfigureAwait(false);
                return !r.IsNull;
            }
            catch (Exception ex) when (ex is RedisConnectionException || ex is RedisTimeoutException)
            {
                throw new WriteBehindException(ErrorIds.RedisUnavailable,
                    $"Lost the connection to Redis at {RedisEndpoint}: {Scrub(Summary(ex.Message), Options)}", null);
            }
        }

        public void Dispose()
        {
            _waiter?.Dispose();
            lock (_storeLock)
            {
                _store?.Dispose();
                _store = null;
            }
            _mux.Dispose();
        }
    }
}
