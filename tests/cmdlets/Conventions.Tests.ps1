# PowerShell conventions: ShouldProcess on state changes, OutputType, format views, progress, verbose
# batch logs, and the status figures a scheduler reads.
BeforeDiscovery {
    $manifest = Import-PowerShellDataFile $env:WRITEBEHIND_TEST_MODULE
    $script:AllCmdlets = @($manifest.CmdletsToExport | ForEach-Object { @{ Name = $_ } })
    $script:StateChanging = @('Set-UserProfile', 'Remove-UserProfile', 'Add-WriteQueueItem', 'Clear-WriteQueue', 'Invoke-WriteBehindFlush',
        'Restore-WriteBehindDeadLetter', 'Remove-WriteBehindDeadLetter', 'Test-WriteBehindConsistency',
        'Suspend-WriteBehindFlush', 'Resume-WriteBehindFlush') | ForEach-Object { @{ Name = $_ } }
}
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
}

Describe 'Cmdlet conventions' {
    It '<Name> declares its output type' -ForEach $AllCmdlets {
        (Get-Command $Name).OutputType.Count | Should -BeGreaterThan 0
    }
    It '<Name> supports -WhatIf and -Confirm' -ForEach $StateChanging {
        $p = (Get-Command $Name).Parameters
        $p.ContainsKey('WhatIf') | Should -BeTrue
        $p.ContainsKey('Confirm') | Should -BeTrue
    }
}

Describe '-WhatIf changes nothing' {
    BeforeAll {
        $script:P = New-TestPrefix
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $script:P
        Set-UserProfile -UserId keep -Profile '{"a":1}'
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'for producers, Clear-WriteQueue and the flush' {
        Set-UserProfile -UserId w1 -Profile '{"a":1}' -WhatIf
        Add-WriteQueueItem -UserId w1 -Update '{"a":2}' -WhatIf
        Remove-UserProfile -UserId keep -WhatIf
        Clear-WriteQueue -WhatIf
        Invoke-WriteBehindFlush -WhatIf
        $script:Db.HashExists("$($script:P)user_profiles", 'user:w1') | Should -BeFalse
        $script:Db.HashExists("$($script:P)user_profiles", 'user:keep') | Should -BeTrue
        Get-RawList "$($script:P)write_queue" | Should -BeExactly @('set:user:keep:1')
    }
    It "Clear-WriteQueue's confirmation says how many items of which kinds it is about to drop" {
        Add-WriteQueueItem -UserId keep -Update '{"a":2}'
        Add-WriteQueueItem -UserId other -Update '{"b":1}'
        $null = Invoke-Raw 'LPUSH' @("$($script:P)write_queue", 'junk')
        # ShouldProcess writes the same text as a verbose record (the -WhatIf line goes to the host).
        $verbose = Clear-WriteQueue -Confirm:$false -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        ($verbose.Message -join "`n") | Should -Match ([regex]::Escape('Drop 4 pending items: 2 updates (deferred patches), 1 set (persists of cached profiles), 0 deletes, 1 other (unparsable)'))
        $script:Db.ListLength("$($script:P)write_queue") | Should -Be 0
    }
}

Describe 'ShouldProcess on the producers, which skip it per record only when it would say yes without a word' {
    BeforeEach {
        $script:P = New-TestPrefix
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $script:P
        Set-UserProfile -UserId keep -Profile '{"a":1}'
    }
    AfterEach { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'for producers under $WhatIfPreference, and under -WhatIf given to a calling function' {
        # The producers skip ShouldProcess per record only when it would say yes silently: these must not.
        & {
            $WhatIfPreference = $true
            Set-UserProfile -UserId w2 -Profile '{"a":1}'
            Add-WriteQueueItem -UserId w2 -Update '{"a":2}'
            Remove-UserProfile -UserId keep
        }
        function Set-Wrapped { [CmdletBinding(SupportsShouldProcess)] param() 'w3', 'w4' | ForEach-Object { Set-UserProfile -UserId $_ -Profile '{"a":1}' } }
        Set-Wrapped -WhatIf
        foreach ($id in 'w2', 'w3', 'w4') { $script:Db.HashExists("$($script:P)user_profiles", "user:$id") | Should -BeFalse }
        $script:Db.HashExists("$($script:P)user_profiles", 'user:keep') | Should -BeTrue
        Get-RawList "$($script:P)write_queue" | Should -BeExactly @('set:user:keep:1')
    }
    It 'producers write each record''s ShouldProcess line to the verbose stream under -Verbose' {
        $verbose = @('v1', 'v2') | ForEach-Object { [pscustomobject]@{ UserId = $_; Profile = '{"a":1}' } } | Set-UserProfile -Verbose 4>&1
        @($verbose | ForEach-Object Message) | Should -Be @('Performing the operation "Set profile and queue its persist" on target "user:v1".',
            'Performing the operation "Set profile and queue its persist" on target "user:v2".')
        $verbose = Add-WriteQueueItem -UserId v1 -Update '{"b":1}' -Verbose 4>&1
        $verbose.Message | Should -BeExactly 'Performing the operation "LPUSH to the write queue" on target "update:user:v1:{"b":1}".'
        $verbose = Remove-UserProfile -UserId v2 -Confirm:$false -Verbose 4>&1
        $verbose.Message | Should -BeExactly 'Performing the operation "Remove profile and queue its delete" on target "user:v2".'
    }
}

Describe 'Format views' {
    It 'has a view for <Type>' -ForEach @(
        @{ Type = 'WriteBehind.Commands.UserProfile' }, @{ Type = 'WriteBehind.Engine.FlushResult' },
        @{ Type = 'WriteBehind.Engine.WriteBehindStatus' }, @{ Type = 'WriteBehind.Engine.DeadLetter' },
        @{ Type = 'WriteBehind.Engine.ConsistencyReport' }) {
        @(Get-FormatData -TypeName $Type).Count | Should -Be 1
    }
    It 'shows dead letters as a list, and Format-Table as Item and Reason, never the ItemBytes array' {
        $P = New-TestPrefix
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $P
        try {
            $null = Invoke-Raw 'LPUSH' @("$($P)write_queue", 'frob:user:ft1')
            $null = Invoke-WriteBehindFlush
            $list = Get-WriteBehindDeadLetter | Out-String -Width 120
            $list | Should -Match 'Item\s+: frob:user:ft1'
            $list | Should -Match "Reason\s+: unknown operation 'frob'"
            $table = Get-WriteBehindDeadLetter | Format-Table | Out-String -Width 120
            $table | Should -Match 'Index\s+Partition\s+Attempts\s+Item\s+Reason'
            $table | Should -Match "frob:user:ft1\s+unknown operation 'frob'"
            $table | Should -Not -Match 'ItemBytes'
        } finally { Disconnect-WriteBehind; Remove-TestKeys $P }
    }
    It 'shows a flush result as a table with its counts' {
        $P = New-TestPrefix
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store "sqlite://$(New-TestStore)" -KeyPrefix $P
        try {
            Set-UserProfile -UserId f1 -Profile '{"a":1}'
            $text = Invoke-WriteBehindFlush | Out-String -Width 120
            $text | Should -Match 'Dequeued\s+Persisted\s+Coalesced\s+DeadLettered'
            $text | Should -Match 'PerSecond'
        } finally { Disconnect-WriteBehind; Remove-TestKeys $P }
    }
}

Describe 'Progress, verbose logs and status' {
    BeforeAll {
        $script:P = New-TestPrefix
        $script:StoreUri = "sqlite://$(New-TestStore)"
        Connect-WriteBehind -Redis $script:RedisEndpoint -Store $script:StoreUri -KeyPrefix $script:P
        1..3000 | ForEach-Object { "update:user:v$($_):{`"n`":$_}" } | Add-WriteQueueItem
    }
    AfterAll { Disconnect-WriteBehind; Remove-TestKeys $script:P }

    It 'reports progress with done, remaining and rate, completes it, and logs each commit with -Verbose' {
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript({
                param($module, $redis, $store, $prefix)
                Import-Module $module
                Connect-WriteBehind -Redis $redis -Store $store -KeyPrefix $prefix
                Invoke-WriteBehindFlush -BatchSize 250 -CommitSize 500 -Verbose
            }).AddArgument($script:ModulePath).AddArgument($script:RedisEndpoint).AddArgument($script:StoreUri).AddArgument($script:P)
            $result = $ps.Invoke()
            $ps.Streams.Error.Count | Should -Be 0
            $result[0].Dequeued | Should -Be 3000
            $progress = @($ps.Streams.Progress | Where-Object Activity -like 'Flushing*')
            $progress.Count | Should -BeGreaterThan 0
            $progress[0].StatusDescription | Should -Match 'done, .* remaining, .* items/s'
            $progress[-1].RecordType | Should -Be 'Completed'
            $commits = @($ps.Streams.Verbose | Where-Object Message -like 'commit:*')
            $commits.Count | Should -Be 6
            $commits[0].Message | Should -Match '500 items in 2 lease\(s\), 500 profiles'
            ($ps.Streams.Verbose | Out-String) | Should -Not -Match 'password'
        } finally { $ps.Dispose() }
    }
    It 'status shows the last run''s rate, and lag 0 once the queue is drained' {
        $s = Get-WriteBehindStatus
        $s.LastFlushDequeued | Should -Be 3000
        $s.LastFlushItemsPerSecond | Should -BeGreaterThan 0
        $s.QueueDepth | Should -Be 0
        $s.Lag | Should -Be ([timespan]::Zero)
        $s.StoredProfiles | Should -Be 3000
    }
    It 'status shows a lag while items wait' {
        Add-WriteQueueItem -UserId late -Update '{"a":1}'
        Start-Sleep -Milliseconds 300
        (Get-WriteBehindStatus -NoStore).Lag | Should -BeGreaterThan ([timespan]::Zero)
    }
}

Describe 'The manifest' {
    BeforeAll {
        $script:Manifest = Import-PowerShellDataFile $env:WRITEBEHIND_TEST_MODULE
        $props = [xml](Get-Content (Join-Path $PSScriptRoot '../../Directory.Build.props') -Raw)
        $script:Version = @($props.Project.PropertyGroup.WriteBehindVersion | Where-Object { $_ })[0]
    }
    It 'carries the version defined once in Directory.Build.props' {
        $script:Manifest.ModuleVersion | Should -Be $script:Version
    }
    It 'serves Desktop and Core from PowerShell 5.1' {
        $script:Manifest.CompatiblePSEditions | Should -Be @('Desktop', 'Core')
        $script:Manifest.PowerShellVersion | Should -Be '5.1'
    }
    It 'exports exactly the cmdlets the assembly has, by an explicit list' {
        $script:Manifest.CmdletsToExport | Should -Not -Contain '*'
        @(Get-Command -Module WriteBehind -CommandType Cmdlet | ForEach-Object Name | Sort-Object) |
            Should -Be @($script:Manifest.CmdletsToExport | Sort-Object)
        $script:Manifest.FunctionsToExport.Count | Should -Be 0
    }
    It 'names its format file, tags, licence and project' {
        $script:Manifest.FormatsToProcess | Should -Be @('WriteBehind.format.ps1xml')
        $script:Manifest.PrivateData.PSData.Tags | Should -Contain 'Redis'
        $script:Manifest.PrivateData.PSData.LicenseUri | Should -Match '^https://'
        $script:Manifest.PrivateData.PSData.ProjectUri | Should -Match '^https://'
    }
}

Describe 'The build' {
    BeforeAll {
        $root = Join-Path $PSScriptRoot '../..'
        $script:Props = [xml](Get-Content (Join-Path $root 'Directory.Build.props') -Raw)
        $script:Engine = [xml](Get-Content (Join-Path $root 'src/WriteBehind.Engine/WriteBehind.Engine.csproj') -Raw)
        $script:EngineSources = Get-ChildItem (Join-Path $root 'src/WriteBehind.Engine') -Recurse -Filter *.cs |
            Where-Object { $_.FullName -notmatch '[\\/](obj|bin)[\\/]' }
    }
    It 'fails on an undocumented public engine member: GenerateDocumentationFile, warnings as errors, CS1591 not suppressed' {
        @($script:Engine.Project.PropertyGroup.GenerateDocumentationFile | Where-Object { $_ }) | Should -Be @('true')
        @($script:Props.Project.PropertyGroup.TreatWarningsAsErrors | Where-Object { $_ }) | Should -Be @('true')
        foreach ($project in $script:Props, $script:Engine) {
            foreach ($list in @($project.Project.PropertyGroup.NoWarn) + @($project.Project.PropertyGroup.WarningsNotAsErrors)) {
                $list | Should -Not -Match '1591'
            }
        }
        @($script:EngineSources | Select-String -Pattern 'pragma\s+warning\s+disable[^\r\n]*1591' -List) | Should -BeNullOrEmpty
    }
}

Describe 'Producers hot path' {
    # Tiered compilation ran these as unoptimized tier-0 code for most of a 200,000-record pipeline (the
    # tiering thread reached them last); AggressiveOptimization compiles them optimized on first call (HotPath.cs).
    It 'compiles the per-record and per-chunk methods optimized on first call' {
        $cmdlets = (Get-Command Set-UserProfile).ImplementingType.Assembly
        $engine = (Get-Command Set-UserProfile).ImplementingType.GetMethod('SendAsync', [Reflection.BindingFlags]'Instance,NonPublic').GetParameters()[0].ParameterType.Assembly
        $hot = @(
            @($cmdlets, 'WriteBehind.Commands.SetUserProfileCommand', 'ProcessRecord'),
            @($cmdlets, 'WriteBehind.Commands.AddWriteQueueItemCommand', 'ProcessRecord'),
            @($cmdlets, 'WriteBehind.Commands.AddWriteQueueItemCommand', 'Buffer'),
            @($cmdlets, 'WriteBehind.Commands.ChunkingCmdlet`2', 'Add'),
            @($cmdlets, 'WriteBehind.Commands.WriteBehindCmdlet', 'get_ConfirmsSilently'),
            @($cmdlets, 'WriteBehind.Commands.ProfileJson', 'FromInput'),
            @($cmdlets, 'WriteBehind.Commands.ProfileJson', 'IdOf'),
            @($engine, 'WriteBehind.Engine.UserIds', 'IsValid'),
            @($engine, 'WriteBehind.Engine.UserIds', 'Validate'),
            @($engine, 'WriteBehind.Engine.KeyNames', 'Field'),
            @($engine, 'WriteBehind.Engine.QueueItem', 'FormatUpdate'),
            @($engine, 'WriteBehind.Engine.QueueItem', 'TryParse'),
            @($engine, 'WriteBehind.Engine.Json.JsonText', 'TryValidateObject'),
            @($engine, 'WriteBehind.Engine.Json.JsonValidator', 'Validate'),
            @($engine, 'WriteBehind.Engine.Json.JsonValidator', 'Run'),
            @($engine, 'WriteBehind.Engine.Json.JsonValidator', 'Read'),
            @($engine, 'WriteBehind.Engine.Cache.ProfileCache', 'SetProfilesArgs'),
            @($engine, 'WriteBehind.Engine.Queue.WriteQueue', 'EnqueueArgs'))
        $all = [Reflection.BindingFlags]'Public,NonPublic,Instance,Static,DeclaredOnly'
        $missing = foreach ($h in $hot) {
            $type = $h[0].GetType($h[1], $true)
            $methods = @($type.GetMethods($all) | Where-Object Name -EQ $h[2])
            if ($methods.Count -eq 0) { "$($h[1]).$($h[2]) (not found)"; continue }
            foreach ($m in $methods) {
                if (-not ($m.MethodImplementationFlags -band [Reflection.MethodImplAttributes]::AggressiveOptimization)) { "$($h[1]).$($h[2])" }
            }
        }
        $missing | Should -BeNullOrEmpty
    }
}
