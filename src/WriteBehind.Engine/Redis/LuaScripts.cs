using System;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;

namespace WriteBehind.Engine.Redis
{
    /// <summary>A Lua script embedded as a resource, called by SHA (EVALSHA) and sent whole (EVAL) only
    /// when the server does not have it yet.</summary>
    internal sealed class LuaScript
    {
        private LuaScript(string name, string[] helpers, string text)
        {
            Name = name;
            Helpers = helpers;
            Text = text;
            using (var sha = SHA1.Create()) Sha1 = sha.ComputeHash(Encoding.UTF8.GetBytes(text));
        }

        public string Name { get; }
        /// <summary>The helper files prepended to the script, in order (its header names them too).</summary>
        public string[] Helpers { get; }
        public string Text { get; }
        public byte[] Sha1 { get; }

        /// <param name="sendText">EVAL with the text at once, never EVALSHA: for a call that other calls are sent
        /// behind before its reply (pipelined producer chunks). After a NOSCRIPT (a failover, SCRIPT FLUSH) the
        /// EVAL retry would be sent after them, so a later chunk would overtake it.</param>
        /// <param name="db">The database or batch to send it on.</param>
        /// <param name="keys">The script's KEYS.</param>
        /// <param name="args">The script's ARGV.</param>
        public async Task<RedisResult> EvaluateAsync(IDatabaseAsync db, RedisKey[] keys, RedisValue[] args, bool sendText = false)
        {
            try
            {
                return sendText
                    ? await db.ScriptEvaluateAsync(Text, keys, args).ConfigureAwait(false)
                    : await db.ScriptEvaluateAsync(Sha1, keys, args).ConfigureAwait(false);
            }
            catch (RedisServerException ex) when (!sendText && ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
            {
                try
                {
                    return await db.ScriptEvaluateAsync(Text, keys, args).ConfigureAwait(false);
                }
                catch (RedisServerException inner) when (RedisPermission.IsDenied(inner.Message))
                {
                    throw new RedisPermissionException(inner.Message, this, await DeniedCommandsAsync(db, inner.Message).ConfigureAwait(false));
                }
            }
            catch (RedisServerException ex) when (RedisPermission.IsDenied(ex.Message))
            {
                throw new RedisPermissionException(ex.Message, this, await DeniedCommandsAsync(db, ex.Message).ConfigureAwait(false));
            }
        }

        private const string AclCheckScript =
            "local denied = {}\n" +
            "for _, c in ipairs(ARGV) do if not redis.acl_check_cmd(c) then denied[#denied + 1] = c end end\n" +
            "return denied";

        /// <summary>Inside a script Redis 7.0 does not name the command it refused ("can't run this command
        /// ... @user_script:10"), and a line such as call_chunked's names none: ask Redis which of the
        /// script's commands the user may not run (redis.acl_check_cmd, Redis 7). Empty when that cannot be
        /// found out (no EVAL grant, an older server, a key refusal).</summary>
        private async Task<string[]> DeniedCommandsAsync(IDatabaseAsync db, string message)
        {
            if (message.IndexOf("can't run this command", StringComparison.Ordinal) < 0) return Array.Empty<string>();
            try
            {
                var commands = Commands();
                var reply = await db.ScriptEvaluateAsync(AclCheckScript, Array.Empty<RedisKey>(),
                    System.Linq.Enumerable.ToArray(System.Linq.Enumerable.Select(commands, c => (RedisValue)c))).ConfigureAwait(false);
                return (string[])reply ?? Array.Empty<string>();
            }
            catch (Exception)
            {
                return Array.Empty<string>();
            }
        }

        /// <summary>The Redis commands named on a 1-based line of the script text (<c>redis.call('HSET'</c>).</summary>
        internal string CommandOnLine(int line)
        {
            string[] lines = Text.Split('\n');
            if (line < 1 || line > lines.Length) return null;
            var m = System.Text.RegularExpressions.Regex.Match(lines[line - 1], @"redis\.p?call\(\s*'([A-Za-z]+)'");
            return m.Success ? m.Groups[1].Value.ToLowerInvariant() : null;
        }

        /// <summary>Every command the script may call (for a message when the line does not name one).</summary>
        internal string[] Commands()
        {
            var set = new System.Collections.Generic.SortedSet<string>(StringComparer.Ordinal);
            foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(Text, @"redis\.p?call\(\s*'([A-Za-z]+)'"))
                set.Add(m.Groups[1].Value.ToLowerInvariant());
            foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(Text, @"\b(?:chunked|call_chunked)\w*\(\s*'([A-Za-z]+)'"))
                set.Add(m.Groups[1].Value.ToLowerInvariant());
            return System.Linq.Enumerable.ToArray(set);
        }

        /// <summary>A script with the shared helpers it needs prepended (common.lua: chunked calls and the
        /// high-water check; prelude.lua: item grammar and JSON text merge; redo.lua: redo records).</summary>
        internal static LuaScript Load(string name, params string[] helpers)
        {
            var text = new StringBuilder();
            foreach (var helper in helpers) text.Append(ReadResource(helper)).Append('\n');
            return new LuaScript(name, helpers, text.Append(ReadResource(name)).ToString());
        }

        internal static string ReadResource(string name)
        {
            var asm = typeof(LuaScript).Assembly;
            using (var stream = asm.GetManifestResourceStream("WriteBehind.Engine.Lua." + name + ".lua")
                                ?? throw new InvalidOperationException("Missing embedded script " + name))
            using (var reader = new StreamReader(stream, Encoding.UTF8))
                return reader.ReadToEnd().Replace("\r\n", "\n");
        }
    }

    /// <summary>The module's scripts, each read from its resource and hashed when first used (not at connect:
    /// a flush needs five of the fourteen, a producer one or two).</summary>
    internal static class Scripts
    {
        private static LuaScript _lease;
        public static LuaScript Lease => LazyInitializer.EnsureInitialized(ref _lease, () => LuaScript.Load("lease", "common", "prelude", "redo"));
        private static LuaScript _setProfiles;
        public static LuaScript SetProfiles => LazyInitializer.EnsureInitialized(ref _setProfiles, () => LuaScript.Load("set_profiles", "common", "redo"));
        private static LuaScript _removeProfiles;
        public static LuaScript RemoveProfiles => LazyInitializer.EnsureInitialized(ref _removeProfiles, () => LuaScript.Load("remove_profiles", "common", "redo"));
        private static LuaScript _enqueue;
        public static LuaScript Enqueue => LazyInitializer.EnsureInitialized(ref _enqueue, () => LuaScript.Load("enqueue", "common"));
        private static LuaScript _ack;
        public static LuaScript Ack => LazyInitializer.EnsureInitialized(ref _ack, () => LuaScript.Load("ack"));
        private static LuaScript _claim;
        public static LuaScript Claim => LazyInitializer.EnsureInitialized(ref _claim, () => LuaScript.Load("claim"));
        private static LuaScript _renew;
        public static LuaScript Renew => LazyInitializer.EnsureInitialized(ref _renew, () => LuaScript.Load("renew"));
        private static LuaScript _readState;
        public static LuaScript ReadState => LazyInitializer.EnsureInitialized(ref _readState, () => LuaScript.Load("read_state", "common", "redo"));
        private static LuaScript _readThrough;
        public static LuaScript ReadThrough => LazyInitializer.EnsureInitialized(ref _readThrough, () => LuaScript.Load("read_through", "common", "redo"));
        private static LuaScript _reject;
        public static LuaScript Reject => LazyInitializer.EnsureInitialized(ref _reject, () => LuaScript.Load("reject"));
        private static LuaScript _deadLetters;
        public static LuaScript DeadLetters => LazyInitializer.EnsureInitialized(ref _deadLetters, () => LuaScript.Load("dead_letters", "common"));
        private static LuaScript _clearQueue;
        public static LuaScript ClearQueue => LazyInitializer.EnsureInitialized(ref _clearQueue, () => LuaScript.Load("clear_queue"));
        private static LuaScript _owner;
        public static LuaScript Owner => LazyInitializer.EnsureInitialized(ref _owner, () => LuaScript.Load("owner"));
        private static LuaScript _pendingAge;
        public static LuaScript PendingAge => LazyInitializer.EnsureInitialized(ref _pendingAge, () => LuaScript.Load("pending_age", "common"));
    }
}
