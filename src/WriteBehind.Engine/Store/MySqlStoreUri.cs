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

        private const string PasswordAdvice =
            "The store URI must not carry a password: give it with Connect-WriteBehind -StoreCredential or the WRITEBEHIND_STORE_PASSWORD environment variable.";

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
            int schemeEnd = uri.IndexOf("://", StringComparison.Ordinal);
            string scheme = uri.Substring(0, schemeEnd).ToLowerInvariant();
            string rest = uri.Substring(schemeEnd + 3);
            int pathStart = rest.IndexOfAny(new[] { '/', '?', '#' });
            string authority = pathStart < 0 ? rest : rest.Substring(0, pathStart);
            string afterAuthority = pathStart < 0 ? string.Empty : rest.Substring(pathStart);
            int at = authority.LastIndexOf('@');
            string userInfo = at < 0 ? null : authority.Substring(0, at);
            string hostPort = at < 0 ? authority : authority.Substring(at + 1);
            if (userInfo != null && userInfo.IndexOf(':') >= 0)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, PasswordAdvice);
            string path = afterAuthority, query = string.Empty;
            int q = afterAuthority.IndexOf('?');
            if (q >= 0) { path = afterAuthority.Substring(0, q); query = afterAuthority.Substring(q + 1); }
            if (path.IndexOf('#') >= 0 || query.IndexOf('#') >= 0)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, "A MariaDB/MySQL store URI takes no fragment (#...).");
            var parameters = new List<KeyValuePair<string, string>>();
            foreach (string pair in query.Split(new[] { '&' }, StringSplitOptions.RemoveEmptyEntries))
            {
                int eq = pair.IndexOf('=');
                string key = Uri.UnescapeDataString(eq < 0 ? pair : pair.Substring(0, eq)).Trim().ToLowerInvariant();
                string value = eq < 0 ? string.Empty : Uri.UnescapeDataString(pair.Substring(eq + 1).Replace('+', ' '));
                if (key == "password" || key == "pwd")
                    throw new WriteBehindException(ErrorIds.InvalidStoreUri, PasswordAdvice);
                parameters.Add(new KeyValuePair<string, string>(key, value));
            }
            string host = hostPort;
            int port = 3306;
            if (hostPort.StartsWith("[", StringComparison.Ordinal))
            {
                int close = hostPort.IndexOf(']');
                if (close < 0) throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The MariaDB/MySQL store URI has an unclosed [IPv6] host.");
                host = hostPort.Substring(1, close - 1);
                string tail = hostPort.Substring(close + 1);
                if (tail.Length > 0)
                {
                    if (tail[0] != ':') throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The MariaDB/MySQL store URI has text after its [IPv6] host.");
                    port = ParsePort(tail.Substring(1));
                }
            }
            else
            {
                int colon = hostPort.LastIndexOf(':');
                if (colon >= 0) { host = hostPort.Substring(0, colon); port = ParsePort(hostPort.Substring(colon + 1)); }
            }
            host = Uri.UnescapeDataString(host);
            if (host.Length == 0 || host.IndexOf(',') >= 0)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The MariaDB/MySQL store URI names no host (or several): use mysql://user@host:port/database.");
            string database = Uri.UnescapeDataString(path.TrimStart('/'));
            if (database.Length == 0 || database.IndexOf('/') >= 0)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The MariaDB/MySQL store URI names no database: use mysql://user@host:port/database.");
            string effectiveUser = !string.IsNullOrEmpty(user) ? user : (userInfo == null ? null : Uri.UnescapeDataString(userInfo));
            if (string.IsNullOrEmpty(effectiveUser))
                throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                    "The MariaDB/MySQL store URI names no user: use mysql://user@host:port/database, -StoreCredential or WRITEBEHIND_STORE_USER.");

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
                        builder.ConnectionTimeout = (uint)ParseSeconds(p.Key, p.Value);
                        break;
                    case "command_timeout":
                        builder.DefaultCommandTimeout = (uint)ParseSeconds(p.Key, p.Value);
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
            string shownHost = host.IndexOf(':') >= 0 ? "[" + host + "]" : host;
            return new Target
            {
                Builder = builder,
                Description = scheme + "://" + Uri.EscapeDataString(effectiveUser) + "@" + shownHost + ":" + port.ToString(CultureInfo.InvariantCulture) +
                              "/" + Uri.EscapeDataString(database) + shown,
            };
        }

        private static int ParsePort(string text)
        {
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port < 1 || port > 65535)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The MariaDB/MySQL store URI has an invalid port (1-65535).");
            return port;
        }

        private static int ParseSeconds(string key, string text)
        {
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) || seconds > 3600)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, $"The MariaDB/MySQL store URI parameter '{key}' must be whole seconds (0-3600).");
            return seconds;
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
