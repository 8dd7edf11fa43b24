// The profile cache in Redis: writing and removing profiles (with their versions and queued persists), reading, scanning.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;
using WriteBehind.Engine.Store;

namespace WriteBehind.Engine.Cache
{
    /// <summary>The cache hash and its versions, partition by partition. A write or delete bumps the
    /// profile's version and queues its persist in the same script (cache first, invariant 5); reads take
    /// JSON and version together; a read-through puts a store row back only when the cache knows nothing newer.</summary>
    internal sealed class ProfileCache
    {
        private readonly RedisSession _redis;

        public ProfileCache(RedisSession redis)
        {
            _redis = redis;
        }

        private KeyLayout Layout => _redis.Layout;

        /// <summary>Writes profiles (already validated JSON) to the cache, bumps their versions and queues
        /// their persists, in one script per partition. Returns the new versions (all 0 when
        /// <paramref name="withVersions"/> is false: the script then does not send them).</summary>
        public async Task<long[]> SetProfilesAsync(IReadOnlyList<KeyValuePair<string, string>> profiles, bool queue, bool pipelined = false, CancellationToken cancellationToken = default, bool withVersions = true)
        {
            var versions = new long[profiles.Count];
            var refusals = new PartitionRefusals(profiles.Count);
            await Task.WhenAll(_redis.ByPartition(profiles, p => p.Key).Select(group => refusals.Run(group.Value, async () =>
            {
                var keys = group.Key;
                var args = SetProfilesArgs(profiles, group.Value, queue, withVersions, _redis.HighWater);
                var reply = await _redis.ProduceAsync(db => Scripts.SetProfiles.EvaluateAsync(db,
                    new RedisKey[] { keys.Cache, keys.Versions, keys.Queue, keys.Redo, keys.PendingAge }, args, pipelined), cancellationToken).ConfigureAwait(false);
                await _redis.EnsureReplicatedAsync(keys.Cache, "the profile write").ConfigureAwait(false);
                if (!withVersions) return;
                var written = (long[])reply;
                for (int i = 0; i < group.Value.Count; i++) versions[group.Value[i]] = written[i];
            }))).ConfigureAwait(false);
            refusals.ThrowIfAny(versions);
            return versions;
        }

        // set_profiles.lua's ARGV for one partition's profiles (a loop over every record of a chunk).
        [MethodImpl(HotPath.Optimize)]
        private static RedisValue[] SetProfilesArgs(IReadOnlyList<KeyValuePair<string, string>> profiles, List<int> positions, bool queue, bool withVersions, RedisValue highWater)
        {
            var args = new RedisValue[3 + positions.Count * 2];
            args[0] = queue ? "1" : "0";
            args[1] = highWater;
            args[2] = withVersions ? "1" : "0";
            for (int i = 0; i < positions.Count; i++)
            {
                var profile = profiles[positions[i]];
                args[3 + 2 * i] = KeyNames.Field(profile.Key);
                args[4 + 2 * i] = profile.Value;
            }
            return args;
        }

        /// <summary>Removes profiles from the cache and queues their versioned tombstones, atomically per
        /// partition. Returns for each id whether a cached profile was removed.</summary>
        public async Task<bool[]> RemoveProfilesAsync(IReadOnlyList<string> userIds, bool pipelined = false, CancellationToken cancellationToken = default)
        {
            var removed = new bool[userIds.Count];
            var refusals = new PartitionRefusals(userIds.Count);
            await Task.WhenAll(_redis.ByPartition(userIds, id => id).Select(group => refusals.Run(group.Value, async () =>
            {
                var keys = group.Key;
                var args = new RedisValue[1 + group.Value.Count];
                args[0] = _redis.HighWater;
                for (int i = 0; i < group.Value.Count; i++) args[1 + i] = KeyNames.Field(userIds[group.Value[i]]);
                var result = await _redis.ProduceAsync(async db => (long[])await Scripts.RemoveProfiles.EvaluateAsync(db,
                    new RedisKey[] { keys.Cache, keys.Versions, keys.Queue, keys.Redo, keys.PendingAge }, args, pipelined).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
                await _redis.EnsureReplicatedAsync(keys.Cache, "the delete").ConfigureAwait(false);
                for (int i = 0; i < group.Value.Count; i++) removed[group.Value[i]] = result[i] == 1;
            }))).ConfigureAwait(false);
            refusals.ThrowIfAny(removed);
            return removed;
        }

        /// <summary>The cache's current JSON (null when absent or deleted) and version (0 when it never had
        /// one) of each profile, read together in one script.</summary>
        public async Task<ProfileRow[]> ReadStateAsync(IReadOnlyList<string> userIds)
        {
            var rows = new ProfileRow[userIds.Count];
            await Task.WhenAll(_redis.ByPartition(userIds, id => id).Select(group => _redis.RunAsync(async db =>
            {
                var fields = group.Value.Select(i => (RedisValue)KeyNames.Field(userIds[i])).ToArray();
                var raw = (RedisResult[])await Scripts.ReadState.EvaluateAsync(db, new RedisKey[] { group.Key.Cache, group.Key.Versions, group.Key.Redo }, fields).ConfigureAwait(false);
                for (int j = 0; j < group.Value.Count; j++)
                {
                    int i = group.Value[j];
                    rows[i] = new ProfileRow(userIds[i], raw[2 * j].IsNull ? null : (string)raw[2 * j], raw[2 * j + 1].IsNull ? 0 : (long)raw[2 * j + 1]);
                }
                return true;
            }))).ConfigureAwait(false);
            return rows;
        }

        /// <summary>Cached state of profiles (null entries for ids not in the cache).</summary>
        public async Task<ProfileRow[]> GetCachedAsync(IReadOnlyList<string> userIds)
        {
            var rows = await ReadStateAsync(userIds).ConfigureAwait(false);
            return rows.Select(r => r.IsDeleted ? null : new ProfileRow(r.UserId, r.Json, r.Version, ProfileSource.Cache)).ToArray();
        }

        /// <summary>Versions known to the cache (also for deleted profiles: the tombstones).</summary>
        public async Task<long?[]> GetVersionsAsync(IReadOnlyList<string> userIds)
        {
            var versions = new long?[userIds.Count];
            await Task.WhenAll(_redis.ByPartition(userIds, id => id).Select(group => _redis.RunAsync(async db =>
            {
                var values = await db.HashGetAsync(group.Key.Versions, group.Value.Select(i => (RedisValue)KeyNames.Field(userIds[i])).ToArray()).ConfigureAwait(false);
                for (int j = 0; j < values.Length; j++) versions[group.Value[j]] = values[j].IsNull ? (long?)null : (long)values[j];
                return true;
            }))).ConfigureAwait(false);
            return versions;
        }

        /// <summary>Streams every cached profile (HSCAN), with versions fetched page by page.</summary>
        public IEnumerable<ProfileRow> ScanCached(string userIdPattern, int pageSize) =>
            Layout.Partitions.SelectMany(keys => ScanCached(keys, userIdPattern, pageSize));

        private IEnumerable<ProfileRow> ScanCached(KeyNames keys, string userIdPattern, int pageSize)
        {
            var page = new List<HashEntry>(pageSize);
            var scan = _redis.Guarded(_redis.Database.HashScan(keys.Cache, "user:" + (userIdPattern ?? "*"), pageSize));
            foreach (var entry in scan)
            {
                page.Add(entry);
                if (page.Count == pageSize)
                {
                    foreach (var p in VersionPage(keys, page)) yield return p;
                    page.Clear();
                }
            }
            foreach (var p in VersionPage(keys, page)) yield return p;
        }

        private IEnumerable<ProfileRow> VersionPage(KeyNames keys, List<HashEntry> page)
        {
            if (page.Count == 0) yield break;
            RedisValue[] versions;
            try { versions = _redis.Database.HashGet(keys.Versions, page.Select(e => e.Name).ToArray()); }
            catch (Exception ex) when (_redis.Errors.Translate(ex) is WriteBehindException translated) { throw translated; }
            for (int i = 0; i < page.Count; i++)
            {
                string field = page[i].Name;
                yield return new ProfileRow(field.Substring(5), page[i].Value, versions[i].IsNull ? 0 : (long)versions[i], ProfileSource.Cache);
            }
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
            string pattern = escaped.ToString();
            return Layout.Partitions.SelectMany(keys => _redis.Guarded(_redis.Database.HashScan(keys.Cache, pattern, 250))).Take(max).Select(e => ((string)e.Name).Substring(5));
        }

        /// <summary>Puts a store row back into the cache after a miss unless the cache knows newer state.
        /// Returns the JSON now cached, or null when the cache has newer state (e.g. a newer delete).</summary>
        public Task<string> ReadThroughAsync(string userId, string json, long version) =>
            _redis.RunAsync(async db =>
            {
                var keys = Layout.Of(userId);
                var r = await Scripts.ReadThrough.EvaluateAsync(db, new RedisKey[] { keys.Cache, keys.Versions, keys.Redo },
                    new RedisValue[] { KeyNames.Field(userId), json, version }).ConfigureAwait(false);
                return r.IsNull ? null : (string)r;
            });
    }
}
