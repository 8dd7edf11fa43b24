using System;
using System.Globalization;
using System.IO;
using System.Net.Sockets;
using MySqlConnector;

namespace WriteBehind.Engine.Store
{
    /// <summary>
    /// The connection and the error translation that <see cref="MySqlProfileStore"/> and
    /// <see cref="MySqlMappedStore"/> share: MySqlConnector connections of one connection string, and which
    /// failures are a row's fault.
    /// </summary>
    /// <remarks>
    /// A failure that does not depend on the rows (cannot connect, authentication, server gone, deadlock 1213,
    /// lock wait timeout 1205, timeouts) is a <see cref="StoreUnavailableException"/>; a row the server refuses
    /// for good (SQLSTATE 22xxx/23xxx, incorrect values 1366/1292/1265/1411, invalid JSON) is a plain
    /// <see cref="StoreException"/>.
    /// </remarks>
    internal sealed class MySqlServer : ServerStoreRunner<MySqlConnection>
    {
        public MySqlServer(string connectionString, string description, string ownerName)
            : base(connectionString, description ?? "mysql", ownerName)
        {
        }

        public override string Kind => "MariaDB/MySQL store";

        protected override MySqlConnection CreateConnection() => new MySqlConnection(ConnectionString);

        protected override void ClearPool(MySqlConnection connection) => MySqlConnection.ClearPool(connection);

        protected override bool IsStoreFailure(Exception ex) =>
            ex is MySqlException || ex is IOException || ex is SocketException || ex is TimeoutException
            || ex is OperationCanceledException || ex is InvalidOperationException || ex is ArgumentException
            || ex is InvalidCastException || ex is FormatException;

        public override bool IsRowError(Exception ex)
        {
            if (!(ex is MySqlException my)) return false;
            string state = my.SqlState;
            if (state != null && (state.StartsWith("22", StringComparison.Ordinal) || state.StartsWith("23", StringComparison.Ordinal)))
                return true;
            switch (my.Number)
            {
                case 1265: // data truncated
                case 1292: // incorrect value (date, number)
                case 1366: // incorrect integer/decimal/string value
                case 1367: // illegal value
                case 1406: // data too long
                case 1411: // incorrect datetime value
                case 3140: // invalid JSON text (MySQL)
                case 4025: // CHECK constraint failed (MariaDB)
                case 4038: // JSON syntax error (MariaDB)
                    return true;
                default:
                    return false;
            }
        }

        public override string Describe(Exception ex)
        {
            if (ex is MySqlException my && my.Number > 0)
                return my.Number.ToString(CultureInfo.InvariantCulture) + (string.IsNullOrEmpty(my.SqlState) ? "" : " (" + my.SqlState + ")") + ": " + my.Message;
            string message = ex.Message;
            if (ex.InnerException != null && !string.IsNullOrEmpty(ex.InnerException.Message) && !message.Contains(ex.InnerException.Message))
                message += " (" + ex.InnerException.Message + ")";
            return message;
        }
    }
}
