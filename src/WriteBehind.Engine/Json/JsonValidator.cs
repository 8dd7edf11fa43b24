using System;
using System.Buffers;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace WriteBehind.Engine.Json
{
    /// <summary>Strict validation of a JSON object text: System.Text.Json's <see cref="Utf8JsonReader"/> reads a pooled
    /// UTF-8 copy of it (the text itself is never changed), and this class checks what the reader leaves to its caller:
    /// the top-level value is an object, member names are unique in every object (compared decoded), nesting is at most
    /// 64, and the .NET string holds no lone surrogate. Why a document is rejected is worded by the partial file
    /// JsonValidator.Reasons.cs, as the lease script's validator (prelude.lua) words it.</summary>
    internal sealed partial class JsonValidator
    {
        /// <summary>Maximum nesting depth (objects + arrays; the top-level object counts as 1).</summary>
        internal const int MaxDepth = 64;

        /// <summary>Objects with at most this many members are checked for duplicate names linearly; larger ones use a
        /// reused hash table over the names (no per-call allocation either way).</summary>
        internal const int MaxLinearNames = 8;

        /// <summary>At most this many characters of a member name are quoted in a reason.</summary>
        internal const int MaxQuotedNameChars = 32;

        // Buffers that grew past this are dropped after the call instead of being kept in the thread's cache.
        private const int RetainedLimit = 1 << 14;

        private static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        // The reader's defaults are strict (no comments, no trailing commas); its own depth limit is set one past ours
        // so that the depth check below, with its own reason, comes first.
        private static readonly JsonReaderOptions ReaderOptions = new JsonReaderOptions { MaxDepth = MaxDepth + 1 };

        [ThreadStatic] private static JsonValidator t_cached;

        private string _text;
        private readonly byte[] _buffer = new byte[RetainedLimit];
        private byte[] _utf8;
        private int _length;
        // The first lone surrogate of the .NET string (a char index), or -1.
        private int _loneSurrogate;

        // The names of the open objects, each as its decoded UTF-8 bytes: unescaped names are slices of _utf8,
        // escaped ones are decoded into _arena.
        private NameRef[] _names = new NameRef[32];
        private int _nameCount;
        private byte[] _arena = new byte[256];
        private int _arenaLength;
        private bool _trimOnReturn;

        // The open containers, by depth (the top-level object is 1).
        private readonly Frame[] _frames = new Frame[MaxDepth + 2];
        private readonly NameTable[] _tables = new NameTable[MaxDepth + 2];

        private struct NameRef
        {
            public int Start;
            public int Length;
            public bool InArena;
        }

        private struct Frame
        {
            public bool IsArray;
            public int NameBase;   // index of the object's first name in _names
            public int ArenaBase;  // _arenaLength when the object opened
            public bool Hashed;    // the object's names are in _tables[depth]
        }

        /// <summary>Validates <paramref name="json"/>; on success adds each top-level member's decoded name and raw value
        /// text (an exact substring of the input) to <paramref name="members"/> when it is not null.</summary>
        [MethodImpl(HotPath.Optimize)]
        public static bool Validate(string json, List<KeyValuePair<string, string>> members, out string reason)
        {
            if (json == null)
            {
                reason = "input is null";
                return false;
            }
            if (!TopLevelIsObject(json, out reason)) return false;
            // One validator per thread (nothing it calls can re-enter it), so that a valid document costs no allocation.
            JsonValidator validator = t_cached ?? (t_cached = new JsonValidator());
            try
            {
                return validator.Run(json, members, out reason);
            }
            finally
            {
                validator.Reset();
            }
        }

        [MethodImpl(HotPath.Optimize)]
        private void Reset()
        {
            _text = null;
            _nameCount = 0;
            _arenaLength = 0;
            if (_trimOnReturn)
            {
                _trimOnReturn = false;
                if (_names.Length > RetainedLimit) _names = new NameRef[32];
                if (_arena.Length > RetainedLimit) _arena = new byte[256];
                for (int i = 0; i < _tables.Length; i++)
                {
                    if (_tables[i] != null && _tables[i].Slots.Length > RetainedLimit) _tables[i] = null;
                }
            }
        }

        [MethodImpl(HotPath.Optimize)]
        private bool Run(string json, List<KeyValuePair<string, string>> members, out string reason)
        {
            _text = json;
            // Every char is at most 3 bytes of UTF-8 (a surrogate pair is 4 for 2 chars, a lone surrogate 3 below).
            // The thread's own buffer serves documents up to RetainedLimit bytes; larger ones rent from the shared pool.
            int max = json.Length <= 1 << 20 ? json.Length * 3 : Encoding.UTF8.GetByteCount(json);
            bool rented = max > _buffer.Length;
            _utf8 = rented ? ArrayPool<byte>.Shared.Rent(max) : _buffer;
            try
            {
                try
                {
                    _length = StrictUtf8.GetBytes(json, 0, json.Length, _utf8, 0);
                    _loneSurrogate = -1;
                }
                catch (EncoderFallbackException)
                {
                    // A lone surrogate: it is kept in the copy (as the 3 bytes of its code point) so that offsets
                    // and the characters quoted in a reason stay those of the .NET string.
                    _loneSurrogate = FirstLoneSurrogate(json);
                    _length = EncodeKeepingLoneSurrogates(json, _utf8);
                }
                return Read(members, out reason);
            }
            finally
            {
                if (rented) ArrayPool<byte>.Shared.Return(_utf8);
                _utf8 = null;
            }
        }

        [MethodImpl(HotPath.Optimize)]
        private bool Read(List<KeyValuePair<string, string>> members, out string reason)
        {
            var reader = new Utf8JsonReader(new ReadOnlySpan<byte>(_utf8, 0, _length), ReaderOptions);
            int depth = 0;
            int stepStart = 0;
            JsonTokenType last = JsonTokenType.None;
            string memberName = null;
            int valueStart = 0;
            try
            {
                while (true)
                {
                    stepStart = (int)reader.BytesConsumed;
                    if (!reader.Read()) break;
                    JsonTokenType token = reader.TokenType;
                    int tokenStart = (int)reader.TokenStartIndex;
                    switch (token)
                    {
                        case JsonTokenType.StartObject:
                        case JsonTokenType.StartArray:
                            if (depth == MaxDepth) return Fail(tokenStart + 1, DepthReason(tokenStart), out reason);
                            depth++;
                            _frames[depth] = new Frame
                            {
                                IsArray = token == JsonTokenType.StartArray,
                                NameBase = _nameCount,
                                ArenaBase = _arenaLength,
                            };
                            if (depth == 2) valueStart = tokenStart; // a top-level member's value
                            break;
                        case JsonTokenType.EndObject:
                        case JsonTokenType.EndArray:
                            _nameCount = _frames[depth].NameBase;
                            _arenaLength = _frames[depth].ArenaBase;
                            depth--;
                            if (depth == 1 && members != null) AddMember(members, memberName, valueStart, (int)reader.BytesConsumed);
                            break;
                        case JsonTokenType.PropertyName:
                            int rawLength = reader.ValueSpan.Length;
                            bool escaped = reader.ValueIsEscaped;
                            if (!AddName(tokenStart + 1, rawLength, escaped, depth))
                                return Fail((int)reader.BytesConsumed, DuplicateReason(tokenStart, rawLength, escaped), out reason);
                            if (depth == 1 && members != null) memberName = DecodeName(tokenStart + 1, rawLength, escaped);
                            break;
                        default:
                            if (depth == 1 && members != null) AddMember(members, memberName, tokenStart, (int)reader.BytesConsumed);
                            break;
                    }
                    last = token;
                }
            }
            catch (JsonException)
            {
                // The reader rejected the step that starts at stepStart: everything before it is valid.
                if (_loneSurrogate >= 0 && _loneSurrogate < CharOffset(stepStart))
                {
                    reason = LoneSurrogateReason();
                    return false;
                }
                reason = DescribeFault(stepStart, last, depth) ?? "invalid JSON at offset " + Num(CharOffset(stepStart));
                return false;
            }
            if (_loneSurrogate >= 0)
            {
                reason = LoneSurrogateReason();
                return false;
            }
            reason = null;
            return true;
        }

        private void AddMember(List<KeyValuePair<string, string>> members, string name, int start, int end) =>
            members.Add(new KeyValuePair<string, string>(name, Encoding.UTF8.GetString(_utf8, start, end - start)));

        // A failure found once the bytes up to end were read: a lone surrogate before end came first.
        private bool Fail(int end, string failure, out string reason)
        {
            reason = _loneSurrogate >= 0 && _loneSurrogate < CharOffset(end) ? LoneSurrogateReason() : failure;
            return false;
        }

        private string LoneSurrogateReason() => "invalid UTF-16 (lone surrogate) at offset " + Num(_loneSurrogate);

        private string DepthReason(int at) => "nesting deeper than " + Num(MaxDepth) + " at offset " + Num(CharOffset(at));

        // Adds a member name (its raw text between the quotes) to the names of the object open at depth; false when
        // the object already has it.
        [MethodImpl(HotPath.Optimize)]
        private bool AddName(int start, int rawLength, bool escaped, int depth)
        {
            var name = new NameRef { Start = start, Length = rawLength };
            if (escaped)
            {
                name.Start = _arenaLength;
                name.Length = DecodeIntoArena(start, rawLength);
                name.InArena = true;
            }

            ref Frame frame = ref _frames[depth];
            int count = _nameCount - frame.NameBase;
            if (!frame.Hashed && count < MaxLinearNames)
            {
                ReadOnlySpan<byte> bytes = Bytes(name);
                for (int i = frame.NameBase; i < _nameCount; i++)
                {
                    if (_names[i].Length == name.Length && bytes.SequenceEqual(Bytes(_names[i]))) return false;
                }
                Push(name);
                return true;
            }
            NameTable table = _tables[depth] ?? (_tables[depth] = new NameTable());
            if (!frame.Hashed)
            {
                frame.Hashed = true;
                table.Begin();
                for (int i = frame.NameBase; i < _nameCount; i++) TableAdd(table, i); // already known distinct
            }
            Push(name);
            return TableAdd(table, _nameCount - 1);
        }

        [MethodImpl(HotPath.Optimize)]
        private void Push(NameRef name)
        {
            if (_nameCount == _names.Length)
            {
                Array.Resize(ref _names, _names.Length * 2);
                if (_names.Length > RetainedLimit) _trimOnReturn = true;
            }
            _names[_nameCount++] = name;
        }

        [MethodImpl(HotPath.Optimize)]
        private ReadOnlySpan<byte> Bytes(NameRef name) =>
            new ReadOnlySpan<byte>(name.InArena ? _arena : _utf8, name.Start, name.Length);

        // Adds name entry index to the table; false when an equal name is already there.
        private bool TableAdd(NameTable table, int index)
        {
            ReadOnlySpan<byte> bytes = Bytes(_names[index]);
            int hash = Hash(bytes);
            NameTable.Slot[] slots = table.Slots;
            int gen = table.Gen;
            int mask = slots.Length - 1;
            int i = hash & mask;
            while (slots[i].Gen == gen)
            {
                if (slots[i].Hash == hash && bytes.SequenceEqual(Bytes(_names[slots[i].Index]))) return false;
                i = (i + 1) & mask;
            }
            slots[i].Gen = gen;
            slots[i].Index = index;
            slots[i].Hash = hash;
            table.Count++;
            if (table.Count * 2 > slots.Length)
            {
                table.Grow();
                if (table.Slots.Length > RetainedLimit) _trimOnReturn = true;
            }
            return true;
        }

        private static readonly uint HashSeed = (uint)Guid.NewGuid().GetHashCode() | 1u;

        // Seeded FNV-1a over the name's bytes, with a final avalanche for linear probing.
        private static int Hash(ReadOnlySpan<byte> bytes)
        {
            uint h = HashSeed;
            for (int i = 0; i < bytes.Length; i++) h = (h ^ bytes[i]) * 16777619u;
            h ^= h >> 15;
            h *= 0x2c1b3c6du;
            h ^= h >> 12;
            return (int)(h & 0x7FFFFFFF);
        }

        /// <summary>Open-addressing set of name indexes for one open object. Slots are valid only when their generation
        /// equals <see cref="Gen"/>, so starting a new object is O(1) whatever the table size.</summary>
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
    }
}
