// Finding and removing the user and password in a StackExchange.Redis configuration string.
using System;
using System.Collections.Generic;

namespace WriteBehind.Engine
{
    /// <summary>Finds and removes the credentials in a StackExchange.Redis configuration string
    /// (comma-separated <c>host:port</c> and <c>option=value</c> tokens) or a redis:// / rediss:// URI (which
    /// comes back as a configuration string).</summary>
    public static class RedisSecrets
    {
        /// <summary>The string without its <c>user=</c> and <c>password=</c> options (the other tokens stay
        /// as written), and those two values (null when absent).</summary>
        public static string Split(string configuration, out string user, out string password)
        {
            user = null;
            password = null;
            if (string.IsNullOrEmpty(configuration)) return configuration;
            if (Redis.RedisUri.IsUri(configuration)) return Redis.RedisUri.ToConfiguration(configuration, out user, out password);
            if (Redis.RedisUri.IsOtherScheme(configuration, out string scheme)) throw Redis.RedisUri.OtherScheme(scheme);
            var kept = new List<string>();
            foreach (string token in configuration.Split(','))
            {
                int eq = token.IndexOf('=');
                string name = eq > 0 ? token.Substring(0, eq).Trim() : null;
                if (name != null && name.Equals("password", StringComparison.OrdinalIgnoreCase)) { password = token.Substring(eq + 1).Trim(); continue; }
                if (name != null && name.Equals("user", StringComparison.OrdinalIgnoreCase)) { user = token.Substring(eq + 1).Trim(); continue; }
                kept.Add(token);
            }
            return string.Join(",", kept);
        }
    }
}
