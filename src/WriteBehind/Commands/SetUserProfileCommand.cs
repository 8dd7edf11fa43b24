using System.Collections.Generic;
using System.Management.Automation;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Writes profiles to the cache at once and queues their persist, atomically.</summary>
    [Cmdlet(VerbsCommon.Set, "UserProfile", SupportsShouldProcess = true)]
    [OutputType(typeof(UserProfile))]
    public sealed class SetUserProfileCommand : ChunkingCmdlet<KeyValuePair<string, string>, long[]>
    {
        /// <summary>The profile's id. Without it, each piped object's UserId or Id property names its profile.</summary>
        [Parameter(Position = 0)]
        [Alias("Id")]
        [ArgumentCompleter(typeof(UserIdCompleter))]
        [ValidateNotNullOrEmpty]
        public string UserId { get; set; }

        /// <summary>JSON text (stored byte for byte), a dictionary, or an object whose properties become the
        /// profile (its UserId/Id property names it; an object of just UserId and Profile carries the profile
        /// in Profile).</summary>
        [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true)]
        [Alias("Json")]
        public object Profile { get; set; }

        /// <summary>Warm the cache only: no persist is queued.</summary>
        [Parameter]
        public SwitchParameter CacheOnly { get; set; }

        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override int ChunkSize => 1000;

        // The id comes from the piped object itself rather than from by-property-name binding, which
        // costs PowerShell's binder more than the whole rest of the record's work.
        [MethodImpl(HotPath.Optimize)]
        protected override void ProcessRecord()
        {
            string userId = UserId ?? ProfileJson.IdOf(Profile);
            string json;
            try
            {
                if (userId == null)
                    throw new WriteBehindException(ErrorIds.InvalidUserId,
                        "No user id: pass -UserId, or pipe objects with a UserId or Id property.");
                UserIds.Validate(userId);
                json = ProfileJson.FromInput(Profile);
            }
            catch (WriteBehindException ex)
            {
                WriteFailure(ex, userId);
                return;
            }
            if (!ConfirmsSilently && !ShouldProcess(KeyNames.Field(userId), CacheOnly ? "Set cached profile" : "Set profile and queue its persist")) return;
            Add(new KeyValuePair<string, string>(userId, json));
        }

        protected override Task<long[]> SendAsync(WriteBehindConnection connection, KeyValuePair<string, string>[] chunk, bool pipelined, CancellationToken cancellationToken) =>
            connection.SetProfilesAsync(chunk, queue: !CacheOnly, pipelined, cancellationToken, withVersions: PassThru);

        protected override object TargetOf(KeyValuePair<string, string> item) => item.Key;

        [MethodImpl(HotPath.Optimize)]
        protected override void Completed(KeyValuePair<string, string>[] chunk, long[] versions)
        {
            if (!PassThru) return;
            for (int i = 0; i < chunk.Length; i++)
                WriteObject(new UserProfile(chunk[i].Key, chunk[i].Value, versions[i], ProfileSource.Cache));
        }

        protected override string StopReport(long written, long notSent, long notConfirmed) =>
            StopLine("Set-UserProfile", written, CacheOnly ? "profile(s) written to the cache" : "profile(s) written to the cache and queued", notSent, notConfirmed);
    }
}
