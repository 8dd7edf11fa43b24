using System;
using System.Globalization;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.Sqlite;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// The one long-lived connection of a SQLite store (<see cref="SqliteProfileStore"/>, <see cref="SqliteMappedStore"/>):
    /// opened on first use, serialised by a gate so that a batch commit costs one transaction, closed after an
    /// error that may have wedged it; and the translation of SQLite's errors into the store's exceptions.
    /// </summary>
    /// <remarks>Microsoft.Data.Sqlite is synchronous underneath; the work runs on the calling thread once the
    /// connection is its.</remarks>
    internal sealed class SqliteConnectionGate : IDisposable
    {
        private readonly Func<SqliteConnection> _open;
        private readonly string _ownerName;
        private readonly SemaphoreSlim _gate = new SemaphoreSlim(1, 1);
        private SqliteConnection _connection;
        private volatile bool _disposed;

        /// <param name="open">Opens and prepares a connection (schema, statements); called with the gate held.</param>
        /// <param name="ownerName">The store type named by <see cref="ObjectDisposedException"/> once disposed.</param>
        public SqliteConnectionGate(Func<SqliteConnection> open, string ownerName)
        {
            _open = open;
            _ownerName = ownerName;
        }

        /// <summary>The connection, opened when there is none; only while <see cref="RunAsync{T}"/>'s work runs.</summary>
        public SqliteConnection Connection => _connection ?? (_connection = _open());

        public void ThrowIfDisposed()
        {
            if (_disposed)
                throw new ObjectDisposedException(_ownerName);
        }

        /// <summary>Runs <paramref name="work"/> with the gate held. A SQLite error becomes a
        /// <see cref="StoreUnavailableException"/> when transient (and the connection is closed: it may be wedged,
        /// the file replaced...), else a <see cref="StoreException"/>; an I/O error is unavailable too.</summary>
        /// <param name="store">The store as messages name it.</param>
        /// <param name="action">What could not be done: "commit 3 row(s) to it", "read a page of table users".</param>
        /// <param name="cancellationToken">Cancels the wait for the gate.</param>
        /// <param name="work">The SQLite work, run with the gate held; its result is returned.</param>
        public async Task<T> RunAsync<T>(string store, string action, CancellationToken cancellationToken, Func<T> work)
        {
            ThrowIfDisposed();
            cancellationToken.ThrowIfCancellationRequested();

            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                ThrowIfDisposed();
                try
                {
                    return work();
                }
                catch (SqliteException ex)
                {
                    if (IsTransient(ex.SqliteErrorCode))
                        Close();
                    throw Translate(store, action, ex);
                }
                catch (IOException ex)
                {
                    Close();
                    throw Translate(store, action, ex);
                }
            }
            finally
            {
                _gate.Release();
            }
        }

        /// <summary>A SQLite or I/O error as the store's exception: transient codes and I/O errors are
        /// <see cref="StoreUnavailableException"/>, the rest <see cref="StoreException"/>.</summary>
        public static StoreException Translate(string store, string action, Exception ex)
        {
            bool transient = !(ex is SqliteException sqlite) || IsTransient(sqlite.SqliteErrorCode);
            return transient
                ? new StoreUnavailableException("SQLite store " + store + " is unavailable; could not " + action + ": " + ex.Message, ex)
                : new StoreException("SQLite store " + store + ": could not " + action + ": " + ex.Message, ex);
        }

        /// <summary>SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL,
        /// including their extended codes (the primary code is the low byte).</summary>
        public static bool IsTransient(int sqliteErrorCode)
        {
            switch (sqliteErrorCode & 0xFF)
            {
                case 5:  // SQLITE_BUSY
                case 6:  // SQLITE_LOCKED
                case 10: // SQLITE_IOERR
                case 13: // SQLITE_FULL
                case 14: // SQLITE_CANTOPEN
                case 15: // SQLITE_PROTOCOL
                    return true;
                default:
                    return false;
            }
        }

        /// <summary>Opens a connection of its own to a file (no pool, so Dispose really closes the file) with
        /// <c>busy_timeout</c> set, and Microsoft.Data.Sqlite's own retry of busy statements bounded alike.</summary>
        public static SqliteConnection OpenFile(string path, SqliteOpenMode mode, int busyTimeoutMs, bool privateCache)
        {
            var builder = new SqliteConnectionStringBuilder { DataSource = path, Mode = mode, Pooling = false };
            if (privateCache)
                builder.Cache = SqliteCacheMode.Private;
            var connection = new SqliteConnection(builder.ToString());
            try
            {
                // Microsoft.Data.Sqlite retries busy/locked statements itself until the command timeout
                // (whole seconds, 0 = forever); keep that bound in step with busy_timeout.
                connection.DefaultTimeout = Math.Max(1, (int)Math.Ceiling(busyTimeoutMs / 1000.0));
                connection.Open();
                Execute(connection, null, "PRAGMA busy_timeout = " + busyTimeoutMs.ToString(CultureInfo.InvariantCulture));
                return connection;
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }

        public static int Execute(SqliteConnection connection, SqliteTransaction transaction, string sql, params (string Name, string Value)[] parameters)
        {
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = sql;
                foreach (var p in parameters) command.Parameters.Add(p.Name, SqliteType.Text).Value = p.Value;
                return command.ExecuteNonQuery();
            }
        }

        /// <summary>Closes the connection (the next operation opens a new one); caller holds the gate.</summary>
        public void Close()
        {
            SqliteConnection connection = _connection;
            _connection = null;
            if (connection == null)
                return;
            try
            {
                connection.Dispose();
            }
            catch (Exception)
            {
                // Closing a broken connection must not hide the error that broke it.
            }
        }

        /// <summary>Waits for an operation in flight to finish with the connection, then closes it.</summary>
        public void Dispose()
        {
            if (_disposed)
                return;
            _disposed = true;
            _gate.Wait();
            try
            {
                Close();
            }
            finally
            {
                _gate.Release();
            }
        }
    }
}
