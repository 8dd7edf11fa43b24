using System;
using System.Management.Automation;
using WriteBehind.Engine;
using WriteBehind.Engine.Metrics;

namespace WriteBehind.Commands
{
    /// <summary>The current state in the Prometheus text exposition format, to the pipeline or to a file
    /// (atomically, for node_exporter's textfile collector).</summary>
    [Cmdlet(VerbsData.Export, "WriteBehindMetrics")]
    [OutputType(typeof(string))]
    public sealed class ExportWriteBehindMetricsCommand : WriteBehindCmdlet
    {
        /// <summary>Write the text to this file (through a temporary file and a rename) instead of the pipeline.</summary>
        [Parameter(Position = 0)]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; }

        protected override void EndProcessing()
        {
            var connection = ResolvedConnection;
            string text;
            try
            {
                text = Run(ct => PrometheusText.RenderAsync(connection, ct));
            }
            catch (WriteBehindException ex)
            {
                ThrowFailure(ex, null);
                return;
            }
            if (Path == null)
            {
                WriteObject(text);
                return;
            }
            string file = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
            try
            {
                PrometheusText.WriteFile(file, text);
                WriteVerbose($"Wrote the metrics of {connection.Layout.QueueName} to {file}.");
            }
            catch (Exception ex) when (ex is System.IO.IOException || ex is UnauthorizedAccessException)
            {
                ThrowFailure(new WriteBehindException(ErrorIds.InvalidConfiguration, $"Cannot write the metrics file '{file}': {ex.Message}", ex), file);
            }
        }
    }
}
