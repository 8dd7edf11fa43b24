using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// Runs one operation of a database-server store (PostgreSQL, MariaDB/MySQL) on a pooled connection of its own
    /// and turns the driver's failures into the store's exceptions, the same way for every server store and its
    /// mapped-table store: a failure that has nothing to do with the rows in hand is a
    /// <see cref="StoreUnavailableException"/> (the flush keeps its batch and retries), a row the server refuses
    /// for good is a plain <see cref="StoreException"/> (the flusher isolates and dead-letters it). Messages
    /// name the store by its description (its URI without any password).
    /// </summary>
    internal abstract class ServerStoreRunner<TConnection> where TConnection : DbConnection
    {
        private readonly string _ownerName;
        private volatile bool _disposed;

        /// <param name="connectionString">The driver's connection string (may hold the password; never printed).</param>
        /// <param name="description">What to call the store in messages: its URI without any password.</param>
        /// <param name="ownerName">The store type named by <see cref="ObjectDisposedException"/> once disposed.</param>
        protected ServerStoreRunner(string connectionString, string description, string ownerName)
        {
            if (string.IsNullOrWhiteSpace(connectionString))
                throw new ArgumentException("A connection string is required.", nameof(connectionString));
            ConnectionString = connectionString;
            Description = description;
            _ownerName = ownerName;
        }

        public string ConnectionString { get; }

        public string Description { get; }

        /// <summary>How messages start: "PostgreSQL store", "MariaDB/MySQL store".</summary>
        public abstract string Kind { get; }

        public bool IsDisposed => _disposed;

        protected abstract TConnection CreateConnection();

        /// <summary>The exceptions that mean "the store failed" (all others, the module's own included, pass through).</summary>
        protected abstract bool IsStoreFailure(Exception ex);

        /// <summary>The error is about the data of a row, so the same rows will always fail.</summary>
        public abstract bool IsRowError(Exception ex);

        /// <summary>The server's error as shown in messages (its code and text).</summary>
        public abstract string Describe(Exception ex);

        /// <summary>Closes the idle pooled connections of this connection string.</summary>
        protected abstract void ClearPool(TConnection connection);

        /// <summary>Opens a connection, runs <paramref name="prepare"/> (when given) and <paramref name="operation"/>
        /// on it, and disposes it (back to the pool).</summary>
        /// <param name="action">What could not be done, for the message: "commit 3 row(s) to it", "read a page of table users".</param>
        /// <param name="rowsInvolved">The operation writes rows: a row error is then a <see cref="StoreException"/>, not an outage.</param>
        /// <param name="cancellationToken">Cancels the open and the operation.</param>
        /// <param name="prepare">Run first on the same connection (null: nothing).</param>
        /// <param name="operation">The work; its result is returned.</param>
        public async Task<T> RunAsync<T>(string action, bool rowsInvolved, CancellationToken cancellationToken,
            Func<TConnection, Task> prepare, Func<TConnection, Task<T>> operation)
        {
            if (_disposed)
                throw new ObjectDisposedException(_ownerName);
            cancellationToken.ThrowIfCancellationRequested();

            TConnection connection = null;
            bool opened = false;
            try
            {
                connection = CreateConnection();
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                opened = true;
                if (prepare != null)
                    await prepare(connection).ConfigureAwait(false);
                return await operation(connection).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (ObjectDisposedException) when (_disposed)
            {
                throw;
            }
            catch (InvalidOperationException ex) when (!(ex is ObjectDisposedException) && ex.Message.StartsWith(Kind, StringComparison.Ordinal))
            {
                throw; // a schema newer than this code: not a store outage
            }
            catch (StoreException)
            {
                throw; // a row this code refuses before the server sees it
            }
            catch (Exception ex) when (IsStoreFailure(ex))
            {
                string message = Kind + " " + Description + (opened ? "" : " is unavailable") + ": could not " + action + ": " + Describe(ex);
                if (rowsInvolved && opened && IsRowError(ex))
                    throw new StoreException(message, ex);
                throw new StoreUnavailableException(message, ex);
            }
            finally
            {
                if (connection != null)
                {
                    try { connection.Dispose(); } catch (Exception) { /* a broken connection is dropped from the pool */ }
                }
            }
        }

        /// <summary>The rows of a module table's read (user_id, json, version, updated_at as UTC).</summary>
        public static async Task<List<ProfileRow>> ReadProfilesAsync(DbCommand command, Func<DbDataReader, DateTime> updatedAt, CancellationToken cancellationToken)
        {
            var rows = new List<ProfileRow>();
            using (DbDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    rows.Add(new ProfileRow(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetInt64(2),
                        new DateTimeOffset(DateTime.SpecifyKind(updatedAt(reader), DateTimeKind.Utc))));
                }
            }
            return rows;
        }

        /// <summary>Marks the store disposed and closes its idle pooled connections.</summary>
        public void Dispose()
        {
            if (_disposed)
                return;
            _disposed = true;
            try
            {
                using (TConnection connection = CreateConnection())
                    ClearPool(connection);
            }
            catch (Exception)
            {
                // Closing a broken connection must not hide the error that broke it.
            }
        }
    }
}
