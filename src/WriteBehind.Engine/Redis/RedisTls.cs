// TLS to Redis: turning it on, loading the CA certificate file, and checking the server's certificate.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using StackExchange.Redis;

namespace WriteBehind.Engine.Redis
{
    /// <summary>Sets up TLS on a StackExchange.Redis configuration from the module's options (-UseTls,
    /// -TlsCaCertificate, -TlsHostName, -SkipCertificateCheck) and checks the server certificate on every
    /// handshake: against the given CA only (a private CA publishes no revocation list), or the system's
    /// trust store without one. What the check found is kept, so a failed connect can say why.</summary>
    internal static class RedisTls
    {
        /// <summary>What the certificate check found on the last handshake (null: nothing wrong).</summary>
        internal sealed class Check
        {
            public volatile string Failure;
        }

        /// <summary>Turns TLS on when asked (the options then say so too) and installs the certificate check.
        /// Null when the connection is plain.</summary>
        public static Check Configure(ConfigurationOptions config, WriteBehindOptions options)
        {
            if (options.UseTls || !string.IsNullOrEmpty(options.TlsCaCertificate)) config.Ssl = true;
            options.UseTls = config.Ssl;
            if (!config.Ssl) return null;
            if (!string.IsNullOrEmpty(options.TlsHostName)) config.SslHost = options.TlsHostName;
            var check = new Check();
            if (options.SkipCertificateCheck)
            {
                config.CertificateValidation += (sender, certificate, chain, errors) => true;
                return check;
            }
            X509Certificate2[] authorities = null;
            if (!string.IsNullOrEmpty(options.TlsCaCertificate))
            {
                authorities = LoadCertificates(options.TlsCaCertificate);
                // A private CA publishes no revocation list: the chain is checked against the given CA only.
                config.CheckCertificateRevocation = false;
            }
            config.CertificateValidation += (sender, certificate, chain, errors) =>
            {
                string failure = ValidateServerCertificate(certificate, errors, authorities);
                check.Failure = failure;
                return failure == null;
            };
            return check;
        }

        /// <summary>Every certificate in a PEM file (one or more BEGIN CERTIFICATE blocks) or a DER file.</summary>
        private static X509Certificate2[] LoadCertificates(string path)
        {
            byte[] bytes;
            try
            {
                bytes = System.IO.File.ReadAllBytes(path);
            }
            catch (Exception ex) when (ex is System.IO.IOException || ex is UnauthorizedAccessException || ex is ArgumentException || ex is NotSupportedException)
            {
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, $"The TLS CA certificate file '{path}' cannot be read: {ex.Message}", null);
            }
            try
            {
                string text = System.Text.Encoding.ASCII.GetString(bytes);
                var blocks = Regex.Matches(text, @"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----");
                if (blocks.Count == 0) return new[] { new X509Certificate2(bytes) };
                var list = new List<X509Certificate2>();
                foreach (Match b in blocks)
                    list.Add(new X509Certificate2(Convert.FromBase64String(Regex.Replace(b.Groups[1].Value, @"\s", ""))));
                return list.ToArray();
            }
            catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException || ex is FormatException)
            {
                throw new WriteBehindException(ErrorIds.InvalidConfiguration, $"The TLS CA certificate file '{path}' holds no certificate that can be read: {ex.Message}", null);
            }
        }

        /// <summary>Null when the server certificate is good: issued (through any intermediates the server sent)
        /// by one of <paramref name="authorities"/> (or, without them, trusted by the system), in its validity
        /// period, and naming the host. Otherwise why not.</summary>
        private static string ValidateServerCertificate(X509Certificate certificate, SslPolicyErrors errors, X509Certificate2[] authorities)
        {
            if (certificate == null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0) return "the server sent no certificate";
            if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
                return "the certificate does not name the host (give the name it carries with -TlsHostName)";
            if (authorities == null)
                return errors == SslPolicyErrors.None ? null : "the certificate chain is not trusted by this system (" + errors + "); give the CA with -TlsCaCertificate";
            var server = certificate as X509Certificate2 ?? new X509Certificate2(certificate);
            using (var chain = new X509Chain())
            {
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                chain.ChainPolicy.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
                foreach (var ca in authorities) chain.ChainPolicy.ExtraStore.Add(ca);
                chain.Build(server);
                var root = chain.ChainElements.Count > 0 ? chain.ChainElements[chain.ChainElements.Count - 1].Certificate : null;
                if (root == null || !authorities.Any(a => a.RawData.SequenceEqual(root.RawData)))
                    return $"it is not issued by the given CA (issuer: {server.Issuer})";
                foreach (var status in chain.ChainStatus)
                {
                    if (status.Status == X509ChainStatusFlags.NoError || status.Status == X509ChainStatusFlags.UntrustedRoot) continue;
                    return $"{status.Status}: {status.StatusInformation?.Trim()}";
                }
                return null;
            }
        }
    }
}
