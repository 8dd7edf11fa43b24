// The flusher's Redis calls for in-flight leases: lease.lua (pop and apply), renew, ack, claim, reject, partition owners.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;
using WriteBehind.Engine.Store;

namespace WriteBehind.Engine
{
    /// <summary>One in-flight lease: its list and the partition it belongs to.</summary>
    internal sealed class Lease
    {
        public Lease(KeyNames keys, string key)
        {
            Keys = keys;
            Key = key;
        }

        public KeyNames Keys { get; }
        public string Key { get; }
    }

    /// <summary>What one call of lease.lua took from a partition's queue.</summary>
    internal sealed class LeasedBatch
    {
        public Lease Lease;
        public long Dequeued;
        public long DeadLettered;
        public long Leased;
        /// <summary>The batch a lease cut short by a server crash had merged, finished by this call: the
        /// queue may hold more than it gave.</summary>
        public bool Resumed;
        /// <summary>The latest state of every profile the batch touched, once each, in first-touch order.</summary>
        public List<ProfileRow> Rows;
    }

    /// <summary>Every script call the flush makes about leases, in one place: each takes the keys of one
    /// partition (<see cref="KeyNames"/>) and goes through the connection's Redis error translation.</summary>
    internal sealed class LeaseClient
    {
        private readonly WriteBehindConnection _connection;

        public LeaseClient(WriteBehindConnection connection)
        {
            _connection = connection ?? throw new ArgumentNullException(nameof(connection));
        }

        /// <summary>Takes up to <paramref name="max"/> of the oldest items of the partition's queue into a new
        /// lease and applies them to the cache, atomically (lease.lua).</summary>
        public async Task<LeasedBatch> LeaseAsync(KeyNames keys, int max, TimeSpan leaseDuration)
        {
            string leaseKey = keys.LeasePrefix + Guid.NewGuid().ToString("N");
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            long expiry = now + (long)leaseDuration.TotalMilliseconds;
            var scriptKeys = new RedisKey[] { keys.Queue, keys.Cache, keys.Versions, leaseKey, keys.Leases, keys.DeadLetters, keys.DeadLetterInfo, keys.Redo, keys.PendingAge };
            var args = new RedisValue[] { max, expiry, now, _connection.Layout.Count, keys.Partition };
            var raw = await _connection.RedisAsync(async db =>
                (RedisResult[])await Scripts.Lease.EvaluateAsync(db, scriptKeys, args).ConfigureAwait(false)).ConfigureAwait(false);
            return new LeasedBatch
            {
                Lease = new Lease(keys, leaseKey),
                Dequeued = (long)raw[LeaseReply.Dequeued],
                DeadLettered = (long)raw[LeaseReply.DeadLettered],
                Leased = (long)raw[LeaseReply.Leased],
                Resumed = (long)raw[LeaseReply.Resumed] == 1,
                Rows = LeaseReply.States(raw),
            };
        }

        /// <summary>The store has committed the lease's effect: drop it (ack.lua).</summary>
        public Task AckAsync(Lease lease) =>
            _connection.RedisAsync(db => Scripts.Ack.EvaluateAsync(db, new RedisKey[] { lease.Key, lease.Keys.Leases }, Array.Empty<RedisValue>()));

        /// <summary>Extends a live lease while its commit runs (renew.lua).</summary>
        public Task RenewAsync(Lease lease, TimeSpan leaseDuration) =>
            _connection.RedisAsync(db => Scripts.Renew.EvaluateAsync(db, new RedisKey[] { lease.Keys.Leases, lease.Key },
                new RedisValue[] { DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + (long)leaseDuration.TotalMilliseconds }));

        /// <summary>Hands a lease that could not be committed to the next flush at once (no waiting for expiry).</summary>
        public async Task ExpireNowAsync(Lease lease)
        {
            try
            {
                await _connection.RedisAsync(db => db.SortedSetAddAsync(lease.Keys.Leases, lease.Key, 0, When.Exists)).ConfigureAwait(false);
            }
            catch (WriteBehindException) { /* it expires by itself */ }
        }

        /// <summary>The leases of every partition that expired by <paramref name="now"/> (one round trip per master).</summary>
        public Task<RedisValue[][]> ExpiredAsync(KeyLayout layout, long now) =>
            _connection.RedisAsync(db => Task.WhenAll(layout.Partitions.Select(
                keys => db.SortedSetRangeByScoreAsync(keys.Leases, double.NegativeInfinity, now))));

        /// <summary>Takes over an expired lease for recovery (claim.lua); its items, or null when its owner
        /// renewed it meanwhile or it is gone.</summary>
        public async Task<string[]> ClaimAsync(KeyNames keys, string leaseKey, long now, TimeSpan leaseDuration)
        {
            long expiry = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + (long)leaseDuration.TotalMilliseconds;
            var claimed = await _connection.RedisAsync(async db =>
                await Scripts.Claim.EvaluateAsync(db, new RedisKey[] { keys.Leases, leaseKey },
                    new RedisValue[] { now, expiry, "0" }).ConfigureAwait(false)).ConfigureAwait(false);
            return claimed.IsNull ? null : (string[])claimed;
        }

        /// <summary>Moves the lease's items of one user to the dead-letter list with the store's reason
        /// (reject.lua); returns how many.</summary>
        public Task<long> RejectAsync(Lease lease, long now, string userId, string reason) =>
            _connection.RedisAsync(async db =>
                (long)await Scripts.Reject.EvaluateAsync(db, new RedisKey[] { lease.Key, lease.Keys.DeadLetters, lease.Keys.DeadLetterInfo },
                    new RedisValue[] { now, userId, reason }).ConfigureAwait(false));

        /// <summary>'take', 'renew' or 'release' a partition's owner key for <paramref name="token"/> (owner.lua);
        /// true when the flusher owns it (or let it go).</summary>
        public async Task<bool> OwnAsync(KeyNames keys, string op, string token, TimeSpan leaseDuration)
        {
            var r = await _connection.RedisAsync(db => Scripts.Owner.EvaluateAsync(db, new RedisKey[] { keys.Owner },
                new RedisValue[] { op, token, (long)leaseDuration.TotalMilliseconds })).ConfigureAwait(false);
            return (long)r == 1;
        }
    }
}
