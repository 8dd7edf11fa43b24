# Issue 5, "Isolated dependencies" and "Installable": the built module folder keeps its dependencies under
# dependencies/; in a fresh pwsh another StackExchange.Redis (2.6.x, restored from NuGet here) is loaded and
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
    function Invoke-ChildPwsh([string] $Name, [string] $Script, [string[]] $Arguments = @(), [hashtable] $Environment = @{}) {
        $file = Join-Path $script:Work "$Name.ps1"
        Set-Content -Path $file -Value ("`$ErrorActionPreference = 'Stop'`n" + $script:ScenarioFunctions + "`n" + $Script)
        $saved = @{}
        foreach ($k in $Environment.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $Environment[$k]) }
        Push-Location $script:RepoRoot
        try {
            $output = @(dotnet pwsh -NoProfile -NonInteractive -File $file @Arguments 2>&1 | ForEach-Object { "$_" })
            $exit = $LASTEXITCODE
        } finally {
            Pop-Location
            foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) }
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
    It 'ships only the manifest, the cmdlet assembly, the format file and its loader at the top; all else under dependencies/' {
        $top = @(Get-ChildItem -File $script:ModuleDir | ForEach-Object Name | Sort-Object)
        $top | Should -Be @('WriteBehind.dll', 'WriteBehind.format.ps1xml', 'WriteBehind.Init.psm1', 'WriteBehind.psd1')
        @(Get-ChildItem -Directory $script:ModuleDir | ForEach-Object Name | Where-Object { $_ -ne 'en-US' }) | Should -Be @('dependencies')
        $deps = Join-Path $script:ModuleDir 'dependencies'
        foreach ($file in 'WriteBehind.Engine.dll', 'StackExchange.Redis.dll', 'Pipelines.Sockets.Unofficial.dll', 'Microsoft.Data.Sqlite.dll', 'SQLitePCLRaw.core.dll') {
            Join-Path $deps $file | Should -Exist
        }
        Join-Path $deps 'runtimes/linux-x64/native/libe_sqlite3.so' | Should -Exist
        Join-Path $deps 'runtimes/win-x64/native/e_sqlite3.dll' | Should -Exist
    }
    It 'has no StackExchange.Redis.dll outside dependencies/ and no System.Management.Automation.dll anywhere' {
        $all = @(Get-ChildItem -Recurse -File $script:ModuleDir)
        @($all | Where-Object Name -EQ 'StackExchange.Redis.dll' | ForEach-Object { Split-Path -Leaf $_.DirectoryName }) | Should -Be @('dependencies')
        @($all | Where-Object Name -EQ 'System.Management.Automation.dll') | Should -BeNullOrEmpty
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

        $deps = Join-Path $script:ModuleDir 'dependencies'
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
Add-Type -Path (Join-Path $module.ModuleBase 'dependencies/StackExchange.Redis.dll')
$raw = [StackExchange.Redis.ConnectionMultiplexer]::Connect("$Redis,allowAdmin=true")
Remove-PrefixKeys $raw.GetDatabase() $Prefix
$raw.Dispose()
$result | ConvertTo-Json -Compress
'@
        Assert-ScenarioResult $r
        $r.ModuleVersion | Should -Be $version
        $r.ModuleBase | Should -BeLike "$userData*"
        Join-Path $r.ModuleBase 'dependencies/StackExchange.Redis.dll' | Should -Exist
        $r.Commands | Should -Be (Import-PowerShellDataFile $script:ModulePath).CmdletsToExport.Count
    }
}
