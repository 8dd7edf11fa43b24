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
    Exit codes: 0 flushed (and consistent, with -CheckConsistency), also when stopped on request (Ctrl+C,
    SIGINT: the batch in hand is finished and the totals are printed); 1 the flush failed (nothing is lost:
    the next run re-persists what was in flight); 2 -CheckConsistency found drift; 3 the module could not be
    loaded or Redis could not be reached; 4 the flushers are paused (Suspend-WriteBehindFlush): nothing was
    taken, or the run stopped after the batch in hand.
    WRITEBEHIND_LOG_PATH (or -LogPath) appends one JSON line per run (Invoke-WriteBehindFlush -LogPath).
    -Continuous runs until stopped; -MaxDuration (no default) bounds a run in either mode.
    With -WriterScript <path>, each commit group goes to that script (param($Rows) ...; see
    Get-Help Invoke-WriteBehindFlush -Parameter Writer) instead of the store.
#>
param(
    [string] $ModulePath = 'WriteBehind',
    # default: Connect-WriteBehind reads $env:WRITEBEHIND_REDIS itself (which, unlike -Redis, may hold a password)
    [string] $Redis,
    [string] $Store = $env:WRITEBEHIND_STORE,
    [string] $KeyPrefix = $env:WRITEBEHIND_KEY_PREFIX,
    [int] $BatchSize = 1000,
    # no default: a one-shot flush runs until the queue is empty, -Continuous until stopped
    [timespan] $MaxDuration,
    [timespan] $RetryTimeout = '00:00:30',
    [switch] $Continuous,
    # one JSON line per run; default: $env:WRITEBEHIND_LOG_PATH (none when unset)
    [string] $LogPath = $env:WRITEBEHIND_LOG_PATH,
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
function Format-FlushSummary($Result) {
    'writebehind-flush: dequeued {0}, persisted {1}, coalesced {2}, dead-lettered {3}, recovered {4}, {5:N1} s' -f `
        $Result.Dequeued, $Result.Persisted, $Result.Coalesced, $Result.DeadLettered, $Result.Recovered, $Result.Duration.TotalSeconds
}
$flush = @{ BatchSize = $BatchSize; RetryTimeout = $RetryTimeout }
if ($Continuous) { $flush.Continuous = $true }
if ($PSBoundParameters.ContainsKey('MaxDuration')) { $flush.MaxDuration = $MaxDuration }
if ($LogPath) { $flush.LogPath = $LogPath }
if ($WriterScript) { $flush.Writer = (Get-Command -Name (Resolve-Path -LiteralPath $WriterScript).ProviderPath -CommandType ExternalScript).ScriptBlock }
$limit = if ($PSBoundParameters.ContainsKey('MaxDuration')) { "for at most $MaxDuration" } elseif ($Continuous) { 'until stopped' } else { 'until the queue is empty' }
"writebehind-flush: flushing$(if ($Continuous) { ' continuously' }) $limit (pid $PID)"
# A stop request (SIGINT, Ctrl+C) stops the pipeline: the flush finishes the batch in hand and leaves its
# result in -OutVariable; only this finally block runs then, and it reports and exits 0.
$outcome = 'stopped'
try {
    $null = Invoke-WriteBehindFlush @flush -OutVariable flushed -WarningAction SilentlyContinue
    $outcome = 'flushed'
    Format-FlushSummary $flushed[0]
    if ($flushed[0].Paused) {
        "writebehind-flush: paused$(if ($flushed[0].PausedReason) { " ($($flushed[0].PausedReason))" }); Resume-WriteBehindFlush lets the flush go on"
        exit 4
    }
} catch {
    $outcome = 'failed'
    [Console]::Error.WriteLine("writebehind-flush: failed: $($_.Exception.Message) [$($_.FullyQualifiedErrorId)]")
    exit 1
} finally {
    if ($outcome -eq 'stopped') {
        # output would go to a stopped pipeline: write to the console directly
        if ($flushed) { [Console]::Out.WriteLine((Format-FlushSummary $flushed[0])) }
        [Console]::Out.WriteLine('writebehind-flush: stopped on request; nothing is lost')
        exit 0
    }
}
if ($CheckConsistency) {
    $report = Test-WriteBehindConsistency
    "writebehind-flush: $($report.Summary)"
    # Drift only: items queued by producers meanwhile are pending, not drift (the next run flushes them).
    if ($report.DriftCount -gt 0) { exit 2 }
}
exit 0
