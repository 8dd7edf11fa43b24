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

        /// <summary>A relative store path against the session's location when it can be asked (a running
        /// pipeline may refuse), else as it is.</summary>
        private static string CurrentLocation(string path)
        {
            try { return System.Management.Automation.Runspaces.Runspace.DefaultRunspace?.SessionStateProxy?.Path?.GetUnresolvedProviderPathFromPSPath(path) ?? path; }
            catch (Exception) { return path; }
        }

        public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
            CommandAst commandAst, IDictionary fakeBoundParameters)
        {
            string typed = (wordToComplete ?? string.Empty).Trim('\'', '"');
            List<string> ids;
            try
            {
                var connection = ConnectionRegistry.Default ?? ConnectionRegistry.Resolve(CurrentLocation);
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
