using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.Sqlite;

namespace WriteBehind.Engine.Store
{
    /// <summary>The SQLite store's schema: created in a fresh file, its version checked, and an existing
    /// user_profiles table refused when it is not the module's.</summary>
    public sealed partial class SqliteProfileStore
    {
        private void EnsureSchema(SqliteConnection connection)
        {
            long version = ReadSchemaVersion(connection);
            CheckSchemaVersion(version);
            // A user_profiles table that is not the module's (an application's own) is refused before
            // anything is written: the module never creates, alters or drops a table it does not own.
            CheckTableShape(connection, null);
            if (version == StoreSchema.CurrentVersion)
                return;

            using (SqliteTransaction transaction = connection.BeginTransaction())
            {
                // Another process may have got there first.
                version = ReadSchemaVersion(connection, transaction);
                CheckSchemaVersion(version);
                CheckTableShape(connection, transaction);
                if (version < 1)
                {
                    Execute(connection, CreateSchemaSql, transaction);
                    Execute(connection, "DELETE FROM wb_schema", transaction);
                    Execute(connection, "INSERT INTO wb_schema(version) VALUES(1)", transaction);
                }
                // Future migrations: if (version < 2) { ...; UPDATE wb_schema SET version = 2 }
                transaction.Commit();
            }
        }

        private void CheckSchemaVersion(long version) => StoreSchema.ThrowIfNewer("SQLite store", Description, version, "file");

        /// <summary>Checks what the file already holds without creating or changing anything (opened
        /// read-write so that a WAL-mode file can be read, but nothing is written): nothing to
        /// check when the file does not exist yet; otherwise its schema version must not be newer than this
        /// code's and a user_profiles table must be the module's (else <see cref="WriteBehindException"/>
        /// with <see cref="ErrorIds.StoreTableMismatch"/>).</summary>
        public Task CheckAsync(CancellationToken cancellationToken)
        {
            _gate.ThrowIfDisposed();
            cancellationToken.ThrowIfCancellationRequested();
            if (!File.Exists(_fullPath))
                return Task.CompletedTask;
            try
            {
                SqliteNative.EnsureLoaded();
                using (SqliteConnection connection = SqliteConnectionGate.OpenFile(_fullPath, SqliteOpenMode.ReadWrite, _busyTimeoutMs, privateCache: false))
                {
                    CheckSchemaVersion(ReadSchemaVersion(connection));
                    CheckTableShape(connection, null);
                }
            }
            catch (SqliteException ex)
            {
                throw SqliteConnectionGate.Translate(Description, "check it", ex);
            }
            return Task.CompletedTask;
        }

        /// <summary>An existing user_profiles table must have the module's columns, user_id as its key, and
        /// no other column the module's upsert could not fill.</summary>
        private void CheckTableShape(SqliteConnection connection, SqliteTransaction transaction)
        {
            var columns = new List<StoreColumn>();
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('user_profiles')";
                using (SqliteDataReader reader = command.ExecuteReader())
                {
                    while (reader.Read())
                    {
                        columns.Add(new StoreColumn(reader.GetString(0), reader.IsDBNull(1) ? "" : reader.GetString(1),
                            reader.GetInt64(2) != 0, !reader.IsDBNull(3), reader.GetInt64(4)));
                    }
                }
            }
            if (columns.Count == 0)
                return;
            bool userIdIsKey = columns.Count(c => c.KeyPosition > 0) == 1 && columns.Any(c => c.KeyPosition > 0 && c.Is("user_id"));
            if (!userIdIsKey)
            {
                // A unique index on user_id alone serves ON CONFLICT(user_id) as well as the primary key.
                using (SqliteCommand command = connection.CreateCommand())
                {
                    command.Transaction = transaction;
                    command.CommandText =
                        "SELECT COUNT(*) FROM pragma_index_list('user_profiles') AS l WHERE l.\"unique\" = 1 AND l.partial = 0 AND " +
                        "(SELECT COUNT(*) FROM pragma_index_info(l.name)) = 1 AND " +
                        "(SELECT name FROM pragma_index_info(l.name)) = 'user_id' COLLATE NOCASE";
                    userIdIsKey = Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture) > 0;
                }
            }
            // SQLite converts a value to its column's type affinity: under a numeric user_id, '007' is stored
            // as 7 (and never found again); under a text version, 10 is stored as '10', which sorts before '9'.
            var typeProblems = new List<string>();
            foreach (StoreColumn column in columns)
            {
                string affinity = Affinity(column.Type);
                if (column.Is("user_id") && affinity != "TEXT" && affinity != "BLOB")
                    typeProblems.Add("user_id is " + column.Type + ", not TEXT (with " + affinity + " affinity SQLite stores the id 007 as 7)");
                else if (column.Is("version") && affinity != "INTEGER" && affinity != "NUMERIC")
                    typeProblems.Add("version is " + (column.Type.Length == 0 ? "untyped" : column.Type) + ", not INTEGER (with " + affinity + " affinity SQLite compares versions as text: 10 before 9)");
            }
            StoreTableShape.ThrowIfNotTheModules(Description, columns, userIdIsKey, typeProblems);
        }

        /// <summary>The type affinity of a declared column type, by SQLite's rules (section 3.1 of its datatype page).</summary>
        private static string Affinity(string declaredType)
        {
            string t = declaredType.ToUpperInvariant();
            if (t.Contains("INT")) return "INTEGER";
            if (t.Contains("CHAR") || t.Contains("CLOB") || t.Contains("TEXT")) return "TEXT";
            if (t.Length == 0 || t.Contains("BLOB")) return "BLOB";
            if (t.Contains("REAL") || t.Contains("FLOA") || t.Contains("DOUB")) return "REAL";
            return "NUMERIC";
        }

        /// <summary>The version in wb_schema, or 0 when the table is missing or empty.</summary>
        private static long ReadSchemaVersion(SqliteConnection connection, SqliteTransaction transaction = null)
        {
            using (SqliteCommand command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'wb_schema'";
                if (Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture) == 0)
                    return 0;

                command.CommandText = "SELECT MAX(version) FROM wb_schema";
                object value = command.ExecuteScalar();
                return value == null || value is DBNull ? 0 : Convert.ToInt64(value, CultureInfo.InvariantCulture);
            }
        }
    }
}
