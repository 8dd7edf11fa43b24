using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace WriteBehind.Engine.Json
{
    /// <summary>
    /// Hand-written, allocation-light JSON text handling: strict RFC 8259 validation of a top-level object
    /// (with duplicate-name and depth checks), top-level member extraction (raw value text kept byte for byte)
    /// and compact serialization of .NET values. No JSON library is used.
    /// </summary>
    public static class JsonText
    {
        /// <summary>Maximum nesting depth (objects + arrays; the top-level object counts as 1).</summary>
        internal const int MaxDepth = 64;

        /// <summary>Objects with at most this many members are checked for duplicate names linearly; larger ones
        /// use a reused per-thread hash table over name positions (no per-call allocation either way).</summary>
        internal const int MaxLinearNames = 8;

        /// <summary>At most this many characters of a member name are quoted in a reason.</summary>
        internal const int MaxQuotedNameChars = 32;

        // ------------------------------------------------------------------------------------------------
        // Validation / parsing
        // ------------------------------------------------------------------------------------------------

        /// <summary>
        /// Strict RFC 8259 validation of a JSON document whose top-level value must be an object, with no duplicate
        /// member names in any object and nesting depth at most 64. Returns false with a short reason when invalid.
        /// </summary>
        public static bool TryValidateObject(string json, out string reason)
        {
            return Run(json, null, null, out reason);
        }

        /// <summary>Same validation as <see cref="TryValidateObject"/>; on success returns the decoded top-level
        /// member names in document order. On failure <paramref name="names"/> is an empty list.</summary>
        public static bool TryGetTopLevelNames(string json, out IReadOnlyList<string> names, out string reason)
        {
            var list = new List<string>();
            if (Run(json, list, null, out reason))
            {
                names = list;
                return true;
            }
            names = Array.Empty<string>();
            return false;
        }

        /// <summary>Same validation as <see cref="TryValidateObject"/>; on success returns each top-level member's
        /// decoded name and its raw value text (an exact substring of the input), in document order.
        /// On failure <paramref name="members"/> is an empty list.</summary>
        public static bool TryGetTopLevelMembers(string json, out IReadOnlyList<KeyValuePair<string, string>> members, out string reason)
        {
            var list = new List<KeyValuePair<string, string>>();
            if (Run(json, null, list, out reason))
            {
                members = list;
                return true;
            }
            members = Array.Empty<KeyValuePair<string, string>>();
            return false;
        }

        private static bool Run(string json, List<string> names, List<KeyValuePair<string, string>> members, out string reason)
        {
            if (json == null)
            {
                reason = "input is null";
                return false;
            }
            Parser parser = Parser.Rent();
            try
            {
                return parser.Run(json, names, members, out reason);
            }
            finally
            {
                Parser.Return(parser);
            }
        }

        /// <summary>Single-pass recursive-descent validator. One instance (with its name stack and duplicate-name
        /// tables) is cached per thread, so a successful validation allocates nothing once the thread is warmed up;
        /// only failure reasons and the results of TryGetTopLevelNames/Members are allocated.</summary>
        private sealed class Parser
        {
            [ThreadStatic] private static Parser t_cached;

            private string _s;
            private int _len;
            private int _pos;
            private string _error;

            // Stack of member names of the objects currently open: pairs (start, end) of the raw name text
            // between the quotes; end is stored as ~end when the name contains escapes.
            private int[] _names = new int[64];
            private int _nameCount;

            private List<string> _topNames;
            private List<KeyValuePair<string, string>> _topMembers;

            // Duplicate-name tables for objects with more than MaxLinearNames members, one per depth (an object's
            // table lives while nested objects are parsed). Reused across calls: no allocation once warmed up.
            private readonly NameTable[] _tables = new NameTable[MaxDepth + 1];
            private bool _trimOnReturn;

            public static Parser Rent()
            {
                Parser p = t_cached;
                if (p == null) return new Parser();
                t_cached = null;
                return p;
            }

            public static void Return(Parser p)
            {
                p._s = null;
                p._error = null;
                p._topNames = null;
                p._topMembers = null;
                p._nameCount = 0;
                if (p._trimOnReturn)
                {
                    // Do not keep the memory of one huge document alive in the thread's cache.
                    p._trimOnReturn = false;
                    if (p._names.Length > RetainedLimit) p._names = new int[64];
                    for (int i = 0; i < p._tables.Length; i++)
                    {
                        if (p._tables[i] != null && p._tables[i].Slots.Length > RetainedLimit) p._tables[i] = null;
                    }
                }
                t_cached = p;
            }

            private const int RetainedLimit = 1 << 14;

            public bool Run(string s, List<string> names, List<KeyValuePair<string, string>> members, out string reason)
            {
                _s = s;
                _len = s.Length;
                _pos = 0;
                _error = null;
                _nameCount = 0;
                _topNames = names;
                _topMembers = members;

                SkipWs();
                if (_pos >= _len)
                {
                    reason = _len == 0 ? "empty input" : "empty input (whitespace only)";
                    return false;
                }
                if (_s[_pos] != '{')
                {
                    reason = "top-level value is not a JSON object (" + DescribeTopLevel() + ")";
                    return false;
                }
                if (!ParseObject(1))
                {
                    reason = _error;
                    return false;
                }
                SkipWs();
                if (_pos < _len)
                {
                    reason = IsCommentStart(_pos)
                        ? "comments are not allowed in JSON (offset " + Num(_pos) + ")"
                        : "unexpected data after the top-level object at offset " + Num(_pos);
                    return false;
                }
                reason = null;
                return true;
            }

            private string DescribeTopLevel()
            {
                char c = _s[_pos];
                switch (c)
                {
                    case '[': return "found an array";
                    case '"': return "found a string";
                    case '\'': return "found a single-quoted string";
                    case '-':
                    case '0': case '1': case '2': case '3': case '4':
                    case '5': case '6': case '7': case '8': case '9':
                        return "found a number";
                }
                if (Matches(_pos, "true") || Matches(_pos, "false")) return "found a boolean";
                if (Matches(_pos, "null")) return "found null";
                if (IsCommentStart(_pos)) return "comments are not allowed, offset " + Num(_pos);
                return "found " + DescribeChar(c) + " at offset " + Num(_pos);
            }

            private void SkipWs()
            {
                string s = _s;
                int p = _pos;
                int len = _len;
                while (p < len)
                {
                    char c = s[p];
                    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') p++;
                    else break;
                }
                _pos = p;
            }

            // Precondition: _s[_pos] == '{'. depth is the depth of this object (top-level object = 1).
            private bool ParseObject(int depth)
            {
                _pos++;
                SkipWs();
                if (_pos < _len && _s[_pos] == '}')
                {
                    _pos++;
                    return true;
                }

                int baseIdx = _nameCount;
                NameTable table = null;
                int count = 0;
                bool collect = depth == 1 && (_topNames != null || _topMembers != null);

                while (true)
                {
                    if (_pos >= _len || _s[_pos] != '"') return Expected("'\"' to start a member name");
                    int quote = _pos;
                    if (!ScanString(out bool escaped)) return false;
                    int start = quote + 1;
                    int end = _pos - 1;

                    // Duplicate-name check: linear for the first MaxLinearNames members, then a hash table.
                    if (table == null && count < MaxLinearNames)
                    {
                        int[] n = _names;
                        for (int i = baseIdx; i < _nameCount; i++)
                        {
                            int oStart = n[2 * i];
                            int oEnd = n[2 * i + 1];
                            bool oEsc = oEnd < 0;
                            if (oEsc) oEnd = ~oEnd;
                            if (NamesEqual(oStart, oEnd, oEsc, start, end, escaped)) return Duplicate(start, end, escaped, quote);
                        }
                        PushName(start, end, escaped);
                    }
                    else
                    {
                        if (table == null)
                        {
                            table = _tables[depth] ?? (_tables[depth] = new NameTable());
                            table.Begin();
                            for (int i = baseIdx; i < _nameCount; i++) TableAdd(table, i); // already known distinct
                        }
                        PushName(start, end, escaped);
                        if (!TableAdd(table, _nameCount - 1)) return Duplicate(start, end, escaped, quote);
                    }
                    count++;

                    SkipWs();
                    if (_pos >= _len || _s[_pos] != ':') return Expected("':' after member name");
                    _pos++;
                    SkipWs();
                    int valueStart = _pos;
                    if (!ParseValue(depth)) return false;
                    if (collect)
                    {
                        string name = Decode(start, end, escaped);
                        _topNames?.Add(name);
                        _topMembers?.Add(new KeyValuePair<string, string>(name, _s.Substring(valueStart, _pos - valueStart)));
                    }

                    SkipWs();
                    if (_pos < _len)
                    {
                        char c = _s[_pos];
                        if (c == ',')
                        {
                            int comma = _pos;
                            _pos++;
                            SkipWs();
                            if (_pos < _len && _s[_pos] == '}') return Fail("trailing comma before '}' at offset " + Num(comma));
                            continue;
                        }
                        if (c == '}')
                        {
                            _pos++;
                            _nameCount = baseIdx;
                            return true;
                        }
                    }
                    return Expected("',' or '}' after member value");
                }
            }

            // Precondition: _s[_pos] == '['. depth is the depth of this array.
            private bool ParseArray(int depth)
            {
                _pos++;
                SkipWs();
                if (_pos < _len && _s[_pos] == ']')
                {
                    _pos++;
                    return true;
                }
                while (true)
                {
                    if (!ParseValue(depth)) return false;
                    SkipWs();
                    if (_pos < _len)
                    {
                        char c = _s[_pos];
                        if (c == ',')
                        {
                            int comma = _pos;
                            _pos++;
                            SkipWs();
                            if (_pos < _len && _s[_pos] == ']') return Fail("trailing comma before ']' at offset " + Num(comma));
                            continue;
                        }
                        if (c == ']')
                        {
                            _pos++;
                            return true;
                        }
                    }
                    return Expected("',' or ']' after array element");
                }
            }

            // Parses one value at _pos; containerDepth is the depth of the enclosing object/array.
            private bool ParseValue(int containerDepth)
            {
                if (_pos >= _len) return Expected("a value");
                char c = _s[_pos];
                switch (c)
                {
                    case '"':
                        return ScanString(out _);
                    case '{':
                        if (containerDepth >= MaxDepth) return FailDepth();
                        return ParseObject(containerDepth + 1);
                    case '[':
                        if (containerDepth >= MaxDepth) return FailDepth();
                        return ParseArray(containerDepth + 1);
                    case 't':
                        return Literal("true");
                    case 'f':
                        return Literal("false");
                    case 'n':
                        return Literal("null");
                    case '-':
                    case '0': case '1': case '2': case '3': case '4':
                    case '5': case '6': case '7': case '8': case '9':
                        return ParseNumber();
                    case 'N':
                    case 'I':
                        if (Matches(_pos, "NaN") || Matches(_pos, "Infinity")) return FailNonFinite(_pos);
                        return Expected("a value");
                    default:
                        return Expected("a value");
                }
            }

            private bool FailDepth()
            {
                return Fail("nesting deeper than " + Num(MaxDepth) + " at offset " + Num(_pos));
            }

            private bool FailNonFinite(int at)
            {
                return Fail("NaN and Infinity are not valid JSON numbers (offset " + Num(at) + ")");
            }

            private bool Literal(string lit)
            {
                if (Matches(_pos, lit))
                {
                    _pos += lit.Length;
                    return true;
                }
                return Fail("invalid literal at offset " + Num(_pos) + " (expected " + lit + ")");
            }

            // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
            private bool ParseNumber()
            {
                string s = _s;
                int len = _len;
                int start = _pos;
                int p = _pos;
                if (s[p] == '-')
                {
                    p++;
                    if (p < len && s[p] == 'I' && Matches(p, "Infinity")) return FailNonFinite(start);
                }
                if (p >= len || !IsDigit(s[p]))
                {
                    _pos = p;
                    return Expected("a digit after '-'");
                }
                if (s[p] == '0')
                {
                    p++;
                    if (p < len && IsDigit(s[p])) return Fail("leading zeros are not allowed in numbers (offset " + Num(start) + ")");
                }
                else
                {
                    p++;
                    while (p < len && IsDigit(s[p])) p++;
                }
                if (p < len && s[p] == '.')
                {
                    p++;
                    if (p >= len || !IsDigit(s[p]))
                    {
                        _pos = p;
                        return Expected("a digit after the decimal point");
                    }
                    p++;
                    while (p < len && IsDigit(s[p])) p++;
                }
                if (p < len && (s[p] == 'e' || s[p] == 'E'))
                {
                    p++;
                    if (p < len && (s[p] == '+' || s[p] == '-')) p++;
                    if (p >= len || !IsDigit(s[p]))
                    {
                        _pos = p;
                        return Expected("a digit in the exponent");
                    }
                    p++;
                    while (p < len && IsDigit(s[p])) p++;
                }
                _pos = p;
                return true;
            }

            // Precondition: _s[_pos] == '"'. On success _pos is just past the closing quote.
            private bool ScanString(out bool escaped)
            {
                escaped = false;
                string s = _s;
                int len = _len;
                int start = _pos;
                int p = start + 1;
                while (true)
                {
                    // Fast path: ordinary characters.
                    char c;
                    while (p < len)
                    {
                        c = s[p];
                        if (c >= 0x20 && c != '"' && c != '\\' && (uint)(c - 0xD800) > 0x7FF) p++;
                        else break;
                    }
                    if (p >= len)
                    {
                        _pos = p;
                        return Fail("unterminated string starting at offset " + Num(start));
                    }
                    c = s[p];
                    if (c == '"')
                    {
                        _pos = p + 1;
                        return true;
                    }
                    if (c == '\\')
                    {
                        escaped = true;
                        if (p + 1 >= len)
                        {
                            _pos = p;
                            return Fail("unterminated string starting at offset " + Num(start));
                        }
                        char e = s[p + 1];
                        switch (e)
                        {
                            case '"':
                            case '\\':
                            case '/':
                            case 'b':
                            case 'f':
                            case 'n':
                            case 'r':
                            case 't':
                                p += 2;
                                continue;
                            case 'u':
                                if (p + 5 < len && HexValue(s[p + 2]) >= 0 && HexValue(s[p + 3]) >= 0
                                    && HexValue(s[p + 4]) >= 0 && HexValue(s[p + 5]) >= 0)
                                {
                                    p += 6;
                                    continue;
                                }
                                _pos = p;
                                return Fail("invalid \\u escape at offset " + Num(p) + " (expected 4 hex digits)");
                            default:
                                _pos = p;
                                return Fail("invalid escape sequence " + DescribeEscape(e) + " at offset " + Num(p));
                        }
                    }
                    if (c < 0x20)
                    {
                        _pos = p;
                        return Fail("raw control character " + CodePoint(c) + " in string at offset " + Num(p) + " (must be escaped)");
                    }
                    // Surrogate.
                    if (c <= 0xDBFF && p + 1 < len && char.IsLowSurrogate(s[p + 1]))
                    {
                        p += 2;
                        continue;
                    }
                    _pos = p;
                    return Fail("invalid UTF-16 (lone surrogate) at offset " + Num(p));
                }
            }

            // Adds name entry nameIdx to the table; false when an equal (decoded) name is already there.
            private bool TableAdd(NameTable t, int nameIdx)
            {
                int[] n = _names;
                int start = n[2 * nameIdx];
                int end = n[2 * nameIdx + 1];
                bool esc = end < 0;
                if (esc) end = ~end;
                int hash = HashName(start, end, esc);

                NameTable.Slot[] slots = t.Slots;
                int gen = t.Gen;
                int mask = slots.Length - 1;
                int i = hash & mask;
                while (slots[i].Gen == gen)
                {
                    if (slots[i].Hash == hash)
                    {
                        int o = slots[i].Index;
                        int oStart = n[2 * o];
                        int oEnd = n[2 * o + 1];
                        bool oEsc = oEnd < 0;
                        if (oEsc) oEnd = ~oEnd;
                        if (NamesEqual(oStart, oEnd, oEsc, start, end, esc)) return false;
                    }
                    i = (i + 1) & mask;
                }
                slots[i].Gen = gen;
                slots[i].Index = nameIdx;
                slots[i].Hash = hash;
                t.Count++;
                if (t.Count * 2 > slots.Length)
                {
                    t.Grow();
                    if (t.Slots.Length > RetainedLimit) _trimOnReturn = true;
                }
                return true;
            }

            // Seeded FNV-1a over the decoded UTF-16 code units, with a final avalanche for linear probing.
            private int HashName(int start, int end, bool escaped)
            {
                string s = _s;
                uint h = s_hashSeed;
                if (!escaped)
                {
                    for (int i = start; i < end; i++) h = (h ^ s[i]) * 16777619u;
                }
                else
                {
                    int i = start;
                    while (i < end) h = (h ^ NextDecoded(ref i)) * 16777619u;
                }
                h ^= h >> 15;
                h *= 0x2c1b3c6du;
                h ^= h >> 12;
                return (int)(h & 0x7FFFFFFF);
            }

            private void PushName(int start, int end, bool escaped)
            {
                int idx = 2 * _nameCount;
                if (idx + 2 > _names.Length)
                {
                    Array.Resize(ref _names, _names.Length * 2);
                    if (_names.Length > RetainedLimit) _trimOnReturn = true;
                }
                _names[idx] = start;
                _names[idx + 1] = escaped ? ~end : end;
                _nameCount++;
            }

            // Compares two raw names (text between the quotes) by their decoded UTF-16 code units.
            private bool NamesEqual(int aStart, int aEnd, bool aEsc, int bStart, int bEnd, bool bEsc)
            {
                if (!aEsc && !bEsc)
                {
                    int l = aEnd - aStart;
                    return l == bEnd - bStart && string.CompareOrdinal(_s, aStart, _s, bStart, l) == 0;
                }
                int i = aStart;
                int j = bStart;
                while (i < aEnd && j < bEnd)
                {
                    if (NextDecoded(ref i) != NextDecoded(ref j)) return false;
                }
                return i == aEnd && j == bEnd;
            }

            // Decodes one UTF-16 code unit of an already-validated string body.
            private char NextDecoded(ref int i)
            {
                string s = _s;
                char c = s[i];
                if (c != '\\')
                {
                    i++;
                    return c;
                }
                char e = s[i + 1];
                switch (e)
                {
                    case 'b': i += 2; return '\b';
                    case 'f': i += 2; return '\f';
                    case 'n': i += 2; return '\n';
                    case 'r': i += 2; return '\r';
                    case 't': i += 2; return '\t';
                    case 'u':
                        int v = (HexValue(s[i + 2]) << 12) | (HexValue(s[i + 3]) << 8) | (HexValue(s[i + 4]) << 4) | HexValue(s[i + 5]);
                        i += 6;
                        return (char)v;
                    default: // '"', '\\', '/'
                        i += 2;
                        return e;
                }
            }

            private string Decode(int start, int end, bool escaped)
            {
                if (!escaped) return _s.Substring(start, end - start);
                var buf = new char[end - start];
                int n = 0;
                int i = start;
                while (i < end) buf[n++] = NextDecoded(ref i);
                return new string(buf, 0, n);
            }

            private bool Duplicate(int start, int end, bool escaped, int quote)
            {
                string name = Decode(start, end, escaped);
                bool truncated = false;
                if (name.Length > MaxQuotedNameChars)
                {
                    int cut = MaxQuotedNameChars;
                    if (char.IsHighSurrogate(name[cut - 1])) cut--;
                    name = name.Substring(0, cut);
                    truncated = true;
                }
                var sb = new StringBuilder(64);
                sb.Append("duplicate member name ");
                WriteString(sb, name);
                if (truncated) sb.Append("...");
                sb.Append(" at offset ").Append(Num(quote));
                return Fail(sb.ToString());
            }

            private bool Expected(string what)
            {
                if (_pos >= _len) return Fail("unexpected end of input at offset " + Num(_pos) + " (expected " + what + ")");
                char c = _s[_pos];
                if (IsCommentStart(_pos)) return Fail("comments are not allowed in JSON (offset " + Num(_pos) + ")");
                if (c == '\'') return Fail("single-quoted strings are not allowed in JSON (offset " + Num(_pos) + ")");
                return Fail("expected " + what + " at offset " + Num(_pos) + ", found " + DescribeChar(c));
            }

            private bool Fail(string message)
            {
                _error = message;
                return false;
            }

            private bool Matches(int at, string lit)
            {
                if (at + lit.Length > _len) return false;
                for (int k = 0; k < lit.Length; k++)
                {
                    if (_s[at + k] != lit[k]) return false;
                }
                return true;
            }

            private bool IsCommentStart(int at)
            {
                return _s[at] == '/' && at + 1 < _len && (_s[at + 1] == '/' || _s[at + 1] == '*');
            }
        }

        private static readonly uint s_hashSeed = (uint)Guid.NewGuid().GetHashCode() | 1u;

        /// <summary>Open-addressing set of member-name entries (indexes into the parser's name stack) for one
        /// open object. Slots are valid only when their generation equals <see cref="Gen"/>, so starting a new
        /// object is O(1) whatever the table size.</summary>
        private sealed class NameTable
        {
            internal struct Slot
            {
                public int Gen;
                public int Index;
                public int Hash;
            }

            public Slot[] Slots = new Slot[64];
            public int Gen;
            public int Count;

            public void Begin()
            {
                Count = 0;
                Gen++;
                if (Gen == 0)
                {
                    // Wrapped around: stale slots could carry any generation; start clean.
                    Array.Clear(Slots, 0, Slots.Length);
                    Gen = 1;
                }
            }

            public void Grow()
            {
                Slot[] old = Slots;
                var slots = new Slot[old.Length * 2];
                int mask = slots.Length - 1;
                for (int k = 0; k < old.Length; k++)
                {
                    if (old[k].Gen != Gen) continue;
                    int i = old[k].Hash & mask;
                    while (slots[i].Gen == Gen) i = (i + 1) & mask;
                    slots[i] = old[k];
                }
                Slots = slots;
            }
        }

        private static bool IsDigit(char c) => (uint)(c - '0') <= 9;

        private static int HexValue(char c)
        {
            if ((uint)(c - '0') <= 9) return c - '0';
            if ((uint)(c - 'a') <= 5) return c - 'a' + 10;
            if ((uint)(c - 'A') <= 5) return c - 'A' + 10;
            return -1;
        }

        private static string Num(int n) => n.ToString(CultureInfo.InvariantCulture);

        private static string CodePoint(char c) => "U+" + ((int)c).ToString("X4", CultureInfo.InvariantCulture);

        // Describes one input character for a reason: 'x' for printable ASCII, U+XXXX otherwise.
        private static string DescribeChar(char c)
        {
            if (c > 0x20 && c < 0x7F) return "'" + c + "'";
            return CodePoint(c);
        }

        private static string DescribeEscape(char e)
        {
            if (e > 0x20 && e < 0x7F) return "'\\" + e + "'";
            return "'\\' followed by " + CodePoint(e);
        }

        // ------------------------------------------------------------------------------------------------
        // Serialization
        // ------------------------------------------------------------------------------------------------

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
                string shown = key.Length > MaxQuotedNameChars ? key.Substring(0, MaxQuotedNameChars) + "..." : key;
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
