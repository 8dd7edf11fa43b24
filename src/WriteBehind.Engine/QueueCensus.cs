using System;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;

namespace WriteBehind.Engine
{
    /// <summary>How many items the queue holds, and of which kinds: what Clear-WriteQueue asks to confirm.</summary>
    internal sealed class QueueCensus
    {
        /// <summary>At most this many items are read to sort them by kind (pages of 10,000, oldest first);
        /// the total is always exact.</summary>
        public const long MaxItemsRead = 100_000;

        public long Total { get; private set; }
        /// <summary>Items read to count the kinds below (Total, unless the queue holds more than <see cref="MaxItemsRead"/>).</summary>
        public long Read { get; private set; }
        /// <summary>Deferred patches (update:user:...).</summary>
        public long Updates { get; private set; }
        /// <summary>Persists of profiles Set-UserProfile wrote (set:user:...).</summary>
        public long Sets { get; private set; }
        /// <summary>Deletes (delete:user:...).</summary>
        public long Deletes { get; private set; }
        /// <summary>Items that do not parse (they would be dead-lettered).</summary>
        public long Other { get; private set; }

        public static async Task<QueueCensus> TakeAsync(WriteBehindConnection connection)
        {
            var census = new QueueCensus();
            var depths = await connection.RedisAsync(d => Task.WhenAll(connection.Layout.Partitions.Select(p => d.ListLengthAsync(p.Queue)))).ConfigureAwait(false);
            census.Total = depths.Sum();
            for (int p = 0; p < depths.Length && census.Read < MaxItemsRead; p++)
            {
                var queue = connection.Layout.Partitions[p].Queue;
                // Negative indices from the right (the oldest end): producers LPUSHing meanwhile do not shift them.
                for (long offset = 0; offset < depths[p] && census.Read < MaxItemsRead; offset += 10_000)
                {
                    long count = Math.Min(10_000, MaxItemsRead - census.Read);
                    long s = -(offset + count), e = -(offset + 1);
                    var items = await connection.RedisAsync(d => d.ListRangeAsync(queue, s, e)).ConfigureAwait(false);
                    foreach (var item in items)
                    {
                        census.Read++;
                        if (!QueueItem.TryParse(item, out var parsed, out _)) census.Other++;
                        else if (parsed.Kind == QueueItemKind.Update) census.Updates++;
                        else if (parsed.Kind == QueueItemKind.Set) census.Sets++;
                        else census.Deletes++;
                    }
                    if (items.Length == 0) break;
                }
            }
            return census;
        }

        /// <summary>For example "3 pending items (2 sets, 1 update, 0 deletes, 0 other)".</summary>
        public override string ToString()
        {
            string N(long n) => n.ToString("N0", CultureInfo.InvariantCulture);
            string kinds = $"{N(Updates)} update{(Updates == 1 ? "" : "s")} (deferred patches), {N(Sets)} set{(Sets == 1 ? "" : "s")} (persists of cached profiles), " +
                           $"{N(Deletes)} delete{(Deletes == 1 ? "" : "s")}, {N(Other)} other (unparsable)";
            return $"{N(Total)} pending item{(Total == 1 ? "" : "s")}" +
                   (Total == 0 ? "" : Read == Total ? $": {kinds}" : $"; of the oldest {N(Read)}: {kinds}");
        }
    }
}
