using System;
using System.IO;

namespace WriteBehind.Engine.Store
{
    /// <summary>Turns a store URI into a store.</summary>
    public static class StoreFactory
    {
        public static IProfileStore Open(string uri)
        {
            return new SqliteProfileStore(SqlitePath(uri));
        }

        /// <summary>The file path of a SQLite store URI: <c>sqlite:///abs/file.db</c> (absolute),
        /// <c>sqlite:rel/file.db</c> or <c>sqlite://rel/file.db</c> (relative to the current directory),
        /// or a plain path.</summary>
        public static string SqlitePath(string uri)
        {
            if (string.IsNullOrWhiteSpace(uri))
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The store URI is empty.");
            string path;
            if (uri.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase))
            {
                path = uri.Substring("sqlite:".Length);
                if (path.StartsWith("//", StringComparison.Ordinal)) path = path.Substring(2);
                // sqlite:///C:/x.db on Windows
                if (path.Length > 2 && path[0] == '/' && path[2] == ':') path = path.Substring(1);
                path = Uri.UnescapeDataString(path);
            }
            else if (uri.IndexOf("://", StringComparison.Ordinal) > 0)
            {
                string scheme = uri.Substring(0, uri.IndexOf(':'));
                throw new WriteBehindException(ErrorIds.InvalidStoreUri,
                    $"Unsupported store scheme '{scheme}': use sqlite:///path/to/file.db.");
            }
            else
            {
                path = uri;
            }
            if (path.Length == 0)
                throw new WriteBehindException(ErrorIds.InvalidStoreUri, "The store URI names no file.");
            return Path.GetFullPath(path);
        }
    }
}
