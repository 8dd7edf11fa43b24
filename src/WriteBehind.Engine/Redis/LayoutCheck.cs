// The connect-time check that this client's key layout (partitions, hash tag) fits the server and the other clients.
using System.Linq;
using System.Threading.Tasks;
using StackExchange.Redis;

namespace WriteBehind.Engine.Redis
{
    /// <summary>On a cluster every script's keys must share a slot: the single partition needs a hash tag
    /// in its prefix. Every client of one prefix must agree on the partition count: the first client with
    /// several partitions records the count, and a client with another count is refused.</summary>
    internal static class LayoutCheck
    {
        /// <summary>Checks the layout and says whether the server is a Redis Cluster. Its read of the layout
        /// key also proves the user may use the module's keys at all where the permission probe cannot be
        /// asked (an ACL user without them connects fine and would otherwise fail only at the first cmdlet).</summary>
        public static async Task<bool> CheckAsync(RedisSession session)
        {
            var mux = session.Mux;
            var layout = session.Layout;
            bool isCluster = mux.GetEndPoints().Select(ep => mux.GetServer(ep)).Any(s => s.ServerType == ServerType.Cluster);
            if (isCluster && layout.Count == 1 && !HasHashTag(layout.Prefix))
                throw new WriteBehindException(ErrorIds.ClusterNeedsHashTag,
                    $"{session.Endpoint} is a Redis Cluster: connect with -Partitions N (N of 2 or more; each partition's keys share a hash tag) " +
                    "or a -KeyPrefix with a hash tag such as '{wb}', so every script's keys are in one slot.");
            var recorded = await session.RunAsync(db => db.StringGetAsync(layout.LayoutKey)).ConfigureAwait(false);
            if (recorded.IsNull && layout.Count > 1)
            {
                // A store of profiles under the unpartitioned names would be orphaned by a partitioned client.
                var single = new KeyNames(layout.Prefix);
                bool legacy = false;
                if (!isCluster || HasHashTag(layout.Prefix))
                    legacy = await session.RunAsync(db => db.KeyExistsAsync(single.Versions)).ConfigureAwait(false)
                          || await session.RunAsync(db => db.KeyExistsAsync(single.Queue)).ConfigureAwait(false);
                if (legacy)
                    throw new WriteBehindException(ErrorIds.PartitionMismatch,
                        $"Redis at {session.Endpoint} holds WriteBehind data with one partition ({single.Versions}, {single.Queue}) under prefix '{layout.Prefix}': " +
                        $"connect without -Partitions, or drain and clear it before using {layout.Count} partitions.");
                // SET NX, not SETNX (StackExchange.Redis's choice for When.NotExists), so the ACL needs +set only
                var set = await session.RunAsync(db => db.ExecuteAsync("SET", (RedisKey)layout.LayoutKey, layout.Count, "NX")).ConfigureAwait(false);
                if (!set.IsNull) return isCluster;
                recorded = await session.RunAsync(db => db.StringGetAsync(layout.LayoutKey)).ConfigureAwait(false);
            }
            long count = recorded.IsNull ? 1 : (long)recorded;
            if (count != layout.Count)
                throw new WriteBehindException(ErrorIds.PartitionMismatch,
                    $"The WriteBehind data under prefix '{layout.Prefix}' at {session.Endpoint} is spread over {count} partition(s) ({layout.LayoutKey}); " +
                    $"this connection asked for {layout.Count}. Every client of one prefix must use the same -Partitions.");
            return isCluster;
        }

        private static bool HasHashTag(string prefix)
        {
            int open = prefix.IndexOf('{');
            return open >= 0 && prefix.IndexOf('}', open + 1) > open + 1;
        }
    }
}
