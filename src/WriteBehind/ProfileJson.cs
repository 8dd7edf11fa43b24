using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
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
        [MethodImpl(HotPath.Optimize)]
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
        [MethodImpl(HotPath.Optimize)]
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

        private static readonly JsonDocumentOptions DocumentOptions = new JsonDocumentOptions { MaxDepth = 256 };

        /// <summary>Reads JSON text into PSObjects (members in order; of names that differ only in case, the first),
        /// arrays and scalars for display. A number is a long when it is an integer that fits one, else a decimal when
        /// it is an integer that fits one (12345678901234567890), else a double (1.0, 1e3). Text that is no JSON (a raw
        /// writer's) gives null: the Json property still shows it.</summary>
        public static object ToObject(string json)
        {
            if (json == null) return null;
            try
            {
                using (JsonDocument document = JsonDocument.Parse(json, DocumentOptions))
                {
                    return ToObject(document.RootElement);
                }
            }
            catch (Exception ex) when (ex is JsonException || ex is ArgumentException)
            {
                return null;
            }
        }

        private static object ToObject(JsonElement element)
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.Object:
                    var obj = new PSObject();
                    foreach (JsonProperty property in element.EnumerateObject())
                    {
                        string name = NameOf(property);
                        if (obj.Properties[name] == null) obj.Properties.Add(new PSNoteProperty(name, ToObject(property.Value)));
                    }
                    return obj;
                case JsonValueKind.Array:
                    var list = new List<object>(element.GetArrayLength());
                    foreach (JsonElement item in element.EnumerateArray()) list.Add(ToObject(item));
                    return list.ToArray();
                case JsonValueKind.String:
                    try { return element.GetString(); }
                    catch (InvalidOperationException) { return DecodeLiteral(element.GetRawText()); } // an escaped lone surrogate
                case JsonValueKind.Number:
                    return Number(element.GetRawText());
                case JsonValueKind.True:
                    return true;
                case JsonValueKind.False:
                    return false;
                default:
                    return null;
            }
        }

        private static string NameOf(JsonProperty property)
        {
            try { return property.Name; }
            catch (InvalidOperationException) { return DecodeLiteral(property.ToString()); } // "name": value, raw
        }

        private static object Number(string text)
        {
            if (text.IndexOfAny(FractionOrExponent) < 0)
            {
                if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l)) return l;
                if (decimal.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out decimal d)) return d;
            }
            return double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        private static readonly char[] FractionOrExponent = { '.', 'e', 'E' };

        // The first JSON string literal of raw (valid) JSON text, decoded to UTF-16 as it is, lone surrogates included
        // (which System.Text.Json will not decode).
        private static string DecodeLiteral(string raw)
        {
            var sb = new StringBuilder(raw.Length);
            for (int i = raw.IndexOf('"') + 1; i < raw.Length; i++)
            {
                char c = raw[i];
                if (c == '"') break;
                if (c != '\\') { sb.Append(c); continue; }
                char e = raw[++i];
                switch (e)
                {
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u': sb.Append((char)int.Parse(raw.Substring(i + 1, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture)); i += 4; break;
                    default: sb.Append(e); break;
                }
            }
            return sb.ToString();
        }
    }
}
