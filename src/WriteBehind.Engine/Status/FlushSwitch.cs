// Pausing and resuming every flusher of a prefix (Suspend-/Resume-WriteBehindFlush), and reading the pause.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine.Redis;

namespace WriteBehind.Engine.Status
{
    /// <summary>The pause hash shared by every flusher of one prefix (reason, by whom, since when): the
    /// flushers look at it at each batch boundary, never mid-batch, and producers keep working.</summary>
    internal sealed class FlushSwitch
    {
        private readonly RedisSession _redis;

        public FlushSwitch(RedisSession redis)
        {
            _redis = redis;
        }

        /// <summary>Pauses every flusher of this prefix at its next batch boundary (never mid-batch):
        /// producers keep working up to the high-water mark. Keeps the first pause's time when already paused.</summary>
        public Task<FlushPause> SuspendAsync(string reason) =>
            _redis.RunAsync(async db =>
            {
                string by = Environment.MachineName + (string.IsNullOrEmpty(Environment.UserName) ? "" : "\\" + Environment.UserName);
                long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                // HSETNX is not granted: the time is written only when the key is new (one round trip each is fine here)
                bool existed = await db.KeyExistsAsync(_redis.Layout.Paused).ConfigureAwait(false);
                var fields = new List<HashEntry> { new HashEntry("reason", reason ?? string.Empty), new HashEntry("by", by) };
                if (!existed) fields.Add(new HashEntry("since", now));
                await db.HashSetAsync(_redis.Layout.Paused, fields.ToArray()).ConfigureAwait(false);
                return await ReadAsync(db).ConfigureAwait(false);
            });

        /// <summary>Lets the flushers go on. Returns the pause that was lifted (Paused false when there was none).</summary>
        public Task<FlushPause> ResumeAsync() =>
            _redis.RunAsync(async db =>
            {
                var pause = await ReadAsync(db).ConfigureAwait(false);
                // DEL, not KeyDelete (StackExchange.Redis sends UNLINK, which the ACL rules do not grant)
                await db.ExecuteAsync("DEL", (RedisKey)_redis.Layout.Paused).ConfigureAwait(false);
                return pause;
            });

        public Task<FlushPause> GetAsync() => _redis.RunAsync(ReadAsync);

        /// <summary>The pause as it stands, read on <paramref name="db"/> inside a call the caller runs.</summary>
        public async Task<FlushPause> ReadAsync(IDatabase db)
        {
            var entries = await db.HashGetAllAsync(_redis.Layout.Paused).ConfigureAwait(false);
            var pause = new FlushPause { KeyName = _redis.Layout.Paused, Paused = entries.Length > 0 };
            foreach (var e in entries)
            {
                switch ((string)e.Name)
                {
                    case "since":
                        if (long.TryParse((string)e.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long ms)) pause.Since = DateTimeOffset.FromUnixTimeMilliseconds(ms);
                        break;
                    case "reason": pause.Reason = string.IsNullOrEmpty(e.Value) ? null : (string)e.Value; break;
                    case "by": pause.By = e.Value; break;
                }
            }
            return pause;
        }
    }
}
