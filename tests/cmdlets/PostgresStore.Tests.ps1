# The seed's four steps with a PostgreSQL store (-Store postgres://..., -StoreCredential), on the default
# key names; the store row is checked with the module's own read and with psql.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $script:Keys = 'user_profiles', 'write_queue', 'user_profiles:versions', 'write_queue:leases', 'write_queue:dead', 'write_queue:dead:info', 'write_queue:stats'
    $script:StoreUri = $null
    if ($script:PostgresUri) {
        foreach ($k in $script:Keys) { $null = $script:Db.KeyDelete($k) }
        $script:StoreUri = New-TestPostgresDatabase
    }
}
AfterAll {
    if ($script:PostgresUri) {
        Disconnect-WriteBehind
        foreach ($k in $script:Keys) { $null = $script:Db.KeyDelete($k) }
        Remove-TestPostgresDatabase $script:StoreUri
    }
}

Describe 'PostgreSQL store' {
    BeforeEach {
        if (-not $script:PostgresUri) { Set-ItResult -Skipped -Because $script:PostgresSkipReason }
    }

    It 'refuses a password in the store URI without echoing it' {
        $secret = 'N0t-In-Messages-' + [guid]::NewGuid().ToString('N').Substring(0, 6)
        foreach ($uri in @(($script:StoreUri -replace '://([^@]+)@', "://`$1:$secret@"), "$($script:StoreUri)?sslmode=require&password=$secret")) {
            $err = $null
            try { Connect-WriteBehind -Redis $script:RedisEndpoint -Store $uri } catch { $err = $_ }
            $err | Should -Not -BeNullOrEmpty
            $err.FullyQualifiedErrorId | Should -BeLike 'InvalidStoreUri*'
            $err.Exception.Message | Should -BeLike '*-StoreCredential*WRITEBEHIND_STORE_PASSWORD*'
            ($err | Out-String) | Should -Not -BeLike "*$secret*"
            $err.TargetObject | Should -Not -BeLike "*$secret*"
        }
    }

    It 'runs the four steps into PostgreSQL over TLS with -StoreCredential' {
        $conn = Connect-WriteBehind -Redis $script:RedisEndpoint -Store "$($script:StoreUri)?sslmode=require" -StoreCredential (Get-TestPostgresCredential) -PassThru
        $conn.StoreUri | Should -BeExactly "$($script:StoreUri -replace '^(postgres(ql)?://[^/]+?)(:\d+)?/', '$1$3/')?sslmode=require"
        $conn.StoreUri | Should -Not -BeLike "*$($env:WRITEBEHIND_TEST_POSTGRES_PASSWORD)*"

        # Step 1: data setup
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        Get-RawString 'user_profiles' 'user:1001' | Should -BeExactly '{"name":"Alice","age":"30"}'
        # The cache mirrors the main database: both profiles are in the store too before step 2 starts.
        (Invoke-WriteBehindFlush).Persisted | Should -Be 2
        # Step 2: configuration
        (Clear-WriteQueue -Confirm:$false).Dropped | Should -Be 0
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

        # The module's own read of the store...
        $stored = Get-UserProfile -UserId 1001 -FromStore
        $stored.Source | Should -Be 'Store'
        $stored.Json | Should -BeExactly '{"name":"Alice","age":"31"}'
        $stored.Version | Should -Be 2
        # ...and PostgreSQL's, through psql.
        $row = Get-PostgresStoreRow $script:StoreUri '1001'
        $row.Json | Should -BeExactly '{"name":"Alice","age":"31"}'
        $row.Version | Should -Be 2
        $row.Deleted | Should -BeFalse
        # 1002 is still the store's as step 1 left it: cache and store agree for both.
        (Get-PostgresStoreRow $script:StoreUri '1002').Json | Should -BeExactly '{"name":"Bob","age":"25"}'
        Test-WriteBehindConsistency -Quiet | Should -BeTrue

        $status = Get-WriteBehindStatus
        $status.Store | Should -Not -BeLike "*$($env:WRITEBEHIND_TEST_POSTGRES_PASSWORD)*"
        $status.Store | Should -BeLike 'postgres*://*'
    }

    It 'takes the user and password from WRITEBEHIND_STORE_USER / WRITEBEHIND_STORE_PASSWORD, and a deleted profile stays a tombstone' {
        $cred = Get-TestPostgresCredential
        $env:WRITEBEHIND_STORE_USER = $cred.UserName
        $env:WRITEBEHIND_STORE_PASSWORD = $cred.GetNetworkCredential().Password
        try {
            $uriWithoutUser = $script:StoreUri -replace '://[^@]+@', '://'
            Connect-WriteBehind -Redis $script:RedisEndpoint -Store $uriWithoutUser
            Set-UserProfile -UserId 'pg-env' -Profile '{"n":12345678901234567890,"u":"\u00e9 ü 🙂","f":1.0}'
            Remove-UserProfile -UserId 1001 -Confirm:$false
            $null = Invoke-WriteBehindFlush
            (Get-PostgresStoreRow $script:StoreUri 'pg-env').Json | Should -BeExactly '{"n":12345678901234567890,"u":"\u00e9 ü 🙂","f":1.0}'
            $tomb = Get-PostgresStoreRow $script:StoreUri '1001'
            $tomb.Deleted | Should -BeTrue
            $tomb.Json | Should -BeNullOrEmpty
            $tomb.Version | Should -Be 3
        } finally {
            Remove-Item Env:WRITEBEHIND_STORE_USER, Env:WRITEBEHIND_STORE_PASSWORD -ErrorAction SilentlyContinue
        }
    }

    It 'a wrong password ends the flush with StoreUnavailable, names no password and loses nothing' {
        $bad = [pscredential]::new((Get-TestPostgresCredential).UserName, (ConvertTo-SecureString 'Wr0ng-pw-xyz' -AsPlainText -Force))
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:StoreUri -StoreCredential $bad
        Add-WriteQueueItem -UserId 'pg-wrong' -Update '{"a":1}'
        $err = $null
        try { Invoke-WriteBehindFlush -RetryTimeout '00:00:01' } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -BeLike 'StoreUnavailable*'
        ($err | Out-String) | Should -BeLike '*password authentication failed*'
        ($err | Out-String) | Should -Not -BeLike '*Wr0ng-pw-xyz*'
        Get-PostgresStoreRow $script:StoreUri 'pg-wrong' | Should -BeNullOrEmpty

        # With the right credential the next flush persists it.
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:StoreUri -StoreCredential (Get-TestPostgresCredential)
        $null = Invoke-WriteBehindFlush
        (Get-PostgresStoreRow $script:StoreUri 'pg-wrong').Json | Should -BeExactly '{"a":1}'
    }

    It 'a row PostgreSQL refuses for good (a CHECK constraint, 23514) is dead-lettered with its message; the rest is persisted' {
        $prefix = New-TestPrefix
        try {
            Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:StoreUri -StoreCredential (Get-TestPostgresCredential) -KeyPrefix $prefix
            Set-UserProfile -UserId seedrow -Profile '{"a":0}'
            $null = Invoke-WriteBehindFlush   # the schema exists
            $db = ($script:StoreUri -replace '^.*/', '')
            $null = Invoke-TestPsql "ALTER TABLE user_profiles ADD CONSTRAINT refuse_bad CHECK (user_id <> 'bad1')" $db
            1..9 | ForEach-Object { Set-UserProfile -UserId "ok$_" -Profile "{`"n`":$_}" }
            Set-UserProfile -UserId bad1 -Profile '{"n":"bad"}'
            $r = Invoke-WriteBehindFlush
            $r.Persisted | Should -Be 9
            $r.DeadLettered | Should -Be 1
            foreach ($i in 1..9) { (Get-PostgresStoreRow $script:StoreUri "ok$i").Json | Should -BeExactly "{`"n`":$i}" }
            Get-PostgresStoreRow $script:StoreUri 'bad1' | Should -BeNullOrEmpty
            $dead = @(Get-WriteBehindDeadLetter)
            $dead.Count | Should -Be 1
            $dead[0].Item | Should -BeExactly 'set:user:bad1:1'
            $dead[0].Reason | Should -Match 'store rejected: .*23514.*refuse_bad'
            (Get-WriteBehindStatus).InFlight | Should -Be 0
        } finally {
            Remove-TestKeys $prefix
        }
    }

    It "refuses a database whose user_profiles table is the application's own, before writing anything (StoreTableMismatch)" {
        $appUri = New-TestPostgresDatabase
        try {
            $db = ($appUri -replace '^.*/', '')
            $null = Invoke-TestPsql 'CREATE TABLE user_profiles(id integer PRIMARY KEY, name text NOT NULL, age integer)' $db
            $err = $null
            try { Connect-WriteBehind -Redis $script:RedisEndpoint -Store $appUri -StoreCredential (Get-TestPostgresCredential) -KeyPrefix (New-TestPrefix) } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -Be 'StoreTableMismatch,WriteBehind.Commands.ConnectWriteBehindCommand'
            $err.Exception.Message | Should -Match 'table user_profiles'
            $err.Exception.Message | Should -Match 'no columns user_id, json, version, deleted, updated_at'
            $err.Exception.Message | Should -Match 'search_path'
            ($err | Out-String) | Should -Not -BeLike "*$($env:WRITEBEHIND_TEST_POSTGRES_PASSWORD)*"
            Invoke-TestPsql "SELECT to_regclass('wb_schema') IS NULL" $db | Should -Be 't'
            # A schema of the module's own in the same database is fine.
            $null = Invoke-TestPsql 'CREATE SCHEMA wb' $db
            $prefix = New-TestPrefix
            try {
                Connect-WriteBehind -Redis $script:RedisEndpoint -Store "$($appUri)?search_path=wb" -StoreCredential (Get-TestPostgresCredential) -KeyPrefix $prefix
                Set-UserProfile -UserId s1 -Profile '{"a":1}'
                (Invoke-WriteBehindFlush).Persisted | Should -Be 1
                Invoke-TestPsql 'SELECT json FROM wb.user_profiles' $db | Should -Be '{"a":1}'
            } finally { Remove-TestKeys $prefix }
        } finally { Remove-TestPostgresDatabase $appUri }
    }
}
