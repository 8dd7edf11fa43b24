// Under -ReplicaAcks, every master must answer WAIT: checked at connect, before the first write, so that a
// server without WAIT (Garnet 2.2.8 has none) refuses the connection instead of every write after it was applied.
using System.Linq;
using System.Threading.Tasks;
using StackExchange.Redis;

namespace WriteBehind.Engine.Redis
{
    internal static class ReplicaCheck
    {
        /// <summary>Sends <c>WAIT 0 0</c> (returns at once, waits for nothing) to each master when
        /// <see cref="WriteBehindOptions.ReplicaAcks"/> is above 0; a server that does not know the command fails
        /// the connect with <see cref="ErrorIds.ReplicaAcksUnsupported"/>.</summary>
        public static async Task CheckAsync(RedisSession redis)
        {
            if (redis.Options.ReplicaAcks <= 0) return;
            foreach (var server in redis.Mux.GetEndPoints().Select(e => redis.Mux.GetServer(e)).Where(s => !s.IsReplica))
            {
                await redis.RunAsync<RedisResult>(async _ =>
                {
                    try
                    {
                        return await server.ExecuteAsync("WAIT", 0, 0).ConfigureAwait(false);
                    }
                    catch (RedisServerException ex) when (ex.Message.IndexOf("unknown command", System.StringComparison.OrdinalIgnoreCase) >= 0)
                    {
                        throw new WriteBehindException(ErrorIds.ReplicaAcksUnsupported,
                            $"Redis at {redis.Endpoint} does not run WAIT, which -ReplicaAcks {redis.Options.ReplicaAcks} needs to confirm that a replica holds each write " +
                            "(Garnet has no WAIT). Connect without -ReplicaAcks (or with WRITEBEHIND_REPLICA_ACKS=0), or to a redis-server with replicas. " +
                            "Nothing was written.", ex);
                    }
                }).ConfigureAwait(false);
            }
        }
    }
}
