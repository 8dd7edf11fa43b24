#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Flushes the WriteBehind queue into the store, for cron, systemd and Task Scheduler.
.DESCRIPTION
    Runs Invoke-WriteBehindFlush once (or -Continuous until stopped) and exits with a code a scheduler can
    act on. Connection settings come from the parameters or from the environment (WRITEBEHIND_REDIS,
    WRITEBEHIND_STORE, WRITEBEHIND_STORE_USER, WRITEBEHIND_STORE_PASSWORD, WRITEBEHIND_KEY_PREFIX,
    WRITEBEHIND_PARTITIONS, WRITEBEHIND_REDIS_USER, WRITEBEHIND_REDIS_PASSWORD, WRITEBEHIND_REDIS_TLS,
    WRITEBEHIND_REDIS_CA). Passwords belong in WRITEBEHIND_REDIS_PASSWORD and WRITEBEHIND_STORE_PASSWORD (a file
    the service manager loads, e.g. systemd's EnvironmentFile), never on the command line: -Redis refuses one.
    With -WriterScript <path>, each commit group goes to that script (param($Rows) ...; see
    Get-Help Invoke-WriteBehindFlush -Parameter Writer) instead of the store.
    Exit codes: 0 flushed (and consistent, with -CheckConsistency); 1 the flush failed (nothing is lost: the
    next run re-persists what was in flight); 2 -CheckConsistency found drift; 3 the module could not be
    loaded or Redis could not be reached.
#>
param(
    [string] $ModulePath = 'WriteBehind',
    # default: Connect-WriteBehind reads $env:WRITEBEHIND_REDIS itself (which, unlike -Redis, may hold a password)
    [string] $Redis,
    [string] $Store = $env:WRITEBEHIND_STORE,
    [string] $KeyPrefix = $env:WRITEBEHIND_KEY_PREFIX,
    [int] $BatchSize = 1000,
    [timespan] $MaxDuration = '00:10:00',
    [timespan] $RetryTimeout = '00:00:30',
    [switch] $Continuous,
    [switch] $CheckConsistency,
    # a .ps1 holding param($Rows) ...: flush into it (Invoke-WriteBehindFlush -Writer) instead of the store
    [string] $WriterScript
)
$ErrorActionPreference = 'Stop'
try {
    Import-Module $ModulePath
    $connect = @{}
    if ($Redis) { $connect.Redis = $Redis }
    if ($Store) { $connect.Store = $Store }
    if ($KeyPrefix) { $connect.KeyPrefix = $KeyPrefix }
    Connect-WriteBehind @connect
} catch {
    [Console]::Error.WriteLine("writebehind-flush: cannot start: $($_.Exception.Message) [$($_.FullyQualifiedErrorId)]")
    exit 3
}
try {
    $flush = @{ BatchSize = $BatchSize; RetryTimeout = $RetryTimeout }
    if ($Continuous) { $flush.Continuous = $true }
    if ($WriterScript) { $flush.Writer = (Get-Command -Name (Resolve-Path -LiteralPath $WriterScript).ProviderPath -CommandType ExternalScript).ScriptBlock }
    if ($Continuous -or $PSBoundParameters.ContainsKey('MaxDuration')) { $flush.MaxDuration = $MaxDuration }
    $result = Invoke-WriteBehindFlush @flush
    'writebehind-flush: dequeued {0}, persisted {1}, coalesced {2}, dead-lettered {3}, recovered {4}, {5:N1} s' -f `
        $result.Dequeued, $result.Persisted, $result.Coalesced, $result.DeadLettered, $result.Recovered, $result.Duration.TotalSeconds
} catch {
    [Console]::Error.WriteLine("writebehind-flush: failed: $($_.Exception.Message) [$($_.FullyQualifiedErrorId)]")
    exit 1
}
if ($CheckConsistency) {
    $report = Test-WriteBehindConsistency
    "writebehind-flush: $($report.Summary)"
    # Drift only: items queued by producers meanwhile are pending, not drift (the next run flushes them).
    if ($report.DriftCount -gt 0) { exit 2 }
}
exit 0
