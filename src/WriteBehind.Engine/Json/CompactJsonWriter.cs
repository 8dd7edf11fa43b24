using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace WriteBehind.Engine.Json
{
    /// <summary>Writes .NET values (dictionaries, key/value lists, lists, scalars) as compact JSON text, keeping the
    /// order of their members. Hand-written because Utf8JsonWriter cannot give the same bytes: it escapes non-ASCII
    /// text and writes upper-case \u00XX, and the stores, the Lua merge and the tests rely on this minimal escaping
    /// (only '"', '\' and control characters, lower-case hex; a lone surrogate as its \uXXXX escape).</summary>
    internal static class CompactJsonWriter
    {
        /// <summary>Deepest nesting written (objects + arrays), as deep as the validator accepts.</summary>
        internal const int MaxDepth = JsonValidator.MaxDepth;

        /// <summary>Objects with at most this many members are checked for duplicate keys linearly.</summary>
        private const int MaxLinearNames = JsonValidator.MaxLinearNames;

        private static string Num(int n) => n.ToString(CultureInfo.InvariantCulture);

        /// <summary>
        /// Writes compact JSON for a .NET value. <paramref name="normalize"/> (optional) is called on every value,
        /// top-level and nested, before it is written and returns the value to write instead.
        /// Throws <see cref="ArgumentException"/> for unsupported types, NaN/Infinity, duplicate member names
        /// and nesting deeper than 64.
        /// </summary>
        public static string Serialize(object value, Func<object, object> normalize = null)
        {
            var sb = new StringBuilder(256);
            WriteValue(sb, value, normalize, 0);
            return sb.ToString();
        }

        /// <summary>Appends the JSON string literal (with quotes) for <paramref name="s"/>: only '"', '\' and control
        /// characters below U+0020 are escaped (\b \f \n \r \t or \u00XX in lower-case hex); every other character,
        /// non-ASCII included, is written as is, except a lone surrogate, which is written as a \uXXXX escape so the
        /// output stays valid JSON and encodable as UTF-8. A null <paramref name="s"/> is written as <c>null</c>.</summary>
        public static void WriteString(StringBuilder sb, string s)
        {
            if (sb == null) throw new ArgumentNullException(nameof(sb));
            if (s == null)
            {
                sb.Append("null");
                return;
            }
            sb.Append('"');
            int run = 0;
            int len = s.Length;
            for (int i = 0; i < len; i++)
            {
                char c = s[i];
                if (c >= 0x20 && c != '"' && c != '\\' && (uint)(c - 0xD800) > 0x7FF) continue;
                if ((uint)(c - 0xD800) <= 0x7FF && c <= 0xDBFF && i + 1 < len && char.IsLowSurrogate(s[i + 1]))
                {
                    i++; // valid pair, written as is
                    continue;
                }
                if (i > run) sb.Append(s, run, i - run);
                AppendEscaped(sb, c);
                run = i + 1;
            }
            if (run < len) sb.Append(s, run, len - run);
            sb.Append('"');
        }

        private static void AppendEscaped(StringBuilder sb, char c)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); return;
                case '\\': sb.Append("\\\\"); return;
                case '\b': sb.Append("\\b"); return;
                case '\f': sb.Append("\\f"); return;
                case '\n': sb.Append("\\n"); return;
                case '\r': sb.Append("\\r"); return;
                case '\t': sb.Append("\\t"); return;
                default:
                    const string hex = "0123456789abcdef";
                    sb.Append('\\').Append('u')
                      .Append(hex[(c >> 12) & 0xF]).Append(hex[(c >> 8) & 0xF])
                      .Append(hex[(c >> 4) & 0xF]).Append(hex[c & 0xF]);
                    return;
            }
        }

        private static void WriteValue(StringBuilder sb, object value, Func<object, object> normalize, int depth)
        {
            if (normalize != null) value = normalize(value);
            CultureInfo inv = CultureInfo.InvariantCulture;
            switch (value)
            {
                case null:
                    sb.Append("null");
                    return;
                case string s:
                    WriteString(sb, s);
                    return;
                case char ch:
                    WriteString(sb, ch.ToString());
                    return;
                case bool b:
                    sb.Append(b ? "true" : "false");
                    return;
                case int i:
                    sb.Append(i.ToString(inv));
                    return;
                case long l:
                    sb.Append(l.ToString(inv));
                    return;
                case double d:
                    if (double.IsNaN(d) || double.IsInfinity(d))
                        throw new ArgumentException("Double value " + d.ToString(inv) + " cannot be represented in JSON.", nameof(value));
                    sb.Append(d.ToString("R", inv));
                    return;
                case decimal m:
                    sb.Append(m.ToString(inv));
                    return;
                case sbyte sb8:
                    sb.Append(sb8.ToString(inv));
                    return;
                case byte u8:
                    sb.Append(u8.ToString(inv));
                    return;
                case short i16:
                    sb.Append(i16.ToString(inv));
                    return;
                case ushort u16:
                    sb.Append(u16.ToString(inv));
                    return;
                case uint u32:
                    sb.Append(u32.ToString(inv));
                    return;
                case ulong u64:
                    sb.Append(u64.ToString(inv));
                    return;
                case float f:
                    if (float.IsNaN(f) || float.IsInfinity(f))
                        throw new ArgumentException("Single value " + f.ToString(inv) + " cannot be represented in JSON.", nameof(value));
                    sb.Append(f.ToString("R", inv));
                    return;
                case DateTime dt:
                    WriteString(sb, dt.ToString("o", inv));
                    return;
                case DateTimeOffset dto:
                    WriteString(sb, dto.ToString("o", inv));
                    return;
                case Guid g:
                    WriteString(sb, g.ToString("D", inv));
                    return;
                case Enum e:
                    WriteString(sb, e.ToString());
                    return;
                case Uri u:
                    WriteString(sb, u.OriginalString);
                    return;
                case TimeSpan ts:
                    WriteString(sb, ts.ToString("c", inv));
                    return;
                case IDictionary dict:
                    WriteDictionary(sb, dict, normalize, Enter(depth));
                    return;
                case IEnumerable<KeyValuePair<string, object>> pairs:
                    WritePairs(sb, pairs, normalize, Enter(depth));
                    return;
                case IEnumerable items:
                    WriteArray(sb, items, normalize, Enter(depth));
                    return;
                default:
                    throw new ArgumentException("Cannot write a value of type '" + value.GetType().FullName + "' as JSON.", nameof(value));
            }
        }

        private static int Enter(int depth)
        {
            int d = depth + 1;
            if (d > MaxDepth)
                throw new ArgumentException("Value nesting deeper than " + Num(MaxDepth) + " cannot be written as JSON (is there a reference cycle?).", "value");
            return d;
        }

        private static void WriteDictionary(StringBuilder sb, IDictionary dict, Func<object, object> normalize, int depth)
        {
            sb.Append('{');
            var keys = new KeyTracker();
            bool first = true;
            IDictionaryEnumerator en = dict.GetEnumerator();
            try
            {
                while (en.MoveNext())
                {
                    DictionaryEntry entry = en.Entry;
                    string key = Convert.ToString(entry.Key, CultureInfo.InvariantCulture) ?? string.Empty;
                    WriteMember(sb, ref keys, ref first, key, entry.Value, normalize, depth);
                }
            }
            finally
            {
                (en as IDisposable)?.Dispose();
            }
            sb.Append('}');
        }

        private static void WritePairs(StringBuilder sb, IEnumerable<KeyValuePair<string, object>> pairs, Func<object, object> normalize, int depth)
        {
            sb.Append('{');
            var keys = new KeyTracker();
            bool first = true;
            foreach (KeyValuePair<string, object> kv in pairs)
            {
                WriteMember(sb, ref keys, ref first, kv.Key ?? string.Empty, kv.Value, normalize, depth);
            }
            sb.Append('}');
        }

        private static void WriteMember(StringBuilder sb, ref KeyTracker keys, ref bool first, string key, object value, Func<object, object> normalize, int depth)
        {
            if (!keys.Add(key))
            {
                string shown = key.Length > JsonValidator.MaxQuotedNameChars ? key.Substring(0, JsonValidator.MaxQuotedNameChars) + "..." : key;
                throw new ArgumentException("Duplicate member name '" + shown + "' cannot be written as JSON.", "value");
            }
            if (!first) sb.Append(',');
            first = false;
            WriteString(sb, key);
            sb.Append(':');
            WriteValue(sb, value, normalize, depth);
        }

        private static void WriteArray(StringBuilder sb, IEnumerable items, Func<object, object> normalize, int depth)
        {
            sb.Append('[');
            bool first = true;
            IEnumerator en = items.GetEnumerator();
            try
            {
                while (en.MoveNext())
                {
                    if (!first) sb.Append(',');
                    first = false;
                    WriteValue(sb, en.Current, normalize, depth);
                }
            }
            finally
            {
                (en as IDisposable)?.Dispose();
            }
            sb.Append(']');
        }

        /// <summary>Ordinal duplicate-key tracking for one object being written: linear for small objects,
        /// a HashSet beyond <see cref="MaxLinearNames"/> keys.</summary>
        private struct KeyTracker
        {
            private string _first;
            private List<string> _list;
            private HashSet<string> _set;
            private int _count;

            public bool Add(string key)
            {
                if (_count == 0)
                {
                    _first = key;
                    _count = 1;
                    return true;
                }
                if (_set != null)
                {
                    if (!_set.Add(key)) return false;
                    _count++;
                    return true;
                }
                if (string.Equals(_first, key, StringComparison.Ordinal)) return false;
                if (_list != null)
                {
                    for (int i = 0; i < _list.Count; i++)
                    {
                        if (string.Equals(_list[i], key, StringComparison.Ordinal)) return false;
                    }
                }
                if (_count < MaxLinearNames)
                {
                    if (_list == null) _list = new List<string>(MaxLinearNames - 1);
                    _list.Add(key);
                }
                else
                {
                    _set = new HashSet<string>(StringComparer.Ordinal) { _first, key };
                    foreach (string k in _list) _set.Add(k);
                }
                _count++;
                return true;
            }
        }
    }
}
