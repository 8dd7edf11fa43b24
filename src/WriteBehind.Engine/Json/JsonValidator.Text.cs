using System.Globalization;
using System.Text;

namespace WriteBehind.Engine.Json
{
    /// <summary>The byte and character bookkeeping of <see cref="JsonValidator"/>: the UTF-8 copy of a string that holds a
    /// lone surrogate, decoding member names (with escapes) to bytes for comparison and to strings for callers and
    /// reasons, and turning byte offsets of the copy into character offsets of the .NET string.</summary>
    internal sealed partial class JsonValidator
    {
        private static string Num(int n) => n.ToString(CultureInfo.InvariantCulture);

        private static bool IsLoneSurrogateAt(string s, int i)
        {
            char c = s[i];
            if (c < 0xD800 || c > 0xDFFF) return false;
            return c > 0xDBFF || i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1]);
        }

        private static int FirstLoneSurrogate(string s)
        {
            for (int i = 0; i < s.Length; i++)
            {
                if (IsLoneSurrogateAt(s, i)) return i;
                if (char.IsHighSurrogate(s[i])) i++; // a pair
            }
            return -1;
        }

        // UTF-8 into into[n...] (returns the end), except that a lone surrogate is written as the three bytes of its code point (which no valid UTF-8
        // holds, and which the reader, not checking text inside strings, passes).
        private static int EncodeKeepingLoneSurrogates(string s, byte[] into, int n = 0)
        {
            for (int i = 0; i < s.Length; i++)
            {
                int cp = s[i];
                if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                {
                    cp = char.ConvertToUtf32(s[i], s[i + 1]);
                    i++;
                }
                n = Put(into, n, cp);
            }
            return n;
        }

        private static int Put(byte[] into, int n, int cp)
        {
            if (cp < 0x80)
            {
                into[n++] = (byte)cp;
            }
            else if (cp < 0x800)
            {
                into[n++] = (byte)(0xC0 | (cp >> 6));
                into[n++] = (byte)(0x80 | (cp & 0x3F));
            }
            else if (cp < 0x10000)
            {
                into[n++] = (byte)(0xE0 | (cp >> 12));
                into[n++] = (byte)(0x80 | ((cp >> 6) & 0x3F));
                into[n++] = (byte)(0x80 | (cp & 0x3F));
            }
            else
            {
                into[n++] = (byte)(0xF0 | (cp >> 18));
                into[n++] = (byte)(0x80 | ((cp >> 12) & 0x3F));
                into[n++] = (byte)(0x80 | ((cp >> 6) & 0x3F));
                into[n++] = (byte)(0x80 | (cp & 0x3F));
            }
            return n;
        }

        /// <summary>The character offset in the .NET string of byte offset <paramref name="at"/> of the copy.</summary>
        private int CharOffset(int at)
        {
            int chars = 0;
            for (int i = 0; i < at; i++)
            {
                byte b = _utf8[i];
                if ((b & 0xC0) != 0x80) chars++;
                if (b >= 0xF0) chars++; // a surrogate pair
            }
            return chars;
        }

        /// <summary>The first UTF-16 code unit of the character whose encoding starts at byte <paramref name="at"/>.</summary>
        private char CodeUnitAt(int at)
        {
            byte b = _utf8[at];
            if (b < 0x80) return (char)b;
            int cp;
            if (b < 0xE0) cp = ((b & 0x1F) << 6) | (Continuation(at + 1));
            else if (b < 0xF0) cp = ((b & 0x0F) << 12) | (Continuation(at + 1) << 6) | Continuation(at + 2);
            else cp = ((b & 0x07) << 18) | (Continuation(at + 1) << 12) | (Continuation(at + 2) << 6) | Continuation(at + 3);
            return cp < 0x10000 ? (char)cp : (char)(0xD800 + ((cp - 0x10000) >> 10));
        }

        private int Continuation(int at) => at < _length ? _utf8[at] & 0x3F : 0;

        private static int HexValue(byte c)
        {
            if ((uint)(c - '0') <= 9) return c - '0';
            if ((uint)(c - 'a') <= 5) return c - 'a' + 10;
            if ((uint)(c - 'A') <= 5) return c - 'A' + 10;
            return -1;
        }

        private int Hex4(int at) =>
            (HexValue(_utf8[at]) << 12) | (HexValue(_utf8[at + 1]) << 8) | (HexValue(_utf8[at + 2]) << 4) | HexValue(_utf8[at + 3]);

        // Decodes an escaped name into _arena as bytes that are equal for equal names: UTF-8, a lone surrogate (which
        // an escape may spell) as the 3 bytes of its code point. Returns their length.
        private int DecodeIntoArena(int start, int rawLength)
        {
            string name = DecodeName(start, rawLength, escaped: true);
            if (_arena.Length < _arenaLength + 3 * name.Length)
            {
                System.Array.Resize(ref _arena, System.Math.Max(_arena.Length * 2, _arenaLength + 3 * name.Length));
                if (_arena.Length > RetainedLimit) _trimOnReturn = true;
            }
            int length = EncodeKeepingLoneSurrogates(name, _arena, _arenaLength) - _arenaLength;
            _arenaLength += length;
            return length;
        }

        private static byte Unescaped(byte e)
        {
            switch (e)
            {
                case (byte)'b': return (byte)'\b';
                case (byte)'f': return (byte)'\f';
                case (byte)'n': return (byte)'\n';
                case (byte)'r': return (byte)'\r';
                case (byte)'t': return (byte)'\t';
                default: return e; // '"', '\\', '/'
            }
        }

        /// <summary>The decoded name whose raw text (between the quotes) is _utf8[start, start + rawLength).</summary>
        private string DecodeName(int start, int rawLength, bool escaped)
        {
            if (!escaped) return Encoding.UTF8.GetString(_utf8, start, rawLength);
            int end = start + rawLength;
            var sb = new StringBuilder(rawLength);
            int run = start;
            int i = start;
            while (i < end)
            {
                if (_utf8[i] != '\\')
                {
                    i++;
                    continue;
                }
                if (i > run) sb.Append(Encoding.UTF8.GetString(_utf8, run, i - run));
                byte e = _utf8[i + 1];
                if (e == 'u')
                {
                    sb.Append((char)Hex4(i + 2));
                    i += 6;
                }
                else
                {
                    sb.Append((char)Unescaped(e));
                    i += 2;
                }
                run = i;
            }
            if (run < end) sb.Append(Encoding.UTF8.GetString(_utf8, run, end - run));
            return sb.ToString();
        }
    }
}
