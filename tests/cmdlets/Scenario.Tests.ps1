# The seed's four steps, with the exact literal values, on the default key names.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $script:StorePath = New-TestStore
    foreach ($k in 'user_profiles', 'write_queue', 'user_profiles:versions', 'write_queue:leases', 'write_queue:dead', 'write_queue:dead:info', 'write_queue:stats') { $null = $script:Db.KeyDelete($k) }
    $script:Conn = Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$($script:StorePath)" -PassThru
}
AfterAll {
    Disconnect-WriteBehind
    foreach ($k in 'user_profiles', 'write_queue', 'user_profiles:versions', 'write_queue:leases', 'write_queue:dead', 'write_queue:dead:info', 'write_queue:stats') { $null = $script:Db.KeyDelete($k) }
}

Describe 'The seed scenario' {
    It 'step 1: user_profiles holds the two JSON texts byte for byte' {
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        Get-RawString 'user_profiles' 'user:1001' | Should -BeExactly '{"name":"Alice","age":"30"}'
        Get-RawString 'user_profiles' 'user:1002' | Should -BeExactly '{"name":"Bob","age":"25"}'
        (Invoke-Raw 'HLEN' @('user_profiles')).ToString() | Should -Be '2'
    }
    It 'step 2: Clear-WriteQueue leaves write_queue empty and says what it dropped' {
        $r = Clear-WriteQueue -Confirm:$false
        $r.Dropped | Should -Be 2
        $script:Db.ListLength('write_queue') | Should -Be 0
    }
    It 'step 3: the queue holds exactly the update item' {
        Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}'
        Get-RawList 'write_queue' | Should -BeExactly @('update:user:1001:{"age":"31"}')
    }
    It 'step 4: the flush empties the queue, patches the cache and the store holds the same JSON' {
        $result = Invoke-WriteBehindFlush
        $result.Dequeued | Should -Be 1
        $result.Persisted | Should -Be 1
        $script:Db.ListLength('write_queue') | Should -Be 0
        Get-RawString 'user_profiles' 'user:1001' | Should -BeExactly '{"name":"Alice","age":"31"}'
        Get-RawString 'user_profiles' 'user:1002' | Should -BeExactly '{"name":"Bob","age":"25"}'
        $row = Get-StoreRow $script:StorePath '1001'
        $row.Json | Should -BeExactly '{"name":"Alice","age":"31"}'
        $row.Version | Should -Be ([long](Get-RawString 'user_profiles:versions' 'user:1001'))
        (Get-UserProfile -UserId 1001 -FromStore).Json | Should -BeExactly '{"name":"Alice","age":"31"}'
    }
    It 'Get-UserProfile shows the fields, with ages kept as strings' {
        $p = Get-UserProfile -UserId 1001
        $p.Source | Should -Be 'Cache'
        $p.Profile.name | Should -BeExactly 'Alice'
        $p.Profile.age | Should -BeExactly '31'
        $p.Profile.age | Should -BeOfType [string]
    }
}
