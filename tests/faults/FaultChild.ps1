# A child process for the fault-injection suite: a flusher or a producer that the suite runs as a real
# process (dotnet pwsh -NoProfile -File FaultChild.ps1 -ConfigPath <json>) and may SIGKILL at any instant.
# It speaks on stdout, one line per event, flushed at once so the parent sees it while this runs:
#   READY <pid>            module imported and connected; <pid> is this pwsh (the process to kill)
#   V <message>            a verbose message of Invoke-WriteBehindFlush (one per batch / recovered lease)
#   RESULT <json>          a FlushResult (Dequeued, Persisted, Coalesced, DeadLettered, InFlight, Recovered)
#   ACK <n> <kind> <count> producer: round <n> was acknowledged by Redis
#   ERROR <errorId> <text> a terminating error; the exit code is then 3
#   DONE                   finished; exit code 0
# Config (JSON): Mode (Flush | FlushLoop | Produce), ModulePath, Redis, Store, KeyPrefix, and per mode:
#   Flush:     BatchSize, LeaseDuration, RetryTimeout (TimeSpan text), optional MaxItems, CommitSize
#   FlushLoop: the same, plus StopFile: flush again and again until StopFile exists and the queue is empty;
#              with KeepGoing a failed flush is reported (FAIL <errorId> <text>) and the loop goes on, and
#              it ends only when nothing is in flight either
#   optional for every mode: Partitions, ReplicaAcks (Connect-WriteBehind's parameters); StartFile: after
#              READY, wait until that file exists before doing anything (so the parent decides when work starts)
#   Produce:   OpsFile (rounds written by Write-FaultRounds), optional DelayMs between rounds,
#              optional StopOnError (stop at the first failed round instead of going on)
param([Parameter(Mandatory)] [string] $ConfigPath)

$ErrorActionPreference = 'Stop'
$cfg = Get-Content -Raw -Path $ConfigPath | ConvertFrom-Json
$out = [Console]::Out

function Send([string] $Line) { $out.WriteLine($Line); $out.Flush() }

function Send-Result($r) {
    $o = [ordered]@{ Dequeued = $r.Dequeued; Persisted = $r.Persisted; Coalesced = $r.Coalesced; DeadLettered = $r.DeadLettered; InFlight = $r.InFlight; Recovered = $r.Recovered }
    Send ('RESULT ' + ($o | ConvertTo-Json -Compress))
}

function Send-Failure($err) {
    $id = ($err.FullyQualifiedErrorId -split ',')[0]
    Send ("ERROR $id " + ($err.Exception.Message -replace '\s+', ' '))
}

try {
    Import-Module $cfg.ModulePath
    $connect = @{ Redis = $cfg.Redis; Store = $cfg.Store; KeyPrefix = $cfg.KeyPrefix }
    if ($cfg.PSObject.Properties['Partitions']) { $connect.Partitions = [int]$cfg.Partitions }
    if ($cfg.PSObject.Properties['ReplicaAcks']) { $connect.ReplicaAcks = [int]$cfg.ReplicaAcks }
    Connect-WriteBehind @connect
} catch {
    Send-Failure $_
    exit 3
}
Send "READY $PID"
if ($cfg.PSObject.Properties['StartFile'] -and $cfg.StartFile) { while (-not (Test-Path $cfg.StartFile)) { Start-Sleep -Milliseconds 5 } }

function Invoke-OneFlush {
    $p = @{
        BatchSize = [int]$cfg.BatchSize
        LeaseDuration = [TimeSpan]$cfg.LeaseDuration
        RetryTimeout = [TimeSpan]$cfg.RetryTimeout
    }
    if ($cfg.PSObject.Properties['MaxItems'] -and $cfg.MaxItems) { $p.MaxItems = [long]$cfg.MaxItems }
    if ($cfg.PSObject.Properties['CommitSize'] -and $cfg.CommitSize) { $p.CommitSize = [int]$cfg.CommitSize }
    # Verbose (stream 4) comes out here as each batch ends; the result object last. On a terminating
    # error the FlushResult written before it still comes through the pipeline.
    Invoke-WriteBehindFlush @p -Verbose 4>&1 | ForEach-Object {
        if ($_ -is [System.Management.Automation.VerboseRecord]) { Send ('V ' + $_.Message) }
        else { Send-Result $_ }
    }
}

try {
    switch ($cfg.Mode) {
        'Flush' {
            Invoke-OneFlush
        }
        'FlushLoop' {
            $keepGoing = $cfg.PSObject.Properties['KeepGoing'] -and $cfg.KeepGoing
            while ($true) {
                $stopping = Test-Path $cfg.StopFile
                if ($keepGoing) {
                    try { Invoke-OneFlush; $status = Get-WriteBehindStatus }
                    catch { Send ("FAIL " + (($_.FullyQualifiedErrorId -split ',')[0]) + ' ' + ($_.Exception.Message -replace '\s+', ' ')); Start-Sleep -Milliseconds 500; continue }
                    if ($stopping -and $status.QueueDepth -eq 0 -and $status.InFlight -eq 0) { break }
                } else {
                    Invoke-OneFlush
                    $status = Get-WriteBehindStatus
                    if ($stopping -and $status.QueueDepth -eq 0) { break }
                }
                if ($status.QueueDepth -eq 0) { Start-Sleep -Milliseconds 50 }
            }
        }
        'Produce' {
            $delay = if ($cfg.PSObject.Properties['DelayMs']) { [int]$cfg.DelayMs } else { 0 }
            $stopOnError = $cfg.PSObject.Properties['StopOnError'] -and $cfg.StopOnError
            $n = 0
            foreach ($line in [IO.File]::ReadLines($cfg.OpsFile)) {
                # one round per line: <kind> TAB <json array of ops>; each op is [id, payload]
                $tab = $line.IndexOf("`t")
                $kind = $line.Substring(0, $tab)
                $ops = ConvertFrom-Json -InputObject $line.Substring($tab + 1) -NoEnumerate
                $n++
                $failed = $null
                try {
                    switch ($kind) {
                        'set' {
                            $ops | ForEach-Object { [pscustomobject]@{ UserId = $_[0]; Profile = $_[1] } } |
                                Set-UserProfile -ErrorVariable failed -ErrorAction SilentlyContinue
                        }
                        'patch' { Add-WriteQueueItem -Item @($ops | ForEach-Object { "update:user:$($_[0]):$($_[1])" }) -ErrorVariable failed -ErrorAction SilentlyContinue }
                        'remove' { Remove-UserProfile -UserId @($ops | ForEach-Object { $_[0] }) -Confirm:$false -ErrorVariable failed -ErrorAction SilentlyContinue }
                        'rawdelete' { Add-WriteQueueItem -Item @($ops | ForEach-Object { "delete:user:$($_[0])" }) -ErrorVariable failed -ErrorAction SilentlyContinue }
                        default { throw "unknown round kind '$kind'" }
                    }
                } catch {
                    $failed = @($_)
                }
                if ($failed) {
                    Send-Failure $failed[0]
                    if ($stopOnError) { exit 3 }
                } else {
                    Send "ACK $n $kind $($ops.Count)"
                }
                if ($delay -gt 0) { Start-Sleep -Milliseconds $delay }
            }
        }
        default { throw "unknown mode '$($cfg.Mode)'" }
    }
} catch {
    Send-Failure $_
    exit 3
}
Send 'DONE'
exit 0
