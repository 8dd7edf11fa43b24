using System;
using System.Threading.Tasks;
using MySqlConnector;
using WriteBehind.Engine.Store;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    /// <summary>
    /// The test MariaDB server (never a mock): WRITEBEHIND_TEST_MARIADB holds its URI without password
    /// (mysql://user@127.0.0.1:port/database), WRITEBEHIND_TEST_MARIADB_PASSWORD the user's password. build.ps1 Test
    /// starts that server (build/Servers.psm1 Start-TestMariaDb) and sets them. Each test gets a database of its own.
    /// </summary>
    internal static class TestMariaDb
    {
        public const string UriVariable = "WRITEBEHIND_TEST_MARIADB";
        public const string PasswordVariable = "WRITEBEHIND_TEST_MARIADB_PASSWORD";

        public static string Uri => Required(UriVariable);
        public static string Password => Required(PasswordVariable);

        private static string Required(string name)
        {
            string value = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrWhiteSpace(value))
                throw new InvalidOperationException(
                    $"{name} is not set: the MariaDB store tests need a server (build.ps1 Test starts one; or Start-TestMariaDb from build/Servers.psm1).");
            return value;
        }

        public static MySqlConnection OpenRaw(string database = null)
        {
            var builder = MySqlStoreUri.Parse(Uri, null, null).Builder;
            builder.Password = Password;
            builder.Pooling = false;
            if (database != null) builder.Database = database;
            var connection = new MySqlConnection(builder.ConnectionString);
            connection.Open();
            return connection;
        }

        public static object Scalar(MySqlConnection connection, string sql, params (string Name, object Value)[] parameters)
        {
            using var command = new MySqlCommand(sql, connection);
            foreach (var p in parameters) command.Parameters.AddWithValue(p.Name, p.Value);
            return command.ExecuteScalar();
        }

        public static string UriFor(string database)
        {
            string uri = Uri;
            int q = uri.IndexOf('?');
            if (q >= 0) uri = uri.Substring(0, q);
            return uri.Substring(0, uri.LastIndexOf('/') + 1) + database;
        }
    }

    /// <summary>A fresh database for one test, dropped afterwards.</summary>
    internal sealed class MariaDbTarget : IStoreTarget
    {
        public MariaDbTarget()
        {
            Database = "wbt_" + Guid.NewGuid().ToString("N");
            using (var admin = TestMariaDb.OpenRaw())
                TestMariaDb.Scalar(admin, "CREATE DATABASE " + Database + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
            Uri = TestMariaDb.UriFor(Database);
        }

        public string Database { get; }
        public string Uri { get; }

        public IProfileStore Open() => StoreFactory.Open(Uri, null, TestMariaDb.Password);
        public string ExpectedDescription => Uri;

        public object Scalar(string sql, params (string Name, object Value)[] parameters)
        {
            using var raw = TestMariaDb.OpenRaw(Database);
            return TestMariaDb.Scalar(raw, sql, parameters);
        }

        private bool TableExists(string name) =>
            Convert.ToInt64(Scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = @n", ("@n", name))) > 0;

        public bool Exists() => TableExists("wb_schema");
        public Task<long> RawSchemaRowCountAsync() => Task.FromResult(Convert.ToInt64(Scalar("SELECT COUNT(*) FROM wb_schema")));
        public Task<long> RawSchemaVersionAsync() => Task.FromResult(Convert.ToInt64(Scalar("SELECT version FROM wb_schema")));
        public Task<bool> RawDeletedAsync(string userId) => Task.FromResult(Convert.ToInt64(Scalar("SELECT deleted FROM user_profiles WHERE user_id = @id", ("@id", userId))) != 0);
        public Task<bool> RawJsonIsNullAsync(string userId) => Task.FromResult(Convert.ToInt64(Scalar("SELECT json IS NULL FROM user_profiles WHERE user_id = @id", ("@id", userId))) != 0);
        public Task<byte[]> RawJsonBytesAsync(string userId) => Task.FromResult((byte[])Scalar("SELECT CAST(json AS BINARY) FROM user_profiles WHERE user_id = @id", ("@id", userId)));
        public Task<bool> RawUserProfilesTableExistsAsync() => Task.FromResult(TableExists("user_profiles"));
        public Task<bool> RawSchemaTableExistsAsync() => Task.FromResult(TableExists("wb_schema"));

        public Task ExecuteRawAsync(string sql)
        {
            Scalar(sql);
            return Task.CompletedTask;
        }

        public Task CreateSchemaTableAsync(long version)
        {
            Scalar($"CREATE TABLE wb_schema(version int NOT NULL); INSERT INTO wb_schema(version) VALUES({version});");
            return Task.CompletedTask;
        }

        public void Dispose()
        {
            MySqlConnection.ClearAllPools();
            try
            {
                using var admin = TestMariaDb.OpenRaw();
                TestMariaDb.Scalar(admin, "DROP DATABASE IF EXISTS " + Database);
            }
            catch (MySqlException)
            {
                // Best effort: a leftover database must not fail a test.
            }
        }
    }

    /// <summary>The store contract against a real MariaDB, plus what only a server has: the URI without a password,
    /// a wrong password, a row the server refuses for good.</summary>
    public sealed class MySqlProfileStoreTests : StoreContractTests
    {
        protected override IStoreTarget CreateTarget() => new MariaDbTarget();

        [Fact]
        public void A_password_in_the_URI_is_refused_without_repeating_it()
        {
            foreach (string uri in new[] { "mysql://wb:S3cret-xyz@127.0.0.1/db", "mysql://wb@127.0.0.1/db?password=S3cret-xyz", "mariadb://wb@127.0.0.1/db?pwd=S3cret-xyz" })
            {
                var ex = Assert.Throws<WriteBehindException>(() => StoreFactory.Validate(uri));
                Assert.Equal(ErrorIds.InvalidStoreUri, ex.ErrorId);
                Assert.DoesNotContain("S3cret-xyz", ex.Message);
                Assert.DoesNotContain("S3cret-xyz", StoreFactory.Display(uri));
            }
            Assert.Equal("mysql://app@db01:3306/shop?sslmode=required", StoreFactory.Validate("mysql://app@db01/shop?sslmode=required"));
            Assert.Equal("mysql://other@db01:3307/shop", StoreFactory.Validate("mysql://app@db01:3307/shop", "other"));
        }

        [Fact]
        public async Task A_wrong_password_is_StoreUnavailable_and_names_no_password()
        {
            using var target = new MariaDbTarget();
            using var store = StoreFactory.Open(target.Uri, null, "Wr0ng-pw-xyz");
            var ex = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.CommitAsync(new[] { new ProfileRow("u1", "{}", 1) }, None));
            Assert.DoesNotContain("Wr0ng-pw-xyz", ex.ToString());
            Assert.Contains("Access denied", ex.Message);
        }

        [Fact]
        public async Task A_row_the_server_refuses_for_good_is_a_StoreException_and_the_others_go_in()
        {
            using var target = new MariaDbTarget();
            using var store = target.Open();
            await store.CommitAsync(new[] { new ProfileRow("seed", "{}", 1) }, None);
            target.Scalar("ALTER TABLE user_profiles ADD CONSTRAINT refuse_bad CHECK (user_id <> 'bad1')");
            var ex = await Assert.ThrowsAsync<StoreException>(() => store.CommitAsync(new[] { new ProfileRow("ok1", "{}", 1), new ProfileRow("bad1", "{}", 1) }, None));
            Assert.IsNotType<StoreUnavailableException>(ex);
            Assert.Contains("refuse_bad", ex.Message);
            Assert.Equal(1, (await store.CommitAsync(new[] { new ProfileRow("ok1", "{}", 1) }, None)).Applied);
        }
    }
}
