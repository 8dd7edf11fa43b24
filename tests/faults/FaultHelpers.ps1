# Helpers for the fault-injection suite (Faults.Tests.ps1): generated workloads with an independent model
# of the state they must end in, real child processes (FaultChild.ps1) that can be SIGKILLed, and the
# end-state check (cache == model, store == cache, byte for byte and version for version).
. (Join-Path $PSScriptRoot '../cmdlets/TestHelpers.ps1')
Import-Module (Join-Path $PSScriptRoot '../../build/Servers.psm1') -Force

$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:ChildScript = Join-Path $PSScriptRoot 'FaultChild.ps1'
$script:FaultWork = Join-Path ([IO.Path]::GetTempPath()) ('wb-faults-' + [guid]::NewGuid().ToString('N').Substring(0, 12))
New-Item -ItemType Directory -Force -Path $script:FaultWork | Out-Null

function Write-FaultLog([string] $Text) { Write-Host "    [fault] $Text" }

# ---------------------------------------------------------------------------------------------------
# Workloads and the model
# ---------------------------------------------------------------------------------------------------

function New-FieldMap { [System.Collections.Specialized.OrderedDictionary]::new([StringComparer]::Ordinal) }

# Compact JSON object text of an ordered field map whose values are raw JSON value texts.
function Format-FaultJson($Fields) {
    $sb = [System.Text.StringBuilder]::new('{')
    $first = $true
    foreach ($k in $Fields.Keys) {
        if (-not $first) { $null = $sb.Append(',') }
        $first = $false
        $null = $sb.Append('"').Append($k).Append('":').Append($Fields[$k])
    }
    $null = $sb.Append('}')
    $sb.ToString()
}

function New-FaultOp([string] $Id, $Fields, [long] $Seq = 0) {
    [pscustomobject]@{ Id = $Id; Fields = $Fields; Json = $(if ($null -ne $Fields) { Format-FaultJson $Fields } else { '' }); Seq = $Seq }
}

# Ids: mostly '<prefix><n>', every 97th one using the rest of the id alphabet ('.', '@', '-', '_').
function Get-FaultIdName([string] $Prefix, [int] $N) {
    if ($N % 97 -eq 13) { "$Prefix.$N@x-y_z" } else { "$Prefix$N" }
}

<#
 A queue of $Items mixed items over $Ids ids, in rounds of one kind (each round is one cmdlet call or one
 LPUSH, so the whole queue is produced in a few hundred calls while keeping its order):
   set       Set-UserProfile: {"name":..,"gen":..,[f0..f5],[note]}         (applied at once, queues set:user:<id>:<v>)
   patch     update:user:<id>:{"seq":"<n>","f<k>":"<v>"[,"f<j>":..]}        (merged when flushed)
   remove    Remove-UserProfile                                               (applied at once, queues delete:user:<id>:<v>)
   rawdelete delete:user:<id>, a raw producer's deferred delete               (applied when flushed)
 Half the picks go to a hot tenth of the ids, so one batch often holds several items of one id.
#>
function New-FaultWorkload {
    param(
        [Parameter(Mandatory)] [System.Random] $Random,
        [Parameter(Mandatory)] [int] $Items,
        [Parameter(Mandatory)] [int] $Ids,
        [string] $IdPrefix = 'c',
        [hashtable] $Weights = @{ set = 30; patch = 50; remove = 12; rawdelete = 8 },
        [int] $MaxRound = 400
    )
    $kinds = @('set', 'patch', 'remove', 'rawdelete') | Where-Object { $Weights[$_] -gt 0 }
    $total = ($kinds | ForEach-Object { $Weights[$_] } | Measure-Object -Sum).Sum
    $hot = [Math]::Max(1, [int]($Ids / 10))
    $rounds = [System.Collections.Generic.List[object]]::new()
    $n = 0; $seq = 0; $gen = 0
    while ($n -lt $Items) {
        $roll = $Random.Next($total); $kind = $null
        foreach ($k in $kinds) { if ($roll -lt $Weights[$k]) { $kind = $k; break }; $roll -= $Weights[$k] }
        $max = if ($kind -in 'remove', 'rawdelete') { [Math]::Max(1, [int]($MaxRound / 4)) } else { $MaxRound }
        $size = [Math]::Min($Items - $n, 1 + $Random.Next($max))
        $ops = [System.Collections.Generic.List[object]]::new($size)
        for ($i = 0; $i -lt $size; $i++) {
            $idn = if ($Random.Next(2) -eq 0) { $Random.Next($hot) } else { $Random.Next($Ids) }
            $id = Get-FaultIdName $IdPrefix $idn
            switch ($kind) {
                'set' {
                    $gen++
                    $f = New-FieldMap
                    $f['name'] = "`"$id`""
                    $f['gen'] = "`"$gen`""
                    foreach ($k in 0..5) { if ($Random.Next(3) -eq 0) { $f["f$k"] = "`"s$gen`"" } }
                    if ($Random.Next(10) -eq 0) { $f['note'] = '"caf\u00e9 \"' + $gen + '\" ü 🙂 12345678901234567890"' }
                    if ($Random.Next(10) -eq 0) { $f['big'] = '12345678901234567890' }
                    $ops.Add((New-FaultOp $id $f))
                }
                'patch' {
                    $seq++
                    $f = New-FieldMap
                    $f['seq'] = "`"$seq`""
                    $f["f$($Random.Next(8))"] = "`"p$seq`""
                    if ($Random.Next(4) -eq 0) { $f["f$($Random.Next(8))"] = "`"q$seq`"" }
                    if ($Random.Next(20) -eq 0) { $f['num'] = '1.0e3' }
                    $ops.Add((New-FaultOp $id $f $seq))
                }
                default { $ops.Add((New-FaultOp $id $null)) }
            }
        }
        $rounds.Add([pscustomobject]@{ Kind = $kind; Ops = $ops })
        $n += $size
    }
    [pscustomobject]@{ Rounds = $rounds; Items = $n; Ids = $Ids; IdPrefix = $IdPrefix }
}

<#
 The state the cache must hold once every item of these rounds is flushed, computed independently of the
 engine. Valid when the rounds were all produced before the flushes that drain them began: sets and
 removes take effect in the cache when produced (in order); patches and raw deletes when flushed (in
 queue order), on the state the immediate writes left.
   set / remove            the version goes up by one (always)
   patch                   merged (named top-level fields replaced in place, new ones appended) and the
                           version goes up by one, unless the profile is deleted (a tombstone): then nothing
   rawdelete               deletes and bumps the version when the profile is cached; otherwise nothing
   rawset / rawpersist     nothing (persist the current state)
 Returns id -> { Json (text, or $null when deleted / never written), Version (0: never written),
 LastPatchSeq (the seq of the id's last patch in queue order, applied or not), Patches (how many applied) }.
 $Initial (the same shape, with Fields) lets a model continue from an earlier one.
#>
function Get-FaultExpectation {
    param([Parameter(Mandatory)] $Rounds, [hashtable] $Initial)
    $state = @{}
    if ($Initial) { foreach ($k in $Initial.Keys) { $state[$k] = $Initial[$k] } }
    $get = {
        param($id)
        $st = $state[$id]
        if ($null -eq $st) { $st = [pscustomobject]@{ Fields = $null; Version = 0; LastPatchSeq = $null; Patches = 0 }; $state[$id] = $st }
        $st
    }
    foreach ($r in $Rounds) {
        if ($r.Kind -notin 'set', 'remove') { continue }
        foreach ($op in $r.Ops) {
            $st = & $get $op.Id
            if ($r.Kind -eq 'set') {
                $copy = New-FieldMap
                foreach ($k in $op.Fields.Keys) { $copy[$k] = $op.Fields[$k] }
                $st.Fields = $copy
            } else {
                $st.Fields = $null
            }
            $st.Version++
        }
    }
    foreach ($r in $Rounds) {
        if ($r.Kind -notin 'patch', 'rawdelete') { continue }
        foreach ($op in $r.Ops) {
            $st = & $get $op.Id
            if ($r.Kind -eq 'patch') {
                $st.LastPatchSeq = $op.Seq
                if ($null -eq $st.Fields -and $st.Version -gt 0) { continue }   # deleted: not revived, not bumped
                if ($null -eq $st.Fields) { $st.Fields = New-FieldMap }
                foreach ($k in $op.Fields.Keys) { $st.Fields[$k] = $op.Fields[$k] }
                $st.Version++
                $st.Patches++
            } elseif ($null -ne $st.Fields) {
                $st.Fields = $null
                $st.Version++
            }
        }
    }
    foreach ($k in @($state.Keys)) {
        $st = $state[$k]
        $st | Add-Member -Force -NotePropertyName Json -NotePropertyValue $(if ($null -ne $st.Fields) { Format-FaultJson $st.Fields } else { $null })
    }
    $state
}

# Produces the rounds in this process, in order: Set-UserProfile, Remove-UserProfile, and patches / raw
# deletes alternately through Add-WriteQueueItem -Item and a raw LPUSH of the whole round.
function Invoke-FaultRounds {
    param([Parameter(Mandatory)] $Rounds, [Parameter(Mandatory)] [string] $Prefix, $Database = $script:Db)
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
    $lines = foreach ($r in $Rounds) {
        $arr = [string[][]]::new($r.Ops.Count)
        for ($j = 0; $j -lt $r.Ops.Count; $j++) { $arr[$j] = [string[]]@($r.Ops[$j].Id, $r.Ops[$j].Json) }
        $r.Kind + "`t" + [System.Text.Json.JsonSerializer]::Serialize($arr)
    }
    [IO.File]::WriteAllLines($Path, [string[]]$lines)
}

# ---------------------------------------------------------------------------------------------------
# Reading the three places
# ---------------------------------------------------------------------------------------------------

function Read-FaultStore([Parameter(Mandatory)] [string] $Path) {
    $rows = @{}
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

# Queue depth, leases (ZSET members and lease lists, with the items they hold) and dead letters.
function Get-FaultQueueState([Parameter(Mandatory)] [string] $Prefix, $Database = $script:Db) {
    $leaseKeys = @([StackExchange.Redis.RedisResult[]]$Database.Execute('KEYS', [object[]]@("$($Prefix)write_queue:lease:*")) | ForEach-Object { [string]$_ })
    $leased = 0
    foreach ($k in $leaseKeys) { $leased += $Database.ListLength($k) }
    [pscustomobject]@{
        Depth = $Database.ListLength("$($Prefix)write_queue")
        Leases = $Database.SortedSetLength("$($Prefix)write_queue:leases")
        LeaseLists = $leaseKeys.Count
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
 $Expected: id -> { Json, Version } or $null (then only store == cache is checked).
 $CheckJson: scriptblock (id, json, expectedEntry) -> $null or a drift text, for models that know the
 fields but not their order (used instead of the byte comparison when given).
 Returns { Ids, Live, Deleted, DriftCount, ByKind, Drift (first 25 lines) }.
#>
function Compare-FaultState {
    param(
        [Parameter(Mandatory)] [string] $Prefix,
        [Parameter(Mandatory)] [string] $StorePath,
        [hashtable] $Expected,
        [scriptblock] $CheckJson,
        $Database = $script:Db
    )
    $c = Read-FaultCache -Prefix $Prefix -Database $Database
    $store = Read-FaultStore $StorePath
    $ids = [System.Collections.Generic.HashSet[string]]::new([StringComparer]::Ordinal)
    foreach ($set in @($c.Cache.Keys, $c.Versions.Keys, $store.Keys)) { foreach ($k in $set) { $null = $ids.Add($k) } }
    if ($Expected) { foreach ($k in $Expected.Keys) { $null = $ids.Add($k) } }
    $drift = [System.Collections.Generic.List[string]]::new()
    $byKind = [ordered]@{}
    $add = { param($kind, $text) $byKind[$kind] = 1 + [int]$byKind[$kind]; if ($drift.Count -lt 25) { $drift.Add("$kind $text") } }
    $live = 0; $deleted = 0
    foreach ($id in $ids) {
        $json = $c.Cache[$id]
        $ver = if ($c.Versions.ContainsKey($id)) { $c.Versions[$id] } else { 0 }
        if ($null -ne $json) { $live++ } elseif ($ver -gt 0) { $deleted++ }
        if ($Expected) {
            $e = $Expected[$id]
            if ($null -eq $e) { & $add 'unexpected-id' "$id (cache version $ver)" }
            else {
                if ($ver -ne $e.Version) { & $add 'version' "$id cache $ver, expected $($e.Version)" }
                if ($CheckJson) {
                    $why = & $CheckJson $id $json $e
                    if ($why) { & $add 'cache-json' "$id $why" }
                } elseif (-not [string]::Equals($json, $e.Json, [StringComparison]::Ordinal)) {
                    & $add 'cache-json' "$id cache '$json', expected '$($e.Json)'"
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

function Remove-FaultStore([string] $StorePath) {
    if ($StorePath) { Remove-Item -Recurse -Force -ErrorAction SilentlyContinue (Split-Path $StorePath) }
}
