using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;
using System.Text;
using WriteBehind.Engine;
using WriteBehind.Engine.Json;

namespace WriteBehind.Commands
{
    /// <summary>Turns what users pass as a profile or patch (JSON text, a dictionary, or any object) into
    /// JSON text, and JSON text back into an object for output.</summary>
    internal static class ProfileJson
    {
        private static readonly string[] IdPropertyNames = { "UserId", "Id" };

        /// <summary>JSON text is validated and kept byte for byte; anything else is serialized compactly
        /// with its properties in order (an Id/UserId property names the profile and is left out). The
        /// module's own objects (Get-UserProfile's, also deserialized ones) and objects of UserId with Profile
        /// and/or Json carry the profile in those: the Profile's fields win over the Json text, since that is
        /// what users edit; the fields they did not change keep their bytes.</summary>
        /// <param name="what">What the value is, for messages: "profile" or "update".</param>
        public static string FromInput(object input, string what = "profile")
        {
            object value = input is PSObject pso ? pso.BaseObject : input;
            if (value == null)
                throw new WriteBehindException(ErrorIds.InvalidProfileJson, $"The {what} is null.");
            if (value is string text)
            {
                if (!JsonText.TryValidateObject(text, out string reason))
                    throw new WriteBehindException(ErrorIds.InvalidProfileJson, $"The {what} is not a valid JSON object: " + reason);
                return text;
            }
            if (value is UserProfile own)
                return Edited(own.Json, own.Profile, what);
            if (value is PSCustomObject && input is PSObject custom)
            {
                // An object piped as { UserId; Profile } (or { UserId; Json }, or the module's own output after
                // a round trip through Export-Clixml or a remote session) carries its profile in those.
                var profile = custom.Properties["Profile"] ?? custom.Properties["Update"];
                bool editable = profile != null && profile.Value is PSObject fields && fields.BaseObject is PSCustomObject;
                // The common case first (Profile holds JSON text or a dictionary): no look-up of Json, unless
                // Profile is what Export-Csv made of the module's own Profile ("@{name=...}"), beside its Json.
                if (profile != null && !editable && !(profile.Value is string shown && shown.StartsWith("@{", StringComparison.Ordinal)))
                    return FromInput(profile.Value, what);
                var json = custom.Properties["Json"];
                string jsonText = json?.Value is PSObject wrapped ? wrapped.BaseObject as string : json?.Value as string;
                if (profile != null && !editable) return FromInput(jsonText ?? profile.Value, what);
                if (editable) return jsonText != null ? Edited(jsonText, (PSObject)profile.Value, what) : FromInput(profile.Value, what);
                if (jsonText != null) return FromInput(jsonText, what);
            }
            try
            {
                return JsonText.Serialize(input, v => Normalize(v, topLevel: ReferenceEquals(v, input)));
            }
            catch (ArgumentException ex)
            {
                throw new WriteBehindException(ErrorIds.InvalidProfileJson, $"The {what} cannot be written as JSON: " + ex.Message);
            }
        }

        /// <summary>The JSON text of <paramref name="json"/> with the edits made to <paramref name="fields"/>
        /// (its fields as Get-UserProfile showed them): unchanged, the text itself, byte for byte; otherwise
        /// the original members in their order, each unchanged one as its original text, a changed one as its
        /// new value (a changed nested object the same way, member by member), removed ones left out and
        /// added ones appended.</summary>
        private static string Edited(string json, PSObject fields, string what)
        {
            if (fields == null || !JsonText.TryGetTopLevelMembers(json, out var members, out _) || !(ToObject(json) is PSObject baseline))
            {
                // No valid text to compare with (a raw writer stored non-JSON): the fields are the profile.
                if (fields == null) return FromInput(json, what);
                return SerializeValue(fields, what, topLevel: true);
            }
            var sb = new StringBuilder(json.Length + 16);
            bool changed = false;
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            sb.Append('{');
            int written = 0;
            foreach (var member in members)
            {
                bool first = seen.Add(member.Key);
                var current = fields.Properties[member.Key];
                string valueText = member.Value;
                if (first)
                {
                    if (current == null) { changed = true; continue; } // removed by the user
                    object now = ValueOf(current);
                    object before = ValueOf(baseline.Properties[member.Key]);
                    if (!string.Equals(SerializeValue(now, what), SerializeValue(before, what), StringComparison.Ordinal))
                    {
                        changed = true;
                        valueText = now is PSObject nested && nested.BaseObject is PSCustomObject && member.Value.StartsWith("{", StringComparison.Ordinal)
                            ? Edited(member.Value, nested, what)
                            : SerializeValue(now, what);
                    }
                }
                // A later member whose name differs only in case is not among the fields (they are matched
                // case-insensitively): it is kept as it was.
                if (written++ > 0) sb.Append(',');
                JsonText.WriteString(sb, member.Key);
                sb.Append(':').Append(valueText);
            }
            foreach (var property in fields.Properties)
            {
                if (seen.Contains(property.Name) || !(property is PSNoteProperty)) continue; // added by the user
                changed = true;
                if (written++ > 0) sb.Append(',');
                JsonText.WriteString(sb, property.Name);
                sb.Append(':').Append(SerializeValue(ValueOf(property), what));
            }
            sb.Append('}');
            if (!changed) return json;
            string edited = sb.ToString();
            // The same check as for JSON text: an edit must not smuggle in what Set-UserProfile refuses.
            if (!JsonText.TryValidateObject(edited, out string reason))
                throw new WriteBehindException(ErrorIds.InvalidProfileJson, $"The edited {what} is not a valid JSON object: " + reason);
            return edited;
        }

        private static object ValueOf(PSPropertyInfo property)
        {
            if (property == null) return null;
            try { return property.Value; } catch (GetValueException) { return null; }
        }

        private static string SerializeValue(object value, string what, bool topLevel = false)
        {
            try
            {
                return JsonText.Serialize(value, v => Normalize(v, topLevel: topLevel && ReferenceEquals(v, value)));
            }
            catch (ArgumentException ex)
            {
                throw new WriteBehindException(ErrorIds.InvalidProfileJson, $"The {what} cannot be written as JSON: " + ex.Message);
            }
        }

        private static bool IsIdProperty(string name)
        {
            foreach (var n in IdPropertyNames)
                if (string.Equals(n, name, StringComparison.OrdinalIgnoreCase)) return true;
            return false;
        }

        private static object Normalize(object value, bool topLevel)
        {
            if (value is PSObject pso)
            {
                object baseObject = pso.BaseObject;
                if (!(baseObject is PSCustomObject)) return Normalize(baseObject, topLevel);
                var members = new List<KeyValuePair<string, object>>();
                foreach (var p in pso.Properties)
                {
                    if (topLevel && IsIdProperty(p.Name)) continue;
                    object v;
                    try { v = p.Value; } catch (GetValueException) { continue; }
                    members.Add(new KeyValuePair<string, object>(p.Name, v));
                }
                return members;
            }
            if (value == null || value is string || value is IDictionary || value is IEnumerable || value is DateTime || value is DateTimeOffset
                || value is Guid || value is Enum || value is Uri || value is TimeSpan || value.GetType().IsPrimitive || value is decimal)
            {
                if (topLevel && value is IDictionary dict) return WithoutIds(dict);
                return value;
            }
            // Any other object: its public properties, in declaration order.
            var wrapped = PSObject.AsPSObject(value);
            var list = new List<KeyValuePair<string, object>>();
            foreach (var p in wrapped.Properties)
            {
                if (topLevel && IsIdProperty(p.Name)) continue;
                object v;
                try { v = p.Value; } catch (GetValueException) { continue; }
                list.Add(new KeyValuePair<string, object>(p.Name, v));
            }
            return list;
        }

        private static object WithoutIds(IDictionary dict)
        {
            bool hasId = false;
            foreach (var k in dict.Keys) if (k is string s && IsIdProperty(s)) hasId = true;
            if (!hasId) return dict;
            var list = new List<KeyValuePair<string, object>>();
            foreach (DictionaryEntry e in dict)
            {
                string name = Convert.ToString(e.Key, CultureInfo.InvariantCulture);
                if (IsIdProperty(name)) continue;
                list.Add(new KeyValuePair<string, object>(name, e.Value));
            }
            return list;
        }

        /// <summary>The id of a piped object: its UserId or Id property, if any.</summary>
        public static string IdOf(object input)
        {
            if (!(input is PSObject pso)) return null;
            foreach (var n in IdPropertyNames)
            {
                var p = pso.Properties[n];
                if (p != null && p.Value != null) return Convert.ToString(p.Value, CultureInfo.InvariantCulture);
            }
            return null;
        }

        /// <summary>Reads JSON text (already valid) into PSObjects, arrays and scalars for display.</summary>
        public static object ToObject(string json)
        {
            if (json == null) return null;
            int i = 0;
            try
            {
                return ReadValue(json, ref i);
            }
            catch (Exception ex) when (ex is FormatException || ex is IndexOutOfRangeException || ex is ArgumentException)
            {
                return null; // a profile some raw writer stored as non-JSON: the Json property still shows it
            }
        }

        private static void SkipWs(string s, ref int i)
        {
            while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
        }

        private static object ReadValue(string s, ref int i)
        {
            SkipWs(s, ref i);
            char c = s[i];
            if (c == '{')
            {
                var obj = new PSObject();
                i++;
                SkipWs(s, ref i);
                if (s[i] == '}') { i++; return obj; }
                while (true)
                {
                    SkipWs(s, ref i);
                    string name = ReadString(s, ref i);
                    SkipWs(s, ref i);
                    i++; // ':'
                    object v = ReadValue(s, ref i);
                    if (obj.Properties[name] == null) obj.Properties.Add(new PSNoteProperty(name, v));
                    SkipWs(s, ref i);
                    if (s[i++] == '}') return obj;
                }
            }
            if (c == '[')
            {
                var list = new List<object>();
                i++;
                SkipWs(s, ref i);
                if (s[i] == ']') { i++; return list.ToArray(); }
                while (true)
                {
                    list.Add(ReadValue(s, ref i));
                    SkipWs(s, ref i);
                    if (s[i++] == ']') return list.ToArray();
                }
            }
            if (c == '"') return ReadString(s, ref i);
            if (string.CompareOrdinal(s, i, "true", 0, 4) == 0) { i += 4; return true; }
            if (string.CompareOrdinal(s, i, "false", 0, 5) == 0) { i += 5; return false; }
            if (string.CompareOrdinal(s, i, "null", 0, 4) == 0) { i += 4; return null; }
            int start = i;
            while (i < s.Length && "+-0123456789.eE".IndexOf(s[i]) >= 0) i++;
            string num = s.Substring(start, i - start);
            if (num.IndexOfAny(new[] { '.', 'e', 'E' }) < 0)
            {
                if (long.TryParse(num, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l)) return l;
                if (decimal.TryParse(num, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out decimal d)) return d;
            }
            return double.Parse(num, NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        private static string ReadString(string s, ref int i)
        {
            if (s[i] != '"') throw new FormatException("expected a string");
            i++;
            var sb = new StringBuilder();
            while (true)
            {
                char c = s[i++];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                char e = s[i++];
                switch (e)
                {
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u': sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture)); i += 4; break;
                    default: sb.Append(e); break;
                }
            }
        }
    }
}
