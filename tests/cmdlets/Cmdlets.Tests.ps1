# Cmdlet behaviour on a private key prefix per test: interop with raw Redis, byte-exactness, pipelines,
# poison items, bad input, and connection failures.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
}

Describe 'Interop with raw Redis commands' {
    BeforeEach {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        $script:C = Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P -PassThru
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'flushes an item LPUSHed with a raw command exactly like one the module queued' {
        Set-UserProfile -UserId u1 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId u2 -Profile '{"name":"Bob","age":"25"}'
        $null = Invoke-Raw 'LPUSH' @("$($script:P)write_queue", 'update:user:u1:{"age":"31"}')
        Add-WriteQueueItem -UserId u2 -Update '{"age":"26"}'
        $r = Invoke-WriteBehindFlush
        $r.DeadLettered | Should -Be 0
        Get-RawString "$($script:P)user_profiles" 'user:u1' | Should -BeExactly '{"name":"Alice","age":"31"}'
        Get-RawString "$($script:P)user_profiles" 'user:u2' | Should -BeExactly '{"name":"Bob","age":"26"}'
        (Get-StoreRow $script:StorePath 'u1').Json | Should -BeExactly '{"name":"Alice","age":"31"}'
    }
    It 'a profile HSET raw is read by Get-UserProfile, and a module write reads back with raw HGET' {
        $null = Invoke-Raw 'HSET' @("$($script:P)user_profiles", 'user:raw1', '{"x":1}')
        (Get-UserProfile -UserId raw1).Json | Should -BeExactly '{"x":1}'
        Set-UserProfile -UserId m1 -Profile '{"a": [1, 2], "b" : "c"}'
        Get-RawString "$($script:P)user_profiles" 'user:m1' | Should -BeExactly '{"a": [1, 2], "b" : "c"}'
    }
    It 'every key carries the prefix and none of the default names is touched' {
        Set-UserProfile -UserId k1 -Profile '{"a":1}'
        Invoke-WriteBehindFlush | Out-Null
        $script:Db.KeyExists("$($script:P)user_profiles") | Should -BeTrue
        $script:Db.KeyExists("$($script:P)user_profiles:versions") | Should -BeTrue
        $script:Db.HashExists('user_profiles', 'user:k1') | Should -BeFalse
    }
}

Describe 'Byte-exact values' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'patching one field keeps every other byte of the profile' {
        $profile = '{"big":12345678901234567890,"f":1.0,"e":1e3,"nested":{"a":[1,{"b":"c"}],"d":null},"arr":[1.50,"x",true],"u":"é ü 🙂 \u00e9","q":"say \"hi\"\n","age":"30"}'
        Set-UserProfile -UserId bx -Profile $profile
        Add-WriteQueueItem -UserId bx -Update '{"age":"31"}'
        Invoke-WriteBehindFlush | Out-Null
        $expected = $profile.Replace('"age":"30"', '"age":"31"')
        Get-RawString "$($script:P)user_profiles" 'user:bx' | Should -BeExactly $expected
        (Get-StoreRow $script:StorePath 'bx').Json | Should -BeExactly $expected
    }
    It 'a new field is appended after the others' {
        Set-UserProfile -UserId by -Profile '{"name":"Alice","age":"30"}'
        Add-WriteQueueItem -UserId by -Update '{"city":"Oslo","age":"31"}'
        Invoke-WriteBehindFlush | Out-Null
        Get-RawString "$($script:P)user_profiles" 'user:by' | Should -BeExactly '{"name":"Alice","age":"31","city":"Oslo"}'
    }
}

Describe 'Pipelines' {
    BeforeEach {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'Import-Csv | Set-UserProfile makes a profile of the other columns, in their order' {
        $csv = Join-Path ([IO.Path]::GetTempPath()) "users-$([guid]::NewGuid().ToString('N')).csv"
        "Id,name,age`n2001,Carol,41`n2002,Dan,52" | Set-Content -Path $csv
        Import-Csv $csv | Set-UserProfile
        Get-RawString "$($script:P)user_profiles" 'user:2001' | Should -BeExactly '{"name":"Carol","age":"41"}'
        Get-RawString "$($script:P)user_profiles" 'user:2002' | Should -BeExactly '{"name":"Dan","age":"52"}'
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 2
        Remove-Item $csv
    }
    It 'a dictionary profile is written as compact JSON in key order' {
        Set-UserProfile -UserId d1 -Profile ([ordered]@{ name = 'Eve'; age = '33'; tags = @('a', 'b'); n = 5 })
        Get-RawString "$($script:P)user_profiles" 'user:d1' | Should -BeExactly '{"name":"Eve","age":"33","tags":["a","b"],"n":5}'
    }
    It 'pipes 5000 profiles in one go, versions bumped and one persist queued each' {
        1..5000 | ForEach-Object { [pscustomobject]@{ UserId = "p$_"; Profile = "{`"n`":$_}" } } | Set-UserProfile
        $script:Db.HashLength("$($script:P)user_profiles") | Should -Be 5000
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 5000
        Get-RawString "$($script:P)user_profiles" 'user:p4321' | Should -BeExactly '{"n":4321}'
        $r = Invoke-WriteBehindFlush -BatchSize 700
        $r.Dequeued | Should -Be 5000
        $r.Persisted | Should -Be 5000
        (Get-WriteBehindStatus).StoredProfiles | Should -Be 5000
    }
    It 'the same id twice in one pipeline gets two versions, in order, and the later profile wins' {
        $out = @('{"v":1}', '{"v":2}') | Set-UserProfile -UserId twice -PassThru
        @($out | ForEach-Object Version) | Should -Be @(1, 2)
        Get-RawString "$($script:P)user_profiles" 'user:twice' | Should -BeExactly '{"v":2}'
        Get-RawList "$($script:P)write_queue" | Should -BeExactly @('set:user:twice:2', 'set:user:twice:1')
        @('twice', 'twice') | Remove-UserProfile -Confirm:$false
        Get-RawString "$($script:P)user_profiles:versions" 'user:twice' | Should -Be '4'
        (Get-RawList "$($script:P)write_queue")[0] | Should -BeExactly 'delete:user:twice:4'
    }
    It '-CacheOnly warms the cache and queues nothing' {
        Set-UserProfile -UserId w1 -Profile '{"a":1}' -CacheOnly
        Get-RawString "$($script:P)user_profiles" 'user:w1' | Should -BeExactly '{"a":1}'
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 0
    }
    It 'Get-UserProfile reads through from the store on a cache miss and repopulates the cache' {
        Set-UserProfile -UserId rt -Profile '{"a":"from-store"}'
        Invoke-WriteBehindFlush | Out-Null
        $null = $script:Db.HashDelete("$($script:P)user_profiles", 'user:rt')
        $p = Get-UserProfile -UserId rt
        $p.Source | Should -Be 'Store'
        $p.Json | Should -BeExactly '{"a":"from-store"}'
        Get-RawString "$($script:P)user_profiles" 'user:rt' | Should -BeExactly '{"a":"from-store"}'
    }
    It 'Get-UserProfile without -UserId streams every cached profile' {
        1..25 | ForEach-Object { Set-UserProfile -UserId "s$_" -Profile "{`"i`":$_}" -CacheOnly }
        $all = @(Get-UserProfile)
        $all.Count | Should -Be 25
        ($all | Where-Object UserId -eq 's7').Json | Should -BeExactly '{"i":7}'
    }
    It 'a deleted profile is gone from the cache at once and a tombstone reaches the store' {
        Set-UserProfile -UserId del1 -Profile '{"a":1}'
        Invoke-WriteBehindFlush | Out-Null
        Remove-UserProfile -UserId del1 -Confirm:$false
        Get-RawString "$($script:P)user_profiles" 'user:del1' | Should -BeNullOrEmpty
        Invoke-WriteBehindFlush | Out-Null
        $row = Get-StoreRow $script:StorePath 'del1'
        $row.Deleted | Should -BeTrue
        $row.Json | Should -BeNullOrEmpty
        { Get-UserProfile -UserId del1 -ErrorAction Stop } | Should -Throw -ErrorId 'UserProfileNotFound,WriteBehind.Commands.GetUserProfileCommand'
    }
}

Describe 'Chunks in flight: producers keep the next round trip going while the pipeline fills the next chunk' {
    # The producers send 1000 records per script call and keep up to 4 calls in flight; these tests pipe several
    # chunks' worth and check the order, the per-record errors and the queue-full refusals chunk by chunk.
    BeforeEach {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
        # 3500 records over 700 ids, five rounds: each id appears in several chunks
        $script:Records = foreach ($i in 0..3499) { [pscustomobject]@{ UserId = "o$($i % 700)"; Profile = "{`"round`":$([Math]::Floor($i / 700)),`"i`":$i}" } }
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'Set-UserProfile: the queue holds every record in pipeline order across chunks, and the last write of each id wins' {
        $script:Records | Set-UserProfile
        $expected = foreach ($i in 0..3499) { "set:user:o$($i % 700):$([Math]::Floor($i / 700) + 1)" }
        $queued = Get-RawList "$($script:P)write_queue"
        [array]::Reverse($queued)
        $queued | Should -BeExactly $expected
        foreach ($id in 0, 1, 349, 699) {
            Get-RawString "$($script:P)user_profiles" "user:o$id" | Should -BeExactly "{`"round`":4,`"i`":$(2800 + $id)}"
            Get-RawString "$($script:P)user_profiles:versions" "user:o$id" | Should -Be '5'
        }
        $r = Invoke-WriteBehindFlush
        $r.Dequeued | Should -Be 3500
        (Get-StoreRow $script:StorePath 'o5').Json | Should -BeExactly '{"round":4,"i":2805}'
        (Get-StoreRow $script:StorePath 'o5').Version | Should -Be 5
    }
    It 'Set-UserProfile -PassThru: one object per record, in pipeline order, with its own version' {
        $out = @($script:Records | Set-UserProfile -PassThru)
        $out.Count | Should -Be 3500
        @($out | ForEach-Object UserId) | Should -BeExactly @($script:Records | ForEach-Object UserId)
        @($out[0, 700, 3499] | ForEach-Object Version) | Should -Be @(1, 2, 5)
    }
    It 'Add-WriteQueueItem: the items are queued in pipeline order across chunks, and flush in that order' {
        $script:Records | ForEach-Object { [pscustomobject]@{ UserId = $_.UserId; Update = $_.Profile } } | Add-WriteQueueItem
        $queued = Get-RawList "$($script:P)write_queue"
        [array]::Reverse($queued)
        $queued | Should -BeExactly @($script:Records | ForEach-Object { "update:user:$($_.UserId):$($_.Profile)" })
        $null = Invoke-WriteBehindFlush
        Get-RawString "$($script:P)user_profiles" 'user:o3' | Should -BeExactly '{"round":4,"i":2803}'
    }
    It 'Remove-UserProfile: tombstones in pipeline order across chunks' {
        $ids = foreach ($i in 0..2499) { "r$($i % 1200)" }
        $ids | Remove-UserProfile -Confirm:$false
        $queued = Get-RawList "$($script:P)write_queue"
        [array]::Reverse($queued)
        $queued | Should -BeExactly @(foreach ($i in 0..2499) { "delete:user:r$($i % 1200):$([Math]::Floor($i / 1200) + 1)" })
    }
    It 'after SCRIPT FLUSH (a failover to a server without the scripts) the chunks still land in order' -Skip:($env:WRITEBEHIND_TEST_SERVER_KIND -eq 'Garnet') {
        $null = $script:Db.Execute('SCRIPT', [object[]]@('FLUSH'))
        $script:Records | Set-UserProfile
        $queued = Get-RawList "$($script:P)write_queue"
        [array]::Reverse($queued)
        $queued | Should -BeExactly @(foreach ($i in 0..3499) { "set:user:o$($i % 700):$([Math]::Floor($i / 700) + 1)" })
    }
    It 'a bad record in the middle of a stream gets its own error with its own target; every other record lands, in order' {
        $records = [Collections.Generic.List[object]]::new($script:Records)
        $records[1500] = [pscustomobject]@{ UserId = 'bad id'; Profile = '{"a":1}' }
        $records[2700] = [pscustomobject]@{ UserId = 'o100'; Profile = '{"a":' }
        $errs = $null
        $records | Set-UserProfile -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs.Count | Should -Be 2
        $errs[0].FullyQualifiedErrorId | Should -Be 'InvalidUserId,WriteBehind.Commands.SetUserProfileCommand'
        $errs[0].TargetObject | Should -Be 'bad id'
        $errs[1].FullyQualifiedErrorId | Should -Be 'InvalidProfileJson,WriteBehind.Commands.SetUserProfileCommand'
        $errs[1].TargetObject | Should -Be 'o100'
        $good = @($records | Where-Object { $_.UserId -ne 'bad id' -and $_.Profile -ne '{"a":' })
        $good.Count | Should -Be 3498
        $queued = Get-RawList "$($script:P)write_queue"
        [array]::Reverse($queued)
        $version = @{}
        $queued | Should -BeExactly @($good | ForEach-Object { $version[$_.UserId]++; "set:user:$($_.UserId):$($version[$_.UserId])" })
    }
    It 'a queue past its high-water mark: the chunks that fit land whole, every record of the others gets its own QueueFull' {
        Disconnect-WriteBehind
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P -HighWaterMark 2500
        $records = foreach ($i in 0..4999) { [pscustomobject]@{ UserId = "f$i"; Profile = "{`"i`":$i}" } }
        $errs = $null
        $records | Set-UserProfile -ErrorVariable errs -ErrorAction SilentlyContinue
        # chunks 1 and 2 fit (2000 <= 2500); chunks 3, 4 and 5 would pass the mark and write nothing
        $errs.Count | Should -Be 3000
        @($errs | ForEach-Object FullyQualifiedErrorId | Sort-Object -Unique) | Should -Be 'QueueFull,WriteBehind.Commands.SetUserProfileCommand'
        @($errs | ForEach-Object TargetObject) | Should -BeExactly @(2000..4999 | ForEach-Object { "f$_" })
        $script:Db.HashLength("$($script:P)user_profiles") | Should -Be 2000
        $queued = Get-RawList "$($script:P)write_queue"
        [array]::Reverse($queued)
        $queued | Should -BeExactly @(0..1999 | ForEach-Object { "set:user:f$($_):1" })
        # 1500 patches: the first chunk (1000) would pass the mark, the second (500) fits: refused per chunk, not per stream
        $addErrs = $null
        0..1499 | ForEach-Object { [pscustomobject]@{ UserId = "g$_"; Update = '{"a":1}' } } | Add-WriteQueueItem -ErrorVariable addErrs -ErrorAction SilentlyContinue
        $addErrs.Count | Should -Be 1000
        @($addErrs | ForEach-Object TargetObject) | Should -BeExactly @(0..999 | ForEach-Object { "update:user:g$($_):{`"a`":1}" })
        $queued = Get-RawList "$($script:P)write_queue"
        $queued.Count | Should -Be 2500
        $queued[0] | Should -BeExactly 'update:user:g1499:{"a":1}'
        $queued[499] | Should -BeExactly 'update:user:g1000:{"a":1}'
    }
    It 'Get-UserProfile -UserId: profiles come out in the order asked, over chunks, cached or read through from the store' {
        0..1199 | ForEach-Object { [pscustomobject]@{ UserId = "q$_"; Profile = "{`"i`":$_}" } } | Set-UserProfile
        $null = Invoke-WriteBehindFlush
        # every third id only in the store: a miss read through, in its place
        0..1199 | Where-Object { $_ % 3 -eq 0 } | ForEach-Object { $null = $script:Db.HashDelete("$($script:P)user_profiles", "user:q$_") }
        $ask = @(1199..0 | ForEach-Object { "q$_" })
        $out = @($ask | Get-UserProfile)
        @($out | ForEach-Object UserId) | Should -BeExactly $ask
        @($out | Where-Object Source -eq 'Store').Count | Should -Be 400
        $out[0].Json | Should -BeExactly '{"i":1199}'
    }
}

Describe 'Argument completion' {
    BeforeAll {
        $script:P = New-TestPrefix
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $script:P
        foreach ($id in 'comp-alpha', 'comp-beta', 'other-1') { Set-UserProfile -UserId $id -Profile '{"a":1}' -CacheOnly }
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'completes -UserId from the cached ids that start with what was typed' {
        $line = 'Get-UserProfile -UserId comp'
        $matches = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches
        @($matches | ForEach-Object CompletionText) | Should -Be @('comp-alpha', 'comp-beta')
    }
    It 'takes a typed * literally, not as a pattern' {
        $line = 'Remove-UserProfile -UserId co*'
        $matches = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches
        @($matches | Where-Object CompletionText -like 'comp-*').Count | Should -Be 0
    }
}

Describe 'Poison items go to the dead-letter list' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
        $script:Poison = @(
            'updat:user:1001:{"a":1}'
            'update:user::{"a":1}'
            'update:user:10 01:{"a":1}'
            'update:user:1001:{"a":}'
            'update:user:1001:[1,2]'
            ''
            'update:user:1001:{"a":1} trailing'
            'update:user:1001:{"a":1,"a":2}'
            'update:user:1001:{"n":{"b":1,"b":2}}'
            'set:user:1001:99999999999999999999'
            'delete:user:1001:007'
            'set:user:77:3'
        )
        # follows the grammar, so Add-WriteQueueItem takes it; the flush finds nothing to persist
        $script:NothingToPersist = 'set:user:77:3'
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        Clear-WriteQueue -Confirm:$false | Out-Null
        $i = 0
        foreach ($item in $script:Poison) {
            $null = Invoke-Raw 'LPUSH' @("$($script:P)write_queue", $item)
            $i++
            $null = Invoke-Raw 'LPUSH' @("$($script:P)write_queue", "update:user:100$(1 + $i % 2):{`"n`":`"$i`"}")
        }
        $script:Result = Invoke-WriteBehindFlush -BatchSize 5
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'dead-letters every malformed item with its original text' {
        $dead = @(Get-WriteBehindDeadLetter)
        $dead.Count | Should -Be $script:Poison.Count
        # oldest first, exactly as pushed
        @($dead | ForEach-Object Item) | Should -BeExactly $script:Poison
        Get-RawList "$($script:P)write_queue:dead" | Sort-Object | Should -BeExactly ($script:Poison | Sort-Object)
    }
    It 'gives each a reason' {
        foreach ($d in Get-WriteBehindDeadLetter) { $d.Reason | Should -Not -BeNullOrEmpty; $d.Attempts | Should -BeGreaterOrEqual 1 }
    }
    It 'gives the reason Add-WriteQueueItem gives for the same text, word for word (one definition of valid)' {
        foreach ($d in Get-WriteBehindDeadLetter) {
            if ($d.Item -eq $script:NothingToPersist) {
                $d.Reason | Should -BeExactly 'no cached profile and no version for user 77: nothing to persist'
                continue
            }
            $err = $null
            Add-WriteQueueItem -Item $d.Item -ErrorVariable err -ErrorAction SilentlyContinue
            $err.Count | Should -Be 1 -Because "Add-WriteQueueItem refuses '$($d.Item)'"
            $err[0].FullyQualifiedErrorId | Should -Be 'InvalidQueueItem,WriteBehind.Commands.AddWriteQueueItemCommand'
            $err[0].Exception.Message.EndsWith(": $($d.Reason).") | Should -BeTrue -Because "the flush said '$($d.Reason)', the cmdlet '$($err[0].Exception.Message)'"
        }
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 0
    }
    It 'persists the good items around them' {
        Get-RawString "$($script:P)user_profiles" 'user:1001' | Should -BeExactly '{"name":"Alice","age":"30","n":"12"}'
        Get-RawString "$($script:P)user_profiles" 'user:1002' | Should -BeExactly '{"name":"Bob","age":"25","n":"11"}'
        (Get-StoreRow $script:StorePath '1001').Json | Should -BeExactly '{"name":"Alice","age":"30","n":"12"}'
        Get-StoreRow $script:StorePath '77' | Should -BeNullOrEmpty
    }
    It 'accounts for every item: dequeued = persisted + coalesced + dead-lettered' {
        $r = $script:Result
        $r.Dequeued | Should -Be 24
        $r.DeadLettered | Should -Be 12
        ($r.Persisted + $r.Coalesced + $r.DeadLettered) | Should -Be $r.Dequeued
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 0
    }
}

Describe 'Bad input is refused with a stable ErrorId and writes nothing' {
    BeforeEach {
        $script:P = New-TestPrefix
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $script:P
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'invalid JSON profile' {
        { Set-UserProfile -UserId 5 -Profile '{"name":' -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidProfileJson,WriteBehind.Commands.SetUserProfileCommand'
        $script:Db.KeyExists("$($script:P)user_profiles") | Should -BeFalse
        $script:Db.KeyExists("$($script:P)write_queue") | Should -BeFalse
    }
    It 'JSON that is not an object' {
        { Set-UserProfile -UserId 5 -Profile '[1,2]' -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidProfileJson,WriteBehind.Commands.SetUserProfileCommand'
    }
    It 'user id with a colon' {
        { Set-UserProfile -UserId 'a:b' -Profile '{"a":1}' -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidUserId,WriteBehind.Commands.SetUserProfileCommand'
        { Add-WriteQueueItem -UserId 'a:b' -Update '{"a":1}' -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidUserId,WriteBehind.Commands.AddWriteQueueItemCommand'
        $script:Db.KeyExists("$($script:P)user_profiles") | Should -BeFalse
        $script:Db.KeyExists("$($script:P)write_queue") | Should -BeFalse
    }
    It 'raw items piped as strings are checked and pushed; the bad one alone is refused' {
        $err = $null
        'update:user:p1:{"a":1}', 'nonsense', 'delete:user:p2' | Add-WriteQueueItem -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -Be 'InvalidQueueItem,WriteBehind.Commands.AddWriteQueueItemCommand'
        Get-RawList "$($script:P)write_queue" | Should -BeExactly @('delete:user:p2', 'update:user:p1:{"a":1}')
    }
    It 'a raw item that breaks the grammar' {
        { Add-WriteQueueItem -Item 'update:user:1:{oops' -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidQueueItem,WriteBehind.Commands.AddWriteQueueItemCommand'
        $script:Db.KeyExists("$($script:P)write_queue") | Should -BeFalse
    }
    It 'one bad record in a pipeline does not stop the good ones' {
        $errs = $null
        @(
            [pscustomobject]@{ UserId = 'g1'; Profile = '{"a":1}' }
            [pscustomobject]@{ UserId = 'bad id'; Profile = '{"a":1}' }
            [pscustomobject]@{ UserId = 'g2'; Profile = '{"a":2}' }
        ) | Set-UserProfile -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -Be 'InvalidUserId,WriteBehind.Commands.SetUserProfileCommand'
        $script:Db.HashLength("$($script:P)user_profiles") | Should -Be 2
    }
    It 'a queue past its high-water mark refuses producers with LimitsExceeded and writes nothing' {
        Disconnect-WriteBehind
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $script:P -HighWaterMark 3
        1..3 | ForEach-Object { Add-WriteQueueItem -UserId "h$_" -Update '{"a":1}' }
        $err = $null
        Set-UserProfile -UserId h9 -Profile '{"a":1}' -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'QueueFull,WriteBehind.Commands.SetUserProfileCommand'
        $err[0].CategoryInfo.Category | Should -Be 'LimitsExceeded'
        $script:Db.HashExists("$($script:P)user_profiles", 'user:h9') | Should -BeFalse
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 3
    }
}

Describe 'Connection failures' {
    It 'Redis unreachable: one terminating error naming the endpoint, never the password' {
        $port = & { $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $l.Start(); $p = $l.LocalEndpoint.Port; $l.Stop(); $p }
        $secret = 'Sup3r-S3cret-Pw'
        $cred = [pscredential]::new('default', (ConvertTo-SecureString $secret -AsPlainText -Force))
        $err = $null
        try { Connect-WriteBehind -Redis "127.0.0.1:$port,connectTimeout=1500" -Credential $cred -ErrorAction Stop } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -Be 'RedisUnavailable,WriteBehind.Commands.ConnectWriteBehindCommand'
        $err.CategoryInfo.Category | Should -Be 'ConnectionError'
        $err.Exception.Message | Should -Match ([regex]::Escape("127.0.0.1:$port"))
        ($err | Out-String) | Should -Not -Match $secret
        $err.Exception.ToString() | Should -Not -Match $secret
    }
    It 'a password inside -Redis is refused (PasswordInParameter) and not repeated' {
        $port = & { $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $l.Start(); $p = $l.LocalEndpoint.Port; $l.Stop(); $p }
        $err = $null
        $redis = "127.0.0.1:$port,password=Inline-Pw-42,connectTimeout=1500"
        try { Connect-WriteBehind -Redis $redis -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'PasswordInParameter,WriteBehind.Commands.ConnectWriteBehindCommand'
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $err.Exception.Message | Should -Match 'WRITEBEHIND_REDIS_PASSWORD'
        ($err | Out-String) | Should -Not -Match 'Inline-Pw-42'
        $err.Exception.ToString() | Should -Not -Match 'Inline-Pw-42'
    }
    It 'a password inside a redis:// URI in -Redis is refused (PasswordInParameter) and not repeated' {
        $err = $null
        $redis = 'redis://app:Uri-Pw-43@127.0.0.1:1'
        try { Connect-WriteBehind -Redis $redis -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'PasswordInParameter,WriteBehind.Commands.ConnectWriteBehindCommand'
        ($err | Out-String) | Should -Not -Match 'Uri-Pw-43'
        $err.Exception.ToString() | Should -Not -Match 'Uri-Pw-43'
    }
    It 'a URI of another scheme in -Redis (a store''s, http://) is refused at once (InvalidConfiguration), not dialled as a host' {
        foreach ($value in 'postgres://app@127.0.0.1:5432/profiles', 'http://127.0.0.1:6379') {
            $err = $null
            try { Connect-WriteBehind -Redis $value -ErrorAction Stop } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -Be 'InvalidConfiguration,WriteBehind.Commands.ConnectWriteBehindCommand'
            $err.Exception.Message | Should -Match 'not a Redis one'
            $err.Exception.Message | Should -Not -Match '127\.0\.0\.1'
        }
    }
    It 'a redis:// URI in -Redis connects like host:port' {
        $p = New-TestPrefix
        try {
            $hostPort = $script:RedisEndpoint.Split(',')[0]
            $c = Connect-WriteBehind -Redis "redis://$hostPort" -Store "sqlite://$(New-TestStore)" -KeyPrefix $p -PassThru
            $c.RedisEndpoint | Should -Be $hostPort
            Set-UserProfile -UserId 1 -Profile '{"a":"1"}'
            Get-RawString "$($p)user_profiles" 'user:1' | Should -BeExactly '{"a":"1"}'
        } finally { Disconnect-WriteBehind; Remove-TestKeys $p }
    }
    It 'a password inside $env:WRITEBEHIND_REDIS is allowed, and not shown when Redis is unreachable' {
        $port = & { $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $l.Start(); $p = $l.LocalEndpoint.Port; $l.Stop(); $p }
        $saved = $env:WRITEBEHIND_REDIS
        $env:WRITEBEHIND_REDIS = "127.0.0.1:$port,password=Env-Pw-43,connectTimeout=1500"
        $err = $null
        try { Connect-WriteBehind -ErrorAction Stop } catch { $err = $_ } finally { $env:WRITEBEHIND_REDIS = $saved }
        $err.FullyQualifiedErrorId | Should -Be 'RedisUnavailable,WriteBehind.Commands.ConnectWriteBehindCommand'
        ($err | Out-String) | Should -Not -Match 'Env-Pw-43'
        $err.Exception.ToString() | Should -Not -Match 'Env-Pw-43'
    }
    It 'cmdlets without a connection use $env:WRITEBEHIND_REDIS' {
        $p = New-TestPrefix
        $env:WRITEBEHIND_REDIS = $script:RedisEndpoint
        $env:WRITEBEHIND_KEY_PREFIX = $p
        $env:WRITEBEHIND_STORE = "sqlite://$(New-TestStore)"
        try {
            Disconnect-WriteBehind
            Set-UserProfile -UserId e1 -Profile '{"env":true}'
            Get-RawString "$($p)user_profiles" 'user:e1' | Should -BeExactly '{"env":true}'
        } finally {
            Remove-Item Env:WRITEBEHIND_REDIS, Env:WRITEBEHIND_KEY_PREFIX, Env:WRITEBEHIND_STORE
            Remove-TestKeys $p
        }
    }
}

Describe "Round trips of the module's own objects" {
    BeforeEach {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
        $script:Original = '{"name":"Zed", "age":40,"big":12345678901234567890,"f":1.0,"n":{"a":1.0,"b":"x"}}'
        Set-UserProfile -UserId 5010 -Profile $script:Original
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'Get-UserProfile | Set-UserProfile after editing a field stores the edited profile, not the object around it' {
        $p = Get-UserProfile -UserId 5010
        $p.Profile.age = 41
        $p.Profile.n.b = 'y'
        $p | Set-UserProfile
        # Every field left alone keeps its bytes (12345678901234567890, 1.0), in its place.
        Get-RawString "$($script:P)user_profiles" 'user:5010' | Should -BeExactly '{"name":"Zed","age":41,"big":12345678901234567890,"f":1.0,"n":{"a":1.0,"b":"y"}}'
        Get-RawString "$($script:P)user_profiles:versions" 'user:5010' | Should -Be '2'
    }
    It 'piped back unchanged, the profile is stored byte for byte; removed fields go, added ones come last' {
        Get-UserProfile -UserId 5010 | Set-UserProfile
        Get-RawString "$($script:P)user_profiles" 'user:5010' | Should -BeExactly $script:Original
        $p = Get-UserProfile -UserId 5010
        $p.Profile.PSObject.Properties.Remove('f')
        $p.Profile | Add-Member -NotePropertyName city -NotePropertyValue 'Oslo'
        $p | Set-UserProfile
        Get-RawString "$($script:P)user_profiles" 'user:5010' | Should -BeExactly '{"name":"Zed","age":40,"big":12345678901234567890,"n":{"a":1.0,"b":"x"},"city":"Oslo"}'
    }
    It 'Set-UserProfile -PassThru output, an Export-Clixml copy and Select-Object UserId, Json round-trip too' {
        $p = Set-UserProfile -UserId 5011 -Profile '{"a":1}' -PassThru
        $p.Profile.a = 2
        $p | Set-UserProfile
        Get-RawString "$($script:P)user_profiles" 'user:5011' | Should -BeExactly '{"a":2}'
        $xml = Join-Path ([IO.Path]::GetTempPath()) "wb-$([guid]::NewGuid().ToString('N')).xml"
        Get-UserProfile -UserId 5010 | Export-Clixml $xml
        $copy = Import-Clixml $xml
        Remove-Item $xml
        $copy.Profile.age = 42
        $copy | Set-UserProfile
        Get-RawString "$($script:P)user_profiles" 'user:5010' | Should -BeExactly '{"name":"Zed","age":42,"big":12345678901234567890,"f":1.0,"n":{"a":1.0,"b":"x"}}'
        Get-UserProfile -UserId 5010 | Select-Object UserId, Json | Set-UserProfile -UserId 5012
        Get-RawString "$($script:P)user_profiles" 'user:5012' | Should -BeExactly (Get-RawString "$($script:P)user_profiles" 'user:5010')
    }
    It 'a CSV of the default output (Export-Csv writes its Profile as "@{...}") reads back from its Json column' {
        $csv = Join-Path ([IO.Path]::GetTempPath()) "wb-$([guid]::NewGuid().ToString('N')).csv"
        Get-UserProfile -UserId 5010 | Export-Csv -Path $csv
        (Get-Content $csv -Raw) | Should -Match '"@\{'
        Import-Csv $csv | Set-UserProfile -UserId 5015
        Remove-Item $csv
        Get-RawString "$($script:P)user_profiles" 'user:5015' | Should -BeExactly $script:Original
    }
    It 'Profile holds the fields in order and typed: long, decimal past long, double for a fraction or exponent; nested objects and arrays; of names equal but for case the first' {
        Set-UserProfile -UserId 5020 -Profile '{"s":"x\u00e9\n","i":40,"neg":-7,"big":12345678901234567890,"f":1.0,"e":1e3,"t":true,"z":null,"arr":[1,"a",[2]],"o":{"k":{"deep":"v"}},"A":1,"a":2,"lone":"\ud800"}'
        $p = (Get-UserProfile -UserId 5020).Profile
        @($p.PSObject.Properties.Name) | Should -Be @('s', 'i', 'neg', 'big', 'f', 'e', 't', 'z', 'arr', 'o', 'A', 'lone')
        $p.s | Should -BeExactly "x$([char]0xE9)`n"
        $p.i | Should -BeOfType [long]
        $p.neg | Should -Be -7
        $p.big | Should -BeOfType [decimal]
        $p.big | Should -Be ([decimal]::Parse('12345678901234567890'))
        $p.f | Should -BeOfType [double]
        $p.e | Should -BeOfType [double]
        $p.e | Should -Be 1000
        $p.t | Should -BeTrue
        $p.z | Should -BeNullOrEmpty
        $p.arr.Count | Should -Be 3
        $p.arr[1] | Should -BeExactly 'a'
        $p.arr[2][0] | Should -Be 2
        $p.o.k.deep | Should -BeExactly 'v'
        $p.A | Should -Be 1
        $p.lone | Should -BeExactly ([string][char]0xD800)
    }
    It 'a value a raw writer stored as no JSON shows its Json and no Profile' {
        $null = $script:Db.HashSet("$($script:P)user_profiles", 'user:5021', '{"a":1')
        $p = Get-UserProfile -UserId 5021
        $p.Json | Should -BeExactly '{"a":1'
        $p.Profile | Should -BeNullOrEmpty
    }
    It 'Get-UserProfile | Remove-UserProfile removes the profiles it lists' {
        Set-UserProfile -UserId 5013 -Profile '{"a":1}'
        Get-UserProfile -UserId 5010, 5013 | Remove-UserProfile -Confirm:$false
        $script:Db.HashLength("$($script:P)user_profiles") | Should -Be 0
        (Get-RawList "$($script:P)write_queue")[0..1] | Should -BeExactly @('delete:user:5013:2', 'delete:user:5010:2')
    }
    It '-Flat gives flat rows: Export-Csv writes a column per field, and a CSV of string fields reads back' {
        Set-UserProfile -UserId 5014 -Profile '{"name":"Amy","age":"33"}'
        $rows = @(Get-UserProfile -UserId 5014 -Flat)
        $rows[0].PSObject.TypeNames[0] | Should -Be 'WriteBehind.UserProfileRow'
        @($rows[0].PSObject.Properties.Name) | Should -Be @('UserId', 'name', 'age')
        $csv = Join-Path ([IO.Path]::GetTempPath()) "wb-$([guid]::NewGuid().ToString('N')).csv"
        Get-UserProfile -UserId 5014 -Flat | Export-Csv -Path $csv
        $text = Get-Content $csv -Raw
        $text | Should -Not -Match '@\{'
        $text | Should -Match '"5014","Amy","33"'
        Remove-UserProfile -UserId 5014 -Confirm:$false
        Import-Csv $csv | Set-UserProfile
        Remove-Item $csv
        Get-RawString "$($script:P)user_profiles" 'user:5014' | Should -BeExactly '{"name":"Amy","age":"33"}'
    }
}

Describe 'Store values: only the documented forms' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:Dir = Split-Path (New-TestStore)
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P; Remove-Item Env:WRITEBEHIND_STORE, Env:WRITEBEHIND_REDIS, Env:WRITEBEHIND_KEY_PREFIX -ErrorAction SilentlyContinue }
    AfterAll { Pop-Location -ErrorAction SilentlyContinue }

    It 'a connection string is refused with InvalidStoreUri, not echoed, and creates no file anywhere' {
        Push-Location $script:Dir
        try {
            $value = 'Server=db01;Database=profiles;Trusted_Connection=True;Password=Hunter2-' + [guid]::NewGuid().ToString('N').Substring(0, 6)
            $err = $null
            try { Connect-WriteBehind -Redis $script:RedisEndpoint -Store $value -KeyPrefix $script:P } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -Be 'InvalidStoreUri,WriteBehind.Commands.ConnectWriteBehindCommand'
            $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
            $err.Exception.Message | Should -Match 'sqlite:///'
            ($err | Out-String) | Should -Not -Match 'Hunter2'
            "$($err.TargetObject)" | Should -Not -Match 'Hunter2'
            @(Get-ChildItem $script:Dir -Filter 'Server=*').Count | Should -Be 0
            Test-Path (Join-Path ([Environment]::CurrentDirectory) $value) | Should -BeFalse
        } finally { Pop-Location }
    }
    It 'a bare word, an unknown scheme and a path that is a folder are refused too' {
        foreach ($value in 'profiles', 'mssql://app@db01/profiles', $script:Dir) {
            { Connect-WriteBehind -Redis $script:RedisEndpoint -Store $value -KeyPrefix $script:P } | Should -Throw -ErrorId 'InvalidStoreUri,WriteBehind.Commands.ConnectWriteBehindCommand'
        }
    }
    It "a relative path resolves against PowerShell's location, not the process's current directory" {
        [Environment]::CurrentDirectory | Should -Not -Be $script:Dir
        Push-Location $script:Dir
        try {
            $c = Connect-WriteBehind -Redis $script:RedisEndpoint -Store 'rel.db' -KeyPrefix $script:P -PassThru
            $c.StoreUri | Should -BeExactly "sqlite://$(Join-Path $script:Dir 'rel.db')"
            $c2 = Connect-WriteBehind -Redis $script:RedisEndpoint -Store 'sqlite:rel2.sqlite' -KeyPrefix $script:P -PassThru
            $c2.StoreUri | Should -BeExactly "sqlite://$(Join-Path $script:Dir 'rel2.sqlite')"
            Set-UserProfile -UserId r1 -Profile '{"a":1}'
            Invoke-WriteBehindFlush | Out-Null
        } finally { Pop-Location }
        Test-Path (Join-Path $script:Dir 'rel2.sqlite') | Should -BeTrue
        Test-Path (Join-Path ([Environment]::CurrentDirectory) 'rel2.sqlite') | Should -BeFalse
        # From a location of another provider, against the current file-system location.
        Push-Location $script:Dir; Set-Location Env:
        try {
            (Connect-WriteBehind -Redis $script:RedisEndpoint -Store 'rel3.db' -KeyPrefix $script:P -PassThru).StoreUri | Should -BeExactly "sqlite://$(Join-Path $script:Dir 'rel3.db')"
            { Connect-WriteBehind -Redis $script:RedisEndpoint -Store 'Env:\x.db' -KeyPrefix $script:P } | Should -Throw -ErrorId 'InvalidStoreUri*'
        } finally { Pop-Location }
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(Join-Path $script:Dir 'rel2.sqlite')" -KeyPrefix $script:P
        # One display form everywhere: status, the connection, the store's own description.
        (Get-WriteBehindStatus).Store | Should -BeExactly "sqlite://$(Join-Path $script:Dir 'rel2.sqlite')"
    }
    It 'an explicit path in a folder that does not exist is an error, and nothing is created' {
        $missing = Join-Path $script:Dir 'no-such-folder'
        $err = $null
        try { Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$missing/x.db" -KeyPrefix $script:P } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'InvalidStoreUri,WriteBehind.Commands.ConnectWriteBehindCommand'
        $err.Exception.Message | Should -Match ([regex]::Escape($missing))
        Test-Path $missing | Should -BeFalse
    }
    It 'WRITEBEHIND_STORE is checked the same way by the implicit connection' {
        $env:WRITEBEHIND_REDIS = $script:RedisEndpoint
        $env:WRITEBEHIND_KEY_PREFIX = $script:P
        $env:WRITEBEHIND_STORE = 'Data Source=profiles.db;Password=Env-Secret-77'
        Disconnect-WriteBehind
        $err = $null
        try { Set-UserProfile -UserId e1 -Profile '{"a":1}' -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'InvalidStoreUri,WriteBehind.Commands.SetUserProfileCommand'
        $err.Exception.Message | Should -BeLike 'WRITEBEHIND_STORE: *' -Because 'nobody typed the value: the message says where it came from'
        ($err | Out-String) | Should -Not -Match 'Env-Secret-77'
        $script:Db.HashExists("$($script:P)user_profiles", 'user:e1') | Should -BeFalse
        # A relative one resolves against PowerShell's location.
        $env:WRITEBEHIND_STORE = 'env-rel.db'
        Push-Location $script:Dir
        try {
            Set-UserProfile -UserId e2 -Profile '{"a":2}'
            Invoke-WriteBehindFlush | Out-Null
        } finally { Pop-Location }
        Test-Path (Join-Path $script:Dir 'env-rel.db') | Should -BeTrue
    }
}

Describe 'An application database with a user_profiles table of its own (SQLite)' {
    BeforeAll {
        $script:P = New-TestPrefix
        function New-AppStore {
            $path = New-TestStore
            $conn = [Microsoft.Data.Sqlite.SqliteConnection]::new("Data Source=$path;Pooling=False")
            $conn.Open()
            try {
                $cmd = $conn.CreateCommand()
                $cmd.CommandText = "CREATE TABLE user_profiles(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER); INSERT INTO user_profiles VALUES (1, 'app row', 30);"
                $null = $cmd.ExecuteNonQuery()
            } finally { $conn.Dispose() }
            $path
        }
        function Get-AppTables([string] $Path) {
            $conn = [Microsoft.Data.Sqlite.SqliteConnection]::new("Data Source=$Path;Mode=ReadOnly;Pooling=False")
            $conn.Open()
            try {
                $cmd = $conn.CreateCommand()
                $cmd.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                $r = $cmd.ExecuteReader(); $names = @(); while ($r.Read()) { $names += $r.GetString(0) }; $names
            } finally { $conn.Dispose() }
        }
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P; Remove-Item Env:WRITEBEHIND_STORE, Env:WRITEBEHIND_REDIS, Env:WRITEBEHIND_KEY_PREFIX -ErrorAction SilentlyContinue }

    It 'Connect-WriteBehind refuses it with StoreTableMismatch, naming the table and the missing columns, and adds nothing' {
        $path = New-AppStore
        $err = $null
        try { Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$path" -KeyPrefix $script:P } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'StoreTableMismatch,WriteBehind.Commands.ConnectWriteBehindCommand'
        $err.CategoryInfo.Category | Should -Be 'InvalidData'
        $err.Exception.Message | Should -Match 'user_profiles'
        $err.Exception.Message | Should -Match 'no columns user_id, json, version, deleted, updated_at'
        $err.Exception.Message | Should -Match 'name is NOT NULL without a default'
        Get-AppTables $path | Should -Be @('user_profiles')
    }
    It 'the implicit connection refuses it at the first store use, before writing anything' {
        $path = New-AppStore
        $env:WRITEBEHIND_REDIS = $script:RedisEndpoint
        $env:WRITEBEHIND_KEY_PREFIX = $script:P
        $env:WRITEBEHIND_STORE = "sqlite://$path"
        Disconnect-WriteBehind
        Set-UserProfile -UserId a1 -Profile '{"a":1}'   # the cache and queue work without the store
        { Invoke-WriteBehindFlush -ErrorAction Stop } | Should -Throw -ErrorId 'StoreTableMismatch*'
        $err = $null
        Get-UserProfile -UserId not-cached -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'StoreTableMismatch,WriteBehind.Commands.GetUserProfileCommand'
        $err.Count | Should -Be 1
        Get-AppTables $path | Should -Be @('user_profiles')
    }
    It "a table of the module's own shape (made by hand from the README's SQL) is used" {
        $path = New-TestStore
        $conn = [Microsoft.Data.Sqlite.SqliteConnection]::new("Data Source=$path;Pooling=False")
        $conn.Open()
        try {
            $cmd = $conn.CreateCommand()
            $cmd.CommandText = 'CREATE TABLE user_profiles(user_id TEXT PRIMARY KEY NOT NULL, json TEXT NULL, version INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL, note TEXT)'
            $null = $cmd.ExecuteNonQuery()
        } finally { $conn.Dispose() }
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$path" -KeyPrefix $script:P
        Set-UserProfile -UserId h1 -Profile '{"a":1}'
        (Invoke-WriteBehindFlush).Persisted | Should -Be 1
        (Get-StoreRow $path 'h1').Json | Should -BeExactly '{"a":1}'
    }
}

Describe 'Get-UserProfile says where it looked' {
    BeforeEach {
        $script:P = New-TestPrefix
        $script:StorePath = New-TestStore
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -KeyPrefix $script:P
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It '-FromStore: not found "in the store" (with the delete it holds), not "in the cache or the store"' {
        $err = $null
        Get-UserProfile -UserId gone -FromStore -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'UserProfileNotFound,WriteBehind.Commands.GetUserProfileCommand'
        $err[0].Exception.Message | Should -BeExactly "No profile for user id 'gone' in the store."
        Set-UserProfile -UserId d1 -Profile '{"a":1}'
        Remove-UserProfile -UserId d1 -Confirm:$false
        Invoke-WriteBehindFlush | Out-Null
        Get-UserProfile -UserId d1 -FromStore -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].Exception.Message | Should -BeExactly "No profile for user id 'd1' in the store (the store holds its delete, version 2)."
        Get-UserProfile -UserId gone -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].Exception.Message | Should -BeExactly "No profile for user id 'gone' in the cache or the store."
    }
    It 'a store error is its own error, without a "not found" for each id besides' {
        Set-UserProfile -UserId c1 -Profile '{"a":1}' -CacheOnly
        Remove-Item -Recurse -Force (Split-Path $script:StorePath)   # the store's folder is gone
        $err = $null
        $out = @(Get-UserProfile -UserId c1, m1, m2 -ErrorVariable err -ErrorAction SilentlyContinue)
        $out.UserId | Should -Be @('c1')
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -Be 'StoreUnavailable,WriteBehind.Commands.GetUserProfileCommand'
        Test-Path (Split-Path $script:StorePath) | Should -BeFalse
    }
    It 'a bad -Update is called an update in its error, not a profile' {
        $err = $null
        Add-WriteQueueItem -UserId u1 -Update '{"a":' -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'InvalidProfileJson,WriteBehind.Commands.AddWriteQueueItemCommand'
        $err[0].Exception.Message | Should -Match '^The update is not a valid JSON object'
    }
}
