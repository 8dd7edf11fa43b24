using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.Sqlite;
using WriteBehind.Engine.Metrics;
using WriteBehind.Engine.Store;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>The flush's .NET meter "WriteBehind", as dotnet-counters and OpenTelemetry read it: a
    /// MeterListener sees its counters and histograms move during a real flush.</summary>
    [Collection(RedisCollection.Name)]
    public sealed class MetricsTests : IAsyncLifetime
    {
        private readonly RedisFixture _fixture;
        private RedisTestContext _ctx;

        public MetricsTests(RedisFixture fixture) => _fixture = fixture;

        public async Task InitializeAsync() => _ctx = await RedisTestContext.CreateAsync(_fixture);

        public async Task DisposeAsync()
        {
            if (_ctx != null) await _ctx.DisposeAsync();
        }

        [Fact]
        public async Task AMeterListenerSeesTheInstrumentsMoveDuringAFlush()
        {
            var longs = new ConcurrentDictionary<string, long>();
            var doubles = new ConcurrentDictionary<string, int>();
            var units = new ConcurrentDictionary<string, string>();
            using (var listener = new MeterListener())
            {
                listener.InstrumentPublished = (instrument, l) =>
                {
                    if (instrument.Meter.Name != FlushInstruments.MeterName) return;
                    units[instrument.Name] = instrument.Unit;
                    l.EnableMeasurementEvents(instrument);
                };
                listener.SetMeasurementEventCallback<long>((instrument, value, tags, state) =>
                {
                    string key = instrument.Name;
                    foreach (var tag in tags) key += "|" + tag.Key + "=" + tag.Value;
                    longs.AddOrUpdate(key, value, (_, old) => old + value);
                });
                listener.SetMeasurementEventCallback<double>((instrument, value, tags, state) =>
                {
                    Assert.True(value >= 0);
                    doubles.AddOrUpdate(instrument.Name, 1, (_, old) => old + 1);
                });
                listener.Start();

                // 30 profiles, 5 patches of them (coalesced in the same batch), 1 poison item
                await _ctx.Connection.SetProfilesAsync(Enumerable.Range(1, 30).Select(i => new KeyValuePair<string, string>("m" + i, "{\"n\":" + i + "}")).ToList(), queue: true);
                await _ctx.Connection.EnqueueAsync(Enumerable.Range(1, 5).Select(i => "update:user:m" + i + ":{\"p\":1}").ToList());
                await _ctx.Db.ListLeftPushAsync(_ctx.Keys.Queue, "not an item");
                var result = await new Flusher(_ctx.Connection).FlushAsync(new FlushOptions(), null, CancellationToken.None);
                Assert.Equal(36, result.Dequeued);
                Assert.Equal(30, result.Persisted);
                Assert.Equal(5, result.Coalesced);
                Assert.Equal(1, result.DeadLettered);
                listener.RecordObservableInstruments();
            }
            // other flushes in this process may add to the same meter: at least this flush's figures
            Assert.True(longs.GetValueOrDefault("writebehind.flush.dequeued") >= 36, string.Join(", ", longs));
            Assert.True(longs.GetValueOrDefault("writebehind.flush.items|outcome=persisted") >= 30, string.Join(", ", longs));
            Assert.True(longs.GetValueOrDefault("writebehind.flush.items|outcome=coalesced") >= 5, string.Join(", ", longs));
            Assert.True(longs.GetValueOrDefault("writebehind.flush.items|outcome=dead_lettered") >= 1, string.Join(", ", longs));
            Assert.True(doubles.GetValueOrDefault("writebehind.flush.batch.duration") >= 1);
            Assert.True(doubles.GetValueOrDefault("writebehind.store.commit.duration") >= 1);
            Assert.Equal("s", units["writebehind.flush.batch.duration"]);
            Assert.Equal("s", units["writebehind.store.commit.duration"]);
            Assert.Equal("{item}", units["writebehind.flush.items"]);
        }

        [Fact]
        public async Task AFailedFlushCountsAnErrorByItsId()
        {
            long errors = 0;
            string errorType = null;
            using (var listener = new MeterListener())
            {
                listener.InstrumentPublished = (instrument, l) =>
                {
                    if (instrument.Meter.Name == FlushInstruments.MeterName && instrument.Name == "writebehind.flush.errors") l.EnableMeasurementEvents(instrument);
                };
                listener.SetMeasurementEventCallback<long>((instrument, value, tags, state) =>
                {
                    Interlocked.Add(ref errors, value);
                    foreach (var tag in tags) if (tag.Key == "error.type") errorType = (string)tag.Value;
                });
                listener.Start();
                // the store file exists once a first flush created its schema; then another connection locks it
                await _ctx.Connection.SetProfilesAsync(new[] { new KeyValuePair<string, string>("e0", "{}") }, queue: true);
                await new Flusher(_ctx.Connection).FlushAsync(new FlushOptions(), null, CancellationToken.None);
                await _ctx.Connection.SetProfilesAsync(new[] { new KeyValuePair<string, string>("e1", "{}") }, queue: true);
                SqliteNative.EnsureLoaded();
                using (var locker = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = _ctx.StorePath, Pooling = false }.ToString()))
                {
                    locker.Open();
                    using (var begin = locker.CreateCommand())
                    {
                        begin.CommandText = "BEGIN EXCLUSIVE";
                        begin.ExecuteNonQuery();
                    }
                    await Assert.ThrowsAsync<FlushFailedException>(() =>
                        new Flusher(_ctx.Connection).FlushAsync(new FlushOptions { RetryTimeout = TimeSpan.FromMilliseconds(200) }, null, CancellationToken.None));
                }
            }
            Assert.True(errors >= 1);
            Assert.Equal(ErrorIds.StoreUnavailable, errorType);
        }
    }
}
