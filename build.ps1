#!/usr/bin/env pwsh
# WriteBehind build: Build | Demo | Test | Bench | Package
#   dotnet tool restore && dotnet pwsh ./build.ps1 Demo   builds, runs the seed's four steps against a throwaway server
#   dotnet tool restore && dotnet pwsh ./build.ps1 Test   builds, runs xunit + Pester, prints "N passed, N failed"
#   dotnet tool restore && dotnet pwsh ./build.ps1 Bench  builds, measures against a throwaway redis-server (issue 4),
#                                                         prints one table, writes out/bench/bench-<timestamp>.json;
#                                                         -BenchScale 0.05 multiplies every item count (a quick run)
#   dotnet tool restore && dotnet pwsh ./build.ps1 Package builds, publishes the module with Publish-PSResource into
#                                                         the local file repository out/repo/ (WriteBehind.<version>.nupkg)
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('Build', 'Demo', 'Test', 'Bench', 'Package')]
    [string] $Task = 'Build',
    [string] $Configuration = 'Release',
    # Bench only: multiplies every item count (1.0: 200k profiles, 1M queued items...).
    [ValidateRange(0.0001, 100.0)]
    [double] $BenchScale = 1.0
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
Set-Location $PSScriptRoot
Import-Module (Join-Path $PSScriptRoot 'build/Servers.psm1') -Force

$Out = Join-Path $PSScriptRoot 'out'
$Version = ([xml](Get-Content (Join-Path $PSScriptRoot 'Directory.Build.props') -Raw)).Project.PropertyGroup.WriteBehindVersion | Select-Object -First 1
$ModuleDir = Join-Path $Out "WriteBehind/$Version"

# The module's files, named one by one: nothing else from the build output is shipped
# (System.Management.Automation.dll in particular must never be). Two builds, one folder each: net8.0/ for
# PowerShell 7.4+ and netstandard2.0/ for Windows PowerShell 5.1; WriteBehind.psm1 imports the one of the
# running edition. In each, the cmdlet assembly sits at the top and the engine and everything it needs go to
# dependencies/, where WriteBehind.dll's resolver (src/WriteBehind/DependencyResolver*.cs) loads them when
# first used: into a private AssemblyLoadContext on PowerShell 7, so another StackExchange.Redis (or System.*)
# already in the session does not conflict.
$ModuleAssemblies = @('WriteBehind.dll')
$CommonDependencies = @(
    'WriteBehind.Engine.dll',
    'StackExchange.Redis.dll', 'Pipelines.Sockets.Unofficial.dll', 'Microsoft.Extensions.Logging.Abstractions.dll',
    'System.IO.Pipelines.dll', 'Microsoft.Extensions.DependencyInjection.Abstractions.dll',
    'Microsoft.Data.Sqlite.dll', 'SQLitePCLRaw.batteries_v2.dll', 'SQLitePCLRaw.core.dll', 'SQLitePCLRaw.provider.e_sqlite3.dll',
    'Npgsql.dll',          # PostgreSQL store
    'MySqlConnector.dll'   # MariaDB/MySQL store
)
$Builds = [ordered]@{
    # .NET 8 provides the System.* packages itself. SQLite's native library for every runtime PowerShell 7
    # runs on (linux-x64 is tested here, the others are laid out the same way).
    'net8.0'         = @{
        Dependencies = $CommonDependencies
        Runtimes     = @('linux-x64', 'linux-arm64', 'linux-musl-x64', 'osx-x64', 'osx-arm64', 'win-x64', 'win-arm64')
    }
    # .NET Framework 4.x needs the System.* packages the netstandard2.0 builds of the above pull in; Windows
    # PowerShell runs on Windows only. Compiled and laid out here, not tested (no Windows machine).
    'netstandard2.0' = @{
        Dependencies = $CommonDependencies + @(
            'Microsoft.Bcl.AsyncInterfaces.dll', 'System.Threading.Channels.dll',
            'System.Buffers.dll', 'System.Memory.dll', 'System.Numerics.Vectors.dll',
            'System.Runtime.CompilerServices.Unsafe.dll', 'System.Threading.Tasks.Extensions.dll',
            'Microsoft.Bcl.HashCode.dll', 'System.Collections.Immutable.dll', 'System.Diagnostics.DiagnosticSource.dll',
            'System.Text.Encodings.Web.dll', 'System.Text.Json.dll')
        Runtimes     = @('win-x64', 'win-x86', 'win-arm64')
    }
}

function Invoke-Native([string] $What, [scriptblock] $Command) {
    & $Command | Out-Host
    if ($LASTEXITCODE -ne 0) { throw "$What failed with exit code $LASTEXITCODE." }
}

function Get-PackageFolder([string] $AssetsFile, [string] $Package) {
    $assets = Get-Content $AssetsFile -Raw | ConvertFrom-Json -AsHashtable
    $lib = $assets['libraries'].Keys | Where-Object { $_ -like "$Package/*" } | Select-Object -First 1
    if (-not $lib) { throw "Package $Package is not in $AssetsFile." }
    foreach ($root in $assets['packageFolders'].Keys) {
        $candidate = Join-Path $root $assets['libraries'][$lib]['path']
        if (Test-Path $candidate) { return $candidate }
    }
    throw "Package folder of $lib not found."
}

# ReadyToRun for the net8.0 build: the SDK's own crossgen2 (Microsoft.NETCore.App.Crossgen2.<this RID>, restored by
# build/crossgen/Crossgen2Restore.csproj) precompiles every managed assembly of net8.0/ against the .NET that runs
# this build (PowerShell 7.6: .NET 10), so PowerShell on that .NET major and this RID JITs none of the module's
# code at its first use (the cold start: import, connect, first flush). The images keep their IL: any other
# runtime (PowerShell 7.4 on .NET 8, which rejects a newer ReadyToRun format; another OS or architecture) ignores
# the native code and JITs the IL as before. Code precompiled against .NET 8 is not used by .NET 10 (measured:
# the same JIT count as plain IL), hence the running .NET, not net8.0's. When crossgen2 cannot be restored (no
# NuGet) or fails, the module keeps plain IL and the build says so. WRITEBEHIND_READYTORUN=0 turns it off.
function Invoke-ReadyToRun([string] $FrameworkDir) {
    if ($env:WRITEBEHIND_READYTORUN -eq '0') { Write-Host '    ReadyToRun: off (WRITEBEHIND_READYTORUN=0)'; return }
    $project = Join-Path $PSScriptRoot 'build/crossgen/Crossgen2Restore.csproj'
    try {
        dotnet restore $project --nologo -v quiet 2>&1 | Out-Null
        if ($LASTEXITCODE -ne 0) { throw "dotnet restore exited with $LASTEXITCODE" }
        $props = (dotnet msbuild $project -nologo -getProperty:BundledNETCoreAppPackageVersion -getProperty:NETCoreSdkRuntimeIdentifier -getProperty:NuGetPackageRoot | Out-String | ConvertFrom-Json).Properties
        $crossgen = Join-Path $props.NuGetPackageRoot "microsoft.netcore.app.crossgen2.$($props.NETCoreSdkRuntimeIdentifier.ToLowerInvariant())/$($props.BundledNETCoreAppPackageVersion)/tools/crossgen2$(if ($IsWindows) { '.exe' })"
        if (-not (Test-Path $crossgen)) { throw "crossgen2 is not at $crossgen" }
        $runtime = [System.Runtime.InteropServices.RuntimeEnvironment]::GetRuntimeDirectory()
        if ([Environment]::Version.Major -ne ([version]$props.BundledNETCoreAppPackageVersion).Major) {
            throw "crossgen2 $($props.BundledNETCoreAppPackageVersion) does not match the .NET $([Environment]::Version) this build runs on"
        }
        $assemblies = @(Get-ChildItem -File (Join-Path $FrameworkDir '*.dll')) + @(Get-ChildItem -File (Join-Path $FrameworkDir 'dependencies/*.dll'))
        # References by file, one per simple name: the module's own copy wins (its load context loads it, e.g.
        # System.IO.Pipelines, which .NET 10 also ships), then the running .NET and PowerShell.
        $references = [ordered]@{}
        foreach ($file in @($assemblies) + @(Get-ChildItem -File (Join-Path $runtime '*.dll')) + @(Get-Item ([System.Management.Automation.PSObject].Assembly.Location))) {
            if (-not $references.Contains($file.BaseName)) { $references[$file.BaseName] = $file.FullName }
        }
        # The images of the last compile are kept under out/r2r-cache, keyed by every input's bytes, the
        # compiler and the runtime and PowerShell compiled against: a Build with nothing changed copies them.
        $inputs = ($assemblies | Sort-Object Name | ForEach-Object { "$($_.Name)=$((Get-FileHash -Algorithm SHA256 $_.FullName).Hash)" }) -join ';'
        $key = [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([Text.Encoding]::UTF8.GetBytes(
            "$crossgen|$runtime|$([Environment]::Version)|$($PSVersionTable.PSVersion)|$inputs"))).Substring(0, 32)
        $cacheRoot = Join-Path $Out 'r2r-cache'
        $cache = Join-Path $cacheRoot $key
        $from = 'compiled'
        if (-not (Test-Path (Join-Path $cache '.complete'))) {
            if (Test-Path $cacheRoot) { Remove-Item -Recurse -Force $cacheRoot }
            $staging = Join-Path $Out 'r2r'
            if (Test-Path $staging) { Remove-Item -Recurse -Force $staging }
            New-Item -ItemType Directory -Force -Path $staging | Out-Null
            foreach ($assembly in $assemblies) {
                $target = Join-Path $staging $assembly.Name
                $arguments = @($assembly.FullName, '-o', $target, '-O') + ($references.Values | ForEach-Object { '-r', $_ })
                $log = & $crossgen @arguments 2>&1
                if ($LASTEXITCODE -ne 0) { throw "crossgen2 failed on $($assembly.Name): $($log | Select-Object -Last 3)" }
            }
            New-Item -ItemType Directory -Force -Path $cacheRoot | Out-Null
            Move-Item $staging $cache
            Set-Content -Path (Join-Path $cache '.complete') -Value $inputs
        } else { $from = 'unchanged, from out/r2r-cache' }
        # All or nothing: the module's assemblies are replaced only once every one compiled.
        foreach ($assembly in $assemblies) { Copy-Item (Join-Path $cache $assembly.Name) $assembly.FullName -Force }
        Write-Host "    ReadyToRun: $($assemblies.Count) net8.0 assemblies for .NET $([Environment]::Version.Major) on $($props.NETCoreSdkRuntimeIdentifier) ($from)"
    } catch {
        Write-Warning "ReadyToRun skipped, the net8.0 assemblies stay plain IL (they JIT at first use): $_"
    }
}

function Invoke-Build {
    Write-Host "==> Building WriteBehind $Version ($Configuration)"
    Invoke-Native 'dotnet build' { dotnet build (Join-Path $PSScriptRoot 'src/WriteBehind/WriteBehind.csproj') -c $Configuration --nologo -v quiet -clp:ErrorsOnly }
    if (Test-Path $ModuleDir) { Remove-Item -Recurse -Force $ModuleDir }
    $sqliteLib = Get-PackageFolder (Join-Path $PSScriptRoot 'src/WriteBehind.Engine/obj/project.assets.json') 'SQLitePCLRaw.lib.e_sqlite3'
    foreach ($framework in $Builds.Keys) {
        $bin = Join-Path $PSScriptRoot "src/WriteBehind/bin/$Configuration/$framework"
        $frameworkDir = Join-Path $ModuleDir $framework
        $dependencyDir = Join-Path $frameworkDir 'dependencies'
        New-Item -ItemType Directory -Force -Path $dependencyDir | Out-Null
        foreach ($file in $ModuleAssemblies + $Builds[$framework].Dependencies) {
            $source = Join-Path $bin $file
            if (-not (Test-Path $source)) { throw "The $framework build output lacks $file." }
            Copy-Item $source $(if ($file -in $ModuleAssemblies) { $frameworkDir } else { $dependencyDir })
        }
        foreach ($rid in $Builds[$framework].Runtimes) {
            $native = Join-Path $sqliteLib "runtimes/$rid/native"
            if (-not (Test-Path $native)) { throw "SQLite has no native library for $rid in $sqliteLib." }
            # The resolver (net8.0) and SqliteNative (netstandard2.0) look in runtimes/<rid>/native/ of dependencies/.
            $target = Join-Path $dependencyDir "runtimes/$rid/native"
            New-Item -ItemType Directory -Force -Path $target | Out-Null
            Copy-Item (Join-Path $native '*') $target
        }
        if ($framework -eq 'net8.0') { Invoke-ReadyToRun $frameworkDir }
    }
    Copy-Item (Join-Path $PSScriptRoot 'src/WriteBehind/WriteBehind.format.ps1xml') $ModuleDir
    Copy-Item (Join-Path $PSScriptRoot 'src/WriteBehind/WriteBehind.psm1') $ModuleDir
    $manifest = Get-Content (Join-Path $PSScriptRoot 'WriteBehind.psd1') -Raw
    $manifest = $manifest -replace "ModuleVersion\s*=\s*'[^']*'", "ModuleVersion        = '$Version'"
    Set-Content -Path (Join-Path $ModuleDir 'WriteBehind.psd1') -Value $manifest -Encoding utf8NoBOM
    # Help: MAML + about topics from docs/ and the laid-out module's cmdlets (read in a child pwsh); fails on missing help.
    Import-Module (Join-Path $PSScriptRoot 'build/Help.psm1') -Force
    Export-WriteBehindHelp -Docs (Join-Path $PSScriptRoot 'docs') -Destination (Join-Path $ModuleDir 'en-US')
    Write-Host "    module: $ModuleDir"
    return (Join-Path $ModuleDir 'WriteBehind.psd1')
}

function Invoke-Demo {
    $manifest = Invoke-Build
    $server = $null
    $redis = $env:WRITEBEHIND_REDIS
    try {
        if (-not $redis) {
            $server = Start-TestServer -WorkDir (Join-Path $Out 'servers')
            $redis = $server.Endpoint
            Write-Host "==> Started a throwaway $($server.Kind) on $redis"
        } else {
            Write-Host '==> Using the Redis named by $env:WRITEBEHIND_REDIS'
        }
        $store = Join-Path $Out 'demo/writebehind.db'
        Remove-Item -Force -ErrorAction SilentlyContinue $store, "$store-wal", "$store-shm"
        # The module creates only its default store's folder: this one is made here.
        New-Item -ItemType Directory -Force -Path (Split-Path $store) | Out-Null
        Invoke-Native 'the demo' { dotnet pwsh -NoProfile -File (Join-Path $PSScriptRoot 'examples/Demo.ps1') -ModulePath $manifest -Redis $redis -Store "sqlite://$store" }
    } finally {
        if ($server) { Stop-TestServer $server; Write-Host "==> Stopped the $($server.Kind) server" }
    }
}

function Read-TrxCounts([string] $Path) {
    $trx = [xml](Get-Content $Path -Raw)
    $c = $trx.TestRun.ResultSummary.Counters
    $ns = @{ t = 'http://microsoft.com/schemas/VisualStudio/TeamTest/2010' }
    $names = @(Select-Xml -Xml $trx -Namespace $ns -XPath '//t:UnitTestResult[@outcome!="Passed" and @outcome!="NotExecuted"]' | ForEach-Object { $_.Node.testName })
    [pscustomobject]@{ Passed = [int]$c.passed; Failed = [int]$c.failed + [int]$c.error + [int]$c.timeout + [int]$c.aborted; Skipped = [int]$c.notExecuted; FailedNames = $names }
}

function Invoke-Test {
    $manifest = Invoke-Build
    $results = Join-Path $Out 'test-results'
    if (Test-Path $results) { Remove-Item -Recurse -Force $results }
    New-Item -ItemType Directory -Force -Path $results | Out-Null
    Invoke-Native 'restoring Pester' { dotnet restore (Join-Path $PSScriptRoot 'tests/pester/PesterRestore.csproj') --nologo -v quiet }
    # PackageDownload puts Pester in the package folder without listing it as a library.
    $pesterProject = Join-Path $PSScriptRoot 'tests/pester/PesterRestore.csproj'
    $pesterVersion = ([xml](Get-Content $pesterProject -Raw)).Project.ItemGroup.PackageDownload.Version.Trim('[', ']')
    $packageRoots = (Get-Content (Join-Path $PSScriptRoot 'tests/pester/obj/project.assets.json') -Raw | ConvertFrom-Json -AsHashtable)['packageFolders'].Keys
    $pester = $packageRoots | ForEach-Object { Join-Path $_ "pester/$pesterVersion/tools/Pester.psd1" } | Where-Object { Test-Path $_ } | Select-Object -First 1
    if (-not $pester) { throw "Pester $pesterVersion was not restored." }

    $passed = 0; $failed = 0; $skipped = 0
    $failedNames = [System.Collections.Generic.List[string]]::new()
    $server = $null
    $kinds = [System.Collections.Generic.List[string]]::new()
    if (Get-Command redis-server -ErrorAction SilentlyContinue) { $kinds.Add('Redis') }
    else { Write-Warning 'redis-server is not on PATH: running the tests against Garnet only (install redis-server to test against Redis).' }
    $kinds.Add('Garnet')
    $postgres = $null
    $mariadb = $null
    try {
        # One throwaway PostgreSQL for the whole run (xunit store contract, Pester PostgreSQL scenario, fault
        # suite): its URI carries no password; the password and CA go through their own variables.
        if (Get-PostgresBin) {
            $postgres = Start-TestPostgres
            Write-Host "==> PostgreSQL on $($postgres.Uri) (TLS, scram-sha-256)"
            $env:WRITEBEHIND_TEST_POSTGRES = $postgres.Uri
            $env:WRITEBEHIND_TEST_POSTGRES_PASSWORD = $postgres.Password
            $env:WRITEBEHIND_TEST_POSTGRES_CA = $postgres.CaFile
            $env:WRITEBEHIND_TEST_POSTGRES_BIN = $postgres.Bin
        } else {
            Write-Warning 'PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): the PostgreSQL tests fail or are skipped (apt-get install -y postgresql).'
        }
        # One throwaway MariaDB for the whole run (xunit store contract, Pester MariaDB scenario).
        if ((Get-Command mariadbd -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/mariadbd)) {
            $mariadb = Start-TestMariaDb
            Write-Host "==> MariaDB $($mariadb.Version) on $($mariadb.Uri)"
            $env:WRITEBEHIND_TEST_MARIADB = $mariadb.Uri
            $env:WRITEBEHIND_TEST_MARIADB_PASSWORD = $mariadb.Password
        } else {
            Write-Warning 'MariaDB is not installed (no mariadbd): the MariaDB tests fail or are skipped (apt-get install -y mariadb-server).'
        }
        foreach ($kind in $kinds) {
            $server = Start-TestServer -Kind $kind -WorkDir (Join-Path $Out 'servers')
            Write-Host "==> $($server.Kind) on $($server.Endpoint)"
            $env:WRITEBEHIND_TEST_REDIS = $server.Endpoint
            $env:WRITEBEHIND_TEST_SERVER_KIND = $server.Kind
            # The engine's tests run against every server the module offers: Garnet's Lua differs from
            # redis-server's (number semantics), and the embedded default must be tested as fully.
            Write-Host "==> xunit (engine, against $kind)"
            $trx = "xunit-$kind.trx"
            dotnet test (Join-Path $PSScriptRoot 'tests/WriteBehind.Engine.Tests/WriteBehind.Engine.Tests.csproj') -c $Configuration --nologo `
                --logger "trx;LogFileName=$trx" --logger 'console;verbosity=minimal' --results-directory $results
            $trxPath = Join-Path $results $trx
            if (Test-Path $trxPath) {
                $c = Read-TrxCounts $trxPath
                $passed += $c.Passed; $failed += $c.Failed; $skipped += $c.Skipped
                foreach ($n in $c.FailedNames) { $failedNames.Add("xunit ($kind): $n") }
                Write-Host "    xunit ($kind): $($c.Passed) passed, $($c.Failed) failed"
            } else {
                Write-Host '    xunit produced no results (build failure?)'; $failed += 1; $failedNames.Add("xunit ($kind): no results")
            }
            Write-Host "==> Pester (cmdlets, against $kind)"
            $json = Join-Path $results "pester-$kind.json"
            # The cmdlet suite and the fault-injection suite (child processes killed with SIGKILL, the server
            # itself killed and restarted from its AOF) run against every server. The Redis Cluster suite (6
            # redis-server processes, a master killed mid-flush) and the security suite (ACL users, TLS,
            # passwords: throwaway redis-servers of their own) need redis-server and run in its pass.
            $suites = @((Join-Path $PSScriptRoot 'tests/cmdlets'), (Join-Path $PSScriptRoot 'tests/faults'))
            if ($kind -eq 'Redis') { $suites += (Join-Path $PSScriptRoot 'tests/cluster'), (Join-Path $PSScriptRoot 'tests/security') }
            dotnet pwsh -NoProfile -File (Join-Path $PSScriptRoot 'tests/Invoke-PesterSuite.ps1') -PesterPath $pester -ModulePath $manifest `
                -Redis $server.Endpoint -ServerKind $kind -ResultPath $json -Path ($suites -join ',')
            if (Test-Path $json) {
                $c = Get-Content $json -Raw | ConvertFrom-Json
                $passed += $c.Passed; $failed += $c.Failed; $skipped += $c.Skipped
                foreach ($n in @($c.FailedNames)) { if ($n) { $failedNames.Add("Pester ($kind): $n") } }
                Write-Host "    Pester ($kind): $($c.Passed) passed, $($c.Failed) failed, $($c.Skipped) skipped"
            } else {
                Write-Host "    Pester ($kind) produced no results"; $failed += 1; $failedNames.Add("Pester ($kind): no results")
            }
            Stop-TestServer $server
            $server = $null
        }
    } finally {
        Stop-TestServer $server
        if ($mariadb) {
            Stop-TestMariaDb $mariadb
            foreach ($v in 'WRITEBEHIND_TEST_MARIADB', 'WRITEBEHIND_TEST_MARIADB_PASSWORD') { Remove-Item "Env:$v" -ErrorAction SilentlyContinue }
            Write-Host '==> Stopped MariaDB'
        }
        if ($postgres) {
            Stop-TestPostgres $postgres
            foreach ($v in 'WRITEBEHIND_TEST_POSTGRES', 'WRITEBEHIND_TEST_POSTGRES_PASSWORD', 'WRITEBEHIND_TEST_POSTGRES_CA', 'WRITEBEHIND_TEST_POSTGRES_BIN') {
                Remove-Item "Env:$v" -ErrorAction SilentlyContinue
            }
            Write-Host '==> Stopped PostgreSQL'
        }
    }
    foreach ($n in $failedNames) { Write-Host "FAILED: $n" }
    Write-Host "$passed passed, $failed failed, $skipped skipped"
    if ($failed -gt 0) { exit 1 }
}

function Invoke-Bench {
    # Not part of Test. Always a throwaway redis-server (never $env:WRITEBEHIND_REDIS: the bench FLUSHALLs it).
    # The module is laid out in a folder of the bench's own: this local $ModuleDir shadows the script's for
    # Invoke-Build, so a concurrent `build.ps1 Build` (which deletes and re-copies out/WriteBehind/<version>)
    # cannot pull the module from under the bench's child processes halfway through.
    $ModuleDir = Join-Path $Out "bench/module/WriteBehind/$Version"
    $manifest = Invoke-Build
    if (-not (Get-Command redis-server -ErrorAction SilentlyContinue)) {
        throw 'Bench needs redis-server and redis-benchmark on PATH (on Debian: apt-get install -y redis-server redis-tools).'
    }
    $server = $null
    $postgres = $null
    $mariadb = $null
    try {
        $server = Start-TestServer -Kind Redis -WorkDir (Join-Path $Out 'servers')
        Write-Host "==> Started a throwaway $($server.Kind) on $($server.Endpoint)"
        # The PostgreSQL flush figure: a throwaway cluster (Start-TestPostgres), skipped when PostgreSQL is not installed.
        if (Get-PostgresBin) {
            $postgres = Start-TestPostgres -Durable
            Write-Host "==> Started a throwaway PostgreSQL $($postgres.Version) on $($postgres.Uri)"
        } else {
            Write-Warning 'PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): no PostgreSQL flush figure.'
        }
        # The MariaDB flush figures (the module's table and a mapped one): a throwaway server (Start-TestMariaDb
        # -Durable: the InnoDB log flushed at every commit), skipped when MariaDB is not installed.
        if ((Get-Command mariadbd -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/mariadbd)) {
            $mariadb = Start-TestMariaDb -Durable
            Write-Host "==> Started a throwaway MariaDB $($mariadb.Version) on $($mariadb.Uri)"
        } else {
            Write-Warning 'MariaDB is not installed (no mariadbd; apt-get install -y mariadb-server): no MariaDB flush figures.'
        }
        & (Join-Path $PSScriptRoot 'bench/Bench.ps1') -ModulePath $manifest -Server $server -Scale $BenchScale `
            -OutDir (Join-Path $Out 'bench') -Configuration $Configuration -Postgres $postgres -MariaDb $mariadb
    } finally {
        if ($server) { Stop-TestServer $server; Write-Host "==> Stopped the $($server.Kind) server" }
        if ($postgres) { Stop-TestPostgres $postgres; Write-Host '==> Stopped PostgreSQL' }
        if ($mariadb) { Stop-TestMariaDb $mariadb; Write-Host '==> Stopped MariaDB' }
    }
}

function Invoke-Package {
    # Publish-PSResource (PSResourceGet ships with pwsh 7.4+) into a local file repository registered under a
    # throwaway name for this run only; the .nupkg installs with Install-PSResource / Save-PSResource from
    # any repository that holds it.
    $manifest = Invoke-Build
    $repo = Join-Path $Out 'repo'
    New-Item -ItemType Directory -Force -Path $repo | Out-Null
    $package = Join-Path $repo "WriteBehind.$Version.nupkg"
    if (Test-Path $package) { Remove-Item -Force $package }
    # On Linux and macOS .NET names no LocalApplicationData folder that does not exist, and PSResourceGet then
    # keeps its repository list in the current directory: make sure the folder is there.
    $appData = [Environment]::GetFolderPath([Environment+SpecialFolder]::LocalApplicationData, [Environment+SpecialFolderOption]::DoNotVerify)
    if ($appData) { New-Item -ItemType Directory -Force -Path $appData | Out-Null }
    $name = 'WriteBehind-build-' + [guid]::NewGuid().ToString('N').Substring(0, 8)
    Register-PSResourceRepository -Name $name -Uri $repo -Trusted
    try {
        Publish-PSResource -Path (Split-Path $manifest) -Repository $name
    } finally {
        Unregister-PSResourceRepository -Name $name
    }
    if (-not (Test-Path $package)) { throw "Publish-PSResource left no $package." }
    Write-Host "    package: $package"
}

switch ($Task) {
    'Build' { $null = Invoke-Build }
    'Demo' { Invoke-Demo }
    'Test' { Invoke-Test }
    'Bench' { Invoke-Bench }
    'Package' { Invoke-Package }
}
