using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.Specialized;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using WriteBehind.Engine;
using WriteBehind.Engine.Store;

namespace WriteBehind
{
    /// <summary>Builds a <see cref="StoreMapping"/> from Connect-WriteBehind's parameters, a mapping file (.psd1)
    /// and WRITEBEHIND_STORE_MAPPING (the path of such a file).</summary>
    internal static class StoreMappingReader
    {
        public const string EnvironmentVariable = "WRITEBEHIND_STORE_MAPPING";

        /// <summary>The settings a mapping file or the parameters give; null where not given.</summary>
        internal sealed class Settings
        {
            public string Table;
            public string KeyColumn;
            public object Columns;
            public string JsonColumn;
            public StoreDeleteMode? DeleteMode;

            public bool Any => Table != null || KeyColumn != null || Columns != null || JsonColumn != null || DeleteMode.HasValue;

            /// <summary>This file's settings with every one <paramref name="over"/> gives replaced.</summary>
            public Settings With(Settings over) => new Settings
            {
                Table = over.Table ?? Table,
                KeyColumn = over.KeyColumn ?? KeyColumn,
                Columns = over.Columns ?? Columns,
                JsonColumn = over.JsonColumn ?? JsonColumn,
                DeleteMode = over.DeleteMode ?? DeleteMode,
            };
        }

        /// <summary>The mapping of WRITEBEHIND_STORE_MAPPING, or null when it is not set.</summary>
        public static StoreMapping FromEnvironment()
        {
            string path = Environment.GetEnvironmentVariable(EnvironmentVariable);
            if (string.IsNullOrWhiteSpace(path)) return null;
            return Build(ReadFile(Path.GetFullPath(path)));
        }

        /// <summary>The mapping from the parameters over the file (when given); null when neither names anything.</summary>
        public static StoreMapping Build(Settings parameters, string resolvedFile)
        {
            Settings settings = resolvedFile != null ? ReadFile(resolvedFile).With(parameters) : parameters;
            return settings.Any ? Build(settings) : null;
        }

        private static StoreMapping Build(Settings s)
        {
            var columns = Columns(s.Columns, out bool ordered);
            return new StoreMapping(s.Table, s.KeyColumn, columns, s.JsonColumn, s.DeleteMode ?? StoreDeleteMode.Delete, ordered);
        }

        /// <summary>A hashtable or ordered dictionary of field → column, or field names that are also the column names.</summary>
        internal static List<KeyValuePair<string, string>> Columns(object value, out bool ordered)
        {
            ordered = true;
            var result = new List<KeyValuePair<string, string>>();
            value = value is PSObject pso ? pso.BaseObject : value;
            switch (value)
            {
                case null:
                    return result;
                case string single:
                    result.Add(new KeyValuePair<string, string>(single, single));
                    return result;
                case IDictionary dictionary:
                    ordered = dictionary is IOrderedDictionary;
                    foreach (DictionaryEntry entry in dictionary)
                        result.Add(new KeyValuePair<string, string>(Text(entry.Key), Text(entry.Value)));
                    return result;
                case IEnumerable list:
                    foreach (object item in list)
                    {
                        string name = Text(item);
                        result.Add(new KeyValuePair<string, string>(name, name));
                    }
                    return result;
                default:
                    throw new WriteBehindException(ErrorIds.StoreMappingInvalid,
                        "-StoreColumns takes a hashtable of field = 'column' pairs ([ordered] keeps the field order) or an array of names.");
            }
        }

        private static string Text(object value)
        {
            value = value is PSObject pso ? pso.BaseObject : value;
            if (!(value is string s))
                throw new WriteBehindException(ErrorIds.StoreMappingInvalid, "Mapped fields and columns are names (strings).");
            return s;
        }

        /// <summary>Reads a mapping file: a PowerShell data file (.psd1) holding one hashtable with Table,
        /// KeyColumn, Columns (a hashtable, kept in the file's order, or an array), JsonColumn and DeleteMode.
        /// Only literal values are read; nothing in it runs.</summary>
        internal static Settings ReadFile(string path)
        {
            if (!File.Exists(path))
                throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"The store mapping file '{path}' does not exist.");
            ScriptBlockAst ast = Parser.ParseFile(path, out _, out ParseError[] errors);
            if (errors.Length > 0)
                throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"The store mapping file '{path}' does not parse: {errors[0].Message}");
            if (!(ast.Find(a => a is HashtableAst, false) is HashtableAst table))
                throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"The store mapping file '{path}' holds no @{{ ... }} hashtable.");
            var settings = new Settings();
            try
            {
                foreach (var pair in table.KeyValuePairs)
                {
                    string key = (pair.Item1 as StringConstantExpressionAst)?.Value;
                    ExpressionAst value = (pair.Item2 as PipelineAst)?.GetPureExpression();
                    if (key == null || value == null)
                        throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"The store mapping file '{path}' may hold only plain names and values.");
                    switch (key.ToLowerInvariant())
                    {
                        case "table": settings.Table = Text(value.SafeGetValue()); break;
                        case "keycolumn": settings.KeyColumn = Text(value.SafeGetValue()); break;
                        case "jsoncolumn": settings.JsonColumn = Text(value.SafeGetValue()); break;
                        case "deletemode":
                            if (!Enum.TryParse(Text(value.SafeGetValue()), true, out StoreDeleteMode mode))
                                throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"DeleteMode in '{path}' must be Delete or Keep.");
                            settings.DeleteMode = mode;
                            break;
                        case "columns":
                            if (value is HashtableAst columns)
                            {
                                // The file's order, which a hashtable value would lose.
                                var inOrder = new OrderedDictionary();
                                foreach (var c in columns.KeyValuePairs)
                                    inOrder[Text((c.Item1 as StringConstantExpressionAst)?.Value)] = Text((c.Item2 as PipelineAst)?.GetPureExpression()?.SafeGetValue());
                                settings.Columns = inOrder;
                            }
                            else
                            {
                                settings.Columns = value.SafeGetValue();
                            }
                            break;
                        default:
                            throw new WriteBehindException(ErrorIds.StoreMappingInvalid,
                                $"Unknown setting '{key}' in the store mapping file '{path}': use Table, KeyColumn, Columns, JsonColumn and DeleteMode.");
                    }
                }
            }
            catch (InvalidOperationException ex)
            {
                throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"The store mapping file '{path}' may hold only literal values: {ex.Message}");
            }
            return settings;
        }
    }
}
