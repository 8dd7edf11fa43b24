# Runs the fault-injection suite (tests/faults, tag Fault) against the built module, like
# tests/Invoke-PesterSuite.ps1 runs tests/cmdlets, and writes the counts as JSON.
#   dotnet pwsh -NoProfile -File tests/faults/Invoke-FaultSuite.ps1 -PesterPath <Pester.psd1> -ModulePath out/WriteBehind/<v>/WriteBehind.psd1 [-Redis host:port] [-ResultPath x.json]
# Without -Redis it starts a throwaway redis-server (build/Servers.psm1) and stops it at the end.
# Run from the repository root: the child processes run 'dotnet pwsh', which needs the tool manifest.
param(
    [Parameter(Mandatory)] [string] $PesterPath,
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Redis,
    [string] $ServerKind = 'Redis',
    [string] $ResultPath,
    # only the Describes / Its whose full name matches (e.g. '*Crash*'); default: every test tagged Fault
    [string[]] $FullName = @()
)
$ErrorActionPreference = 'Stop'
Import-Module $PesterPath -Force
Import-Module (Join-Path $PSScriptRoot '../../build/Servers.psm1') -Force
$server = $null
try {
    if (-not $Redis) {
        $server = Start-TestServer -Kind $ServerKind -WorkDir (Join-Path ([IO.Path]::GetTempPath()) "wb-fault-servers-$PID")
        $Redis = $server.Endpoint
        Write-Host "==> $($server.Kind) on $Redis"
    }
    $env:WRITEBEHIND_TEST_MODULE = (Resolve-Path $ModulePath).Path
    $env:WRITEBEHIND_TEST_REDIS = $Redis
    $env:WRITEBEHIND_TEST_SERVER_KIND = $ServerKind
    $config = New-PesterConfiguration
    $config.Run.Path = $PSScriptRoot
    $config.Run.PassThru = $true
    if ($FullName) { $config.Filter.FullName = $FullName } else { $config.Filter.Tag = 'Fault' }
    $config.Output.Verbosity = 'Detailed'
    $result = Invoke-Pester -Configuration $config
    $counts = [pscustomobject]@{ Passed = $result.PassedCount; Failed = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount; Skipped = $result.SkippedCount }
    if ($ResultPath) { $counts | ConvertTo-Json | Set-Content -Path $ResultPath }
    if ($counts.Failed -gt 0) { exit 1 }
} finally {
    if ($server) { Stop-TestServer $server; Remove-Item -Recurse -Force -ErrorAction SilentlyContinue (Split-Path $server.Dir) }
}
