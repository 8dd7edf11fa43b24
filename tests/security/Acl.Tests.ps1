# Least privilege: every cmdlet runs as a Redis ACL user with exactly RedisAcl.Rules (the rules the
# README's "Least privilege" section shows), and a user missing one gets RedisPermissionDenied naming it.
# A throwaway redis-server of its own (ACL users are server-wide), so it runs in the redis-server pass only.
BeforeAll {
    . (Join-Path $PSScriptRoot 'SecurityHelpers.ps1')
    $script:Server = Start-TestServer -Kind Redis -WorkDir $script:ServerDir
    $script:Admin = @{ Endpoint = $script:Server.Endpoint }
    # The rules, read from the module's engine assembly (loaded into a load context of its own: on
    # PowerShell 7 the module's engine types are not nameable from scripts).
    $engine = Join-Path (Split-Path $script:ModulePath) 'net8.0/dependencies/WriteBehind.Engine.dll'
    $alc = [System.Runtime.Loader.AssemblyLoadContext]::new('wb-acl-test', $true)
    $script:Rules = $alc.LoadFromAssemblyPath($engine).GetType('WriteBehind.Engine.RedisAcl').GetField('Rules').GetValue($null)
    $script:Password = New-Password

    function Set-AclUser([string] $User, [string[]] $Rules) {
        $null = Invoke-AdminCommand @script:Admin -Command 'ACL' -Arguments (@('SETUSER', $User, 'reset', 'on', ">$script:Password", 'resetkeys', 'resetchannels', '-@all') + $Rules)
    }
    function Connect-As([string] $User) {
        $store = New-TestStore
        Connect-WriteBehind -Redis $script:Server.Endpoint -Credential (New-TestCredential $User $script:Password) -Store "sqlite://$store"
    }
    function Clear-ModuleKeys {
        $keys = Invoke-AdminCommand @script:Admin -Command 'KEYS' -Arguments @('*')
        foreach ($k in @($keys)) { if ($k) { $null = Invoke-AdminCommand @script:Admin -Command 'DEL' -Arguments @($k) } }
        $null = Invoke-AdminCommand @script:Admin -Command 'SCRIPT' -Arguments @('FLUSH')
    }
}
AfterAll {
    Disconnect-WriteBehind
    Stop-TestServer $script:Server
}

Describe 'Least privilege (Redis ACL)' {
    It 'the rules name the module''s key patterns and the partition work''s commands' {
        $script:Rules | Should -Match '(^| )~user_profiles\* ~write_queue\*$'
        foreach ($c in '+evalsha', '+eval', '+blmove', '+set', '+get', '+del', '+wait', '+cluster|nodes', '+cluster|slots') {
            ($script:Rules -split ' ') | Should -Contain $c
        }
        ($script:Rules -split ' ') | Should -Not -Contain '+@all'
        ($script:Rules -split ' ') | Should -Not -Contain '+config|get'
    }

    It 'the README shows exactly these rules in its ACL SETUSER line' {
        $readme = Get-Content (Join-Path $PSScriptRoot '../../README.md') -Raw
        $readme | Should -Match ([regex]::Escape("-@all $($script:Rules)"))
    }

    It 'every cmdlet works as a user with exactly the rules, the continuous flush (BLMOVE) included' {
        Clear-ModuleKeys
        Set-AclUser 'wb_app' ($script:Rules -split ' ')
        $null = Invoke-AdminCommand @script:Admin -Command 'ACL' -Arguments @('LOG', 'RESET')
        Connect-As 'wb_app'
        $r = Invoke-SecurityScenario -Admin $script:Admin
        $r.Step1 | Should -BeExactly '{"name":"Alice","age":"30"}'
        $r.Dropped | Should -Be 2
        $r.Flush.Dequeued | Should -Be 1
        $r.Flush.Persisted | Should -Be 1
        $r.Cache1001 | Should -BeExactly '{"name":"Alice","age":"31"}'
        $r.Store1001 | Should -BeExactly '{"name":"Alice","age":"31"}'
        $r.Continuous.Persisted | Should -Be 1
        $r.AfterContinuous | Should -BeExactly '{"name":"Bob","age":"26"}'
        $r.All | Should -Be 2
        $r.DeadLetters | Should -Be 2
        $r.DeadLettersAfter | Should -Be 0
        $r.Completions | Should -Contain '1001'
        $r.Status.QueueDepth | Should -Be 0
        $r.Status.DeadLetters | Should -Be 0
        $r.Consistent | Should -BeTrue
        # nothing was refused along the way (StackExchange.Redis swallows some refusals at connect)
        @(Invoke-AdminCommand @script:Admin -Command 'ACL' -Arguments @('LOG')) | Where-Object { $_ } | Should -BeNullOrEmpty
    }

    It 'the same rules cover partitions: owner keys, the layout key and every partition''s keys' {
        Clear-ModuleKeys
        Set-AclUser 'wb_app' ($script:Rules -split ' ')
        $null = Invoke-AdminCommand @script:Admin -Command 'ACL' -Arguments @('LOG', 'RESET')
        Connect-WriteBehind -Redis $script:Server.Endpoint -Credential (New-TestCredential 'wb_app' $script:Password) -Store "sqlite://$(New-TestStore)" -Partitions 4
        1..200 | ForEach-Object { [pscustomobject]@{ UserId = "p$_"; Profile = '{"a":"1"}' } } | Set-UserProfile
        Add-WriteQueueItem -UserId p1 -Update '{"a":"2"}'
        Remove-UserProfile -UserId p2 -Confirm:$false
        $r = Invoke-WriteBehindFlush -Verbose 4>$null
        $r.Dequeued | Should -Be 202
        (Get-UserProfile -UserId p1).Json | Should -BeExactly '{"a":"2"}'
        (Get-WriteBehindStatus).Partitions | Should -Be 4
        (Test-WriteBehindConsistency).DriftCount | Should -Be 0
        @(Invoke-AdminCommand @script:Admin -Command 'ACL' -Arguments @('LOG')) | Where-Object { $_ } | Should -BeNullOrEmpty
        Disconnect-WriteBehind
    }

    It 'the same rules cover pause and resume, the metrics, the lag records and the scrape endpoint' {
        Clear-ModuleKeys
        Set-AclUser 'wb_app' ($script:Rules -split ' ')
        $null = Invoke-AdminCommand @script:Admin -Command 'ACL' -Arguments @('LOG', 'RESET')
        Connect-As 'wb_app'
        1..3 | ForEach-Object { Set-UserProfile -UserId "o$_" -Profile '{"a":1}' }
        $null = Invoke-AdminCommand @script:Admin -Command 'LPUSH' -Arguments @('write_queue', 'update:user:o1:{"b":2}')
        (Get-WriteBehindStatus -NoStore).Lag | Should -Not -BeNullOrEmpty
        (Suspend-WriteBehindFlush -Reason 'acl').Paused | Should -BeTrue
        (Invoke-WriteBehindFlush -WarningAction SilentlyContinue).Paused | Should -BeTrue
        Export-WriteBehindMetrics | Should -Match 'writebehind_paused\{key_prefix=""\} 1'
        $null = Resume-WriteBehindFlush
        $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0); $listener.Start()
        $port = $listener.LocalEndpoint.Port; $listener.Stop()
        (Invoke-WriteBehindFlush -Continuous -MaxDuration '00:00:02' -MetricsPort $port -LogPath (Join-Path $script:ServerDir 'acl.jsonl')).Dequeued | Should -Be 4
        $null = Clear-WriteQueue -Confirm:$false
        @(Invoke-AdminCommand @script:Admin -Command 'ACL' -Arguments @('LOG')) | Where-Object { $_ } | Should -BeNullOrEmpty
        Disconnect-WriteBehind
    }

    It 'a user without <Missing> is refused at Connect-WriteBehind with RedisPermissionDenied naming <Named>' -TestCases @(
        @{ Missing = '+evalsha'; Named = "may not run 'evalsha'" }
        @{ Missing = '+hset'; Named = "may not run 'hset'" }
        @{ Missing = '+blmove'; Named = "may not run 'blmove'" }
        @{ Missing = '+pexpire'; Named = "may not run 'pexpire'" }
        @{ Missing = '+time'; Named = "may not run 'time'" }
        @{ Missing = '~user_profiles*'; Named = "may not access .*'user_profiles'.*'~user_profiles\*'" }
    ) {
        param($Missing, $Named)
        Clear-ModuleKeys
        Set-AclUser 'wb_less' ($script:Rules -split ' ' | Where-Object { $_ -ne $Missing })
        $err = $null
        try { Connect-As 'wb_less' } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -BeLike 'RedisPermissionDenied,*'
        $err.CategoryInfo.Category | Should -Be 'PermissionDenied'
        $err.Exception.Message | Should -Match "Redis user 'wb_less'"
        $err.Exception.Message | Should -Match $Named
        $err.Exception.Message | Should -Not -Match ([regex]::Escape($script:Password))
    }

    It 'a grant taken away after connecting: the refused command inside a script is named (<Missing>)' -TestCases @(
        @{ Missing = '+hset'; Named = "may not run 'hset' \(in the module's set_profiles script\)" }
        @{ Missing = '+lpush'; Named = "may not run 'lpush' \(in the module's set_profiles script\)" }
        @{ Missing = '+evalsha'; Named = "may not run 'evalsha'" }
    ) {
        param($Missing, $Named)
        Clear-ModuleKeys
        Set-AclUser 'wb_later' ($script:Rules -split ' ')
        Connect-As 'wb_later'
        Set-AclUser 'wb_later' ($script:Rules -split ' ' | Where-Object { $_ -ne $Missing })
        $err = $null
        try { Set-UserProfile -UserId 1001 -Profile '{"name":"Alice"}' -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'RedisPermissionDenied,*'
        $err.Exception.Message | Should -Match "Redis user 'wb_later'"
        $err.Exception.Message | Should -Match $Named
    }

    It 'a user without the key patterns is refused at Connect-WriteBehind already' {
        Set-AclUser 'wb_nokeys' ($script:Rules -split ' ' | Where-Object { $_ -notlike '~*' })
        $err = $null
        try { Connect-As 'wb_nokeys' } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'RedisPermissionDenied,*'
        $err.Exception.Message | Should -Match "Redis user 'wb_nokeys' .* may not access"
    }

    It 'Invoke-WriteBehindFlush -Continuous names blmove when the grant goes after connecting' {
        Clear-ModuleKeys
        Set-AclUser 'wb_noblmove' ($script:Rules -split ' ')
        Connect-As 'wb_noblmove'
        Set-AclUser 'wb_noblmove' ($script:Rules -split ' ' | Where-Object { $_ -ne '+blmove' })
        $err = $null
        try { $null = Invoke-WriteBehindFlush -Continuous -MaxDuration '00:00:05' -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -BeLike 'RedisPermissionDenied,*'
        $err.Exception.Message | Should -Match "may not run 'blmove'"
    }
}
