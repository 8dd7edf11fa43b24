using System.Linq;
using System.Reflection;
using System.Text.RegularExpressions;
using WriteBehind.Engine.Redis;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>The Lua files say what they are: each script's header names the helper files LuaScripts.cs
    /// prepends to it, and lists its KEYS and what it returns.</summary>
    public sealed class LuaScriptTests
    {
        private static LuaScript[] All() =>
            typeof(Scripts).GetProperties(BindingFlags.Public | BindingFlags.Static)
                .Where(p => p.PropertyType == typeof(LuaScript)).Select(p => (LuaScript)p.GetValue(null)).ToArray();

        [Fact]
        public void Each_script_header_names_the_helpers_prepended_to_it_and_its_keys_and_reply()
        {
            var scripts = All();
            Assert.True(scripts.Length >= 14, $"found {scripts.Length} scripts");
            foreach (var script in scripts)
            {
                string own = LuaScript.ReadResource(script.Name);
                string header = string.Join("\n", own.Split('\n').TakeWhile(l => l.StartsWith("--", System.StringComparison.Ordinal)));
                var m = Regex.Match(header, @"^-- Prepended \(LuaScripts\.cs\): (nothing|[a-z_]+\.lua(?:, [a-z_]+\.lua)*)", RegexOptions.Multiline);
                Assert.True(m.Success, $"{script.Name}.lua: no 'Prepended (LuaScripts.cs):' line in its header");
                string[] named = m.Groups[1].Value.Trim() == "nothing"
                    ? new string[0]
                    : m.Groups[1].Value.Split(',').Select(x => x.Trim()).Select(x => x.EndsWith(".lua", System.StringComparison.Ordinal) ? x.Substring(0, x.Length - 4) : x).ToArray();
                Assert.True(script.Helpers.SequenceEqual(named), $"{script.Name}.lua names [{string.Join(", ", named)}], LuaScripts.cs prepends [{string.Join(", ", script.Helpers)}]");
                Assert.Contains("KEYS[1]", header);
                Assert.Contains("Returns", header);
            }
        }
    }
}
