# Secrets: no password reaches any output. Every exported cmdlet runs with -Verbose -Debug in a fresh pwsh
# (SecretsChild.ps1) against a redis-server that requires a password, while the session holds a wrong one
# and then the right one (from a PSCredential, WRITEBEHIND_REDIS_PASSWORD, or password= in WRITEBEHIND_REDIS);
# the six streams, every object's views, everything in $Error and a transcript are searched for each secret.
# $script:Secrets is a list: a store password (-StoreCredential) joins it the same way.
BeforeDiscovery {
    $script:Cases = foreach ($source in 'Credential', 'Environment', 'EnvironmentString') {
        foreach ($which in 'Wrong', 'Right') { @{ Source = $source; Which = $which } }
    }
    # A PostgreSQL store's password (-StoreCredential or WRITEBEHIND_STORE_PASSWORD), wrong and right, with
    # the right Redis password: skipped without the test server build.ps1 Test starts.
    $script:StoreCases = foreach ($source in 'Credential', 'Environment') {
        foreach ($which in 'Wrong', 'Right') { @{ Source = $source; Which = $which } }
    }
    $script:NoPostgres = -not $env:WRITEBEHIND_TEST_POSTGRES
}
BeforeAll {
    . (Join-Path $PSScriptRoot 'SecurityHelpers.ps1')
    $script:RightPassword = New-Password
    $script:WrongPassword = New-Password
    # every secret that must never be printed, whichever the session holds
    $script:Secrets = @($script:RightPassword, $script:WrongPassword)
    $script:Server = Start-TestServer -Kind Redis -WorkDir $script:ServerDir -ExtraArguments @('--requirepass', $script:RightPassword)
    $script:Child = Join-Path $PSScriptRoot 'SecretsChild.ps1'

    $script:StoreRight = $env:WRITEBEHIND_TEST_POSTGRES_PASSWORD
    $script:StoreWrong = New-Password
    if ($script:StoreRight) { $script:Secrets += $script:StoreRight }
    $script:Secrets += $script:StoreWrong

    # Every secret, whichever the session held, is absent from the dump, the transcript and the console.
    function Assert-NoSecret($r) {
        foreach ($secret in $script:Secrets) {
            $r.Dump.Contains($secret) | Should -BeFalse -Because 'the dump of streams and $Error must not hold a secret'
            $r.Transcript.Contains($secret) | Should -BeFalse -Because 'the transcript must not hold a secret'
            $r.Console.Contains($secret) | Should -BeFalse -Because 'the console must not hold a secret'
        }
    }

    function Invoke-SecretsChild([string] $Source, [string] $Password, [string] $StoreUri, [string] $StorePassword) {
        $dir = Join-Path $script:ServerDir ('child-' + [guid]::NewGuid().ToString('N').Substring(0, 8))
        New-Item -ItemType Directory -Path $dir | Out-Null
        $out = Join-Path $dir 'dump.txt'
        $transcript = Join-Path $dir 'transcript.txt'
        $env:WB_TEST_SECRET_PASSWORD = $Password
        if ($StorePassword) { $env:WB_TEST_STORE_PASSWORD = $StorePassword }
        $storeArgs = if ($StoreUri) { @('-StoreUri', $StoreUri) } else { @() }
        try {
            $console = & dotnet pwsh -NoProfile -NonInteractive -File $script:Child -ModulePath $script:ModulePath -Endpoint $script:Server.Endpoint `
                -Source $Source -OutFile $out -TranscriptPath $transcript -StorePath (Join-Path $dir 'store.db') @storeArgs 2>&1 | Out-String
        } finally { Remove-Item Env:WB_TEST_SECRET_PASSWORD, Env:WB_TEST_STORE_PASSWORD -ErrorAction SilentlyContinue }
        [pscustomobject]@{
            Dump = $(if (Test-Path $out) { Get-Content $out -Raw } else { '' })
            Transcript = $(if (Test-Path $transcript) { Get-Content $transcript -Raw } else { '' })
            Console = $console
        }
    }
}
AfterAll {
    Stop-TestServer $script:Server
}

Describe 'Secrets' {
    It 'no password in any stream, $Error or transcript: every cmdlet, <Which> password from <Source>' -ForEach $Cases {
        $password = if ($Which -eq 'Right') { $script:RightPassword } else { $script:WrongPassword }
        $r = Invoke-SecretsChild -Source $Source -Password $password
        # the child ran every exported cmdlet and captured what they said
        $r.Dump | Should -Match 'EXPORTED: .*Connect-WriteBehind'
        $r.Dump | Should -Not -Match 'MISSING-INVOCATION'
        $r.Dump | Should -Match 'DONE: Disconnect-WriteBehind'
        $r.Dump | Should -Match 'ERRORID: PasswordInParameter'
        $r.Transcript | Should -Match 'Set-UserProfile'
        # the run log holds every run, failed ones too (searched for the secrets below)
        $r.Dump | Should -Match '=== file flush.jsonl'
        if ($Which -eq 'Wrong') {
            $r.Dump | Should -Match '"outcome":"failed".*"errorId":"RedisUnavailable"'
        } else {
            $r.Dump | Should -Match '"outcome":"flushed"'
            $r.Dump | Should -Match '"outcome":"paused"'
            $r.Dump | Should -Match '=== file writebehind.prom'
        }
        if ($Which -eq 'Wrong') {
            $r.Dump | Should -Match 'ERRORID: RedisUnavailable'
            $r.Dump | Should -Match 'authentication failed'
        } else {
            # the cmdlets really ran: the flush persisted the patch, verbose and debug output came through
            $r.Dump | Should -Match '"age":"31"'
            $r.Dump | Should -Match 'Connected to Redis at '
            $r.Dump | Should -Not -Match 'ERRORID: RedisUnavailable'
        }
        Assert-NoSecret $r
    }

    It 'no password in any stream, $Error or transcript: every cmdlet into PostgreSQL, <Which> store password from <Source>' -ForEach $StoreCases -Skip:$NoPostgres {
        $storePassword = if ($Which -eq 'Right') { $script:StoreRight } else { $script:StoreWrong }
        $r = Invoke-SecretsChild -Source $Source -Password $script:RightPassword -StoreUri $env:WRITEBEHIND_TEST_POSTGRES -StorePassword $storePassword
        $r.Dump | Should -Match 'DONE: Disconnect-WriteBehind'
        $r.Dump | Should -Match 'ERRORID: InvalidStoreUri'
        if ($Which -eq 'Wrong') {
            $r.Dump | Should -Match 'ERRORID: StoreUnavailable'
        } else {
            $r.Dump | Should -Match '"age":"31"'
            $r.Dump | Should -Not -Match 'ERRORID: StoreUnavailable'
        }
        Assert-NoSecret $r
    }
}
