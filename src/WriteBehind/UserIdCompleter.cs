using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace WriteBehind.Commands
{
    /// <summary>Completes -UserId from the cache: an HSCAN of the ids that start with what was typed, on
    /// the session's connection (or the environment's). Never throws: no connection means no suggestions.</summary>
    public sealed class UserIdCompleter : IArgumentCompleter
    {
        private const int MaxSuggestions = 100;

        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            string typed = (wordToComplete ?? string.Empty).Trim('\'', '"');
            List<string> ids;
            try
            {
                // Completion runs on the pipeline thread: the session's location resolves a relative store path.
                var path = System.Management.Automation.Runspaces.Runspace.DefaultRunspace?.SessionStateProxy?.Path;
                var connection = ConnectionRegistry.Default ?? ConnectionRegistry.Resolve(path == null ? null : (Func<string, string>)(p => path.GetUnresolvedProviderPathFromPSPath(p)));
                ids = connection.ScanUserIds(typed, MaxSuggestions).ToList();
            }
            catch (Exception)
            {
                return Array.Empty<CompletionResult>();
            }
            ids.Sort(StringComparer.Ordinal);
            return ids.Select(id => new CompletionResult(id, id, CompletionResultType.ParameterValue, "user:" + id));
        }
    }
}
