using System.IO;

namespace WriteBehind.Commands
{
    /// <summary>
    /// Loads the engine and everything it depends on (StackExchange.Redis, the store drivers, SQLite's native
    /// library) from the <c>dependencies/</c> folder next to WriteBehind.dll, when first used, so that another
    /// version of any of them already loaded in the process (by PowerShell, another module or a script's
    /// Add-Type) does not conflict with the module's.
    /// </summary>
    /// <remarks>
    /// Two builds, one per edition (WriteBehind.psm1 picks the folder): net8.0 for PowerShell 7.4+ uses a private
    /// <see cref="System.Runtime.Loader.AssemblyLoadContext"/> (DependencyResolver.Core.cs); netstandard2.0 for
    /// Windows PowerShell 5.1 an AppDomain.AssemblyResolve handler (DependencyResolver.Desktop.cs).
    /// </remarks>
    internal static partial class DependencyResolver
    {
        internal const string EngineAssemblyName = "WriteBehind.Engine";
        internal const string LoadContextName = "WriteBehind";

        private static readonly object Gate = new object();
        private static bool _registered;

        internal static string DependencyDirectory { get; } = Path.Combine(
            Path.GetDirectoryName(typeof(DependencyResolver).Assembly.Location) ?? string.Empty, "dependencies");

        /// <summary>Idempotent; loads nothing itself.</summary>
        internal static void Register()
        {
            lock (Gate)
            {
                if (_registered) return;
                // An assembly laid out next to WriteBehind.dll (a bin/ folder) needs no help.
                if (!Directory.Exists(DependencyDirectory)) return;
                AddHandler();
                _registered = true;
            }
        }

        internal static void Unregister()
        {
            lock (Gate)
            {
                if (!_registered) return;
                RemoveHandler();
                _registered = false;
            }
        }
    }
}
