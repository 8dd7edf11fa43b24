# Runs the Pester suite in this (child) pwsh against the built module and writes the counts as JSON.
param(
    [Parameter(Mandatory)] [string] $PesterPath,
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $Redis,
    [string] $ServerKind = 'Redis',
    [Parameter(Mandatory)] [string] $ResultPath,
    [string[]] $ExcludeTag = @(),
    # test folders, comma-separated (pwsh -File passes one string); build.ps1 adds the fault-injection
    # suite (tests/faults) for the Redis run
    [string] $Path = (Join-Path $PSScriptRoot 'cmdlets')
)
$ErrorActionPreference = 'Stop'
Import-Module $PesterPath -Force
$env:WRITEBEHIND_TEST_MODULE = (Resolve-Path $ModulePath).Path
$env:WRITEBEHIND_TEST_REDIS = $Redis
$env:WRITEBEHIND_TEST_SERVER_KIND = $ServerKind
$config = New-PesterConfiguration
$config.Run.Path = @($Path -split ',')
$config.Run.PassThru = $true
$config.Output.Verbosity = 'Normal'
if ($ExcludeTag) { $config.Filter.ExcludeTag = $ExcludeTag }
$result = Invoke-Pester -Configuration $config
# The names of what failed go into the result too, so the run's last lines can repeat them (a failure far up a
# long log is otherwise out of sight).
$failedNames = @(
    $result.Failed | ForEach-Object { $_.ExpandedPath }
    $result.FailedBlocks | ForEach-Object { "$($_.ExpandedPath) (set-up)" }
    $result.FailedContainers | ForEach-Object { "$($_.Item) (file)" })
[pscustomobject]@{ Passed = $result.PassedCount; Failed = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount; Skipped = $result.SkippedCount; FailedNames = $failedNames } |
    ConvertTo-Json | Set-Content -Path $ResultPath
