using System.Management.Automation;
using WriteBehind.Engine;

namespace WriteBehind.Commands
{
    /// <summary>Empties the write queue (pending persists are dropped; the cache is untouched).</summary>
    [Cmdlet(VerbsCommon.Clear, "WriteQueue", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
    [OutputType(typeof(WriteQueueClearResult))]
    public sealed class ClearWriteQueueCommand : WriteBehindCmdlet
    {
        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            try
            {
                // The confirmation says what would be lost; counting is skipped when nobody will read it.
                string what = "every pending item";
                if (WillAskOrTell())
                    what = Run(_ => QueueCensus.TakeAsync(connection)).ToString();
                if (!ShouldProcess(connection.Layout.QueueName, "Drop " + what)) return;
                long dropped = Run(_ => connection.ClearQueueAsync());
                WriteObject(new WriteQueueClearResult(connection.Layout.QueueName, dropped));
            }
            catch (WriteBehindException ex)
            {
                ThrowFailure(ex, connection.Layout.QueueName);
            }
        }

        /// <summary>True when ShouldProcess will prompt (ConfirmImpact High against $ConfirmPreference or
        /// -Confirm), or print its text (-WhatIf, -Verbose).</summary>
        private bool WillAskOrTell()
        {
            var bound = MyInvocation.BoundParameters;
            bool Switch(string name, string preference)
            {
                if (bound.TryGetValue(name, out object value)) return value is SwitchParameter sp ? sp.IsPresent : LanguagePrimitives.IsTrue(value);
                return preference != null && LanguagePrimitives.IsTrue(SessionState.PSVariable.GetValue(preference));
            }
            if (Switch("WhatIf", "WhatIfPreference") || bound.ContainsKey("Verbose") && Switch("Verbose", null)) return true;
            if (bound.TryGetValue("Confirm", out object confirm)) return confirm is SwitchParameter c ? c.IsPresent : LanguagePrimitives.IsTrue(confirm);
            object preferenceValue = SessionState.PSVariable.GetValue("ConfirmPreference");
            var confirmPreference = preferenceValue is ConfirmImpact ci ? ci : ConfirmImpact.High;
            if (SessionState.PSVariable.GetValue("VerbosePreference") is ActionPreference vp && vp != ActionPreference.SilentlyContinue) return true;
            return confirmPreference != ConfirmImpact.None && confirmPreference <= ConfirmImpact.High;
        }
    }
}
