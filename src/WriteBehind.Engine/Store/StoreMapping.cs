using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace WriteBehind.Engine.Store
{
    /// <summary>What a delete does to the user's row in a mapped table (the companion table keeps the
    /// versioned tombstone either way).</summary>
    public enum StoreDeleteMode
    {
        /// <summary>Delete the user's row.</summary>
        Delete,
        /// <summary>Keep the user's row as it was.</summary>
        Keep,
    }

    /// <summary>
    /// The application's own table as the flush's target: top-level JSON fields of a profile go into the
    /// table's columns, the user id into its key column, optionally the whole profile text into a JSON column.
    /// Versions and tombstones live in the module's companion table <c>wb_versions</c> in the same database.
    /// The module never creates, alters or drops the user's table.
    /// </summary>
    public sealed class StoreMapping
    {
        /// <summary>The companion table the module owns (created on first use).</summary>
        public const string VersionsTable = "wb_versions";

        /// <summary>Checks and keeps a mapping: <paramref name="columns"/> maps top-level JSON fields to columns; throws StoreMappingInvalid for a table, key or column that is missing, doubled or clashing.</summary>
        public StoreMapping(string table, string keyColumn, IEnumerable<KeyValuePair<string, string>> columns, string jsonColumn = null,
            StoreDeleteMode deleteMode = StoreDeleteMode.Delete, bool columnsOrdered = true)
        {
            if (string.IsNullOrWhiteSpace(table))
                throw new WriteBehindException(ErrorIds.StoreMappingInvalid, "A mapped store needs a table (-StoreTable).");
            if (string.IsNullOrWhiteSpace(keyColumn))
                throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"The mapped table '{table}' needs a key column (-StoreKeyColumn).");
            var list = (columns ?? Enumerable.Empty<KeyValuePair<string, string>>()).ToList();
            if (list.Count == 0 && string.IsNullOrEmpty(jsonColumn))
                throw new WriteBehindException(ErrorIds.StoreMappingInvalid,
                    $"The mapped table '{table}' needs at least one mapped column (-StoreColumns) or a JSON column (-StoreJsonColumn).");
            var fields = new HashSet<string>(StringComparer.Ordinal);
            var targets = new HashSet<string>(StringComparer.Ordinal) { keyColumn };
            if (!string.IsNullOrEmpty(jsonColumn) && !targets.Add(jsonColumn))
                throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"The JSON column '{jsonColumn}' cannot also be the key column.");
            foreach (var pair in list)
            {
                if (string.IsNullOrEmpty(pair.Key) || string.IsNullOrWhiteSpace(pair.Value))
                    throw new WriteBehindException(ErrorIds.StoreMappingInvalid, "A mapped field and its column must both be named (field -> column).");
                if (!fields.Add(pair.Key))
                    throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"The field '{pair.Key}' is mapped twice.");
                if (!targets.Add(pair.Value))
                    throw new WriteBehindException(ErrorIds.StoreMappingInvalid,
                        $"The column '{pair.Value}' is the target of two settings (each column takes one field; the key and JSON columns none).");
            }
            Table = table.Trim();
            KeyColumn = keyColumn;
            Columns = list;
            JsonColumn = string.IsNullOrEmpty(jsonColumn) ? null : jsonColumn;
            DeleteMode = deleteMode;
            ColumnsOrdered = columnsOrdered;
        }

        /// <summary><c>[schema.]table</c> as the user named it.</summary>
        public string Table { get; }
        /// <summary>The column that holds the user id.</summary>
        public string KeyColumn { get; }
        /// <summary>Top-level JSON field → column, in the order profiles are rebuilt.</summary>
        public IReadOnlyList<KeyValuePair<string, string>> Columns { get; }
        /// <summary>A column that also keeps the whole profile text (null: none).</summary>
        public string JsonColumn { get; }
        /// <summary>Whether a delete removes the user's row or keeps it.</summary>
        public StoreDeleteMode DeleteMode { get; }
        /// <summary>False when the mapping came from an unordered hashtable: rebuilt profiles then follow the
        /// table's column order.</summary>
        public bool ColumnsOrdered { get; }

        /// <summary>The schema and table parts of <see cref="Table"/> (schema null when not given).</summary>
        public void SplitTable(out string schema, out string table)
        {
            int dot = Table.IndexOf('.');
            schema = dot < 0 ? null : Table.Substring(0, dot).Trim();
            table = dot < 0 ? Table : Table.Substring(dot + 1).Trim();
            if (table.Length == 0 || (schema != null && schema.Length == 0) || table.IndexOf('.') >= 0)
                throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"The table name '{Table}' must be table or schema.table.");
        }

        /// <summary>The mapping in one line, for messages (Connect-WriteBehind -Verbose).</summary>
        public override string ToString() =>
            Table + "(" + KeyColumn + (Columns.Count > 0 ? ", " : "") + string.Join(", ", Columns.Select(c => c.Key == c.Value ? c.Value : c.Key + "->" + c.Value)) +
            (JsonColumn != null ? ", json->" + JsonColumn : "") + ")" + (DeleteMode == StoreDeleteMode.Keep ? " keep deleted rows" : "");
    }

    /// <summary>A store that writes into a mapped table; the connection checks the mapping against the
    /// database's catalog at connect time.</summary>
    internal interface IMappedProfileStore : IProfileStore
    {
        StoreMapping Mapping { get; }

        /// <summary>Reads the catalog: the table, the key column (primary key or unique) and every mapped column
        /// must exist. Throws <see cref="WriteBehindException"/> with <see cref="ErrorIds.StoreMappingInvalid"/>
        /// naming everything missing; writes nothing to the user's table.</summary>
        Task ValidateAsync(CancellationToken cancellationToken);

        /// <summary>Whether the cache's profile text and the store's (as <see cref="IProfileStore.GetAsync"/> returns it)
        /// hold the same values: by meaning (the column's type) when the store keeps no exact text.</summary>
        bool SameProfile(string cacheJson, string storedJson);
    }

    /// <summary>How a column's values are written, read back and compared.</summary>
    internal enum ColumnKind { Text, Integer, Numeric, Real, Boolean, Timestamp, Json, Other }

    /// <summary>One mapped column as the catalog describes it.</summary>
    internal sealed class MappedColumn
    {
        public MappedColumn(string field, string column, ColumnKind kind, string typeName, int position)
        {
            Field = field;
            Column = column;
            Kind = kind;
            TypeName = typeName;
            Position = position;
        }

        /// <summary>Top-level JSON field (null for the JSON column).</summary>
        public string Field { get; }
        /// <summary>The column's name as the catalog spells it.</summary>
        public string Column { get; }
        public ColumnKind Kind { get; }
        /// <summary>The catalog's type name (without length or precision).</summary>
        public string TypeName { get; }
        public int Position { get; }
    }

    /// <summary>Profile text ↔ column values, the same way for every database.</summary>
    internal static class MappedValues
    {
        /// <summary>The profile's top-level members (name → raw value text); the flush hands only valid objects.</summary>
        public static Dictionary<string, string> Members(string json)
        {
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            if (json == null) return result;
            if (!Json.JsonText.TryGetTopLevelMembers(json, out var members, out string reason))
                throw new StoreException("the profile is not a JSON object: " + reason, null);
            foreach (var m in members)
                if (!result.ContainsKey(m.Key)) result[m.Key] = m.Value;
            return result;
        }

        /// <summary>The text a column gets for a raw JSON value: a JSON column the JSON text itself; any other
        /// column a string's contents, or the text of a number, true/false, object or array; null for JSON null
        /// (and for a field the profile lacks).</summary>
        public static string ColumnText(string raw, ColumnKind kind)
        {
            if (raw == null || raw == "null") return null;
            if (kind == ColumnKind.Json) return raw;
            string text = raw.Length > 0 && raw[0] == '"' ? DecodeString(raw) : raw;
            // An integer column takes a number whose value is whole in any spelling (25.0, 1e3) as that integer.
            if (kind == ColumnKind.Integer && text.IndexOfAny(new[] { '.', 'e', 'E' }) >= 0 &&
                decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out decimal whole) && whole == decimal.Truncate(whole))
                return decimal.Truncate(whole).ToString(CultureInfo.InvariantCulture);
            return text;
        }

        public static string DecodeString(string raw)
        {
            using (var doc = System.Text.Json.JsonDocument.Parse(raw))
                return doc.RootElement.GetString();
        }

        /// <summary>A user id as an integer key: only the canonical decimal form, so that two ids never share a row
        /// ("01001" would be the row of "1001").</summary>
        public static bool TryIntegerKey(string id, out long key)
        {
            key = 0;
            if (string.IsNullOrEmpty(id)) return false;
            if (!long.TryParse(id, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out key)) return false;
            return key.ToString(CultureInfo.InvariantCulture) == id;
        }

        /// <summary>Builds a profile from column values (JSON text of each value, null for SQL NULL), in the
        /// mapping's order; NULL columns are left out (a field the profile lacked was written as NULL).</summary>
        public static string Rebuild(IReadOnlyList<MappedColumn> columns, IReadOnlyList<string> jsonValues)
        {
            var sb = new System.Text.StringBuilder(64);
            sb.Append('{');
            bool first = true;
            for (int i = 0; i < columns.Count; i++)
            {
                if (jsonValues[i] == null) continue;
                if (!first) sb.Append(',');
                first = false;
                Json.JsonText.WriteString(sb, columns[i].Field);
                sb.Append(':').Append(jsonValues[i]);
            }
            sb.Append('}');
            return sb.ToString();
        }

        /// <summary>Same values in every mapped field, by the column's meaning: numbers by value, booleans,
        /// instants, JSON by structure, text by its characters. A field missing and a JSON null are the same (NULL).</summary>
        public static bool SameByMeaning(IReadOnlyList<MappedColumn> columns, string cacheJson, string storedJson)
        {
            if (cacheJson == null || storedJson == null) return cacheJson == storedJson;
            Dictionary<string, string> a, b;
            try
            {
                a = Members(cacheJson);
                b = Members(storedJson);
            }
            catch (StoreException) { return false; }
            foreach (var column in columns)
            {
                a.TryGetValue(column.Field, out string rawA);
                b.TryGetValue(column.Field, out string rawB);
                if (!SameValue(column.Kind, ColumnText(rawA, column.Kind), ColumnText(rawB, column.Kind))) return false;
            }
            return true;
        }

        private static bool SameValue(ColumnKind kind, string x, string y)
        {
            if (x == null || y == null) return x == y;
            switch (kind)
            {
                case ColumnKind.Integer:
                case ColumnKind.Numeric:
                    if (decimal.TryParse(x, NumberStyles.Float, CultureInfo.InvariantCulture, out decimal dx) &&
                        decimal.TryParse(y, NumberStyles.Float, CultureInfo.InvariantCulture, out decimal dy))
                        return dx == dy;
                    goto case ColumnKind.Real;
                case ColumnKind.Real:
                    if (double.TryParse(x, NumberStyles.Float, CultureInfo.InvariantCulture, out double fx) &&
                        double.TryParse(y, NumberStyles.Float, CultureInfo.InvariantCulture, out double fy))
                        return fx == fy || Math.Abs(fx - fy) <= 1e-6 * Math.Max(Math.Abs(fx), Math.Abs(fy)); // real is float4 in PostgreSQL
                    return string.Equals(x, y, StringComparison.Ordinal);
                case ColumnKind.Boolean:
                    if (TryBoolean(x, out bool bx) && TryBoolean(y, out bool by)) return bx == by;
                    return string.Equals(x, y, StringComparison.Ordinal);
                case ColumnKind.Timestamp:
                    if (DateTimeOffset.TryParse(x, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var tx) &&
                        DateTimeOffset.TryParse(y, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var ty))
                        return tx == ty;
                    return string.Equals(x, y, StringComparison.Ordinal);
                case ColumnKind.Json:
                    return SameJson(x, y);
                default:
                    return string.Equals(x, y, StringComparison.Ordinal);
            }
        }

        public static bool TryBoolean(string text, out bool value)
        {
            switch (text.Trim().ToLowerInvariant())
            {
                case "true": case "t": case "1": case "yes": case "on": value = true; return true;
                case "false": case "f": case "0": case "no": case "off": value = false; return true;
                default: value = false; return false;
            }
        }

        /// <summary>JSON texts equal by structure: object members in any order, numbers by value.</summary>
        public static bool SameJson(string x, string y)
        {
            if (string.Equals(x, y, StringComparison.Ordinal)) return true;
            try
            {
                using (var a = System.Text.Json.JsonDocument.Parse(x))
                using (var b = System.Text.Json.JsonDocument.Parse(y))
                    return SameElement(a.RootElement, b.RootElement);
            }
            catch (System.Text.Json.JsonException) { return false; }
        }

        private static bool SameElement(System.Text.Json.JsonElement a, System.Text.Json.JsonElement b)
        {
            if (a.ValueKind != b.ValueKind) return false;
            switch (a.ValueKind)
            {
                case System.Text.Json.JsonValueKind.Object:
                    var pa = a.EnumerateObject().ToList();
                    var pb = b.EnumerateObject().ToDictionary(p => p.Name, p => p.Value, StringComparer.Ordinal);
                    if (pa.Count != pb.Count) return false;
                    foreach (var p in pa)
                        if (!pb.TryGetValue(p.Name, out var other) || !SameElement(p.Value, other)) return false;
                    return true;
                case System.Text.Json.JsonValueKind.Array:
                    var ea = a.EnumerateArray().ToList();
                    var eb = b.EnumerateArray().ToList();
                    if (ea.Count != eb.Count) return false;
                    for (int i = 0; i < ea.Count; i++)
                        if (!SameElement(ea[i], eb[i])) return false;
                    return true;
                case System.Text.Json.JsonValueKind.Number:
                    if (a.TryGetDecimal(out decimal da) && b.TryGetDecimal(out decimal db)) return da == db;
                    return a.GetDouble() == b.GetDouble();
                case System.Text.Json.JsonValueKind.String:
                    return a.GetString() == b.GetString();
                default:
                    return true;
            }
        }

        /// <summary>The columns in the order profiles are rebuilt.</summary>
        public static List<MappedColumn> InRebuildOrder(StoreMapping mapping, List<MappedColumn> columns) =>
            mapping.ColumnsOrdered ? columns : columns.OrderBy(c => c.Position).ToList();

        /// <summary>One row per id: the newest version of an id that occurs more than once, in ordinal id order.
        /// One sort and a pass over neighbours: the flusher hands over one row per id already, so a dictionary
        /// first would only cost a hash of every id.</summary>
        public static ProfileRow[] NewestPerId(IReadOnlyList<ProfileRow> rows)
        {
            var sorted = new ProfileRow[rows.Count];
            for (int i = 0; i < sorted.Length; i++) sorted[i] = rows[i];
            // Same id: the newest version first, so that it is the one kept.
            Array.Sort(sorted, (a, b) =>
            {
                int c = string.CompareOrdinal(a.UserId, b.UserId);
                return c != 0 ? c : b.Version.CompareTo(a.Version);
            });
            int kept = 0;
            for (int i = 0; i < sorted.Length; i++)
            {
                if (kept > 0 && string.Equals(sorted[kept - 1].UserId, sorted[i].UserId, StringComparison.Ordinal))
                    continue;
                sorted[kept++] = sorted[i];
            }
            if (kept < sorted.Length) Array.Resize(ref sorted, kept);
            return sorted;
        }

        /// <summary>Ids as one JSON array of strings: how a set of ids goes in as one parameter (json_each, JSON_TABLE).</summary>
        public static string JsonStringArray(IReadOnlyList<string> ids)
        {
            var sb = new System.Text.StringBuilder(ids.Count * 12).Append('[');
            for (int i = 0; i < ids.Count; i++)
            {
                if (i > 0) sb.Append(',');
                Json.JsonText.WriteString(sb, ids[i]);
            }
            return sb.Append(']').ToString();
        }

        /// <summary>The StoreMappingInvalid error for what the catalog lacks.</summary>
        public static WriteBehindException Missing(string store, string table, IList<string> problems) =>
            new WriteBehindException(ErrorIds.StoreMappingInvalid,
                $"The store mapping does not fit {store}: " + string.Join("; ", problems) +
                $". WriteBehind never creates or alters the table '{table}': fix the mapping (-StoreTable, -StoreKeyColumn, -StoreColumns, -StoreJsonColumn) or the table.");
    }
}
