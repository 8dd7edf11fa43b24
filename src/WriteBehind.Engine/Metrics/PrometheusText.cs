using System;
using System.Globalization;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace WriteBehind.Engine.Metrics
{
    /// <summary>The state of one deployment (a key prefix) in the Prometheus text exposition format 0.0.4:
    /// <c>writebehind_</c> names, base units (seconds), <c>_total</c> counters (kept in Redis, so every
    /// flusher adds to the same ones), a <c>partition</c> label on the per-partition gauges and an
    /// <c>outcome</c> label on the item counter. Export-WriteBehindMetrics and the flush's scrape endpoint
    /// both write this text.</summary>
    internal static class PrometheusText
    {
        public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

        public static async Task<string> RenderAsync(WriteBehindConnection connection, CancellationToken cancellationToken)
        {
            var status = await connection.GetStatusAsync(includeStore: false, cancellationToken).ConfigureAwait(false);
            return Render(status);
        }

        public static string Render(WriteBehindStatus s)
        {
            var w = new StringBuilder();
            string prefix = Escape(s.KeyPrefix ?? string.Empty);

            Family(w, "writebehind_queue_items", "gauge", "Items waiting in the write queue.");
            foreach (var p in s.PartitionDetails) Sample(w, "writebehind_queue_items", p.QueueDepth, prefix, p.Partition);
            Family(w, "writebehind_in_flight_items", "gauge", "Items leased by flushers and not yet acknowledged.");
            foreach (var p in s.PartitionDetails) Sample(w, "writebehind_in_flight_items", p.InFlight, prefix, p.Partition);
            Family(w, "writebehind_expired_leases", "gauge", "Leases whose flusher stopped renewing them (the next flush re-persists them).");
            foreach (var p in s.PartitionDetails) Sample(w, "writebehind_expired_leases", p.ExpiredLeases, prefix, p.Partition);
            Family(w, "writebehind_dead_letter_items", "gauge", "Items in the dead-letter list.");
            foreach (var p in s.PartitionDetails) Sample(w, "writebehind_dead_letter_items", p.DeadLetters, prefix, p.Partition);
            Family(w, "writebehind_lag_seconds", "gauge", "Age of the oldest pending item (0 when the queue is empty; an upper bound).");
            foreach (var p in s.PartitionDetails) Sample(w, "writebehind_lag_seconds", p.Lag.TotalSeconds, prefix, p.Partition);
            Family(w, "writebehind_cached_profiles", "gauge", "Profiles in the cache.");
            foreach (var p in s.PartitionDetails) Sample(w, "writebehind_cached_profiles", p.CachedProfiles, prefix, p.Partition);

            Family(w, "writebehind_high_water_mark_items", "gauge", "Queue depth past which producers are refused (0: unbounded).");
            Sample(w, "writebehind_high_water_mark_items", s.HighWaterMark, prefix);
            Family(w, "writebehind_partitions", "gauge", "Partitions the profiles are spread over.");
            Sample(w, "writebehind_partitions", s.Partitions, prefix);
            Family(w, "writebehind_paused", "gauge", "1 while the flushers are paused (Suspend-WriteBehindFlush), else 0.");
            Sample(w, "writebehind_paused", s.Paused ? 1 : 0, prefix);
            if (s.Paused)
            {
                Family(w, "writebehind_pause_info", "gauge", "1 while paused, with the reason Suspend-WriteBehindFlush gave.");
                w.Append("writebehind_pause_info{key_prefix=\"").Append(prefix).Append("\",reason=\"").Append(Escape(s.PausedReason ?? string.Empty)).Append("\"} 1\n");
            }
            if (s.PausedSince.HasValue)
            {
                Family(w, "writebehind_paused_since_timestamp_seconds", "gauge", "When the flushers were paused (Unix time).");
                Sample(w, "writebehind_paused_since_timestamp_seconds", s.PausedSince.Value.ToUnixTimeMilliseconds() / 1000.0, prefix);
            }
            if (s.LastFlushAt.HasValue)
            {
                Family(w, "writebehind_last_flush_timestamp_seconds", "gauge", "When the last flush ended (Unix time).");
                Sample(w, "writebehind_last_flush_timestamp_seconds", s.LastFlushAt.Value.ToUnixTimeMilliseconds() / 1000.0, prefix);
            }
            if (s.LastFlushDuration.HasValue)
            {
                Family(w, "writebehind_last_flush_duration_seconds", "gauge", "How long the last flush ran.");
                Sample(w, "writebehind_last_flush_duration_seconds", s.LastFlushDuration.Value.TotalSeconds, prefix);
            }
            if (s.LastFlushDequeued.HasValue)
            {
                Family(w, "writebehind_last_flush_items", "gauge", "Items the last flush took from the queue.");
                Sample(w, "writebehind_last_flush_items", s.LastFlushDequeued.Value, prefix);
            }
            if (s.LastFlushItemsPerSecond.HasValue)
            {
                Family(w, "writebehind_last_flush_items_per_second", "gauge", "Items per second of the last flush.");
                Sample(w, "writebehind_last_flush_items_per_second", s.LastFlushItemsPerSecond.Value, prefix);
            }
            Family(w, "writebehind_last_flush_failed", "gauge", "1 when the last flush ended on an error, else 0.");
            Sample(w, "writebehind_last_flush_failed", string.IsNullOrEmpty(s.LastFlushError) ? 0 : 1, prefix);

            var t = s.Totals ?? new FlushTotals();
            Family(w, "writebehind_dequeued_items_total", "counter", "Items every flusher took from the queue.");
            Sample(w, "writebehind_dequeued_items_total", t.Dequeued, prefix);
            Family(w, "writebehind_flushed_items_total", "counter", "Items every flusher finished with, by outcome.");
            Sample(w, "writebehind_flushed_items_total", t.Persisted, prefix, outcome: "persisted");
            Sample(w, "writebehind_flushed_items_total", t.Coalesced, prefix, outcome: "coalesced");
            Sample(w, "writebehind_flushed_items_total", t.DeadLettered, prefix, outcome: "dead_lettered");
            Sample(w, "writebehind_flushed_items_total", t.Recovered, prefix, outcome: "recovered");
            Family(w, "writebehind_flush_errors_total", "counter", "Flushes that ended on an error.");
            Sample(w, "writebehind_flush_errors_total", t.FlushErrors, prefix);
            return w.ToString();
        }

        private static void Family(StringBuilder w, string name, string type, string help)
        {
            w.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            w.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        }

        private static void Sample(StringBuilder w, string name, double value, string prefix, int partition = -1, string outcome = null)
        {
            w.Append(name).Append("{key_prefix=\"").Append(prefix).Append('"');
            if (partition >= 0) w.Append(",partition=\"").Append(partition.ToString(CultureInfo.InvariantCulture)).Append('"');
            if (outcome != null) w.Append(",outcome=\"").Append(outcome).Append('"');
            w.Append("} ").Append(Format(value)).Append('\n');
        }

        private static string Format(double value)
        {
            if (double.IsNaN(value)) return "NaN";
            if (double.IsPositiveInfinity(value)) return "+Inf";
            if (double.IsNegativeInfinity(value)) return "-Inf";
            return value.ToString("R", CultureInfo.InvariantCulture);
        }

        /// <summary>A label value: backslash, double quote and line feed escaped.</summary>
        private static string Escape(string value) => value.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

        /// <summary>Writes the text to a file atomically (a temporary file in the same folder, then a rename),
        /// as node_exporter's textfile collector expects: a scrape never sees half a file.</summary>
        public static void WriteFile(string path, string text)
        {
            string full = System.IO.Path.GetFullPath(path);
            string dir = System.IO.Path.GetDirectoryName(full);
            string temp = System.IO.Path.Combine(dir ?? ".", "." + System.IO.Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N") + ".tmp");
            try
            {
                System.IO.File.WriteAllText(temp, text, new UTF8Encoding(false));
                if (System.IO.File.Exists(full))
                    System.IO.File.Replace(temp, full, null);
                else
                    System.IO.File.Move(temp, full);
            }
            finally
            {
                if (System.IO.File.Exists(temp)) System.IO.File.Delete(temp);
            }
        }
    }
}
