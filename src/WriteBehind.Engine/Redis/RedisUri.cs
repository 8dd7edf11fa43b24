// A redis:// or rediss:// URI where a StackExchange.Redis configuration string belongs: the form most Redis
// clients and hosted services hand out, translated instead of being misread as a host name.
using System;
using System.Globalization;

namespace WriteBehind.Engine.Redis
{
    internal static class RedisUri
    {
        /// <summary>Whether <paramref name="value"/> starts with redis:// or rediss://.</summary>
        public static bool IsUri(string value) =>
            value != null && (value.TrimStart().StartsWith("redis://", StringComparison.OrdinalIgnoreCase)
                              || value.TrimStart().StartsWith("rediss://", StringComparison.OrdinalIgnoreCase));

        /// <summary><c>redis[s]://[user][:password]@host[:port][/db]</c> as <c>host:port[,ssl=true][,defaultDatabase=db]</c>
        /// (port 6379 when none is given; rediss means TLS), with the user and password (percent-decoded, null when
        /// absent) taken out. Anything else in the URI (a query, several hosts) is refused with InvalidConfiguration,
        /// in words that never repeat the URI (it may hold a password).</summary>
        public static string ToConfiguration(string value, out string user, out string password)
        {
            user = null;
            password = null;
            const string form = "use redis://host:port or rediss://host:port (TLS), optionally with a database number (/0), " +
                                "or a StackExchange.Redis configuration string such as host:port,ssl=true; put options after a comma in the second form.";
            if (!Uri.TryCreate(value.Trim(), UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
                throw Invalid("it is not a well-formed URI with a host", form);
            if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
                throw Invalid("it has a query or fragment, which WriteBehind does not read", form);
            bool tls = uri.Scheme.Equals("rediss", StringComparison.OrdinalIgnoreCase);
            int port = uri.Port > 0 ? uri.Port : 6379;
            string database = null;
            string path = uri.AbsolutePath.Trim('/');
            if (path.Length > 0)
            {
                if (!int.TryParse(path, NumberStyles.None, CultureInfo.InvariantCulture, out int db) || db > 65535)
                    throw Invalid("its path is not a database number", form);
                database = db.ToString(CultureInfo.InvariantCulture);
            }
            if (!string.IsNullOrEmpty(uri.UserInfo))
            {
                string info = uri.UserInfo;
                int colon = info.IndexOf(':');
                string name = colon < 0 ? info : info.Substring(0, colon);
                if (name.Length > 0) user = Uri.UnescapeDataString(name);
                if (colon >= 0) password = Uri.UnescapeDataString(info.Substring(colon + 1));
            }
            return uri.Host + ":" + port.ToString(CultureInfo.InvariantCulture)
                   + (tls ? ",ssl=true" : "")
                   + (database != null ? ",defaultDatabase=" + database : "");
        }

        private static WriteBehindException Invalid(string why, string form) =>
            new WriteBehindException(ErrorIds.InvalidConfiguration, $"The Redis URI could not be read: {why}; {form}");
    }
}
