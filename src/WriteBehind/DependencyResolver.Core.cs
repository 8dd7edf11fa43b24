#if NET
using System;
using System.IO;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace WriteBehind.Commands
{
    // PowerShell 7.4+ (.NET 8+): WriteBehind.dll lives in the default AssemblyLoadContext and references only
    // WriteBehind.Engine, which the default context cannot find (it is not next to WriteBehind.dll); the default
    // context's Resolving event then loads it into the private DependencyLoadContext. That context is asked
    // first for every assembly the engine (and what it loads) references, so the engine binds to the module's
    // StackExchange.Redis even when the default context already holds another one of the same assembly version
    // (2.0.0.0 for every 2.x). PowerShell resolves type literals in the default context only, so scripts cannot
    // name the engine's types ([WriteBehind.Engine.*]); the objects the cmdlets return work as usual.
    internal static partial class DependencyResolver
    {
        private static DependencyLoadContext _context;

        private static void AddHandler() => AssemblyLoadContext.Default.Resolving += ResolveEngine;

        private static void RemoveHandler() => AssemblyLoadContext.Default.Resolving -= ResolveEngine;

        // Only the engine is ours to answer here: WriteBehind.dll references nothing else of the module's.
        private static Assembly ResolveEngine(AssemblyLoadContext defaultContext, AssemblyName name)
        {
            if (!string.Equals(name.Name, EngineAssemblyName, StringComparison.OrdinalIgnoreCase)) return null;
            lock (Gate)
            {
                _context ??= new DependencyLoadContext(DependencyDirectory);
                return _context.LoadFromAssemblyName(name);
            }
        }
    }

    /// <summary>The module's private load context: its own copy of every assembly in <c>dependencies/</c>,
    /// loaded when first referenced, and the native SQLite library of this runtime from
    /// <c>dependencies/runtimes/&lt;rid&gt;/native/</c>. Everything else (the .NET runtime, PowerShell) comes
    /// from the default context.</summary>
    internal sealed class DependencyLoadContext : AssemblyLoadContext
    {
        private readonly string _directory;

        internal DependencyLoadContext(string directory) : base(DependencyResolver.LoadContextName, isCollectible: false)
        {
            _directory = directory;
        }

        protected override Assembly Load(AssemblyName assemblyName)
        {
            string path = Path.Combine(_directory, assemblyName.Name + ".dll");
            return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
        }

        protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
        {
            string file = NativeFileName(unmanagedDllName);
            foreach (string rid in RuntimeIdentifiers())
            {
                string path = Path.Combine(_directory, "runtimes", rid, "native", file);
                if (File.Exists(path)) return LoadUnmanagedDllFromPath(path);
            }
            return IntPtr.Zero; // the runtime's own probing
        }

        private static string NativeFileName(string name)
        {
            if (OperatingSystem.IsWindows()) return name.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? name : name + ".dll";
            string extension = OperatingSystem.IsMacOS() ? ".dylib" : ".so";
            if (!name.EndsWith(extension, StringComparison.Ordinal)) name += extension;
            return name.StartsWith("lib", StringComparison.Ordinal) ? name : "lib" + name;
        }

        // The runtime's own RID (linux-x64, linux-musl-arm64, osx-arm64, win-x64 for Microsoft's builds), then the
        // portable one for a distribution's build of .NET that names its own (ubuntu.24.04-x64).
        private static string[] RuntimeIdentifiers()
        {
            string arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
            string os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
            return new[] { RuntimeInformation.RuntimeIdentifier, os + "-" + arch };
        }
    }
}
#endif
