using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using MySqlConnector;

namespace WriteBehind.Engine.Store
{
    /// <summary>The mapped MariaDB/MySQL table read from the catalog (information_schema), checked against the
    /// mapping, and the statements built for it.</summary>
    internal sealed partial class MySqlMappedStore
    {
        private static string Quote(string identifier) => "`" + identifier.Replace("`", "``") + "`";

        private static ColumnKind KindOf(string dataType, string columnType)
        {
            switch (dataType)
            {
                case "tinyint":
                    return columnType.StartsWith("tinyint(1)", StringComparison.Ordinal) ? ColumnKind.Boolean : ColumnKind.Integer;
                case "smallint": case "mediumint": case "int": case "bigint": return ColumnKind.Integer;
                case "bit": return columnType == "bit(1)" ? ColumnKind.Boolean : ColumnKind.Other;
                case "boolean": case "bool": return ColumnKind.Boolean;
                case "decimal": return ColumnKind.Numeric;
                case "float": case "double": return ColumnKind.Real;
                case "date": case "datetime": case "timestamp": case "time": return ColumnKind.Timestamp;
                case "json": return ColumnKind.Json;
                case "char": case "varchar": case "tinytext": case "text": case "mediumtext": case "longtext": case "enum": case "set": return ColumnKind.Text;
                default: return ColumnKind.Other;
            }
        }

        private sealed class MySqlColumn : CatalogColumn
        {
            public string ColumnType;
            public string Collation;
            public string Charset;
        }

        private async Task<Layout> ReadCatalogAsync(MySqlConnection connection, CancellationToken cancellationToken)
        {
            Mapping.SplitTable(out string schema, out string table);
            string schemaName = null, tableName = null;
            using (var command = new MySqlCommand(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(@s, DATABASE()) AND TABLE_NAME = @t " +
                "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME = BINARY @t DESC LIMIT 1", connection))
            {
                command.Parameters.AddWithValue("@s", (object)schema ?? DBNull.Value);
                command.Parameters.AddWithValue("@t", table);
                using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        schemaName = reader.GetString(0);
                        tableName = reader.GetString(1);
                    }
                }
            }
            if (tableName == null)
                throw MappedValues.Missing(_server.Description, Mapping.Table, new[] { $"there is no table '{Mapping.Table}'" + (schema == null ? " in the URI's database" : "") });

            var columns = new List<MySqlColumn>();
            using (var command = new MySqlCommand(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COLLATION_NAME, CHARACTER_SET_NAME, ORDINAL_POSITION, " +
                "IS_NULLABLE = 'NO' AND COLUMN_DEFAULT IS NULL AND EXTRA NOT LIKE '%auto_increment%' AND EXTRA NOT LIKE '%GENERATED%' " +
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t ORDER BY ORDINAL_POSITION", connection))
            {
                command.Parameters.AddWithValue("@s", schemaName);
                command.Parameters.AddWithValue("@t", tableName);
                using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        string dataType = reader.GetString(1).ToLowerInvariant();
                        string columnType = reader.GetString(2).ToLowerInvariant();
                        var c = new MySqlColumn
                        {
                            Name = reader.GetString(0),
                            TypeName = dataType,
                            ColumnType = columnType,
                            Collation = reader.IsDBNull(3) ? null : reader.GetString(3),
                            Charset = reader.IsDBNull(4) ? null : reader.GetString(4),
                            Position = Convert.ToInt32(reader.GetValue(5), CultureInfo.InvariantCulture),
                            RequiredWithoutDefault = Convert.ToInt64(reader.GetValue(6), CultureInfo.InvariantCulture) != 0,
                            Kind = KindOf(dataType, columnType),
                        };
                        columns.Add(c);
                    }
                }
            }
            string qualified = schemaName + "." + tableName;
            // Column names are case-insensitive in MariaDB/MySQL.
            var catalog = new MappedCatalog<MySqlColumn>(Mapping, qualified, columns, ignoreCase: true);
            MySqlColumn key = catalog.Key;
            if (key != null)
            {
                if (key.Kind != ColumnKind.Text && key.Kind != ColumnKind.Integer)
                    catalog.AddProblem($"the key column '{key.Name}' is {key.ColumnType}: it must be a text or an integer type");
                using (var command = new MySqlCommand(
                    "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = @s AND TABLE_NAME = @t " +
                    "GROUP BY INDEX_NAME HAVING COUNT(*) = 1 AND MAX(NON_UNIQUE) = 0 AND MAX(COLUMN_NAME) = @k) AS u", connection))
                {
                    command.Parameters.AddWithValue("@s", schemaName);
                    command.Parameters.AddWithValue("@t", tableName);
                    command.Parameters.AddWithValue("@k", key.Name);
                    if (Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) == 0)
                        catalog.AddProblem($"the key column '{key.Name}' is neither the primary key nor unique on its own");
                }
            }
            List<MappedColumn> mapped = catalog.MapColumns();
            MappedColumn json = catalog.MapJson(
                c => c.Kind == ColumnKind.Text || c.Kind == ColumnKind.Json,
                c => $"the JSON column '{c.Name}' is {c.ColumnType}: it must be a text type or json",
                c => new MappedColumn(null, c.Name, c.Kind, c.TypeName, c.Position));
            catalog.ThrowIfProblems(_server.Description);

            var layout = new Layout
            {
                TableName = qualified,
                Target = Quote(schemaName) + "." + Quote(tableName),
                Key = new MappedColumn(null, key.Name, key.Kind, key.TypeName, key.Position),
                KeyCollation = key.Kind == ColumnKind.Text ? key.Collation : null,
                Columns = MappedValues.InRebuildOrder(Mapping, mapped),
                Json = json,
            };
            BuildStatements(layout, key.Charset);
            return layout;
        }

        private void BuildStatements(Layout layout, string keyCharset)
        {
            int n = layout.Columns.Count;
            var columns = new List<string> { "n FOR ORDINALITY", "k varchar(128) CHARACTER SET ascii PATH '$[0]'", "v bigint PATH '$[1]'", "d int PATH '$[2]'" };
            for (int i = 0; i < n; i++) columns.Add("c" + i.ToString(CultureInfo.InvariantCulture) + " longtext CHARACTER SET utf8mb4 PATH '$[" + (3 + i).ToString(CultureInfo.InvariantCulture) + "]'");
            if (layout.Json != null) columns.Add("cj longtext CHARACTER SET utf8mb4 PATH '$[" + (3 + n).ToString(CultureInfo.InvariantCulture) + "]'");
            layout.BatchTable = "JSON_TABLE(@rows, '$[*]' COLUMNS(" + string.Join(", ", columns) + ")) AS j";
            // The key as the user's table compares it: an integer, or text in the key column's own collation.
            string keyOf(string alias) => layout.KeyCollation != null
                ? "CONVERT(" + alias + ".k USING " + (keyCharset ?? "utf8mb4") + ") COLLATE " + layout.KeyCollation
                : alias + ".k";
            string keyIds = layout.KeyCollation != null
                ? "CONVERT(q.k USING " + (keyCharset ?? "utf8mb4") + ") COLLATE " + layout.KeyCollation
                : "q.k";

            // The keys whose incoming version is newer; FOR UPDATE locks their wb_versions rows (and, for new keys,
            // the gap) until the commit, so the statements below see what this one saw.
            layout.NewerSql = "SELECT j.k FROM " + layout.BatchTable + " LEFT JOIN wb_versions AS s ON s.table_name = @table AND s.`key` = j.k " +
                "WHERE s.`key` IS NULL OR s.version < j.v ORDER BY j.n FOR UPDATE";
            layout.VersionsSql = "INSERT INTO wb_versions(table_name, `key`, version, deleted, updated_at) " +
                "SELECT @table, j.k, j.v, j.d, UTC_TIMESTAMP(6) FROM " + layout.BatchTable + " ORDER BY j.n " +
                "ON DUPLICATE KEY UPDATE deleted = IF(VALUES(version) > version, VALUES(deleted), deleted), " +
                "updated_at = IF(VALUES(version) > version, VALUES(updated_at), updated_at), version = GREATEST(version, VALUES(version))";
            var targetColumns = new List<string> { Quote(layout.Key.Column) };
            var selected = new List<string> { keyOf("j") };
            for (int i = 0; i < n; i++) { targetColumns.Add(Quote(layout.Columns[i].Column)); selected.Add("j.c" + i.ToString(CultureInfo.InvariantCulture)); }
            if (layout.Json != null) { targetColumns.Add(Quote(layout.Json.Column)); selected.Add("j.cj"); }
            layout.UpsertSql = "INSERT INTO " + layout.Target + "(" + string.Join(", ", targetColumns) + ") SELECT " + string.Join(", ", selected) +
                " FROM " + layout.BatchTable + " ORDER BY j.n ON DUPLICATE KEY UPDATE " +
                string.Join(", ", targetColumns.Skip(1).Select(c => c + " = VALUES(" + c + ")"));
            layout.DeleteSql = Mapping.DeleteMode == StoreDeleteMode.Delete
                ? "DELETE t FROM " + layout.Target + " AS t JOIN " + layout.BatchTable + " ON t." + Quote(layout.Key.Column) + " = " + keyOf("j")
                : null;
            var read = new StringBuilder("SELECT q.k, s.version, s.deleted, s.updated_at, t." + Quote(layout.Key.Column) + " IS NOT NULL");
            foreach (var column in layout.Columns) read.Append(", t.").Append(Quote(column.Column));
            if (layout.Json != null) read.Append(", t.").Append(Quote(layout.Json.Column));
            read.Append(" FROM JSON_TABLE(@ids, '$[*]' COLUMNS(k varchar(128) CHARACTER SET ascii PATH '$')) AS q ")
                .Append("LEFT JOIN wb_versions AS s ON s.table_name = @table AND s.`key` = q.k ")
                .Append("LEFT JOIN ").Append(layout.Target).Append(" AS t ON t.").Append(Quote(layout.Key.Column)).Append(" = ").Append(keyIds)
                .Append(" WHERE s.`key` IS NOT NULL OR t.").Append(Quote(layout.Key.Column)).Append(" IS NOT NULL");
            layout.ReadSql = read.ToString();
        }
    }
}
