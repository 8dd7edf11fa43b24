# Monitoring and maintenance: the Prometheus text (checked by promtool), the scrape endpoint of a continuous
# flush, pause and resume, and the run log.
BeforeDiscovery {
    $script:NoPromtool = -not (Get-Command promtool -ErrorAction SilentlyContinue)
}
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $script:Repo = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
    $script:Promtool = Get-Command promtool -ErrorAction SilentlyContinue
    # The samples of a metrics text: name, labels (a hashtable) and value.
    function ConvertFrom-Metrics([string] $Text) {
        foreach ($line in $Text -split "`n") {
            if (-not $line -or $line.StartsWith('#')) { continue }
            if ($line -notmatch '^([a-z_]+)\{([^}]*)\} (\S+)$') { throw "not a sample line: '$line'" }
            $name = $Matches[1]; $pairs = $Matches[2]; $value = $Matches[3]
            $labels = @{}
            foreach ($pair in ($pairs -split ',')) { if ($pair -match '^([a-z_]+)="(.*)"$') { $labels[$Matches[1]] = $Matches[2] } }
            [pscustomobject]@{ Name = $name; Labels = $labels; Value = [double]::Parse($value, [Globalization.CultureInfo]::InvariantCulture) }
        }
    }
    function Get-MetricSum($Samples, [string] $Name, [string] $Outcome) {
        $s = @($Samples | Where-Object { $_.Name -eq $Name -and (-not $Outcome -or $_.Labels.outcome -eq $Outcome) })
        if ($s.Count -eq 0) { throw "no metric $Name" }
        ($s | Measure-Object Value -Sum).Sum
    }
    function Test-Promtool([string] $Text) {
        $file = [IO.Path]::GetTempFileName()
        try {
            Set-Content -Path $file -Value $Text -NoNewline -Encoding utf8NoBOM
            $out = & bash -c "promtool check metrics < '$file' 2>&1"
            [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = ($out | Out-String) }
        } finally { Remove-Item $file }
    }
    function Get-FreePort {
        $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $l.Start()
        try { $l.LocalEndpoint.Port } finally { $l.Stop() }
    }
    function Wait-Until([scriptblock] $Condition, [double] $Seconds = 60) {
        $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
        while ([DateTime]::UtcNow -lt $deadline) { if (& $Condition) { return $true }; Start-Sleep -Milliseconds 50 }
        $false
    }
}

Describe 'Export-WriteBehindMetrics' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        $script:Store = "sqlite://$($script:StorePath)"
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:Store -KeyPrefix $script:P -Partitions 3
        # Garnet 2.2.8 before issue 10's partition_of fix: its Lua puts ids in other partitions than C# does
        Set-UserProfile -UserId '30' -Profile '{}'
        $script:PartitionsDisagree = (Invoke-WriteBehindFlush).DeadLettered -gt 0
        $null = Remove-WriteBehindDeadLetter -All -Confirm:$false
        Remove-TestKeys $script:P
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'passes promtool and matches Get-WriteBehindStatus after two flushes by two processes' {
        if ($script:PartitionsDisagree) { Set-ItResult -Skipped -Because "this server's Lua partition_of disagrees with C# (issue 10's Garnet fix)"; return }
        # flush 1, in this process: 40 profiles, 10 patches to the same ids (coalesced in the batch), 1 poison item
        1..40 | ForEach-Object { Set-UserProfile -UserId "m$_" -Profile "{`"n`":$_}" }
        1..10 | ForEach-Object { Add-WriteQueueItem -UserId "m$_" -Update '{"p":1}' }
        $null = $script:Db.ListLeftPush("$($script:P)write_queue{0}", 'garbage')
        $first = Invoke-WriteBehindFlush
        # flush 2, by another process: 25 more profiles
        41..65 | ForEach-Object { Set-UserProfile -UserId "m$_" -Profile "{`"n`":$_}" }
        Push-Location $script:Repo
        try {
            $json = & dotnet pwsh -NoProfile -NonInteractive -Command @"
Import-Module '$($script:ModulePath)'
`$c = Connect-WriteBehind -Redis '$($script:RedisEndpoint)' -Store '$($script:Store)' -KeyPrefix '$($script:P)' -Partitions 3 -PassThru
Invoke-WriteBehindFlush -Connection `$c | ConvertTo-Json -Compress
"@
        } finally { Pop-Location }
        $second = $json | Select-Object -Last 1 | ConvertFrom-Json
        $second.Persisted | Should -Be 25
        # left pending: 7 items, a second old
        66..72 | ForEach-Object { Set-UserProfile -UserId "m$_" -Profile '{"n":0}' }
        Start-Sleep -Milliseconds 1100

        $text = Export-WriteBehindMetrics
        $text | Should -BeOfType [string]
        $status = Get-WriteBehindStatus -NoStore
        $samples = @(ConvertFrom-Metrics $text)
        Get-MetricSum $samples writebehind_queue_items | Should -Be $status.QueueDepth
        $status.QueueDepth | Should -Be 7
        Get-MetricSum $samples writebehind_dead_letter_items | Should -Be $status.DeadLetters
        $status.DeadLetters | Should -Be 1
        Get-MetricSum $samples writebehind_in_flight_items | Should -Be 0
        Get-MetricSum $samples writebehind_cached_profiles | Should -Be $status.CachedProfiles
        @($samples | Where-Object Name -eq 'writebehind_queue_items').Count | Should -Be 3
        @($samples | Where-Object Name -eq 'writebehind_queue_items' | ForEach-Object { $_.Labels.partition }) | Should -Be @('0', '1', '2')
        # the same age, read a moment before the status
        $lag = ($samples | Where-Object Name -eq 'writebehind_lag_seconds' | Measure-Object Value -Maximum).Maximum
        $lag | Should -BeGreaterOrEqual 1
        $lag | Should -BeLessOrEqual $status.Lag.TotalSeconds
        # the counters hold both processes' flushes
        Get-MetricSum $samples writebehind_dequeued_items_total | Should -Be ($first.Dequeued + $second.Dequeued)
        Get-MetricSum $samples writebehind_flushed_items_total persisted | Should -Be ($first.Persisted + $second.Persisted)
        Get-MetricSum $samples writebehind_flushed_items_total persisted | Should -Be 65
        Get-MetricSum $samples writebehind_flushed_items_total coalesced | Should -Be ($first.Coalesced + $second.Coalesced)
        Get-MetricSum $samples writebehind_flushed_items_total coalesced | Should -Be 10
        Get-MetricSum $samples writebehind_flushed_items_total dead_lettered | Should -Be 1
        Get-MetricSum $samples writebehind_flush_errors_total | Should -Be 0
        $status.Totals.Persisted | Should -Be 65
        Get-MetricSum $samples writebehind_paused | Should -Be 0
        Get-MetricSum $samples writebehind_partitions | Should -Be 3
        Get-MetricSum $samples writebehind_high_water_mark_items | Should -Be $status.HighWaterMark
        Get-MetricSum $samples writebehind_last_flush_items | Should -Be $second.Dequeued
        Get-MetricSum $samples writebehind_last_flush_timestamp_seconds | Should -Be ($status.LastFlushAt.ToUnixTimeMilliseconds() / 1000)
        $samples | ForEach-Object { $_.Labels.key_prefix | Should -BeExactly $script:P }
    }
    It 'is valid for promtool (the Prometheus parser and linter)' -Skip:$NoPromtool {
        $r = Test-Promtool (Export-WriteBehindMetrics)
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Output.Trim() | Should -BeNullOrEmpty
    }
    It 'the README''s alert rules are valid for promtool' -Skip:$NoPromtool {
        $readme = Get-Content (Join-Path $script:Repo 'README.md') -Raw
        $readme -match '(?s)```yaml\n(# writebehind\.rules\.yml.*?)```' | Should -BeTrue
        $file = Join-Path ([IO.Path]::GetTempPath()) ('wb-rules-' + [guid]::NewGuid().ToString('N') + '.yml')
        try {
            Set-Content -Path $file -Value $Matches[1] -Encoding utf8NoBOM
            $out = & promtool check rules $file 2>&1 | Out-String
            $LASTEXITCODE | Should -Be 0 -Because $out
            $out | Should -Match 'SUCCESS: 3 rules found'
        } finally { Remove-Item $file -ErrorAction SilentlyContinue }
    }
    It '-Path writes the file atomically (nothing else left in the folder), for the textfile collector' {
        $dir = Join-Path ([IO.Path]::GetTempPath()) ('wb-prom-' + [guid]::NewGuid().ToString('N'))
        New-Item -ItemType Directory -Path $dir | Out-Null
        try {
            $out = Export-WriteBehindMetrics -Path (Join-Path $dir 'writebehind.prom')
            $out | Should -BeNullOrEmpty
            Export-WriteBehindMetrics -Path (Join-Path $dir 'writebehind.prom')
            @(Get-ChildItem -Force $dir | ForEach-Object Name) | Should -Be @('writebehind.prom')
            $text = Get-Content (Join-Path $dir 'writebehind.prom') -Raw
            @(ConvertFrom-Metrics $text | Where-Object Name -eq 'writebehind_queue_items').Count | Should -Be 3
            if ($script:Promtool) { (Test-Promtool $text).ExitCode | Should -Be 0 }
        } finally { Remove-Item -Recurse -Force $dir }
    }
}

Describe 'The scrape endpoint of a continuous flush' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'answers /metrics while the flush runs, and stops with it' {
        $port = Get-FreePort
        $job = Start-ThreadJob -ScriptBlock {
            param($module, $redis, $store, $prefix, $port)
            Import-Module $module
            $c = Connect-WriteBehind -Redis $redis -Store $store -KeyPrefix $prefix -PassThru
            Invoke-WriteBehindFlush -Connection $c -Continuous -MaxDuration '00:00:10' -MetricsPort $port
        } -ArgumentList $script:ModulePath, $script:RedisEndpoint, "sqlite://$($script:StorePath)", $script:P, $port
        try {
            $uri = "http://127.0.0.1:$port/metrics"
            Wait-Until { try { $script:answer = Invoke-WebRequest -Uri $uri -TimeoutSec 5; $true } catch { $false } } | Should -BeTrue
            $script:answer.StatusCode | Should -Be 200
            $script:answer.Headers['Content-Type'] | Should -Match 'text/plain; version=0.0.4'
            $script:answer.Content | Should -Match 'writebehind_queue_items\{key_prefix="[^"]+",partition="0"\} 0'
            1..5 | ForEach-Object { Set-UserProfile -UserId "e$_" -Profile '{"a":1}' }
            Wait-Until { (Get-WriteBehindStatus -NoStore).Totals.Persisted -eq 5 } | Should -BeTrue
            $job.State | Should -Be 'Running'
            $after = (Invoke-WebRequest -Uri $uri -TimeoutSec 5).Content
            Get-MetricSum @(ConvertFrom-Metrics $after) writebehind_flushed_items_total persisted | Should -Be 5
            { Invoke-WebRequest -Uri "http://127.0.0.1:$port/other" -TimeoutSec 5 } | Should -Throw '*404*'
            $result = $job | Wait-Job -Timeout 60 | Receive-Job
            $result.Persisted | Should -Be 5
            { Invoke-WebRequest -Uri $uri -TimeoutSec 5 } | Should -Throw
        } finally { $job | Remove-Job -Force }
    }
}

Describe 'Suspend-WriteBehindFlush and Resume-WriteBehindFlush' {
    BeforeEach {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        $script:Store = "sqlite://$($script:StorePath)"
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:Store -KeyPrefix $script:P
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'a one-shot flush while paused takes nothing and says so; status and metrics show paused, since and why' {
        1..5 | ForEach-Object { Set-UserProfile -UserId "o$_" -Profile '{"a":1}' }
        $pause = Suspend-WriteBehindFlush -Reason 'db01 maintenance'
        $pause.Paused | Should -BeTrue
        $pause.Reason | Should -BeExactly 'db01 maintenance'
        $r = Invoke-WriteBehindFlush -WarningVariable warned -WarningAction SilentlyContinue
        $r.Paused | Should -BeTrue
        $r.PausedReason | Should -BeExactly 'db01 maintenance'
        $r.Dequeued | Should -Be 0
        "$warned" | Should -Match 'paused \(db01 maintenance\): no batch was taken'
        (Get-WriteBehindStatus -NoStore).QueueDepth | Should -Be 5
        $s = Get-WriteBehindStatus -NoStore
        $s.Paused | Should -BeTrue
        $s.PausedReason | Should -BeExactly 'db01 maintenance'
        $s.PausedSince | Should -Be $pause.Since
        $samples = @(ConvertFrom-Metrics (Export-WriteBehindMetrics))
        Get-MetricSum $samples writebehind_paused | Should -Be 1
        Get-MetricSum $samples writebehind_paused_since_timestamp_seconds | Should -Be ($pause.Since.ToUnixTimeMilliseconds() / 1000)
        ($samples | Where-Object Name -eq 'writebehind_pause_info').Labels.reason | Should -BeExactly 'db01 maintenance'
        if ($script:Promtool) { (Test-Promtool (Export-WriteBehindMetrics)).ExitCode | Should -Be 0 }
        # producers keep working
        Set-UserProfile -UserId o6 -Profile '{"a":1}'
        $lifted = Resume-WriteBehindFlush
        $lifted.Paused | Should -BeFalse
        (Get-WriteBehindStatus -NoStore).Paused | Should -BeFalse
        (Invoke-WriteBehindFlush).Persisted | Should -Be 6
    }
    It 'the example script exits 4 while paused' {
        Set-UserProfile -UserId x1 -Profile '{"a":1}'
        $null = Suspend-WriteBehindFlush -Reason 'window'
        Push-Location $script:Repo
        try {
            $out = & dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $script:Repo 'examples/Invoke-WriteBehindFlush.ps1') -ModulePath $script:ModulePath `
                -Redis $script:RedisEndpoint -Store $script:Store -KeyPrefix $script:P 2>&1
            $code = $LASTEXITCODE
        } finally { Pop-Location }
        $code | Should -Be 4 -Because ($out | Out-String)
        ($out | Out-String) | Should -Match 'writebehind-flush: paused \(window\)'
        (Get-WriteBehindStatus -NoStore).QueueDepth | Should -Be 1
    }
    It '-WhatIf changes nothing' {
        Suspend-WriteBehindFlush -Reason x -WhatIf
        (Get-WriteBehindStatus -NoStore).Paused | Should -BeFalse
        $null = Suspend-WriteBehindFlush
        Resume-WriteBehindFlush -WhatIf
        (Get-WriteBehindStatus -NoStore).Paused | Should -BeTrue
        (Get-Command Suspend-WriteBehindFlush).ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0].ConfirmImpact | Should -Be 'Medium'
    }
    It 'a continuous flusher stops within one batch of Suspend, resumes on Resume, and nothing is lost or reordered' {
        # 40 ids x 100 patches each, in order: any loss or reordering leaves a wrong last value or version
        $items = foreach ($n in 1..100) { foreach ($i in 1..40) { "update:user:k$($i):{`"n`":$n}" } }
        $items | Add-WriteQueueItem
        $total = $items.Count
        $job = Start-ThreadJob -ScriptBlock {
            param($module, $redis, $store, $prefix)
            Import-Module $module
            $c = Connect-WriteBehind -Redis $redis -Store $store -KeyPrefix $prefix -PassThru
            Invoke-WriteBehindFlush -Connection $c -Continuous -BatchSize 5 -CommitSize 5 -MaxDuration '00:02:00'
        } -ArgumentList $script:ModulePath, $script:RedisEndpoint, $script:Store, $script:P
        try {
            Wait-Until { (Get-WriteBehindStatus -NoStore).QueueDepth -lt $total - 20 } | Should -BeTrue
            $null = Suspend-WriteBehindFlush -Reason 'test'
            $atPause = (Get-WriteBehindStatus -NoStore).QueueDepth
            $atPause | Should -BeGreaterThan 0 -Because 'the flusher must still have work when paused'
            # the flusher commits the batch in hand (and the one it leased ahead), then takes nothing
            Wait-Until { (Get-WriteBehindStatus -NoStore).InFlight -eq 0 } | Should -BeTrue
            Start-Sleep -Seconds 2
            $paused = Get-WriteBehindStatus -NoStore
            $paused.InFlight | Should -Be 0
            ($atPause - $paused.QueueDepth) | Should -BeLessOrEqual 10
            Start-Sleep -Seconds 1.5
            (Get-WriteBehindStatus -NoStore).QueueDepth | Should -Be $paused.QueueDepth
            $job.State | Should -Be 'Running'
            $null = Resume-WriteBehindFlush
            Wait-Until { $s = Get-WriteBehindStatus -NoStore; $s.QueueDepth -eq 0 -and $s.InFlight -eq 0 } | Should -BeTrue
        } finally { $job | Stop-Job; $job | Remove-Job -Force }
        foreach ($i in 1..40) {
            $p = Get-UserProfile -UserId "k$i"
            $p.Json | Should -BeExactly '{"n":100}'
            $p.Version | Should -Be 100
            $row = Get-StoreRow $script:StorePath "k$i"
            $row.Json | Should -BeExactly '{"n":100}'
            $row.Version | Should -Be 100
        }
        (Get-WriteBehindStatus -NoStore).Totals.Dequeued | Should -Be $total
    }
}

Describe 'Invoke-WriteBehindFlush -LogPath' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        $script:Store = "sqlite://$($script:StorePath)"
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:Store -KeyPrefix $script:P
        $script:Log = Join-Path (Split-Path $script:StorePath) 'flush.jsonl'
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'appends one JSON line per run: flushed, paused, failed (store locked) and from the example script''s WRITEBEHIND_LOG_PATH' {
        1..3 | ForEach-Object { Set-UserProfile -UserId "l$_" -Profile '{"a":1}' }
        $ok = Invoke-WriteBehindFlush -LogPath $script:Log
        $null = Suspend-WriteBehindFlush -Reason 'log test'
        $null = Invoke-WriteBehindFlush -LogPath $script:Log -WarningAction SilentlyContinue
        $null = Resume-WriteBehindFlush
        Set-UserProfile -UserId l9 -Profile '{"a":9}'
        $lock = [Microsoft.Data.Sqlite.SqliteConnection]::new("Data Source=$($script:StorePath);Pooling=False")
        $lock.Open()
        $cmd = $lock.CreateCommand(); $cmd.CommandText = 'BEGIN EXCLUSIVE'; $null = $cmd.ExecuteNonQuery()
        try {
            { Invoke-WriteBehindFlush -LogPath $script:Log -RetryTimeout '00:00:01' -ErrorAction Stop } | Should -Throw
        } finally { $cmd.CommandText = 'ROLLBACK'; $null = $cmd.ExecuteNonQuery(); $lock.Dispose() }
        $saved = $env:WRITEBEHIND_LOG_PATH
        $env:WRITEBEHIND_LOG_PATH = $script:Log
        Push-Location $script:Repo
        try {
            $null = & dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $script:Repo 'examples/Invoke-WriteBehindFlush.ps1') -ModulePath $script:ModulePath `
                -Redis $script:RedisEndpoint -Store $script:Store -KeyPrefix $script:P 2>&1
            $LASTEXITCODE | Should -Be 0
        } finally { Pop-Location; $env:WRITEBEHIND_LOG_PATH = $saved }

        $lines = @(Get-Content $script:Log)
        $lines.Count | Should -Be 4
        $runs = @($lines | ConvertFrom-Json)
        $runs.outcome | Should -Be @('flushed', 'paused', 'failed', 'flushed')
        $runs[0].persisted | Should -Be $ok.Persisted
        $runs[0].dequeued | Should -Be 3
        $runs[0].host | Should -BeExactly ([Environment]::MachineName)
        $runs[0].queue | Should -BeExactly "$($script:P)write_queue"
        $runs[0].errorId | Should -BeNullOrEmpty
        ([datetimeoffset]$runs[0].end) | Should -BeGreaterOrEqual ([datetimeoffset]$runs[0].start)
        $runs[0].itemsPerSecond | Should -BeGreaterThan 0
        $runs[1].paused | Should -BeTrue
        $runs[1].pausedReason | Should -BeExactly 'log test'
        $runs[2].errorId | Should -BeExactly 'StoreUnavailable'
        $runs[2].error | Should -Match 'unavailable'
        $runs[2].inFlight | Should -Be 1
        $runs[3].recovered | Should -Be 1
        $runs[3].pid | Should -Not -Be $PID
    }
}
