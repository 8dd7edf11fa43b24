#if !NET
using System;
using System.IO;
using System.Reflection;

namespace WriteBehind.Commands
{
    // Windows PowerShell 5.1 (.NET Framework) has a single load context: an AppDomain.AssemblyResolve handler
    // loads an assembly named after a file in dependencies/ from there, when it is first asked for (not tested
    // here: no Windows machine).
    internal static partial class DependencyResolver
    {
        private static void AddHandler() => AppDomain.CurrentDomain.AssemblyResolve += ResolveOnNetFramework;

        private static void RemoveHandler() => AppDomain.CurrentDomain.AssemblyResolve -= ResolveOnNetFramework;

        private static Assembly ResolveOnNetFramework(object sender, ResolveEventArgs args)
        {
            string simpleName = new AssemblyName(args.Name).Name;
            if (string.IsNullOrEmpty(simpleName)) return null;
            string path = Path.Combine(DependencyDirectory, simpleName + ".dll");
            return File.Exists(path) ? Assembly.LoadFrom(path) : null;
        }
    }
}
#endif
