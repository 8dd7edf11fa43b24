// The least-privilege Redis ACL rules a WriteBehind user needs (commands, key patterns), as documented in the README.
namespace WriteBehind.Engine
{
    /// <summary>The least-privilege Redis ACL (Redis 6+) for a WriteBehind user, found by experiment
    /// (tests/security/Acl.Tests.ps1 runs every cmdlet as a user with exactly these rules): the commands the
    /// module sends, the commands its Lua scripts call (Redis 7 checks those too), the commands
    /// StackExchange.Redis sends when it connects, and the module's key patterns. Use it as
    /// <c>ACL SETUSER wb_app on &gt;password resetkeys resetchannels -@all &lt;Rules&gt;</c>.</summary>
    public static class RedisAcl
    {
        /// <summary>The module's own commands and those its Lua scripts call (Connect-WriteBehind checks
        /// these with redis.acl_check_cmd, so a user missing one is refused before a script could fail halfway).</summary>
        public const string ModuleCommands =
            "+evalsha +eval +hget +hmget +hset +hmset +hdel +hgetall +hlen +hscan +hincrby " +
            "+llen +lpush +rpush +lrange +lindex +lrem +lset +ltrim +blmove +del +exists +time " +
            "+zadd +zrem +zscore +zrange +zrangebyscore";

        /// <summary>Partition ownership (an owner key set with NX PX, read, renewed with PEXPIRE, released
        /// with DEL; WAIT for replicas): the partition work's owner.lua calls PEXPIRE too.</summary>
        public const string PartitionCommands = "+set +get +pexpire +wait";

        /// <summary>StackExchange.Redis at connect and while connected (CONFIG, SCRIPT, CLIENT SETINFO, the
        /// pub/sub configuration channel and the tie-breaker are turned off in Redis/RedisConnector.cs), and
        /// Redis Cluster discovery.</summary>
        public const string ConnectionCommands =
            "+ping +echo +info +select +client|setname +client|id " +
            "+cluster|nodes +cluster|slots +cluster|shards +cluster|info +asking +readonly";

        /// <summary>The commands, one ACL rule each.</summary>
        public const string Commands = ModuleCommands + " " + PartitionCommands + " " + ConnectionCommands;

        /// <summary>The key patterns with no key prefix: every module key starts with <c>user_profiles</c> or
        /// <c>write_queue</c>. With a prefix, put it in front of both (see <see cref="KeyPatterns(string)"/>).</summary>
        public const string Keys = "~user_profiles* ~write_queue*";

        /// <summary>Commands and key patterns (no key prefix): what follows <c>-@all</c> in ACL SETUSER.</summary>
        public const string Rules = Commands + " " + Keys;

        /// <summary>The key patterns for a key prefix (glob characters in it escaped).</summary>
        public static string KeyPatterns(string prefix)
        {
            var names = new KeyNames(prefix);
            return "~" + Escape(names.Cache) + "* ~" + Escape(names.Queue) + "*";
        }

        /// <summary>The whole ACL SETUSER line for a user (the password left as a placeholder).</summary>
        public static string SetUserCommand(string user, string prefix = "") =>
            $"ACL SETUSER {user} on >PASSWORD resetkeys resetchannels -@all {Commands} {KeyPatterns(prefix)}";

        private static string Escape(string s)
        {
            var sb = new System.Text.StringBuilder();
            foreach (char c in s)
            {
                if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') sb.Append('\\');
                sb.Append(c);
            }
            return sb.ToString();
        }
    }
}
