using System;
using System.Runtime.CompilerServices;

namespace WriteBehind.Engine
{
    /// <summary>The id grammar: 1–128 characters of [A-Za-z0-9_.@-], so an item parses one way only.</summary>
    public static class UserIds
    {
        /// <summary>The longest id allowed, in characters.</summary>
        public const int MaxLength = 128;

        /// <summary>Whether <paramref name="id"/> fits the grammar.</summary>
        [MethodImpl(HotPath.Optimize)]
        public static bool IsValid(string id)
        {
            if (string.IsNullOrEmpty(id) || id.Length > MaxLength) return false;
            foreach (char c in id)
            {
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                          || c == '_' || c == '.' || c == '@' || c == '-';
                if (!ok) return false;
            }
            return true;
        }

        /// <summary>Throws a <see cref="WriteBehindException"/> (InvalidUserId) when <paramref name="id"/> does not fit the grammar.</summary>
        [MethodImpl(HotPath.Optimize)]
        public static void Validate(string id)
        {
            if (!IsValid(id))
                throw new WriteBehindException(ErrorIds.InvalidUserId,
                    $"Invalid user id '{Shorten(id)}': expected 1-{MaxLength} characters of A-Z a-z 0-9 _ . @ - (no ':' and no whitespace).");
        }

        internal static string Shorten(string s)
        {
            if (s == null) return "<null>";
            return s.Length <= 40 ? s : s.Substring(0, 40) + "…";
        }
    }
}
