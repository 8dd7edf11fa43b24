using System;
using System.Collections.Generic;
using System.Linq;

namespace WriteBehind.Engine.Store
{
    /// <summary>A column of an existing user_profiles table, as the database describes it.</summary>
    internal sealed class StoreColumn
    {
        public StoreColumn(string name, string type, bool notNull, bool hasDefault, long keyPosition)
        {
            Name = name;
            Type = type;
            NotNull = notNull;
            HasDefault = hasDefault;
            KeyPosition = keyPosition;
        }

        public string Name { get; }
        public string Type { get; }
        public bool NotNull { get; }
        public bool HasDefault { get; }
        /// <summary>Position in the primary key (1-based), 0 when not part of it.</summary>
        public long KeyPosition { get; }

        public bool Is(string name) => string.Equals(Name, name, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The check both stores make before they use (or create anything beside) a table named
    /// user_profiles that is already there: it must be the module's table, not an application's own.</summary>
    internal static class StoreTableShape
    {
        public const string Table = "user_profiles";

        /// <summary>The module's columns, in its order.</summary>
        public static readonly string[] Columns = { "user_id", "json", "version", "deleted", "updated_at" };

        /// <param name="store">The store's description (no secret).</param>
        /// <param name="typeProblems">Columns of the module's names whose type differs (e.g. "json is jsonb, not text").</param>
        /// <param name="columns">The existing table's columns.</param>
        /// <param name="userIdIsKey">Whether user_id is its primary key or unique on its own.</param>
        public static void ThrowIfNotTheModules(string store, IReadOnlyList<StoreColumn> columns, bool userIdIsKey, IReadOnlyList<string> typeProblems)
        {
            var problems = new List<string>();
            var missing = Columns.Where(name => !columns.Any(c => c.Is(name))).ToList();
            if (missing.Count > 0)
                problems.Add("it has no column" + (missing.Count == 1 ? " " : "s ") + string.Join(", ", missing));
            if (typeProblems != null)
                problems.AddRange(typeProblems);
            if (missing.All(m => m != "user_id") && !userIdIsKey)
                problems.Add("user_id is not its primary key (nor unique on its own)");
            var unfillable = columns.Where(c => c.NotNull && !c.HasDefault && !Columns.Any(c.Is)).Select(c => c.Name).ToList();
            if (unfillable.Count > 0)
                problems.Add("the column" + (unfillable.Count == 1 ? " " : "s ") + string.Join(", ", unfillable) +
                             (unfillable.Count == 1 ? " is" : " are") + " NOT NULL without a default");
            if (problems.Count == 0)
                return;
            throw new WriteBehindException(ErrorIds.StoreTableMismatch,
                $"The store {store} already has a table {Table} that is not WriteBehind's: {string.Join("; ", problems)} " +
                $"(its columns: {string.Join(", ", columns.Select(c => c.Name))}). WriteBehind needs {Table}({string.Join(", ", Columns)}) " +
                "and never changes a table it does not own, so nothing was written. Point -Store at a database (or file) of its own" +
                (store.StartsWith("postgres", StringComparison.OrdinalIgnoreCase) ? ", or at a schema of its own with ?search_path=..." : "") + ".");
        }
    }
}
