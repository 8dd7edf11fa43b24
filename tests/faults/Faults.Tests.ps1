# Fault-injection suite (issue 3): flushers SIGKILLed at random moments, the store locked away mid-flush,
# concurrent flusher and producer processes, a Redis restart under AOF, and poison items. Every Describe
# is tagged Fault and runs real child processes (tests/faults/FaultChild.ps1) against the built module.
# Each Describe has its own key prefix and store file and checks the end state against a model of the
# items it produced, computed without the engine (FaultHelpers.ps1: Get-FaultExpectation).
#   WRITEBEHIND_FAULT_SEED   replays the crash test's workload and kill delays (the seed is printed)
#   WRITEBEHIND_FAULT_RECORD a file to write the crash test's numbers to (JSON)
BeforeAll {
    . (Join-Path $PSScriptRoot 'FaultHelpers.ps1')
}
AfterAll {
    if ($script:FaultWork) { Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $script:FaultWork }
}

Describe 'Crash: a flusher SIGKILLed at 20+ random moments loses nothing and applies nothing twice' -Tag Fault {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
        $script:Seed = if ($env:WRITEBEHIND_FAULT_SEED) { [int]$env:WRITEBEHIND_FAULT_SEED } else { [Random]::new().Next() }
        Write-FaultLog "crash test seed $($script:Seed) (replay with WRITEBEHIND_FAULT_SEED=$($script:Seed))"
        $rnd = [Random]::new($script:Seed)
        $clock = [Diagnostics.Stopwatch]::StartNew()

        $script:Workload = New-FaultWorkload -Random $rnd -Items 50000 -Ids 5000 -IdPrefix 'c'
        Invoke-FaultRounds -Rounds $script:Workload.Rounds -Prefix $script:P
        $script:Expected = Get-FaultExpectation -Rounds $script:Workload.Rounds
        $script:Queued = (Get-FaultQueueState $script:P).Depth
        $kindCounts = $script:Workload.Rounds | Group-Object Kind | ForEach-Object { "$($_.Name) $(($_.Group | ForEach-Object { $_.Ops.Count } | Measure-Object -Sum).Sum)" }
        Write-FaultLog "queued $($script:Queued) items in $($script:Workload.Rounds.Count) rounds ($($kindCounts -join ', ')) over $($script:Expected.Count) ids, $([int]$clock.Elapsed.TotalSeconds) s"

        # Kill delays: random, measured from the child's READY (module loaded, connected; the flush starts
        # next). A flusher drains ~10k items/s, so fixed 0.3-3 s delays would empty the queue after a few
        # kills; instead each delay is drawn uniformly around what should consume the queue's share per
        # remaining kill (overhead o of a child's first flush call, rate R learnt from the kills so far).
        $minKills = 20
        $overhead = 0.3; $rate = 10000.0
        $script:Kills = [System.Collections.Generic.List[object]]::new()
        $script:Children = 0
        $childConfig = @{ Mode = 'Flush'; Redis = $script:RedisEndpoint; Store = "sqlite://$($script:StorePath)"; KeyPrefix = $script:P
                          BatchSize = 500; LeaseDuration = '00:00:02'; RetryTimeout = '00:00:30' }
        while ($script:Kills.Count -lt $minKills -and $script:Children -lt 3 * $minKills) {
            $before = Get-FaultQueueState $script:P
            if ($before.Depth -eq 0) { break }
            $script:Children++
            $child = Start-FaultChild -Name "crash-$($script:Children)" -Config $childConfig
            $null = Wait-FaultChildReady $child
            $target = $before.Depth / ($minKills - $script:Kills.Count + 1)
            $mean = $overhead + $target / $rate
            $hi = [Math]::Max(0.2, [Math]::Min(3.0, 2 * $mean - 0.1))
            $delay = 0.1 + $rnd.NextDouble() * ($hi - 0.1)
            $wait = $delay - ([DateTime]::UtcNow - $child.ReadyAt).TotalSeconds
            if ($wait -gt 0) { Start-Sleep -Milliseconds ([int]($wait * 1000)) }
            $killed = Stop-FaultChildHard $child
            $after = Get-FaultQueueState $script:P
            $lines = Read-FaultChildLines $child
            $consumed = $before.Depth - $after.Depth
            if ($killed -and $delay -gt $overhead + 0.1 -and $consumed -gt 0) { $rate = 0.5 * $rate + 0.5 * ($consumed / ($delay - $overhead)) }
            $record = [pscustomobject]@{
                Child = $script:Children
                DelayMs = [int]($delay * 1000)
                Killed = $killed
                Batches = @($lines | Where-Object { $_ -like 'V batch *' }).Count
                RecoveredLeases = @($lines | Where-Object { $_ -like 'V recovered*' }).Count
                DepthBefore = $before.Depth
                DepthAfter = $after.Depth
                LeasesBefore = $before.Leases
                LeasesAfter = $after.Leases
                LeasedItemsAfter = $after.Leased
            }
            if ($killed) { $script:Kills.Add($record) }
            else { Write-FaultLog "child $($script:Children) finished before its kill at $($record.DelayMs) ms (not counted)" }
        }
        Write-FaultLog ("kill  delay_ms  batches  recovered  depth_before  depth_after  leases_after  leased_items_after")
        $i = 0
        foreach ($k in $script:Kills) {
            $i++
            Write-FaultLog ('{0,4}  {1,8}  {2,7}  {3,9}  {4,12}  {5,11}  {6,12}  {7,18}' -f $i, $k.DelayMs, $k.Batches, $k.RecoveredLeases, $k.DepthBefore, $k.DepthAfter, $k.LeasesAfter, $k.LeasedItemsAfter)
        }

        # Every lease a killed child left expires; one flush in this process reclaims them and drains the rest.
        $script:Pending = Get-FaultQueueState $script:P
        Start-Sleep -Milliseconds 2500
        $script:Final = Invoke-WriteBehindFlush -BatchSize 500 -LeaseDuration '00:00:02'
        $script:Report = Compare-FaultState -Prefix $script:P -StorePath $script:StorePath -Expected $script:Expected
        $script:After = Get-FaultQueueState $script:P
        $script:Status = Get-WriteBehindStatus

        $script:LastSeqWrong = [System.Collections.Generic.List[string]]::new()
        $cache = (Read-FaultCache $script:P).Cache
        foreach ($id in $script:Expected.Keys) {
            $e = $script:Expected[$id]
            $json = $cache[$id]
            if ($null -eq $json -or $null -eq $e.LastPatchSeq) { continue }
            $seq = ($json | ConvertFrom-Json).seq
            if ($seq -ne "$($e.LastPatchSeq)") { $script:LastSeqWrong.Add("$id seq '$seq', last patch $($e.LastPatchSeq)") }
        }
        $withLease = @($script:Kills | Where-Object { $_.LeasesAfter -gt 0 }).Count
        $summary = [ordered]@{
            Seed = $script:Seed; Items = $script:Queued; Ids = $script:Expected.Count
            Kills = $script:Kills.Count; Children = $script:Children; KillsLeavingLeases = $withLease
            LeasesRecoveredByChildren = ($script:Kills | Measure-Object RecoveredLeases -Sum).Sum
            PendingAtFinalFlush = $script:Pending.Depth; LeasesAtFinalFlush = $script:Pending.Leases; LeasedItemsAtFinalFlush = $script:Pending.Leased
            FinalDequeued = $script:Final.Dequeued; FinalRecovered = $script:Final.Recovered
            LiveIds = $script:Report.Live; DeletedIds = $script:Report.Deleted
            Drift = $script:Report.DriftCount; LastSeqWrong = $script:LastSeqWrong.Count
            Seconds = [int]$clock.Elapsed.TotalSeconds
        }
        Write-FaultLog ('CRASH ' + (($summary.GetEnumerator() | ForEach-Object { "$($_.Key)=$($_.Value)" }) -join ' '))
        Write-FaultLog (Format-FaultDrift $script:Report)
        if ($env:WRITEBEHIND_FAULT_RECORD) {
            [ordered]@{ Summary = $summary; Kills = $script:Kills; DriftByKind = $script:Report.ByKind; Drift = $script:Report.Drift } |
                ConvertTo-Json -Depth 5 | Set-Content -Path $env:WRITEBEHIND_FAULT_RECORD
        }
    }
    AfterAll {
        Disconnect-WriteBehind
        Remove-TestKeys $script:P
        Remove-FaultStore $script:StorePath
    }

    It 'queued 50,000 mixed items over 5,000 ids' {
        $script:Queued | Should -Be 50000
        $script:Expected.Count | Should -BeGreaterThan 4000
    }
    It 'killed a fresh flusher with SIGKILL at 20 or more moments while the queue still held items' {
        $script:Kills.Count | Should -BeGreaterOrEqual 20 -Because "seed $($script:Seed): $($script:Children) children started"
        foreach ($k in $script:Kills) { $k.DepthBefore | Should -BeGreaterThan 0 }
        @($script:Kills | Where-Object { $_.LeasesAfter -gt 0 }).Count | Should -BeGreaterThan 0 -Because 'some kills must land with a batch in flight'
    }
    It 'leaves the queue empty, no lease behind and nothing dead-lettered' {
        $script:After.Depth | Should -Be 0
        $script:After.Leases | Should -Be 0
        $script:After.LeaseLists | Should -Be 0
        $script:After.Dead | Should -Be 0
        $script:Status.InFlight | Should -Be 0
        $script:Status.DeadLetters | Should -Be 0
        $script:Status.QueueDepth | Should -Be 0
    }
    It 'ends with every id as the model says (version and JSON byte for byte) and the store equal to the cache' {
        $script:Report.DriftCount | Should -Be 0 -Because "seed $($script:Seed): $(Format-FaultDrift $script:Report)"
    }
    It 'keeps the last patch of every live id (nothing reverted, nothing merged twice)' {
        $script:LastSeqWrong.Count | Should -Be 0 -Because (($script:LastSeqWrong | Select-Object -First 10) -join '; ')
    }
    It 'accounts for the final flush: dequeued = persisted + coalesced + dead-lettered' {
        $r = $script:Final
        $r.Dequeued | Should -Be ($r.Persisted + $r.Coalesced + $r.DeadLettered)
        $r.InFlight | Should -Be 0
        $r.Dequeued | Should -Be $script:Pending.Depth
        if ($script:Pending.Leases -gt 0) { $r.Recovered | Should -Be $script:Pending.Leased }
    }
}
