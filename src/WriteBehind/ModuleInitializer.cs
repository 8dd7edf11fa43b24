using System.Management.Automation;

namespace WriteBehind.Commands
{
    /// <summary>Puts the dependency resolver in place when the module is imported, and takes it away again when
    /// the module is removed.</summary>
    /// <remarks>
    /// PowerShell enumerates this assembly's exported types before it calls <see cref="OnImport"/>, and two of
    /// them (ConnectWriteBehindCommand, UserProfile) hold engine enums in fields, so the CLR needs the engine
    /// to lay them out: the resolver must already be registered by then. The root module, WriteBehind.psm1,
    /// does that by calling <see cref="OnImport"/> before it imports WriteBehind.dll; PowerShell calls it again
    /// afterwards (it is idempotent).
    /// </remarks>
    public sealed class ModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
    {
        /// <summary>Registers the resolver for the module's <c>dependencies/</c> folder (idempotent).</summary>
        public void OnImport() => DependencyResolver.Register();

        /// <summary>Unregisters it (Remove-Module). Assemblies already loaded stay loaded: .NET unloads none of
        /// them, and WriteBehind.dll's binding to its engine is fixed for the process.</summary>
        public void OnRemove(PSModuleInfo psModuleInfo) => DependencyResolver.Unregister();
    }
}
