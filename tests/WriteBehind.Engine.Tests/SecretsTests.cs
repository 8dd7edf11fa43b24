using System.Linq;
using System.Reflection;
using WriteBehind.Engine;
using Xunit;

namespace WriteBehind.Engine.Tests
{
    public class SecretsTests
    {
        [Theory]
        [InlineData("host:6379,password=pw", "host:6379", null, "pw")]
        [InlineData("host:6379,user=app,password=p=w,ssl=true", "host:6379,ssl=true", "app", "p=w")]
        [InlineData("h1:1,h2:2, Password = x ", "h1:1,h2:2", null, "x")]
        [InlineData("host:6379,user=app", "host:6379", "app", null)]
        [InlineData("host:6379,ssl=true", "host:6379,ssl=true", null, null)]
        [InlineData("redis://127.0.0.1:6392", "127.0.0.1:6392", null, null)]
        [InlineData("redis://cache01", "cache01:6379", null, null)]
        [InlineData("rediss://app:p%40ss%3Aw@cache01:6380/3", "cache01:6380,ssl=true,defaultDatabase=3", "app", "p@ss:w")]
        [InlineData("REDIS://:pw@host:1/", "host:1", null, "pw")]
        [InlineData("redis://app@host:6379", "host:6379", "app", null)]
        public void Split_takes_user_and_password_out_of_the_configuration_string(string config, string rest, string user, string password)
        {
            Assert.Equal(rest, RedisSecrets.Split(config, out string u, out string p));
            Assert.Equal(user, u);
            Assert.Equal(password, p);
        }

        [Theory]
        [InlineData("redis://h-77z:6379?ssl=true", "query")]
        [InlineData("redis://h-77z:6379/zero", "database number")]
        [InlineData("redis://h-77z:6379/1/2", "database number")]
        [InlineData("redis://u:Secret-Pw-9@h-77z:99999", "well-formed")]
        // a URI of another scheme: named by its scheme alone, never dialled as a host called "http"
        [InlineData("http://h-77z:6379", "a http:// URI, not a Redis one")]
        [InlineData(" postgres://app:Secret-Pw-9@h-77z:5432/db", "a postgres:// URI, not a Redis one")]
        [InlineData("sqlite:///h-77z/profiles.db", "belongs in -Store")]
        [InlineData("Tcp://h-77z:6379,password=Secret-Pw-9", "a tcp:// URI")]
        [InlineData("averyveryverylongscheme+x://h-77z", "a URI, not a Redis one")]
        public void A_Redis_value_it_cannot_read_is_InvalidConfiguration_without_the_value_in_the_message(string value, string why)
        {
            var ex = Assert.Throws<WriteBehindException>(() => RedisSecrets.Split(value, out _, out _));
            Assert.Equal(ErrorIds.InvalidConfiguration, ex.ErrorId);
            Assert.Contains(why, ex.Message);
            Assert.DoesNotContain("Secret-Pw-9", ex.ToString());
            Assert.DoesNotContain("h-77z", ex.Message);
        }

        [Theory]
        [InlineData("h-77z:6379")]
        [InlineData("[::1]:6379,ssl=true")]
        [InlineData("h-77z:6379,sslHost=a://b")]
        [InlineData("9x://h-77z")]
        public void A_configuration_string_is_not_taken_for_a_URI(string value)
        {
            Assert.False(WriteBehind.Engine.Redis.RedisUri.IsOtherScheme(value, out _));
            Assert.Equal(value, RedisSecrets.Split(value, out _, out _));
        }

        [Fact]
        public void No_public_member_of_the_options_or_the_connection_returns_the_password()
        {
            var o = new WriteBehindOptions { Redis = "host:6379", RedisUser = "app" };
            o.RedisPassword = "Pw-Secret-77";
            foreach (var prop in typeof(WriteBehindOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetMethod?.IsPublic == true))
                Assert.DoesNotContain("Pw-Secret-77", prop.GetValue(o)?.ToString() ?? "");
            Assert.DoesNotContain("Pw-Secret-77", o.ToString());
            Assert.True(o.HasRedisPassword);
            Assert.Null(typeof(WriteBehindConnection).GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .FirstOrDefault(p => p.Name.IndexOf("Password", System.StringComparison.OrdinalIgnoreCase) >= 0 && p.PropertyType == typeof(string)));
        }
    }
}
