using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Reflection;

namespace WriteBehind.Engine.Metrics
{
    /// <summary>The flush's .NET metrics: a <see cref="Meter"/> named "WriteBehind" that dotnet-counters and
    /// OpenTelemetry collectors read from a running flusher (names and units after OpenTelemetry's conventions).
    /// Per process; the Prometheus text (<see cref="PrometheusText"/>) shows the totals of every flusher.</summary>
    internal static class FlushInstruments
    {
        public const string MeterName = "WriteBehind";

        public static readonly Meter Meter = new Meter(MeterName,
            typeof(FlushInstruments).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion);

        /// <summary>Items the flush finished with, by outcome: persisted, coalesced, dead_lettered, recovered.</summary>
        public static readonly Counter<long> Items = Meter.CreateCounter<long>("writebehind.flush.items", "{item}",
            "Queue items the flush finished with, by outcome (persisted, coalesced, dead_lettered, recovered).");

        /// <summary>Items taken from the queue (leased).</summary>
        public static readonly Counter<long> Dequeued = Meter.CreateCounter<long>("writebehind.flush.dequeued", "{item}",
            "Queue items the flush took from the queue.");

        /// <summary>Flushes that ended on an error.</summary>
        public static readonly Counter<long> Errors = Meter.CreateCounter<long>("writebehind.flush.errors", "{error}",
            "Flushes that ended on an error (error.type: the error id).");

        /// <summary>One lease group from its lease to its acknowledgement (lease, commit, ack).</summary>
        public static readonly Histogram<double> BatchDuration = Meter.CreateHistogram<double>("writebehind.flush.batch.duration", "s",
            "Time from leasing a group of batches to acknowledging it.");

        /// <summary>One store transaction (with its retries).</summary>
        public static readonly Histogram<double> CommitDuration = Meter.CreateHistogram<double>("writebehind.store.commit.duration", "s",
            "Time one store commit took, retries included.");

        internal static void AddItems(long count, string outcome)
        {
            if (count > 0) Items.Add(count, new KeyValuePair<string, object>("outcome", outcome));
        }
    }
}
