// The open Redis connection the engine's parts share, and the one way each of their Redis calls runs.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;

namespace WriteBehind.Engine.Redis
{
    /// <summary>What the cache, queue, dead-letter and status parts share: the multiplexer and its
    /// configuration, the options, the key layout, and the way a call runs: <see cref="RunAsync{T}"/> turns
    /// every Redis failure into a WriteBehindException (<see cref="RedisErrors"/>), <see cref="ProduceAsync{T}"/>
    /// adds the producers' retry at the high-water mark, <see cref="EnsureReplicatedAsync"/> waits for
    /// replica acknowledgements, and <see cref="ByPartition{T}"/> routes a batch to its partitions.</summary>
    internal sealed class RedisSession
    {
        public RedisSession(ConnectionMultiplexer mux, ConfigurationOptions config, WriteBehindOptions options, string endpoint)
        {
            Mux = mux;
            Config = config;
            Options = options;
            Endpoint = endpoint;
            Layout = new KeyLayout(options.KeyPrefix, options.Partitions);
            Keys = Layout.Partitions[0];
            Database = mux.GetDatabase();
            Errors = new RedisErrors(options, endpoint, Keys, config.SyncTimeout);
        }

        public ConnectionMultiplexer Mux { get; }
        public ConfigurationOptions Config { get; }
        public WriteBehindOptions Options { get; }
        /// <summary>The Redis endpoint(s), safe to print: never the password.</summary>
        public string Endpoint { get; }
        public KeyLayout Layout { get; }
        /// <summary>The first partition's keys (the only one unless -Partitions is above 1).</summary>
        public KeyNames Keys { get; }
        public IDatabase Database { get; }
        public RedisErrors Errors { get; }
        /// <summary>The Redis user the connection authenticated as ("default" when none was named).</summary>
        public string RedisUser => string.IsNullOrEmpty(Options.RedisUser) ? "default" : Options.RedisUser;

        /// <summary>Runs one call on the database; a Redis failure comes out as a WriteBehindException.</summary>
        public async Task<T> RunAsync<T>(Func<IDatabase, Task<T>> call)
        {
            try
            {
                return await call(Database).ConfigureAwait(false);
            }
            catch (Exception ex) when (Errors.Translate(ex) is WriteBehindException translated)
            {
                throw translated;
            }
        }

        /// <summary>A producer's write: at the high-water mark it fails with QueueFull, or under the Block
        /// policy retries (<see cref="Backoff.ForFullQueue"/>) until the queue has room or the timeout passes;
        /// <paramref name="cancellationToken"/> ends that wait (a refused call wrote nothing).</summary>
        public async Task<T> ProduceAsync<T>(Func<IDatabase, Task<T>> call, CancellationToken cancellationToken = default)
        {
            var backoff = Options.Backpressure == BackpressurePolicy.Block ? Backoff.ForFullQueue(Options.BackpressureTimeout) : null;
            while (true)
            {
                try
                {
                    return await RunAsync(call).ConfigureAwait(false);
                }
                catch (WriteBehindException ex) when (ex.ErrorId == ErrorIds.QueueFull && backoff != null && backoff.CanRetry)
                {
                    await backoff.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
        }

        /// <summary>Enumerates a StackExchange.Redis cursor (HSCAN) with its failures as WriteBehindExceptions.</summary>
        public IEnumerable<T> Guarded<T>(IEnumerable<T> source)
        {
            IEnumerator<T> e;
            try { e = source.GetEnumerator(); }
            catch (Exception ex) when (Errors.Translate(ex) is WriteBehindException translated) { throw translated; }
            using (e)
            {
                while (true)
                {
                    try
                    {
                        if (!e.MoveNext()) yield break;
                    }
                    catch (Exception ex) when (Errors.Translate(ex) is WriteBehindException translated) { throw translated; }
                    yield return e.Current;
                }
            }
        }

        /// <summary>Under <see cref="WriteBehindOptions.ReplicaAcks"/>, waits until that many replicas of the
        /// master holding <paramref name="key"/> acknowledged every write sent before on this connection (Redis WAIT).</summary>
        public async Task EnsureReplicatedAsync(RedisKey key, string what)
        {
            int want = Options.ReplicaAcks;
            if (want <= 0) return;
            long acked = await RunAsync(async db =>
            {
                var endpoint = await db.IdentifyEndpointAsync(key).ConfigureAwait(false);
                var server = endpoint == null ? Mux.GetServer(Mux.GetEndPoints()[0]) : Mux.GetServer(endpoint);
                return (long)await server.ExecuteAsync("WAIT", want, (long)Options.ReplicaTimeout.TotalMilliseconds).ConfigureAwait(false);
            }).ConfigureAwait(false);
            if (acked < want)
                throw new WriteBehindException(ErrorIds.ReplicationTimeout,
                    $"Only {acked} of {want} replica(s) acknowledged {what} on {key} within {Options.ReplicaTimeout.TotalMilliseconds:F0} ms. " +
                    "The master applied it; a failover before the replicas catch up could lose it.");
        }

        /// <summary>Positions of <paramref name="items"/> grouped by the partition of their user id.</summary>
        public IEnumerable<KeyValuePair<KeyNames, List<int>>> ByPartition<T>(IReadOnlyList<T> items, Func<T, string> userIdOf)
        {
            if (Layout.Count == 1)
            {
                yield return new KeyValuePair<KeyNames, List<int>>(Keys, Enumerable.Range(0, items.Count).ToList());
                yield break;
            }
            var groups = new Dictionary<int, List<int>>();
            for (int i = 0; i < items.Count; i++)
            {
                string id = userIdOf(items[i]);
                int p = id == null ? 0 : KeyLayout.IndexOf(id, Layout.Count);
                if (!groups.TryGetValue(p, out var list)) groups[p] = list = new List<int>();
                list.Add(i);
            }
            foreach (var g in groups.OrderBy(g => g.Key)) yield return new KeyValuePair<KeyNames, List<int>>(Layout.Partitions[g.Key], g.Value);
        }

        /// <summary>The high-water mark each partition's queue is held to: the mark shared out evenly.</summary>
        public RedisValue HighWater => Options.HighWaterMark <= 0 || Layout.Count == 1
            ? Options.HighWaterMark
            : (Options.HighWaterMark + Layout.Count - 1) / Layout.Count;
    }
}
