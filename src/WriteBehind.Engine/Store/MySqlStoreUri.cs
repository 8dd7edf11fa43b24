using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using MySqlConnector;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// <c>mysql://[user@]host[:port]/database[?sslmode=...&amp;sslca=...&amp;connect_timeout=s&amp;command_timeout=s&amp;application_name=...]</c>
    /// (also <c>mariadb://</c>; port 3306 by default). Like the PostgreSQL URI it never carries a password: that comes
    /// from -StoreCredential or WRITEBEHIND_STORE_PASSWORD. Messages never echo the URI's authority or query.
    /// </summary>
    internal static class MySqlStoreUri
    {
        public static bool Is(string uri) =>
            uri != null && (uri.StartsWith("mysql://", StringComparison.OrdinalIgnoreCase) || uri.StartsWith("mariadb://", StringComparison.OrdinalIgnoreCase));

        internal sealed class Target
        {
            public MySqlConnectionStringBuilder Builder;
            public string Description;
        }

        public static IProfileStore Open(string uri, string user, string password, TimeSpan? connectTimeout)
        {
            Target target = Parse(uri, user, connectTimeout);
            if (!string.IsNullOrEmpty(password)) target.Builder.Password = password;
            return new MySqlProfileStore(target.Builder.ConnectionString, target.Description);
        }

        public static Target Parse(string uri, string user, TimeSpan? connectTimeout)
        {
            var parsed = ServerStoreUri.Parse(uri, user, "MariaDB/MySQL", "mysql", 3306, "password", "pwd");
            string scheme = parsed.Scheme, host = parsed.Host, database = parsed.Database, effectiveUser = parsed.User;
            int port = parsed.Port;
            var parameters = parsed.Parameters;

            var builder = new MySqlConnectionStringBuilder
            {
                Server = host,
                Port = (uint)port,
                Database = database,
                UserID = effectiveUser,
                ApplicationName = "WriteBehind",
                ConnectionTimeout = (uint)Math.Max(1, (int)Math.Ceiling((connectTimeout ?? TimeSpan.FromSeconds(5)).TotalSeconds)),
                DefaultCommandTimeout = 30,
                CharacterSet = "utf8mb4",
                // Row counts of changed rows (1 inserted, 2 updated, 0 unchanged): the commit counts what it applied.
                UseAffectedRows = true,
                AllowUserVariables = false,
            };
            var shown = new StringBuilder();
            foreach (var p in parameters)
            {
                switch (p.Key)
                {
                    case "sslmode":
                        builder.SslMode = ParseSslMode(p.Value);
                        break;
                    case "sslca":
                        builder.SslCa = p.Value;
                        break;
                    case "connect_timeout":
                        builder.ConnectionTimeout = (uint)parsed.Seconds(p.Key, p.Value);
                        break;
                    case "command_timeout":
                        builder.DefaultCommandTimeout = (uint)parsed.Seconds(p.Key, p.Value);
                        break;
                    case "application_name":
                        builder.ApplicationName = p.Value;
                        break;
                    default:
                        throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                            $"Unsupported MariaDB/MySQL store URI parameter '{p.Key}': use sslmode, sslca, connect_timeout, command_timeout or application_name.");
                }
                shown.Append(shown.Length == 0 ? '?' : '&').Append(Uri.EscapeDataString(p.Key)).Append('=').Append(Uri.EscapeDataString(p.Value).Replace("%2F", "/"));
            }
            string shownHost = parsed.ShownHost;
            return new Target
            {
                Builder = builder,
                Description = scheme + "://" + Uri.EscapeDataString(effectiveUser) + "@" + shownHost + ":" + port.ToString(CultureInfo.InvariantCulture) +
                              "/" + Uri.EscapeDataString(database) + shown,
            };
        }

        private static MySqlSslMode ParseSslMode(string text)
        {
            switch (text.Replace("-", "").Replace("_", "").ToLowerInvariant())
            {
                case "none": case "disabled": case "disable": return MySqlSslMode.None;
                case "preferred": case "prefer": return MySqlSslMode.Preferred;
                case "required": case "require": return MySqlSslMode.Required;
                case "verifyca": return MySqlSslMode.VerifyCA;
                case "verifyfull": case "verifyidentity": return MySqlSslMode.VerifyFull;
                default:
                    throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                        "The MariaDB/MySQL store URI parameter 'sslmode' must be none, preferred, required, verify-ca or verify-full.");
            }
        }
    }
}
