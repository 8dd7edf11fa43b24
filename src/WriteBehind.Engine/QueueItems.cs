using System;
using WriteBehind.Engine.Json;

namespace WriteBehind.Engine
{
    public enum QueueItemKind { Update, Set, Delete }

    /// <summary>A parsed queue item. The grammar (the Lua lease script applies the same rules):
    /// <c>update:user:&lt;id&gt;:&lt;json object&gt;</c> a deferred patch;
    /// <c>set:user:&lt;id&gt;[:&lt;version&gt;]</c> persist the cached profile (written by Set-UserProfile);
    /// <c>delete:user:&lt;id&gt;:&lt;version&gt;</c> persist the tombstone (written by Remove-UserProfile);
    /// <c>delete:user:&lt;id&gt;</c> a deferred delete from a raw producer.</summary>
    public readonly struct QueueItem
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

        public static string FormatUpdate(string userId, string jsonPatch) => "update:user:" + userId + ":" + jsonPatch;

        public static bool TryParse(string item, out QueueItem parsed, out string reason)
        {
            parsed = default;
            if (string.IsNullOrEmpty(item)) { reason = "empty item"; return false; }
            int c1 = item.IndexOf(':');
            string kindText = c1 < 0 ? item : item.Substring(0, c1);
            QueueItemKind kind;
            switch (kindText)
            {
                case "update": kind = QueueItemKind.Update; break;
                case "set": kind = QueueItemKind.Set; break;
                case "delete": kind = QueueItemKind.Delete; break;
                default:
                    reason = "unrecognised item: expected '<update|set|delete>:user:<id>...'";
                    return false;
            }
            if (string.CompareOrdinal(item, c1 + 1, "user:", 0, 5) != 0)
            {
                reason = "unrecognised item: expected '<update|set|delete>:user:<id>...'";
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
            else if (rest != null && !IsDigits(rest))
            {
                reason = kindText + " item: expected a version number after the id";
                return false;
            }
            parsed = new QueueItem(kind, id, rest);
            reason = null;
            return true;
        }

        /// <summary>The user id an item names when its head (<c>&lt;update|set|delete&gt;:user:&lt;id&gt;</c>) is well
        /// formed, whatever follows; else null. The partition an item is queued to, and that the lease script
        /// checks, depends on this id only.</summary>
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

        private static bool IsDigits(string s)
        {
            if (s.Length == 0) return false;
            foreach (char ch in s) if (ch < '0' || ch > '9') return false;
            return true;
        }
    }
}
