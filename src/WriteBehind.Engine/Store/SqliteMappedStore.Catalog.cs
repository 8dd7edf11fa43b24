using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Microsoft.Data.Sqlite;

namespace WriteBehind.Engine.Store
{
    /// <summary>The mapped SQLite table read from the catalog (pragma_table_info), checked against the mapping,
    /// and the statements built for it.</summary>
    internal sealed partial class SqliteMappedStore
    {
        private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"") + "\"";

        /// <summary>The column's kind from its declared type, by SQLite's affinity rules plus BOOLEAN, DATE/TIME and JSON.</summary>
        internal static ColumnKind KindOf(string declared)
        {
            string t = (declared ?? "").ToUpperInvariant();
            if (t.Contains("BOOL")) return ColumnKind.Boolean;
            if (t.Contains("INT")) return ColumnKind.Integer;
            if (t.Contains("JSON")) return ColumnKind.Json;
            if (t.Contains("CHAR") || t.Contains("CLOB") || t.Contains("TEXT")) return ColumnKind.Text;
            if (t.Contains("REAL") || t.Contains("FLOA") || t.Contains("DOUB")) return ColumnKind.Real;
            if (t.Contains("DATE") || t.Contains("TIME")) return ColumnKind.Timestamp;
            if (t.Contains("DEC") || t.Contains("NUM")) return ColumnKind.Numeric;
            return ColumnKind.Other;
        }

        private sealed class SqliteColumn : CatalogColumn
        {
            public string Declared;
            public int PrimaryKey;
        }

        private Layout ReadCatalog(SqliteConnection connection)
        {
            Mapping.SplitTable(out string schema, out string table);
            if (schema != null && !string.Equals(schema, "main", StringComparison.OrdinalIgnoreCase))
                throw MappedValues.Missing(Description, Mapping.Table, new[] { $"a SQLite store's table is in the schema 'main', not '{schema}'" });
            string tableName = null;
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.CommandText = "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name = $t COLLATE NOCASE ORDER BY name = $t DESC LIMIT 1";
                command.Parameters.Add("$t", SqliteType.Text).Value = table;
                tableName = command.ExecuteScalar() as string;
            }
            if (tableName == null)
                throw MappedValues.Missing(Description, Mapping.Table, new[] { $"there is no table '{Mapping.Table}'" });

            var columns = new List<SqliteColumn>();
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.CommandText = "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk, cid FROM pragma_table_info($t, 'main') ORDER BY cid";
                command.Parameters.Add("$t", SqliteType.Text).Value = tableName;
                using (var reader = command.ExecuteReader())
                {
                    while (reader.Read())
                    {
                        string declared = reader.IsDBNull(1) ? "" : reader.GetString(1);
                        columns.Add(new SqliteColumn
                        {
                            Name = reader.GetString(0),
                            Declared = declared,
                            TypeName = declared.Length == 0 ? "no type" : declared,
                            Kind = KindOf(declared),
                            RequiredWithoutDefault = reader.GetInt64(2) != 0 && reader.GetInt64(3) == 0,
                            PrimaryKey = (int)reader.GetInt64(4),
                            Position = (int)reader.GetInt64(5),
                        });
                    }
                }
            }
            // SQLite's identifiers are case-insensitive.
            var catalog = new MappedCatalog<SqliteColumn>(Mapping, tableName, columns, ignoreCase: true);
            SqliteColumn key = catalog.Key;
            ColumnKind keyKind = ColumnKind.Text;
            if (key != null)
            {
                keyKind = key.Kind == ColumnKind.Integer ? ColumnKind.Integer : ColumnKind.Text;
                bool unique = key.PrimaryKey > 0 && columns.Count(c => c.PrimaryKey > 0) == 1;
                if (!unique)
                {
                    using (SqliteCommand command = connection.CreateCommand())
                    {
                        command.CommandText =
                            "SELECT COUNT(*) FROM pragma_index_list($t, 'main') il WHERE il.\"unique\" = 1 AND il.partial = 0 " +
                            "AND (SELECT COUNT(*) FROM pragma_index_info(il.name, 'main')) = 1 " +
                            "AND (SELECT name FROM pragma_index_info(il.name, 'main')) = $k COLLATE NOCASE";
                        command.Parameters.Add("$t", SqliteType.Text).Value = tableName;
                        command.Parameters.Add("$k", SqliteType.Text).Value = key.Name;
                        unique = Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture) > 0;
                    }
                }
                if (!unique)
                    catalog.AddProblem($"the key column '{key.Name}' is neither the primary key nor unique on its own");
            }
            List<MappedColumn> mapped = catalog.MapColumns();
            MappedColumn json = catalog.MapJson(
                c => c.Kind == ColumnKind.Text || c.Kind == ColumnKind.Json || c.Kind == ColumnKind.Other,
                c => $"the JSON column '{c.Name}' is {c.Declared}: it must be TEXT or JSON",
                c => new MappedColumn(null, c.Name, ColumnKind.Text, c.Declared, c.Position));
            catalog.ThrowIfProblems(Description);

            var layout = new Layout
            {
                TableName = tableName,
                Key = new MappedColumn(null, key.Name, keyKind, key.Declared, key.Position),
                Columns = MappedValues.InRebuildOrder(Mapping, mapped),
                Json = json,
            };
            BuildStatements(layout, "main." + Quote(tableName));
            return layout;
        }

        private void BuildStatements(Layout layout, string target)
        {
            int n = layout.Columns.Count;
            var aliases = Enumerable.Range(0, n).Select(i => "c" + i.ToString(CultureInfo.InvariantCulture)).ToList();
            var staged = new List<string> { "k", "kv", "version", "deleted" };
            staged.AddRange(aliases);
            if (layout.Json != null) staged.Add("cj");
            // No declared types: the values keep the storage class they were given.
            layout.StagingTableSql = "CREATE TEMP TABLE wb_batch(n INTEGER PRIMARY KEY, " + string.Join(", ", staged) + ")";
            layout.StageSql = "INSERT INTO temp.wb_batch(" + string.Join(", ", staged) + ") SELECT " +
                string.Join(", ", staged.Select((_, i) => "json_extract(r.value, '$[" + i.ToString(CultureInfo.InvariantCulture) + "]')")) +
                " FROM json_each($rows) r ORDER BY r.key";
            layout.DropStaleSql = "DELETE FROM temp.wb_batch WHERE EXISTS (SELECT 1 FROM main.wb_versions v " +
                "WHERE v.table_name = $table AND v.key = temp.wb_batch.k AND v.version >= temp.wb_batch.version)";
            layout.VersionsSql = "INSERT INTO main.wb_versions(table_name, key, version, deleted, updated_at) " +
                "SELECT $table, k, version, deleted, $now FROM temp.wb_batch WHERE true " +
                "ON CONFLICT(table_name, key) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, updated_at = excluded.updated_at";
            var targetColumns = new List<string> { Quote(layout.Key.Column) };
            var selected = new List<string> { "kv" };
            for (int i = 0; i < n; i++) { targetColumns.Add(Quote(layout.Columns[i].Column)); selected.Add(aliases[i]); }
            if (layout.Json != null) { targetColumns.Add(Quote(layout.Json.Column)); selected.Add("cj"); }
            layout.UpsertSql = "INSERT INTO " + target + "(" + string.Join(", ", targetColumns) + ") SELECT " + string.Join(", ", selected) +
                " FROM temp.wb_batch WHERE deleted = 0 ORDER BY n ON CONFLICT(" + Quote(layout.Key.Column) + ") DO UPDATE SET " +
                string.Join(", ", targetColumns.Skip(1).Select(c => c + " = excluded." + c));
            layout.DeleteSql = Mapping.DeleteMode == StoreDeleteMode.Delete
                ? "DELETE FROM " + target + " WHERE " + Quote(layout.Key.Column) + " IN (SELECT kv FROM temp.wb_batch WHERE deleted = 1)"
                : null;
            string keyExpr = layout.Key.Kind == ColumnKind.Integer ? "CAST(q.value AS INTEGER)" : "q.value";
            var read = new StringBuilder("SELECT q.value, v.version, v.deleted, v.updated_at, t." + Quote(layout.Key.Column) + " IS NOT NULL");
            foreach (var column in layout.Columns) read.Append(", t.").Append(Quote(column.Column));
            if (layout.Json != null) read.Append(", t.").Append(Quote(layout.Json.Column));
            read.Append(" FROM json_each($ids) q LEFT JOIN main.wb_versions v ON v.table_name = $table AND v.key = q.value ")
                .Append("LEFT JOIN ").Append(target).Append(" t ON t.").Append(Quote(layout.Key.Column)).Append(" = ").Append(keyExpr)
                .Append(" WHERE v.key IS NOT NULL OR t.").Append(Quote(layout.Key.Column)).Append(" IS NOT NULL");
            layout.ReadSql = read.ToString();
        }
    }
}
