// Reads lease.lua's reply: the batch's counts, then the latest state of every profile it touched, packed.
using System;
using System.Collections.Generic;
using System.Text;
using StackExchange.Redis;
using WriteBehind.Engine.Store;

namespace WriteBehind.Engine
{
    /// <summary>lease.lua returns <c>{ dequeued, dead-lettered, leased, superseded, resumed, states... }</c>
    /// (its <c>reply</c> function): five counts, then one or more strings that hold the touched profiles'
    /// states packed as redo.lua packs them, each token <c>&lt;byte length&gt;:&lt;bytes&gt;</c>, three
    /// tokens a profile (redo.lua's <c>STATE_TOKENS</c>): the field <c>user:&lt;id&gt;</c>, the version in
    /// decimal (followed by <c>d</c> for a deleted profile), the JSON (empty for a deleted profile). A profile's tokens never span two strings (each is
    /// cut at about 32 KB, so a large batch makes no large object here).</summary>
    internal static class LeaseReply
    {
        public const int Dequeued = 0;
        public const int DeadLettered = 1;
        public const int Leased = 2;
        public const int Superseded = 3;
        public const int Resumed = 4;
        /// <summary>The counts before the packed states (lease.lua's <c>reply</c> takes them first).</summary>
        public const int Counts = 5;
        /// <summary>Tokens per profile state (redo.lua's <c>STATE_TOKENS</c>).</summary>
        public const int TokensPerState = 3;

        private const string FieldPrefix = "user:";
        private static readonly Encoding Utf8 = new UTF8Encoding(false, false);

        /// <summary>The profile states of a reply, in the order the script returned them.</summary>
        public static List<ProfileRow> States(RedisResult[] reply)
        {
            if (reply == null || reply.Length < Counts) throw Malformed("a reply of " + (reply?.Length ?? 0) + " elements");
            var rows = new List<ProfileRow>();
            for (int i = Counts; i < reply.Length; i++) ReadStates((byte[])reply[i], rows);
            return rows;
        }

        /// <summary>Appends the states packed in one string to <paramref name="rows"/>.</summary>
        public static void ReadStates(byte[] packed, List<ProfileRow> rows)
        {
            if (packed == null) return;
            int at = 0;
            while (at < packed.Length)
            {
                int fieldStart = Token(packed, ref at, out int fieldLength);
                int versionStart = Token(packed, ref at, out int versionLength);
                int jsonStart = Token(packed, ref at, out int jsonLength);
                if (fieldLength <= FieldPrefix.Length || !StartsWithFieldPrefix(packed, fieldStart)) throw Malformed("a state whose field is not 'user:<id>'");
                string userId = Utf8.GetString(packed, fieldStart + FieldPrefix.Length, fieldLength - FieldPrefix.Length);
                bool deleted = versionLength > 0 && packed[versionStart + versionLength - 1] == (byte)'d';
                long version = Digits(packed, versionStart, deleted ? versionLength - 1 : versionLength);
                string json = deleted ? null : Utf8.GetString(packed, jsonStart, jsonLength);
                rows.Add(new ProfileRow(userId, json, version));
            }
        }

        /// <summary>Reads <c>&lt;length&gt;:</c> at <paramref name="at"/>; returns where the token's bytes
        /// start and moves <paramref name="at"/> past them.</summary>
        private static int Token(byte[] packed, ref int at, out int length)
        {
            int n = 0, i = at;
            while (i < packed.Length && packed[i] != (byte)':')
            {
                int d = packed[i] - '0';
                if (d < 0 || d > 9 || n > (int.MaxValue - 9) / 10) throw Malformed("a token length that is not a number");
                n = n * 10 + d;
                i++;
            }
            if (i == at || i >= packed.Length || i + 1 + n > packed.Length) throw Malformed("a token cut short");
            length = n;
            at = i + 1 + n;
            return i + 1;
        }

        private static bool StartsWithFieldPrefix(byte[] packed, int start)
        {
            for (int k = 0; k < FieldPrefix.Length; k++)
                if (packed[start + k] != FieldPrefix[k]) return false;
            return true;
        }

        private static long Digits(byte[] packed, int start, int length)
        {
            if (length == 0 || length > 18) throw Malformed("a version that is not a number");
            long v = 0;
            for (int k = start; k < start + length; k++)
            {
                int d = packed[k] - '0';
                if (d < 0 || d > 9) throw Malformed("a version that is not a number");
                v = v * 10 + d;
            }
            return v;
        }

        private static WriteBehindException Malformed(string what) =>
            new WriteBehindException(ErrorIds.RedisCommandFailed, "The lease script returned " + what + "; is the server running another version of the module's scripts?");
    }
}
