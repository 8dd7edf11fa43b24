using System;
using System.IO;
using System.Runtime.InteropServices;

namespace WriteBehind.Engine.Store
{
    /// <summary>Initializes SQLitePCLRaw once, before Microsoft.Data.Sqlite is first used.</summary>
    /// <remarks>
    /// On .NET (PowerShell 7.4+, the net8.0 build) the native library needs no help here: the module's load
    /// context (WriteBehind.dll's DependencyLoadContext) resolves e_sqlite3 from
    /// <c>dependencies/runtimes/&lt;rid&gt;/native/</c>, and an ordinary app with a deps.json (a test host)
    /// resolves it by itself. Only the netstandard2.0 build, which runs on Windows PowerShell 5.1 (.NET
    /// Framework, Windows only), loads the bundled file by full path with LoadLibraryW first, after which
    /// DllImport("e_sqlite3") finds the module already in the process.
    /// </remarks>
    internal static class SqliteNative
    {
        private static readonly object Sync = new object();
        private static volatile bool _initialized;

        /// <summary>Idempotent and thread-safe; call before the first use of Microsoft.Data.Sqlite.</summary>
        public static void EnsureLoaded()
        {
            if (_initialized)
                return;

            lock (Sync)
            {
                if (_initialized)
                    return;
#if !NET
                LoadBundledLibraryOnNetFramework();
#endif
                SQLitePCL.Batteries_V2.Init();
                _initialized = true;
            }
        }

        /// <summary>The runtime identifier of this process (win-x64, linux-arm64, osx-arm64...).</summary>
        internal static string CurrentRid()
        {
#if NET
            return RuntimeInformation.RuntimeIdentifier;
#else
            return "win-" + ArchitecturePart();
#endif
        }

#if !NET
        private static void LoadBundledLibraryOnNetFramework()
        {
            if (!RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
                return;
            string location = typeof(SqliteNative).Assembly.Location;
            if (string.IsNullOrEmpty(location))
                return; // loaded from bytes
            string path = Path.Combine(Path.GetDirectoryName(location) ?? string.Empty, "runtimes", CurrentRid(), "native", "e_sqlite3.dll");
            if (!File.Exists(path))
                return; // not the module's layout: leave it to the loader
            if (LoadLibraryW(path) == IntPtr.Zero)
            {
                int error = Marshal.GetLastWin32Error();
                throw new DllNotFoundException("Could not load the native SQLite library '" + path + "' (Win32 error " + error + ").");
            }
        }

        private static string ArchitecturePart()
        {
            switch (RuntimeInformation.ProcessArchitecture)
            {
                case Architecture.X64: return "x64";
                case Architecture.X86: return "x86";
                case Architecture.Arm64: return "arm64";
                default: return RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
            }
        }

        [DllImport("kernel32", CharSet = CharSet.Unicode, SetLastError = true, ExactSpelling = true)]
        private static extern IntPtr LoadLibraryW(string lpLibFileName);
#endif
    }
}
