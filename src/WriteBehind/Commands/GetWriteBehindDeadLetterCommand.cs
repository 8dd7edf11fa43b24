using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Lists dead-lettered items, oldest first, with their reasons.</summary>
    [Cmdlet(VerbsCommon.Get, "WriteBehindDeadLetter")]
    [OutputType(typeof(DeadLetter))]
    public sealed class GetWriteBehindDeadLetterCommand : WriteBehindCmdlet
    {
        /// <summary>Only the newest N entries.</summary>
        [Parameter]
        [ValidateRange(1, long.MaxValue)]
        public long Newest { get; set; } = long.MaxValue;

        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            try
            {
                foreach (var d in Run(_ => connection.GetDeadLettersAsync(Newest))) WriteObject(d);
            }
            catch (WriteBehindException ex)
            {
                ThrowFailure(ex, connection.Layout.DeadLettersName);
            }
        }
    }
}
