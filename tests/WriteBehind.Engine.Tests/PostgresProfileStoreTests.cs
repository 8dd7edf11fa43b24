using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using WriteBehind.Engine.Store;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>
    /// The test PostgreSQL server (never a mock): WRITEBEHIND_TEST_POSTGRES holds its URI without password
    /// (postgres://user@127.0.0.1:port/database), WRITEBEHIND_TEST_POSTGRES_PASSWORD the role's password and
    /// WRITEBEHIND_TEST_POSTGRES_CA the CA file of its TLS certificate. build.ps1 Test starts that server
    /// (build/Servers.psm1 Start-TestPostgres) and sets them. Each test gets a database of its own.
    /// </summary>
    internal static class TestPostgres
    {
        /// <summary>The xunit collection of the test classes that use the server (they do not run in parallel).</summary>
        public const string Collection = "PostgreSQL server";
        public const string UriVariable = "WRITEBEHIND_TEST_POSTGRES";
        public const string PasswordVariable = "WRITEBEHIND_TEST_POSTGRES_PASSWORD";
        public const string CaVariable = "WRITEBEHIND_TEST_POSTGRES_CA";

        public static string Uri => Required(UriVariable);
        public static string Password => Required(PasswordVariable);
        public static string CaFile => Environment.GetEnvironmentVariable(CaVariable);

        private static string Required(string name)
        {
            string value = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrWhiteSpace(value))
                throw new InvalidOperationException(
                    $"{name} is not set: the PostgreSQL store tests need a server (build.ps1 Test starts one; or Start-TestPostgres from build/Servers.psm1).");
            return value;
        }

        public static NpgsqlConnectionStringBuilder Builder(string database = null)
        {
            var builder = StoreFactory.ParsePostgres(Uri, null, null).Builder;
            builder.Password = Password;
            builder.Pooling = false;
            if (database != null) builder.Database = database;
            return builder;
        }

        public static NpgsqlConnection OpenRaw(string database = null)
        {
            var connection = new NpgsqlConnection(Builder(database).ConnectionString);
            connection.Open();
            return connection;
        }

        public static object Scalar(NpgsqlConnection connection, string sql, params (string Name, object Value)[] parameters)
        {
            using var command = new NpgsqlCommand(sql, connection);
            foreach (var p in parameters) command.Parameters.AddWithValue(p.Name, p.Value);
            return command.ExecuteScalar();
        }

        /// <summary>The test URI with another database (and optionally a query).</summary>
        public static string UriFor(string database, string query = "")
        {
            string uri = Uri;
            int q = uri.IndexOf('?');
            if (q >= 0) uri = uri.Substring(0, q);
            return uri.Substring(0, uri.LastIndexOf('/') + 1) + database + query;
        }
    }

    /// <summary>A fresh database for one test, dropped afterwards.</summary>
    internal sealed class PostgresTarget : IStoreTarget
    {
        public PostgresTarget(string query = "")
        {
            Database = "wbt_" + Guid.NewGuid().ToString("N");
            using (var admin = TestPostgres.OpenRaw())
                TestPostgres.Scalar(admin, "CREATE DATABASE " + Database);
            Uri = TestPostgres.UriFor(Database, query);
        }

        public string Database { get; }
        public string Uri { get; }

        public IProfileStore Open() => StoreFactory.Open(Uri, null, TestPostgres.Password);
        public string ExpectedDescription => Uri;

        public object Scalar(string sql, params (string Name, object Value)[] parameters)
        {
            using var raw = TestPostgres.OpenRaw(Database);
            return TestPostgres.Scalar(raw, sql, parameters);
        }

        public bool Exists() => (bool)Scalar("SELECT to_regclass('wb_schema') IS NOT NULL");
        public Task<long> RawSchemaRowCountAsync() => Task.FromResult(Convert.ToInt64(Scalar("SELECT count(*) FROM wb_schema")));
        public Task<long> RawSchemaVersionAsync() => Task.FromResult(Convert.ToInt64(Scalar("SELECT version FROM wb_schema")));
        public Task<bool> RawDeletedAsync(string userId) => Task.FromResult((bool)Scalar("SELECT deleted FROM user_profiles WHERE user_id = @id", ("id", userId)));
        public Task<bool> RawJsonIsNullAsync(string userId) => Task.FromResult((bool)Scalar("SELECT json IS NULL FROM user_profiles WHERE user_id = @id", ("id", userId)));
        public Task<byte[]> RawJsonBytesAsync(string userId) => Task.FromResult((byte[])Scalar("SELECT convert_to(json, 'UTF8') FROM user_profiles WHERE user_id = @id", ("id", userId)));
        public Task<bool> RawUserProfilesTableExistsAsync() => Task.FromResult((bool)Scalar("SELECT to_regclass('user_profiles') IS NOT NULL"));

        public Task<bool> RawSchemaTableExistsAsync() => Task.FromResult(Exists());

        public Task ExecuteRawAsync(string sql)
        {
            Scalar(sql);
            return Task.CompletedTask;
        }

        public Task CreateSchemaTableAsync(long version)
        {
            Scalar($"CREATE TABLE wb_schema(version integer NOT NULL); INSERT INTO wb_schema(version) VALUES({version});");
            return Task.CompletedTask;
        }

        public void Dispose()
        {
            NpgsqlConnection.ClearAllPools();
            try
            {
                using var admin = TestPostgres.OpenRaw();
                TestPostgres.Scalar(admin, "DROP DATABASE IF EXISTS " + Database + " WITH (FORCE)");
            }
            catch (NpgsqlException)
            {
                // Best effort: a leftover database must not fail a test.
            }
        }
    }

    /// <summary>The store contract against a real PostgreSQL, plus what only a server has: credentials,
    /// TLS, outages, error classification.</summary>
    // One collection with the mapped-table tests: their targets' Dispose clears every Npgsql pool, which would
    // close a connection the TLS tests below look up in pg_stat_activity.
    [Collection(TestPostgres.Collection)]
    public sealed class PostgresProfileStoreTests : StoreContractTests
    {
        protected override IStoreTarget CreateTarget() => new PostgresTarget();

        private static int FreePort()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            try { return ((IPEndPoint)listener.LocalEndpoint).Port; } finally { listener.Stop(); }
        }

        [Fact]
        public async Task A_user_profiles_table_with_jsonb_or_integer_versions_is_refused_naming_the_types()
        {
            using var db = new PostgresTarget();
            db.Scalar("CREATE TABLE user_profiles(user_id text PRIMARY KEY, json jsonb, version integer NOT NULL, deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now())");
            using var store = db.Open();
            var ex = await Assert.ThrowsAsync<WriteBehindException>(() => store.CheckAsync(CancellationToken.None));
            Assert.Equal(ErrorIds.StoreTableMismatch, ex.ErrorId);
            Assert.Contains("json is jsonb, not text", ex.Message);
            Assert.Contains("version is integer, not bigint", ex.Message);
            Assert.Contains("search_path", ex.Message);
            await Assert.ThrowsAsync<WriteBehindException>(() => store.CountAsync(CancellationToken.None));
            Assert.False(db.Exists());
        }

        [Fact]
        public async Task A_user_profiles_table_of_the_modules_shape_made_by_hand_is_used_and_a_schema_of_its_own_avoids_the_applications()
        {
            using var db = new PostgresTarget();
            db.Scalar("CREATE TABLE user_profiles(user_id text COLLATE \"C\" NOT NULL PRIMARY KEY, json text NULL, version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now(), note text)");
            using (var store = db.Open())
            {
                await store.CheckAsync(CancellationToken.None);
                Assert.Equal(1, (await store.CommitAsync(new[] { new ProfileRow("h1", "{}", 1) }, CancellationToken.None)).Applied);
            }
            // An application's own table beside it, in another schema: ?search_path=wb keeps the module away from it.
            using var app = new PostgresTarget();
            app.Scalar("CREATE TABLE user_profiles(id integer PRIMARY KEY, name text NOT NULL); CREATE SCHEMA wb;");
            using (var store = StoreFactory.Open(TestPostgres.UriFor(app.Database, "?search_path=wb"), null, TestPostgres.Password))
            {
                await store.CheckAsync(CancellationToken.None);
                Assert.Equal(1, (await store.CommitAsync(new[] { new ProfileRow("s1", "{}", 1) }, CancellationToken.None)).Applied);
            }
            Assert.Equal(0L, Convert.ToInt64(app.Scalar("SELECT count(*) FROM public.user_profiles")));
        }

        [Fact]
        public async Task Postgres_schema_keeps_json_as_text_and_ids_in_C_collation()
        {
            using var db = new PostgresTarget();
            using (var store = db.Open())
                Assert.Equal(0L, await store.CountAsync(None));

            var columns = new List<(string Name, string Type, bool Nullable, string Collation)>();
            using (var raw = TestPostgres.OpenRaw(db.Database))
            using (var command = new NpgsqlCommand(
                "SELECT column_name, data_type, is_nullable = 'YES', coalesce(collation_name, '') FROM information_schema.columns " +
                "WHERE table_name = 'user_profiles' ORDER BY ordinal_position", raw))
            using (var reader = command.ExecuteReader())
            {
                while (reader.Read())
                    columns.Add((reader.GetString(0), reader.GetString(1), reader.GetBoolean(2), reader.GetString(3)));
            }
            Assert.Equal(new[] { "user_id", "json", "version", "deleted", "updated_at" }, columns.Select(c => c.Name));
            Assert.Equal(new[] { "text", "text", "bigint", "boolean", "timestamp with time zone" }, columns.Select(c => c.Type));
            Assert.Equal(new[] { false, true, false, false, false }, columns.Select(c => c.Nullable));
            Assert.Equal("C", columns[0].Collation);
            Assert.Equal("user_id", db.Scalar(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) " +
                "WHERE i.indrelid = 'user_profiles'::regclass AND i.indisprimary"));
        }

        [Theory]
        [InlineData("postgres://wbuser:{0}@127.0.0.1:5432/db")]
        [InlineData("postgresql://wbuser:{0}@127.0.0.1/db?sslmode=require")]
        [InlineData("postgres://wbuser@127.0.0.1:5432/db?sslmode=require&password={0}")]
        [InlineData("postgres://wbuser@127.0.0.1:5432/db?PASSWORD={0}")]
        public void A_password_in_the_uri_is_refused_without_echoing_it(string template)
        {
            const string secret = "Sup3r-s3cret-pw";
            string uri = string.Format(template, secret);

            foreach (Action attempt in new Action[]
            {
                () => StoreFactory.Validate(uri),
                () => StoreFactory.Open(uri, null, "other").Dispose(),
                () => StoreFactory.Open(new WriteBehindOptions { Store = uri, StorePassword = "other" }).Dispose(),
            })
            {
                var ex = Assert.Throws<WriteBehindException>(attempt);
                Assert.Equal(ErrorIds.InvalidStoreUri, ex.ErrorId);
                Assert.DoesNotContain(secret, ex.Message);
                Assert.Contains("-StoreCredential", ex.Message);
                Assert.Contains("WRITEBEHIND_STORE_PASSWORD", ex.Message);
            }
            Assert.DoesNotContain(secret, StoreFactory.Display(uri));
        }

        [Fact]
        public void Uri_grammar_defaults_and_description()
        {
            Assert.Equal("postgres://app@db01:5432/profiles", StoreFactory.Validate("postgres://app@db01/profiles"));
            Assert.Equal("postgresql://app@db01:6543/profiles?sslmode=require", StoreFactory.Validate("postgresql://app@db01:6543/profiles?sslmode=require"));
            // The credential's user wins over the URI's; a URI without a user takes it from there.
            Assert.Equal("postgres://cred@db01:5432/profiles", StoreFactory.Validate("postgres://app@db01/profiles", "cred"));
            Assert.Equal("postgres://cred@db01:5432/profiles", StoreFactory.Validate("postgres://db01/profiles", "cred"));
            Assert.Equal("postgres://app@[::1]:5433/p", StoreFactory.Validate("postgres://app@[::1]:5433/p"));
            var target = StoreFactory.ParsePostgres("postgres://a%40b@[::1]:5433/my%20db?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=3&command_timeout=60&application_name=x&search_path=s1", null, null);
            Assert.Equal("::1", target.Builder.Host);
            Assert.Equal(5433, target.Builder.Port);
            Assert.Equal("a@b", target.Builder.Username);
            Assert.Equal("my db", target.Builder.Database);
            Assert.Equal(SslMode.VerifyFull, target.Builder.SslMode);
            Assert.Equal("/etc/ca.pem", target.Builder.RootCertificate);
            Assert.Equal(3, target.Builder.Timeout);
            Assert.Equal(60, target.Builder.CommandTimeout);
            Assert.Equal("s1", target.Builder.SearchPath);
            Assert.Null(target.Builder.Password);

            foreach (string bad in new[]
            {
                "postgres://app@db01/", "postgres://app@db01", "postgres://db01/p", "postgres://app@:5432/p", "postgres://app@db01:99999/p",
                "postgres://app@db01/p?sslmode=sometimes", "postgres://app@db01/p?unknown=1", "postgres://app@h1,h2/p", "postgres://app@db01/p#x",
            })
            {
                var ex = Assert.Throws<WriteBehindException>(() => StoreFactory.Validate(bad));
                Assert.Equal(ErrorIds.InvalidStoreUri, ex.ErrorId);
            }
        }

        [Fact]
        public async Task Wrong_password_is_a_clear_error_without_the_password()
        {
            const string wrong = "Wr0ng-Pa55word-xyz";
            using var store = StoreFactory.Open(TestPostgres.Uri, null, wrong);
            var ex = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.CommitAsync(new[] { new ProfileRow("u1", "{}", 1) }, None));
            Assert.Contains("password authentication failed", ex.Message);
            Assert.Contains("28P01", ex.Message);
            Assert.Contains(StoreFactory.Validate(TestPostgres.Uri), ex.Message);
            Assert.DoesNotContain(wrong, ex.ToString());
            Assert.DoesNotContain(TestPostgres.Password, ex.ToString());
        }

        [Fact]
        public async Task Server_down_is_StoreUnavailable()
        {
            int port = FreePort(); // nothing listens there
            using var store = StoreFactory.Open($"postgres://writebehind@127.0.0.1:{port}/writebehind?connect_timeout=2", null, "pw-not-shown");
            var ex = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.CommitAsync(new[] { new ProfileRow("u1", "{}", 1) }, None));
            Assert.Contains($"127.0.0.1:{port}", ex.Message);
            Assert.DoesNotContain("pw-not-shown", ex.ToString());
            await Assert.ThrowsAsync<StoreUnavailableException>(() => store.CountAsync(None));
            await Assert.ThrowsAsync<StoreUnavailableException>(() => store.GetAsync(new[] { "u1" }, None));
        }

        [Fact]
        public async Task Admin_shutdown_of_the_stores_connection_is_StoreUnavailable_then_it_recovers()
        {
            string app = "wb-kill-" + Guid.NewGuid().ToString("N").Substring(0, 8);
            using var db = new PostgresTarget("?application_name=" + app);
            using var store = db.Open();
            await store.CommitAsync(new[] { new ProfileRow("u1", "{}", 1) }, None); // the pooled connection stays open

            long killed = Convert.ToInt64(db.Scalar(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = @app", ("app", app)));
            Assert.True(killed >= 1, "no backend of the store to terminate");

            var ex = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.CommitAsync(new[] { new ProfileRow("u2", "{}", 1) }, None));
            Assert.True(ex.Message.Contains("57P01") || ex.InnerException is NpgsqlException, ex.ToString());

            // The broken connection left the pool: the same instance works again, and nothing half-written stayed.
            StoreCommitResult again = await store.CommitAsync(new[] { new ProfileRow("u2", "{}", 1) }, None);
            Assert.Equal(1, again.Applied);
            Assert.Equal(2L, await store.CountAsync(None));
        }

        [Fact]
        public async Task A_row_the_server_refuses_is_a_StoreException_not_an_outage()
        {
            using var db = new PostgresTarget();
            using var store = db.Open();
            // PostgreSQL text cannot hold NUL (22021): that row will never go in.
            var ex = await Assert.ThrowsAsync<StoreException>(() =>
                store.CommitAsync(new[] { new ProfileRow("ok", "{}", 1), new ProfileRow("bad", "{\"a\":\"x\0y\"}", 1) }, None));
            Assert.IsNotType<StoreUnavailableException>(ex);
            Assert.Contains("22021", ex.Message);
            // One statement: neither row went in.
            Assert.Equal(0L, await store.CountAsync(None));
            Assert.Equal(1, (await store.CommitAsync(new[] { new ProfileRow("ok", "{}", 1) }, None)).Applied);
        }

        [Fact]
        public async Task The_upsert_streams_the_batch_into_the_insert_without_a_tuplestore()
        {
            // Issue 13: unnest(...) in FROM is a Function Scan that copies the whole batch into a tuplestore
            // before the first row is inserted; in the select list it is a ProjectSet that streams the rows.
            using var db = new PostgresTarget();
            using (var store = db.Open())
                await store.CountAsync(None); // the schema
            using var raw = TestPostgres.OpenRaw(db.Database);
            using var command = new NpgsqlCommand("EXPLAIN " + PostgresProfileStore.UpsertSql, raw);
            command.Parameters.Add(new NpgsqlParameter<string[]>("ids", NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text) { TypedValue = new[] { "a", "b", "c" } });
            command.Parameters.Add(new NpgsqlParameter<string[]>("jsons", NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text) { TypedValue = new[] { "{}", null, "{}" } });
            command.Parameters.Add(new NpgsqlParameter<long[]>("versions", NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Bigint) { TypedValue = new[] { 1L, 2L, 3L } });
            var plan = new List<string>();
            using (var reader = command.ExecuteReader())
                while (reader.Read()) plan.Add(reader.GetString(0));
            string text = string.Join("\n", plan);
            Assert.Contains("ProjectSet", text);
            Assert.DoesNotContain("Function Scan", text);
            Assert.DoesNotContain("Sort", text);
        }

        [Fact]
        public async Task An_id_several_times_in_one_commit_is_written_once_at_its_newest_version()
        {
            using var db = new PostgresTarget();
            using var store = db.Open();
            var result = await store.CommitAsync(new[]
            {
                new ProfileRow("b", "{\"v\":1}", 1), new ProfileRow("a", "{\"v\":3}", 3), new ProfileRow("b", "{\"v\":5}", 5),
                new ProfileRow("a", "{\"v\":2}", 2), new ProfileRow("b", null, 4), new ProfileRow("c", null, 7),
            }, None);
            Assert.Equal(3, result.Applied);
            Assert.Equal(3, result.Stale);
            var rows = await store.GetAsync(new[] { "a", "b", "c" }, None);
            Assert.Equal(("{\"v\":3}", 3L), (rows["a"].Json, rows["a"].Version));
            Assert.Equal(("{\"v\":5}", 5L), (rows["b"].Json, rows["b"].Version));
            Assert.True(rows["c"].IsDeleted);
            Assert.Equal(7L, rows["c"].Version);
        }

        [Fact]
        public void The_commits_row_order_is_NewestPerIds()
        {
            var random = new Random(13);
            for (int round = 0; round < 200; round++)
            {
                var rows = Enumerable.Range(0, random.Next(0, 60))
                    .Select(_ => new ProfileRow("u" + random.Next(0, 20), "{}", random.Next(1, 6)))
                    .ToList();
                // the definition: per id the row of the highest version, the ids in ordinal order
                var expected = rows.GroupBy(r => r.UserId, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
                    .Select(g => (g.Key, g.Max(r => r.Version))).ToList();
                var actual = MappedValues.NewestPerId(rows).Select(r => (r.UserId, r.Version)).ToList();
                Assert.Equal(expected, actual);
            }
        }

        [Fact]
        public void Row_errors_are_data_and_integrity_errors_only()
        {
            foreach (string state in new[] { "22021", "22P02", "22001", "23505" })
                Assert.True(PostgresServer.IsRowError(state), state);
            foreach (string state in new[] { "08006", "57P01", "57P02", "57P03", "40001", "40P01", "53300", "28P01", "3D000", "42P01", null })
                Assert.False(PostgresServer.IsRowError(state), state ?? "null");
        }

        private static async Task<bool?> SslOfStoreConnection(string query)
        {
            string app = "wb-ssl-" + Guid.NewGuid().ToString("N").Substring(0, 8);
            using var db = new PostgresTarget(query + "&application_name=" + app);
            using var store = db.Open();
            await store.CommitAsync(new[] { new ProfileRow("u1", "{}", 1) }, None); // the pooled connection stays open
            object ssl = db.Scalar(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.application_name = @app LIMIT 1", ("app", app));
            return ssl is bool b ? b : (bool?)null;
        }

        [Fact]
        public async Task Sslmode_require_connects_over_tls_and_disable_does_not()
        {
            Assert.True(await SslOfStoreConnection("?sslmode=require"));
            Assert.False(await SslOfStoreConnection("?sslmode=disable"));
        }

        [Fact]
        public async Task Sslmode_verify_full_checks_the_server_certificate_against_the_given_CA()
        {
            string ca = TestPostgres.CaFile;
            Assert.False(string.IsNullOrEmpty(ca), TestPostgres.CaVariable + " is not set");
            Assert.True(await SslOfStoreConnection("?sslmode=verify-full&sslrootcert=" + System.Uri.EscapeDataString(ca)));

            // The certificate names localhost too.
            Assert.True(await SslOfStoreConnection("?sslmode=verify-ca&sslrootcert=" + System.Uri.EscapeDataString(ca)));

            // Another CA (the system's bundle) or none: the server's certificate is not trusted, and that is
            // an outage for the flush (nothing is dead-lettered).
            foreach (string query in new[] { "?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt", "?sslmode=verify-full" })
            {
                using var db = new PostgresTarget(query);
                using var store = db.Open();
                var ex = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.CountAsync(None));
                Assert.Contains("SSL", ex.Message);
            }
        }

        // Verify_full_host_name_check_reads_the_subject_alternative_names tested PostgresCertificates.Names, the
        // host-name check of the certificate validator that only the netstandard2.0 build (Windows PowerShell
        // 5.1) still has: this net10.0 test host runs the net8.0 engine, where Npgsql checks sslrootcert and the
        // host name itself (Sslmode_verify_full_checks_the_server_certificate_against_the_given_CA above).
    }
}
