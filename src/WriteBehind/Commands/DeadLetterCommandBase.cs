using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Shared by Restore- and Remove-WriteBehindDeadLetter: entries piped from
    /// Get-WriteBehindDeadLetter, or -All.</summary>
    public abstract class DeadLetterCommandBase : WriteBehindCmdlet
    {
        protected const string InputSet = "InputObject";
        protected const string AllSet = "All";
        private readonly List<DeadLetter> _entries = new List<DeadLetter>();

        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = InputSet)]
        [ValidateNotNull]
        public DeadLetter[] InputObject { get; set; }

        [Parameter(Mandatory = true, ParameterSetName = AllSet)]
        public SwitchParameter All { get; set; }

        protected override void ProcessRecord()
        {
            if (InputObject != null) _entries.AddRange(InputObject);
        }

        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            IEnumerable<DeadLetter> entries = _entries;
            if (All)
            {
                try { entries = Run(_ => connection.GetDeadLettersAsync()); }
                catch (WriteBehindException ex) { ThrowFailure(ex, connection.Layout.DeadLettersName); return; }
            }
            var chosen = entries.Where(e => ShouldProcess(Describe(e), Action)).ToList();
            if (chosen.Count == 0) return;
            bool[] found;
            try { found = Run(_ => Take(connection, chosen)); }
            catch (WriteBehindException ex) { ThrowFailure(ex, connection.Layout.DeadLettersName); return; }
            for (int i = 0; i < chosen.Count; i++)
            {
                if (found[i]) Written(connection, chosen[i]);
                else WriteError(new ErrorRecord(new ItemNotFoundException($"The dead letter '{Describe(chosen[i])}' is no longer in {connection.Layout.DeadLettersName}."),
                    "DeadLetterNotFound", ErrorCategory.ObjectNotFound, chosen[i]));
            }
        }

        private static string Describe(DeadLetter e) => e.Item.Length <= 80 ? e.Item : e.Item.Substring(0, 80) + "…";

        protected abstract string Action { get; }
        protected abstract System.Threading.Tasks.Task<bool[]> Take(WriteBehindConnection connection, IReadOnlyList<DeadLetter> entries);
        protected abstract void Written(WriteBehindConnection connection, DeadLetter entry);
    }

    /// <summary>Requeues dead-lettered items (poison as it was; store-rejected profiles as a persist of the cached state).</summary>
    [Cmdlet(VerbsData.Restore, "WriteBehindDeadLetter", SupportsShouldProcess = true, DefaultParameterSetName = InputSet)]
    [OutputType(typeof(WriteQueueItem))]
    public sealed class RestoreWriteBehindDeadLetterCommand : DeadLetterCommandBase
    {
        [Parameter]
        public SwitchParameter PassThru { get; set; }

        protected override string Action => "Requeue the dead-lettered item";
        protected override System.Threading.Tasks.Task<bool[]> Take(WriteBehindConnection c, IReadOnlyList<DeadLetter> e) => c.RestoreDeadLettersAsync(e);
        protected override void Written(WriteBehindConnection c, DeadLetter e)
        {
            if (PassThru) WriteObject(new WriteQueueItem(c.QueueOf(WriteBehindConnection.RequeueTextOf(e)), WriteBehindConnection.RequeueTextOf(e)));
        }
    }

    /// <summary>Deletes dead-lettered items for good.</summary>
    [Cmdlet(VerbsCommon.Remove, "WriteBehindDeadLetter", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = InputSet)]
    [OutputType(typeof(void))]
    public sealed class RemoveWriteBehindDeadLetterCommand : DeadLetterCommandBase
    {
        protected override string Action => "Delete the dead-lettered item for good";
        protected override System.Threading.Tasks.Task<bool[]> Take(WriteBehindConnection c, IReadOnlyList<DeadLetter> e) => c.RemoveDeadLettersAsync(e);
        protected override void Written(WriteBehindConnection c, DeadLetter e) { }
    }
}
