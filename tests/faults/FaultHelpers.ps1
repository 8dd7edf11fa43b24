# Helpers for the fault-injection suite (Faults.Tests.ps1): generated workloads with an independent model
# of the state they must end in, real child processes (FaultChild.ps1) that can be SIGKILLed, and the
# end-state check (cache == model, store == cache, byte for byte and version for version).
. (Join-Path $PSScriptRoot '../cmdlets/TestHelpers.ps1')
Import-Module (Join-Path $PSScriptRoot '../../build/Servers.psm1') -Force

$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:ChildScript = Join-Path $PSScriptRoot 'FaultChild.ps1'
$script:FaultWork = Join-Path ([IO.Path]::GetTempPath()) ('wb-faults-' + [guid]::NewGuid().ToString('N').Substring(0, 12))
New-Item -ItemType Directory -Force -Path $script:FaultWork | Out-Null

# Raw SQLite reads below use the Microsoft.Data.Sqlite that TestHelpers.ps1 loaded (and pointed at the
# module's native library); the engine's own types live in the module's private AssemblyLoadContext and
# cannot be named from PowerShell.

function Write-FaultLog([string] $Text) { Write-Host "    [fault] $Text" }

# ---------------------------------------------------------------------------------------------------
# Workloads and the model
# ---------------------------------------------------------------------------------------------------

Add-Type -Path (Join-Path $PSScriptRoot 'FaultModel.cs')

# A queue of $Items mixed items over $Ids ids (FaultModel.cs: Generate says what each kind holds).
function New-FaultWorkload {
    param(
        [Parameter(Mandatory)] [System.Random] $Random,
        [Parameter(Mandatory)] [int] $Items,
        [Parameter(Mandatory)] [int] $Ids,
        [string] $IdPrefix = 'c',
        [int] $Set = 30, [int] $Patch = 50, [int] $Remove = 12, [int] $RawDelete = 8,
        [int] $MaxRound = 400
    )
    [WriteBehindFaults.FaultModel]::Generate($Random, $Items, $Ids, $IdPrefix, $Set, $Patch, $Remove, $RawDelete, $MaxRound, 0, 0)
}

# The end state the rounds must leave, computed without the engine (FaultModel.cs: Expect).
function Get-FaultExpectation([Parameter(Mandatory)] $Rounds) {
    [WriteBehindFaults.FaultModel]::Expect([WriteBehindFaults.FaultRound[]]@($Rounds), $null)
}

# Produces the rounds in this process, in order: Set-UserProfile, Remove-UserProfile, and patches / raw
# deletes alternately through Add-WriteQueueItem -Item and a raw LPUSH of the whole round (to
# <prefix>write_queue, or through -RawPush { param([string[]] $Items) ... } where the items must go elsewhere).
function Invoke-FaultRounds {
    param([Parameter(Mandatory)] $Rounds, [Parameter(Mandatory)] [string] $Prefix, $Database = $script:Db, [scriptblock] $RawPush)
    $queue = [StackExchange.Redis.RedisKey]"$($Prefix)write_queue"
    $i = 0
    foreach ($r in $Rounds) {
        $i++
        switch ($r.Kind) {
            'set' { $r.Ops | ForEach-Object { [pscustomobject]@{ UserId = $_.Id; Profile = $_.Json } } | Set-UserProfile -ErrorAction Stop }
            'remove' { Remove-UserProfile -UserId ([string[]]@($r.Ops | ForEach-Object Id)) -Confirm:$false -ErrorAction Stop }
            default {
                $items = [string[]]@(foreach ($op in $r.Ops) { if ($r.Kind -eq 'patch') { "update:user:$($op.Id):$($op.Json)" } else { "delete:user:$($op.Id)" } })
                if ($i % 2 -eq 0) {
                    Add-WriteQueueItem -Item $items -ErrorAction Stop
                } elseif ($RawPush) {
                    & $RawPush $items
                } else {
                    $values = [StackExchange.Redis.RedisValue[]]::new($items.Count)
                    for ($j = 0; $j -lt $items.Count; $j++) { $values[$j] = [StackExchange.Redis.RedisValue]::op_Implicit($items[$j]) }
                    $null = $Database.ListLeftPush($queue, $values)
                }
            }
        }
    }
}

# Writes rounds for a FaultChild.ps1 producer: one line per round, '<kind> TAB [[id, json], ...]'.
function Write-FaultRounds([Parameter(Mandatory)] $Rounds, [Parameter(Mandatory)] [string] $Path) {
    $lines = foreach ($r in $Rounds) { $r.Kind + "`t" + [WriteBehindFaults.FaultModel]::RoundJson($r) }
    [IO.File]::WriteAllLines($Path, [string[]]$lines)
}

# ---------------------------------------------------------------------------------------------------
# Reading the three places
# ---------------------------------------------------------------------------------------------------

function Read-FaultStore([Parameter(Mandatory)] [string] $Path) {
    $rows = @{}
    if ($Path -like 'mapped+postgres*://*') {
        # A mapped PostgreSQL table (app_users, the profile text in its JSON column): versions and tombstones
        # from wb_versions, the JSON from the user's row (gone for a deleted profile).
        $name = ($Path -replace '\?.*$', '') -replace '^.*/', ''
        $lines = Invoke-TestPsql "SELECT v.key, coalesce(translate(encode(convert_to(t.profile, 'UTF8'), 'base64'), E'\n', ''), '<null>'), v.version, v.deleted FROM wb_versions v LEFT JOIN app_users t ON t.id = v.key" $name
        foreach ($line in $lines) {
            if (-not $line) { continue }
            $id, $json64, $version, $deleted = "$line" -split "`t"
            $rows[$id] = [pscustomobject]@{ Json = $(if ($json64 -eq '<null>') { $null } else { [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($json64)) }); Version = [long]$version; Deleted = $deleted -eq 't' }
        }
        return $rows
    }
    if ($Path -like 'mysql://*') {
        # A MariaDB store (its URI): read with the mariadb client, the JSON as hex so it comes through byte for byte.
        $name = ($Path -replace '\?.*$', '') -replace '^.*/', ''
        foreach ($line in (Invoke-FaultMariaDb "SELECT user_id, COALESCE(HEX(json), '<null>'), version, deleted FROM user_profiles" $name)) {
            if (-not $line) { continue }
            $id, $hex, $version, $deleted = "$line" -split "`t"
            $rows[$id] = [pscustomobject]@{ Json = $(if ($hex -eq '<null>') { $null } else { [Text.Encoding]::UTF8.GetString([Convert]::FromHexString($hex)) }); Version = [long]$version; Deleted = $deleted -eq '1' }
        }
        return $rows
    }
    if ($Path -like 'postgres*://*') {
        # A PostgreSQL store (its URI): read with psql, the JSON as base64 so it comes through byte for byte.
        $name = ($Path -replace '\?.*$', '') -replace '^.*/', ''
        $lines = Invoke-TestPsql "SELECT user_id, coalesce(translate(encode(convert_to(json, 'UTF8'), 'base64'), E'\n', ''), '<null>'), version, deleted FROM user_profiles" $name
        foreach ($line in $lines) {
            if (-not $line) { continue }
            $id, $json64, $version, $deleted = "$line" -split "`t"
            $rows[$id] = [pscustomobject]@{ Json = $(if ($json64 -eq '<null>') { $null } else { [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($json64)) }); Version = [long]$version; Deleted = $deleted -eq 't' }
        }
        return $rows
    }
    $conn = [Microsoft.Data.Sqlite.SqliteConnection]::new("Data Source=$Path;Mode=ReadOnly;Pooling=False")
    $conn.Open()
    try {
        $cmd = $conn.CreateCommand()
        $cmd.CommandText = 'SELECT user_id, json, version, deleted FROM user_profiles'
        $r = $cmd.ExecuteReader()
        while ($r.Read()) {
            $rows[$r.GetString(0)] = [pscustomobject]@{ Json = $(if ($r.IsDBNull(1)) { $null } else { $r.GetString(1) }); Version = $r.GetInt64(2); Deleted = $r.GetInt64(3) -eq 1 }
        }
        $r.Dispose()
    } finally { $conn.Dispose() }
    $rows
}

function Read-FaultCache([Parameter(Mandatory)] [string] $Prefix, $Database = $script:Db) {
    $cache = @{}; $versions = @{}
    foreach ($e in $Database.HashGetAll("$($Prefix)user_profiles")) { $cache[([string]$e.Name).Substring(5)] = [string]$e.Value }
    foreach ($e in $Database.HashGetAll("$($Prefix)user_profiles:versions")) { $versions[([string]$e.Name).Substring(5)] = [long]$e.Value }
    [pscustomobject]@{ Cache = $cache; Versions = $versions }
}

# Key names matching a pattern. (A PowerShell cast [RedisResult[]] of a KEYS reply wraps the reply in a
# one-element array instead of converting it, so the reply is read by index.)
function Get-FaultKeys([Parameter(Mandatory)] [string] $Pattern, $Database = $script:Db) {
    $r = $Database.Execute('KEYS', [object[]]@($Pattern))
    for ($i = 0; $i -lt $r.Length; $i++) { [string]$r[$i] }
}

function Remove-FaultKeys([Parameter(Mandatory)] [string] $Prefix, $Database = $script:Db) {
    foreach ($k in @(Get-FaultKeys "$Prefix*" -Database $Database)) { $null = $Database.KeyDelete($k) }
}

# Queue depth, leases (ZSET members and lease lists, with the items they hold) and dead letters.
function Get-FaultQueueState([Parameter(Mandatory)] [string] $Prefix, $Database = $script:Db) {
    $leaseKeys = @(Get-FaultKeys "$($Prefix)write_queue:lease:*" -Database $Database)
    $leased = 0
    foreach ($k in $leaseKeys) { $leased += $Database.ListLength($k) }
    [pscustomobject]@{
        Depth = $Database.ListLength("$($Prefix)write_queue")
        Leases = $Database.SortedSetLength("$($Prefix)write_queue:leases")
        LeaseLists = $leaseKeys.Count
        LeaseKeys = $leaseKeys
        Leased = $leased
        Dead = $Database.ListLength("$($Prefix)write_queue:dead")
    }
}

<#
 The end-state check. For every id the cache, the versions hash, the store or the model knows:
   model      cache version == model version, cache JSON == model JSON (byte for byte; absent when deleted)
   store      live in the cache   -> store row with the same JSON and version, deleted = 0
              deleted (version>0) -> store tombstone: deleted = 1, JSON NULL, the same version
              never written (0)   -> no store row
 $Expected: id -> { Json, [AltJson], Version } (FaultExpected) or $null (then only store == cache is checked).
 Returns { Ids, Live, Deleted, DriftCount, ByKind, Drift (first 25 lines) }.
#>
function Compare-FaultState {
    param(
        [Parameter(Mandatory)] [string] $Prefix,
        [Parameter(Mandatory)] [string] $StorePath,
        $Expected,
        $Database = $script:Db,
        # the cache as Read-FaultCache returns it, read elsewhere (e.g. from every partition of a cluster)
        $CacheState
    )
    $c = if ($CacheState) { $CacheState } else { Read-FaultCache -Prefix $Prefix -Database $Database }
    $store = Read-FaultStore $StorePath
    $ids = [System.Collections.Generic.HashSet[string]]::new([StringComparer]::Ordinal)
    foreach ($set in @($c.Cache.Keys, $c.Versions.Keys, $store.Keys)) { foreach ($k in $set) { $null = $ids.Add($k) } }
    if ($null -ne $Expected) { foreach ($k in $Expected.Keys) { $null = $ids.Add($k) } }
    $drift = [System.Collections.Generic.List[string]]::new()
    $byKind = [ordered]@{}
    $add = { param($kind, $text) $byKind[$kind] = 1 + [int]$byKind[$kind]; if ($drift.Count -lt 25) { $drift.Add("$kind $text") } }
    $live = 0; $deleted = 0
    foreach ($id in $ids) {
        $json = $c.Cache[$id]
        $ver = if ($c.Versions.ContainsKey($id)) { $c.Versions[$id] } else { 0 }
        if ($null -ne $json) { $live++ } elseif ($ver -gt 0) { $deleted++ }
        if ($null -ne $Expected) {
            $e = $Expected[$id]
            if ($null -eq $e) { & $add 'unexpected-id' "$id (cache version $ver)" }
            else {
                if ($ver -ne $e.Version) { & $add 'version' "$id cache $ver, expected $($e.Version)" }
                if (-not [string]::Equals($json, $e.Json, [StringComparison]::Ordinal) -and
                    -not ($null -ne $e.AltJson -and [string]::Equals($json, $e.AltJson, [StringComparison]::Ordinal))) {
                    & $add 'cache-json' "$id cache '$json', expected '$($e.Json)'$(if ($e.AltJson) { " or '$($e.AltJson)'" })"
                }
            }
        }
        if ($null -ne $json -and $ver -eq 0) { & $add 'unversioned' "$id is cached without a version" }
        $row = $store[$id]
        if ($ver -eq 0 -and $null -eq $json) {
            if ($null -ne $row) { & $add 'store-extra' "$id store has version $($row.Version) but the cache never wrote it" }
        } elseif ($null -eq $row) {
            & $add 'store-missing' "$id (cache version $ver)"
        } else {
            if ($row.Version -ne $ver) { & $add 'store-version' "$id store $($row.Version), cache $ver" }
            if ($null -eq $json) {
                if (-not $row.Deleted -or $null -ne $row.Json) { & $add 'store-not-tombstone' "$id deleted in the cache, store has '$($row.Json)'" }
            } elseif ($row.Deleted) {
                & $add 'store-deleted' "$id live in the cache, a tombstone in the store"
            } elseif (-not [string]::Equals($row.Json, $json, [StringComparison]::Ordinal)) {
                & $add 'store-json' "$id store '$($row.Json)', cache '$json'"
            }
        }
    }
    $count = 0; foreach ($v in $byKind.Values) { $count += $v }
    [pscustomobject]@{ Ids = $ids.Count; Live = $live; Deleted = $deleted; DriftCount = $count; ByKind = $byKind; Drift = $drift }
}

function Format-FaultDrift($Report) {
    if ($Report.DriftCount -eq 0) { return 'no drift' }
    "$($Report.DriftCount) drift(s): " + (($Report.ByKind.GetEnumerator() | ForEach-Object { "$($_.Key)=$($_.Value)" }) -join ', ') +
        "`n  " + ($Report.Drift -join "`n  ")
}

# ---------------------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------------------

# Starts 'dotnet pwsh -NoProfile -File FaultChild.ps1 -ConfigPath <json>' from the repository root (where
# the tool manifest resolves); stdout and stderr go to files the test reads while the child runs.
function Start-FaultChild {
    param([Parameter(Mandatory)] [string] $Name, [Parameter(Mandatory)] [hashtable] $Config)
    $cfg = @{ ModulePath = $script:ModulePath } + $Config
    $base = Join-Path $script:FaultWork $Name
    $cfgPath = "$base.json"
    $cfg | ConvertTo-Json -Depth 5 | Set-Content -Path $cfgPath -Encoding utf8NoBOM
    $p = Start-Process -FilePath 'dotnet' -ArgumentList @('pwsh', '-NoProfile', '-NonInteractive', '-File', $script:ChildScript, '-ConfigPath', $cfgPath) `
        -WorkingDirectory $script:RepoRoot -RedirectStandardOutput "$base.out" -RedirectStandardError "$base.err" -PassThru
    [pscustomobject]@{ Name = $Name; Process = $p; Out = "$base.out"; Err = "$base.err"; WorkerPid = 0; ReadyAt = $null; Started = [DateTime]::UtcNow }
}

function Read-FaultChildLines($Child) {
    if (-not (Test-Path $Child.Out)) { return @() }
    $fs = [IO.FileStream]::new($Child.Out, [IO.FileMode]::Open, [IO.FileAccess]::Read, [IO.FileShare]::ReadWrite)
    try { $text = [IO.StreamReader]::new($fs).ReadToEnd() } finally { $fs.Dispose() }
    @($text -split "`n" | ForEach-Object { $_.TrimEnd("`r") } | Where-Object { $_ })
}

function Get-FaultChildError($Child) {
    if (-not (Test-Path $Child.Err)) { return '' }
    $fs = [IO.FileStream]::new($Child.Err, [IO.FileMode]::Open, [IO.FileAccess]::Read, [IO.FileShare]::ReadWrite)
    try { [IO.StreamReader]::new($fs).ReadToEnd() } finally { $fs.Dispose() }
}

# Waits until the child wrote a line matching $Pattern (returns it) or exited or timed out ($null).
function Wait-FaultChildLine($Child, [string] $Pattern, [double] $TimeoutSeconds = 60) {
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ($true) {
        $hit = Read-FaultChildLines $Child | Where-Object { $_ -match $Pattern } | Select-Object -First 1
        if ($hit) { return $hit }
        if ($Child.Process.HasExited -or [DateTime]::UtcNow -gt $deadline) {
            return (Read-FaultChildLines $Child | Where-Object { $_ -match $Pattern } | Select-Object -First 1)
        }
        Start-Sleep -Milliseconds 15
    }
}

# Waits for READY and remembers the pid of the pwsh doing the work ('dotnet pwsh' is two wrappers deep).
function Wait-FaultChildReady($Child, [double] $TimeoutSeconds = 90) {
    $line = Wait-FaultChildLine $Child '^(READY|ERROR) ' $TimeoutSeconds
    if ($line -notmatch '^READY (\d+)') {
        throw "child $($Child.Name) did not get ready: '$line' $(Get-FaultChildError $Child)"
    }
    $Child.WorkerPid = [int]$Matches[1]
    $Child.ReadyAt = [DateTime]::UtcNow
    $Child
}

# SIGKILL (Process.Kill on Unix) of the worker pwsh. Returns $true when it was alive and is now killed.
function Stop-FaultChildHard($Child) {
    $killed = $false
    if ($Child.WorkerPid) {
        try {
            $w = [System.Diagnostics.Process]::GetProcessById($Child.WorkerPid)
            if (-not $w.HasExited) { $w.Kill(); $killed = $true; $null = $w.WaitForExit(10000) }
        } catch [System.ArgumentException] { } catch [System.InvalidOperationException] { }
    }
    if (-not $Child.Process.HasExited) {
        if (-not $Child.WorkerPid) { try { $Child.Process.Kill($true); $killed = $true } catch { } }
        $null = $Child.Process.WaitForExit(15000)
        if (-not $Child.Process.HasExited) { try { $Child.Process.Kill($true) } catch { } }
    }
    $killed
}

function Wait-FaultChildExit($Child, [double] $TimeoutSeconds = 120) {
    if (-not $Child.Process.WaitForExit([int]($TimeoutSeconds * 1000))) {
        $null = Stop-FaultChildHard $Child
        throw "child $($Child.Name) did not finish within $TimeoutSeconds s; killed. Last output: $((Read-FaultChildLines $Child | Select-Object -Last 5) -join ' | ') $(Get-FaultChildError $Child)"
    }
    $Child.Process.WaitForExit()
    # The worker's exit code comes through the two dotnet wrappers.
    $Child.Process.ExitCode
}

function Get-FaultChildResults($Child) {
    @(Read-FaultChildLines $Child | Where-Object { $_ -like 'RESULT *' } | ForEach-Object { $_.Substring(7) | ConvertFrom-Json })
}

# SQL on the test MariaDB server (WRITEBEHIND_TEST_MARIADB / _PASSWORD) through the mariadb client.
function Invoke-FaultMariaDb([string] $Sql, [string] $Database) {
    if ($env:WRITEBEHIND_TEST_MARIADB -notmatch '^(?:mysql|mariadb)://([^@]+)@([^:/]+):(\d+)/([^?]+)') { throw "Unexpected WRITEBEHIND_TEST_MARIADB: $($env:WRITEBEHIND_TEST_MARIADB)" }
    $user, $dbHost, $port = $Matches[1], $Matches[2], $Matches[3]
    if (-not $Database) { $Database = $Matches[4] }
    $previous = $env:MYSQL_PWD
    $env:MYSQL_PWD = $env:WRITEBEHIND_TEST_MARIADB_PASSWORD
    try {
        $out = & mariadb --no-defaults --default-character-set=utf8mb4 -h $dbHost -P $port -u $user -N -B -e $Sql $Database 2>&1
        if ($LASTEXITCODE -ne 0) { throw "mariadb failed: $($out -join "`n")" }
        $out
    } finally { $env:MYSQL_PWD = $previous }
}

# A fresh database on the test MariaDB server; returns its store URI (no password).
function New-FaultMariaDbDatabase {
    $name = 'wbf_' + [guid]::NewGuid().ToString('N').Substring(0, 16)
    $null = Invoke-FaultMariaDb "CREATE DATABASE $name CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ($env:WRITEBEHIND_TEST_MARIADB -replace '\?.*$', '') -replace '/[^/]+$', "/$name"
}

function Remove-FaultStore([string] $StorePath) {
    if ($StorePath -like 'postgres*://*') { Remove-TestPostgresDatabase $StorePath; return }
    if ($StorePath -like 'mapped+postgres*://*') { Remove-TestPostgresDatabase ($StorePath -replace '^mapped\+', ''); return }
    if ($StorePath -like 'mysql://*') {
        try { $null = Invoke-FaultMariaDb "DROP DATABASE IF EXISTS $(($StorePath -replace '\?.*$', '') -replace '^.*/', '')" } catch { Write-Warning $_ }
        return
    }
    if ($StorePath) { Remove-Item -Recurse -Force -ErrorAction SilentlyContinue (Split-Path $StorePath) }
}

<#
 Runs fresh flusher children one after another and SIGKILLs each at a random moment, until $MinKills
 children were killed alive or the queue is empty. The moment is measured from the child's READY (module
 loaded, connected; its flush starts next):
   - one kill in four lands in the child's start-up (uniform in 0.05 s .. o, o = the time until its
     flush first takes items from the queue: script loading, store opening, recovery of expired leases);
   - the others land mid-flush: o + uniform(0, 2 * share / R), where share is the queue's depth divided
     by (kills still to do + 3) and R the items per second the children were seen to take.
 A flusher drains 10,000+ items/s, so fixed delays of 0.3-3 s would empty an 80,000-item queue after two
 or three kills; this keeps every kill on a queue that still holds items. The delays and moments come
 from $Random (so a seed replays them), the state each kill hits depends on timing. One record per child.
#>
function Invoke-FaultKillRun {
    param(
        [Parameter(Mandatory)] [System.Random] $Random,
        [Parameter(Mandatory)] [hashtable] $ChildConfig,
        [Parameter(Mandatory)] [string] $Prefix,
        [int] $MinKills = 20,
        # ... of which at least this many leave a batch of the killed child's own in flight (kills go on
        # past MinKills until they do, within MaxChildren and while the queue holds items)
        [int] $MinInFlightKills = 2,
        [int] $MaxChildren = 60,
        # merged into the config of every second child (e.g. a smaller -CommitSize, so kills also land
        # around store commits and acks of a flusher's own leases, not only in its first big group)
        [hashtable] $AlternateConfig = @{}
    )
    $overhead = 0.45; $rate = 10000.0
    $records = [System.Collections.Generic.List[object]]::new()
    $kills = 0; $n = 0; $inFlightKills = 0
    while (($kills -lt $MinKills -or $inFlightKills -lt $MinInFlightKills) -and $n -lt $MaxChildren) {
        $before = Get-FaultQueueState $Prefix
        if ($before.Depth -eq 0) { break }
        $n++
        $config = $ChildConfig.Clone()
        if ($n % 2 -eq 0) { foreach ($k in $AlternateConfig.Keys) { $config[$k] = $AlternateConfig[$k] } }
        $child = Start-FaultChild -Name "kill-$n" -Config $config
        $null = Wait-FaultChildReady $child
        $startup = $Random.Next(4) -eq 0
        # Each child is meant to take about this many items: a share of what is left, small enough that the
        # queue outlasts the kills still to make even when the rate is misjudged (a busy machine, a faster
        # server); what is left at the end goes to the final flush.
        $share = $before.Depth / (2 * [Math]::Max(0, $MinKills - $kills) + 4)
        $delay = if ($startup) { 0.05 + $Random.NextDouble() * ([Math]::Max(0.06, $overhead) - 0.05) }
                 else { $overhead + $Random.NextDouble() * 2 * $share / $rate }
        $delay = [Math]::Min($delay, 3.0)
        # Sleep until the moment, noting when the queue first shrinks (to learn the start-up time).
        $queueKey = "$($Prefix)write_queue"
        $firstTake = $null
        while ($true) {
            $elapsed = ([DateTime]::UtcNow - $child.ReadyAt).TotalSeconds
            if ($elapsed -ge $delay) { break }
            if ($null -eq $firstTake -and $script:Db.ListLength($queueKey) -lt $before.Depth) { $firstTake = $elapsed }
            Start-Sleep -Milliseconds ([int][Math]::Max(1, [Math]::Min(10, 1000 * ($delay - $elapsed))))
        }
        $actual = ([DateTime]::UtcNow - $child.ReadyAt).TotalSeconds
        $killed = Stop-FaultChildHard $child
        $after = Get-FaultQueueState $Prefix
        $lines = Read-FaultChildLines $child
        # one verbose line per store commit (older engines: per batch)
        $commits = @($lines | Where-Object { $_ -like 'V batch *' -or $_ -like 'V commit*' }).Count
        $consumed = $before.Depth - $after.Depth
        if ($null -ne $firstTake) { $overhead = 0.5 * $overhead + 0.5 * [Math]::Max(0.05, $firstTake) }
        if ($killed -and $null -ne $firstTake -and $actual - $overhead -gt 0.1 -and $consumed -gt 0) { $rate = [Math]::Max(2000, 0.5 * $rate + 0.5 * $consumed / ($actual - $overhead)) }
        $new = @($after.LeaseKeys | Where-Object { $_ -notin $before.LeaseKeys })
        if ($killed) { $kills++ }
        if ($killed -and $new.Count -gt 0) { $inFlightKills++ }
        $records.Add([pscustomobject]@{
            Child = $n; Killed = $killed; Moment = $(if ($startup) { 'start-up' } else { 'mid-flush' })
            CommitSize = $(if ($config.ContainsKey('CommitSize')) { $config.CommitSize } else { 'default' })
            DelayMs = [int]($actual * 1000); Commits = $commits
            RecoveredLeases = @($lines | Where-Object { $_ -like 'V recovered*' }).Count
            DepthBefore = $before.Depth; DepthAfter = $after.Depth
            LeasesBefore = $before.Leases; LeasesAfter = $after.Leases
            NewLeases = $new.Count; LeasedItemsAfter = $after.Leased
        })
    }
    , $records
}

function Write-FaultKillTable($Records) {
    Write-FaultLog 'child  killed  moment     commit_size  delay_ms  commits  leases_recovered  depth_before  depth_after  leases_after  new_leases  leased_items'
    foreach ($k in $Records) {
        Write-FaultLog ('{0,5}  {1,6}  {2,-9}  {11,11}  {3,8}  {4,7}  {5,16}  {6,12}  {7,11}  {8,12}  {9,10}  {10,12}' -f $k.Child, $k.Killed, $k.Moment, $k.DelayMs, $k.Commits, $k.RecoveredLeases, $k.DepthBefore, $k.DepthAfter, $k.LeasesAfter, $k.NewLeases, $k.LeasedItemsAfter, $k.CommitSize)
    }
}
