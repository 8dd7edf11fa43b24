# The seed's four steps with a MariaDB store (-Store mysql://..., -StoreCredential), on the default key names;
# the store row is checked with the module's own read and with the mariadb client.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $script:MariaUri = $env:WRITEBEHIND_TEST_MARIADB
    $script:MariaSkipReason = 'WRITEBEHIND_TEST_MARIADB is not set: no test MariaDB server (build.ps1 Test starts one).'
    $script:Keys = 'user_profiles', 'write_queue', 'user_profiles:versions', 'write_queue:leases', 'write_queue:dead', 'write_queue:dead:info', 'write_queue:stats'

    function Invoke-TestMariaDb([string] $Sql, [string] $Database) {
        if ($script:MariaUri -notmatch '^(?:mysql|mariadb)://([^@]+)@([^:/]+):(\d+)/([^?]+)') { throw "Unexpected WRITEBEHIND_TEST_MARIADB: $($script:MariaUri)" }
        $user, $dbHost, $port = $Matches[1], $Matches[2], $Matches[3]
        if (-not $Database) { $Database = $Matches[4] }
        $previous = $env:MYSQL_PWD
        $env:MYSQL_PWD = $env:WRITEBEHIND_TEST_MARIADB_PASSWORD
        try {
            $out = & mariadb --no-defaults --default-character-set=utf8mb4 -h $dbHost -P $port -u $user -N -B -e $Sql $Database 2>&1
            if ($LASTEXITCODE -ne 0) { throw "mariadb failed: $($out -join "`n")" }
            $out
        } finally { $env:MYSQL_PWD = $previous }
    }
    function Get-TestMariaDbCredential {
        [pscredential]::new(($script:MariaUri -replace '^\w+://([^@]+)@.*$', '$1'), (ConvertTo-SecureString $env:WRITEBEHIND_TEST_MARIADB_PASSWORD -AsPlainText -Force))
    }
    # A row of the module's table: json (hex, byte for byte), version, deleted.
    function Get-MariaDbStoreRow([string] $Database, [string] $UserId) {
        if ($UserId -notmatch '^[A-Za-z0-9_.@-]+$') { throw "Unexpected user id $UserId" }
        $line = Invoke-TestMariaDb "SELECT COALESCE(HEX(json), '<null>'), version, deleted FROM user_profiles WHERE user_id = '$UserId'" $Database
        if (-not $line) { return $null }
        $hex, $version, $deleted = (@($line) -join '') -split "`t"
        $json = if ($hex -eq '<null>') { $null } else { [Text.Encoding]::UTF8.GetString([Convert]::FromHexString($hex)) }
        [pscustomobject]@{ Json = $json; Version = [long]$version; Deleted = $deleted -eq '1' }
    }
    if ($script:MariaUri) {
        foreach ($k in $script:Keys) { $null = $script:Db.KeyDelete($k) }
        $script:Database = 'wbm_' + [guid]::NewGuid().ToString('N').Substring(0, 16)
        $null = Invoke-TestMariaDb "CREATE DATABASE $($script:Database) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        $script:StoreUri = ($script:MariaUri -replace '\?.*$', '') -replace '/[^/]+$', "/$($script:Database)"
    }
}
AfterAll {
    if ($script:MariaUri) {
        Disconnect-WriteBehind
        foreach ($k in $script:Keys) { $null = $script:Db.KeyDelete($k) }
        try { $null = Invoke-TestMariaDb "DROP DATABASE IF EXISTS $($script:Database)" } catch { Write-Warning $_ }
    }
}

Describe 'MariaDB store' {
    BeforeEach {
        if (-not $script:MariaUri) { Set-ItResult -Skipped -Because $script:MariaSkipReason }
    }

    It 'refuses a password in the store URI without echoing it' {
        $secret = 'N0t-In-Messages-' + [guid]::NewGuid().ToString('N').Substring(0, 6)
        foreach ($uri in @(($script:StoreUri -replace '://([^@]+)@', "://`$1:$secret@"), "$($script:StoreUri)?password=$secret")) {
            $err = $null
            try { Connect-WriteBehind -Redis $script:RedisEndpoint -Store $uri } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -BeLike 'InvalidStoreUri*'
            $err.Exception.Message | Should -BeLike '*-StoreCredential*WRITEBEHIND_STORE_PASSWORD*'
            ($err | Out-String) | Should -Not -BeLike "*$secret*"
        }
    }

    It 'runs the four steps into MariaDB with -StoreCredential' {
        $conn = Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:StoreUri -StoreCredential (Get-TestMariaDbCredential) -PassThru
        $conn.StoreUri | Should -Not -BeLike "*$($env:WRITEBEHIND_TEST_MARIADB_PASSWORD)*"
        # Step 1: data setup; the store holds both profiles before step 2.
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        (Invoke-WriteBehindFlush).Persisted | Should -Be 2
        # Step 2: configuration
        $null = Clear-WriteQueue -Confirm:$false
        $script:Db.ListLength('write_queue') | Should -Be 0
        # Step 3: core logic
        Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}'
        Get-RawList 'write_queue' | Should -BeExactly @('update:user:1001:{"age":"31"}')
        # Step 4: completion
        $result = Invoke-WriteBehindFlush
        $result.Dequeued | Should -Be 1
        $result.Persisted | Should -Be 1
        $script:Db.ListLength('write_queue') | Should -Be 0
        Get-RawString 'user_profiles' 'user:1001' | Should -BeExactly '{"name":"Alice","age":"31"}'
        (Get-UserProfile -UserId 1001 -FromStore).Json | Should -BeExactly '{"name":"Alice","age":"31"}'
        $row = Get-MariaDbStoreRow $script:Database '1001'
        $row.Json | Should -BeExactly '{"name":"Alice","age":"31"}'
        $row.Version | Should -Be 2
        (Get-MariaDbStoreRow $script:Database '1002').Json | Should -BeExactly '{"name":"Bob","age":"25"}'
        (Test-WriteBehindConsistency).IsConsistent | Should -BeTrue
        (Get-WriteBehindStatus).Store | Should -BeLike 'mysql://*'
    }

    It 'takes the user and password from the environment; byte-exact values; a delete stays a tombstone' {
        $cred = Get-TestMariaDbCredential
        $env:WRITEBEHIND_STORE_USER = $cred.UserName
        $env:WRITEBEHIND_STORE_PASSWORD = $cred.GetNetworkCredential().Password
        try {
            Connect-WriteBehind -Redis $script:RedisEndpoint -Store ($script:StoreUri -replace '://[^@]+@', '://')
            $json = '{"n":12345678901234567890,"u":"\u00e9 ü 🙂","f":1.0,"e":1e3}'
            Set-UserProfile -UserId 'm-env' -Profile $json
            Remove-UserProfile -UserId 1001 -Confirm:$false
            $null = Invoke-WriteBehindFlush
            (Get-MariaDbStoreRow $script:Database 'm-env').Json | Should -BeExactly $json
            $tomb = Get-MariaDbStoreRow $script:Database '1001'
            $tomb.Deleted | Should -BeTrue
            $tomb.Json | Should -BeNullOrEmpty
            $tomb.Version | Should -Be 3
        } finally {
            Remove-Item Env:WRITEBEHIND_STORE_USER, Env:WRITEBEHIND_STORE_PASSWORD -ErrorAction SilentlyContinue
        }
    }

    It 'a wrong password ends the flush with StoreUnavailable, names no password and loses nothing' {
        $bad = [pscredential]::new((Get-TestMariaDbCredential).UserName, (ConvertTo-SecureString 'Wr0ng-pw-xyz' -AsPlainText -Force))
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:StoreUri -StoreCredential $bad
        Add-WriteQueueItem -UserId 'm-wrong' -Update '{"a":1}'
        $err = $null
        try { Invoke-WriteBehindFlush -RetryTimeout '00:00:01' } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'StoreUnavailable*'
        ($err | Out-String) | Should -BeLike '*Access denied*'
        ($err | Out-String) | Should -Not -BeLike '*Wr0ng-pw-xyz*'
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:StoreUri -StoreCredential (Get-TestMariaDbCredential)
        $null = Invoke-WriteBehindFlush
        (Get-MariaDbStoreRow $script:Database 'm-wrong').Json | Should -BeExactly '{"a":1}'
    }
}
