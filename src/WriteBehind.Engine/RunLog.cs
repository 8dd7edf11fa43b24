using System;
using System.IO;
using System.Text;
using System.Text.Json;

namespace WriteBehind.Engine
{
    /// <summary>Invoke-WriteBehindFlush -LogPath: one JSON object per line and run (also for failed, stopped
    /// and paused runs), appended with one write, so a scheduled task leaves a history that
    /// <c>Get-Content | ConvertFrom-Json</c> reads. It holds counts and the error's id and message, which the
    /// engine keeps free of secrets; never a connection string or a password.</summary>
    internal static class RunLog
    {
        private static string Utc(DateTimeOffset t) =>
            t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);

        public static void Append(string path, FlushResult result, string queue, string store, bool continuous)
        {
            if (string.IsNullOrEmpty(path)) throw new ArgumentException("A log path is needed.", nameof(path));
            var end = result.StartedAt == default ? DateTimeOffset.UtcNow : result.StartedAt + result.Duration;
            using (var buffer = new MemoryStream())
            {
                using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                {
                    json.WriteStartObject();
                    json.WriteString("start", Utc(result.StartedAt));
                    json.WriteString("end", Utc(end));
                    json.WriteString("host", Environment.MachineName);
                    json.WriteNumber("pid", System.Diagnostics.Process.GetCurrentProcess().Id);
                    if (queue != null) json.WriteString("queue", queue); else json.WriteNull("queue");
                    if (store != null) json.WriteString("store", store); else json.WriteNull("store");
                    json.WriteBoolean("continuous", continuous);
                    json.WriteString("outcome", result.ErrorId != null ? "failed" : result.Stopped ? "stopped" : result.Paused ? "paused" : "flushed");
                    json.WriteNumber("dequeued", result.Dequeued);
                    json.WriteNumber("persisted", result.Persisted);
                    json.WriteNumber("coalesced", result.Coalesced);
                    json.WriteNumber("deadLettered", result.DeadLettered);
                    json.WriteNumber("recovered", result.Recovered);
                    json.WriteNumber("inFlight", result.InFlight);
                    json.WriteNumber("staleSkipped", result.StaleSkipped);
                    json.WriteNumber("batches", result.Batches);
                    json.WriteNumber("durationSeconds", Math.Round(result.Duration.TotalSeconds, 3));
                    json.WriteNumber("itemsPerSecond", result.ItemsPerSecond);
                    json.WriteBoolean("paused", result.Paused);
                    if (result.PausedReason != null) json.WriteString("pausedReason", result.PausedReason);
                    json.WriteBoolean("stopped", result.Stopped);
                    if (result.ErrorId != null) json.WriteString("errorId", result.ErrorId); else json.WriteNull("errorId");
                    if (result.Error != null) json.WriteString("error", result.Error); else json.WriteNull("error");
                    json.WriteEndObject();
                }
                buffer.WriteByte((byte)'\n');
                string full = Path.GetFullPath(path);
                string dir = Path.GetDirectoryName(full);
                if (!string.IsNullOrEmpty(dir) && !Directory.Exists(dir))
                    throw new WriteBehindException(ErrorIds.InvalidConfiguration, $"The run log's folder '{dir}' does not exist.");
                // one write in append mode: lines of concurrent flushers do not interleave
                using (var file = new FileStream(full, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete))
                    file.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
            }
        }
    }
}
