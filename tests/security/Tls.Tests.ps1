# TLS: the scenario over TLS with the certificate validated against a throwaway CA; a wrong CA, a wrong
# name and no CA fail with TlsValidationFailed; -SkipCertificateCheck works and warns; a plain client at
# the TLS port fails clearly. A redis-server of its own (--tls-port), so the redis-server pass only.
BeforeAll {
    . (Join-Path $PSScriptRoot 'SecurityHelpers.ps1')
    $script:Certs = New-TestCertificates (Join-Path $script:ServerDir 'certs')
    $script:Server = Start-TestServer -Kind Redis -WorkDir $script:ServerDir -TlsCertFile $script:Certs.Cert -TlsKeyFile $script:Certs.Key -TlsCaFile $script:Certs.Ca
    $script:Admin = @{ Endpoint = $script:Server.Endpoint; Tls = $true }
    function Get-Failure([scriptblock] $Script) {
        try { & $Script; $null } catch { $_ }
    }
}
AfterAll {
    Disconnect-WriteBehind
    Stop-TestServer $script:Server
}

Describe 'TLS' {
    It 'runs the seed''s four steps and every other cmdlet over TLS, the certificate checked against the CA' {
        $c = Connect-WriteBehind -Redis $script:Server.Endpoint -TlsCaCertificate $script:Certs.Ca -Store "sqlite://$(New-TestStore)" -PassThru
        $c.UsesTls | Should -BeTrue
        "$c" | Should -Match '\(TLS\)'
        $r = Invoke-SecurityScenario -Admin $script:Admin
        $r.Step1 | Should -BeExactly '{"name":"Alice","age":"30"}'
        $r.Dropped | Should -Be 2
        $r.Flush.Dequeued | Should -Be 1
        $r.Flush.Persisted | Should -Be 1
        $r.Cache1001 | Should -BeExactly '{"name":"Alice","age":"31"}'
        $r.Store1001 | Should -BeExactly '{"name":"Alice","age":"31"}'
        $r.Continuous.Persisted | Should -Be 1
        $r.Consistent | Should -BeTrue
    }

    It 'validates the name: localhost with -UseTls -TlsCaCertificate, and -TlsHostName for a name the certificate carries' {
        $c = Connect-WriteBehind -Redis "localhost:$($script:Server.Port)" -UseTls -TlsCaCertificate $script:Certs.Ca -PassThru
        $c.IsConnected | Should -BeTrue
        $c = Connect-WriteBehind -Redis $script:Server.Endpoint -TlsCaCertificate $script:Certs.Ca -TlsHostName 'localhost' -PassThru
        $c.IsConnected | Should -BeTrue
        Disconnect-WriteBehind
    }

    It 'a certificate from another CA ends with TlsValidationFailed' {
        $err = Get-Failure { Connect-WriteBehind -Redis $script:Server.Endpoint -TlsCaCertificate $script:Certs.OtherCa }
        $err.FullyQualifiedErrorId | Should -BeLike 'TlsValidationFailed,*'
        $err.CategoryInfo.Category | Should -Be 'SecurityError'
        $err.Exception.Message | Should -Match 'certificate did not validate'
        $err.Exception.Message | Should -Match 'not issued by the given CA'
    }

    It 'a name the certificate does not carry ends with TlsValidationFailed' {
        $err = Get-Failure { Connect-WriteBehind -Redis $script:Server.Endpoint -TlsCaCertificate $script:Certs.Ca -TlsHostName 'cache.example.invalid' }
        $err.FullyQualifiedErrorId | Should -BeLike 'TlsValidationFailed,*'
        $err.Exception.Message | Should -Match 'does not name the host'
    }

    It 'without a CA the system does not trust the throwaway CA: TlsValidationFailed' {
        $err = Get-Failure { Connect-WriteBehind -Redis $script:Server.Endpoint -UseTls }
        $err.FullyQualifiedErrorId | Should -BeLike 'TlsValidationFailed,*'
        $err.Exception.Message | Should -Match '-TlsCaCertificate'
    }

    It '-SkipCertificateCheck connects without a CA and warns' {
        $c = Connect-WriteBehind -Redis $script:Server.Endpoint -SkipCertificateCheck -PassThru -WarningVariable warnings -WarningAction SilentlyContinue
        $c.UsesTls | Should -BeTrue
        @($warnings).Count | Should -Be 1
        "$($warnings[0])" | Should -Match 'not checked'
        Set-UserProfile -UserId 7 -Profile '{"tls":"skip"}' -Connection $c
        (Get-UserProfile -UserId 7 -Connection $c).Json | Should -BeExactly '{"tls":"skip"}'
        Disconnect-WriteBehind
    }

    It 'a plain client at the TLS port ends with RedisUnavailable that suggests -UseTls' {
        $err = Get-Failure { Connect-WriteBehind -Redis "$($script:Server.Endpoint),connectTimeout=3000" }
        $err.FullyQualifiedErrorId | Should -BeLike 'RedisUnavailable,*'
        $err.Exception.Message | Should -Match '-UseTls'
    }

    It 'the environment: WRITEBEHIND_REDIS_TLS and WRITEBEHIND_REDIS_CA' {
        $saved = @{ R = $env:WRITEBEHIND_REDIS; T = $env:WRITEBEHIND_REDIS_TLS; C = $env:WRITEBEHIND_REDIS_CA }
        try {
            $env:WRITEBEHIND_REDIS = $script:Server.Endpoint
            $env:WRITEBEHIND_REDIS_TLS = 'true'
            $env:WRITEBEHIND_REDIS_CA = $script:Certs.Ca
            $c = Connect-WriteBehind -PassThru
            $c.UsesTls | Should -BeTrue
            $env:WRITEBEHIND_REDIS_CA = $script:Certs.OtherCa
            (Get-Failure { Connect-WriteBehind }).FullyQualifiedErrorId | Should -BeLike 'TlsValidationFailed,*'
            $env:WRITEBEHIND_REDIS_TLS = 'maybe'
            (Get-Failure { Connect-WriteBehind }).FullyQualifiedErrorId | Should -BeLike 'InvalidConfiguration,*'
        } finally {
            $env:WRITEBEHIND_REDIS = $saved.R; $env:WRITEBEHIND_REDIS_TLS = $saved.T; $env:WRITEBEHIND_REDIS_CA = $saved.C
            Disconnect-WriteBehind
        }
    }
}
