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
    It 'step 1: user_profiles holds the two JSON texts byte for byte, and the store mirrors the cache' {
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        Get-RawString 'user_profiles' 'user:1001' | Should -BeExactly '{"name":"Alice","age":"30"}'
        Get-RawString 'user_profiles' 'user:1002' | Should -BeExactly '{"name":"Bob","age":"25"}'
        (Invoke-Raw 'HLEN' @('user_profiles')).ToString() | Should -Be '2'
        # The cache mirrors the main database: both profiles are in the store too before step 2 starts.
        (Invoke-WriteBehindFlush).Persisted | Should -Be 2
        (Get-StoreRow $script:StorePath '1001').Json | Should -BeExactly '{"name":"Alice","age":"30"}'
        (Get-StoreRow $script:StorePath '1002').Json | Should -BeExactly '{"name":"Bob","age":"25"}'
        Test-WriteBehindConsistency -Quiet | Should -BeTrue
    }
    It 'step 2: Clear-WriteQueue leaves write_queue empty and says what it dropped' {
        $r = Clear-WriteQueue -Confirm:$false
        $r.Dropped | Should -Be 0
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
        # ...and still holds user 1002's: cache and store agree for both (no drift).
        $row2 = Get-StoreRow $script:StorePath '1002'
        $row2.Json | Should -BeExactly '{"name":"Bob","age":"25"}'
        $row2.Version | Should -Be ([long](Get-RawString 'user_profiles:versions' 'user:1002'))
        $report = Test-WriteBehindConsistency
        $report.IsConsistent | Should -BeTrue
        $report.ProfilesChecked | Should -Be 2
    }
    It 'Get-UserProfile shows the fields, with ages kept as strings' {
        $p = Get-UserProfile -UserId 1001
        $p.Source | Should -Be 'Cache'
        $p.Profile.name | Should -BeExactly 'Alice'
        $p.Profile.age | Should -BeExactly '31'
        $p.Profile.age | Should -BeOfType [string]
    }
}

Describe 'examples/Demo.ps1' {
    BeforeAll {
        foreach ($k in 'user_profiles', 'write_queue', 'user_profiles:versions', 'write_queue:leases', 'write_queue:dead', 'write_queue:dead:info', 'write_queue:stats') { $null = $script:Db.KeyDelete($k) }
        $root = Join-Path $PSScriptRoot '../..'
        $store = New-TestStore
        # As build.ps1 Demo runs it: a fresh 'dotnet pwsh' (the repository's tool manifest pins it).
        Push-Location $root
        try {
            $script:DemoOutput = @(& dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $root 'examples/Demo.ps1') -ModulePath $script:ModulePath -Redis $script:RedisEndpoint -Store "sqlite://$store" 2>&1 | ForEach-Object { "$_" })
            $script:DemoExit = $LASTEXITCODE
        } finally { Pop-Location }
        # The README's block "The scenario (what Demo prints)", from its first "Step 1" line.
        $readme = Get-Content (Join-Path $root 'README.md') -Raw
        $block = [regex]::Match($readme, '(?s)## The scenario \(what Demo prints\).*?```text\r?\n(.*?)```').Groups[1].Value
        $script:ReadmeLines = @($block -split '\r?\n' | Where-Object { $_ -ne '' })
    }
    AfterAll {
        foreach ($k in 'user_profiles', 'write_queue', 'user_profiles:versions', 'write_queue:leases', 'write_queue:dead', 'write_queue:dead:info', 'write_queue:stats') { $null = $script:Db.KeyDelete($k) }
    }

    It 'ends consistent (exit 0) with both users in the store' {
        $script:DemoExit | Should -Be 0 -Because ($script:DemoOutput -join "`n")
        $script:DemoOutput | Should -Contain '    store row user 1002 -> {"name":"Bob","age":"25"} (version 1)'
        $script:DemoOutput[-1] | Should -BeExactly 'Test-WriteBehindConsistency: consistent: 2 profiles checked, nothing pending'
    }
    It "prints exactly the README's block (after its first line, which names the Redis endpoint and the store)" {
        $script:ReadmeLines.Count | Should -BeGreaterThan 10
        $printed = @($script:DemoOutput | Select-Object -Skip 1 | Where-Object { $_ -ne '' })
        $printed | Should -BeExactly $script:ReadmeLines
    }
}
