using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Globalization;
using System.Linq;

namespace WriteBehind.Engine.Store
{
    /// <summary>A mapped table as the catalog resolved it (names, key, mapped columns in rebuild order, JSON column);
    /// each mapped store adds the statements it builds from them.</summary>
    internal class MappedLayout
    {
        /// <summary>The table's name as wb_versions.table_name records it.</summary>
        public string TableName;
        public MappedColumn Key;
        public List<MappedColumn> Columns;
        public MappedColumn Json;

        /// <summary>One row of a mapped store's read statement, whose columns are the same in every database: id,
        /// wb_versions' version (NULL when the module never wrote the key), deleted, updated_at, whether the
        /// table has the row, then each mapped column, then the JSON column.</summary>
        /// <param name="updatedAt">updated_at of a versioned row, as the driver reads it.</param>
        /// <param name="valueJson">A mapped column's (non-NULL) value as JSON text, by the column's kind.</param>
        /// <param name="reader">Positioned on the row to read.</param>
        public ProfileRow ReadProfile(DbDataReader reader, Func<DbDataReader, DateTimeOffset> updatedAt, Func<ColumnKind, object, string> valueJson)
        {
            string id = reader.GetString(0);
            bool versioned = !reader.IsDBNull(1);
            long version = versioned ? reader.GetInt64(1) : 0;
            bool tombstone = versioned && IsTrue(reader.GetValue(2));
            DateTimeOffset at = versioned ? updatedAt(reader) : DateTimeOffset.MinValue;
            bool present = IsTrue(reader.GetValue(4));
            string json = null;
            if (!tombstone && present)
            {
                int jsonOrdinal = 5 + Columns.Count;
                if (Json != null && !reader.IsDBNull(jsonOrdinal))
                {
                    json = reader.GetString(jsonOrdinal);
                }
                else
                {
                    var texts = new string[Columns.Count];
                    for (int c = 0; c < texts.Length; c++)
                        texts[c] = reader.IsDBNull(5 + c) ? null : valueJson(Columns[c].Kind, reader.GetValue(5 + c));
                    json = MappedValues.Rebuild(Columns, texts);
                }
            }
            return new ProfileRow(id, json, version, at);
        }

        /// <summary>A row's user id checked against an integer key column before anything is sent.</summary>
        /// <param name="quotedKey">The key column as the message shows it ("id" or `id`).</param>
        /// <param name="userId">The row's user id.</param>
        public void CheckKey(string userId, string quotedKey)
        {
            if (Key.Kind == ColumnKind.Integer && !MappedValues.TryIntegerKey(userId, out _))
                throw new StoreException($"user id '{userId}' is not an integer in canonical form, as the key column {quotedKey} ({Key.TypeName}) needs", null);
        }

        private static bool IsTrue(object value) => Convert.ToInt64(value, CultureInfo.InvariantCulture) != 0;
    }

    /// <summary>A column of the user's table as a mapped store read it from the catalog.</summary>
    internal class CatalogColumn
    {
        public string Name;
        /// <summary>The type a <see cref="MappedColumn"/> of it carries.</summary>
        public string TypeName;
        public ColumnKind Kind;
        public int Position;
        /// <summary>NOT NULL without a default (nor identity, generated or auto-increment): every new row must set it.</summary>
        public bool RequiredWithoutDefault;
    }

    /// <summary>
    /// Checks a <see cref="StoreMapping"/> against the columns a mapped store read from its catalog, the same way
    /// for every database: the key column exists (the store adds its own checks of it), every mapped field's
    /// column and the JSON column exist, and no NOT NULL column without a default is left unmapped. Problems are
    /// collected in that order and thrown together (<see cref="ErrorIds.StoreMappingInvalid"/>).
    /// </summary>
    internal sealed class MappedCatalog<TColumn> where TColumn : CatalogColumn
    {
        private readonly StoreMapping _mapping;
        private readonly string _table;
        private readonly IReadOnlyList<TColumn> _columns;
        private readonly bool _ignoreCase;
        private readonly HashSet<string> _used;
        private readonly List<string> _problems = new List<string>();

        /// <param name="table">The table as messages name it.</param>
        /// <param name="ignoreCase">Identifiers are case-insensitive (SQLite, MariaDB/MySQL); otherwise (PostgreSQL) a
        /// name is found as spelt, or else folded to lower case as an unquoted identifier is.</param>
        /// <param name="mapping">The user's mapping (table, key, columns).</param>
        /// <param name="columns">The table's columns as the database's catalog lists them.</param>
        public MappedCatalog(StoreMapping mapping, string table, IReadOnlyList<TColumn> columns, bool ignoreCase)
        {
            _mapping = mapping;
            _table = table;
            _columns = columns;
            _ignoreCase = ignoreCase;
            _used = new HashSet<string>(ignoreCase ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);
            Key = Find(mapping.KeyColumn);
            if (Key == null)
                _problems.Add($"table {table} has no key column '{mapping.KeyColumn}'");
            else
                _used.Add(Key.Name);
        }

        /// <summary>The key column; null when the table lacks it (already a problem).</summary>
        public TColumn Key { get; }

        public void AddProblem(string problem) => _problems.Add(problem);

        public TColumn Find(string name) =>
            _columns.FirstOrDefault(c => c.Name == name) ?? (_ignoreCase
                ? _columns.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase))
                : _columns.FirstOrDefault(c => c.Name == name.ToLowerInvariant()));

        /// <summary>The mapped fields' columns, in the mapping's order.</summary>
        public List<MappedColumn> MapColumns()
        {
            var mapped = new List<MappedColumn>();
            foreach (var pair in _mapping.Columns)
            {
                TColumn column = Find(pair.Value);
                if (column == null) { _problems.Add($"table {_table} has no column '{pair.Value}' (for the field '{pair.Key}')"); continue; }
                _used.Add(column.Name);
                mapped.Add(new MappedColumn(pair.Key, column.Name, column.Kind, column.TypeName, column.Position));
            }
            return mapped;
        }

        /// <summary>The JSON column, when the mapping names one.</summary>
        /// <param name="accepts">Whether the column's type can hold the profile.</param>
        /// <param name="refusal">The problem when it cannot: "the JSON column 'x' is jsonb[]: it must be ...".</param>
        /// <param name="make">The column as the store uses it.</param>
        public MappedColumn MapJson(Func<TColumn, bool> accepts, Func<TColumn, string> refusal, Func<TColumn, MappedColumn> make)
        {
            if (_mapping.JsonColumn == null) return null;
            TColumn column = Find(_mapping.JsonColumn);
            if (column == null) { _problems.Add($"table {_table} has no JSON column '{_mapping.JsonColumn}'"); return null; }
            if (!accepts(column)) { _problems.Add(refusal(column)); return null; }
            _used.Add(column.Name);
            return make(column);
        }

        /// <summary>Adds the unmapped required columns to the problems and throws them all, if any.</summary>
        /// <param name="store">The store as the message names it (no secret).</param>
        public void ThrowIfProblems(string store)
        {
            foreach (var column in _columns.Where(c => c.RequiredWithoutDefault && !_used.Contains(c.Name)))
                _problems.Add($"the column '{column.Name}' is NOT NULL without a default and not mapped (every new row would be refused)");
            if (_problems.Count > 0)
                throw MappedValues.Missing(store, _mapping.Table, _problems);
        }
    }
}
