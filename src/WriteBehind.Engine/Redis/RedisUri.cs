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

        /// <summary>Whether <paramref name="value"/> starts as a URI of another scheme (<c>http://</c>, a store's
        /// <c>postgres://</c> or <c>sqlite://</c>): StackExchange.Redis would take the scheme for a host name and
        /// the connect would time out on <c>scheme://host:port:0</c>.</summary>
        public static bool IsOtherScheme(string value, out string scheme)
        {
            scheme = null;
            if (value == null) return false;
            string v = value.TrimStart();
            int sep = v.IndexOf("://", StringComparison.Ordinal);
            if (sep <= 0 || !IsAsciiLetter(v[0])) return false;
            for (int i = 1; i < sep; i++)
            {
                char c = v[i];
                if (!(IsAsciiLetter(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) return false;
            }
            scheme = v.Substring(0, sep);
            return !IsUri(v);
        }

        /// <summary>The refusal of a URI of another scheme in -Redis: the scheme is named (a short run of letters),
        /// nothing after it.</summary>
        public static WriteBehindException OtherScheme(string scheme) =>
            new WriteBehindException(ErrorIds.InvalidConfiguration,
                $"The Redis value is a{(scheme.Length <= 16 ? " " + scheme.ToLowerInvariant() + "://" : "")} URI, not a Redis one: use host:port, " +
                "redis://host:port or rediss://host:port (TLS), or a StackExchange.Redis configuration string such as host:port,ssl=true. " +
                "A store's URI (sqlite://, postgres://, mysql://) belongs in -Store.");

        private static bool IsAsciiLetter(char c) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

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
