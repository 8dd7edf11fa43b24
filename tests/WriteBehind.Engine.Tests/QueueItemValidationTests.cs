using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using StackExchange.Redis;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>One definition of valid: every case of ValidationCases.txt goes through the C# validator
    /// (QueueItem.TryParse over the item's bytes) and through the lease script's (parse_item, then the JSON
    /// check of an update's patch, as lease.lua does them) on the real server, Redis or Garnet; both must
    /// give the case's verdict and the same reason, word for word.</summary>
    [Collection(RedisCollection.Name)]
    public sealed class QueueItemValidationTests
    {
        private readonly RedisFixture _fixture;

        public QueueItemValidationTests(RedisFixture fixture) => _fixture = fixture;

        // An update parse_item took in one match (SIMPLE_UPDATE: it returns the member's name) must be one
        // parse_object agrees with, member offsets included (lease.lua then uses simple_patch instead), and
        // compact (a merge into '{}' is the patch's own text).
        private const string LuaCheck = @"
local kind, id, rest, field, name = parse_item(ARGV[1])
if not kind then return { 'poison', id } end
if kind == 'update' then
  local qm, err, _, open = parse_object(rest)
  if not qm then return { 'poison', 'invalid JSON patch: ' .. err } end
  if name then
    local sn, sat, _, sopen = simple_patch(rest, name, {})
    if sn ~= qm or sopen ~= open or not compact(rest, qm, err, open) then return { 'ok', 'but the one-match path differs' } end
    for i = 1, 5 do
      if sat[i] ~= err[i] then return { 'ok', 'but the one-match path differs at offset ' .. i } end
    end
  end
end
return { 'ok', kind }";

        public static IEnumerable<object[]> Cases()
        {
            string path = Path.Combine(AppContext.BaseDirectory, "ValidationCases.txt");
            int line = 0;
            foreach (string text in File.ReadAllLines(path))
            {
                line++;
                if (text.Length == 0 || text[0] == '#') continue;
                string[] parts = text.Split('\t');
                if (parts.Length != 3) throw new InvalidDataException($"ValidationCases.txt line {line}: expected verdict, item and reason separated by tabs");
                yield return new object[] { line, parts[0], parts[1], parts[2] };
            }
        }

        [Theory]
        [MemberData(nameof(Cases))]
        public async Task CSharpAndLuaGiveTheSameVerdictAndReason(int line, string verdict, string item, string reason)
        {
            Assert.True(verdict == "ok" || verdict == "poison", $"line {line}: verdict '{verdict}'");
            byte[] bytes = Decode(item);
            string expectedReason = verdict == "ok" ? null : System.Text.Encoding.UTF8.GetString(Decode(reason));

            bool ok = QueueItem.TryParseUtf8(bytes, out var parsed, out string csReason);
            var lua = (RedisResult[])await _fixture.Db.ScriptEvaluateAsync(Script, null, new RedisValue[] { bytes });
            string luaVerdict = (string)lua[0];
            string luaDetail = (string)lua[1];

            string cs = ok ? "ok " + parsed.Kind.ToString().ToLowerInvariant() : "poison " + csReason;
            Assert.True(cs == luaVerdict + " " + luaDetail, $"line {line}: C# says '{cs}', Lua '{luaVerdict} {luaDetail}'");
            Assert.Equal(verdict, luaVerdict);
            if (!ok) Assert.Equal(expectedReason, csReason);
        }

        [Fact]
        public async Task CSharpAndLuaAgreeOnEveryPrefixAndOneCharacterEditOfAPatch()
        {
            // The C# validator reads with System.Text.Json and words a rejection from where the reader stopped; the
            // Lua validator is hand-written. Every prefix of a patch, and every one-character replacement, deletion and
            // insertion, gets the same verdict and reason from both.
            const string patch = "{\"a\":[1,-2.5e+3,{\"b\":null}],\"c\":\"x\\u00e9\\n\",\"d\":{\"e\":true,\"f\":false},\"g\":\"\u00e9\ud83d\ude00\",\"h\":0}";
            var variants = new HashSet<string>(StringComparer.Ordinal);
            const string edits = "{}[],:\"\\ x0-.e/'";
            for (int i = 0; i <= patch.Length; i++)
            {
                if (i < patch.Length && char.IsLowSurrogate(patch[i])) continue; // keep pairs whole
                variants.Add(patch.Substring(0, i));
                int next = i < patch.Length && char.IsHighSurrogate(patch[i]) ? 2 : 1;
                if (i < patch.Length) variants.Add(patch.Remove(i, next));
                foreach (char e in edits)
                {
                    variants.Add(patch.Insert(i, e.ToString()));
                    if (i < patch.Length) variants.Add(patch.Remove(i, next).Insert(i, e.ToString()));
                }
            }
            var disagreements = new List<string>();
            foreach (string v in variants)
            {
                string item = "update:user:1:" + v;
                bool ok = QueueItem.TryParse(item, out var parsed, out string csReason);
                var lua = (RedisResult[])await _fixture.Db.ScriptEvaluateAsync(Script, null, new RedisValue[] { item });
                string cs = ok ? "ok " + parsed.Kind.ToString().ToLowerInvariant() : "poison " + csReason;
                string luaText = (string)lua[0] + " " + (string)lua[1];
                if (cs != luaText) disagreements.Add($"{v}\n  C#:  {cs}\n  Lua: {luaText}");
                Assert.DoesNotContain("invalid JSON at offset", cs); // every rejection is worded, none falls back
            }
            Assert.True(disagreements.Count == 0, disagreements.Count + " of " + variants.Count + " disagree:\n" + string.Join("\n", disagreements.Take(10)));
        }

        [Fact]
        public void TheTextParserAgreesWithTheByteParserOnEveryCaseThatIsText()
        {
            // Add-WriteQueueItem checks .NET strings: for every case whose bytes are UTF-8, the verdict and the
            // reason are the same as for the bytes.
            var strict = new System.Text.UTF8Encoding(false, true);
            foreach (var c in Cases())
            {
                byte[] bytes = Decode((string)c[2]);
                string text;
                try { text = strict.GetString(bytes); } catch (System.Text.DecoderFallbackException) { continue; }
                bool a = QueueItem.TryParseUtf8(bytes, out _, out string ra);
                bool b = QueueItem.TryParse(text, out _, out string rb);
                Assert.True(a == b && ra == rb, $"line {c[0]}: bytes {a} '{ra}', text {b} '{rb}'");
            }
            Assert.False(QueueItem.TryParse("update:user:1:{\"a\":\"\ud800\"}", out _, out string lone));
            Assert.Equal("item is not valid UTF-8", lone);
        }

        private static string Script => s_script ??= ReadLua("common") + "\n" + ReadLua("prelude") + "\n" + LuaCheck;
        private static string s_script;

        private static string ReadLua(string name)
        {
            using var stream = typeof(KeyLayout).Assembly.GetManifestResourceStream("WriteBehind.Engine.Lua." + name + ".lua");
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }

        /// <summary>The case file's text with each \xHH turned into the byte HH; every other character is its UTF-8.</summary>
        private static byte[] Decode(string s)
        {
            var bytes = new List<byte>();
            for (int i = 0; i < s.Length; i++)
            {
                if (s[i] == '\\' && i + 3 < s.Length && s[i + 1] == 'x' && IsHex(s[i + 2]) && IsHex(s[i + 3]))
                {
                    bytes.Add(Convert.ToByte(s.Substring(i + 2, 2), 16));
                    i += 3;
                    continue;
                }
                int len = char.IsHighSurrogate(s[i]) && i + 1 < s.Length ? 2 : 1;
                bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(s.Substring(i, len)));
                i += len - 1;
            }
            return bytes.ToArray();
        }

        private static bool IsHex(char c) => Uri.IsHexDigit(c);
    }
}
