using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.Specialized;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading;
using WriteBehind.Engine.Json;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    public class JsonTextTests
    {
        // ------------------------------------------------------------------ valid documents

        [Theory]
        [InlineData("{\"name\":\"Alice\",\"age\":\"30\"}")]
        [InlineData("{}")]
        [InlineData("{ }")]
        [InlineData("{\"a\":{}}")]
        [InlineData("{\"a\":[]}")]
        [InlineData("{\"a\":{\"b\":{\"c\":[1,[2,[3,{\"d\":null}]]]}}}")]
        [InlineData("{\"list\":[true,false,null,\"x\",1,{\"k\":\"v\"},[]]}")]
        [InlineData("{\"city\":\"Zürich\",\"greet\":\"こんにちは\",\"emoji\":\"😀\"}")]
        [InlineData("{\"esc\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00 \\u0000\"}")]
        [InlineData("{\"lone\":\"\\ud800\",\"low\":\"\\uDC00x\"}")]
        [InlineData("{\"big\":12345678901234567890}")]
        [InlineData("{\"n\":1.0}")]
        [InlineData("{\"n\":1e3}")]
        [InlineData("{\"n\":-0.5E+10}")]
        [InlineData("{\"n\":0,\"m\":-0,\"o\":0.0,\"p\":1E-07,\"q\":-123.456e789}")]
        [InlineData(" \t\r\n{ \"a\" \t:\r\n 1 , \"b\" : [ 1 , 2 ] }\n\t \r")]
        [InlineData("{\"\":\"empty name\"}")]
        [InlineData("{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}")]
        [InlineData("{\"x\":[{\"a\":1,\"b\":2},{\"a\":3,\"b\":4}],\"a\":5,\"b\":6}")]
        [InlineData("{\"A\":1,\"a\":2}")]
        [InlineData("{\"\\u0061\":1,\"b\":2}")]
        [InlineData("{\"s\":\"\u007f\u2028\u2029\ufeff\"}")]
        public void ValidDocuments(string json)
        {
            Assert.True(JsonText.TryValidateObject(json, out string reason), reason);
            Assert.Null(reason);
        }

        [Fact]
        public void DepthOf64IsAllowed()
        {
            string json = Nested(64);
            Assert.True(JsonText.TryValidateObject(json, out string reason), reason);
        }

        [Fact]
        public void DepthOf64WithArraysIsAllowed()
        {
            // top object (1) + 63 arrays = 64.
            string json = "{\"a\":" + new string('[', 63) + new string(']', 63) + "}";
            Assert.True(JsonText.TryValidateObject(json, out string reason), reason);
        }

        [Fact]
        public void NineOrMoreUniqueMembersAreValid()
        {
            string json = "{" + string.Join(",", Enumerable.Range(0, 50).Select(i => "\"k" + i + "\":" + i)) + "}";
            Assert.True(JsonText.TryValidateObject(json, out string reason), reason);
        }

        [Fact]
        public void EightMembersWithoutDuplicateAreValid()
        {
            string json = "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"\\u0068\":8}";
            Assert.True(JsonText.TryValidateObject(json, out string reason), reason);
        }

        [Fact]
        public void ValidationIsRepeatableOnTheSameThread()
        {
            // The parser state is cached per thread: a failure must not leak into the next call.
            Assert.False(JsonText.TryValidateObject("{\"a\":{\"b\":1,\"b\":2}}", out _));
            Assert.True(JsonText.TryValidateObject("{\"b\":1}", out string reason), reason);
            Assert.False(JsonText.TryValidateObject("{\"a\":[1,", out _));
            Assert.True(JsonText.TryGetTopLevelMembers("{\"b\":1,\"c\":{\"b\":2}}", out var members, out reason), reason);
            Assert.Equal(new[] { "b", "c" }, members.Select(m => m.Key));
        }

        [Fact]
        public void ValidationIsThreadSafe()
        {
            string good = "{\"a\":1,\"b\":{\"c\":[1,2,3]},\"d\":\"x\"}";
            string bad = "{\"a\":1,\"a\":2}";
            int failures = 0;
            var threads = Enumerable.Range(0, 8).Select(t => new Thread(() =>
            {
                for (int i = 0; i < 2000; i++)
                {
                    if (!JsonText.TryValidateObject(good, out _)) Interlocked.Increment(ref failures);
                    if (JsonText.TryValidateObject(bad, out _)) Interlocked.Increment(ref failures);
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Assert.Equal(0, failures);
        }

        // ------------------------------------------------------------------ invalid documents

        public static IEnumerable<object[]> InvalidCases => new List<object[]>
        {
            new object[] { "trailing comma", "{\"a\":1,}", "trailing comma" },
            new object[] { "trailing comma in array", "{\"a\":[1,2,]}", "trailing comma before ']'" },
            new object[] { "single quotes", "{'a':1}", "single-quoted" },
            new object[] { "leading zero", "{\"a\":01}", "leading zeros" },
            new object[] { "NaN", "{\"a\":NaN}", "NaN and Infinity" },
            new object[] { "Infinity", "{\"a\":-Infinity}", "NaN and Infinity" },
            new object[] { "unterminated string", "{\"a\":\"abc}", "unterminated string" },
            new object[] { "raw control char", "{\"a\":\"x\ny\"}", "raw control character U+000A" },
            new object[] { "bad escape", "{\"a\":\"\\x\"}", "invalid escape sequence '\\x'" },
            new object[] { "short \\u", "{\"a\":\"\\u12\"}", "invalid \\u escape" },
            new object[] { "array top-level", "[1,2]", "top-level value is not a JSON object (found an array)" },
            new object[] { "string top-level", "\"abc\"", "top-level value is not a JSON object (found a string)" },
            new object[] { "trailing garbage", "{} x", "unexpected data after the top-level object at offset 3" },
            new object[] { "empty", "", "empty input" },
            new object[] { "duplicate", "{\"age\":1,\"age\":2}", "duplicate member name \"age\"" },
            new object[] { "escaped duplicate", "{\"a\":1,\"\\u0061\":2}", "duplicate member name \"a\"" },
            new object[] { "depth 65", Nested(65), "nesting deeper than 64" },
            new object[] { "missing colon", "{\"a\" 1}", "expected ':' after member name at offset 5" },
            new object[] { "missing comma", "{\"a\":1 \"b\":2}", "expected ',' or '}' after member value" },
            new object[] { "comment", "{/*c*/\"a\":1}", "comments are not allowed" },
            new object[] { "line comment after", "{\"a\":1}//x", "comments are not allowed" },
            new object[] { "unquoted name", "{a:1}", "expected '\"' to start a member name" },
            new object[] { "truncated", "{\"a\":1", "unexpected end of input" },
            new object[] { "bad literal", "{\"a\":tru}", "invalid literal" },
            new object[] { "capital literal", "{\"a\":True}", "expected a value" },
            new object[] { "plus sign", "{\"a\":+1}", "expected a value" },
            new object[] { "dot without digits", "{\"a\":1.}", "digit after the decimal point" },
            new object[] { "leading dot", "{\"a\":.5}", "expected a value" },
            new object[] { "empty exponent", "{\"a\":1e}", "digit in the exponent" },
            new object[] { "lone minus", "{\"a\":-}", "digit after '-'" },
            new object[] { "hex number", "{\"a\":0x10}", "expected ',' or '}'" },
            new object[] { "non-breaking space", "{\"a\":\u00a01}", "expected a value" },
            new object[] { "form feed whitespace", "{\f\"a\":1}", "expected '\"'" },
            new object[] { "whitespace only", " \r\n ", "empty input (whitespace only)" },
            new object[] { "number top-level", "42", "(found a number)" },
            new object[] { "null top-level", "null", "(found null)" },
            new object[] { "two objects", "{}{}", "unexpected data after the top-level object" },
            new object[] { "missing value", "{\"a\":}", "expected a value" },
            new object[] { "unterminated escape", "{\"a\":\"\\", "unterminated string" },
            new object[] { "bracket mismatch", "{\"a\":[1}", "expected ',' or ']'" },
        };

        [Theory]
        [MemberData(nameof(InvalidCases))]
        public void InvalidDocuments(string label, string json, string expectedReasonPart)
        {
            Assert.False(JsonText.TryValidateObject(json, out string reason), label);
            Assert.NotNull(reason);
            Assert.Contains(expectedReasonPart, reason);
        }

        [Fact]
        public void InvalidDocumentsHaveDistinctReasons()
        {
            string[] required =
            {
                "{\"a\":1,}", "{'a':1}", "{\"a\":01}", "{\"a\":NaN}", "{\"a\":\"abc}", "{\"a\":\"x\ny\"}",
                "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "[1,2]", "\"abc\"", "{} x", "", "{\"a\":1,\"\\u0061\":2}", Nested(65),
            };
            var reasons = required.Select(j =>
            {
                Assert.False(JsonText.TryValidateObject(j, out string r));
                return r;
            }).ToList();
            Assert.Equal(reasons.Count, reasons.Distinct(StringComparer.Ordinal).Count());
        }

        [Fact]
        public void RawLoneSurrogatesAreRejected()
        {
            // (Not theory data: xunit serializes theory arguments and would replace lone surrogates.)
            string[] inputs =
            {
                "{\"a\":\"x\ud800y\"}",
                "{\"\udc00\":1}",
                "{\"a\":\"\ud83d",
                "{\"a\":\"\ude00\ud83d\"}",
                "{\"a\":\"\ud83d\ud83d\ude00\"}",
            };
            foreach (string json in inputs)
            {
                Assert.False(JsonText.TryValidateObject(json, out string reason), json);
                Assert.StartsWith("invalid UTF-16 (lone surrogate)", reason);
            }
            Assert.False(JsonText.TryValidateObject("{\"a\":\"x\ud800y\"}", out string r1));
            Assert.Equal("invalid UTF-16 (lone surrogate) at offset 7", r1);
            Assert.True(JsonText.TryValidateObject("{\"\ud83d\ude00\":\"\ud83d\ude00\"}", out string r2), r2);
        }

        [Fact]
        public void ALoneSurrogateAndAnotherFaultGiveTheFirstOfThem()
        {
            // (The reader reads a UTF-8 copy, where a lone surrogate has no form: the validator keeps it apart and
            // reports whichever of it and the reader's fault comes first in the text, as a single left-to-right pass does.)
            (string json, string reason)[] cases =
            {
                ("{\"a\":x,\"b\":\"\ud800\"}", "expected a value at offset 5, found 'x'"),
                ("{\"a\":\"\ud800\",\"b\":x}", "invalid UTF-16 (lone surrogate) at offset 6"),
                ("{\"a\":\ud800}", "expected a value at offset 5, found U+D800"),
                ("{\"a\":1,\"a\":\"\ud800\"}", "duplicate member name \"a\" at offset 7"),
                ("{\"\ud800\":1,\"\ud800\":2}", "invalid UTF-16 (lone surrogate) at offset 2"),
                ("{\"a\":\"\udc00\"} x", "invalid UTF-16 (lone surrogate) at offset 6"),
                ("{\"a\":1} \ud800", "unexpected data after the top-level object at offset 8"),
                ("\ud800{}", "top-level value is not a JSON object (found U+D800 at offset 0)"),
                ("{\"a\":" + new string('[', 64) + "\"\ud800\"" + new string(']', 64) + "}", "nesting deeper than 64 at offset 68"),
                ("{\"\ud83d\ude00\":\"\ud83d\", \"b\":1}", "invalid UTF-16 (lone surrogate) at offset 7"),
            };
            foreach (var (json, reason) in cases)
            {
                Assert.False(JsonText.TryValidateObject(json, out string actual), json);
                Assert.Equal(reason, actual);
            }
        }

        [Fact]
        public void OffsetsCountCharactersInLargeDocuments()
        {
            // Past the thread's own buffer the UTF-8 copy is rented from the shared pool; offsets still count the .NET
            // string's UTF-16 code units, not the copy's bytes.
            string text = string.Concat(Enumerable.Repeat("\u00e9\u20ac\ud83d\ude00", 5000));
            string json = "{\"a\":\"" + text + "\",x}";
            Assert.False(JsonText.TryValidateObject(json, out string reason));
            Assert.Equal("expected '\"' to start a member name at offset " + (json.IndexOf(",x", StringComparison.Ordinal) + 1) + ", found 'x'", reason);
            Assert.True(JsonText.TryGetTopLevelMembers("{\"a\":\"" + text + "\",\"b\":[1]}", out var members, out reason), reason);
            Assert.Equal("\"" + text + "\"", members[0].Value);
            Assert.Equal("[1]", members[1].Value);
            Assert.True(JsonText.TryValidateObject("{\"a\":1}", out reason), reason);
        }

        [Fact]
        public void NullInputIsRejected()
        {
            Assert.False(JsonText.TryValidateObject(null, out string reason));
            Assert.Equal("input is null", reason);
        }

        [Theory]
        [InlineData("{\"n\":1,\"\\n\":2,\"\\u000a\":3}", "duplicate member name \"\\n\"")]
        [InlineData("{\"/\":1,\"\\/\":2}", "duplicate member name \"/\"")]
        [InlineData("{\"😀\":1,\"\\ud83d\\ude00\":2}", "duplicate member name \"😀\"")]
        [InlineData("{\"\\ud800\":1,\"\\uD800\":2}", "duplicate member name \"\\ud800\"")]
        [InlineData("{\"x\":{\"k\":1,\"j\":2,\"k\":3}}", "duplicate member name \"k\"")]
        [InlineData("{\"x\":[{\"k\":1},{\"k\":1,\"k\":2}]}", "duplicate member name \"k\"")]
        [InlineData("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"a\":8}", "duplicate member name \"a\"")]
        [InlineData("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"a\":9}", "duplicate member name \"a\"")]
        [InlineData("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"\\u0069\":11}", "duplicate member name \"i\"")]
        public void DuplicateNamesAreDetectedAfterDecoding(string json, string expected)
        {
            Assert.False(JsonText.TryValidateObject(json, out string reason));
            Assert.StartsWith(expected, reason);
        }

        [Fact]
        public void LargeObjectsDetectDuplicatesAnywhere()
        {
            // 5000 members forces the name table to grow several times.
            var names = Enumerable.Range(0, 5000).Select(i => "name" + i).ToList();
            string Build(IEnumerable<string> ns) => "{" + string.Join(",", ns.Select((n, i) => "\"" + n + "\":" + i)) + "}";

            Assert.True(JsonText.TryValidateObject(Build(names), out string reason), reason);

            Assert.False(JsonText.TryValidateObject(Build(names.Concat(new[] { "name4999" })), out reason));
            Assert.StartsWith("duplicate member name \"name4999\"", reason);

            Assert.False(JsonText.TryValidateObject(Build(names.Take(100).Concat(new[] { "name0" }).Concat(names.Skip(100))), out reason));
            Assert.StartsWith("duplicate member name \"name0\"", reason);

            // Escaped spelling of an earlier name, found through the hash table.
            Assert.False(JsonText.TryValidateObject(Build(names.Take(20).Concat(new[] { "n\\u0061me7" })), out reason));
            Assert.StartsWith("duplicate member name \"name7\"", reason);
        }

        [Fact]
        public void LargeSiblingAndNestedObjectsKeepSeparateNameSets()
        {
            string Obj(string prefix, int count, string extra = null) =>
                "{" + string.Join(",", Enumerable.Range(0, count).Select(i => "\"" + prefix + i + "\":" + i)) + (extra ?? "") + "}";

            // Siblings at the same depth with the same names (table reused per object).
            string siblings = "{\"list\":[" + Obj("k", 12) + "," + Obj("k", 12) + "," + Obj("k", 12) + "]}";
            Assert.True(JsonText.TryValidateObject(siblings, out string reason), reason);

            // Large objects open at the same time at different depths, sharing names across levels.
            string inner = Obj("k", 12);
            string middle = "{" + string.Join(",", Enumerable.Range(0, 10).Select(i => "\"k" + i + "\":" + inner)) + ",\"k10\":1}";
            string outer = "{" + string.Join(",", Enumerable.Range(0, 10).Select(i => "\"k" + i + "\":" + middle)) + ",\"k10\":2}";
            Assert.True(JsonText.TryValidateObject(outer, out reason), reason);

            // A duplicate in the outer object after the inner ones were parsed.
            string outerDup = "{" + string.Join(",", Enumerable.Range(0, 10).Select(i => "\"k" + i + "\":" + middle)) + ",\"k3\":2}";
            Assert.False(JsonText.TryValidateObject(outerDup, out reason));
            Assert.StartsWith("duplicate member name \"k3\"", reason);

            // A duplicate deep inside.
            string innerDup = "{\"a\":" + Obj("k", 12) + ",\"b\":" + Obj("k", 12, ",\"k11\":0") + "}";
            Assert.False(JsonText.TryValidateObject(innerDup, out reason));
            Assert.StartsWith("duplicate member name \"k11\"", reason);
        }

        [Fact]
        public void HugeObjectThenSmallObjectsStillWork()
        {
            string huge = "{" + string.Join(",", Enumerable.Range(0, 40000).Select(i => "\"h" + i + "\":[" + i + "]")) + "}";
            Assert.True(JsonText.TryValidateObject(huge, out string reason), reason);
            Assert.True(JsonText.TryGetTopLevelMembers(huge, out var members, out reason), reason);
            Assert.Equal(40000, members.Count);
            Assert.Equal("h39999", members[39999].Key);
            Assert.Equal("[39999]", members[39999].Value);
            Assert.True(JsonText.TryValidateObject(Obj20(), out reason), reason);
            Assert.False(JsonText.TryValidateObject(Obj20() .Replace("\"f19\"", "\"f3\""), out reason));
            Assert.StartsWith("duplicate member name \"f3\"", reason);

            static string Obj20() => "{" + string.Join(",", Enumerable.Range(0, 20).Select(i => "\"f" + i + "\":" + i)) + "}";
        }

        [Fact]
        public void SuccessfulValidationDoesNotAllocateOnceWarm()
        {
            string small = "{\"name\":\"Alice\",\"age\":30,\"tags\":[\"a\",\"b\"],\"addr\":{\"city\":\"Z\u00fcrich\"}}";
            string large = "{" + string.Join(",", Enumerable.Range(0, 40).Select(i => "\"field" + i + "\":{\"v\":" + i
                + ",\"w\":[1,2,3],\"x\":\"s\\n\",\"y\":null,\"z\":true,\"a1\":1,\"a2\":2,\"a3\":3,\"a4\":4}")) + "}";
            Assert.True(JsonText.TryValidateObject(small, out _));
            Assert.True(JsonText.TryValidateObject(large, out _));

            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100; i++)
            {
                JsonText.TryValidateObject(small, out _);
                JsonText.TryValidateObject(large, out _);
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(0, allocated);
        }

        [Fact]
        public void DuplicateReasonCarriesOffsetOfSecondName()
        {
            Assert.False(JsonText.TryValidateObject("{\"age\":1,\"age\":2}", out string reason));
            Assert.Equal("duplicate member name \"age\" at offset 9", reason);
        }

        [Fact]
        public void ReasonsNeverQuoteMoreThan40InputCharacters()
        {
            string longName = new string('x', 500);
            string[] inputs =
            {
                "{\"" + longName + "\":1,\"" + longName + "\":2}",
                "{\"" + longName + "\":1 " + longName + "}",
                "{\"" + longName + "\" " + longName + "}",
                "[\"" + longName + "\"]",
                "\"" + longName + "\"",
                "{\"a\":\"" + longName + "}",
                "{\"a\":" + longName + "}",
                "{} " + longName,
                longName,
                "{\"a\":\"\\" + longName + "\"}",
            };
            foreach (string json in inputs)
            {
                Assert.False(JsonText.TryValidateObject(json, out string reason));
                Assert.DoesNotContain(new string('x', 41), reason);
                Assert.True(reason.Length < 120, reason);
            }
        }

        [Fact]
        public void DepthOf65ReportsNesting()
        {
            Assert.False(JsonText.TryValidateObject(Nested(65), out string reason));
            Assert.StartsWith("nesting deeper than 64", reason);

            string arrays = "{\"a\":" + new string('[', 64) + new string(']', 64) + "}";
            Assert.False(JsonText.TryValidateObject(arrays, out reason));
            Assert.StartsWith("nesting deeper than 64", reason);
        }

        [Fact]
        public void VeryDeepInputDoesNotOverflowTheStack()
        {
            string json = "{\"a\":" + new string('[', 100000);
            Assert.False(JsonText.TryValidateObject(json, out string reason));
            Assert.StartsWith("nesting deeper than 64", reason);
        }

        // ------------------------------------------------------------------ top-level names / members

        [Fact]
        public void TopLevelNamesAreDecodedAndOrdered()
        {
            Assert.True(JsonText.TryGetTopLevelMembers(
                "{\"name\":\"Alice\",\"\\u0061ge\":30,\"nested\":{\"inner\":1},\"tab\\t\":[],\"😀\":null}",
                out var members, out string reason), reason);
            Assert.Equal(new[] { "name", "age", "nested", "tab\t", "😀" }, members.Select(m => m.Key));
        }

        [Fact]
        public void TopLevelNamesOfEmptyObject()
        {
            Assert.True(JsonText.TryGetTopLevelMembers(" {} ", out var members, out string reason), reason);
            Assert.Empty(members);
        }

        [Fact]
        public void TopLevelNamesFailWithReason()
        {
            Assert.False(JsonText.TryGetTopLevelMembers("{\"a\":1,\"a\":2}", out var members, out string reason));
            Assert.StartsWith("duplicate member name \"a\"", reason);
            Assert.NotNull(members);
            Assert.Empty(members);
        }

        [Fact]
        public void TopLevelMembersKeepRawValueTextExactly()
        {
            Assert.True(JsonText.TryGetTopLevelMembers("{\"n\": 1.0 ,\"o\":{\"x\":[1,2]}}",
                out IReadOnlyList<KeyValuePair<string, string>> members, out string reason), reason);
            Assert.Equal(2, members.Count);
            Assert.Equal("n", members[0].Key);
            Assert.Equal("1.0", members[0].Value);
            Assert.Equal("o", members[1].Key);
            Assert.Equal("{\"x\":[1,2]}", members[1].Value);
        }

        [Fact]
        public void TopLevelMembersKeepNumbersStringsAndWhitespaceInside()
        {
            string json = "{ \"big\" : 12345678901234567890 , \"e\":1e3,\"neg\":-0.5E+10,\"s\":\"a\\u0041\\n\","
                        + "\"arr\":[ 1 , { \"k\" : \"v\" } ],\"t\":true,\"f\":false,\"z\":null,\"\\\"q\\\"\":\"\"}";
            Assert.True(JsonText.TryGetTopLevelMembers(json, out var members, out string reason), reason);
            Assert.Equal(new[]
            {
                new KeyValuePair<string, string>("big", "12345678901234567890"),
                new KeyValuePair<string, string>("e", "1e3"),
                new KeyValuePair<string, string>("neg", "-0.5E+10"),
                new KeyValuePair<string, string>("s", "\"a\\u0041\\n\""),
                new KeyValuePair<string, string>("arr", "[ 1 , { \"k\" : \"v\" } ]"),
                new KeyValuePair<string, string>("t", "true"),
                new KeyValuePair<string, string>("f", "false"),
                new KeyValuePair<string, string>("z", "null"),
                new KeyValuePair<string, string>("\"q\"", "\"\""),
            }, members);
        }

        [Fact]
        public void TopLevelMembersFailWithSameRules()
        {
            Assert.False(JsonText.TryGetTopLevelMembers("{\"a\":1,}", out var members, out string reason));
            Assert.Contains("trailing comma", reason);
            Assert.Empty(members);

            Assert.False(JsonText.TryGetTopLevelMembers("{\"a\":{\"b\":1,\"b\":2}}", out members, out reason));
            Assert.StartsWith("duplicate member name \"b\"", reason);
        }

        [Fact]
        public void TopLevelMembersWithManyMembers()
        {
            string json = "{" + string.Join(",", Enumerable.Range(0, 20).Select(i => "\"k" + i + "\":" + i)) + "}";
            Assert.True(JsonText.TryGetTopLevelMembers(json, out var members, out string reason), reason);
            Assert.Equal(20, members.Count);
            for (int i = 0; i < 20; i++)
            {
                Assert.Equal("k" + i, members[i].Key);
                Assert.Equal(i.ToString(CultureInfo.InvariantCulture), members[i].Value);
            }
        }

        // ------------------------------------------------------------------ WriteString

        [Theory]
        [InlineData("", "\"\"")]
        [InlineData("plain", "\"plain\"")]
        [InlineData("say \"hi\"", "\"say \\\"hi\\\"\"")]
        [InlineData("back\\slash", "\"back\\\\slash\"")]
        [InlineData("a\nb\rc\td\be\ff", "\"a\\nb\\rc\\td\\be\\ff\"")]
        [InlineData("\u0001\u001f\u0000", "\"\\u0001\\u001f\\u0000\"")]
        [InlineData("Zürich こんにちは 😀 \u2028 \u007f /", "\"Zürich こんにちは 😀 \u2028 \u007f /\"")]
        public void WriteStringEscapesMinimally(string input, string expected)
        {
            var sb = new StringBuilder("pre:");
            JsonText.WriteString(sb, input);
            Assert.Equal("pre:" + expected, sb.ToString());
        }

        [Fact]
        public void WriteStringEscapesLoneSurrogatesButKeepsPairs()
        {
            // (Not [InlineData]: attribute strings are stored as UTF-8 and would lose lone surrogates.)
            var sb = new StringBuilder();
            JsonText.WriteString(sb, "x\ud800y");
            JsonText.WriteString(sb, "\udc00");
            JsonText.WriteString(sb, "\ud83d\ude00");
            JsonText.WriteString(sb, "end\ud83d");
            Assert.Equal("\"x\\ud800y\"\"\\udc00\"\"\ud83d\ude00\"\"end\\ud83d\"", sb.ToString());
        }

        [Fact]
        public void WriteStringNullWritesNullLiteral()
        {
            var sb = new StringBuilder();
            JsonText.WriteString(sb, null);
            Assert.Equal("null", sb.ToString());
            Assert.Throws<ArgumentNullException>(() => JsonText.WriteString(null, "x"));
        }

        // ------------------------------------------------------------------ Serialize

        [Fact]
        public void SerializeKeepsOrderedDictionaryOrder()
        {
            var od = new OrderedDictionary { { "zeta", 1 }, { "alpha", "two" }, { "mid", true } };
            Assert.Equal("{\"zeta\":1,\"alpha\":\"two\",\"mid\":true}", JsonText.Serialize(od));
        }

        [Fact]
        public void SerializeKeyValueListKeepsOrder()
        {
            var list = new List<KeyValuePair<string, object>>
            {
                new KeyValuePair<string, object>("b", 1),
                new KeyValuePair<string, object>("a", null),
                new KeyValuePair<string, object>("c", new[] { 1, 2 }),
            };
            Assert.Equal("{\"b\":1,\"a\":null,\"c\":[1,2]}", JsonText.Serialize(list));
        }

        [Fact]
        public void SerializeEscapesStrings()
        {
            var od = new OrderedDictionary { { "q", "say \"hi\"\nnext\u0001" }, { "k\"ey", "Zürich 😀" } };
            Assert.Equal("{\"q\":\"say \\\"hi\\\"\\nnext\\u0001\",\"k\\\"ey\":\"Zürich 😀\"}", JsonText.Serialize(od));
        }

        [Fact]
        public void SerializeNestedListsAndDictionaries()
        {
            var od = new OrderedDictionary
            {
                { "list", new List<object> { 1, "x", null, new OrderedDictionary { { "in", new object[] { } } } } },
                { "dict", new Dictionary<string, object> { { "k", new List<int> { 3 } } } },
                { "empty", new OrderedDictionary() },
            };
            string json = JsonText.Serialize(od);
            Assert.Equal("{\"list\":[1,\"x\",null,{\"in\":[]}],\"dict\":{\"k\":[3]},\"empty\":{}}", json);
            Assert.True(JsonText.TryValidateObject(json, out string reason), reason);
        }

        [Theory]
        [InlineData(0.1, "0.1")]
        [InlineData(1.0, "1")]
        [InlineData(-2.5, "-2.5")]
        [InlineData(1e300, "1E+300")]
        [InlineData(double.MaxValue, "1.7976931348623157E+308")]
        public void SerializeDoubleRoundTrip(double d, string expected)
        {
            Assert.Equal(expected, JsonText.Serialize(d));
        }

        [Fact]
        public void SerializeDoubleOutputIsValidJsonNumberAndRoundTrips()
        {
            double[] values = { 0.1, 1.0 / 3, 1e-7, 5e-324, -1e21, 123456789.125, 0.30000000000000004 };
            foreach (double d in values)
            {
                string text = JsonText.Serialize(d);
                Assert.True(JsonText.TryValidateObject("{\"v\":" + text + "}", out string reason), text + ": " + reason);
                Assert.Equal(d, double.Parse(text, CultureInfo.InvariantCulture));
            }
        }

        [Theory]
        [InlineData(double.NaN)]
        [InlineData(double.PositiveInfinity)]
        [InlineData(double.NegativeInfinity)]
        public void SerializeNonFiniteDoubleThrows(double d)
        {
            var ex = Assert.Throws<ArgumentException>(() => JsonText.Serialize(d));
            Assert.Contains("cannot be represented in JSON", ex.Message);
            ex = Assert.Throws<ArgumentException>(() => JsonText.Serialize(new List<object> { 1, d }));
            Assert.Contains("cannot be represented in JSON", ex.Message);
        }

        [Fact]
        public void SerializeNonFiniteFloatThrows()
        {
            var ex = Assert.Throws<ArgumentException>(() => JsonText.Serialize(float.NaN));
            Assert.Contains("cannot be represented in JSON", ex.Message);
        }

        [Fact]
        public void SerializeScalars()
        {
            Assert.Equal("null", JsonText.Serialize(null));
            Assert.Equal("true", JsonText.Serialize(true));
            Assert.Equal("false", JsonText.Serialize(false));
            Assert.Equal("\"x\"", JsonText.Serialize("x"));
            Assert.Equal("\"\\\"\"", JsonText.Serialize('"'));
            Assert.Equal("\"é\"", JsonText.Serialize('é'));
            Assert.Equal("-5", JsonText.Serialize((sbyte)-5));
            Assert.Equal("255", JsonText.Serialize((byte)255));
            Assert.Equal("-32768", JsonText.Serialize(short.MinValue));
            Assert.Equal("65535", JsonText.Serialize(ushort.MaxValue));
            Assert.Equal("-2147483648", JsonText.Serialize(int.MinValue));
            Assert.Equal("4294967295", JsonText.Serialize(uint.MaxValue));
            Assert.Equal("-9223372036854775808", JsonText.Serialize(long.MinValue));
            Assert.Equal("18446744073709551615", JsonText.Serialize(ulong.MaxValue));
            Assert.Equal("1.50", JsonText.Serialize(1.50m));
            Assert.Equal("0.0000001", JsonText.Serialize(0.0000001m));
            Assert.Equal("79228162514264337593543950335", JsonText.Serialize(decimal.MaxValue));
            Assert.Equal("0.1", JsonText.Serialize(0.1f));
        }

        [Fact]
        public void SerializeUsesInvariantCulture()
        {
            CultureInfo saved = CultureInfo.CurrentCulture;
            try
            {
                var culture = (CultureInfo)CultureInfo.GetCultureInfo("de-DE").Clone();
                culture.NumberFormat.NegativeSign = "\u2212";
                CultureInfo.CurrentCulture = culture;
                Assert.Equal("[-1.5,-3,2.25,-7]", JsonText.Serialize(new object[] { -1.5, -3, 2.25m, -7L }));
            }
            finally
            {
                CultureInfo.CurrentCulture = saved;
            }
        }

        private enum Color { Red, Green }

        [Fact]
        public void SerializeStringLikeTypes()
        {
            var dt = new DateTime(2024, 5, 6, 7, 8, 9, 123, DateTimeKind.Utc);
            Assert.Equal("\"2024-05-06T07:08:09.1230000Z\"", JsonText.Serialize(dt));
            var dto = new DateTimeOffset(2024, 5, 6, 7, 8, 9, TimeSpan.FromHours(2));
            Assert.Equal("\"2024-05-06T07:08:09.0000000+02:00\"", JsonText.Serialize(dto));
            var g = new Guid("0f8fad5b-d9cb-469f-a165-70867728950e");
            Assert.Equal("\"0f8fad5b-d9cb-469f-a165-70867728950e\"", JsonText.Serialize(g));
            Assert.Equal("\"Green\"", JsonText.Serialize(Color.Green));
            Assert.Equal("\"https://example.com/a?b=c\"", JsonText.Serialize(new Uri("https://example.com/a?b=c")));
            Assert.Equal("\"1.02:03:04.5000000\"", JsonText.Serialize(new TimeSpan(1, 2, 3, 4, 500)));
        }

        [Fact]
        public void SerializeHashtableKeysUseInvariantConversion()
        {
            var od = new OrderedDictionary { { 1.5, "a" }, { 42, "b" }, { Color.Red, "c" } };
            Assert.Equal("{\"1.5\":\"a\",\"42\":\"b\",\"Red\":\"c\"}", JsonText.Serialize(od));
        }

        [Fact]
        public void SerializeDuplicateKeysAfterConversionThrow()
        {
            var od = new OrderedDictionary { { 1, "a" }, { "1", "b" } };
            var ex = Assert.Throws<ArgumentException>(() => JsonText.Serialize(od));
            Assert.Contains("Duplicate member name", ex.Message);

            var many = new List<KeyValuePair<string, object>>();
            for (int i = 0; i < 20; i++) many.Add(new KeyValuePair<string, object>("k" + i, i));
            Assert.True(JsonText.TryValidateObject(JsonText.Serialize(many), out string reason), reason);
            many.Add(new KeyValuePair<string, object>("k3", 0));
            Assert.Throws<ArgumentException>(() => JsonText.Serialize(many));
        }

        private sealed class Person
        {
            public string Name;
            public int Age;
            public Person Friend;
        }

        [Fact]
        public void SerializeUnsupportedTypeThrowsNamingTheType()
        {
            var ex = Assert.Throws<ArgumentException>(() => JsonText.Serialize(new Person()));
            Assert.Contains(typeof(Person).FullName, ex.Message);
            ex = Assert.Throws<ArgumentException>(() => JsonText.Serialize(new object[] { new object() }));
            Assert.Contains("System.Object", ex.Message);
        }

        [Fact]
        public void SerializeNormalizeHookIsAppliedToEveryValue()
        {
            var seen = new List<object>();
            object Normalize(object v)
            {
                seen.Add(v);
                if (v is Person p)
                {
                    return new List<KeyValuePair<string, object>>
                    {
                        new KeyValuePair<string, object>("name", p.Name),
                        new KeyValuePair<string, object>("age", p.Age),
                        new KeyValuePair<string, object>("friend", p.Friend),
                    };
                }
                if (v is string s) return s.ToUpperInvariant();
                return v;
            }

            var root = new OrderedDictionary
            {
                { "owner", new Person { Name = "alice", Age = 30, Friend = new Person { Name = "bob", Age = 31 } } },
                { "tags", new List<object> { "x", new Person { Name = "carol", Age = 1 } } },
            };
            string json = JsonText.Serialize(root, Normalize);
            Assert.Equal(
                "{\"owner\":{\"name\":\"ALICE\",\"age\":30,\"friend\":{\"name\":\"BOB\",\"age\":31,\"friend\":null}},"
                + "\"tags\":[\"X\",{\"name\":\"CAROL\",\"age\":1,\"friend\":null}]}",
                json);
            Assert.Same(root, seen[0]);
            // root, owner, alice's 3 members, bob's 3 members, tags list, "x", carol, carol's 3 members.
            Assert.Equal(14, seen.Count);
        }

        [Fact]
        public void SerializeNormalizeAppliesToTopLevelValue()
        {
            Assert.Equal("\"replaced\"", JsonText.Serialize(new object(), v => "replaced"));
        }

        [Fact]
        public void SerializeDepthLimit()
        {
            object value = 1;
            for (int i = 0; i < 64; i++) value = new List<object> { value };
            string json = JsonText.Serialize(value);
            Assert.StartsWith(new string('[', 64) + "1", json);

            value = new List<object> { value };
            var ex = Assert.Throws<ArgumentException>(() => JsonText.Serialize(value));
            Assert.Contains("64", ex.Message);
        }

        [Fact]
        public void SerializeDepth64ObjectIsValid()
        {
            object value = new OrderedDictionary();
            for (int i = 0; i < 63; i++) value = new OrderedDictionary { { "a", value } };
            string json = JsonText.Serialize(value);
            Assert.True(JsonText.TryValidateObject(json, out string reason), reason);
            Assert.Equal(Nested(64), json);
        }

        [Fact]
        public void SerializeCycleIsCaughtByDepthLimit()
        {
            var list = new List<object>();
            list.Add(list);
            Assert.Throws<ArgumentException>(() => JsonText.Serialize(list));

            var dict = new Hashtable();
            dict["self"] = dict;
            Assert.Throws<ArgumentException>(() => JsonText.Serialize(dict));
        }

        [Fact]
        public void SerializeOutputRoundTripsThroughParser()
        {
            var od = new OrderedDictionary
            {
                { "name", "Al\"ice\\\n\u0001\u001f😀" },
                { "\u0000key", 1 },
                { "lone", "\ud800" },
                { "n", new object[] { 0.1, -0.0, 1e-7, 12345678901234567890UL, 1.0m } },
            };
            string json = JsonText.Serialize(od);
            Assert.True(JsonText.TryGetTopLevelMembers(json, out var members, out string reason), reason);
            Assert.Equal(new[] { "name", "\u0000key", "lone", "n" }, members.Select(m => m.Key));
            Assert.Equal("1", members[1].Value);
            Assert.Equal("\"\\ud800\"", members[2].Value);
        }

        // ------------------------------------------------------------------ helpers

        /// <summary>{"a":{"a":...{}...}} with <paramref name="depth"/> objects.</summary>
        private static string Nested(int depth)
        {
            var sb = new StringBuilder();
            for (int i = 1; i < depth; i++) sb.Append("{\"a\":");
            sb.Append("{}");
            sb.Append('}', depth - 1);
            return sb.ToString();
        }
    }
}
