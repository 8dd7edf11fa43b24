using System;
using System.Collections.Generic;
using System.IO;
using System.Reflection;
using System.Runtime.InteropServices;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// Makes the native SQLite library (e_sqlite3) loadable before SQLitePCLRaw is first used.
    /// </summary>
    /// <remarks>
    /// PowerShell loads this netstandard2.0 engine without a deps.json entry for it, so the runtime's
    /// default probing never looks in <c>&lt;module folder&gt;/runtimes/&lt;rid&gt;/native/</c>, where the
    /// module ships e_sqlite3, and the first SqliteConnection fails with a TypeInitializationException.
    /// When the native file is found next to this assembly it is loaded explicitly:
    /// on .NET Core / .NET 5+ (pwsh 7) through a DllImport resolver registered, by reflection since
    /// netstandard2.0 cannot name NativeLibrary, on the SQLitePCLRaw provider assembly; on .NET Framework
    /// (Windows PowerShell 5.1) with LoadLibraryW, after which DllImport("e_sqlite3") finds the module
    /// already in the process. When the file is not there (an ordinary app with a deps.json, such as a
    /// test host) nothing special is done and the runtime resolves it by itself.
    /// </remarks>
    internal static class SqliteNative
    {
        private const string LibraryName = "e_sqlite3";

        private static readonly object Sync = new object();
        private static volatile bool _initialized;

        private static string _nativePath;
        private static IntPtr _nativeHandle;
        private static MethodInfo _nativeLibraryLoad;

        /// <summary>Full path of the native library that was loaded explicitly, or null when the
        /// runtime's own probing was left to find it.</summary>
        internal static string NativePath => _nativePath;

        /// <summary>Idempotent and thread-safe; call before the first use of Microsoft.Data.Sqlite.</summary>
        public static void EnsureLoaded()
        {
            if (_initialized)
                return;

            lock (Sync)
            {
                if (_initialized)
                    return;

                PrepareNativeLibrary();
                SQLitePCL.Batteries_V2.Init();
                _initialized = true;
            }
        }

        private static void PrepareNativeLibrary()
        {
            string path = FindBundledLibrary();
            if (path == null)
                return;

            Type nativeLibrary = Type.GetType("System.Runtime.InteropServices.NativeLibrary", throwOnError: false);
            if (nativeLibrary != null)
            {
                RegisterResolver(nativeLibrary, path);
            }
            else if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
            {
                // .NET Framework: DllImport goes through LoadLibrary("e_sqlite3"), which returns a module
                // of that name already loaded in the process, so loading it by full path first is enough.
                IntPtr handle = LoadLibraryW(path);
                if (handle == IntPtr.Zero)
                {
                    int error = Marshal.GetLastWin32Error();
                    throw new DllNotFoundException(
                        "Could not load the native SQLite library '" + path + "' (Win32 error " + error + ").");
                }
                _nativeHandle = handle;
                _nativePath = path;
            }
        }

        private static void RegisterResolver(Type nativeLibrary, string path)
        {
            Type resolverType = Type.GetType("System.Runtime.InteropServices.DllImportResolver", throwOnError: false);
            MethodInfo setResolver = nativeLibrary.GetMethod(
                "SetDllImportResolver",
                BindingFlags.Public | BindingFlags.Static,
                null,
                resolverType == null ? Type.EmptyTypes : new[] { typeof(Assembly), resolverType },
                null);
            MethodInfo load = nativeLibrary.GetMethod(
                "Load", BindingFlags.Public | BindingFlags.Static, null, new[] { typeof(string) }, null);
            if (resolverType == null || setResolver == null || load == null)
                return;

            _nativeLibraryLoad = load;
            _nativePath = path;

            MethodInfo resolveMethod = typeof(SqliteNative).GetMethod(
                nameof(Resolve), BindingFlags.NonPublic | BindingFlags.Static);
            Delegate resolver = Delegate.CreateDelegate(resolverType, resolveMethod);

            // The assembly that declares [DllImport("e_sqlite3")].
            Assembly providerAssembly = typeof(SQLitePCL.SQLite3Provider_e_sqlite3).Assembly;
            try
            {
                setResolver.Invoke(null, new object[] { providerAssembly, resolver });
            }
            catch (TargetInvocationException ex) when (ex.InnerException is InvalidOperationException)
            {
                // A resolver is already registered for that assembly (by the host or another module):
                // leave it in charge.
            }
        }

        // Signature of System.Runtime.InteropServices.DllImportResolver.
        private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
        {
            if (!string.Equals(libraryName, LibraryName, StringComparison.Ordinal) || _nativePath == null)
                return IntPtr.Zero;

            lock (Sync)
            {
                if (_nativeHandle == IntPtr.Zero)
                {
                    try
                    {
                        _nativeHandle = (IntPtr)_nativeLibraryLoad.Invoke(null, new object[] { _nativePath });
                    }
                    catch (TargetInvocationException ex) when (ex.InnerException != null)
                    {
                        // Surface the loader's own message (DllNotFoundException / BadImageFormatException).
                        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex.InnerException).Throw();
                    }
                }
                return _nativeHandle;
            }
        }

        /// <summary>The bundled native library for this process's platform, next to the engine
        /// assembly under runtimes/&lt;rid&gt;/native/, or null.</summary>
        private static string FindBundledLibrary()
        {
            string location;
            try
            {
                location = typeof(SqliteNative).Assembly.Location;
            }
            catch (NotSupportedException)
            {
                return null; // dynamic or in-memory assembly
            }
            if (string.IsNullOrEmpty(location))
                return null; // single-file app or loaded from bytes

            string baseDirectory = Path.GetDirectoryName(location);
            if (string.IsNullOrEmpty(baseDirectory))
                return null;

            string fileName = LibraryFileName();
            foreach (string rid in CandidateRids())
            {
                string candidate = Path.Combine(baseDirectory, "runtimes", rid, "native", fileName);
                if (File.Exists(candidate))
                    return candidate;
            }
            return null;
        }

        internal static string LibraryFileName()
        {
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
                return LibraryName + ".dll";
            if (RuntimeInformation.IsOSPlatform(OSPlatform.OSX))
                return "lib" + LibraryName + ".dylib";
            return "lib" + LibraryName + ".so";
        }

        /// <summary>The runtime identifier of this process (win-x64, linux-arm64, osx-arm64...).</summary>
        internal static string CurrentRid()
        {
            return OsPart() + "-" + ArchitecturePart();
        }

        private static IEnumerable<string> CandidateRids()
        {
            string arch = ArchitecturePart();
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && IsMusl())
                yield return "linux-musl-" + arch; // Alpine and friends
            yield return OsPart() + "-" + arch;
        }

        private static string OsPart()
        {
            if (RuntimeInformation.IsOSPlatform(OSPlatform.Windows))
                return "win";
            if (RuntimeInformation.IsOSPlatform(OSPlatform.OSX))
                return "osx";
            return "linux";
        }

        private static string ArchitecturePart()
        {
            Architecture arch = RuntimeInformation.ProcessArchitecture;
            switch (arch)
            {
                case Architecture.X64: return "x64";
                case Architecture.X86: return "x86";
                case Architecture.Arm64: return "arm64";
                case Architecture.Arm: return "arm";
                // Newer values (S390x, Ppc64le, RiscV64, LoongArch64...) are unknown to netstandard2.0
                // but their names are their RID spelling.
                default: return arch.ToString().ToLowerInvariant();
            }
        }

        private static bool IsMusl()
        {
            try
            {
                return Directory.Exists("/lib") && Directory.GetFiles("/lib", "ld-musl-*.so.1").Length > 0;
            }
            catch (Exception)
            {
                return false;
            }
        }

        [DllImport("kernel32", CharSet = CharSet.Unicode, SetLastError = true, ExactSpelling = true)]
        private static extern IntPtr LoadLibraryW(string lpLibFileName);
    }
}
