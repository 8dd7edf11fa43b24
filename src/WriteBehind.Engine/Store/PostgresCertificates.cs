#if !NET
// Only the netstandard2.0 build (Windows PowerShell 5.1) needs this: Npgsql 8 on .NET checks sslrootcert itself.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;

namespace WriteBehind.Engine.Store
{
    /// <summary>sslmode=verify-ca / verify-full with sslrootcert: the server's certificate must chain to one of
    /// the CA certificates in that PEM (or DER) file, and for verify-full also name the host connected to.</summary>
    internal static class PostgresCertificates
    {
        private static readonly Regex PemBlock = new Regex(
            "-----BEGIN CERTIFICATE-----(?<body>[A-Za-z0-9+/=\\s]+)-----END CERTIFICATE-----", RegexOptions.Compiled);

        internal static X509Certificate2[] Load(string path)
        {
            byte[] bytes = File.ReadAllBytes(path);
            string text = System.Text.Encoding.ASCII.GetString(bytes);
            var certificates = PemBlock.Matches(text).Cast<Match>()
                .Select(m => new X509Certificate2(Convert.FromBase64String(Regex.Replace(m.Groups["body"].Value, "\\s", ""))))
                .ToArray();
            return certificates.Length > 0 ? certificates : new[] { new X509Certificate2(bytes) };
        }

        internal static RemoteCertificateValidationCallback Validator(string rootCertificateFile, string verifyHostName)
        {
            return (sender, certificate, chain, errors) =>
            {
                if (certificate == null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
                    return false;
                // The host name is checked here, not taken from SslPolicyErrors: under Npgsql's netstandard2.0
                // build SslStream reports a name mismatch for an IP address that the certificate does name.
                if (verifyHostName != null && !Names(certificate as X509Certificate2 ?? new X509Certificate2(certificate), verifyHostName))
                    return false;
                X509Certificate2[] roots;
                try { roots = Load(rootCertificateFile); }
                catch (Exception) { return false; } // unreadable file: trust nothing
                var server = certificate as X509Certificate2 ?? new X509Certificate2(certificate);
                using (var own = new X509Chain())
                {
                    own.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    own.ChainPolicy.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
                    foreach (var root in roots) own.ChainPolicy.ExtraStore.Add(root);
                    if (chain?.ChainElements != null)
                    {
                        foreach (X509ChainElement element in chain.ChainElements)
                            if (element.Certificate != null) own.ChainPolicy.ExtraStore.Add(element.Certificate);
                    }
                    bool built = own.Build(server);
                    // Only "untrusted root" may remain, and that root must be one of ours.
                    if (!built && own.ChainStatus.Any(s => s.Status != X509ChainStatusFlags.UntrustedRoot && s.Status != X509ChainStatusFlags.NoError))
                        return false;
                    if (own.ChainElements.Count == 0)
                        return false;
                    X509Certificate2 top = own.ChainElements[own.ChainElements.Count - 1].Certificate;
                    var thumbprints = new HashSet<string>(roots.Select(r => r.Thumbprint), StringComparer.OrdinalIgnoreCase);
                    return thumbprints.Contains(top.Thumbprint);
                }
            };
        }

        /// <summary>True when the certificate's subjectAltName (DNS names, with a leading "*." wildcard for one
        /// label, and IP addresses) names the host, or, without a subjectAltName, its common name does.</summary>
        internal static bool Names(X509Certificate2 certificate, string host)
        {
            bool hostIsIp = System.Net.IPAddress.TryParse(host, out System.Net.IPAddress hostIp);
            X509Extension san = certificate.Extensions.Cast<X509Extension>().FirstOrDefault(e => e.Oid?.Value == "2.5.29.17");
            if (san == null)
                return !hostIsIp && string.Equals(certificate.GetNameInfo(X509NameType.SimpleName, false), host, StringComparison.OrdinalIgnoreCase);
            byte[] der = san.RawData;
            int pos = 0;
            if (der.Length < 2 || der[pos++] != 0x30) return false;
            int end = ReadLength(der, ref pos) + pos;
            while (pos < end && pos < der.Length)
            {
                byte tag = der[pos++];
                int length = ReadLength(der, ref pos);
                if (length < 0 || pos + length > der.Length) return false;
                if (tag == 0x82 && !hostIsIp)
                {
                    string name = System.Text.Encoding.ASCII.GetString(der, pos, length);
                    if (string.Equals(name, host, StringComparison.OrdinalIgnoreCase)) return true;
                    if (name.StartsWith("*.", StringComparison.Ordinal) && host.IndexOf('.') > 0
                        && string.Equals(name.Substring(1), host.Substring(host.IndexOf('.')), StringComparison.OrdinalIgnoreCase))
                        return true;
                }
                else if (tag == 0x87 && hostIsIp && (length == 4 || length == 16))
                {
                    var bytes = new byte[length];
                    Array.Copy(der, pos, bytes, 0, length);
                    if (new System.Net.IPAddress(bytes).Equals(hostIp)) return true;
                }
                pos += length;
            }
            return false;
        }

        private static int ReadLength(byte[] der, ref int pos)
        {
            if (pos >= der.Length) return -1;
            int first = der[pos++];
            if (first < 0x80) return first;
            int count = first & 0x7F;
            if (count == 0 || count > 3) return -1;
            int length = 0;
            for (int i = 0; i < count; i++)
            {
                if (pos >= der.Length) return -1;
                length = (length << 8) | der[pos++];
            }
            return length;
        }
    }
}
#endif
