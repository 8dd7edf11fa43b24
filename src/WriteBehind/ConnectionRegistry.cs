using System;
using System.Collections.Concurrent;
using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>The connection cmdlets use when no -Connection is given: the one Connect-WriteBehind made,
    /// else one made from the environment and reused for the rest of the process.</summary>
    internal static class ConnectionRegistry
    {
        private static readonly object Gate = new object();
        private static readonly ConcurrentDictionary<string, WriteBehindConnection> FromEnvironment =
            new ConcurrentDictionary<string, WriteBehindConnection>(StringComparer.Ordinal);

        public static WriteBehindConnection Default { get; private set; }

        public static void SetDefault(WriteBehindConnection connection)
        {
            lock (Gate)
            {
                var old = Default;
                Default = connection;
                if (old != null && !ReferenceEquals(old, connection)) old.Dispose();
            }
        }

        public static bool ClearDefault(WriteBehindConnection onlyIf = null)
        {
            lock (Gate)
            {
                var old = Default;
                if (old == null || (onlyIf != null && !ReferenceEquals(old, onlyIf))) return false;
                Default = null;
                old.Dispose();
                return true;
            }
        }

        public static WriteBehindConnection Resolve()
        {
            var current = Default;
            if (current != null) return current;
            var options = WriteBehindOptions.FromEnvironment();
            // The key holds the password only in memory; it is never printed.
            string key = string.Join("\n", options.Redis, options.Store, options.KeyPrefix, options.HighWaterMark.ToString());
            if (FromEnvironment.TryGetValue(key, out var cached) && cached.IsConnected) return cached;
            lock (Gate)
            {
                if (FromEnvironment.TryGetValue(key, out cached) && cached.IsConnected) return cached;
                var created = WriteBehindConnection.ConnectAsync(options).GetAwaiter().GetResult();
                if (cached != null) cached.Dispose();
                FromEnvironment[key] = created;
                return created;
            }
        }

        public static void DisposeAll()
        {
            lock (Gate)
            {
                Default?.Dispose();
                Default = null;
                foreach (var c in FromEnvironment.Values) c.Dispose();
                FromEnvironment.Clear();
            }
        }
    }

    /// <summary>Closes the connections when the module is removed.</summary>
    public sealed class ModuleCleanup : IModuleAssemblyCleanup
    {
        public void OnRemove(PSModuleInfo psModuleInfo) => ConnectionRegistry.DisposeAll();
    }
}
