# Issue 5, "Isolated dependencies" and "Installable", and issue 11 "loading without reflection or preload": the
# built module folder holds one build per edition (net8.0/ for PowerShell 7.4+, netstandard2.0/ for Windows
# PowerShell 5.1), each keeping its dependencies under dependencies/; they load when first used; in a fresh pwsh another StackExchange.Redis (2.6.x, restored from NuGet here) is loaded and
# used first and the module still works beside it; the module published with Publish-PSResource installs
# with Install-PSResource in a fresh pwsh, imports by name and runs the scenario.
# Every check that imports the module runs in a child pwsh: TestHelpers.ps1 is not dot-sourced here,
# since it imports the module into this process.
BeforeAll {
    $script:ModulePath = $env:WRITEBEHIND_TEST_MODULE
    $script:RedisEndpoint = $env:WRITEBEHIND_TEST_REDIS
    if (-not $script:ModulePath -or -not $script:RedisEndpoint) { throw 'Run through build.ps1 Test (WRITEBEHIND_TEST_MODULE and WRITEBEHIND_TEST_REDIS are unset).' }
    $script:ModuleDir = Split-Path $script:ModulePath
    $script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
    $script:Work = Join-Path ([IO.Path]::GetTempPath()) ('wb-isolation-' + [guid]::NewGuid().ToString('N').Substring(0, 12))
    New-Item -ItemType Directory -Path $script:Work | Out-Null

    # The seed's four steps on a private key prefix and store, then what they left, as one JSON line; and
    # the removal of the prefix's keys through whichever StackExchange.Redis the script loaded itself.
    $script:ScenarioFunctions = @'
function Invoke-Scenario([string] $Redis, [string] $Prefix, [string] $Store) {
    Connect-WriteBehind -Redis $Redis -Store "sqlite://$Store" -KeyPrefix $Prefix
    try {
        Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
        Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
        $cleared = Clear-WriteQueue -Confirm:$false
        Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}'
        $flush = Invoke-WriteBehindFlush
        $alice = Get-UserProfile -UserId 1001
        $stored = Get-UserProfile -UserId 1001 -FromStore
        [ordered]@{
            Dropped = $cleared.Dropped; Dequeued = $flush.Dequeued; Persisted = $flush.Persisted
            QueueDepth = (Get-WriteBehindStatus -NoStore).QueueDepth
            Alice = $alice.Json; AliceVersion = $alice.Version
            Bob = (Get-UserProfile -UserId 1002).Json
            StoredAlice = $stored.Json; StoredAliceVersion = $stored.Version
        }
    } finally { Disconnect-WriteBehind }
}
function Remove-PrefixKeys($Database, [string] $Prefix) {
    $reply = $Database.Execute('KEYS', [object[]]@("$Prefix*"))
    for ($i = 0; $i -lt $reply.Length; $i++) { $null = $Database.KeyDelete([string]$reply[$i]) }
}
'@

    # Runs a script in a fresh `dotnet pwsh` (the repository's tool manifest pins it) and returns the object
    # of its last output line, which the script writes as compressed JSON.
    # -ResultFile: the script writes its JSON there instead (its last argument), and what comes back is the
    # result with the child's whole output: for a child whose output is something else, such as the JIT's log.
    function Invoke-ChildPwsh([string] $Name, [string] $Script, [string[]] $Arguments = @(), [hashtable] $Environment = @{}, [string] $ResultFile) {
        $file = Join-Path $script:Work "$Name.ps1"
        Set-Content -Path $file -Value ("`$ErrorActionPreference = 'Stop'`n" + $script:ScenarioFunctions + "`n" + $Script)
        $saved = @{}
        foreach ($k in $Environment.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $Environment[$k]) }
        Push-Location $script:RepoRoot
        try {
            if ($ResultFile) { $Arguments = @($Arguments) + $ResultFile }
            $output = @(dotnet pwsh -NoProfile -NonInteractive -File $file @Arguments 2>&1 | ForEach-Object { "$_" })
            $exit = $LASTEXITCODE
        } finally {
            Pop-Location
            foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) }
        }
        if ($ResultFile) {
            if ($exit -ne 0 -or -not (Test-Path $ResultFile)) { throw "Child pwsh '$Name' exited with $exit`n$(($output | Where-Object { $_ -notmatch 'JIT compiled' }) -join "`n")" }
            return [pscustomobject]@{ Result = Get-Content -Raw $ResultFile | ConvertFrom-Json; Output = $output }
        }
        if ($exit -ne 0 -or $output.Count -eq 0) { throw "Child pwsh '$Name' exited with $exit`n$($output -join "`n")" }
        try { $output[-1] | ConvertFrom-Json } catch { throw "Child pwsh '$Name' wrote no result`n$($output -join "`n")" }
    }

    function Assert-ScenarioResult($Result) {
        $Result.Dropped | Should -Be 2
        $Result.Dequeued | Should -Be 1
        $Result.Persisted | Should -Be 1
        $Result.QueueDepth | Should -Be 0
        $Result.Alice | Should -BeExactly '{"name":"Alice","age":"31"}'
        $Result.AliceVersion | Should -Be 2
        $Result.Bob | Should -BeExactly '{"name":"Bob","age":"25"}'
        $Result.StoredAlice | Should -BeExactly '{"name":"Alice","age":"31"}'
        $Result.StoredAliceVersion | Should -Be 2
    }
}

AfterAll {
    if ($script:Work) { Remove-Item -Recurse -Force $script:Work -ErrorAction SilentlyContinue }
}

Describe 'Module layout' {
    It 'ships only the manifest, its root module and the format file at the top, and one folder per build' {
        $top = @(Get-ChildItem -File $script:ModuleDir | ForEach-Object Name | Sort-Object)
        $top | Should -Be @('WriteBehind.format.ps1xml', 'WriteBehind.psd1', 'WriteBehind.psm1')
        @(Get-ChildItem -Directory $script:ModuleDir | ForEach-Object Name | Where-Object { $_ -ne 'en-US' } | Sort-Object) | Should -Be @('net8.0', 'netstandard2.0')
        (Import-PowerShellDataFile $script:ModulePath).RootModule | Should -Be 'WriteBehind.psm1'
    }
    It 'each build: the cmdlet assembly at its top, the engine, its drivers and SQLite''s native libraries under dependencies/' -ForEach @(
        @{ Framework = 'net8.0'; Runtimes = @('linux-arm64', 'linux-musl-x64', 'linux-x64', 'osx-arm64', 'osx-x64', 'win-arm64', 'win-x64') }
        @{ Framework = 'netstandard2.0'; Runtimes = @('win-arm64', 'win-x64', 'win-x86') }
    ) {
        $build = Join-Path $script:ModuleDir $Framework
        @(Get-ChildItem -File $build | ForEach-Object Name) | Should -Be @('WriteBehind.dll')
        @(Get-ChildItem -Directory $build | ForEach-Object Name) | Should -Be @('dependencies')
        $deps = Join-Path $build 'dependencies'
        foreach ($file in 'WriteBehind.Engine.dll', 'StackExchange.Redis.dll', 'Pipelines.Sockets.Unofficial.dll', 'Microsoft.Data.Sqlite.dll', 'SQLitePCLRaw.core.dll', 'Npgsql.dll', 'MySqlConnector.dll') {
            Join-Path $deps $file | Should -Exist
        }
        @(Get-ChildItem -Directory (Join-Path $deps 'runtimes') | ForEach-Object Name | Sort-Object) | Should -Be $Runtimes
        Join-Path $deps "runtimes/$($Runtimes[-1])/native" | Get-ChildItem -File | Should -Not -BeNullOrEmpty
    }
    It 'the net8.0 build ships none of the System.* packages .NET 8 provides itself; the netstandard2.0 build does' {
        @(Get-ChildItem -File (Join-Path $script:ModuleDir 'net8.0/dependencies') -Filter 'System.*.dll' | ForEach-Object Name) | Should -Be @('System.IO.Pipelines.dll')
        foreach ($file in 'System.Memory.dll', 'System.Text.Json.dll', 'System.Threading.Channels.dll') {
            Join-Path $script:ModuleDir "netstandard2.0/dependencies/$file" | Should -Exist
        }
    }
    It 'has no StackExchange.Redis.dll outside dependencies/ and no System.Management.Automation.dll anywhere' {
        $all = @(Get-ChildItem -Recurse -File $script:ModuleDir)
        @($all | Where-Object Name -EQ 'StackExchange.Redis.dll' | ForEach-Object { Split-Path -Leaf $_.DirectoryName }) | Should -Be @('dependencies', 'dependencies')
        @($all | Where-Object Name -EQ 'System.Management.Automation.dll') | Should -BeNullOrEmpty
    }
}

Describe 'Loading on first use' {
    It 'Import-Module loads no driver and imports no other module; a flush into SQLite loads SQLite''s and Redis''s only; a PostgreSQL store loads Npgsql; all into the module''s context' {
        $prefix = 'lazy-' + [guid]::NewGuid().ToString('N').Substring(0, 12) + ':'
        $store = Join-Path $script:Work 'lazy.db'
        $r = Invoke-ChildPwsh 'lazy' -Arguments $script:ModulePath, $script:RedisEndpoint, $prefix, $store -Script @'
$ModulePath, $Redis, $Prefix, $Store = $args
$drivers = 'StackExchange.Redis', 'Pipelines.Sockets.Unofficial', 'Microsoft.Data.Sqlite', 'SQLitePCLRaw.core', 'SQLitePCLRaw.provider.e_sqlite3', 'Npgsql', 'MySqlConnector'
function Get-Loaded {
    @([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -in $drivers -or $_.GetName().Name -like 'WriteBehind*' } |
        ForEach-Object { '{0}@{1}' -f $_.GetName().Name, [Runtime.Loader.AssemblyLoadContext]::GetLoadContext($_).Name } | Sort-Object)
}
$result = [ordered]@{}
Import-Module $ModulePath
# Nothing before this line needs Microsoft.PowerShell.Management (not loaded yet in a -NoProfile pwsh).
$result.ImportedManagement = [bool](Get-Module Microsoft.PowerShell.Management)
$result.AfterImport = Get-Loaded
$result.Cmdlets = (Get-Command Set-UserProfile).DLL
Connect-WriteBehind -Redis $Redis -Store "sqlite://$Store" -KeyPrefix $Prefix
Set-UserProfile -UserId 1001 -Profile '{"name":"Alice"}'
$null = Invoke-WriteBehindFlush
$result.Stored = (Get-UserProfile -UserId 1001 -FromStore).Json
$result.AfterSqliteFlush = Get-Loaded
Set-UserProfile -UserId 1002 -Profile '{"name":"Bob"}'
Connect-WriteBehind -Redis $Redis -Store 'postgres://nobody@127.0.0.1:1/none?connect_timeout=1' -KeyPrefix $Prefix
try { $null = Invoke-WriteBehindFlush -ErrorAction Stop } catch { $result.PostgresError = $_.FullyQualifiedErrorId }
$result.AfterPostgres = Get-Loaded
Connect-WriteBehind -Redis $Redis -Store "sqlite://$Store" -KeyPrefix $Prefix
$null = Invoke-WriteBehindFlush
Disconnect-WriteBehind
Add-Type -Path (Join-Path (Split-Path $ModulePath) 'net8.0/dependencies/StackExchange.Redis.dll')
$raw = [StackExchange.Redis.ConnectionMultiplexer]::Connect("$Redis,allowAdmin=true")
Remove-PrefixKeys $raw.GetDatabase() $Prefix
$raw.Dispose()
$result | ConvertTo-Json -Compress
'@
        $r.Cmdlets | Should -Be (Join-Path $script:ModuleDir 'net8.0/WriteBehind.dll')
        # The engine itself is needed to lay out the cmdlet types; none of its dependencies is.
        $r.AfterImport | Should -Be @('WriteBehind.Engine@WriteBehind', 'WriteBehind@Default')
        # Issue 13, cold start: the root module imports no other module (Join-Path would auto-load Management).
        $r.ImportedManagement | Should -BeFalse
        $r.Stored | Should -BeExactly '{"name":"Alice"}'
        $r.AfterSqliteFlush | Should -Contain 'StackExchange.Redis@WriteBehind'
        $r.AfterSqliteFlush | Should -Contain 'Microsoft.Data.Sqlite@WriteBehind'
        $r.AfterSqliteFlush | Should -Contain 'SQLitePCLRaw.provider.e_sqlite3@WriteBehind'
        $r.AfterSqliteFlush | Should -Not -Contain 'Npgsql@WriteBehind'
        $r.AfterSqliteFlush | Should -Not -Contain 'MySqlConnector@WriteBehind'
        $r.PostgresError | Should -Not -BeNullOrEmpty
        $r.AfterPostgres | Should -Contain 'Npgsql@WriteBehind'
        $r.AfterPostgres | Should -Not -Contain 'MySqlConnector@WriteBehind'
        @($r.AfterPostgres | Where-Object { $_ -notlike '*@WriteBehind' }) | Should -Be @('WriteBehind@Default')
    }

    It 'Remove-Module unregisters the resolver; Import-Module (also -Force) registers it again and exports every cmdlet' {
        $prefix = 'remove-' + [guid]::NewGuid().ToString('N').Substring(0, 12) + ':'
        $store = Join-Path $script:Work 'remove.db'
        $r = Invoke-ChildPwsh 'remove' -Arguments $script:ModulePath, $script:RedisEndpoint, $prefix, $store -Script @'
$ModulePath, $Redis, $Prefix, $Store = $args
# The default context finds the engine (which is not next to WriteBehind.dll) only through the module's resolver.
function Find-Engine { try { [Runtime.Loader.AssemblyLoadContext]::GetLoadContext([Reflection.Assembly]::Load('WriteBehind.Engine')).Name } catch { 'not found' } }
$result = [ordered]@{}
Import-Module $ModulePath
$result.Imported = Find-Engine
Remove-Module WriteBehind
$result.Removed = Find-Engine
Import-Module $ModulePath
$result.Reimported = Find-Engine
Import-Module $ModulePath -Force
$result.ForcedCmdlets = @(Get-Command -Module WriteBehind).Count
$scenario = Invoke-Scenario -Redis $Redis -Prefix $Prefix -Store $Store
foreach ($k in $scenario.Keys) { $result[$k] = $scenario[$k] }
Add-Type -Path (Join-Path (Split-Path $ModulePath) 'net8.0/dependencies/StackExchange.Redis.dll')
$raw = [StackExchange.Redis.ConnectionMultiplexer]::Connect("$Redis,allowAdmin=true")
Remove-PrefixKeys $raw.GetDatabase() $Prefix
$raw.Dispose()
$result | ConvertTo-Json -Compress
'@
        $r.Imported | Should -Be 'WriteBehind'
        $r.Removed | Should -Be 'not found'
        $r.Reimported | Should -Be 'WriteBehind'
        $r.ForcedCmdlets | Should -Be (Import-PowerShellDataFile $script:ModulePath).CmdletsToExport.Count
        Assert-ScenarioResult $r
    }
}

Describe 'Precompiled (ReadyToRun) net8.0 build' {
    # Issue 13, cold start: build.ps1 precompiles the net8.0 assemblies with the SDK's crossgen2 for the .NET
    # that runs the build (WRITEBEHIND_READYTORUN=0 turns it off, and these tests with it).
    BeforeAll {
        $script:Precompiled = $env:WRITEBEHIND_READYTORUN -ne '0'
        function Get-ImageKind([string] $Path) {
            $stream = [IO.File]::OpenRead($Path)
            try {
                $pe = [Reflection.PortableExecutable.PEReader]::new($stream)
                $reader = [Reflection.Metadata.PEReaderExtensions]::GetMetadataReader($pe)
                $withBody = $reader.MethodDefinitions | ForEach-Object { $reader.GetMethodDefinition($_) } | Where-Object RelativeVirtualAddress -GT 0 | Select-Object -First 1
                [pscustomobject]@{
                    Name        = Split-Path -Leaf $Path
                    ReadyToRun  = $pe.PEHeaders.CorHeader.ManagedNativeHeaderDirectory.Size -gt 0 -and
                                  ($pe.PEHeaders.CorHeader.Flags -band [Reflection.PortableExecutable.CorFlags]::ILLibrary) -ne 0
                    ILBytes     = if ($withBody) { [Reflection.Metadata.PEReaderExtensions]::GetMethodBody($pe, $withBody.RelativeVirtualAddress).Size } else { 0 }
                }
            } finally { $stream.Dispose() }
        }
    }
    It 'every net8.0 assembly is a ReadyToRun image that keeps its IL; the netstandard2.0 build stays plain IL' {
        if (-not $script:Precompiled) { Set-ItResult -Skipped -Because 'the build ran with WRITEBEHIND_READYTORUN=0' }
        $net8 = @(Get-ChildItem -Recurse -File (Join-Path $script:ModuleDir 'net8.0') -Filter '*.dll' | Where-Object { $_.DirectoryName -notlike '*runtimes*' } | ForEach-Object { Get-ImageKind $_.FullName })
        $net8.Count | Should -BeGreaterThan 10
        @($net8 | Where-Object { -not $_.ReadyToRun } | ForEach-Object Name) | Should -BeNullOrEmpty
        @($net8 | Where-Object ILBytes -LE 0 | ForEach-Object Name) | Should -BeNullOrEmpty
        (Get-ImageKind (Join-Path $script:ModuleDir 'netstandard2.0/WriteBehind.dll')).ReadyToRun | Should -BeFalse
    }
    It 'a cold import and empty flush JIT next to none of the module''s, StackExchange.Redis''s and Pipelines.Sockets.Unofficial''s own methods; with ReadyToRun off the IL runs' {
        if (-not $script:Precompiled) { Set-ItResult -Skipped -Because 'the build ran with WRITEBEHIND_READYTORUN=0' }
        $prefix = 'r2r-' + [guid]::NewGuid().ToString('N').Substring(0, 12) + ':'
        $script = @'
$ModulePath, $Redis, $Prefix, $Store, $ResultFile = $args
Import-Module $ModulePath
Connect-WriteBehind -Redis $Redis -Store "sqlite://$Store" -KeyPrefix $Prefix
$flush = Invoke-WriteBehindFlush
Disconnect-WriteBehind
$result = [ordered]@{ Dequeued = $flush.Dequeued; Error = $flush.Error } | ConvertTo-Json -Compress
if ($ResultFile) { Set-Content -Path $ResultFile -Value $result } else { $result }
'@
        # The JIT's own log of what it compiled (a .NET runtime setting, in its release builds too), on the
        # child's stdout: with DOTNET_JitStdOutFile the .NET 10 runtime itself sometimes aborts at exit
        # ("free(): invalid pointer", exit 134; a bare `pwsh -Command` does it too, 1 in 14 here), so the
        # child writes its result to a file and its stdout is the log.
        $child = Invoke-ChildPwsh 'r2r-precompiled' -Arguments $script:ModulePath, $script:RedisEndpoint, $prefix, (Join-Path $script:Work 'r2r-precompiled.db') `
            -Environment @{ DOTNET_JitDisasmSummary = '1' } -ResultFile (Join-Path $script:Work 'r2r-precompiled.json') -Script $script
        $r = $child.Result
        $log = $child.Output
        $r.Dequeued | Should -Be 0
        $r.Error | Should -BeNullOrEmpty
        # Methods of non-generic types of these assemblies the JIT compiled: precompiled code is not listed;
        # generic instantiations over another assembly's types are in no one image and still JIT. Plain IL
        # JITs about a thousand of them here (main before ReadyToRun: 966).
        @($log | Where-Object { $_ -match 'JIT compiled' }).Count | Should -BeGreaterThan 1000 -Because 'the JIT log is on stdout'
        # Tier-1 recompiles of hot precompiled methods are not misses (how many there are depends on how long
        # the child lives): they are left out.
        $jitted = @($log | Where-Object { $_ -match 'JIT compiled (WriteBehind|StackExchange\.Redis|Pipelines\.Sockets\.Unofficial)[^`\[(]*:' -and $_ -notmatch '\[(Instrumented )?Tier1' })
        $jitted.Count | Should -BeLessThan 50 -Because ($jitted | Select-Object -First 20 | Out-String)
        # A runtime that does not take the precompiled code (PowerShell 7.4 on .NET 8, another OS) runs the IL.
        $r = Invoke-ChildPwsh 'r2r-off' -Arguments $script:ModulePath, $script:RedisEndpoint, $prefix, (Join-Path $script:Work 'r2r-off.db') `
            -Environment @{ DOTNET_ReadyToRun = '0' } -Script $script
        $r.Dequeued | Should -Be 0
        $r.Error | Should -BeNullOrEmpty
    }
}

Describe 'Isolated dependencies' {
    BeforeAll {
        # StackExchange.Redis 2.6.96 (the module ships 2.8.16; both are assembly version 2.0.0.0) and an older
        # Pipelines.Sockets.Unofficial than the module's, restored from NuGet into the package folder.
        $restore = Join-Path $script:Work 'old-redis'
        New-Item -ItemType Directory -Path $restore | Out-Null
        Set-Content -Path (Join-Path $restore 'OldRedis.csproj') -Value @'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <TargetFramework>net10.0</TargetFramework>
    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
  </PropertyGroup>
  <ItemGroup>
    <PackageDownload Include="StackExchange.Redis" Version="[2.6.96]" />
    <PackageDownload Include="Pipelines.Sockets.Unofficial" Version="[2.2.2]" />
  </ItemGroup>
</Project>
'@
        $log = dotnet restore (Join-Path $restore 'OldRedis.csproj') --nologo -v quiet 2>&1
        if ($LASTEXITCODE -ne 0) { throw "Restoring StackExchange.Redis 2.6.96 failed:`n$($log -join "`n")" }
        $roots = (Get-Content (Join-Path $restore 'obj/project.assets.json') -Raw | ConvertFrom-Json -AsHashtable)['packageFolders'].Keys
        $find = { param($relative) $roots | ForEach-Object { Join-Path $_ $relative } | Where-Object { Test-Path $_ } | Select-Object -First 1 }
        $script:OldRedis = & $find 'stackexchange.redis/2.6.96/lib/net5.0/StackExchange.Redis.dll'
        $script:OldPipelines = & $find 'pipelines.sockets.unofficial/2.2.2/lib/net5.0/Pipelines.Sockets.Unofficial.dll'
        if (-not $script:OldRedis -or -not $script:OldPipelines) { throw "The restored packages lack their net5.0 assemblies (package folders: $($roots -join ', '))." }
    }

    It 'another StackExchange.Redis loaded and used first, then Import-Module and the four steps: both work' {
        $prefix = 'iso-' + [guid]::NewGuid().ToString('N').Substring(0, 12) + ':'
        $store = Join-Path $script:Work 'isolation.db'
        $r = Invoke-ChildPwsh 'isolation' -Arguments $script:OldPipelines, $script:OldRedis, $script:ModulePath, $script:RedisEndpoint, $prefix, $store -Script @'
$OldPipelines, $OldRedis, $ModulePath, $Redis, $Prefix, $Store = $args
Add-Type -Path $OldPipelines, $OldRedis
$old = [StackExchange.Redis.ConnectionMultiplexer]::Connect("$Redis,allowAdmin=true")
$db = $old.GetDatabase()
$null = $db.StringSet("$($Prefix)old-client", 'before')
$before = [string]$db.StringGet("$($Prefix)old-client")

Import-Module $ModulePath
$result = Invoke-Scenario -Redis $Redis -Prefix $Prefix -Store $Store

$null = $db.StringSet("$($Prefix)old-client", 'after')
$result.OldClientBefore = $before
$result.OldClientAfter = [string]$db.StringGet("$($Prefix)old-client")
$result.OldClientVersion = [Diagnostics.FileVersionInfo]::GetVersionInfo([StackExchange.Redis.ConnectionMultiplexer].Assembly.Location).FileVersion
$result.Loaded = @([AppDomain]::CurrentDomain.GetAssemblies() |
    Where-Object { $_.GetName().Name -in 'StackExchange.Redis', 'Pipelines.Sockets.Unofficial', 'WriteBehind.Engine' } |
    ForEach-Object { [ordered]@{
        Name = $_.GetName().Name; Location = $_.Location
        Context = [Runtime.Loader.AssemblyLoadContext]::GetLoadContext($_).Name
        FileVersion = [Diagnostics.FileVersionInfo]::GetVersionInfo($_.Location).FileVersion } })
Remove-PrefixKeys $db $Prefix
$old.Dispose()
$result | ConvertTo-Json -Compress -Depth 4
'@
        Assert-ScenarioResult $r
        $r.OldClientBefore | Should -BeExactly 'before'
        $r.OldClientAfter | Should -BeExactly 'after'
        $r.OldClientVersion | Should -BeLike '2.6.96*'

        $deps = Join-Path $script:ModuleDir 'net8.0/dependencies'
        $redis = @($r.Loaded | Where-Object Name -EQ 'StackExchange.Redis')
        $redis.Count | Should -Be 2
        $mine = $redis | Where-Object Context -EQ 'WriteBehind'
        $mine.Location | Should -Be (Join-Path $deps 'StackExchange.Redis.dll')
        $mine.FileVersion | Should -BeLike '2.8.16*'
        ($redis | Where-Object Context -EQ 'Default').Location | Should -Be $script:OldRedis
        $pipelines = @($r.Loaded | Where-Object Name -EQ 'Pipelines.Sockets.Unofficial')
        @($pipelines | ForEach-Object Context | Sort-Object) | Should -Be @('Default', 'WriteBehind')
        $engine = @($r.Loaded | Where-Object Name -EQ 'WriteBehind.Engine')
        $engine.Count | Should -Be 1
        $engine[0].Context | Should -Be 'WriteBehind'
        $engine[0].Location | Should -Be (Join-Path $deps 'WriteBehind.Engine.dll')
    }
}

Describe 'Installable' {
    It 'Publish-PSResource makes a package that installs from its repository in a fresh pwsh, imports by name and runs the four steps' {
        # The children keep PSResourceGet's repository list in a temp folder of their own (XDG_DATA_HOME):
        # nothing is registered for the real user. Install-PSResource can only target the real user's or all
        # users' module folder, so the package is installed with Save-PSResource (the same download,
        # extraction and PSGetModuleInfo.xml) into a temp folder put first on PSModulePath.
        $repo = Join-Path $script:Work 'repo'
        New-Item -ItemType Directory -Path $repo | Out-Null
        # The folder must exist: .NET names no LocalApplicationData that does not, and PSResourceGet would
        # then keep its repository list in the current directory.
        $publishData = New-Item -ItemType Directory -Path (Join-Path $script:Work 'publisher-data') | ForEach-Object FullName
        $published = Invoke-ChildPwsh 'publish' -Environment @{ XDG_DATA_HOME = $publishData } -Arguments $script:ModuleDir, $repo -Script @'
$ModuleDir, $Repo = $args
Register-PSResourceRepository -Name WriteBehindTest -Uri $Repo -Trusted
Publish-PSResource -Path $ModuleDir -Repository WriteBehindTest
@{ Packages = @(Get-ChildItem $Repo -Filter *.nupkg | ForEach-Object Name) } | ConvertTo-Json -Compress
'@
        $version = (Import-PowerShellDataFile $script:ModulePath).ModuleVersion
        @($published.Packages) | Should -Be @("WriteBehind.$version.nupkg")

        $prefix = 'pkg-' + [guid]::NewGuid().ToString('N').Substring(0, 12) + ':'
        $store = Join-Path $script:Work 'installed.db'
        $userData = New-Item -ItemType Directory -Path (Join-Path $script:Work 'user-data') | ForEach-Object FullName
        $r = Invoke-ChildPwsh 'install' -Environment @{ XDG_DATA_HOME = $userData } -Arguments $repo, $script:RedisEndpoint, $prefix, $store -Script @'
$Repo, $Redis, $Prefix, $Store = $args
$modules = Join-Path $env:XDG_DATA_HOME 'Modules'
Register-PSResourceRepository -Name WriteBehindTest -Uri $Repo -Trusted
Save-PSResource -Name WriteBehind -Repository WriteBehindTest -TrustRepository -IncludeXml -Path (New-Item -ItemType Directory -Path $modules).FullName
$env:PSModulePath = $modules + [IO.Path]::PathSeparator + $env:PSModulePath
Import-Module WriteBehind
$result = Invoke-Scenario -Redis $Redis -Prefix $Prefix -Store $Store
$module = Get-Module WriteBehind
$result.ModuleBase = $module.ModuleBase
$result.ModuleVersion = "$($module.Version)"
$result.Commands = $module.ExportedCmdlets.Count
# The module's own StackExchange.Redis, a second copy in the default context, only to remove the keys.
Add-Type -Path (Join-Path $module.ModuleBase 'net8.0/dependencies/StackExchange.Redis.dll')
$raw = [StackExchange.Redis.ConnectionMultiplexer]::Connect("$Redis,allowAdmin=true")
Remove-PrefixKeys $raw.GetDatabase() $Prefix
$raw.Dispose()
$result | ConvertTo-Json -Compress
'@
        Assert-ScenarioResult $r
        $r.ModuleVersion | Should -Be $version
        $r.ModuleBase | Should -BeLike "$userData*"
        Join-Path $r.ModuleBase 'net8.0/dependencies/StackExchange.Redis.dll' | Should -Exist
        $r.Commands | Should -Be (Import-PowerShellDataFile $script:ModulePath).CmdletsToExport.Count
    }
}
