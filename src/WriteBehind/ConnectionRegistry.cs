using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
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

        // One default per runspace: Connect-WriteBehind in a thread job must not replace (and dispose)
        // the connection of the runspace that started the job.
        private static readonly ConcurrentDictionary<Guid, WriteBehindConnection> Defaults =
            new ConcurrentDictionary<Guid, WriteBehindConnection>();

        private static Guid RunspaceId => Runspace.DefaultRunspace?.InstanceId ?? Guid.Empty;

        // The runspace each default belongs to, to tell whether another open runspace has a connection.
        private static readonly ConcurrentDictionary<Guid, Runspace> Owners = new ConcurrentDictionary<Guid, Runspace>();

        private static bool AnotherOpenRunspaceIsConnected =>
            Owners.Any(o => o.Key != RunspaceId && o.Value?.RunspaceStateInfo.State == RunspaceState.Opened && Defaults.ContainsKey(o.Key));

        public static WriteBehindConnection Default => Defaults.TryGetValue(RunspaceId, out var c) ? c : null;

        public static void SetDefault(WriteBehindConnection connection)
        {
            lock (Gate)
            {
                Defaults.TryGetValue(RunspaceId, out var old);
                Defaults[RunspaceId] = connection;
                if (Runspace.DefaultRunspace != null) Owners[RunspaceId] = Runspace.DefaultRunspace;
                if (old != null && !ReferenceEquals(old, connection)) old.Dispose();
            }
        }

        public static bool ClearDefault(WriteBehindConnection onlyIf = null)
        {
            lock (Gate)
            {
                if (!Defaults.TryGetValue(RunspaceId, out var old) || (onlyIf != null && !ReferenceEquals(old, onlyIf))) return false;
                Defaults.TryRemove(RunspaceId, out _);
                Owners.TryRemove(RunspaceId, out _);
                old.Dispose();
                return true;
            }
        }

        internal const string OtherRunspaceHint =
            "This runspace has no connection of its own: Connect-WriteBehind's connection belongs to the runspace that made it, so in " +
            "ForEach-Object -Parallel, Start-ThreadJob or a new runspace the cmdlets fall back to $env:WRITEBEHIND_REDIS (else localhost:6379). " +
            "Pass the connection instead: $c = Connect-WriteBehind ... -PassThru, then -Connection $using:c inside the script block.";

        /// <param name="resolvePath">Makes a relative SQLite store path full (PowerShell's current location).</param>
        public static WriteBehindConnection Resolve(Func<string, string> resolvePath)
        {
            var current = Default;
            if (current != null) return current;
            var options = WriteBehindOptions.FromEnvironment();
            try
            {
                options.Store = WriteBehind.Engine.Store.StoreFactory.Normalize(options.Store, resolvePath, options.StoreUser);
            }
            catch (WriteBehindException ex) when (Environment.GetEnvironmentVariable("WRITEBEHIND_STORE") != null)
            {
                // Without Connect-WriteBehind nobody typed the value: say where it came from.
                throw new WriteBehindException(ex.ErrorId, "WRITEBEHIND_STORE: " + ex.Message, ex.InnerException);
            }
            options.StoreMapping = StoreMappingReader.FromEnvironment();
            // The key holds the password only in memory; it is never printed.
            string key = string.Join("\n", options.Redis, options.RedisUser, options.RedisPassword, options.UseTls, options.TlsCaCertificate,
                options.TlsHostName, options.Store, options.StoreUser, options.StorePassword, options.KeyPrefix, options.HighWaterMark.ToString(),
                options.Partitions.ToString(), options.ReplicaAcks.ToString(), options.StoreMapping?.ToString());
            if (FromEnvironment.TryGetValue(key, out var cached) && cached.IsConnected) return cached;
            lock (Gate)
            {
                if (FromEnvironment.TryGetValue(key, out cached) && cached.IsConnected) return cached;
                WriteBehindConnection created;
                try
                {
                    created = WriteBehindConnection.ConnectAsync(options).GetAwaiter().GetResult();
                }
                catch (WriteBehindException ex) when (AnotherOpenRunspaceIsConnected)
                {
                    // Another runspace (the session that ran Connect-WriteBehind) has a connection; this one
                    // (ForEach-Object -Parallel, a thread job, a new runspace) fell back to the environment.
                    throw new WriteBehindException(ex.ErrorId, ex.Message + " " + OtherRunspaceHint, ex.InnerException);
                }
                if (cached != null) cached.Dispose();
                FromEnvironment[key] = created;
                return created;
            }
        }
    }

    /// <summary>Closes this runspace's connection when the module is removed (other runspaces keep theirs;
    /// connections made from the environment live as long as the process).</summary>
    public sealed class ModuleCleanup : IModuleAssemblyCleanup
    {
        public void OnRemove(PSModuleInfo psModuleInfo) => ConnectionRegistry.ClearDefault();
    }
}
