using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;
using StackExchange.Redis;

namespace WriteBehind.Engine
{
    // Operations: pausing the flushers for maintenance, and the shared flush counters.
    public sealed partial class WriteBehindConnection
    {
        /// <summary>Pauses every flusher of this prefix at its next batch boundary (never mid-batch):
        /// producers keep working up to the high-water mark. Keeps the first pause's time when already paused.</summary>
        public Task<FlushPause> SuspendFlushAsync(string reason) =>
            RedisAsync(async db =>
            {
                string by = Environment.MachineName + (string.IsNullOrEmpty(Environment.UserName) ? "" : "\\" + Environment.UserName);
                long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                // HSETNX is not granted: the time is written only when the key is new (one round trip each is fine here)
                bool existed = await db.KeyExistsAsync(Layout.Paused).ConfigureAwait(false);
                var fields = new List<HashEntry> { new HashEntry("reason", reason ?? string.Empty), new HashEntry("by", by) };
                if (!existed) fields.Add(new HashEntry("since", now));
                await db.HashSetAsync(Layout.Paused, fields.ToArray()).ConfigureAwait(false);
                return await ReadPauseAsync(db).ConfigureAwait(false);
            });

        /// <summary>Lets the flushers go on. Returns the pause that was lifted (Paused false when there was none).</summary>
        public Task<FlushPause> ResumeFlushAsync() =>
            RedisAsync(async db =>
            {
                var pause = await ReadPauseAsync(db).ConfigureAwait(false);
                // DEL, not KeyDelete (StackExchange.Redis sends UNLINK, which the ACL rules do not grant)
                await db.ExecuteAsync("DEL", (RedisKey)Layout.Paused).ConfigureAwait(false);
                return pause;
            });

        public Task<FlushPause> GetPauseAsync() => RedisAsync(ReadPauseAsync);

        private async Task<FlushPause> ReadPauseAsync(IDatabase db)
        {
            var entries = await db.HashGetAllAsync(Layout.Paused).ConfigureAwait(false);
            var pause = new FlushPause { KeyName = Layout.Paused, Paused = entries.Length > 0 };
            foreach (var e in entries)
            {
                switch ((string)e.Name)
                {
                    case "since":
                        if (long.TryParse(e.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long ms)) pause.Since = DateTimeOffset.FromUnixTimeMilliseconds(ms);
                        break;
                    case "reason": pause.Reason = string.IsNullOrEmpty(e.Value) ? null : (string)e.Value; break;
                    case "by": pause.By = e.Value; break;
                }
            }
            return pause;
        }

        internal static FlushTotals TotalsOf(IReadOnlyDictionary<string, RedisValue> stats)
        {
            long Get(string name) => stats.TryGetValue(name, out var v) && v.TryParse(out long n) ? n : 0;
            return new FlushTotals
            {
                Dequeued = Get("totalDequeued"),
                Persisted = Get("totalPersisted"),
                Coalesced = Get("totalCoalesced"),
                DeadLettered = Get("totalDeadLettered"),
                Recovered = Get("totalRecovered"),
                FlushErrors = Get("totalFlushErrors"),
            };
        }
    }
}
