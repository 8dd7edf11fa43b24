using System;
using System.Linq;
using System.Text.RegularExpressions;
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
    /// and says in plain words what was refused.</summary>
    internal static class RedisPermission
    {
        private static readonly Regex CommandNamed = new Regex(@"permissions to run the '([^']+)' command", RegexOptions.CultureInvariant);
        private static readonly Regex ScriptLine = new Regex(@"@user_script:(\d+)", RegexOptions.CultureInvariant);

        public static bool IsDenied(string message) =>
            message != null && (message.StartsWith("NOPERM", StringComparison.Ordinal)
                                || message.IndexOf("NOPERM ", StringComparison.Ordinal) >= 0
                                || message.IndexOf("user executing the script can't", StringComparison.Ordinal) >= 0
                                || message.IndexOf("ACL failure in script", StringComparison.Ordinal) >= 0);

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

        private static string FirstLine(string s)
        {
            if (s == null) return string.Empty;
            int nl = s.IndexOf('\n');
            return nl < 0 ? s : s.Substring(0, nl).TrimEnd('\r');
        }
    }
}
