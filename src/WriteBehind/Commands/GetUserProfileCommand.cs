using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Threading;
using System.Threading.Tasks;
using WriteBehind.Engine;
using WriteBehind.Engine.Store;

namespace WriteBehind.Commands
{
    /// <summary>Reads profiles: cache first, then the store on a miss (which repopulates the cache).</summary>
    [Cmdlet(VerbsCommon.Get, "UserProfile")]
    [OutputType(typeof(UserProfile))]
    [OutputType(typeof(PSCustomObject))]
    public sealed class GetUserProfileCommand : ChunkingCmdlet<string, ProfileRow[]>
    {

        /// <summary>Ids to read; without it, every cached profile (streamed with HSCAN).</summary>
        [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
        [Alias("Id")]
        [ArgumentCompleter(typeof(UserIdCompleter))]
        [ValidateNotNullOrEmpty]
        public string[] UserId { get; set; }

        /// <summary>Read the store (the system of record) directly, bypassing the cache.</summary>
        [Parameter]
        public SwitchParameter FromStore { get; set; }

        /// <summary>One flat row per profile: UserId, then the profile's top-level fields as properties
        /// (for Export-Csv, Format-Table, Group-Object). For reading: a CSV of them imported back loses types and
        /// fields (see the help), so edits go through the default objects.</summary>
        [Parameter]
        public SwitchParameter Flat { get; set; }

        private bool _warnedIdField;

        protected override int ChunkSize => 500;

        private void Output(string userId, string json, long version, ProfileSource source)
        {
            var profile = new UserProfile(userId, json, version, source);
            if (!Flat) { WriteObject(profile); return; }
            var row = new PSObject();
            row.TypeNames.Insert(0, "WriteBehind.UserProfileRow");
            row.Properties.Add(new PSNoteProperty("UserId", userId));
            if (profile.Profile != null)
            {
                foreach (var field in profile.Profile.Properties)
                {
                    if (string.Equals(field.Name, "UserId", System.StringComparison.OrdinalIgnoreCase))
                    {
                        if (!_warnedIdField)
                            WriteWarning($"The profile of user '{userId}' has a field named '{field.Name}': -Flat rows keep their UserId column for the id, so that field is left out of them.");
                        _warnedIdField = true;
                        continue;
                    }
                    row.Properties.Add(new PSNoteProperty(field.Name, field.Value));
                }
            }
            WriteObject(row);
        }

        protected override void ProcessRecord()
        {
            if (UserId == null) return;
            foreach (var id in UserId)
            {
                if (!UserIds.IsValid(id))
                {
                    try { UserIds.Validate(id); } catch (WriteBehindException ex) { WriteFailure(ex, id); }
                    continue;
                }
                Add(id);
            }
        }

        protected override void EndProcessing()
        {
            if (UserId == null && !MyInvocation.ExpectingInput)
            {
                if (FromStore)
                {
                    ThrowTerminatingError(new ErrorRecord(new PSArgumentException("-FromStore needs -UserId."),
                        "FromStoreNeedsUserId", ErrorCategory.InvalidArgument, null));
                }
                try
                {
                    foreach (var p in ResolvedConnection.ScanCached())
                    {
                        if (StopToken.IsCancellationRequested) return;
                        Output(p.UserId, p.Json, p.Version, p.Source ?? ProfileSource.Cache);
                    }
                }
                catch (WriteBehindException ex) { ThrowFailure(ex, null); }
                return;
            }
            base.EndProcessing();
        }

        // Reads: chunks may always be in flight together (a refused write cannot happen here).
        protected override bool CanPipeline(WriteBehindConnection connection) => true;

        protected override Task<ProfileRow[]> SendAsync(WriteBehindConnection connection, string[] ids, bool pipelined, CancellationToken cancellationToken) =>
            FromStore ? Task.FromResult(new ProfileRow[ids.Length]) : connection.GetCachedAsync(ids);

        protected override object TargetOf(string item) => item;

        /// <summary>Writes the cached profiles of a chunk; the misses are read from the store (and put back in
        /// the cache), here on the pipeline thread.</summary>
        protected override void Completed(string[] ids, ProfileRow[] cached)
        {
            var connection = ResolvedConnection;
            var misses = ids.Where((id, i) => cached[i] == null).Distinct().ToList();
            IReadOnlyDictionary<string, ProfileRow> stored = null;
            if (misses.Count > 0)
            {
                try
                {
                    stored = Run(ct => connection.Store.GetAsync(misses, ct));
                }
                catch (System.Exception ex) when (ex is WriteBehindException || ex is StoreException)
                {
                    // One error for the store, and no "not found" for ids it could not be asked about.
                    WriteFailure(ex, connection.StoreUri);
                }
            }
            for (int i = 0; i < ids.Length; i++)
            {
                if (cached[i] != null)
                {
                    Output(ids[i], cached[i].Json, cached[i].Version, ProfileSource.Cache);
                    continue;
                }
                if (stored == null) continue;
                stored.TryGetValue(ids[i], out var row);
                if (row != null && !row.IsDeleted)
                {
                    if (FromStore)
                    {
                        Output(ids[i], row.Json, row.Version, ProfileSource.Store);
                        continue;
                    }
                    string json;
                    try { json = Run(_ => connection.ReadThroughAsync(ids[i], row.Json, row.Version)); }
                    catch (WriteBehindException ex) { WriteFailure(ex, ids[i]); continue; }
                    // null: the cache knows a newer state (a delete), which wins over the store's copy.
                    if (json != null)
                    {
                        Output(ids[i], row.Json, row.Version, ProfileSource.Store);
                        continue;
                    }
                }
                string where = FromStore ? "in the store" : "in the cache or the store";
                string deleted = row != null && row.IsDeleted ? $" (the store holds its delete, version {row.Version})" : "";
                WriteError(new ErrorRecord(
                    new ItemNotFoundException($"No profile for user id '{ids[i]}' {where}{deleted}."),
                    "UserProfileNotFound", ErrorCategory.ObjectNotFound, ids[i]));
            }
        }
    }
}
