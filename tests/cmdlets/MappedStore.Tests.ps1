# Flushing into the application's own table (-StoreTable/-StoreKeyColumn/-StoreColumns), on SQLite, PostgreSQL
# and MariaDB: the seed scenario into users(id, name, age), refused values, the connect-time mapping check,
# the JSON column, -StoreDeleteMode Keep, the mapping file and WRITEBEHIND_STORE_MAPPING. The tables are
# read with the databases' own clients (sqlite3, psql, mariadb), independent of the module.
BeforeDiscovery {
    $script:Kinds = @(@{ Kind = 'SQLite' }, @{ Kind = 'PostgreSQL' }, @{ Kind = 'MariaDB' })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')

    # A fresh database with the application's users table (and a row of its own, 9000, the module never wrote).
    function New-MappedDatabase([string] $Kind, [string] $Table = 'CREATE TABLE users(id integer PRIMARY KEY, name varchar(20), age integer, extra text)') {
        if ($Kind -eq 'SQLite') {
            $path = New-TestStore
            $db = [pscustomobject]@{ Kind = $Kind; Store = "sqlite://$path"; Path = $path; Uri = $null }
        } elseif ($Kind -eq 'PostgreSQL') {
            $uri = New-TestPostgresDatabase
            $db = [pscustomobject]@{ Kind = $Kind; Store = $uri; Path = $null; Uri = $uri }
        } else {
            $name = 'wbm_' + [guid]::NewGuid().ToString('N').Substring(0, 16)
            $null = Invoke-TestMariaDb "CREATE DATABASE $name CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            $uri = ($env:WRITEBEHIND_TEST_MARIADB -replace '\?.*$', '') -replace '/[^/]+$', "/$name"
            $db = [pscustomobject]@{ Kind = $Kind; Store = $uri; Path = $null; Uri = $uri; Database = $name }
        }
        $null = Invoke-MappedSql $db $Table
        if ($Table -like 'CREATE TABLE users*') { $null = Invoke-MappedSql $db "INSERT INTO users(id, name, age) VALUES (9000, 'App', 40)" }
        $db
    }

    function Remove-MappedDatabase($Db) {
        if (-not $Db) { return }
        if ($Db.Kind -eq 'SQLite') { Remove-Item -Recurse -Force (Split-Path $Db.Path) -ErrorAction SilentlyContinue }
        elseif ($Db.Kind -eq 'PostgreSQL') { Remove-TestPostgresDatabase $Db.Uri }
        else { try { $null = Invoke-TestMariaDb "DROP DATABASE IF EXISTS $($Db.Database)" } catch { Write-Warning $_ } }
    }

    # Rows as tab-separated lines, from the database's own client.
    function Invoke-MappedSql($Db, [string] $Sql) {
        if ($Db.Kind -eq 'SQLite') {
            $out = & sqlite3 -batch -noheader -separator "`t" $Db.Path $Sql 2>&1
            if ($LASTEXITCODE -ne 0) { throw "sqlite3 failed: $($out -join "`n")" }
            @($out)
        } elseif ($Db.Kind -eq 'PostgreSQL') {
            @(Invoke-TestPsql $Sql (($Db.Uri -replace '\?.*$', '') -replace '^.*/', ''))
        } else {
            @(Invoke-TestMariaDb $Sql $Db.Database)
        }
    }

    function Invoke-TestMariaDb([string] $Sql, [string] $Database) {
        if ($env:WRITEBEHIND_TEST_MARIADB -notmatch '^(?:mysql|mariadb)://([^@]+)@([^:/]+):(\d+)/([^?]+)') { throw "Unexpected WRITEBEHIND_TEST_MARIADB: $($env:WRITEBEHIND_TEST_MARIADB)" }
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

    # wb_versions' key column as SQL names it (a reserved word in MariaDB).
    function KeyColumn($Db) { if ($Db.Kind -eq 'MariaDB') { '`key`' } else { 'key' } }

    function Connect-Mapped($Db, [string] $Prefix, [hashtable] $Mapping) {
        $p = @{ Redis = $script:RedisEndpoint; Store = $Db.Store; KeyPrefix = $Prefix }
        if ($Db.Kind -eq 'PostgreSQL') { $p.StoreCredential = Get-TestPostgresCredential }
        if ($Db.Kind -eq 'MariaDB') {
            $p.StoreCredential = [pscredential]::new(($env:WRITEBEHIND_TEST_MARIADB -replace '^\w+://([^@]+)@.*$', '$1'),
                (ConvertTo-SecureString $env:WRITEBEHIND_TEST_MARIADB_PASSWORD -AsPlainText -Force))
        }
        Connect-WriteBehind @p @Mapping
    }

    # The SQL type test of a column value: SQLite's storage class, PostgreSQL's type of the expression.
    function Get-AgeType($Db, [string] $Id) {
        if ($Db.Kind -eq 'SQLite') { Invoke-MappedSql $Db "SELECT typeof(age) FROM users WHERE id = $Id" }
        elseif ($Db.Kind -eq 'PostgreSQL') { Invoke-MappedSql $Db "SELECT pg_typeof(age) FROM users WHERE id = $Id" }
        else { (Invoke-MappedSql $Db "SELECT JSON_TYPE(JSON_EXTRACT(JSON_OBJECT('a', age), '$.a')) FROM users WHERE id = $Id").ToLowerInvariant() }
    }
}

Describe 'Mapped table on <Kind>' -ForEach $script:Kinds {
    BeforeEach {
        if ($Kind -eq 'PostgreSQL' -and -not $script:PostgresUri) { Set-ItResult -Skipped -Because $script:PostgresSkipReason; return }
        if ($Kind -eq 'MariaDB' -and -not $env:WRITEBEHIND_TEST_MARIADB) { Set-ItResult -Skipped -Because 'WRITEBEHIND_TEST_MARIADB is not set: no test MariaDB server (build.ps1 Test starts one).'; return }
        $script:Prefix = New-TestPrefix
        $script:MappedDb = New-MappedDatabase $Kind
    }
    AfterEach {
        if ($script:Prefix) { Disconnect-WriteBehind; Remove-TestKeys $script:Prefix }
        Remove-MappedDatabase $script:MappedDb
        $script:Prefix = $null; $script:MappedDb = $null
    }

    It 'runs the four steps into users(id, name, age); a delete removes the row and an older version replayed does not bring it back' {
        $db = $script:MappedDb
        $prefix = $script:Prefix
        Connect-Mapped $db $prefix @{ StoreTable = 'users'; StoreKeyColumn = 'id'; StoreColumns = 'name', 'age' }
        # Step 1: data setup; the store holds both profiles before step 2.
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        (Invoke-WriteBehindFlush).Persisted | Should -Be 2
        Invoke-MappedSql $db 'SELECT id, name, age FROM users ORDER BY id' | Should -Be @("1001`tAlice`t30", "1002`tBob`t25", "9000`tApp`t40")
        # Step 2: configuration
        $null = Clear-WriteQueue -Confirm:$false
        $script:Db.ListLength("${prefix}write_queue") | Should -Be 0
        # Step 3: core logic
        Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}'
        Get-RawList "${prefix}write_queue" | Should -BeExactly @('update:user:1001:{"age":"31"}')
        # Step 4: completion
        $r = Invoke-WriteBehindFlush
        $r.Dequeued | Should -Be 1
        $r.Persisted | Should -Be 1
        $script:Db.ListLength("${prefix}write_queue") | Should -Be 0
        Get-RawString "${prefix}user_profiles" 'user:1001' | Should -BeExactly '{"name":"Alice","age":"31"}'
        Invoke-MappedSql $db 'SELECT id, name, age FROM users ORDER BY id' | Should -Be @("1001`tAlice`t31", "1002`tBob`t25", "9000`tApp`t40")
        # the integer column holds the integer 31, not the text "31"
        Get-AgeType $db 1001 | Should -Be $(if ($Kind -eq 'SQLite') { 'integer' } else { 'integer' })
        Invoke-MappedSql $db "SELECT $(KeyColumn $db), version, deleted FROM wb_versions WHERE table_name LIKE '%users' ORDER BY 1" |
            Should -Be $(if ($Kind -ne 'PostgreSQL') { @("1001`t2`t0", "1002`t1`t0") } else { @("1001`t2`tf", "1002`t1`tf") })

        # Read from the store: rebuilt from the columns (the integer column gives a JSON number).
        $stored = Get-UserProfile -UserId 1001 -FromStore
        $stored.Json | Should -BeExactly '{"name":"Alice","age":31}'
        $stored.Version | Should -Be 2
        # Cache "31" and store 31 agree by meaning.
        (Test-WriteBehindConsistency).IsConsistent | Should -BeTrue

        # A delete removes the user's row; the tombstone is in wb_versions.
        Remove-UserProfile -UserId 1001 -Confirm:$false
        $null = Invoke-WriteBehindFlush
        Invoke-MappedSql $db 'SELECT id FROM users ORDER BY id' | Should -Be @('1002', '9000')
        Invoke-MappedSql $db "SELECT version FROM wb_versions WHERE $(KeyColumn $db) = '1001'" | Should -Be '3'

        # The cache loses the delete (an older Redis snapshot comes back) and replays version 2: the store refuses it.
        $null = $script:Db.HashSet("${prefix}user_profiles", 'user:1001', '{"name":"Alice","age":"31"}')
        $null = $script:Db.HashSet("${prefix}user_profiles:versions", 'user:1001', '2')
        $null = $script:Db.ListLeftPush("${prefix}write_queue", 'set:user:1001:2')
        $replay = Invoke-WriteBehindFlush
        $replay.StaleSkipped | Should -Be 1
        Invoke-MappedSql $db 'SELECT id FROM users ORDER BY id' | Should -Be @('1002', '9000')
        Invoke-MappedSql $db "SELECT version FROM wb_versions WHERE $(KeyColumn $db) = '1001'" | Should -Be '3'
    }

    It 'dead-letters only the row whose value a column refuses, with the reason, and persists the rest' {
        $db = $script:MappedDb
        Connect-Mapped $db $script:Prefix @{ StoreTable = 'users'; StoreKeyColumn = 'id'; StoreColumns = [ordered]@{ name = 'name'; age = 'age' } }
        1..5 | ForEach-Object { Set-UserProfile -UserId (100 + $_) -Profile "{`"name`":`"n$_`",`"age`":$_}" }
        Set-UserProfile -UserId 200 -Profile '{"name":"Bad","age":"abc"}'
        Set-UserProfile -UserId 'alice' -Profile '{"name":"NotAnInteger","age":1}'   # the key column is an integer
        $r = Invoke-WriteBehindFlush
        $r.Persisted | Should -Be 5
        $r.DeadLettered | Should -Be 2
        Invoke-MappedSql $db 'SELECT id, age FROM users WHERE id < 9000 ORDER BY id' | Should -Be @("101`t1", "102`t2", "103`t3", "104`t4", "105`t5")
        $dead = @(Get-WriteBehindDeadLetter | Sort-Object Item)
        ($dead | ForEach-Object Item) | Should -Be @('set:user:200:1', 'set:user:alice:1')
        if ($Kind -eq 'PostgreSQL') { $dead[0].Reason | Should -Match 'store rejected: .*22P02.*integer.*abc' }
        elseif ($Kind -eq 'MariaDB') { $dead[0].Reason | Should -Match "store rejected: Incorrect integer value: 'abc' for column .*age" }
        else { $dead[0].Reason | Should -Match 'store rejected: .*column "age" \(integer\) refuses "abc"' }
        $dead[1].Reason | Should -Match "store rejected: user id 'alice' is not an integer"
        (Get-WriteBehindStatus).InFlight | Should -Be 0
        Invoke-MappedSql $db "SELECT count(*) FROM wb_versions WHERE $(KeyColumn $db) IN ('200', 'alice')" | Should -Be '0'
    }

    It 'refuses a mapping that does not fit the table at connect (StoreMappingInvalid, naming what is missing) and writes nothing' {
        $db = $script:MappedDb
        $err = $null
        try { Connect-Mapped $db $script:Prefix @{ StoreTable = 'users'; StoreKeyColumn = 'uid'; StoreColumns = @{ name = 'full_name'; age = 'age' } } } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'StoreMappingInvalid*'
        $err.Exception.Message | Should -BeLike "*no key column 'uid'*"
        $err.Exception.Message | Should -BeLike "*no column 'full_name' (for the field 'name')*"
        $err = $null
        try { Connect-Mapped $db $script:Prefix @{ StoreTable = 'customers'; StoreKeyColumn = 'id'; StoreColumns = 'name' } } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'StoreMappingInvalid*'
        $err.Exception.Message | Should -BeLike "*no table 'customers'*"
        # Nothing was created or written: no wb_versions, no user_profiles, the user's table as it was.
        $tables = if ($Kind -eq 'SQLite') { Invoke-MappedSql $db "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name" }
                  elseif ($Kind -eq 'MariaDB') { Invoke-MappedSql $db 'SHOW TABLES' }
                  else { Invoke-MappedSql $db "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename" }
        $tables | Should -Be @('users')
        Invoke-MappedSql $db 'SELECT id, name, age FROM users' | Should -Be @("9000`tApp`t40")
    }

    It 'keeps the whole profile in -StoreJsonColumn byte for byte, reads it back through the cache, and keeps the row under -StoreDeleteMode Keep (from a mapping file)' {
        $db = New-MappedDatabase $Kind "CREATE TABLE people(uid varchar(64) PRIMARY KEY, display text, score $(if ($Kind -eq 'MariaDB') { 'decimal(10,2)' } else { 'numeric' }), active boolean, seen timestamp NULL, tags text, doc text)"
        try {
            $file = Join-Path ([IO.Path]::GetTempPath()) ("wb-map-" + [guid]::NewGuid().ToString('N') + '.psd1')
            Set-Content -LiteralPath $file -Value @'
@{
    Table      = 'people'
    KeyColumn  = 'uid'
    Columns    = @{ name = 'display'; score = 'score'; active = 'active'; seen = 'seen'; tags = 'tags' }
    JsonColumn = 'doc'
    DeleteMode = 'Keep'
}
'@
            $p = @{ Redis = $script:RedisEndpoint; Store = $db.Store; KeyPrefix = $script:Prefix; StoreMapping = $file }
            if ($Kind -eq 'PostgreSQL') { $p.StoreCredential = Get-TestPostgresCredential }
            if ($Kind -eq 'MariaDB') {
                $p.StoreCredential = [pscredential]::new(($env:WRITEBEHIND_TEST_MARIADB -replace '^\w+://([^@]+)@.*$', '$1'),
                    (ConvertTo-SecureString $env:WRITEBEHIND_TEST_MARIADB_PASSWORD -AsPlainText -Force))
            }
            Connect-WriteBehind @p
            $json = '{"name":"Zoë \"Z\"","score":12.50,"active":true,"seen":"2026-12-01T08:30:00Z","tags":["a",{"b":1}],"n":12345678901234567890}'
            Set-UserProfile -UserId 'p1' -Profile $json
            Set-UserProfile -UserId 'p2' -Profile '{"name":"Other"}'
            (Invoke-WriteBehindFlush).Persisted | Should -Be 2
            if ($Kind -eq 'SQLite') {
                Invoke-MappedSql $db "SELECT display, score, active, tags FROM people WHERE uid = 'p1'" | Should -Be "Zoë `"Z`"`t12.5`t1`t[`"a`",{`"b`":1}]"
                Invoke-MappedSql $db "SELECT hex(doc) FROM people WHERE uid = 'p1'" | Should -Be ([Convert]::ToHexString([Text.Encoding]::UTF8.GetBytes($json)))
            } elseif ($Kind -eq 'MariaDB') {
                Invoke-MappedSql $db "SELECT display, score, active, seen, tags FROM people WHERE uid = 'p1'" | Should -Be "Zoë `"Z`"`t12.50`t1`t2026-12-01 08:30:00`t[`"a`",{`"b`":1}]"
                Invoke-MappedSql $db "SELECT HEX(doc) FROM people WHERE uid = 'p1'" | Should -Be ([Convert]::ToHexString([Text.Encoding]::UTF8.GetBytes($json)))
            } else {
                Invoke-MappedSql $db "SELECT display, score, active, seen, tags FROM people WHERE uid = 'p1'" | Should -Be "Zoë `"Z`"`t12.50`tt`t2026-12-01 08:30:00`t[`"a`",{`"b`":1}]"
                Invoke-MappedSql $db "SELECT encode(convert_to(doc, 'UTF8'), 'hex') FROM people WHERE uid = 'p1'" | Should -Be ([Convert]::ToHexString([Text.Encoding]::UTF8.GetBytes($json)).ToLowerInvariant())
            }
            # A field the profile lacks is NULL.
            Invoke-MappedSql $db "SELECT count(*) FROM people WHERE uid = 'p2' AND score IS NULL AND active IS NULL" | Should -Be '1'

            # A cache miss reads the profile back from the JSON column, byte for byte.
            $null = $script:Db.HashDelete("$($script:Prefix)user_profiles", 'user:p1')
            $null = $script:Db.HashDelete("$($script:Prefix)user_profiles:versions", 'user:p1')
            $back = Get-UserProfile -UserId p1
            $back.Source | Should -Be 'Store'
            $back.Json | Should -BeExactly $json
            Get-RawString "$($script:Prefix)user_profiles" 'user:p1' | Should -BeExactly $json
            (Test-WriteBehindConsistency).IsConsistent | Should -BeTrue

            # Keep: the delete leaves the user's row; the tombstone is versioned; the profile reads as deleted.
            Remove-UserProfile -UserId p2 -Confirm:$false
            $null = Invoke-WriteBehindFlush
            Invoke-MappedSql $db "SELECT display FROM people WHERE uid = 'p2'" | Should -Be 'Other'
            Invoke-MappedSql $db "SELECT version FROM wb_versions WHERE $(KeyColumn $db) = 'p2'" | Should -Be '2'
            Get-UserProfile -UserId p2 -FromStore -ErrorAction SilentlyContinue -ErrorVariable missing | Should -BeNullOrEmpty
            $missing[0].FullyQualifiedErrorId | Should -BeLike 'UserProfileNotFound*'
            (Test-WriteBehindConsistency).IsConsistent | Should -BeTrue
        } finally {
            Remove-Item -LiteralPath $file -ErrorAction SilentlyContinue
            Remove-MappedDatabase $db
        }
    }

    It 'takes the mapping from WRITEBEHIND_STORE_MAPPING, and Test-WriteBehindConsistency compares by meaning (finds a changed column)' {
        $db = $script:MappedDb
        $file = Join-Path ([IO.Path]::GetTempPath()) ("wb-map-" + [guid]::NewGuid().ToString('N') + '.psd1')
        Set-Content -LiteralPath $file -Value "@{ Table = 'users'; KeyColumn = 'id'; Columns = 'name', 'age' }"
        $env:WRITEBEHIND_STORE_MAPPING = $file
        try {
            Connect-Mapped $db $script:Prefix @{}
            Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"31","city":"Oslo"}'
            Set-UserProfile -UserId 1002 -Profile '{"age":25.0,"name":"Bob"}'
            $null = Invoke-WriteBehindFlush
            Invoke-MappedSql $db 'SELECT id, name, age FROM users WHERE id < 9000 ORDER BY id' | Should -Be @("1001`tAlice`t31", "1002`tBob`t25")
            # "31" and 31, 25.0 and 25, a field not mapped, another field order: the same by meaning.
            (Test-WriteBehindConsistency).IsConsistent | Should -BeTrue
            # A column changed behind the module's back is drift.
            $null = Invoke-MappedSql $db 'UPDATE users SET age = 32 WHERE id = 1001'
            $report = Test-WriteBehindConsistency
            $report.IsConsistent | Should -BeFalse
            @($report.Drift).UserId | Should -Be @('1001')
            @($report.Drift)[0].Kind | Should -Be 'StaleInStore'
        } finally {
            Remove-Item Env:WRITEBEHIND_STORE_MAPPING -ErrorAction SilentlyContinue
            Remove-Item -LiteralPath $file -ErrorAction SilentlyContinue
        }
    }
}
