// The fault suite's workload generator and its model of the end state, written without the engine:
// compiled by FaultHelpers.ps1 with Add-Type (PowerShell loops over 50,000 items take too long).
using System;
using System.Collections.Generic;
using System.Text;

namespace WriteBehindFaults
{
    /// <summary>One operation: a set (Fields: the whole profile), a patch (Fields: the named fields, Seq),
    /// a remove, a raw deferred delete or a raw persist (Fields null).</summary>
    public sealed class FaultOp
    {
        public string Id { get; set; }
        public List<KeyValuePair<string, string>> Fields { get; set; }
        /// <summary>Compact JSON text of Fields ('' when none).</summary>
        public string Json { get; set; }
        public long Seq { get; set; }
    }

    /// <summary>Consecutive operations of one kind, produced by one cmdlet call or one LPUSH.
    /// Kind: set | patch | remove | rawdelete | rawpersist.</summary>
    public sealed class FaultRound
    {
        public string Kind { get; set; }
        public List<FaultOp> Ops { get; set; } = new List<FaultOp>();
    }

    public sealed class FaultWorkload
    {
        public List<FaultRound> Rounds { get; } = new List<FaultRound>();
        public int Items { get; set; }
        public Dictionary<string, int> ItemsByKind { get; } = new Dictionary<string, int>();
        /// <summary>GenerateProducer: how many patches each shared id got from this producer (its counter's last value).</summary>
        public Dictionary<string, long> PatchCounts { get; } = new Dictionary<string, long>(StringComparer.Ordinal);
    }

    /// <summary>What the model says one id must end as.</summary>
    public sealed class FaultExpected
    {
        internal List<KeyValuePair<string, string>> Fields;
        /// <summary>Profile JSON text, or null when deleted or never written.</summary>
        public string Json { get; set; }
        /// <summary>Another JSON text that is just as right (when the order of two fields is not determined).</summary>
        public string AltJson { get; set; }
        /// <summary>0 when never written.</summary>
        public long Version { get; set; }
        /// <summary>The seq of the id's last patch in queue order (applied or not); null when none.</summary>
        public long? LastPatchSeq { get; set; }
        /// <summary>How many patches were merged.</summary>
        public int Patches { get; set; }
    }

    public static class FaultModel
    {
        /// <summary>Mostly '&lt;prefix&gt;&lt;n&gt;'; every 97th id uses the rest of the alphabet ('.', '@', '-', '_').</summary>
        public static string IdName(string prefix, int n) => n % 97 == 13 ? prefix + "." + n + "@x-y_z" : prefix + n;

        /// <summary>Compact JSON object text; values are raw JSON value texts, names plain.</summary>
        public static string Format(IEnumerable<KeyValuePair<string, string>> fields)
        {
            var sb = new StringBuilder("{");
            bool first = true;
            foreach (var f in fields)
            {
                if (!first) sb.Append(',');
                first = false;
                sb.Append('"').Append(f.Key).Append("\":").Append(f.Value);
            }
            return sb.Append('}').ToString();
        }

        /// <summary>An op from PowerShell: fieldPairs is name, raw value, name, raw value... (null: no fields).</summary>
        public static FaultOp Op(string id, string[] fieldPairs, long seq)
        {
            List<KeyValuePair<string, string>> fields = null;
            if (fieldPairs != null)
            {
                fields = new List<KeyValuePair<string, string>>();
                for (int i = 0; i + 1 < fieldPairs.Length; i += 2) fields.Add(new KeyValuePair<string, string>(fieldPairs[i], fieldPairs[i + 1]));
            }
            return new FaultOp { Id = id, Fields = fields, Json = fields == null ? "" : Format(fields), Seq = seq };
        }

        /// <summary>A round for a producer child: [[id, json], ...] as JSON text on one line.</summary>
        public static string RoundJson(FaultRound round)
        {
            var sb = new StringBuilder("[");
            for (int i = 0; i < round.Ops.Count; i++)
            {
                if (i > 0) sb.Append(',');
                sb.Append('[');
                Quote(sb, round.Ops[i].Id);
                sb.Append(',');
                Quote(sb, round.Ops[i].Json ?? "");
                sb.Append(']');
            }
            return sb.Append(']').ToString();
        }

        private static void Quote(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char ch in s)
            {
                if (ch == '"' || ch == '\\') sb.Append('\\').Append(ch);
                else if (ch < 0x20) sb.Append("\\u").Append(((int)ch).ToString("x4"));
                else sb.Append(ch);
            }
            sb.Append('"');
        }

        private static void Put(List<KeyValuePair<string, string>> fields, string name, string value)
        {
            for (int i = 0; i < fields.Count; i++)
            {
                if (fields[i].Key == name) { fields[i] = new KeyValuePair<string, string>(name, value); return; }
            }
            fields.Add(new KeyValuePair<string, string>(name, value));
        }

        /// <summary>
        /// A queue of <paramref name="items"/> mixed items over <paramref name="ids"/> ids, in rounds of one kind
        /// (1..maxRound items; removes and raw deletes up to a quarter of that). Half the picks go to a hot tenth
        /// of the ids, so one batch often holds several items of one id.
        ///   set       {"name":..,"gen":..,[f0..f5],[note: unicode, escapes],[big: 12345678901234567890]}
        ///   patch     {"seq":"n","f&lt;k&gt;":"p&lt;n&gt;"[,"f&lt;j&gt;":"q&lt;n&gt;"][,"num":1.0e3]}   (n: one global sequence)
        ///   remove, rawdelete: no fields
        /// </summary>
        public static FaultWorkload Generate(Random random, int items, int ids, string idPrefix,
            int weightSet, int weightPatch, int weightRemove, int weightRawDelete, int maxRound, long firstSeq = 0, long firstGen = 0)
        {
            var kinds = new List<KeyValuePair<string, int>>();
            if (weightSet > 0) kinds.Add(new KeyValuePair<string, int>("set", weightSet));
            if (weightPatch > 0) kinds.Add(new KeyValuePair<string, int>("patch", weightPatch));
            if (weightRemove > 0) kinds.Add(new KeyValuePair<string, int>("remove", weightRemove));
            if (weightRawDelete > 0) kinds.Add(new KeyValuePair<string, int>("rawdelete", weightRawDelete));
            int total = 0;
            foreach (var k in kinds) total += k.Value;
            int hot = Math.Max(1, ids / 10);
            var w = new FaultWorkload();
            long seq = firstSeq, gen = firstGen;
            int n = 0;
            while (n < items)
            {
                int roll = random.Next(total);
                string kind = null;
                foreach (var k in kinds)
                {
                    if (roll < k.Value) { kind = k.Key; break; }
                    roll -= k.Value;
                }
                int max = kind == "remove" || kind == "rawdelete" ? Math.Max(1, maxRound / 4) : maxRound;
                int size = Math.Min(items - n, 1 + random.Next(max));
                var round = new FaultRound { Kind = kind };
                for (int i = 0; i < size; i++)
                {
                    int idn = random.Next(2) == 0 ? random.Next(hot) : random.Next(ids);
                    string id = IdName(idPrefix, idn);
                    List<KeyValuePair<string, string>> f = null;
                    long opSeq = 0;
                    if (kind == "set")
                    {
                        gen++;
                        f = new List<KeyValuePair<string, string>>
                        {
                            new KeyValuePair<string, string>("name", "\"" + id + "\""),
                            new KeyValuePair<string, string>("gen", "\"" + gen + "\""),
                        };
                        for (int k = 0; k <= 5; k++)
                            if (random.Next(3) == 0) f.Add(new KeyValuePair<string, string>("f" + k, "\"s" + gen + "\""));
                        if (random.Next(10) == 0) f.Add(new KeyValuePair<string, string>("note", "\"caf\\u00e9 \\\"" + gen + "\\\" ü 🙂 12345678901234567890\""));
                        if (random.Next(10) == 0) f.Add(new KeyValuePair<string, string>("big", "12345678901234567890"));
                    }
                    else if (kind == "patch")
                    {
                        opSeq = ++seq;
                        f = new List<KeyValuePair<string, string>> { new KeyValuePair<string, string>("seq", "\"" + seq + "\"") };
                        Put(f, "f" + random.Next(8), "\"p" + seq + "\"");
                        if (random.Next(4) == 0) Put(f, "f" + random.Next(8), "\"q" + seq + "\"");
                        if (random.Next(20) == 0) Put(f, "num", "1.0e3");
                    }
                    round.Ops.Add(new FaultOp { Id = id, Fields = f, Json = f == null ? "" : Format(f), Seq = opSeq });
                }
                w.Rounds.Add(round);
                w.ItemsByKind.TryGetValue(kind, out int c);
                w.ItemsByKind[kind] = c + size;
                n += size;
            }
            w.Items = n;
            return w;
        }

        /// <summary>
        /// One of the concurrency test's producers: <paramref name="patchItems"/> patches {"&lt;tag&gt;":"&lt;n&gt;"} to
        /// shared ids (n counts this producer's patches per id: 1, 2, 3...; half the picks to a hot tenth), and
        /// <paramref name="ownItems"/> sets / removes (7 to 3) of ids only this producer writes, in rounds of one
        /// kind of 1..maxRound items, mixed at random.
        /// </summary>
        public static FaultWorkload GenerateProducer(Random random, string tag, string sharedPrefix, int sharedIds,
            string ownPrefix, int ownIds, int patchItems, int ownItems, int maxRound)
        {
            var w = new FaultWorkload();
            int hot = Math.Max(1, sharedIds / 10);
            int patchesLeft = patchItems, ownLeft = ownItems;
            long gen = 0;
            while (patchesLeft + ownLeft > 0)
            {
                bool patch = random.Next(patchesLeft + ownLeft) < patchesLeft;
                string kind = patch ? "patch" : (random.Next(10) < 7 ? "set" : "remove");
                int size = Math.Min(patch ? patchesLeft : ownLeft, 1 + random.Next(maxRound));
                var round = new FaultRound { Kind = kind };
                for (int i = 0; i < size; i++)
                {
                    if (patch)
                    {
                        string id = sharedPrefix + (random.Next(2) == 0 ? random.Next(hot) : random.Next(sharedIds));
                        w.PatchCounts.TryGetValue(id, out long c);
                        w.PatchCounts[id] = ++c;
                        var f = new List<KeyValuePair<string, string>> { new KeyValuePair<string, string>(tag, "\"" + c + "\"") };
                        round.Ops.Add(new FaultOp { Id = id, Fields = f, Json = Format(f), Seq = c });
                    }
                    else
                    {
                        string id = ownPrefix + random.Next(ownIds);
                        List<KeyValuePair<string, string>> f = null;
                        if (kind == "set")
                        {
                            gen++;
                            f = new List<KeyValuePair<string, string>>
                            {
                                new KeyValuePair<string, string>("name", "\"" + id + "\""),
                                new KeyValuePair<string, string>("by", "\"" + tag + "\""),
                                new KeyValuePair<string, string>("gen", "\"" + gen + "\""),
                            };
                        }
                        round.Ops.Add(new FaultOp { Id = id, Fields = f, Json = f == null ? "" : Format(f) });
                    }
                }
                if (patch) patchesLeft -= size; else ownLeft -= size;
                w.Rounds.Add(round);
                w.ItemsByKind.TryGetValue(kind, out int k);
                w.ItemsByKind[kind] = k + size;
                w.Items += size;
            }
            return w;
        }

        /// <summary>
        /// The state the cache must hold once every item of these rounds is flushed. Valid when all the rounds
        /// were produced before the flushes that drain them began: sets and removes take effect in the cache
        /// when produced (in order); patches and raw deletes when flushed (in queue order), on the state the
        /// immediate writes left.
        ///   set, remove   version + 1, always (a remove of an absent profile is still a versioned tombstone)
        ///   patch         merged (named top-level fields replaced in place, new ones appended), version + 1;
        ///                 nothing at all when the profile is deleted (a tombstone is never revived by a patch)
        ///   rawdelete     deleted, version + 1, when cached; otherwise nothing
        ///   rawpersist    nothing (set:user:&lt;id&gt;:&lt;v&gt; / delete:user:&lt;id&gt;:&lt;v&gt; from a raw producer)
        /// </summary>
        public static Dictionary<string, FaultExpected> Expect(IEnumerable<FaultRound> rounds, Dictionary<string, FaultExpected> initial = null)
        {
            var state = new Dictionary<string, FaultExpected>(StringComparer.Ordinal);
            if (initial != null)
            {
                foreach (var kv in initial)
                {
                    state[kv.Key] = new FaultExpected
                    {
                        Fields = kv.Value.Fields == null ? null : new List<KeyValuePair<string, string>>(kv.Value.Fields),
                        Version = kv.Value.Version, LastPatchSeq = kv.Value.LastPatchSeq, Patches = kv.Value.Patches,
                    };
                }
            }
            FaultExpected Get(string id)
            {
                if (!state.TryGetValue(id, out var st)) { st = new FaultExpected(); state[id] = st; }
                return st;
            }
            var list = new List<FaultRound>(rounds);
            foreach (var r in list)
            {
                if (r.Kind != "set" && r.Kind != "remove") continue;
                foreach (var op in r.Ops)
                {
                    var st = Get(op.Id);
                    st.Fields = r.Kind == "set" ? new List<KeyValuePair<string, string>>(op.Fields) : null;
                    st.Version++;
                }
            }
            foreach (var r in list)
            {
                if (r.Kind != "patch" && r.Kind != "rawdelete" && r.Kind != "rawpersist") continue;
                foreach (var op in r.Ops)
                {
                    var st = Get(op.Id);
                    if (r.Kind == "patch")
                    {
                        st.LastPatchSeq = op.Seq;
                        if (st.Fields == null && st.Version > 0) continue;
                        if (st.Fields == null) st.Fields = new List<KeyValuePair<string, string>>();
                        foreach (var f in op.Fields) Put(st.Fields, f.Key, f.Value);
                        st.Version++;
                        st.Patches++;
                    }
                    else if (r.Kind == "rawdelete" && st.Fields != null)
                    {
                        st.Fields = null;
                        st.Version++;
                    }
                }
            }
            foreach (var st in state.Values) st.Json = st.Fields == null ? null : Format(st.Fields);
            return state;
        }
    }
}
