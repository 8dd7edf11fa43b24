using System;
using System.Net;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace WriteBehind.Engine.Metrics
{
    /// <summary>Serves <c>/metrics</c> (the Prometheus text of <see cref="PrometheusText"/>) while a continuous
    /// flush runs: on loopback by default (<c>http://127.0.0.1:port/</c>), or on the HttpListener prefix given.
    /// Each scrape reads Redis afresh; nothing is cached. Disposing it stops it.</summary>
    internal sealed class MetricsServer : IDisposable
    {
        private readonly HttpListener _listener = new HttpListener();
        private readonly Func<CancellationToken, Task<string>> _render;
        private readonly CancellationTokenSource _stop = new CancellationTokenSource();
        private readonly Task _loop;

        public MetricsServer(string prefix, Func<CancellationToken, Task<string>> render)
        {
            _render = render ?? throw new ArgumentNullException(nameof(render));
            if (!prefix.EndsWith("/", StringComparison.Ordinal)) prefix += "/";
            Prefix = prefix;
            _listener.Prefixes.Add(prefix);
            try
            {
                _listener.Start();
            }
            catch (Exception ex) when (ex is HttpListenerException || ex is System.Net.Sockets.SocketException || ex is InvalidOperationException)
            {
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, $"Cannot serve metrics on {prefix}: {ex.Message}", null);
            }
            _loop = Task.Run(LoopAsync);
        }

        public static string LoopbackPrefix(int port) => "http://127.0.0.1:" + port.ToString(System.Globalization.CultureInfo.InvariantCulture) + "/";

        public string Prefix { get; }
        public Uri MetricsUri => new Uri(new Uri(Prefix.Replace("://+", "://localhost").Replace("://*", "://localhost")), "metrics");
        private long _scrapes;
        /// <summary>Scrapes answered with the metrics.</summary>
        public long Scrapes => Interlocked.Read(ref _scrapes);

        private async Task LoopAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                HttpListenerContext context;
                try { context = await _listener.GetContextAsync().ConfigureAwait(false); }
                catch (Exception) when (_stop.IsCancellationRequested || !_listener.IsListening) { return; }
                catch (HttpListenerException) { continue; }
                _ = Task.Run(() => AnswerAsync(context));
            }
        }

        private async Task AnswerAsync(HttpListenerContext context)
        {
            var response = context.Response;
            try
            {
                string path = context.Request.Url.AbsolutePath.TrimEnd('/');
                if (!path.EndsWith("/metrics", StringComparison.Ordinal) || (context.Request.HttpMethod != "GET" && context.Request.HttpMethod != "HEAD"))
                {
                    response.StatusCode = 404;
                    Write(response, "Not found: the metrics are at /metrics\n", "text/plain; charset=utf-8");
                    return;
                }
                string text;
                try
                {
                    text = await _render(_stop.Token).ConfigureAwait(false);
                }
                catch (WriteBehindException ex)
                {
                    response.StatusCode = 503;
                    Write(response, ex.ErrorId + ": " + ex.Message + "\n", "text/plain; charset=utf-8");
                    return;
                }
                Interlocked.Increment(ref _scrapes);
                Write(response, text, PrometheusText.ContentType);
            }
            catch (Exception)
            {
                try { response.Abort(); } catch (Exception) { /* the client went away */ }
            }
        }

        private static void Write(HttpListenerResponse response, string text, string contentType)
        {
            byte[] body = Encoding.UTF8.GetBytes(text);
            response.ContentType = contentType;
            response.ContentLength64 = body.Length;
            response.OutputStream.Write(body, 0, body.Length);
            response.OutputStream.Close();
        }

        public void Dispose()
        {
            _stop.Cancel();
            try { _listener.Stop(); _listener.Close(); } catch (Exception) { /* already stopped */ }
            try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch (Exception) { /* the loop ended */ }
        }
    }
}
