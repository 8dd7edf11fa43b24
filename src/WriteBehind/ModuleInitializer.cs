using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Reflection;

namespace WriteBehind.Commands
{
    /// <summary>Puts the dependency resolver in place when the module is imported.</summary>
    /// <remarks>
    /// PowerShell enumerates this assembly's exported types before it calls <see cref="OnImport"/>, and two of
    /// them (ConnectWriteBehindCommand, UserProfile) hold engine enums in fields, so the CLR needs the engine
    /// to lay them out: the resolver must already be registered by then. The manifest's first nested module,
    /// WriteBehind.Init.psm1, does that by calling <see cref="OnImport"/> before PowerShell loads
    /// WriteBehind.dll as the root module; PowerShell calls it again afterwards (it is idempotent).
    /// </remarks>
    public sealed class ModuleInitializer : IModuleAssemblyInitializer
    {
        public void OnImport() => DependencyResolver.Register();
    }

    /// <summary>
    /// Loads the engine and everything it depends on (StackExchange.Redis, Microsoft.Data.Sqlite, their
    /// System.* packages) from the module's <c>dependencies/</c> folder, so that another version of any of
    /// them already loaded in the process (by PowerShell, another module or a script's Add-Type) does not
    /// conflict with the module's.
    /// </summary>
    /// <remarks>
    /// <para>PowerShell 7 (.NET): WriteBehind.dll lives in the default AssemblyLoadContext and references only
    /// WriteBehind.Engine, which the default context cannot find (it is not next to WriteBehind.dll). Its
    /// <c>Resolving</c> event then asks this resolver, which loads the engine into a private
    /// AssemblyLoadContext named "WriteBehind". That context loads the engine's own dependencies from
    /// <c>dependencies/</c>: every file there that the runtime does not provide itself is loaded into it up
    /// front, so the engine's reference to StackExchange.Redis binds to the module's copy even when the
    /// default context already holds another StackExchange.Redis of the same assembly version (2.0.0.0 for
    /// every 2.x). Files the runtime does provide (System.Memory, System.IO.Pipelines...) are left to the
    /// runtime's newer copies, whose types the rest of the process shares; when the runtime's copy is too
    /// old the context's <c>Resolving</c> event loads the one in <c>dependencies/</c>. (Without the preload a
    /// context that finds nothing itself takes what the default context already has: tests/cmdlets/
    /// Isolation.Tests.ps1 fails then.) PowerShell resolves type literals in the default context only, so
    /// scripts cannot name the engine's types ([WriteBehind.Engine.*]) or the module's StackExchange.Redis;
    /// the objects the cmdlets return work as before.</para>
    /// <para>Windows PowerShell 5.1 (.NET Framework) has a single load context: an AppDomain.AssemblyResolve
    /// handler loads any assembly named after a file in <c>dependencies/</c> from there.</para>
    /// <para>netstandard2.0 cannot name AssemblyLoadContext, so it is reached by reflection.</para>
    /// </remarks>
    internal static class DependencyResolver
    {
        internal const string EngineAssemblyName = "WriteBehind.Engine";
        internal const string LoadContextName = "WriteBehind";

        private static readonly object Gate = new object();
        private static bool _registered;

        // Simple name -> full path of each assembly shipped in dependencies/.
        private static Dictionary<string, string> _shipped;
        // The private AssemblyLoadContext (PowerShell 7 only) and its LoadFromAssemblyPath method.
        private static object _context;
        private static MethodInfo _loadFromAssemblyPath;

        internal static string DependencyDirectory { get; } = Path.Combine(
            Path.GetDirectoryName(typeof(DependencyResolver).Assembly.Location) ?? string.Empty, "dependencies");

        /// <summary>Idempotent. Never removed again: once WriteBehind.dll is bound to the engine the binding
        /// is fixed for the process, and the handlers answer only for this module's own assemblies.</summary>
        internal static void Register()
        {
            lock (Gate)
            {
                if (_registered) return;
                _registered = true;
                _shipped = Directory.Exists(DependencyDirectory)
                    ? Directory.EnumerateFiles(DependencyDirectory, "*.dll")
                        .ToDictionary(f => Path.GetFileNameWithoutExtension(f), f => f, StringComparer.OrdinalIgnoreCase)
                    : new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                // An assembly laid out next to WriteBehind.dll (a bin/ folder, an old layout) needs no help.
                if (_shipped.Count == 0) return;

                Type loadContextType = typeof(object).Assembly.GetType("System.Runtime.Loader.AssemblyLoadContext");
                if (loadContextType != null)
                {
                    object defaultContext = loadContextType.GetProperty("Default", BindingFlags.Public | BindingFlags.Static).GetValue(null);
                    AddResolvingHandler(loadContextType, defaultContext, nameof(ResolveFromDefaultContext));
                }
                else
                {
                    AppDomain.CurrentDomain.AssemblyResolve += ResolveOnNetFramework;
                }
            }
        }

        // Func<AssemblyLoadContext, AssemblyName, Assembly>: the handler's first parameter is typed object,
        // which Delegate.CreateDelegate accepts for a reference-type parameter.
        private static void AddResolvingHandler(Type loadContextType, object context, string handlerName)
        {
            EventInfo resolving = loadContextType.GetEvent("Resolving");
            MethodInfo handler = typeof(DependencyResolver).GetMethod(handlerName, BindingFlags.NonPublic | BindingFlags.Static);
            resolving.AddEventHandler(context, Delegate.CreateDelegate(resolving.EventHandlerType, handler));
        }

        // Default context: only the engine is ours to answer (WriteBehind.dll references nothing else of the
        // module's); everything the engine needs is then resolved inside the private context.
        private static Assembly ResolveFromDefaultContext(object defaultContext, AssemblyName name)
        {
            if (!string.Equals(name.Name, EngineAssemblyName, StringComparison.OrdinalIgnoreCase)) return null;
            return LoadIntoPrivateContext(name.Name);
        }

        // Private context: reached for a dependency neither preloaded nor provided by the runtime in a
        // version high enough.
        private static Assembly ResolveInPrivateContext(object privateContext, AssemblyName name)
        {
            return name.Name != null && _shipped.ContainsKey(name.Name) ? LoadIntoPrivateContext(name.Name) : null;
        }

        private static Assembly LoadIntoPrivateContext(string simpleName)
        {
            if (!_shipped.TryGetValue(simpleName, out string path)) return null;
            lock (Gate)
            {
                EnsurePrivateContext();
                var loaded = FindLoaded(simpleName);
                return loaded ?? (Assembly)_loadFromAssemblyPath.Invoke(_context, new object[] { path });
            }
        }

        private static void EnsurePrivateContext()
        {
            if (_context != null) return;
            Type loadContextType = typeof(object).Assembly.GetType("System.Runtime.Loader.AssemblyLoadContext", throwOnError: true);
            object context = Activator.CreateInstance(loadContextType, LoadContextName, false);
            _loadFromAssemblyPath = loadContextType.GetMethod("LoadFromAssemblyPath", new[] { typeof(string) });
            AddResolvingHandler(loadContextType, context, nameof(ResolveInPrivateContext));
            _context = context;

            // A context looks in its own assemblies first and in the default context second: preloading
            // the module's copies keeps a same-versioned foreign copy in the default context out.
            var runtimeProvided = RuntimeProvidedAssemblies();
            foreach (var pair in _shipped)
            {
                if (runtimeProvided.Contains(pair.Key)) continue;
                _loadFromAssemblyPath.Invoke(_context, new object[] { pair.Value });
            }
        }

        private static Assembly FindLoaded(string simpleName)
        {
            var getAssemblies = _context.GetType().GetProperty("Assemblies", BindingFlags.Public | BindingFlags.Instance);
            var assemblies = (IEnumerable<Assembly>)getAssemblies.GetValue(_context);
            return assemblies.FirstOrDefault(a => string.Equals(a.GetName().Name, simpleName, StringComparison.OrdinalIgnoreCase));
        }

        /// <summary>Simple names of the assemblies the host application ships (.NET's own and PowerShell's).</summary>
        private static HashSet<string> RuntimeProvidedAssemblies()
        {
            var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            if (AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") is string list)
            {
                foreach (string file in list.Split(new[] { Path.PathSeparator }, StringSplitOptions.RemoveEmptyEntries))
                    names.Add(Path.GetFileNameWithoutExtension(file));
            }
            return names;
        }

        private static Assembly ResolveOnNetFramework(object sender, ResolveEventArgs args)
        {
            string simpleName = new AssemblyName(args.Name).Name;
            return simpleName != null && _shipped.TryGetValue(simpleName, out string path) ? Assembly.LoadFrom(path) : null;
        }
    }
}
