# Invoke-WriteBehindFlush -Writer { param($Rows) ... }: a PowerShell script block as the store. The contract:
# at least once, the pipeline thread, a normal return commits, an exception retries with backoff up to
# -RetryTimeout then fails with the items in flight, $row.Reject('reason') dead-letters one row.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $script:Repo = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path

    # Lines "id<TAB>version<TAB>deleted<TAB>json" appended by a writer, as objects.
    function Read-WriterFile([string] $Path) {
        if (-not (Test-Path -LiteralPath $Path)) { return @() }
        @(Get-Content -LiteralPath $Path | ForEach-Object {
            $id, $version, $deleted, $json = $_ -split "`t", 4
            [pscustomobject]@{ UserId = $id; Version = [long]$version; Deleted = $deleted -eq 'True'; Json = $json }
        })
    }
}

Describe 'Invoke-WriteBehindFlush -Writer' {
    BeforeEach {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        $script:Out = Join-Path (Split-Path $script:StorePath) 'rows.tsv'
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P; Remove-Item -Recurse -Force (Split-Path $script:StorePath) -ErrorAction SilentlyContinue }

    It 'hands each group to the script block on the pipeline thread: it appends the rows to a file, and the store is not written' {
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}'
        Set-UserProfile -UserId gone -Profile '{"x":1}'
        Remove-UserProfile -UserId gone -Confirm:$false
        $out = $script:Out
        $threads = [Collections.Generic.List[int]]::new()
        $names = [Collections.Generic.List[string]]::new()
        $r = Invoke-WriteBehindFlush -Writer {
            param($Rows)
            $threads.Add([Environment]::CurrentManagedThreadId)
            foreach ($row in $Rows) {
                if (-not $row.IsDeleted) { $names.Add($row.Profile.name) }
                Add-Content -LiteralPath $out -Value ("{0}`t{1}`t{2}`t{3}" -f $row.UserId, $row.Version, $row.IsDeleted, $row.Json)
            }
        }
        $r.Dequeued | Should -Be 5
        $r.Persisted | Should -Be 3
        $r.Coalesced | Should -Be 2
        $threads | Should -Be @([Environment]::CurrentManagedThreadId)   # the pipeline thread, once
        ($names | Sort-Object) | Should -Be @('Alice', 'Bob')
        $rows = Read-WriterFile $out | Sort-Object UserId
        ($rows | ForEach-Object { '{0} v{1} {2} {3}' -f $_.UserId, $_.Version, $_.Deleted, $_.Json }) |
            Should -Be @('1001 v2 False {"name":"Alice","age":"31"}', '1002 v1 False {"name":"Bob","age":"25"}', 'gone v2 True ')
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 0
        (Get-WriteBehindStatus -NoStore).InFlight | Should -Be 0
        Test-Path -LiteralPath $script:StorePath | Should -BeFalse   # the connection's store was never opened
    }

    It 'retries a writer that throws twice, with the same rows, then commits' {
        1..3 | ForEach-Object { Set-UserProfile -UserId "t$_" -Profile "{`"n`":$_}" }
        $calls = [Collections.Generic.List[string]]::new()
        $r = Invoke-WriteBehindFlush -RetryTimeout '00:00:30' -Writer {
            param($Rows)
            $calls.Add((($Rows | ForEach-Object { "$($_.UserId):$($_.Version)" } | Sort-Object) -join ','))
            if ($calls.Count -le 2) { throw "target busy ($($calls.Count))" }
        } -Verbose 4>&1 | Tee-Object -Variable stream | Where-Object { $_ -isnot [Management.Automation.VerboseRecord] }
        $calls | Should -Be @('t1:1,t2:1,t3:1', 't1:1,t2:1,t3:1', 't1:1,t2:1,t3:1')
        $r.Persisted | Should -Be 3
        (@($stream) | Where-Object { $_ -is [Management.Automation.VerboseRecord] -and $_.Message -like '*target busy (1)*retrying*' }) | Should -Not -BeNullOrEmpty
        (Get-WriteBehindStatus -NoStore).InFlight | Should -Be 0
    }

    It 'a writer that keeps throwing fails the flush after -RetryTimeout with the items in flight; the next flush commits them' {
        1..4 | ForEach-Object { Set-UserProfile -UserId "f$_" -Profile "{`"n`":$_}" }
        $err = $null
        try { Invoke-WriteBehindFlush -RetryTimeout '00:00:00.300' -Writer { param($Rows) throw 'target down' } | Out-Null } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'StoreUnavailable*'
        $err.Exception.Message | Should -BeLike '*target down*Nothing is lost*'
        (Get-WriteBehindStatus -NoStore).InFlight | Should -Be 4
        $out = $script:Out
        $again = Invoke-WriteBehindFlush -Writer { param($Rows) foreach ($row in $Rows) { Add-Content -LiteralPath $out -Value ("{0}`t{1}`t{2}`t{3}" -f $row.UserId, $row.Version, $row.IsDeleted, $row.Json) } }
        $again.Recovered | Should -Be 4
        (Read-WriterFile $out).UserId | Sort-Object | Should -Be @('f1', 'f2', 'f3', 'f4')
        (Get-WriteBehindStatus -NoStore).InFlight | Should -Be 0
    }

    It 'dead-letters a row the writer rejects, with its reason, and commits the rest (also when it rejects the only row)' {
        1..4 | ForEach-Object { Set-UserProfile -UserId "r$_" -Profile "{`"n`":$_}" }
        Set-UserProfile -UserId bad -Profile '{"n":"too big"}'
        $out = $script:Out
        $writer = {
            param($Rows)
            foreach ($row in $Rows) {
                if ($row.UserId -eq 'bad') { $row.Reject('the target takes numbers only'); continue }
                Add-Content -LiteralPath $out -Value ("{0}`t{1}`t{2}`t{3}" -f $row.UserId, $row.Version, $row.IsDeleted, $row.Json)
            }
        }
        $r = Invoke-WriteBehindFlush -Writer $writer
        $r.Persisted | Should -Be 4
        $r.DeadLettered | Should -Be 1
        (Read-WriterFile $out).UserId | Sort-Object | Should -Be @('r1', 'r2', 'r3', 'r4')
        $dead = @(Get-WriteBehindDeadLetter)
        $dead.Count | Should -Be 1
        $dead[0].Item | Should -BeExactly 'set:user:bad:1'
        $dead[0].Reason | Should -BeExactly 'store rejected: declined by the writer script block: the target takes numbers only'

        Set-UserProfile -UserId bad -Profile '{"n":"still"}'
        $alone = Invoke-WriteBehindFlush -Writer $writer
        $alone.DeadLettered | Should -Be 1
        $alone.Persisted | Should -Be 0
        @(Get-WriteBehindDeadLetter).Count | Should -Be 2
        (Get-WriteBehindStatus -NoStore).InFlight | Should -Be 0
    }

    It 'a flusher killed inside the writer loses nothing: a later flush hands the group again and every row''s last version is written' {
        $ids = 1..120 | ForEach-Object { "k$_" }
        $ids | ForEach-Object { Set-UserProfile -UserId $_ -Profile "{`"n`":0}" }
        foreach ($round in 1..2) { $ids | Where-Object { [int]$_.Substring(1) % 3 -eq 0 } | ForEach-Object { Add-WriteQueueItem -UserId $_ -Update "{`"r`":$round}" } }
        $out = $script:Out
        $marker = Join-Path (Split-Path $script:StorePath) 'inside-writer'
        $child = Join-Path (Split-Path $script:StorePath) 'child.ps1'
        Set-Content -LiteralPath $child -Value @'
param($ModulePath, $Redis, $Prefix, $Store, $Out, $Marker)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
Connect-WriteBehind -Redis $Redis -Store $Store -KeyPrefix $Prefix
$script:calls = 0
Invoke-WriteBehindFlush -BatchSize 40 -CommitSize 40 -LeaseDuration '00:00:01' -Writer {
    param($Rows)
    $script:calls++
    $i = 0
    foreach ($row in $Rows) {
        Add-Content -LiteralPath $Out -Value ("{0}`t{1}`t{2}`t{3}" -f $row.UserId, $row.Version, $row.IsDeleted, $row.Json)
        # In the second group, half-way: tell the test, then wait to be killed.
        if ($script:calls -eq 2 -and ++$i -eq [int]($Rows.Count / 2)) { New-Item -ItemType File -Path $Marker | Out-Null; Start-Sleep -Seconds 600 }
    }
}
'@
        $psi = [Diagnostics.ProcessStartInfo]::new('dotnet')
        foreach ($a in @('pwsh', '-NoProfile', '-NonInteractive', '-File', $child, $script:ModulePath, $script:RedisEndpoint, $script:P, "sqlite://$($script:StorePath)", $out, $marker)) { $psi.ArgumentList.Add($a) }
        $psi.UseShellExecute = $false
        $proc = [Diagnostics.Process]::Start($psi)
        try {
            while (-not (Test-Path -LiteralPath $marker) -and -not $proc.HasExited) { Start-Sleep -Milliseconds 100 }
            $proc.HasExited | Should -BeFalse -Because 'the child waits inside its writer'
            $proc.Kill($true)   # SIGKILL, the dotnet host and the pwsh it started
            $proc.WaitForExit()
        } finally { if (-not $proc.HasExited) { $proc.Kill($true) } }
        $before = @(Read-WriterFile $out).Count
        (Get-WriteBehindStatus -NoStore).InFlight | Should -BeGreaterThan 0

        # Later flushes: the killed flusher's lease expires (1 s) and is handed again; the rest of the queue follows.
        $writer = { param($Rows) foreach ($row in $Rows) { Add-Content -LiteralPath $out -Value ("{0}`t{1}`t{2}`t{3}" -f $row.UserId, $row.Version, $row.IsDeleted, $row.Json) } }
        $recovered = 0
        for ($attempt = 0; $attempt -lt 100; $attempt++) {
            $recovered += (Invoke-WriteBehindFlush -Writer $writer).Recovered
            $status = Get-WriteBehindStatus -NoStore
            if ($status.InFlight -eq 0 -and $status.QueueDepth -eq 0) { break }
            Start-Sleep -Milliseconds 200
        }
        $recovered | Should -BeGreaterThan 0
        $status.InFlight | Should -Be 0
        $status.QueueDepth | Should -Be 0
        @(Read-WriterFile $out).Count | Should -BeGreaterThan $before
        # Every id's newest line is the cache's current state and version.
        $newest = @{}
        foreach ($line in Read-WriterFile $out) { if (-not $newest.ContainsKey($line.UserId) -or $newest[$line.UserId].Version -lt $line.Version) { $newest[$line.UserId] = $line } }
        $newest.Count | Should -Be 120
        foreach ($p in Get-UserProfile -UserId $ids) {
            $newest[$p.UserId].Version | Should -Be $p.Version
            $newest[$p.UserId].Json | Should -BeExactly $p.Json
        }
        @(Get-WriteBehindDeadLetter).Count | Should -Be 0
    }

    It 'works with -Continuous' {
        1..6 | ForEach-Object { Set-UserProfile -UserId "c$_" -Profile "{`"n`":$_}" }
        $out = $script:Out
        $r = Invoke-WriteBehindFlush -Continuous -MaxItems 6 -BatchSize 2 -CommitSize 2 -Writer { param($Rows) foreach ($row in $Rows) { Add-Content -LiteralPath $out -Value ("{0}`t{1}`t{2}`t{3}" -f $row.UserId, $row.Version, $row.IsDeleted, $row.Json) } }
        $r.Persisted | Should -Be 6
        (Read-WriterFile $out).UserId | Sort-Object | Should -Be @('c1', 'c2', 'c3', 'c4', 'c5', 'c6')
    }

    It 'runs from the scheduled-task script with -WriterScript' {
        1..5 | ForEach-Object { Set-UserProfile -UserId "w$_" -Profile "{`"n`":$_}" }
        $writerFile = Join-Path (Split-Path $script:StorePath) 'writer.ps1'
        Set-Content -LiteralPath $writerFile -Value ('param($Rows) foreach ($row in $Rows) { Add-Content -LiteralPath ''' + $script:Out + ''' -Value ("{0}`t{1}`t{2}`t{3}" -f $row.UserId, $row.Version, $row.IsDeleted, $row.Json) }')
        Push-Location $script:Repo
        try {
            $output = & dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $script:Repo 'examples/Invoke-WriteBehindFlush.ps1') -ModulePath $script:ModulePath `
                -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P -WriterScript $writerFile 2>&1
            $LASTEXITCODE | Should -Be 0 -Because ($output | Out-String)
        } finally { Pop-Location }
        (Read-WriterFile $script:Out).UserId | Sort-Object | Should -Be @('w1', 'w2', 'w3', 'w4', 'w5')
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 0
    }
}
