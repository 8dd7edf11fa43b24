using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace WriteBehind.Engine.Json
{
    /// <summary>Words why <see cref="JsonValidator"/> rejected a document, as the lease script's validator (parse_object
    /// in prelude.lua) words it, so that a cmdlet refuses an item with the reason the flush would dead-letter it with
    /// (tests/WriteBehind.Engine.Tests/ValidationCases.txt holds both to it). This is no second validator: it runs only
    /// after the reader has rejected the document, from the start of the step the reader rejected (everything before it
    /// was valid), and names the first fault from there. Offsets are those of the .NET string's characters.</summary>
    internal sealed partial class JsonValidator
    {
        private enum Expect { MemberOrEnd, Member, Value, ValueOrEnd, SeparatorOrEnd }

        /// <summary>The string-level checks before the reader: not empty, the top-level value an object.</summary>
        [MethodImpl(HotPath.Optimize)]
        private static bool TopLevelIsObject(string s, out string reason)
        {
            int p = 0;
            while (p < s.Length && IsWhitespace(s[p])) p++;
            if (p >= s.Length)
            {
                reason = s.Length == 0 ? "empty input" : "empty input (whitespace only)";
                return false;
            }
            if (s[p] == '{')
            {
                reason = null;
                return true;
            }
            reason = "top-level value is not a JSON object (" + DescribeTopLevel(s, p) + ")";
            return false;
        }

        private static string DescribeTopLevel(string s, int p)
        {
            char c = s[p];
            if (c == '[') return "found an array";
            if (c == '"') return "found a string";
            if (c == '\'') return "found a single-quoted string";
            if (c == '-' || IsDigit(c)) return "found a number";
            if (string.CompareOrdinal(s, p, "true", 0, 4) == 0 || string.CompareOrdinal(s, p, "false", 0, 5) == 0) return "found a boolean";
            if (string.CompareOrdinal(s, p, "null", 0, 4) == 0) return "found null";
            if (c == '/' && p + 1 < s.Length && (s[p + 1] == '/' || s[p + 1] == '*')) return "comments are not allowed, offset " + Num(p);
            return "found " + DescribeChar(c) + " at offset " + Num(p);
        }

        /// <summary>The first fault from byte <paramref name="p"/> on, where the reader, after a token of kind
        /// <paramref name="last"/> with <paramref name="depth"/> containers open, rejected the document; null if none is
        /// found (the reader and these rules disagree).</summary>
        private string DescribeFault(int p, JsonTokenType last, int depth)
        {
            int startDepth = depth;
            bool leftStartObject = false;
            Expect expect;
            switch (last)
            {
                case JsonTokenType.StartObject: expect = Expect.MemberOrEnd; break;
                case JsonTokenType.StartArray: expect = Expect.ValueOrEnd; break;
                case JsonTokenType.PropertyName: expect = Expect.Value; break; // the reader read the ':' with the name
                default: expect = Expect.SeparatorOrEnd; break;
            }
            while (true)
            {
                p = SkipWhitespace(p);
                switch (expect)
                {
                    case Expect.MemberOrEnd:
                    case Expect.ValueOrEnd:
                        byte close = expect == Expect.MemberOrEnd ? (byte)'}' : (byte)']';
                        if (p < _length && _utf8[p] == close)
                        {
                            p++;
                            if (--depth < startDepth) leftStartObject = true;
                            expect = Expect.SeparatorOrEnd;
                        }
                        else
                        {
                            expect = expect == Expect.MemberOrEnd ? Expect.Member : Expect.Value;
                        }
                        break;
                    case Expect.Member:
                        if (p >= _length || _utf8[p] != '"') return Expected(p, "'\"' to start a member name");
                        int quote = p;
                        string fault = ScanString(ref p, out bool escaped);
                        if (fault != null) return fault;
                        // A duplicate comes before what follows the name (the Lua validator's order).
                        if (depth == startDepth && !leftStartObject && !_frames[depth].IsArray
                            && !AddName(quote + 1, p - 1 - (quote + 1), escaped, depth))
                            return DuplicateReason(quote, p - 1 - (quote + 1), escaped);
                        p = SkipWhitespace(p);
                        if (p >= _length || _utf8[p] != ':') return Expected(p, "':' after member name");
                        p++;
                        expect = Expect.Value;
                        break;
                    case Expect.Value:
                        if (p >= _length) return Expected(p, "a value");
                        byte c = _utf8[p];
                        if (c == '{' || c == '[')
                        {
                            if (depth >= MaxDepth) return DepthReason(p);
                            depth++;
                            _frames[depth] = new Frame { IsArray = c == '[' };
                            p++;
                            expect = c == '{' ? Expect.MemberOrEnd : Expect.ValueOrEnd;
                            break;
                        }
                        fault = ScanScalar(ref p);
                        if (fault != null) return fault;
                        expect = Expect.SeparatorOrEnd;
                        break;
                    default: // SeparatorOrEnd
                        if (depth == 0)
                        {
                            if (p >= _length) return null;
                            return IsCommentStart(p)
                                ? "comments are not allowed in JSON (offset " + Num(CharOffset(p)) + ")"
                                : "unexpected data after the top-level object at offset " + Num(CharOffset(p));
                        }
                        bool inArray = _frames[depth].IsArray;
                        byte end = inArray ? (byte)']' : (byte)'}';
                        if (p < _length && _utf8[p] == ',')
                        {
                            int comma = p;
                            p = SkipWhitespace(p + 1);
                            if (p < _length && _utf8[p] == end)
                                return "trailing comma before '" + (char)end + "' at offset " + Num(CharOffset(comma));
                            expect = inArray ? Expect.Value : Expect.Member;
                        }
                        else if (p < _length && _utf8[p] == end)
                        {
                            p++;
                            if (--depth < startDepth) leftStartObject = true;
                        }
                        else
                        {
                            return Expected(p, inArray ? "',' or ']' after array element" : "',' or '}' after member value");
                        }
                        break;
                }
            }
        }

        // A string, number or literal at p (not an object or array); null when it is well formed, p then past it.
        private string ScanScalar(ref int p)
        {
            byte c = _utf8[p];
            switch (c)
            {
                case (byte)'"':
                    return ScanString(ref p, out _);
                case (byte)'t':
                    return Literal(ref p, "true");
                case (byte)'f':
                    return Literal(ref p, "false");
                case (byte)'n':
                    return Literal(ref p, "null");
                case (byte)'N':
                case (byte)'I':
                    return Matches(p, "NaN") || Matches(p, "Infinity") ? NonFinite(p) : Expected(p, "a value");
                default:
                    return c == '-' || IsDigit((char)c) ? ScanNumber(ref p) : Expected(p, "a value");
            }
        }

        private string Literal(ref int p, string literal)
        {
            if (!Matches(p, literal)) return "invalid literal at offset " + Num(CharOffset(p)) + " (expected " + literal + ")";
            p += literal.Length;
            return null;
        }

        private string NonFinite(int at) => "NaN and Infinity are not valid JSON numbers (offset " + Num(CharOffset(at)) + ")";

        // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
        private string ScanNumber(ref int p)
        {
            int start = p;
            if (_utf8[p] == '-')
            {
                p++;
                if (Matches(p, "Infinity")) return NonFinite(start);
            }
            if (!DigitAt(p)) return Expected(p, "a digit after '-'");
            if (_utf8[p] == '0')
            {
                p++;
                if (DigitAt(p)) return "leading zeros are not allowed in numbers (offset " + Num(CharOffset(start)) + ")";
            }
            else
            {
                while (DigitAt(p)) p++;
            }
            if (p < _length && _utf8[p] == '.')
            {
                p++;
                if (!DigitAt(p)) return Expected(p, "a digit after the decimal point");
                while (DigitAt(p)) p++;
            }
            if (p < _length && (_utf8[p] == 'e' || _utf8[p] == 'E'))
            {
                p++;
                if (p < _length && (_utf8[p] == '+' || _utf8[p] == '-')) p++;
                if (!DigitAt(p)) return Expected(p, "a digit in the exponent");
                while (DigitAt(p)) p++;
            }
            return null;
        }

        // The string starting with the quote at p; null when it is well formed, p then past its closing quote.
        private string ScanString(ref int p, out bool escaped)
        {
            escaped = false;
            int start = p;
            p++;
            while (true)
            {
                if (p >= _length) return "unterminated string starting at offset " + Num(CharOffset(start));
                byte c = _utf8[p];
                if (c == '"')
                {
                    p++;
                    return null;
                }
                if (c == '\\')
                {
                    escaped = true;
                    if (p + 1 >= _length) return "unterminated string starting at offset " + Num(CharOffset(start));
                    byte e = _utf8[p + 1];
                    switch (e)
                    {
                        case (byte)'"':
                        case (byte)'\\':
                        case (byte)'/':
                        case (byte)'b':
                        case (byte)'f':
                        case (byte)'n':
                        case (byte)'r':
                        case (byte)'t':
                            p += 2;
                            continue;
                        case (byte)'u':
                            if (p + 5 < _length && HexValue(_utf8[p + 2]) >= 0 && HexValue(_utf8[p + 3]) >= 0
                                && HexValue(_utf8[p + 4]) >= 0 && HexValue(_utf8[p + 5]) >= 0)
                            {
                                p += 6;
                                continue;
                            }
                            return "invalid \\u escape at offset " + Num(CharOffset(p)) + " (expected 4 hex digits)";
                        default:
                            return "invalid escape sequence " + DescribeEscape(CodeUnitAt(p + 1)) + " at offset " + Num(CharOffset(p));
                    }
                }
                if (c < 0x20) return "raw control character " + CodePoint((char)c) + " in string at offset " + Num(CharOffset(p)) + " (must be escaped)";
                if (c == 0xED && p + 1 < _length && _utf8[p + 1] >= 0xA0) return LoneSurrogateReasonAt(p);
                p += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            }
        }

        private string LoneSurrogateReasonAt(int at) => "invalid UTF-16 (lone surrogate) at offset " + Num(CharOffset(at));

        private string DuplicateReason(int quote, int rawLength, bool escaped)
        {
            string name = DecodeName(quote + 1, rawLength, escaped);
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
            CompactJsonWriter.WriteString(sb, name);
            if (truncated) sb.Append("...");
            sb.Append(" at offset ").Append(Num(CharOffset(quote)));
            return sb.ToString();
        }

        private string Expected(int p, string what)
        {
            if (p >= _length) return "unexpected end of input at offset " + Num(CharOffset(p)) + " (expected " + what + ")";
            if (IsCommentStart(p)) return "comments are not allowed in JSON (offset " + Num(CharOffset(p)) + ")";
            if (_utf8[p] == '\'') return "single-quoted strings are not allowed in JSON (offset " + Num(CharOffset(p)) + ")";
            return "expected " + what + " at offset " + Num(CharOffset(p)) + ", found " + DescribeChar(CodeUnitAt(p));
        }

        private int SkipWhitespace(int p)
        {
            while (p < _length && IsWhitespace((char)_utf8[p])) p++;
            return p;
        }

        private bool Matches(int at, string literal)
        {
            if (at + literal.Length > _length) return false;
            for (int k = 0; k < literal.Length; k++)
            {
                if (_utf8[at + k] != literal[k]) return false;
            }
            return true;
        }

        private bool DigitAt(int p) => p < _length && IsDigit((char)_utf8[p]);

        private bool IsCommentStart(int at) =>
            _utf8[at] == '/' && at + 1 < _length && (_utf8[at + 1] == '/' || _utf8[at + 1] == '*');

        [MethodImpl(HotPath.Optimize)]
        private static bool IsWhitespace(char c) => c == ' ' || c == '\n' || c == '\r' || c == '\t';

        private static bool IsDigit(char c) => (uint)(c - '0') <= 9;

        private static string CodePoint(char c) => "U+" + ((int)c).ToString("X4", System.Globalization.CultureInfo.InvariantCulture);

        // One character for a reason: 'x' for printable ASCII, U+XXXX otherwise.
        private static string DescribeChar(char c) => c > 0x20 && c < 0x7F ? "'" + c + "'" : CodePoint(c);

        private static string DescribeEscape(char e) => e > 0x20 && e < 0x7F ? "'\\" + e + "'" : "'\\' followed by " + CodePoint(e);
    }
}
