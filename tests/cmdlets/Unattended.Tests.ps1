# The flush as scheduled tasks run it: the example script's exit codes, and -Continuous.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $script:Repo = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
    $script:FlushScript = Join-Path $script:Repo 'examples/Invoke-WriteBehindFlush.ps1'
    function Invoke-FlushScript([string[]] $Arguments) {
        Push-Location $script:Repo
        try {
            $out = & dotnet pwsh -NoProfile -NonInteractive -File $script:FlushScript -ModulePath $script:ModulePath @Arguments 2>&1
            [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = ($out | Out-String) }
        } finally { Pop-Location }
    }
}

Describe 'The scheduled-task flush script' {
    BeforeEach {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'exits 0 after flushing, and 0 again with -CheckConsistency' {
        1..50 | ForEach-Object { Set-UserProfile -UserId "s$_" -Profile "{`"n`":$_}" }
        $r = Invoke-FlushScript @('-Redis', $script:RedisEndpoint, '-Store', "sqlite://$($script:StorePath)", '-KeyPrefix', $script:P, '-CheckConsistency')
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Output | Should -Match 'dequeued 50'
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 0
        (Get-StoreRow $script:StorePath 's17').Json | Should -BeExactly '{"n":17}'
    }
    It 'exits 3 on a WRITEBEHIND_STORE that is no store URI, says InvalidStoreUri, repeats nothing of it and creates no file' {
        $saved = $env:WRITEBEHIND_STORE
        $env:WRITEBEHIND_STORE = 'Server=db01;Database=profiles;Trusted_Connection=True;Password=Task-Secret-5'
        try {
            $r = Invoke-FlushScript @('-Redis', $script:RedisEndpoint, '-KeyPrefix', $script:P)
        } finally { $env:WRITEBEHIND_STORE = $saved }
        $r.ExitCode | Should -Be 3 -Because $r.Output
        $r.Output | Should -Match 'InvalidStoreUri'
        $r.Output | Should -Not -Match 'Task-Secret-5'
        @(Get-ChildItem $script:Repo -Filter 'Server=*').Count | Should -Be 0
    }
    It 'exits 1 when the store stays unavailable, and loses nothing' {
        Set-UserProfile -UserId seed -Profile '{"a":0}'
        Invoke-WriteBehindFlush | Out-Null
        1..20 | ForEach-Object { Set-UserProfile -UserId "l$_" -Profile "{`"n`":$_}" }
        $lock = [Microsoft.Data.Sqlite.SqliteConnection]::new("Data Source=$($script:StorePath);Pooling=False")
        $lock.Open()
        $cmd = $lock.CreateCommand(); $cmd.CommandText = 'BEGIN EXCLUSIVE'; $null = $cmd.ExecuteNonQuery()
        try {
            $r = Invoke-FlushScript @('-Redis', $script:RedisEndpoint, '-Store', "sqlite://$($script:StorePath)", '-KeyPrefix', $script:P, '-RetryTimeout', '00:00:01')
        } finally { $cmd.CommandText = 'ROLLBACK'; $null = $cmd.ExecuteNonQuery(); $lock.Dispose() }
        $r.ExitCode | Should -Be 1 -Because $r.Output
        $r.Output | Should -Match 'StoreUnavailable'
        (Get-WriteBehindStatus -NoStore).InFlight | Should -Be 20
        $again = Invoke-WriteBehindFlush
        $again.Recovered | Should -Be 20
        (Get-StoreRow $script:StorePath 'l20').Json | Should -BeExactly '{"n":20}'
    }
    It 'exits 3 when Redis cannot be reached, naming the endpoint' {
        # a port nothing listens on: one the system just handed out and took back
        $port = & { $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $l.Start(); $p = $l.LocalEndpoint.Port; $l.Stop(); $p }
        $r = Invoke-FlushScript @('-Redis', "127.0.0.1:$port,connectTimeout=1000", '-Store', "sqlite://$($script:StorePath)")
        $r.ExitCode | Should -Be 3 -Because $r.Output
        $r.Output | Should -Match "RedisUnavailable"
        $r.Output | Should -Match "127.0.0.1:$port"
    }
}

Describe 'Invoke-WriteBehindFlush -Continuous' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'wakes on new items, flushes them while it runs, and stops at -MaxDuration' {
        $job = Start-ThreadJob -ScriptBlock {
            param($module, $redis, $store, $prefix)
            Import-Module $module
            $c = Connect-WriteBehind -Redis $redis -Store $store -KeyPrefix $prefix -PassThru
            Invoke-WriteBehindFlush -Connection $c -Continuous -MaxDuration '00:00:08'
        } -ArgumentList $script:ModulePath, $script:RedisEndpoint, "sqlite://$($script:StorePath)", $script:P
        Start-Sleep -Seconds 2
        $clock = [Diagnostics.Stopwatch]::StartNew()
        1..10 | ForEach-Object { Add-WriteQueueItem -UserId "c$_" -Update "{`"n`":$_}" }
        # the flusher creates the store's schema on its first commit: until then the table is not there
        $row = $null
        while ($null -eq $row -and $clock.Elapsed.TotalSeconds -lt 6) {
            try { $row = Get-StoreRow $script:StorePath 'c10' } catch { $row = $null }
            if ($null -eq $row) { Start-Sleep -Milliseconds 100 }
        }
        # persisted while the flusher still runs: it woke on the items instead of waiting for its end
        $job.State | Should -Be 'Running'
        (Get-StoreRow $script:StorePath 'c10').Json | Should -BeExactly '{"n":10}'
        $result = $job | Wait-Job -Timeout 30 | Receive-Job
        $job.State | Should -Be 'Completed'
        $result.Dequeued | Should -Be 10
        $result.Duration.TotalSeconds | Should -BeGreaterOrEqual 7
        $result.Duration.TotalSeconds | Should -BeLessThan 15
    }
}
