# -Partitions on one Redis: hash-tagged keys per partition, routing by FNV-1a of the id, flushers taking
# partitions by their owner key, misrouted raw items dead-lettered and restored to their own partition,
# and the partition count agreed by every client of a prefix. (The Redis Cluster suite runs the same on
# a real cluster, with a failover: tests/cluster.)
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    # FNV-1a 32-bit of the id's UTF-8 bytes, mod N: the README's formula, computed here without the module.
    function Get-Partition([string] $Id, [int] $Count) {
        [uint64]$h = 2166136261
        foreach ($b in [Text.Encoding]::UTF8.GetBytes($Id)) { $h = (($h -bxor $b) * 16777619) % 4294967296 }
        [int]($h % $Count)
    }
}

Describe 'Partitions on one Redis' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P -Partitions 4
    }
    AfterAll {
        Disconnect-WriteBehind
        Remove-TestKeys $script:P
    }

    It 'runs the seed scenario with each profile in its partition''s hash-tagged keys' {
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        $p1 = Get-Partition '1001' 4; $p2 = Get-Partition '1002' 4
        Get-RawString "$($script:P)user_profiles{$p1}" 'user:1001' | Should -BeExactly '{"name":"Alice","age":"30"}'
        Get-RawString "$($script:P)user_profiles{$p2}" 'user:1002' | Should -BeExactly '{"name":"Bob","age":"25"}'
        # Its confirmation text counts every partition's queue.
        $verbose = Clear-WriteQueue -Confirm:$false -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        ($verbose.Message -join "`n") | Should -Match ([regex]::Escape('Drop 2 pending items: 0 updates (deferred patches), 2 sets (persists of cached profiles), 0 deletes, 0 other'))
        $item = Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}' -PassThru
        $item.Queue | Should -BeExactly "$($script:P)write_queue{$p1}"
        Get-RawList "$($script:P)write_queue{$p1}" | Should -BeExactly @('update:user:1001:{"age":"31"}')
        $r = Invoke-WriteBehindFlush
        $r.Dequeued | Should -Be 1
        Get-RawString "$($script:P)user_profiles{$p1}" 'user:1001' | Should -BeExactly '{"name":"Alice","age":"31"}'
        (Get-StoreRow $script:StorePath '1001').Json | Should -BeExactly '{"name":"Alice","age":"31"}'
        (Get-UserProfile -UserId 1001, 1002 | ForEach-Object Json) | Should -BeExactly @('{"name":"Alice","age":"31"}', '{"name":"Bob","age":"25"}')
        $script:Db.KeyExists("$($script:P)user_profiles") | Should -BeFalse
        $script:Db.KeyExists("$($script:P)write_queue") | Should -BeFalse
        [string]$script:Db.StringGet("$($script:P)write_queue:partitions") | Should -Be '4'
    }

    It 'spreads 2,000 profiles over all four partitions, flushes them all and reports per-partition status' {
        $ids = 1..2000 | ForEach-Object { "s$_" }
        $ids | ForEach-Object { [pscustomobject]@{ UserId = $_; Profile = "{""n"":""$_""}" } } | Set-UserProfile
        $status = Get-WriteBehindStatus
        $status.Partitions | Should -Be 4
        $status.PartitionDetails.Count | Should -Be 4
        foreach ($d in $status.PartitionDetails) {
            $d.QueueDepth | Should -BeGreaterThan 300
            $d.QueueDepth | Should -Be $script:Db.ListLength($d.Queue)
        }
        $status.QueueDepth | Should -Be 2000
        $r = Invoke-WriteBehindFlush
        $r.Dequeued | Should -Be 2000
        $r.Persisted | Should -Be 2000
        (Get-WriteBehindStatus).QueueDepth | Should -Be 0
        foreach ($k in 0..3) { $script:Db.KeyExists("$($script:P)write_queue:owner{$k}") | Should -BeFalse -Because 'a flusher lets its partitions go' }
        # The check walks every partition: it finds the one drift the seed scenario made (1002's persist was
        # dropped by Clear-WriteQueue, in its own partition) and nothing among the 2,000.
        $report = Test-WriteBehindConsistency
        $report.ProfilesChecked | Should -Be 2002
        @($report.Drift | ForEach-Object UserId) | Should -Be @('1002')
        @(Get-UserProfile | Where-Object UserId -like 's*').Count | Should -Be 2000
    }

    It 'dead-letters a raw item pushed to the wrong partition, and Restore-WriteBehindDeadLetter routes it home' {
        $homeP = Get-Partition 'w1' 4
        $wrong = ($homeP + 1) % 4
        $null = $script:Db.ListLeftPush("$($script:P)write_queue{$wrong}", 'update:user:w1:{"x":"1"}')
        $r = Invoke-WriteBehindFlush
        $r.DeadLettered | Should -Be 1
        $dl = @(Get-WriteBehindDeadLetter)
        $dl.Count | Should -Be 1
        $dl[0].Partition | Should -Be $wrong
        $dl[0].Reason | Should -BeLike "wrong partition: user w1 belongs to partition $homeP of 4"
        $restored = $dl | Restore-WriteBehindDeadLetter -PassThru -Confirm:$false
        $restored.Queue | Should -BeExactly "$($script:P)write_queue{$homeP}"
        @(Get-WriteBehindDeadLetter).Count | Should -Be 0
        $null = Invoke-WriteBehindFlush
        (Get-UserProfile -UserId w1).Json | Should -BeExactly '{"x":"1"}'
    }

    It 'two flushers in one go share the partitions and never own one at the same time' {
        1..4000 | ForEach-Object { [pscustomobject]@{ UserId = "t$_"; Profile = '{"v":"1"}' } } | Set-UserProfile
        $module = $env:WRITEBEHIND_TEST_MODULE
        $jobs = 1..2 | ForEach-Object {
            Start-ThreadJob -ScriptBlock {
                param($module, $redis, $store, $prefix)
                Import-Module $module
                Connect-WriteBehind -Redis $redis -Store $store -KeyPrefix $prefix -Partitions 4
                Invoke-WriteBehindFlush -BatchSize 100 -CommitSize 200 -Verbose 4>&1 | ForEach-Object { if ($_ -is [System.Management.Automation.VerboseRecord]) { $_.Message } else { $_ } }
            } -ArgumentList $module, $script:RedisEndpoint, "sqlite://$($script:StorePath)", $script:P
        }
        $null = $jobs | Wait-Job -Timeout 120
        $outs = @($jobs | ForEach-Object { , @(Receive-Job $_) })
        $jobs | Remove-Job -Force
        $results = @($outs | ForEach-Object { $_ | Where-Object { $_ -isnot [string] } })
        $results.Count | Should -Be 2
        ($results | Measure-Object Dequeued -Sum).Sum | Should -Be 4000
        # each partition was drained by one flusher: the partitions named in their commit logs do not overlap
        $owned = @($outs | ForEach-Object { , @($_ | Where-Object { $_ -is [string] -and $_ -match '\(partition ([\d, ]+)\)' } | ForEach-Object { $Matches[1] -split ', ' } | Select-Object -Unique) })
        ($owned[0] + $owned[1] | Select-Object -Unique).Count | Should -Be 4
        @($owned[0] | Where-Object { $owned[1] -contains $_ }).Count | Should -Be 0 -Because "flusher 1 drained $($owned[0] -join ','), flusher 2 $($owned[1] -join ',')"
        (Get-WriteBehindStatus).QueueDepth | Should -Be 0
        @((Test-WriteBehindConsistency).Drift | ForEach-Object UserId) | Should -Be @('1002')
    }

    It 'refuses a client that asks for another partition count (PartitionMismatch)' {
        { Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P -Partitions 8 } |
            Should -Throw -ErrorId 'PartitionMismatch*'
        { Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P } |
            Should -Throw -ErrorId 'PartitionMismatch*'
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P -Partitions 4
    }
}

Describe 'A full partition refuses only its own records' {
    BeforeAll {
        $script:P = New-TestPrefix
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $script:P -Partitions 2 -HighWaterMark 20
        $ids = @(0..200 | ForEach-Object { "z$_" })
        $script:Full = @($ids | Where-Object { (Get-Partition $_ 2) -eq 0 })
        $script:Room = @($ids | Where-Object { (Get-Partition $_ 2) -eq 1 })
        # fill partition 0 to its share of the mark: until it refuses
        $i = 0
        do { $err = $null; Set-UserProfile -UserId $script:Full[$i] -Profile '{"v":0}' -ErrorVariable err -ErrorAction SilentlyContinue; $i++ } while (-not $err -and $i -lt 60)
        $script:FullDepth = (Get-RawList "$($script:P)write_queue{0}").Count
    }
    AfterAll {
        Disconnect-WriteBehind
        Remove-TestKeys $script:P
    }

    It 'Set-UserProfile: the full partition''s records get QueueFull; the others are written, passed through and not reported' {
        $script:FullDepth | Should -BeGreaterThan 0
        $errs = $null
        $out = @(@(
            [pscustomobject]@{ UserId = $script:Full[0]; Profile = '{"v":1}' }
            [pscustomobject]@{ UserId = $script:Room[0]; Profile = '{"v":1}' }
            [pscustomobject]@{ UserId = $script:Room[1]; Profile = '{"v":1}' }
        ) | Set-UserProfile -PassThru -ErrorVariable errs -ErrorAction SilentlyContinue)
        @($errs | ForEach-Object FullyQualifiedErrorId) | Should -BeExactly @('QueueFull,WriteBehind.Commands.SetUserProfileCommand')
        $errs[0].TargetObject | Should -BeExactly $script:Full[0]
        @($out | ForEach-Object UserId) | Should -BeExactly @($script:Room[0], $script:Room[1])
        @($out | ForEach-Object Version) | Should -BeExactly @(1, 1)
        Get-RawString "$($script:P)user_profiles{0}" "user:$($script:Full[0])" | Should -BeExactly '{"v":0}'
        Get-RawString "$($script:P)user_profiles{1}" "user:$($script:Room[0])" | Should -BeExactly '{"v":1}'
        (Get-RawList "$($script:P)write_queue{0}").Count | Should -Be $script:FullDepth
        Get-RawList "$($script:P)write_queue{1}" | Should -BeExactly @("set:user:$($script:Room[1]):1", "set:user:$($script:Room[0]):1")
    }
    It 'Add-WriteQueueItem and Remove-UserProfile: the same, per record' {
        $errs = $null
        $out = @(@(
            [pscustomobject]@{ UserId = $script:Full[1]; Update = '{"a":1}' }
            [pscustomobject]@{ UserId = $script:Room[2]; Update = '{"a":1}' }
        ) | Add-WriteQueueItem -PassThru -ErrorVariable errs -ErrorAction SilentlyContinue)
        @($errs | ForEach-Object FullyQualifiedErrorId) | Should -BeExactly @('QueueFull,WriteBehind.Commands.AddWriteQueueItemCommand')
        @($out | ForEach-Object Item) | Should -BeExactly @("update:user:$($script:Room[2]):{`"a`":1}")
        (Get-RawList "$($script:P)write_queue{1}")[0] | Should -BeExactly "update:user:$($script:Room[2]):{`"a`":1}"
        $errs = $null
        $out = @(Remove-UserProfile -UserId $script:Full[0], $script:Room[0] -PassThru -ErrorVariable errs -ErrorAction SilentlyContinue)
        @($errs | ForEach-Object FullyQualifiedErrorId) | Should -BeExactly @('QueueFull,WriteBehind.Commands.RemoveUserProfileCommand')
        $errs[0].TargetObject | Should -BeExactly $script:Full[0]
        @($out | ForEach-Object Item) | Should -BeExactly @("delete:user:$($script:Room[0])")
        Get-RawString "$($script:P)user_profiles{0}" "user:$($script:Full[0])" | Should -BeExactly '{"v":0}'
        (Get-RawList "$($script:P)write_queue{0}").Count | Should -Be $script:FullDepth
    }
}

Describe 'Partition settings' {
    It 'flushes ids 0..60 over three partitions with none dead-lettered (the lease script routes every id as C# does)' {
        # Garnet's Lua (5.4 numbers, a bit library that shifts wrongly) once put half of these in the wrong partition.
        $p = New-TestPrefix
        $store = New-TestStore
        try {
            Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$store" -KeyPrefix $p -Partitions 3
            0..60 | ForEach-Object { [pscustomobject]@{ UserId = "$_"; Profile = "{""n"":$_}" } } | Set-UserProfile
            foreach ($k in 0..2) {
                foreach ($item in Get-RawList "$($p)write_queue{$k}") {
                    Get-Partition ($item -split ':')[2] 3 | Should -Be $k -Because "$item is queued to partition $k"
                }
            }
            $r = Invoke-WriteBehindFlush
            $r.Dequeued | Should -Be 61
            $r.DeadLettered | Should -Be 0
            $r.Persisted | Should -Be 61
            @(Get-WriteBehindDeadLetter).Count | Should -Be 0
            foreach ($id in 0..60) { (Get-StoreRow $store "$id").Json | Should -BeExactly "{""n"":$id}" }
        } finally { Disconnect-WriteBehind; Remove-TestKeys $p }
    }
    It 'refuses partitions over data written with one partition (PartitionMismatch)' {
        $p = New-TestPrefix
        try {
            Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $p
            Set-UserProfile -UserId 1 -Profile '{}'
            { Connect-WriteBehind -Redis $script:RedisEndpoint -KeyPrefix $p -Partitions 2 } | Should -Throw -ErrorId 'PartitionMismatch*'
        } finally { Disconnect-WriteBehind; Remove-TestKeys $p }
    }
    It 'refuses a hash-tagged prefix with several partitions (InvalidConfiguration)' {
        { Connect-WriteBehind -Redis $script:RedisEndpoint -KeyPrefix '{wb}' -Partitions 2 } | Should -Throw -ErrorId 'InvalidConfiguration*'
    }
    It 'refuses -ReplicaAcks at connect on a server without WAIT (Garnet), before anything is written' -Skip:($env:WRITEBEHIND_TEST_SERVER_KIND -ne 'Garnet') {
        $p = New-TestPrefix
        try {
            $err = { Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $p -ReplicaAcks 1 } |
                Should -Throw -ErrorId 'ReplicaAcksUnsupported*' -PassThru
            $err.CategoryInfo.Category | Should -Be 'NotImplemented'
            $err.Exception.Message | Should -Match 'does not run WAIT'
            # without -ReplicaAcks the same server connects and writes
            Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $p
            Set-UserProfile -UserId 1 -Profile '{"a":"1"}'
            Get-RawString "$($p)user_profiles" 'user:1' | Should -BeExactly '{"a":"1"}'
        } finally { Disconnect-WriteBehind; Remove-TestKeys $p }
    }
    It 'fails with ReplicationTimeout when -ReplicaAcks asks for a replica the server does not have' -Skip:($env:WRITEBEHIND_TEST_SERVER_KIND -eq 'Garnet') {
        $p = New-TestPrefix
        try {
            Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $p -ReplicaAcks 1 -ReplicaTimeout '00:00:00.200'
            { Set-UserProfile -UserId 1 -Profile '{"a":"1"}' -ErrorAction Stop } | Should -Throw -ErrorId 'ReplicationTimeout*'
            # applied on the master all the same, and said so
            Get-RawString "$($p)user_profiles" 'user:1' | Should -BeExactly '{"a":"1"}'
            $err = { Invoke-WriteBehindFlush } | Should -Throw -ErrorId 'ReplicationTimeout*' -PassThru
            $err.Exception.Message | Should -Match 'Nothing is lost'
            (Get-WriteBehindStatus).InFlight | Should -Be 1 -Because 'the batch stays in flight for the next flush'
        } finally { Disconnect-WriteBehind; Remove-TestKeys $p }
    }
}
