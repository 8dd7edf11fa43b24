using System;
using System.Runtime.CompilerServices;
using WriteBehind.Engine.Json;

namespace WriteBehind.Engine
{
    internal enum QueueItemKind { Update, Set, Delete }

    /// <summary>A parsed queue item. The grammar (the Lua lease script applies the same rules):
    /// <c>update:user:&lt;id&gt;:&lt;json object&gt;</c> a deferred patch;
    /// <c>set:user:&lt;id&gt;[:&lt;version&gt;]</c> persist the cached profile (written by Set-UserProfile; without a
    /// version by consistency repair and dead-letter restore);
    /// <c>delete:user:&lt;id&gt;:&lt;version&gt;</c> persist the tombstone (written by Remove-UserProfile);
    /// <c>delete:user:&lt;id&gt;</c> a deferred delete from a raw producer.
    /// A version is 1 to 2^53 - 1 in decimal digits, without sign or leading zero.</summary>
    internal readonly struct QueueItem
    {
        public QueueItem(QueueItemKind kind, string userId, string rest)
        {
            Kind = kind;
            UserId = userId;
            Rest = rest;
        }

        public QueueItemKind Kind { get; }
        public string UserId { get; }
        /// <summary>The JSON patch of an update; the version digits of a set/delete, or null.</summary>
        public string Rest { get; }

        [MethodImpl(HotPath.Optimize)]
        public static string FormatUpdate(string userId, string jsonPatch) => "update:user:" + userId + ":" + jsonPatch;

        /// <summary>The largest version an item may carry: 2^53 - 1, the largest integer Redis's Lua (whose
        /// numbers are doubles) counts exactly.</summary>
        public const long MaxVersion = 9007199254740991;

        private const string Unrecognised = "unrecognised item: expected '<update|set|delete>:user:<id>...'";

        /// <summary>Parses an item's bytes as Redis holds them: what the lease script sees. Bytes that are not
        /// well-formed UTF-8 are poison, as there.</summary>
        public static bool TryParseUtf8(byte[] item, out QueueItem parsed, out string reason)
        {
            parsed = default;
            if (item == null || item.Length == 0) { reason = "empty item"; return false; }
            if (Array.IndexOf(item, (byte)0) >= 0) { reason = "item contains a NUL byte"; return false; }
            string text;
            try { text = StrictUtf8.GetString(item); }
            catch (System.Text.DecoderFallbackException) { reason = "item is not valid UTF-8"; return false; }
            return TryParse(text, out parsed, out reason);
        }

        private static readonly System.Text.UTF8Encoding StrictUtf8 = new System.Text.UTF8Encoding(false, true);

        /// <summary>Parses an item. The rules, their order and the reasons are the lease script's
        /// (parse_item in prelude.lua, then its JSON check of an update's patch), so the cmdlets refuse
        /// exactly what the flush would dead-letter; a shared table of cases holds both to it.</summary>
        [MethodImpl(HotPath.Optimize)]
        public static bool TryParse(string item, out QueueItem parsed, out string reason)
        {
            parsed = default;
            if (string.IsNullOrEmpty(item)) { reason = "empty item"; return false; }
            if (item.IndexOf('\0') >= 0) { reason = "item contains a NUL byte"; return false; }
            // a lone surrogate has no UTF-8 form: the bytes Redis would get are not the text given
            if (HasLoneSurrogate(item)) { reason = "item is not valid UTF-8"; return false; }
            int c1 = 0;
            while (c1 < item.Length && item[c1] >= 'a' && item[c1] <= 'z') c1++;
            if (c1 == 0 || string.CompareOrdinal(item, c1, ":user:", 0, 6) != 0) { reason = Unrecognised; return false; }
            string kindText = item.Substring(0, c1);
            QueueItemKind kind;
            switch (kindText)
            {
                case "update": kind = QueueItemKind.Update; break;
                case "set": kind = QueueItemKind.Set; break;
                case "delete": kind = QueueItemKind.Delete; break;
                default:
                    reason = "unknown operation '" + (kindText.Length <= 20 ? kindText : kindText.Substring(0, 20)) + "'";
                    return false;
            }
            int idStart = c1 + 6;
            int c2 = item.IndexOf(':', idStart);
            string id = c2 < 0 ? item.Substring(idStart) : item.Substring(idStart, c2 - idStart);
            string rest = c2 < 0 ? null : item.Substring(c2 + 1);
            if (id.Length == 0) { reason = "missing user id"; return false; }
            if (!UserIds.IsValid(id)) { reason = "invalid user id: 1-128 characters of [A-Za-z0-9_.@-] expected"; return false; }
            if (kind == QueueItemKind.Update)
            {
                if (rest == null) { reason = "update item has no JSON patch"; return false; }
                if (!JsonText.TryValidateObject(rest, out string jsonReason)) { reason = "invalid JSON patch: " + jsonReason; return false; }
            }
            else if (rest != null && !IsVersion(rest))
            {
                reason = kindText + " item: expected a version after the id (1 to " + MaxVersion.ToString(System.Globalization.CultureInfo.InvariantCulture)
                         + ", digits without sign or leading zero)";
                return false;
            }
            parsed = new QueueItem(kind, id, rest);
            reason = null;
            return true;
        }

        /// <summary>The user id an item names when its head (<c>&lt;update|set|delete&gt;:user:&lt;id&gt;</c>) is well
        /// formed, whatever follows; else null. The partition an item is queued to, and that the lease script
        /// checks, depends on this id only.</summary>
        [MethodImpl(HotPath.Optimize)]
        public static string RoutingUserIdOf(string item)
        {
            if (string.IsNullOrEmpty(item)) return null;
            int c1 = item.IndexOf(':');
            if (c1 < 0) return null;
            string kind = item.Substring(0, c1);
            if (kind != "update" && kind != "set" && kind != "delete") return null;
            if (string.CompareOrdinal(item, c1 + 1, "user:", 0, 5) != 0) return null;
            int idStart = c1 + 6;
            int c2 = item.IndexOf(':', idStart);
            string id = c2 < 0 ? item.Substring(idStart) : item.Substring(idStart, c2 - idStart);
            return UserIds.IsValid(id) ? id : null;
        }

        /// <summary>A version as items write it: decimal digits without sign or leading zero, 1 to <see cref="MaxVersion"/>.</summary>
        public static bool IsVersion(string s)
        {
            if (string.IsNullOrEmpty(s) || s.Length > 16 || s[0] == '0') return false;
            foreach (char ch in s) if (ch < '0' || ch > '9') return false;
            return long.Parse(s, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture) <= MaxVersion;
        }

        [MethodImpl(HotPath.Optimize)]
        private static bool HasLoneSurrogate(string s)
        {
            for (int i = 0; i < s.Length; i++)
            {
                char c = s[i];
                if (c < 0xD800 || c > 0xDFFF) continue;
                if (c <= 0xDBFF && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
                return true;
            }
            return false;
        }
    }
}
