// The store limit measured by programs that do not use the module (issue 13), beside our own store path:
//
//   StoreLimit sqlite-shell <sqlite file> <rows> [batch=2000] [shuffled|sequential] [literal|staged]
//       The rows of store-limit (same ids, same order, each batch sorted by id as CommitAsync sorts it) through
//       the sqlite3 shell: a fresh file whose schema SqliteProfileStore created (untimed), then one sqlite3
//       process with SqliteProfileStore's PRAGMAs (journal_mode=WAL, synchronous=NORMAL, cache_size,
//       wal_autocheckpoint) running the module's upsert statement, <batch> rows per BEGIN IMMEDIATE ... COMMIT.
//       literal (default): one INSERT ... ON CONFLICT statement per row with literal values; timed from the
//       process start to its exit (the shell parses each statement: what a script would do).
//       staged: the rows loaded into a TEMP table first (untimed), then per batch one
//       INSERT ... SELECT ... ON CONFLICT of that batch's rows; timed by the shell's own .timer (the sum of the
//       batch statements' real time): SQLite's upsert with no parse or bind work per row.
//   StoreLimit pg-store-limit <postgres uri> <rows> [batch=2000] [shuffled|sequential]
//       The same rows through PostgresProfileStore.CommitAsync into the fresh database the URI names
//       (password from WRITEBEHIND_STORE_PASSWORD): the PostgreSQL store's own limit.
//   StoreLimit psql-copy <postgres uri> <rows> [batch=2000] [shuffled|sequential]
//       The same rows through psql ($WRITEBEHIND_PSQL or psql on PATH): per batch, BEGIN, COPY into a TEMP
//       staging table (ON COMMIT DELETE ROWS), INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE
//       stored.version < excluded.version (the store's own condition), COMMIT. Timed from the process start to
//       its exit. The schema is created by PostgresProfileStore first (untimed).
// Each prints one JSON line: rows, applied, seconds, rowsPerSecond, cpuSeconds (this process and its
// children: the sqlite3 / psql process), and for PostgreSQL dbCpuSeconds: the CPU of the server whose
// postmaster PID is in $WRITEBEHIND_BENCH_PG_PID (its own time, its reaped children's and its live
// children's), -1 when the variable is not set.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using WriteBehind.Engine;
using WriteBehind.Engine.Store;

internal static partial class Program
{
    private static readonly HashSet<string> ExternalModes = new HashSet<string> { "sqlite-shell", "pg-store-limit", "psql-copy" };

    private const string SqliteUpsertTail =
        " ON CONFLICT(user_id) DO UPDATE SET json = excluded.json, version = excluded.version, " +
        "deleted = excluded.deleted, updated_at = excluded.updated_at WHERE excluded.version > user_profiles.version;";

    private const string PostgresUpsert =
        "INSERT INTO user_profiles AS stored (user_id, json, version, deleted, updated_at) " +
        "SELECT user_id, json, version, json IS NULL, now() FROM wb_stage ORDER BY user_id " +
        "ON CONFLICT (user_id) DO UPDATE SET json = excluded.json, version = excluded.version, " +
        "deleted = excluded.deleted, updated_at = excluded.updated_at WHERE stored.version < excluded.version;";

    private static async Task<int> RunExternal(string[] args)
    {
        string target = args[1];
        long rows = long.Parse(args[2], CultureInfo.InvariantCulture);
        int batch = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 2000;
        bool shuffle = !(args.Length > 4 && args[4] == "sequential");
        var batches = BuildBatches(rows, batch, shuffle);
        foreach (var b in batches)
            Array.Sort(b, (x, y) => string.CompareOrdinal(x.UserId, y.UserId)); // as every store sorts a commit
        switch (args[0])
        {
            case "sqlite-shell": return await SqliteShell(target, rows, batches, shuffle, args.Length > 5 && args[5] == "staged");
            case "pg-store-limit": return await PostgresStoreLimit(target, rows, batches, shuffle);
            default: return await PsqlCopy(target, rows, batches, shuffle);
        }
    }

    /// <summary>The rows of every mode: ids c0..c(rows-1), shuffled by a fixed seed (or in key order), in batches.</summary>
    private static List<ProfileRow[]> BuildBatches(long rows, int batch, bool shuffle)
    {
        // Distinct ids in a shuffled order: the flush meets its ids in random order too, and random
        // inserts into the WITHOUT ROWID primary key cost more than appends.
        var order = new long[rows];
        for (long i = 0; i < rows; i++) order[i] = i;
        if (shuffle) new Random(7).Shuffle(order);
        var batches = new List<ProfileRow[]>();
        for (long start = 0; start < rows; start += batch)
        {
            int n = (int)Math.Min(batch, rows - start);
            var b = new ProfileRow[n];
            for (int i = 0; i < n; i++)
            {
                long id = order[start + i];
                b[i] = new ProfileRow("c" + id.ToString(CultureInfo.InvariantCulture),
                    "{\"name\":\"u" + id.ToString(CultureInfo.InvariantCulture) + "\",\"age\":\"31\"}", 2);
            }
            batches.Add(b);
        }
        return batches;
    }

    private static async Task<int> SqliteShell(string file, long rows, List<ProfileRow[]> batches, bool shuffle, bool staged)
    {
        foreach (var f in new[] { file, file + "-wal", file + "-shm" })
            if (File.Exists(f)) File.Delete(f);
        using (var store = new SqliteProfileStore(file))
            await store.CountAsync(CancellationToken.None); // the module's schema (and WAL mode, which the file keeps)

        string updatedAt = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture);
        string script = file + ".sql";
        using (var w = new StreamWriter(script, false, new UTF8Encoding(false), 1 << 16))
        {
            // SqliteProfileStore's connection settings (EnsureOpen).
            w.Write("PRAGMA busy_timeout = 1000;\nPRAGMA journal_mode = WAL;\nPRAGMA synchronous = NORMAL;\n" +
                    "PRAGMA cache_size = -16384;\nPRAGMA wal_autocheckpoint = 16384;\n");
            w.Write("SELECT 'settings', (SELECT journal_mode FROM pragma_journal_mode), (SELECT synchronous FROM pragma_synchronous), sqlite_version();\n");
            if (staged)
            {
                w.Write("CREATE TEMP TABLE stage(n INTEGER PRIMARY KEY, user_id TEXT, json TEXT, version INTEGER);\n");
                long n = 0;
                foreach (var b in batches)
                {
                    w.Write("INSERT INTO stage VALUES");
                    for (int i = 0; i < b.Length; i++)
                    {
                        w.Write(i == 0 ? "(" : ",(");
                        w.Write((n++).ToString(CultureInfo.InvariantCulture)); w.Write(',');
                        WriteSqlLiteral(w, b[i].UserId); w.Write(',');
                        WriteSqlLiteral(w, b[i].Json); w.Write(',');
                        w.Write(b[i].Version.ToString(CultureInfo.InvariantCulture)); w.Write(')');
                    }
                    w.Write(";\n");
                }
                w.Write(".timer on\n");
                n = 0;
                foreach (var b in batches)
                {
                    w.Write("BEGIN IMMEDIATE;\nINSERT INTO user_profiles(user_id, json, version, deleted, updated_at) " +
                            "SELECT user_id, json, version, json IS NULL, ");
                    WriteSqlLiteral(w, updatedAt);
                    w.Write(" FROM stage WHERE n BETWEEN " + n.ToString(CultureInfo.InvariantCulture) + " AND " +
                            (n + b.Length - 1).ToString(CultureInfo.InvariantCulture) + " ORDER BY n");
                    w.Write(SqliteUpsertTail);
                    w.Write("\nCOMMIT;\n");
                    n += b.Length;
                }
                w.Write(".timer off\n");
            }
            else
            {
                foreach (var b in batches)
                {
                    w.Write("BEGIN IMMEDIATE;\n");
                    foreach (var row in b)
                    {
                        w.Write("INSERT INTO user_profiles(user_id, json, version, deleted, updated_at) VALUES(");
                        WriteSqlLiteral(w, row.UserId); w.Write(',');
                        WriteSqlLiteral(w, row.Json); w.Write(',');
                        w.Write(row.Version.ToString(CultureInfo.InvariantCulture)); w.Write(row.IsDeleted ? ",1," : ",0,");
                        WriteSqlLiteral(w, updatedAt); w.Write(')');
                        w.Write(SqliteUpsertTail);
                        w.Write('\n');
                    }
                    w.Write("COMMIT;\n");
                }
            }
            w.Write("SELECT 'applied', total_changes() - " + (staged ? rows.ToString(CultureInfo.InvariantCulture) : "0") + ", (SELECT COUNT(*) FROM user_profiles);\n");
        }

        string sqlite3 = Environment.GetEnvironmentVariable("WRITEBEHIND_SQLITE3") ?? "sqlite3";
        var run = RunTool(sqlite3, new[] { "-bail", "-batch", file }, script, null);
        File.Delete(script);
        string settings = "", version = "";
        long applied = -1, tableRows = -1;
        double timerSeconds = 0, timerCpu = 0;
        foreach (string line in run.Output)
        {
            string[] f = line.Split('|');
            if (f[0] == "settings" && f.Length >= 4) { settings = "journal_mode=" + f[1] + ",synchronous=" + f[2]; version = f[3]; }
            else if (f[0] == "applied" && f.Length >= 3) { applied = long.Parse(f[1], CultureInfo.InvariantCulture); tableRows = long.Parse(f[2], CultureInfo.InvariantCulture); }
            else if (line.StartsWith("Run Time: real ", StringComparison.Ordinal))
            {
                // Run Time: real 0.001 user 0.000123 sys 0.000045
                string[] t = line.Split(' ');
                timerSeconds += double.Parse(t[3], CultureInfo.InvariantCulture);
                timerCpu += double.Parse(t[5], CultureInfo.InvariantCulture) + double.Parse(t[7], CultureInfo.InvariantCulture);
            }
        }
        if (run.ExitCode != 0)
            throw new InvalidOperationException("sqlite3 failed (exit code " + run.ExitCode + "): " + string.Join("\n", run.Output));
        double seconds = staged ? timerSeconds : run.Seconds;
        double cpu = staged ? timerCpu : run.CpuSeconds;
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "{{\"rows\":{0},\"applied\":{1},\"tableRows\":{2},\"order\":\"{3}\",\"shape\":\"{4}\",\"seconds\":{5:R},\"rowsPerSecond\":{6:R},\"cpuSeconds\":{7:R},\"processSeconds\":{8:R},\"sqliteVersion\":\"{9}\",\"settings\":\"{10}\"}}",
            rows, applied, tableRows, shuffle ? "shuffled" : "sequential", staged ? "staged" : "literal", seconds, rows / seconds, cpu, run.Seconds, version, settings));
        return applied == rows ? 0 : 3;
    }

    private static async Task<int> PostgresStoreLimit(string uri, long rows, List<ProfileRow[]> batches, bool shuffle)
    {
        using (IProfileStore store = StoreFactory.Open(uri, null, Environment.GetEnvironmentVariable("WRITEBEHIND_STORE_PASSWORD")))
        {
            await store.CountAsync(CancellationToken.None); // connect, create the schema
            await WarmUpAsync(store, batches[0]);
            var process = Process.GetCurrentProcess();
            TimeSpan cpu0 = process.TotalProcessorTime;
            double db0 = PostgresCpuSeconds();
            var sw = Stopwatch.StartNew();
            long applied = 0;
            foreach (var b in batches)
                applied += (await store.CommitAsync(b, CancellationToken.None)).Applied;
            sw.Stop();
            double db = PostgresCpuSeconds() - db0;
            process.Refresh();
            double cpu = (process.TotalProcessorTime - cpu0).TotalSeconds;
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "{{\"rows\":{0},\"applied\":{1},\"order\":\"{2}\",\"seconds\":{3:R},\"rowsPerSecond\":{4:R},\"cpuSeconds\":{5:R},\"dbCpuSeconds\":{6:R}}}",
                rows, applied, shuffle ? "shuffled" : "sequential", sw.Elapsed.TotalSeconds, rows / sw.Elapsed.TotalSeconds, cpu, db0 < 0 ? -1 : db));
            return applied == rows ? 0 : 3;
        }
    }

    private static async Task<int> PsqlCopy(string uri, long rows, List<ProfileRow[]> batches, bool shuffle)
    {
        string password = Environment.GetEnvironmentVariable("WRITEBEHIND_STORE_PASSWORD");
        using (IProfileStore store = StoreFactory.Open(uri, null, password))
            await store.CountAsync(CancellationToken.None); // the module's schema

        // postgres://user@host:port/database
        var u = new Uri(uri);
        string script = Path.Combine(Path.GetTempPath(), "wb-psql-copy-" + Guid.NewGuid().ToString("N") + ".sql");
        using (var w = new StreamWriter(script, false, new UTF8Encoding(false), 1 << 16))
        {
            w.Write("CREATE TEMP TABLE wb_stage(user_id text COLLATE \"C\", json text, version bigint) ON COMMIT DELETE ROWS;\n");
            foreach (var b in batches)
            {
                w.Write("BEGIN;\nCOPY wb_stage FROM STDIN;\n");
                foreach (var row in b)
                {
                    WriteCopyText(w, row.UserId); w.Write('\t');
                    if (row.IsDeleted) w.Write("\\N"); else WriteCopyText(w, row.Json);
                    w.Write('\t'); w.Write(row.Version.ToString(CultureInfo.InvariantCulture)); w.Write('\n');
                }
                w.Write("\\.\n");
                w.Write(PostgresUpsert);
                w.Write("\nCOMMIT;\n");
            }
            w.Write("SELECT 'applied', count(*) FROM user_profiles;\n");
        }
        string psql = Environment.GetEnvironmentVariable("WRITEBEHIND_PSQL") ?? "psql";
        double db0 = PostgresCpuSeconds();
        var run = RunTool(psql, new[] { "-X", "-q", "-t", "-A", "-F", "|", "-v", "ON_ERROR_STOP=1", "-h", u.Host, "-p", u.Port.ToString(CultureInfo.InvariantCulture),
            "-U", Uri.UnescapeDataString(u.UserInfo), "-d", u.AbsolutePath.TrimStart('/'), "-f", script }, null, password);
        // psql's backend exits with it; its CPU counts once the postmaster has reaped it (cutime/cstime).
        Thread.Sleep(500);
        double db = PostgresCpuSeconds() - db0;
        File.Delete(script);
        if (run.ExitCode != 0)
            throw new InvalidOperationException("psql failed (exit code " + run.ExitCode + "): " + string.Join("\n", run.Output));
        long applied = -1;
        foreach (string line in run.Output)
        {
            string[] f = line.Split('|');
            if (f[0] == "applied" && f.Length >= 2) applied = long.Parse(f[1], CultureInfo.InvariantCulture);
        }
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "{{\"rows\":{0},\"applied\":{1},\"order\":\"{2}\",\"shape\":\"copy+upsert\",\"seconds\":{3:R},\"rowsPerSecond\":{4:R},\"cpuSeconds\":{5:R},\"dbCpuSeconds\":{6:R}}}",
            rows, applied, shuffle ? "shuffled" : "sequential", run.Seconds, rows / run.Seconds, run.CpuSeconds, db0 < 0 ? -1 : db));
        return applied == rows ? 0 : 3;
    }

    private static void WriteSqlLiteral(TextWriter w, string value)
    {
        if (value == null) { w.Write("NULL"); return; }
        w.Write('\'');
        w.Write(value.Replace("'", "''"));
        w.Write('\'');
    }

    /// <summary>COPY's text format: backslash, tab, newline and carriage return escaped.</summary>
    private static void WriteCopyText(TextWriter w, string value)
    {
        foreach (char c in value)
        {
            switch (c)
            {
                case '\\': w.Write("\\\\"); break;
                case '\t': w.Write("\\t"); break;
                case '\n': w.Write("\\n"); break;
                case '\r': w.Write("\\r"); break;
                default: w.Write(c); break;
            }
        }
    }

    private sealed class ToolRun
    {
        public int ExitCode;
        public double Seconds;
        public double CpuSeconds;
        public List<string> Output = new List<string>();
    }

    /// <summary>Runs a tool (stdin from a file when given), timed from its start to its exit; its CPU from
    /// getrusage(RUSAGE_CHILDREN) before and after (the children this process waited for).</summary>
    private static ToolRun RunTool(string exe, string[] arguments, string stdinFile, string pgPassword)
    {
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdinFile != null };
        foreach (string a in arguments) psi.ArgumentList.Add(a);
        if (pgPassword != null) psi.Environment["PGPASSWORD"] = pgPassword;
        var run = new ToolRun();
        double cpu0 = ChildrenCpuSeconds();
        var sw = Stopwatch.StartNew();
        using (var p = Process.Start(psi))
        {
            var output = run.Output;
            p.OutputDataReceived += (s, e) => { if (e.Data != null) lock (output) output.Add(e.Data); };
            p.ErrorDataReceived += (s, e) => { if (e.Data != null) lock (output) output.Add(e.Data); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            if (stdinFile != null)
            {
                using (var input = File.OpenRead(stdinFile))
                    input.CopyTo(p.StandardInput.BaseStream);
                p.StandardInput.Close();
            }
            p.WaitForExit();
            sw.Stop();
            run.ExitCode = p.ExitCode;
        }
        run.Seconds = sw.Elapsed.TotalSeconds;
        run.CpuSeconds = ChildrenCpuSeconds() - cpu0;
        return run;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct RUsage
    {
        public long UserSeconds, UserMicroseconds, SystemSeconds, SystemMicroseconds;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 14)] public long[] Rest;
    }

    [DllImport("libc", EntryPoint = "getrusage")]
    private static extern int GetRUsage(int who, ref RUsage usage);

    private static double ChildrenCpuSeconds()
    {
        var u = new RUsage { Rest = new long[14] };
        if (!OperatingSystem.IsLinux() || GetRUsage(-1 /* RUSAGE_CHILDREN */, ref u) != 0) return 0;
        return u.UserSeconds + u.UserMicroseconds / 1e6 + u.SystemSeconds + u.SystemMicroseconds / 1e6;
    }

    /// <summary>CPU seconds of the PostgreSQL server whose postmaster PID is $WRITEBEHIND_BENCH_PG_PID: its own and
    /// its reaped children's time, plus its live children's own time; -1 without the variable.</summary>
    private static double PostgresCpuSeconds()
    {
        string pidText = Environment.GetEnvironmentVariable("WRITEBEHIND_BENCH_PG_PID");
        if (string.IsNullOrEmpty(pidText) || !OperatingSystem.IsLinux()) return -1;
        long ticks = 0;
        foreach (string dir in Directory.GetDirectories("/proc"))
        {
            string name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsDigit(name[0])) continue;
            try
            {
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                string[] f = stat.Substring(stat.LastIndexOf(')') + 2).Split(' ');
                // f[1] ppid, f[11] utime, f[12] stime, f[13] cutime, f[14] cstime
                if (name == pidText)
                    ticks += long.Parse(f[11]) + long.Parse(f[12]) + long.Parse(f[13]) + long.Parse(f[14]);
                else if (f[1] == pidText)
                    ticks += long.Parse(f[11]) + long.Parse(f[12]);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return ticks / 100.0;
    }
}
