// Bench helper for build.ps1 Bench.
//
//   StoreLimit store-limit <sqlite file> <rows> [batch=2000] [shuffled|sequential]
//       Upserts <rows> distinct rows (ids c0..c<rows-1>, in a shuffled order by default) into a fresh
//       SQLite file through SqliteProfileStore.CommitAsync, one transaction per batch, and prints one JSON
//       line: rows, applied, seconds, rowsPerSecond.
//       The rows are built before the clock starts; the store is opened (schema created) before it too.
//
//   StoreLimit enqueue <redis endpoint> <items> [seed=42]
//       Fills the default-named write queue with a mixed workload as fast as the server takes it
//       (multi-value LPUSH of 1000 items, many calls in flight). Not measured by the bench; it only sets up
//       the flush. Mix: 10% patches on 1% hot ids, 5% set:user:<id>:1 items (their profiles and versions are
//       written to the cache first, as Set-UserProfile would have), 85% patches spread over <items> ids.
//       Prints one JSON line: items, hot, sets, cold, seconds.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using StackExchange.Redis;
using WriteBehind.Engine;
using WriteBehind.Engine.Store;

internal static partial class Program
{
    private static int Main(string[] args)
    {
        try
        {
            if (args.Length >= 3 && args[0] == "store-limit")
                return StoreLimit(args[1], long.Parse(args[2], CultureInfo.InvariantCulture),
                    args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 2000,
                    !(args.Length > 4 && args[4] == "sequential")).GetAwaiter().GetResult();
            if (args.Length >= 3 && ExternalModes.Contains(args[0]))
                return RunExternal(args).GetAwaiter().GetResult();
            if (args.Length >= 3 && args[0] == "enqueue")
                return Enqueue(args[1], long.Parse(args[2], CultureInfo.InvariantCulture),
                    args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 42).GetAwaiter().GetResult();
            Console.Error.WriteLine("usage: StoreLimit store-limit <file> <rows> [batch] [order] | sqlite-shell <file> <rows> [batch] [order] [staged] | " +
                "pg-store-limit <uri> <rows> [batch] [order] | psql-copy <uri> <rows> [batch] [order] | enqueue <redis> <items> [seed]");
            return 2;
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine(ex);
            return 1;
        }
    }

    /// <summary>With WRITEBEHIND_BENCH_WARMUP=1, one commit of other ids before the timed part, so that it holds
    /// no JIT work.</summary>
    private static async Task WarmUpAsync(IProfileStore store, ProfileRow[] like)
    {
        if (Environment.GetEnvironmentVariable("WRITEBEHIND_BENCH_WARMUP") != "1") return;
        var warm = new ProfileRow[like.Length];
        for (int i = 0; i < warm.Length; i++) warm[i] = new ProfileRow("w" + i.ToString(CultureInfo.InvariantCulture), like[i].Json, 1);
        await store.CommitAsync(warm, CancellationToken.None);
    }

    private static async Task<int> StoreLimit(string file, long rows, int batch, bool shuffle)
    {
        foreach (var f in new[] { file, file + "-wal", file + "-shm" })
            if (System.IO.File.Exists(f)) System.IO.File.Delete(f);

        var batches = BuildBatches(rows, batch, shuffle);

        using (var store = new SqliteProfileStore(file))
        {
            await store.CountAsync(CancellationToken.None); // open, create the schema
            await WarmUpAsync(store, batches[0]);
            var process = Process.GetCurrentProcess();
            TimeSpan cpu0 = process.TotalProcessorTime;
            long written0 = WrittenChars();
            var sw = Stopwatch.StartNew();
            long applied = 0;
            foreach (var b in batches)
            {
                var r = await store.CommitAsync(b, CancellationToken.None);
                applied += r.Applied;
            }
            sw.Stop();
            process.Refresh();
            double cpu = (process.TotalProcessorTime - cpu0).TotalSeconds;
            long written = WrittenChars() - written0;
            long fileBytes = new System.IO.FileInfo(file).Length;
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "{{\"rows\":{0},\"applied\":{1},\"order\":\"{2}\",\"seconds\":{3:R},\"rowsPerSecond\":{4:R},\"cpuSeconds\":{5:R},\"bytesWritten\":{6},\"fileBytes\":{7}}}",
                rows, applied, shuffle ? "shuffled" : "sequential", sw.Elapsed.TotalSeconds, rows / sw.Elapsed.TotalSeconds, cpu, written, fileBytes));
            return applied == rows ? 0 : 3;
        }
    }

    /// <summary>Bytes this process passed to write() so far (Linux /proc/self/io wchar; -1 elsewhere):
    /// with SQLite in WAL mode, the WAL pages written plus the checkpoints.</summary>
    private static long WrittenChars()
    {
        try
        {
            foreach (string line in System.IO.File.ReadAllLines("/proc/self/io"))
                if (line.StartsWith("wchar:", StringComparison.Ordinal))
                    return long.Parse(line.Substring(6).Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception) { }
        return -1;
    }

    private static async Task<int> Enqueue(string endpoint, long items, int seed)
    {
        var keys = new KeyNames();
        var rnd = new Random(seed);
        long hotIds = Math.Max(1, items / 100);
        long hot = 0, sets = 0, cold = 0;
        var sw = Stopwatch.StartNew();
        using (var mux = await ConnectionMultiplexer.ConnectAsync(endpoint + ",abortConnect=false,syncTimeout=60000,asyncTimeout=60000"))
        {
            IDatabase db = mux.GetDatabase();
            var pending = new List<Task>();
            var chunk = new List<RedisValue>(1000);
            var setFields = new List<HashEntry>(1000);
            var setVersions = new List<HashEntry>(1000);

            async Task Drain(int keep)
            {
                while (pending.Count > keep)
                {
                    await pending[0];
                    pending.RemoveAt(0);
                }
            }

            void FlushChunk()
            {
                // Profiles of set items reach the cache before their queue items, as with Set-UserProfile.
                if (setFields.Count > 0)
                {
                    pending.Add(db.HashSetAsync(keys.Cache, setFields.ToArray()));
                    pending.Add(db.HashSetAsync(keys.Versions, setVersions.ToArray()));
                    setFields.Clear();
                    setVersions.Clear();
                }
                if (chunk.Count > 0)
                {
                    pending.Add(db.ListLeftPushAsync(keys.Queue, chunk.ToArray()));
                    chunk.Clear();
                }
            }

            for (long i = 0; i < items; i++)
            {
                double r = rnd.NextDouble();
                string item;
                if (r < 0.10)
                {
                    long id = rnd.NextInt64(hotIds);
                    item = "update:user:h" + id.ToString(CultureInfo.InvariantCulture) + ":{\"age\":\"" + (30 + (i % 50)).ToString(CultureInfo.InvariantCulture) + "\"}";
                    hot++;
                }
                else if (r < 0.15)
                {
                    string field = "user:s" + sets.ToString(CultureInfo.InvariantCulture);
                    setFields.Add(new HashEntry(field, "{\"name\":\"s" + sets.ToString(CultureInfo.InvariantCulture) + "\",\"age\":\"30\"}"));
                    setVersions.Add(new HashEntry(field, 1));
                    item = "set:" + field + ":1";
                    sets++;
                }
                else
                {
                    long id = rnd.NextInt64(items);
                    item = "update:user:c" + id.ToString(CultureInfo.InvariantCulture) + ":{\"age\":\"31\"}";
                    cold++;
                }
                chunk.Add(item);
                if (chunk.Count == 1000)
                {
                    FlushChunk();
                    if (pending.Count >= 64) await Drain(32);
                }
            }
            FlushChunk();
            await Drain(0);
            long depth = await db.ListLengthAsync(keys.Queue);
            sw.Stop();
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "{{\"items\":{0},\"hot\":{1},\"sets\":{2},\"cold\":{3},\"hotIds\":{4},\"queueDepth\":{5},\"seconds\":{6:R}}}",
                items, hot, sets, cold, hotIds, depth, sw.Elapsed.TotalSeconds));
            return depth >= items ? 0 : 3;
        }
    }
}
