using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Text;

namespace WriteBehind.Engine.Json
{
    /// <summary>The JSON text operations the engine and the cmdlets use: strict validation of a profile or patch
    /// (System.Text.Json's reader, see <see cref="JsonValidator"/>), its top-level members with their raw value text,
    /// and compact writing of .NET values (<see cref="CompactJsonWriter"/>).</summary>
    public static class JsonText
    {
        /// <summary>
        /// Strict RFC 8259 validation of a JSON document whose top-level value must be an object, with no duplicate
        /// member names in any object and nesting depth at most 64. Returns false with a short reason when invalid.
        /// </summary>
        [MethodImpl(HotPath.Optimize)]
        public static bool TryValidateObject(string json, out string reason) => JsonValidator.Validate(json, null, out reason);

        /// <summary>Same validation as <see cref="TryValidateObject"/>; on success returns each top-level member's
        /// decoded name and its raw value text (an exact substring of the input), in document order.
        /// On failure <paramref name="members"/> is an empty list.</summary>
        public static bool TryGetTopLevelMembers(string json, out IReadOnlyList<KeyValuePair<string, string>> members, out string reason)
        {
            var list = new List<KeyValuePair<string, string>>();
            if (JsonValidator.Validate(json, list, out reason))
            {
                members = list;
                return true;
            }
            members = Array.Empty<KeyValuePair<string, string>>();
            return false;
        }

        /// <summary>
        /// Writes compact JSON for a .NET value. <paramref name="normalize"/> (optional) is called on every value,
        /// top-level and nested, before it is written and returns the value to write instead.
        /// Throws <see cref="ArgumentException"/> for unsupported types, NaN/Infinity, duplicate member names
        /// and nesting deeper than 64.
        /// </summary>
        public static string Serialize(object value, Func<object, object> normalize = null) => CompactJsonWriter.Serialize(value, normalize);

        /// <summary>Appends the JSON string literal (with quotes) for <paramref name="s"/>: only '"', '\' and control
        /// characters below U+0020 are escaped (\b \f \n \r \t or \u00XX in lower-case hex); every other character,
        /// non-ASCII included, is written as is, except a lone surrogate, which is written as a \uXXXX escape so the
        /// output stays valid JSON and encodable as UTF-8. A null <paramref name="s"/> is written as <c>null</c>.</summary>
        public static void WriteString(StringBuilder sb, string s) => CompactJsonWriter.WriteString(sb, s);
    }
}
