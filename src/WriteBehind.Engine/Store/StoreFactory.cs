using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Net.Security;
using Npgsql;

namespace WriteBehind.Engine.Store
{
    /// <summary>Turns a store URI into a store.</summary>
    public static class StoreFactory
    {
        /// <summary>Opens the store the options name (<see cref="WriteBehindOptions.Store"/>), with
        /// <see cref="WriteBehindOptions.StoreUser"/> / <see cref="WriteBehindOptions.StorePassword"/> for a server.</summary>
        public static IProfileStore Open(WriteBehindOptions options)
        {
            if (options == null) throw new ArgumentNullException(nameof(options));
            IProfileStore store = Open(options.Store, options.StoreUser, options.StorePassword, options.ConnectTimeout);
            return options.StoreMapping == null ? store : MappedStores.Wrap(store, options.StoreMapping);
        }

        /// <summary>Opens a store by URI: <c>sqlite:...</c> or a path (SQLite), <c>postgres://</c> or
        /// <c>postgresql://</c> (PostgreSQL; the password comes only from <paramref name="password"/>).</summary>
        public static IProfileStore Open(string uri, string user = null, string password = null, TimeSpan? connectTimeout = null)
        {
            if (MySqlStoreUri.Is(uri))
                return MySqlStoreUri.Open(uri, user, password, connectTimeout);
            if (IsPostgres(uri))
                return OpenPostgres(uri, user, password, connectTimeout);
            string path = SqlitePath(uri);
            // Only the documented default location is created; a missing folder of an explicit path is a
            // typo or an unmounted disk, not a place to start a new empty store.
            return new SqliteProfileStore(path, createDirectory: IsDefaultSqlitePath(path));
        }

        // A method of its own, so that opening another kind of store never loads Npgsql (the JIT loads the
        // assemblies of every type a method body names when it compiles that method).
        private static IProfileStore OpenPostgres(string uri, string user, string password, TimeSpan? connectTimeout)
        {
            PostgresTarget target = ParsePostgres(uri, user, connectTimeout);
            var builder = target.Builder;
            if (!string.IsNullOrEmpty(password)) builder.Password = password;
            RemoteCertificateValidationCallback validation = null;
#if !NET
            if (!string.IsNullOrEmpty(builder.RootCertificate) && (builder.SslMode == SslMode.VerifyCA || builder.SslMode == SslMode.VerifyFull))
            {
                // Npgsql's netstandard2.0 build (Windows PowerShell's) cannot trust a private CA by itself: the
                // module checks the chain against sslrootcert (and the host name for verify-full) itself. On .NET
                // (the net8.0 build) Npgsql does both with RootCertificate and SslMode as they are.
                validation = PostgresCertificates.Validator(builder.RootCertificate, builder.SslMode == SslMode.VerifyFull ? builder.Host : null);
                builder.RootCertificate = null;
                builder.SslMode = SslMode.Require;
            }
#endif
            return new PostgresProfileStore(builder.ConnectionString, target.Description, validation);
        }

        /// <summary>Checks a store URI without opening anything (throws <see cref="WriteBehindException"/>
        /// with <see cref="ErrorIds.InvalidStoreUri"/>), and returns what to show for it (no secret).</summary>
        public static string Validate(string uri, string user = null)
        {
            if (MySqlStoreUri.Is(uri)) return MySqlStoreUri.Parse(uri, user, null).Description;
            string canonical = Normalize(uri, null, user);
            return IsPostgres(canonical) ? ParsePostgres(canonical, user, null).Description : canonical;
        }

        /// <summary>Checks a store value and returns it in its one canonical form: a PostgreSQL URI as given,
        /// a SQLite store as <c>sqlite:///full/path</c>. A relative SQLite path is made full by
        /// <paramref name="resolvePath"/> (the cmdlets pass PowerShell's current location, which is not the
        /// process's current directory); without it, by the process's current directory. An explicit SQLite
        /// path must name a file in a folder that exists (only the default location is created). Throws
        /// <see cref="WriteBehindException"/> with <see cref="ErrorIds.InvalidStoreUri"/>; messages never
        /// repeat a value that is not a store URI (it could be a connection string with a password).</summary>
        public static string Normalize(string uri, Func<string, string> resolvePath = null, string user = null)
        {
            if (IsPostgres(uri))
            {
                ParsePostgres(uri, user, null);
                return uri;
            }
            if (MySqlStoreUri.Is(uri))
            {
                MySqlStoreUri.Parse(uri, user, null);
                return uri;
            }
            string path = SqlitePathText(uri);
            if (resolvePath != null)
            {
                try { path = resolvePath(path); }
                catch (Exception ex) when (!(ex is WriteBehindException))
                {
                    throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The SQLite store path cannot be resolved: " + ex.Message, ex);
                }
            }
            try { path = Path.GetFullPath(path); }
            catch (Exception ex) when (ex is ArgumentException || ex is NotSupportedException || ex is PathTooLongException)
            {
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The SQLite store path is not a valid file path: " + ex.Message, ex);
            }
            CheckSqliteLocation(path);
            return SqliteUri(path);
        }

        /// <summary>The one form a SQLite store is shown in: <c>sqlite:///full/path</c> (on Windows
        /// <c>sqlite:///C:/dir/file.db</c>).</summary>
        public static string SqliteUri(string fullPath)
        {
            string shown = Path.DirectorySeparatorChar == '\\' ? fullPath.Replace('\\', '/') : fullPath;
            // '%' is the one character the URI form unescapes.
            shown = shown.Replace("%", "%25");
            return "sqlite://" + (shown.StartsWith("/", StringComparison.Ordinal) ? "" : "/") + shown;
        }

        internal static bool IsDefaultSqlitePath(string fullPath) =>
            string.Equals(fullPath, Path.GetFullPath(WriteBehindOptions.DefaultStorePath),
                Path.DirectorySeparatorChar == '\\' ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);

        private static void CheckSqliteLocation(string fullPath)
        {
            if (Directory.Exists(fullPath))
                throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                    $"The SQLite store path '{fullPath}' is a folder: name the database file in it (for example {SqliteUri(Path.Combine(fullPath, "writebehind.db"))}).");
            string folder = Path.GetDirectoryName(fullPath);
            if (!string.IsNullOrEmpty(folder) && !Directory.Exists(folder) && !IsDefaultSqlitePath(fullPath))
                throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                    $"The folder '{folder}' of the SQLite store does not exist. Create it first, or check the path for a typo: " +
                    "WriteBehind creates only its default store's folder, never a new empty store somewhere nobody meant.");
        }

        /// <summary>What to show for a store URI: never a secret, even for a URI that is invalid because it
        /// carries a password (then only its scheme), and never a value that is not a store URI at all.</summary>
        public static string Display(string uri)
        {
            if (MySqlStoreUri.Is(uri))
            {
                try { return MySqlStoreUri.Parse(uri, null, null).Description; }
                catch (WriteBehindException) { return uri.Substring(0, uri.IndexOf("://", StringComparison.Ordinal)) + "://(invalid store URI)"; }
            }
            if (!IsPostgres(uri))
            {
                // A relative path is shown as given: only the cmdlets know the location it is relative to.
                try
                {
                    string path = SqlitePathText(uri);
                    return Path.IsPathRooted(path) ? SqliteUri(Path.GetFullPath(path)) : uri;
                }
                catch (Exception ex) when (ex is WriteBehindException || ex is ArgumentException || ex is NotSupportedException || ex is PathTooLongException)
                {
                    return "(invalid store URI)";
                }
            }
            try { return ParsePostgres(uri, null, null).Description; }
            catch (WriteBehindException) { return uri.Substring(0, uri.IndexOf("://", StringComparison.Ordinal)) + "://(invalid store URI)"; }
        }

        /// <summary>Whether <paramref name="uri"/> names a PostgreSQL store (postgres:// or postgresql://).</summary>
        public static bool IsPostgres(string uri) =>
            uri != null && (uri.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || uri.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase));

        internal sealed class PostgresTarget
        {
            public NpgsqlConnectionStringBuilder Builder;
            public string Description;
        }

        /// <summary>postgres://[user@]host[:port]/database[?sslmode=...&amp;sslrootcert=...&amp;connect_timeout=s&amp;command_timeout=s&amp;application_name=...&amp;search_path=...].
        /// The user comes from <paramref name="user"/> (the credential or WRITEBEHIND_STORE_USER) when given, else from the URI.
        /// Messages never echo the URI's authority or query (they could hold a secret).</summary>
        internal static PostgresTarget ParsePostgres(string uri, string user, TimeSpan? connectTimeout)
        {
            var parsed = ServerStoreUri.Parse(uri, user, "PostgreSQL", "postgres", 5432, "password", "passfile");
            string scheme = parsed.Scheme, host = parsed.Host, database = parsed.Database, effectiveUser = parsed.User;
            int port = parsed.Port;
            var parameters = parsed.Parameters;

            var builder = new NpgsqlConnectionStringBuilder
            {
                Host = host,
                Port = port,
                Database = database,
                Username = effectiveUser,
                ApplicationName = "WriteBehind",
                Timeout = Math.Max(1, (int)Math.Ceiling((connectTimeout ?? TimeSpan.FromSeconds(5)).TotalSeconds)),
                CommandTimeout = 30,
            };
            var shown = new StringBuilder();
            foreach (var p in parameters)
            {
                try
                {
                    switch (p.Key)
                    {
                        case "sslmode":
                            builder.SslMode = ParseSslMode(p.Value);
                            break;
                        case "sslrootcert":
                            builder.RootCertificate = p.Value;
                            break;
                        case "connect_timeout":
                            builder.Timeout = parsed.Seconds(p.Key, p.Value);
                            break;
                        case "command_timeout":
                            builder.CommandTimeout = parsed.Seconds(p.Key, p.Value);
                            break;
                        case "application_name":
                            builder.ApplicationName = p.Value;
                            break;
                        case "search_path":
                            builder.SearchPath = p.Value;
                            break;
                        default:
                            throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                                $"Unsupported PostgreSQL store URI parameter '{p.Key}': use sslmode, sslrootcert, connect_timeout, command_timeout, application_name or search_path.");
                    }
                }
                catch (ArgumentException ex)
                {
                    throw new WriteBehindException(ErrorIds.InvalidStoreUri, $"Invalid value for the PostgreSQL store URI parameter '{p.Key}': {ex.Message}");
                }
                shown.Append(shown.Length == 0 ? '?' : '&').Append(EscapeQuery(p.Key)).Append('=').Append(EscapeQuery(p.Value));
            }

            string shownHost = parsed.ShownHost;
            return new PostgresTarget
            {
                Builder = builder,
                Description = scheme + "://" + Uri.EscapeDataString(effectiveUser) + "@" + shownHost + ":" + port.ToString(CultureInfo.InvariantCulture) +
                              "/" + Uri.EscapeDataString(database) + shown,
            };
        }

        // Like Uri.EscapeDataString, but leaves '/', ':', '@' and ',' readable (a path in sslrootcert).
        private static string EscapeQuery(string text)
        {
            var sb = new StringBuilder(text.Length);
            foreach (char c in text)
            {
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || "-._~/:@,".IndexOf(c) >= 0) sb.Append(c);
                else sb.Append(Uri.EscapeDataString(c.ToString()));
            }
            return sb.ToString();
        }

        private static SslMode ParseSslMode(string text)
        {
            switch (text.ToLowerInvariant())
            {
                case "disable": return SslMode.Disable;
                case "allow": return SslMode.Allow;
                case "prefer": return SslMode.Prefer;
                case "require": return SslMode.Require;
                case "verify-ca": return SslMode.VerifyCA;
                case "verify-full": return SslMode.VerifyFull;
                default:
                    throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                        "The PostgreSQL store URI parameter 'sslmode' must be disable, allow, prefer, require, verify-ca or verify-full.");
            }
        }

        /// <summary>The full file path of a SQLite store URI: <c>sqlite:///abs/file.db</c> (absolute),
        /// <c>sqlite:rel/file.db</c> or <c>sqlite://rel/file.db</c> (relative to the process's current
        /// directory: the cmdlets resolve relative paths first, see <see cref="Normalize"/>), or a plain path
        /// to a file ending in .db, .sqlite or .sqlite3.</summary>
        public static string SqlitePath(string uri) => Path.GetFullPath(SqlitePathText(uri));

        private static readonly string[] SqliteExtensions = { ".db", ".sqlite", ".sqlite3" };

        private const string StoreForms =
            "use sqlite:///path/to/file.db, sqlite:relative/file.db, a path to a file ending in .db, .sqlite or .sqlite3, postgres://user@host:port/database or mysql://user@host:port/database";

        /// <summary>The path a SQLite store value names, as written (not yet made full).</summary>
        private static string SqlitePathText(string uri)
        {
            if (string.IsNullOrWhiteSpace(uri))
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The store URI is empty: " + StoreForms + ".");
            string path;
            if (uri.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase))
            {
                path = uri.Substring("sqlite:".Length);
                // Options after the path (';Password=...', '?mode=ro') would silently become part of a new
                // file's name: refused, and not repeated (they may hold a secret).
                if (path.IndexOf(';') >= 0 || path.IndexOf('?') >= 0 || path.IndexOf('#') >= 0)
                    throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                        "A sqlite: store URI takes a file path only, without options (';', '?' or '#'): " + StoreForms + ".");
                if (path.StartsWith("//", StringComparison.Ordinal)) path = path.Substring(2);
                // sqlite:///C:/x.db on Windows
                if (path.Length > 2 && path[0] == '/' && path[2] == ':') path = path.Substring(1);
                path = Uri.UnescapeDataString(path);
            }
            else if (uri.IndexOf("://", StringComparison.Ordinal) > 0)
            {
                string scheme = uri.Substring(0, uri.IndexOf(':'));
                bool plainScheme = scheme.Length <= 20 && char.IsLetter(scheme[0]);
                foreach (char c in scheme) plainScheme &= char.IsLetterOrDigit(c) || c == '+' || c == '-' || c == '.';
                throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                    (plainScheme ? $"Unsupported store scheme '{scheme}': " : "The store value is not a store URI: ") + StoreForms + ".");
            }
            else
            {
                // A plain value is a SQLite file only when it looks like one: anything else (a connection
                // string such as 'Server=db01;Database=profiles', a bare word) would otherwise silently
                // become a new SQLite file of that name. The value is not repeated: it may hold a secret.
                bool looksLikeFile = uri.IndexOf('=') < 0 && uri.IndexOf(';') < 0;
                bool hasExtension = false;
                foreach (string extension in SqliteExtensions)
                    hasExtension |= uri.TrimEnd().EndsWith(extension, StringComparison.OrdinalIgnoreCase);
                if (!looksLikeFile || !hasExtension)
                    throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                        "The store value is neither a store URI nor a path to a SQLite file" +
                        (looksLikeFile ? "" : " (it looks like a connection string)") + ": " + StoreForms + ".");
                path = uri;
            }
            if (path.Length == 0)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The store URI names no file: " + StoreForms + ".");
            return path;
        }
    }
}
