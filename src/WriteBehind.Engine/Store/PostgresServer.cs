using System;
using System.IO;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Npgsql;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// The connection and the error translation that <see cref="PostgresProfileStore"/> and
    /// <see cref="PostgresMappedStore"/> share: Npgsql connections of one connection string (with the module's
    /// own TLS certificate check when the URI asks for a private CA), and which failures are a row's fault.
    /// </summary>
    /// <remarks>
    /// A failure that has nothing to do with the rows in hand (cannot connect, authentication, admin shutdown,
    /// connection exceptions 08xxx, serialization failures and deadlocks, insufficient resources 53xxx,
    /// timeouts, schema trouble) is a <see cref="StoreUnavailableException"/>. Only a row the server refuses for
    /// good (data exceptions 22xxx such as a NUL character, integrity violations 23xxx, text that cannot be
    /// encoded) is a plain <see cref="StoreException"/>.
    /// </remarks>
    internal sealed class PostgresServer : ServerStoreRunner<NpgsqlConnection>
    {
        public PostgresServer(string connectionString, string description, RemoteCertificateValidationCallback certificateValidation, string ownerName)
            : base(connectionString, description ?? "postgres", ownerName)
        {
            CertificateValidation = certificateValidation;
        }

        /// <summary>Checks the server's TLS certificate (sslrootcert); null: Npgsql's own checks.</summary>
        public RemoteCertificateValidationCallback CertificateValidation { get; }

        public override string Kind => "PostgreSQL store";

        protected override NpgsqlConnection CreateConnection()
        {
            var connection = new NpgsqlConnection(ConnectionString);
            if (CertificateValidation != null)
                connection.UserCertificateValidationCallback = CertificateValidation;
            return connection;
        }

        // (Plain connections, not an NpgsqlDataSource: the engine is built against Npgsql's netstandard2.0
        // assembly, where DbDataSource is Npgsql's own type, and a .NET 8+ host may load Npgsql's net8.0 build.)
        protected override void ClearPool(NpgsqlConnection connection) => NpgsqlConnection.ClearPool(connection);

        protected override bool IsStoreFailure(Exception ex) =>
            ex is NpgsqlException || ex is IOException || ex is SocketException || ex is TimeoutException
            || ex is OperationCanceledException || ex is EncoderFallbackException || ex is ArgumentException
            || ex is InvalidCastException || ex is InvalidOperationException;

        public override bool IsRowError(Exception ex)
        {
            if (ex is EncoderFallbackException || ex is ArgumentException || ex is InvalidCastException)
                return true;
            if (ex is PostgresException pg)
                return IsRowError(pg.SqlState);
            return false;
        }

        /// <summary>Data exceptions (22xxx: a NUL character, an invalid byte sequence, a value too long) and
        /// integrity violations (23xxx). Everything else (connection exceptions 08xxx, admin shutdown
        /// 57P01..57P03, serialization failures and deadlocks 40001/40P01, insufficient resources 53xxx,
        /// timeouts, authentication, a missing database) does not depend on the rows and is transient to the flush.</summary>
        public static bool IsRowError(string sqlState)
        {
            return sqlState != null && (sqlState.StartsWith("22", StringComparison.Ordinal) || sqlState.StartsWith("23", StringComparison.Ordinal));
        }

        public override string Describe(Exception ex)
        {
            if (ex is PostgresException pg)
                return pg.SqlState + ": " + pg.MessageText;
            string message = ex.Message;
            // Npgsql wraps socket and timeout errors: the inner message says what happened.
            if (ex is NpgsqlException && ex.InnerException != null && !string.IsNullOrEmpty(ex.InnerException.Message)
                && !message.Contains(ex.InnerException.Message))
                message += " (" + ex.InnerException.Message + ")";
            return message;
        }
    }
}
