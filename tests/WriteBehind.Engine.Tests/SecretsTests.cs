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
        public void Split_takes_user_and_password_out_of_the_configuration_string(string config, string rest, string user, string password)
        {
            Assert.Equal(rest, RedisSecrets.Split(config, out string u, out string p));
            Assert.Equal(user, u);
            Assert.Equal(password, p);
            Assert.Equal(password != null, RedisSecrets.HasPassword(config));
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
