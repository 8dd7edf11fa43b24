# A real Redis Cluster (6 redis-server processes: 3 masters, 3 replicas, made with redis-cli --cluster
# create): the seed scenario over partitions, then a 100,000-item mixed workload over 16 partitions drained
# by 3 concurrent flusher processes while a master is SIGKILLed mid-flush (its replica takes over; the old
# master comes back as a replica). The run must converge: the queue empty, nothing in flight, the cache
# equal to a model of the workload computed without the engine, the store equal to the cache, and
# Test-WriteBehindConsistency clean. Runs once per build.ps1 Test, in the redis-server pass.
BeforeAll {
    . (Join-Path $PSScriptRoot '../faults/FaultHelpers.ps1')
    $script:Cluster = Start-TestCluster -WorkDir (Join-Path $script:FaultWork 'cluster') -NodeTimeoutMs 2000
    Write-FaultLog "cluster: $($script:Cluster.Endpoint)"
    $script:CMux = [StackExchange.Redis.ConnectionMultiplexer]::Connect($script:Cluster.Endpoint)
    $script:CDb = $script:CMux.GetDatabase()

    function Get-Partition([string] $Id, [int] $Count) {
        [uint64]$h = 2166136261
        foreach ($b in [Text.Encoding]::UTF8.GetBytes($Id)) { $h = (($h -bxor $b) * 16777619) % 4294967296 }
        [int]($h % $Count)
    }
    function Read-ClusterCache([string] $Prefix, [int] $Count) {
        $cache = @{}; $versions = @{}
        foreach ($k in 0..($Count - 1)) {
            foreach ($e in $script:CDb.HashGetAll("$($Prefix)user_profiles{$k}")) { $cache[([string]$e.Name).Substring(5)] = [string]$e.Value }
            foreach ($e in $script:CDb.HashGetAll("$($Prefix)user_profiles:versions{$k}")) { $versions[([string]$e.Name).Substring(5)] = [long]$e.Value }
        }
        [pscustomobject]@{ Cache = $cache; Versions = $versions }
    }
}
AfterAll {
    if ($script:CMux) { $script:CMux.Dispose() }
    Stop-TestCluster $script:Cluster
    if ($script:FaultWork) { Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $script:FaultWork }
}

Describe 'Redis Cluster: the seed scenario' -Tag Cluster {
    AfterEach { Disconnect-WriteBehind }

    It 'refuses one partition without a hash tag (its keys would be in different slots)' {
        { Connect-WriteBehind -Redis $script:Cluster.Endpoint -Store "sqlite://$(New-TestStore)" } | Should -Throw -ErrorId 'ClusterNeedsHashTag*'
    }

    It 'runs the four steps with one partition under the hash-tagged prefix {wb}' {
        $store = New-TestStore
        Connect-WriteBehind -Redis $script:Cluster.Endpoint -Store "sqlite://$store" -KeyPrefix '{wb}'
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        $null = Clear-WriteQueue -Confirm:$false
        Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}'
        [string]$script:CDb.ListGetByIndex('{wb}write_queue', 0) | Should -BeExactly 'update:user:1001:{"age":"31"}'
        (Invoke-WriteBehindFlush).Dequeued | Should -Be 1
        $script:CDb.ListLength('{wb}write_queue') | Should -Be 0
        [string]$script:CDb.HashGet('{wb}user_profiles', 'user:1001') | Should -BeExactly '{"name":"Alice","age":"31"}'
        [string]$script:CDb.HashGet('{wb}user_profiles', 'user:1002') | Should -BeExactly '{"name":"Bob","age":"25"}'
        (Get-StoreRow $store '1001').Json | Should -BeExactly '{"name":"Alice","age":"31"}'
    }

    It 'runs the four steps over 16 partitions spread across the three masters' {
        $store = New-TestStore
        $p = 'seed16:'
        Connect-WriteBehind -Redis $script:Cluster.Endpoint -Store "sqlite://$store" -KeyPrefix $p -Partitions 16
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        $null = Clear-WriteQueue -Confirm:$false
        Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}'
        $k = Get-Partition '1001' 16
        [string]$script:CDb.ListGetByIndex("$($p)write_queue{$k}", 0) | Should -BeExactly 'update:user:1001:{"age":"31"}'
        (Invoke-WriteBehindFlush).Dequeued | Should -Be 1
        (Get-WriteBehindStatus).QueueDepth | Should -Be 0
        [string]$script:CDb.HashGet("$($p)user_profiles{$k}", 'user:1001') | Should -BeExactly '{"name":"Alice","age":"31"}'
        (Get-StoreRow $store '1001').Json | Should -BeExactly '{"name":"Alice","age":"31"}'
        # the 16 partitions' keys live on all three masters
        $masters = @(0..15 | ForEach-Object { $script:CMux.GetDatabase().IdentifyEndpoint("$($p)write_queue{$_}").ToString() } | Select-Object -Unique)
        $masters.Count | Should -Be 3
    }
}

Describe 'Redis Cluster: 100,000 mixed writes over 16 partitions, 3 flushers, a master killed mid-flush' -Tag Cluster {
    BeforeAll {
        $script:P = 'big:'
        $script:N = 16
        $script:StorePath = New-TestStore
        $seed = if ($env:WRITEBEHIND_FAULT_SEED) { [int]$env:WRITEBEHIND_FAULT_SEED + 7 } else { [Random]::new().Next() }
        Write-FaultLog "cluster failover seed $seed"
        $clock = [Diagnostics.Stopwatch]::StartNew()
        # Producers wait for one replica (-ReplicaAcks 1), so the failover cannot take an acknowledged write with it.
        Connect-WriteBehind -Redis $script:Cluster.Endpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P -Partitions $script:N -ReplicaAcks 1
        $w = New-FaultWorkload -Random ([Random]::new($seed)) -Items 100000 -Ids 10000 -IdPrefix 'k' -MaxRound 500
        $script:Expected = Get-FaultExpectation -Rounds $w.Rounds
        # raw rounds: LPUSH each item to its partition's queue (FNV-1a of the id, mod 16), as a raw producer must
        Invoke-FaultRounds -Rounds $w.Rounds -Prefix $script:P -RawPush {
            param([string[]] $Items)
            foreach ($g in ($Items | Group-Object { Get-Partition (($_ -split ':')[2]) $script:N })) {
                $values = [StackExchange.Redis.RedisValue[]]@($g.Group | ForEach-Object { [StackExchange.Redis.RedisValue]::op_Implicit([string]$_) })
                $null = $script:CDb.ListLeftPush("$($script:P)write_queue{$($g.Name)}", $values)
            }
        }
        $script:Queued = (Get-WriteBehindStatus).QueueDepth
        Write-FaultLog "queued $($script:Queued) items over $($script:Expected.Count) ids in $([int]$clock.Elapsed.TotalSeconds) s"

        $stopFile = Join-Path $script:FaultWork 'cluster-stop'
        $config = @{ Mode = 'FlushLoop'; Redis = $script:Cluster.Endpoint; Store = "sqlite://$($script:StorePath)"; KeyPrefix = $script:P
                     Partitions = $script:N; ReplicaAcks = 1; BatchSize = 500; CommitSize = 2000; LeaseDuration = '00:00:03'; RetryTimeout = '00:00:30'
                     StopFile = $stopFile; KeepGoing = $true }
        $script:Children = @(1..3 | ForEach-Object { Start-FaultChild -Name "cluster-flusher-$_" -Config $config })
        foreach ($c in $script:Children) { $null = Wait-FaultChildReady $c }
        # mid-flush: every flusher has committed something, and most of the queue is still there
        foreach ($c in $script:Children) { $null = Wait-FaultChildLine $c '^V commit' 60 }
        $script:DepthAtKill = (Get-WriteBehindStatus).QueueDepth
        $victim = @(Get-TestClusterMaster $script:Cluster)[0]
        $script:VictimPort = $victim.Port
        Stop-TestServer $victim
        $killedAt = $clock.Elapsed.TotalSeconds
        Write-FaultLog "SIGKILLed master 127.0.0.1:$($victim.Port) with $($script:DepthAtKill) items still queued"

        # its replica takes over once the node timeout passes
        $other = $script:Cluster.Nodes | Where-Object { $_.Port -ne $victim.Port } | Select-Object -First 1
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        do {
            Start-Sleep -Milliseconds 250
            $info = Invoke-RedisCli $other.Port cluster info
            $masters = @(Get-TestClusterMaster $script:Cluster).Count
        } until (($info -match 'cluster_state:ok' -and $masters -eq 3) -or [DateTime]::UtcNow -gt $deadline)
        $script:FailoverSeconds = [math]::Round($clock.Elapsed.TotalSeconds - $killedAt, 1)
        $script:MastersAfter = $masters
        Write-FaultLog "a replica took over after $($script:FailoverSeconds) s"
        # the old master comes back and rejoins as the new master's replica (-ReplicaAcks 1 needs one again)
        $index = [array]::IndexOf($script:Cluster.Nodes, $victim)
        $script:Cluster.Nodes[$index] = Start-TestServer -Kind Redis -WorkDir $script:Cluster.WorkDir -Port $victim.Port -ExtraArguments @(
            '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--appendonly', 'no', '--cluster-replica-validity-factor', '0')
        $script:RejoinedAs = ''
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        do { Start-Sleep -Milliseconds 250; $script:RejoinedAs = Invoke-RedisCli $victim.Port info replication }
        until ($script:RejoinedAs -match 'master_link_status:up' -or [DateTime]::UtcNow -gt $deadline)

        New-Item -ItemType File -Path $stopFile | Out-Null
        $script:Exits = foreach ($c in $script:Children) { Wait-FaultChildExit $c 300 }
        $script:Results = @($script:Children | ForEach-Object { Get-FaultChildResults $_ })
        $script:Failures = @($script:Children | ForEach-Object { Read-FaultChildLines $_ | Where-Object { $_ -like 'FAIL *' } })
        Write-FaultLog "flushers: exit codes $($script:Exits -join ','), $($script:Results.Count) flush runs, $($script:Failures.Count) failed runs during the failover ($((@($script:Failures | ForEach-Object { ($_ -split ' ')[1] }) | Select-Object -Unique) -join ', '))"

        $script:Status = Get-WriteBehindStatus
        $script:Consistency = Test-WriteBehindConsistency
        $script:Report = Compare-FaultState -Prefix $script:P -StorePath $script:StorePath -Expected $script:Expected -CacheState (Read-ClusterCache $script:P $script:N)
        Write-FaultLog "converged in $([int]$clock.Elapsed.TotalSeconds) s: $(Format-FaultDrift $script:Report); consistency: $($script:Consistency.Summary)"
    }
    AfterAll {
        Disconnect-WriteBehind
        foreach ($c in @($script:Children)) { if ($c) { $null = Stop-FaultChildHard $c } }
        Remove-FaultStore $script:StorePath
    }

    It 'queued 100,000 items over 16 partitions' {
        $script:Queued | Should -Be 100000
    }
    It 'killed a master while the queue still held items, and a replica took over' {
        $script:DepthAtKill | Should -BeGreaterThan 0
        $script:MastersAfter | Should -Be 3
        $script:RejoinedAs | Should -Match 'role:slave'
    }
    It 'every flusher took a share of the work and finished cleanly once the queues and the leases were empty' {
        $script:Exits | Should -Be @(0, 0, 0)
        foreach ($c in $script:Children) {
            (Get-FaultChildResults $c | Measure-Object Dequeued -Sum).Sum | Should -BeGreaterThan 0 -Because "$($c.Name) shares the partitions"
        }
    }
    It 'converges: queue empty, nothing in flight, nothing dead-lettered' {
        $script:Status.QueueDepth | Should -Be 0
        $script:Status.InFlight | Should -Be 0
        $script:Status.Leases | Should -Be 0
        $script:Status.DeadLetters | Should -Be 0
    }
    It 'Test-WriteBehindConsistency finds the store equal to the cache' {
        $script:Consistency.DriftCount | Should -Be 0 -Because $script:Consistency.Summary
        $script:Consistency.ProfilesChecked | Should -BeGreaterThan 5000
    }
    It 'ends with every id as the model of the workload says, in the cache and the store' {
        $script:Report.DriftCount | Should -Be 0 -Because (Format-FaultDrift $script:Report)
    }
}
