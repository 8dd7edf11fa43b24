using System;
using System.Globalization;

namespace WriteBehind.Engine.Store
{
    /// <summary>The version of the module's own schema (wb_schema) that every store writes, and the refusal of a newer one.</summary>
    internal static class StoreSchema
    {
        /// <summary>The schema version this code writes and understands.</summary>
        public const int CurrentVersion = 1;

        /// <param name="kind">How the message starts: "SQLite store", "PostgreSQL store"...</param>
        /// <param name="elsewhere">What else to point at: "file", "database".</param>
        /// <param name="description">The store's description (no secret).</param>
        /// <param name="version">The schema version the store records.</param>
        public static void ThrowIfNewer(string kind, string description, long version, string elsewhere)
        {
            if (version > CurrentVersion)
            {
                throw new InvalidOperationException(
                    kind + " " + description + " has schema version " + version.ToString(CultureInfo.InvariantCulture) +
                    ", newer than the version " + CurrentVersion.ToString(CultureInfo.InvariantCulture) +
                    " this WriteBehind understands. Upgrade WriteBehind or point it at another " + elsewhere + ".");
            }
        }
    }
}
