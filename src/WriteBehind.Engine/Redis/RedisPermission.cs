// The Redis ACL: the permission probe at connect, and refusals (NOPERM) described in plain words.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using StackExchange.Redis;

namespace WriteBehind.Engine.Redis
{
    /// <summary>A Redis ACL refusal met inside a Lua script call, with the script that met it.</summary>
    internal sealed class RedisPermissionException : Exception
    {
        public RedisPermissionException(string serverMessage, LuaScript script, string[] deniedCommands) : base(serverMessage)
        {
            Script = script;
            DeniedCommands = deniedCommands ?? Array.Empty<string>();
        }

        public LuaScript Script { get; }
        /// <summary>The script's commands the user may not run, when Redis could say (empty otherwise).</summary>
        public string[] DeniedCommands { get; }
    }

    /// <summary>Recognises Redis's ACL refusals (a NOPERM reply; inside a script Redis 7.0 says "ERR The user
    /// executing the script can't run this command ..." or "... can't access at least one of the keys ...")
    /// and says in plain words what was refused; at connect, probes whether the user holds every grant the
    /// module needs (<see cref="CheckAsync"/>).</summary>
    internal static class RedisPermission
    {
        private static readonly Regex CommandNamed = new Regex(@"permissions to run the '([^']+)' command", RegexOptions.CultureInvariant);
        private static readonly Regex ScriptLine = new Regex(@"@user_script:(\d+)", RegexOptions.CultureInvariant);

        public static bool IsDenied(string message) =>
            message != null && (message.StartsWith("NOPERM", StringComparison.Ordinal)
                                || message.IndexOf("NOPERM ", StringComparison.Ordinal) >= 0
                                || message.IndexOf("user executing the script can't", StringComparison.Ordinal) >= 0
                                || message.IndexOf("ACL failure in script", StringComparison.Ordinal) >= 0);

        /// <summary>A refusal as the module's exception (RedisPermissionDenied), described by <see cref="Describe"/>.</summary>
        public static WriteBehindException Denied(string serverMessage, string user, string endpoint, LuaScript script, KeyNames keys, string[] deniedCommands = null) =>
            new WriteBehindException(ErrorIds.RedisPermissionDenied, Describe(serverMessage, user, endpoint, script, keys, deniedCommands), null);

        public static string Describe(string serverMessage, string user, string endpoint, LuaScript script, KeyNames keys, string[] deniedCommands = null)
        {
            string who = $"Redis user '{(string.IsNullOrEmpty(user) ? "default" : user)}' at {endpoint}";
            string line = FirstLine(serverMessage);
            bool keyRefused = line.IndexOf("keys", StringComparison.Ordinal) >= 0 && line.IndexOf("command", StringComparison.Ordinal) < 0
                              || line.IndexOf("access at least one of the keys", StringComparison.Ordinal) >= 0
                              || line.IndexOf("permissions to access", StringComparison.Ordinal) >= 0;
            string scriptNote = script == null ? "" : $" (in the module's {script.Name} script)";
            string grant = " Grant the rules in WriteBehind's README, section \"Least privilege\".";
            if (keyRefused)
            {
                return $"{who} may not access the key(s) of a command{scriptNote}: every module key starts with '{keys?.Cache}' or '{keys?.Queue}', "
                       + $"so the user needs the key patterns '~{keys?.Cache}*' and '~{keys?.Queue}*'.{grant} Redis said: {line}";
            }
            string command = null;
            var m = CommandNamed.Match(line);
            if (m.Success) command = m.Groups[1].Value;
            if (command == null && deniedCommands != null && deniedCommands.Length > 0)
                command = string.Join(", ", deniedCommands.Select(c => "'" + c + "'"));
            else if (command == null && script != null)
            {
                var lm = ScriptLine.Match(line);
                if (lm.Success && int.TryParse(lm.Groups[1].Value, out int n)) command = script.CommandOnLine(n);
                if (command == null) command = "one of " + string.Join(", ", script.Commands().Select(c => "'" + c + "'"));
                else command = "'" + command + "'";
            }
            else if (command != null) command = "'" + command + "'";
            else command = "a command";
            return $"{who} may not run {command}{scriptNote}.{grant} Redis said: {line}";
        }

        // ARGV: pairs of a command line (words split on spaces; module keys hold no whitespace) and what to
        // report when the user may not run it. Every line carries the arguments its key extraction reads:
        // redis-server 7.0.15 crashes on redis.acl_check_cmd('evalsha') alone for a user with key patterns.
        private const string ProbeScript =
            "local unpack = unpack or table.unpack\n" +
            "local denied = {}\n" +
            "for i = 1, #ARGV, 2 do\n" +
            "  local words = {}\n" +
            "  for w in string.gmatch(ARGV[i], '[^ ]+') do words[#words + 1] = w end\n" +
            "  if not redis.acl_check_cmd(unpack(words)) then denied[#denied + 1] = ARGV[i + 1] end\n" +
            "end\n" +
            "return denied";

        /// <summary>The owner key's commands, checked with that key (Redis refuses SET, GET and PEXPIRE without one).</summary>
        private static readonly string[] CheckedWithKey = { "set", "get", "pexpire" };

        /// <summary>Asks Redis (redis.acl_check_cmd, Redis 7) whether the user may run every command the
        /// module and its scripts use, and write every module key: a script refused halfway through would
        /// leave its first writes behind (Redis does not roll a script back), so a user missing a grant is
        /// refused here, before any write. Skipped where it cannot be asked (no EVAL grant, Redis 6, Garnet):
        /// the first refused command then says what is missing.</summary>
        public static async Task CheckAsync(RedisSession session)
        {
            var keys = session.Keys;
            var args = new List<RedisValue>();
            foreach (string rule in (RedisAcl.ModuleCommands + " " + RedisAcl.PartitionCommands).Split(' '))
            {
                string command = rule.Substring(1);
                // EVAL/EVALSHA with their script and numkeys 0, WAIT with its two numbers, the owner key's
                // commands with that key; the others need no arguments to be checked
                switch (command)
                {
                    case "eval": args.Add("eval return 0"); break;
                    case "evalsha": args.Add("evalsha 0000000000000000000000000000000000000000 0"); break;
                    case "wait": args.Add("wait 0 0"); break;
                    case "set": args.Add("set " + keys.Owner + " v"); break;
                    case "get": args.Add("get " + keys.Owner); break;
                    case "pexpire": args.Add("pexpire " + keys.Owner + " 1"); break;
                    default: args.Add(command); break;
                }
                args.Add("+" + command);
            }
            foreach (var (command, key) in new[] {
                ("hset", keys.Cache), ("hset", keys.Versions), ("lpush", keys.Queue), ("zadd", keys.Leases),
                ("lpush", keys.LeasePrefix + "check"), ("lpush", keys.DeadLetters), ("hset", keys.DeadLetterInfo), ("hset", keys.Stats), ("hset", keys.Paused),
                ("hset", keys.PendingAge), ("hset", keys.Redo), ("set", keys.Owner), ("set", session.Layout.LayoutKey) })
            {
                args.Add($"{command} {key} f v");
                args.Add(key);
            }
            string[] denied = await session.RunAsync(async db =>
            {
                try
                {
                    return (string[])await db.ScriptEvaluateAsync(ProbeScript, Array.Empty<RedisKey>(), args.ToArray()).ConfigureAwait(false);
                }
                catch (RedisServerException)
                {
                    return null;   // the probe cannot be asked here
                }
            }).ConfigureAwait(false);
            if (denied == null || denied.Length == 0) return;
            var refusedKeys = denied.Where(d => !d.StartsWith("+", StringComparison.Ordinal)).ToArray();
            // The owner key's commands are checked with that key: when keys are refused too, their refusal
            // says nothing about the command itself.
            var commands = denied.Where(d => d.StartsWith("+", StringComparison.Ordinal)).Select(d => d.Substring(1))
                .Where(c => refusedKeys.Length == 0 || !CheckedWithKey.Contains(c)).ToArray();
            string who = $"Redis user '{session.RedisUser}' at {session.Endpoint}";
            string message = commands.Length > 0
                ? $"{who} may not run {string.Join(", ", commands.Select(c => "'" + c + "'"))}, which the module needs"
                : $"{who} may not access the module's key(s) {string.Join(", ", refusedKeys.Select(k => "'" + k + "'"))} (to write them): every module key starts with " +
                  $"'{keys.Cache}' or '{keys.Queue}', so the user needs the key patterns '~{keys.Cache}*' and '~{keys.Queue}*'";
            throw new WriteBehindException(ErrorIds.RedisPermissionDenied,
                message + ". Grant the rules in WriteBehind's README, section \"Least privilege\".", null);
        }

        private static string FirstLine(string s)
        {
            if (s == null) return string.Empty;
            int nl = s.IndexOf('\n');
            return nl < 0 ? s : s.Substring(0, nl).TrimEnd('\r');
        }
    }
}
