using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Management.Automation;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using WriteBehind.Engine;
using WriteBehind.Engine.Store;

namespace WriteBehind.Commands
{
    /// <summary>Shared plumbing: connection resolution, running engine work on the pipeline thread with
    /// Ctrl+C observed, and ErrorRecords with stable ids.</summary>
    public abstract class WriteBehindCmdlet : PSCmdlet
    {
        private readonly CancellationTokenSource _stop = new CancellationTokenSource();
        private WriteBehindConnection _connection;

        /// <summary>A connection from Connect-WriteBehind -PassThru; by default the session's connection,
        /// else one made from $env:WRITEBEHIND_REDIS / $env:WRITEBEHIND_STORE.</summary>
        [Parameter]
        [ValidateNotNull]
        public WriteBehindConnection Connection { get; set; }

        /// <summary>Cancelled when the user presses Ctrl+C (StopProcessing).</summary>
        protected CancellationToken StopToken => _stop.Token;

        protected WriteBehindConnection ResolvedConnection
        {
            get
            {
                try
                {
                    return ResolveConnection();
                }
                catch (WriteBehindException ex)
                {
                    ThrowTerminatingError(ToErrorRecord(ex, null));
                    return null;
                }
            }
        }

        /// <summary>The connection, or the WriteBehindException that says why there is none.</summary>
        protected WriteBehindConnection ResolveConnection()
        {
            if (_connection == null) _connection = Connection ?? ConnectionRegistry.Resolve(ConnectWriteBehindCommand.PathResolver(SessionState));
            return _connection;
        }

        protected override void StopProcessing() => _stop.Cancel();

        /// <summary>Runs engine work and waits for it here, on the pipeline thread.</summary>
        protected T Run<T>(Func<CancellationToken, Task<T>> work)
        {
            return work(_stop.Token).GetAwaiter().GetResult();
        }

        /// <summary>Runs long engine work on the thread pool while this (pipeline) thread writes what it
        /// reports: Write* is never called from another thread. Once the pipeline is stopping its Write*
        /// calls throw: the rest of the reports are dropped, and the work (told to stop) is still waited for,
        /// so the batch in hand is finished and its result returned.</summary>
        protected T RunPumping<T>(Func<CancellationToken, Action<Action>, Task<T>> work)
        {
            var pending = new BlockingCollection<Action>();
            var task = Task.Run(() => work(_stop.Token, a => pending.Add(a)));
            task.ContinueWith(_ => pending.CompleteAdding(), TaskScheduler.Default);
            bool stopped = false;
            foreach (var action in pending.GetConsumingEnumerable())
            {
                if (stopped) continue;
                try { action(); }
                catch (PipelineStoppedException)
                {
                    stopped = true;
                    _stop.Cancel();
                }
            }
            return task.GetAwaiter().GetResult();
        }

        private bool? _confirmsSilently;

        /// <summary>True when ShouldProcess would return true without a word (no -WhatIf, no prompt, no verbose
        /// line): then the cmdlets that take many records skip it, and the message it would format, per record.
        /// Decided once per command from what PowerShell itself reads: -WhatIf/-Confirm/-Verbose/-Debug
        /// (any of them bound: ask ShouldProcess), $WhatIfPreference, $ConfirmPreference against the cmdlet's
        /// ConfirmImpact, $VerbosePreference and $DebugPreference (Windows PowerShell 5.1 prompts under
        /// -Debug). Anything unexpected: ask ShouldProcess.</summary>
        protected bool ConfirmsSilently
        {
            [MethodImpl(HotPath.Optimize)]
            get
            {
                if (_confirmsSilently == null) _confirmsSilently = DecideConfirmsSilently();
                return _confirmsSilently.Value;
            }
        }

        private bool DecideConfirmsSilently()
        {
            try
            {
                var bound = MyInvocation.BoundParameters;
                if (bound.ContainsKey("WhatIf") || bound.ContainsKey("Verbose") || bound.ContainsKey("Debug")) return false;
                if (bound.TryGetValue("Confirm", out object confirm))
                {
                    if (LanguagePrimitives.IsTrue(confirm)) return false;   // -Confirm:$false never prompts
                }
                else
                {
                    var attribute = (CmdletAttribute)Attribute.GetCustomAttribute(GetType(), typeof(CmdletAttribute));
                    if (!LanguagePrimitives.TryConvertTo(GetVariableValue("ConfirmPreference") ?? ConfirmImpact.High, out ConfirmImpact threshold)) return false;
                    if (threshold != ConfirmImpact.None && threshold <= (attribute?.ConfirmImpact ?? ConfirmImpact.Medium)) return false;
                }
                if (LanguagePrimitives.IsTrue(GetVariableValue("WhatIfPreference"))) return false;
                return IsQuiet("VerbosePreference") && IsQuiet("DebugPreference");
            }
            catch (Exception ex) when (!(ex is PipelineStoppedException))
            {
                return false;
            }
        }

        private bool IsQuiet(string preferenceVariable)
        {
            object value = GetVariableValue(preferenceVariable);
            if (value == null) return true;
            return LanguagePrimitives.TryConvertTo(value, out ActionPreference preference)
                && (preference == ActionPreference.SilentlyContinue || preference == ActionPreference.Ignore);
        }

        /// <summary>Whether a warning would be shown (-WarningAction, else $WarningPreference): for lines written
        /// to the host directly once the pipeline is stopping and takes no warnings any more.</summary>
        protected bool WarningsWanted()
        {
            var preference = GetVariableValue("WarningPreference");
            if (MyInvocation.BoundParameters.TryGetValue("WarningAction", out var action)) preference = action;
            string text = preference?.ToString();
            return text != nameof(ActionPreference.SilentlyContinue) && text != nameof(ActionPreference.Ignore);
        }

        internal static ErrorCategory CategoryOf(string errorId)
        {
            switch (errorId)
            {
                case ErrorIds.InvalidUserId:
                case ErrorIds.InvalidStoreUri:
                case ErrorIds.InvalidConfiguration:
                case ErrorIds.StoreMappingInvalid:
                case ErrorIds.PasswordInParameter: return ErrorCategory.InvalidArgument;
                case ErrorIds.RedisPermissionDenied: return ErrorCategory.PermissionDenied;
                case ErrorIds.TlsValidationFailed: return ErrorCategory.SecurityError;
                case ErrorIds.InvalidProfileJson:
                case ErrorIds.InvalidQueueItem:
                case ErrorIds.StoreTableMismatch: return ErrorCategory.InvalidData;
                case ErrorIds.QueueFull: return ErrorCategory.LimitsExceeded;
                case ErrorIds.RedisUnavailable: return ErrorCategory.ConnectionError;
                case ErrorIds.StoreUnavailable: return ErrorCategory.ResourceUnavailable;
                case ErrorIds.StoreFailed: return ErrorCategory.WriteError;
                case ErrorIds.ReplicaAcksUnsupported: return ErrorCategory.NotImplemented;
                default: return ErrorCategory.InvalidOperation;
            }
        }

        protected ErrorRecord ToErrorRecord(Exception ex, object target)
        {
            if (ex is AggregateException agg && agg.InnerExceptions.Count == 1) ex = agg.InnerException;
            switch (ex)
            {
                case WriteBehindException wbe:
                    return new ErrorRecord(wbe, wbe.ErrorId, CategoryOf(wbe.ErrorId), target);
                case StoreUnavailableException sue:
                    return new ErrorRecord(sue, ErrorIds.StoreUnavailable, ErrorCategory.ResourceUnavailable, target);
                case StoreException se:
                    return new ErrorRecord(se, ErrorIds.StoreFailed, ErrorCategory.WriteError, target);
                case OperationCanceledException oce:
                    return new ErrorRecord(oce, "OperationStopped", ErrorCategory.OperationStopped, target);
                default:
                    return new ErrorRecord(ex, "UnexpectedError", ErrorCategory.NotSpecified, target);
            }
        }

        protected void WriteFailure(Exception ex, object target) => WriteError(ToErrorRecord(ex, target));

        protected void ThrowFailure(Exception ex, object target) => ThrowTerminatingError(ToErrorRecord(ex, target));
    }
}
