# Dead letters, store-rejected rows, backpressure policy and the consistency check.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    function Invoke-StoreSql([string] $Path, [string] $Sql) {
        $conn = [Microsoft.Data.Sqlite.SqliteConnection]::new("Data Source=$Path;Pooling=False")
        $conn.Open()
        try { $cmd = $conn.CreateCommand(); $cmd.CommandText = $Sql; $null = $cmd.ExecuteNonQuery() } finally { $conn.Dispose() }
    }
}

Describe 'Dead letters: list, restore, remove' {
    BeforeEach {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'keeps attempts, first and last failure, and counts a repeated poison item twice' {
        $null = Invoke-Raw 'LPUSH' @("$($script:P)write_queue", 'update:user:1:{bad')
        Invoke-WriteBehindFlush | Out-Null
        $null = Invoke-Raw 'LPUSH' @("$($script:P)write_queue", 'update:user:1:{bad')
        Invoke-WriteBehindFlush | Out-Null
        $dead = @(Get-WriteBehindDeadLetter)
        $dead.Count | Should -Be 2
        $dead[0].Attempts | Should -Be 2
        $dead[0].FirstFailure | Should -BeLessOrEqual $dead[0].LastFailure
        $dead[0].Reason | Should -Match 'invalid JSON patch'
    }
    It 'Restore -WhatIf changes nothing; Restore requeues the item byte for byte' {
        $null = Invoke-Raw 'LPUSH' @("$($script:P)write_queue", 'update:user:7:[1]')
        Invoke-WriteBehindFlush | Out-Null
        Get-WriteBehindDeadLetter | Restore-WriteBehindDeadLetter -WhatIf
        $script:Db.ListLength("$($script:P)write_queue:dead") | Should -Be 1
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 0
        Get-WriteBehindDeadLetter | Restore-WriteBehindDeadLetter -Confirm:$false
        $script:Db.ListLength("$($script:P)write_queue:dead") | Should -Be 0
        Get-RawList "$($script:P)write_queue" | Should -BeExactly @('update:user:7:[1]')
        $script:Db.HashLength("$($script:P)write_queue:dead:info") | Should -Be 0
    }
    It '-Newest lists only the newest entries' {
        foreach ($i in 1..5) { $null = Invoke-Raw 'LPUSH' @("$($script:P)write_queue", "junk-$i") }
        Invoke-WriteBehindFlush | Out-Null
        @(Get-WriteBehindDeadLetter -Newest 2 | ForEach-Object Item) | Should -Be @('junk-4', 'junk-5')
    }
    It 'the default view shows each item and its whole reason; piped entries are removed' {
        $item = 'update:user:view1:{"address":{"street":"Long Street 1","city":"Somewhere far away"},"age":}'
        $null = Invoke-Raw 'LPUSH' @("$($script:P)write_queue", $item)
        Invoke-WriteBehindFlush | Out-Null
        $dead = Get-WriteBehindDeadLetter
        $dead.Reason.Length | Should -BeGreaterThan 20
        # At an ordinary console width: nothing cut (a long value wraps onto the next lines).
        $shown = (Get-WriteBehindDeadLetter | Out-String -Width 100) -replace '\s', ''
        $shown | Should -Match ([regex]::Escape(($item -replace '\s', '')))
        $shown | Should -Match ([regex]::Escape(($dead.Reason -replace '\s', '')))
        $shown | Should -Not -Match '…'
        Get-WriteBehindDeadLetter | Remove-WriteBehindDeadLetter -Confirm:$false
        $script:Db.ListLength("$($script:P)write_queue:dead") | Should -Be 0
    }
    It 'Remove -All deletes every entry and its info' {
        foreach ($i in 1..3) { $null = Invoke-Raw 'LPUSH' @("$($script:P)write_queue", "junk-$i") }
        Invoke-WriteBehindFlush | Out-Null
        Remove-WriteBehindDeadLetter -All -Confirm:$false
        $script:Db.ListLength("$($script:P)write_queue:dead") | Should -Be 0
        $script:Db.HashLength("$($script:P)write_queue:dead:info") | Should -Be 0
    }
}

Describe 'A row the store refuses for good' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
        Set-UserProfile -UserId seed -Profile '{"a":0}'
        Invoke-WriteBehindFlush | Out-Null   # creates the schema
        Invoke-StoreSql $script:StorePath "CREATE TRIGGER refuse_bad BEFORE INSERT ON user_profiles WHEN NEW.user_id = 'bad1' BEGIN SELECT RAISE(ABORT, 'bad row refused by a trigger'); END;"
        1..9 | ForEach-Object { Set-UserProfile -UserId "ok$_" -Profile "{`"n`":$_}" }
        Set-UserProfile -UserId bad1 -Profile '{"n":"bad"}'
        Add-WriteQueueItem -UserId bad1 -Update '{"m":1}'
        $script:Result = Invoke-WriteBehindFlush
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'is isolated and dead-lettered with the store''s message; the rest of the batch is persisted' {
        $script:Result.DeadLettered | Should -Be 2
        $script:Result.Persisted | Should -Be 9
        ($script:Result.Persisted + $script:Result.Coalesced + $script:Result.DeadLettered) | Should -Be $script:Result.Dequeued
        foreach ($i in 1..9) { (Get-StoreRow $script:StorePath "ok$i").Json | Should -BeExactly "{`"n`":$i}" }
        Get-StoreRow $script:StorePath 'bad1' | Should -BeNullOrEmpty
        $dead = @(Get-WriteBehindDeadLetter)
        @($dead | ForEach-Object Item) | Should -Be @('set:user:bad1:1', 'update:user:bad1:{"m":1}')
        $dead[0].Reason | Should -Match 'store rejected: .*bad row refused by a trigger'
        (Get-WriteBehindStatus).InFlight | Should -Be 0
    }
    It 'restored after the store is fixed, it persists the cached state without merging the patch again' {
        Invoke-StoreSql $script:StorePath 'DROP TRIGGER refuse_bad'
        $versionBefore = [long](Get-RawString "$($script:P)user_profiles:versions" 'user:bad1')
        Get-WriteBehindDeadLetter | Restore-WriteBehindDeadLetter -Confirm:$false
        Get-RawList "$($script:P)write_queue" | Should -BeExactly @('set:user:bad1', 'set:user:bad1')
        Invoke-WriteBehindFlush | Out-Null
        [long](Get-RawString "$($script:P)user_profiles:versions" 'user:bad1') | Should -Be $versionBefore
        $row = Get-StoreRow $script:StorePath 'bad1'
        $row.Json | Should -BeExactly '{"n":"bad","m":1}'
        $row.Version | Should -Be $versionBefore
    }
}

Describe 'Backpressure policy' {
    BeforeEach { $script:P = New-TestPrefix; $script:StoreUri = "sqlite://$(New-TestStore)" }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'Block waits until a flush makes room, then writes' {
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:StoreUri -KeyPrefix $script:P -HighWaterMark 2 -Backpressure Block -BackpressureTimeout '00:00:20'
        1..2 | ForEach-Object { Add-WriteQueueItem -UserId "b$_" -Update '{"a":1}' }
        $job = Start-ThreadJob -ScriptBlock {
            param($module, $redis, $store, $prefix)
            Import-Module $module
            Start-Sleep -Milliseconds 1500
            Invoke-WriteBehindFlush -Connection (Connect-WriteBehind -Redis $redis -Store $store -KeyPrefix $prefix -PassThru)
        } -ArgumentList $script:ModulePath, $script:RedisEndpoint, $script:StoreUri, $script:P
        $clock = [Diagnostics.Stopwatch]::StartNew()
        Set-UserProfile -UserId b3 -Profile '{"a":3}' -ErrorAction Stop
        $clock.Elapsed.TotalSeconds | Should -BeGreaterThan 1
        $null = $job | Wait-Job -Timeout 60 | Receive-Job
        Get-RawString "$($script:P)user_profiles" 'user:b3' | Should -BeExactly '{"a":3}'
    }
    It 'Block: a chunk waiting for room is never overtaken by the chunks behind it while a flusher drains' {
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:StoreUri -KeyPrefix $script:P -HighWaterMark 1500 -Backpressure Block -BackpressureTimeout '00:02:00'
        $job = Start-ThreadJob -ScriptBlock {
            param($module, $redis, $store, $prefix)
            Import-Module $module
            Invoke-WriteBehindFlush -Connection (Connect-WriteBehind -Redis $redis -Store $store -KeyPrefix $prefix -PassThru) -Continuous -BatchSize 300
        } -ArgumentList $script:ModulePath, $script:RedisEndpoint, $script:StoreUri, $script:P
        try {
            # six rounds over 700 ids: each id is written in several chunks, most of which wait for room
            0..4199 | ForEach-Object { [pscustomobject]@{ UserId = "o$($_ % 700)"; Profile = "{`"round`":$([Math]::Floor($_ / 700))}" } } | Set-UserProfile -ErrorAction Stop
        } finally {
            $job | Stop-Job
            $job | Remove-Job -Force
        }
        foreach ($id in 0..699) {
            Get-RawString "$($script:P)user_profiles" "user:o$id" | Should -BeExactly '{"round":5}'
            Get-RawString "$($script:P)user_profiles:versions" "user:o$id" | Should -Be '6'
        }
    }
    It 'Block gives up with QueueFull after its timeout and writes nothing' {
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:StoreUri -KeyPrefix $script:P -HighWaterMark 1 -Backpressure Block -BackpressureTimeout '00:00:01'
        Add-WriteQueueItem -UserId q1 -Update '{"a":1}'
        $err = $null
        Add-WriteQueueItem -UserId q2 -Update '{"a":2}' -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'QueueFull,WriteBehind.Commands.AddWriteQueueItemCommand'
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 1
    }
}

Describe 'Test-WriteBehindConsistency' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
        1..6 | ForEach-Object { Set-UserProfile -UserId "c$_" -Profile "{`"n`":$_}" }
        Invoke-WriteBehindFlush | Out-Null
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'reports a converged system as consistent' {
        Test-WriteBehindConsistency -Quiet | Should -BeTrue
        (Test-WriteBehindConsistency).ProfilesChecked | Should -Be 6
    }
    It 'pending is not consistent: persists still queued with nothing in the store are reported as pending, and -Quiet is False' {
        $p2 = New-TestPrefix
        $c = Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $p2 -PassThru
        try {
            1..50 | ForEach-Object { [pscustomobject]@{ UserId = "q$_"; Profile = "{`"n`":$_}" } } | Set-UserProfile -Connection $c
            Add-WriteQueueItem -Connection $c -UserId q1 -Update '{"n":0}'
            $report = Test-WriteBehindConsistency -Connection $c
            $report.IsConsistent | Should -BeFalse
            $report.State | Should -Be 'Pending'
            $report.DriftCount | Should -Be 0
            $report.PendingCount | Should -Be 50
            $report.PendingItems | Should -Be 51
            $report.Summary | Should -Match '^not yet consistent: .*50 profile\(s\) with 51 item\(s\) still queued or in flight'
            ($report | Out-String) | Should -Match 'PendingCount\s*:\s*50'
            Test-WriteBehindConsistency -Connection $c -Quiet | Should -BeFalse
            Test-WriteBehindConsistency -Connection $c -Quiet -IgnorePending | Should -BeTrue
            Invoke-WriteBehindFlush -Connection $c | Out-Null
            Test-WriteBehindConsistency -Connection $c -Quiet | Should -BeTrue
            (Test-WriteBehindConsistency -Connection $c).State | Should -Be 'Consistent'
        } finally {
            # Connect-WriteBehind made $c the session's connection: back to this Describe's.
            Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
            Remove-TestKeys $p2
        }
    }
    It 'finds drift by kind, and -Repair makes the next flush converge' {
        Invoke-StoreSql $script:StorePath "DELETE FROM user_profiles WHERE user_id = 'c1'"
        Invoke-StoreSql $script:StorePath "UPDATE user_profiles SET version = version - 1, json = '{""n"":0}' WHERE user_id = 'c2'"
        Remove-UserProfile -UserId c3 -Confirm:$false
        Clear-WriteQueue -Confirm:$false | Out-Null     # the tombstone never reaches the store
        Add-WriteQueueItem -UserId c4 -Update '{"n":44}' # pending: not counted as drift
        $report = Test-WriteBehindConsistency
        $report.IsConsistent | Should -BeFalse
        ($report.Drift | Where-Object UserId -eq 'c1').Kind | Should -Be 'MissingInStore'
        ($report.Drift | Where-Object UserId -eq 'c2').Kind | Should -Be 'StaleInStore'
        ($report.Drift | Where-Object UserId -eq 'c3').Kind | Should -Be 'DeletedInCacheButInStore'
        $report.DriftCount | Should -Be 3
        Test-WriteBehindConsistency -Quiet | Should -BeFalse
        $repaired = Test-WriteBehindConsistency -Repair -Confirm:$false
        $repaired.Repaired | Should -Be 3
        Invoke-WriteBehindFlush | Out-Null
        Test-WriteBehindConsistency -Quiet | Should -BeTrue
        (Get-StoreRow $script:StorePath 'c3').Deleted | Should -BeTrue
        (Get-StoreRow $script:StorePath 'c1').Json | Should -BeExactly '{"n":1}'
    }
}
