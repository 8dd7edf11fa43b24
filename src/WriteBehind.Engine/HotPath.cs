using System.Runtime.CompilerServices;

namespace WriteBehind.Engine
{
    /// <summary>The JIT hint on the producers' per-record and per-chunk methods (the cmdlets' and the engine's).
    /// A pipeline of 200,000 records is over in a few seconds: with tiered compilation these methods ran as
    /// unoptimized tier-0 code (then instrumented tier-0) for almost all of it, while the tiering thread queued
    /// them behind PowerShell's own methods. AggressiveOptimization compiles them optimized on first call and
    /// keeps them out of the tiering queue. The value is MethodImplOptions.AggressiveOptimization (.NET Core 3.0
    /// and later); netstandard2.0 does not name it, and .NET Framework ignores the bit.</summary>
    internal static class HotPath
    {
        internal const MethodImplOptions Optimize = (MethodImplOptions)512;
    }
}
