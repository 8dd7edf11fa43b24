using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using NpgsqlTypes;

namespace WriteBehind.Engine.Store
{
    /// <summary>The mapped PostgreSQL table read from the catalog (pg_class, pg_attribute, pg_index), checked
    /// against the mapping, and the one commit statement and the read statement built for it.</summary>
    internal sealed partial class PostgresMappedStore
    {
        private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"") + "\"";

        private static ColumnKind KindOf(string baseType, string category)
        {
            switch (baseType)
            {
                case "int2": case "int4": case "int8": return ColumnKind.Integer;
                case "float4": case "float8": return ColumnKind.Real;
                case "numeric": return ColumnKind.Numeric;
                case "bool": return ColumnKind.Boolean;
                case "json": case "jsonb": return ColumnKind.Json;
            }
            switch (category)
            {
                case "S": return ColumnKind.Text;
                case "D": return ColumnKind.Timestamp;
                default: return ColumnKind.Other;
            }
        }

        private sealed class PostgresColumn : CatalogColumn
        {
            public short Number;
            public string BaseType;
        }

        private async Task<Layout> ReadCatalogAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
        {
            Mapping.SplitTable(out string schema, out string table);
            uint oid = 0;
            string schemaName = null, tableName = null;
            const string findTable =
                "SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
                "WHERE c.relkind IN ('r', 'p') AND (c.relname = @t OR c.relname = lower(@t)) " +
                "AND (CASE WHEN @s::text IS NULL THEN n.nspname = ANY(current_schemas(false)) ELSE (n.nspname = @s OR n.nspname = lower(@s)) END) " +
                "ORDER BY (c.relname = @t) DESC, array_position(current_schemas(false), n.nspname::text) LIMIT 1";
            using (var command = new NpgsqlCommand(findTable, connection))
            {
                command.Parameters.Add(new NpgsqlParameter("t", NpgsqlDbType.Text) { Value = table });
                command.Parameters.Add(new NpgsqlParameter("s", NpgsqlDbType.Text) { Value = (object)schema ?? DBNull.Value });
                using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        oid = reader.GetFieldValue<uint>(0);
                        schemaName = reader.GetString(1);
                        tableName = reader.GetString(2);
                    }
                }
            }
            if (oid == 0)
                throw MappedValues.Missing(_server.Description, Mapping.Table, new[] { $"there is no table '{Mapping.Table}'" + (schema == null ? " in the search path" : "") });

            var columns = new List<PostgresColumn>();
            const string readColumns =
                "SELECT a.attname, a.attnum, format_type(a.atttypid, NULL), b.typname, b.typcategory::text, " +
                "a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' " +
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid " +
                "JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END " +
                "WHERE a.attrelid = @oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";
            using (var command = new NpgsqlCommand(readColumns, connection))
            {
                command.Parameters.Add(new NpgsqlParameter("oid", NpgsqlDbType.Oid) { Value = oid });
                using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
                {
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        short number = reader.GetInt16(1);
                        columns.Add(new PostgresColumn
                        {
                            Name = reader.GetString(0),
                            Number = number,
                            Position = number,
                            TypeName = reader.GetString(2),
                            BaseType = reader.GetString(3),
                            Kind = KindOf(reader.GetString(3), reader.GetString(4)),
                            RequiredWithoutDefault = reader.GetBoolean(5),
                        });
                    }
                }
            }

            string qualified = schemaName + "." + tableName;
            var catalog = new MappedCatalog<PostgresColumn>(Mapping, qualified, columns, ignoreCase: false);
            PostgresColumn key = catalog.Key;
            if (key != null)
            {
                if (key.Kind != ColumnKind.Text && key.Kind != ColumnKind.Integer)
                    catalog.AddProblem($"the key column '{key.Name}' is {key.TypeName}: it must be a text or an integer type");
                using (var command = new NpgsqlCommand(
                    "SELECT EXISTS(SELECT 1 FROM pg_index i WHERE i.indrelid = @oid AND i.indisunique AND i.indnatts = 1 AND i.indkey[0] = @num " +
                    "AND i.indpred IS NULL AND i.indexprs IS NULL)", connection))
                {
                    command.Parameters.Add(new NpgsqlParameter("oid", NpgsqlDbType.Oid) { Value = oid });
                    command.Parameters.Add(new NpgsqlParameter("num", NpgsqlDbType.Smallint) { Value = key.Number });
                    if (!(bool)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))
                        catalog.AddProblem($"the key column '{key.Name}' is neither the primary key nor unique on its own");
                }
            }
            List<MappedColumn> mapped = catalog.MapColumns();
            MappedColumn json = catalog.MapJson(
                c => c.Kind == ColumnKind.Text || c.Kind == ColumnKind.Json,
                c => $"the JSON column '{c.Name}' is {c.TypeName}: it must be text, json or jsonb",
                c => new MappedColumn(null, c.Name, c.Kind, c.BaseType == "jsonb" ? "jsonb" : c.TypeName, c.Number));
            catalog.ThrowIfProblems(_server.Description);

            var layout = new Layout
            {
                TableName = qualified,
                Key = new MappedColumn(null, key.Name, key.Kind, key.TypeName, key.Number),
                Columns = MappedValues.InRebuildOrder(Mapping, mapped),
                Json = json,
            };
            BuildStatements(layout, Quote(schemaName) + "." + Quote(tableName));
            return layout;
        }

        private void BuildStatements(Layout layout, string target)
        {
            var n = layout.Columns.Count;
            string Cast(string expression, MappedColumn column) => "CAST(" + expression + " AS " + column.TypeName + ")";
            string keyCast = Cast("a.k", layout.Key);
            var aliases = Enumerable.Range(0, n).Select(i => "c" + i.ToString(CultureInfo.InvariantCulture)).ToList();
            var arrays = new List<string> { "@keys", "@versions", "@deleted" };
            arrays.AddRange(aliases.Select(a => "@" + a));
            var names = new List<string> { "k", "version", "deleted" };
            names.AddRange(aliases);
            if (layout.Json != null) { arrays.Add("@cj"); names.Add("cj"); }
            names.Add("n");

            var targetColumns = new List<string> { Quote(layout.Key.Column) };
            var selected = new List<string> { keyCast };
            for (int i = 0; i < n; i++)
            {
                targetColumns.Add(Quote(layout.Columns[i].Column));
                selected.Add(Cast("a." + aliases[i], layout.Columns[i]));
            }
            if (layout.Json != null)
            {
                targetColumns.Add(Quote(layout.Json.Column));
                selected.Add(Cast("a.cj", layout.Json));
            }
            string updates = string.Join(", ", targetColumns.Skip(1).Select(c => c + " = excluded." + c));

            var sql = new StringBuilder();
            sql.Append("WITH u AS (SELECT * FROM unnest(").Append(string.Join(", ", arrays)).Append(") WITH ORDINALITY AS u(").Append(string.Join(", ", names)).Append(")), ");
            sql.Append("v AS (INSERT INTO wb_versions AS s (table_name, key, version, deleted, updated_at) ")
               .Append("SELECT @table, u.k, u.version, u.deleted, now() FROM u ORDER BY u.n ")
               .Append("ON CONFLICT (table_name, key) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, updated_at = excluded.updated_at ")
               .Append("WHERE s.version < excluded.version RETURNING s.key), ");
            sql.Append("a AS (SELECT u.* FROM u JOIN v ON v.key = u.k), ");
            sql.Append("w AS (INSERT INTO ").Append(target).Append(" AS t (").Append(string.Join(", ", targetColumns)).Append(") ")
               .Append("SELECT ").Append(string.Join(", ", selected)).Append(" FROM a WHERE NOT a.deleted ORDER BY a.n ")
               .Append("ON CONFLICT (").Append(Quote(layout.Key.Column)).Append(") DO UPDATE SET ").Append(updates).Append(" RETURNING 1)");
            if (Mapping.DeleteMode == StoreDeleteMode.Delete)
                sql.Append(", d AS (DELETE FROM ").Append(target).Append(" AS t USING a WHERE a.deleted AND t.").Append(Quote(layout.Key.Column)).Append(" = ").Append(keyCast).Append(" RETURNING 1)");
            sql.Append(" SELECT count(*) FROM v");
            layout.CommitSql = sql.ToString();

            var read = new StringBuilder("SELECT q.id, s.version, s.deleted, s.updated_at, t.");
            read.Append(Quote(layout.Key.Column)).Append(" IS NOT NULL");
            foreach (var column in layout.Columns) read.Append(", to_json(t.").Append(Quote(column.Column)).Append(")::text");
            if (layout.Json != null) read.Append(", t.").Append(Quote(layout.Json.Column)).Append("::text");
            read.Append(" FROM unnest(@ids) AS q(id) LEFT JOIN wb_versions s ON s.table_name = @table AND s.key = q.id ")
                .Append("LEFT JOIN ").Append(target).Append(" t ON t.").Append(Quote(layout.Key.Column)).Append(" = ").Append(Cast("q.id", layout.Key))
                .Append(" WHERE s.key IS NOT NULL OR t.").Append(Quote(layout.Key.Column)).Append(" IS NOT NULL");
            layout.ReadSql = read.ToString();
        }
    }
}
