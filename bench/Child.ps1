# One measurement of build.ps1 Bench, run in a fresh `dotnet pwsh -NoProfile` so that each figure is one
# process's own (throughput, peak RSS). Prints progress to the host and, last, one line
#   BENCH-RESULT {json}
# that Bench.ps1 parses. Only the measured part is timed: the module import, the connection and the
# building of the input array happen before the clock starts.
param(
    [Parameter(Mandatory)] [ValidateSet('SetUserProfile', 'AddWriteQueueItem', 'Naive', 'Flush', 'PipelineFloor', 'PipelineFloorUpdate', 'ClusterEnqueue', 'ClusterFlush', 'DeadLetterRestore')] [string] $Mode,
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $Redis,
    [long] $Count = 0,
    [string] $Store,
    # Flush: a mapping file (.psd1) for a mapped table (Connect-WriteBehind -StoreMapping); none: the module's table
    [string] $StoreMapping,
    [int] $BatchSize = 2000,
    # ClusterEnqueue / ClusterFlush: the partition count; ClusterFlush waits for GoFile to exist before it
    # starts (so that concurrent flushers start together) and reports its start and end (Unix ms)
    [int] $Partitions = 16,
    [string] $GoFile
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

function Get-PeakRssBytes {
    # VmHWM of this process (Linux); 0 where /proc is missing.
    $status = '/proc/self/status'
    if (-not (Test-Path $status)) { return 0 }
    $line = Get-Content $status | Where-Object { $_ -like 'VmHWM:*' } | Select-Object -First 1
    if ($line -match '(\d+)\s*kB') { return [long]$Matches[1] * 1024 }
    return 0
}

function Get-CpuSeconds { [Diagnostics.Process]::GetCurrentProcess().TotalProcessorTime.TotalSeconds }

# Where the time of the timed section goes, as far as this process can tell: CPU seconds (all threads),
# bytes allocated, GC pause time and collections.
function Get-ProcessCounters {
    [ordered]@{
        cpu    = Get-CpuSeconds
        alloc  = [GC]::GetTotalAllocatedBytes($false)
        pause  = [GC]::GetTotalPauseDuration().TotalSeconds
        gen0   = [GC]::CollectionCount(0)
        gen1   = [GC]::CollectionCount(1)
        gen2   = [GC]::CollectionCount(2)
    }
}
function Add-CounterDeltas($Result, $Before) {
    $after = Get-ProcessCounters
    $Result.cpuSeconds = $after.cpu - $Before.cpu
    $Result.allocatedBytes = $after.alloc - $Before.alloc
    $Result.gcPauseSeconds = $after.pause - $Before.pause
    $Result.gcCollections = @(($after.gen0 - $Before.gen0), ($after.gen1 - $Before.gen1), ($after.gen2 - $Before.gen2))
}

# A FlushResult's figures, in camel case, with count = items dequeued.
function Add-FlushFigures($Result, $Flush) {
    foreach ($name in 'Dequeued', 'Persisted', 'Coalesced', 'DeadLettered', 'InFlight', 'Recovered', 'StaleSkipped', 'Batches', 'Error') {
        $Result[$name.Substring(0, 1).ToLowerInvariant() + $name.Substring(1)] = $Flush.$name
    }
    $Result.count = $Flush.Dequeued
}

$result = [ordered]@{ mode = $Mode; count = $Count }
$sw = $null
switch ($Mode) {
    'SetUserProfile' {
        Import-Module $ModulePath
        $null = Connect-WriteBehind -Redis $Redis
        $items = [object[]]::new($Count)
        for ($i = 0; $i -lt $Count; $i++) {
            $items[$i] = [pscustomobject]@{ UserId = "$i"; Profile = '{"name":"u' + $i + '","age":"30"}' }
        }
        $cpu0 = Get-ProcessCounters
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $items | Set-UserProfile
        $sw.Stop()
        Add-CounterDeltas $result $cpu0
        $result.seconds = $sw.Elapsed.TotalSeconds
    }
    'AddWriteQueueItem' {
        Import-Module $ModulePath
        $null = Connect-WriteBehind -Redis $Redis
        $items = [object[]]::new($Count)
        for ($i = 0; $i -lt $Count; $i++) {
            $items[$i] = [pscustomobject]@{ UserId = "$i"; Update = '{"age":"31"}' }
        }
        $cpu0 = Get-ProcessCounters
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $items | Add-WriteQueueItem
        $sw.Stop()
        Add-CounterDeltas $result $cpu0
        $result.seconds = $sw.Elapsed.TotalSeconds
    }
    'Naive' {
        # The loop an admin would write today: per item, ConvertTo-Json of a hashtable, then HSET and LPUSH
        # through StackExchange.Redis (the copy shipped in the module folder), synchronous calls.
        Add-Type -Path (Join-Path (Split-Path $ModulePath) 'net8.0/dependencies/StackExchange.Redis.dll')
        $mux = [StackExchange.Redis.ConnectionMultiplexer]::Connect($Redis)
        $db = $mux.GetDatabase()
        $items = [object[]]::new($Count)
        for ($i = 0; $i -lt $Count; $i++) {
            $items[$i] = [pscustomobject]@{ UserId = "$i"; Profile = '{"name":"u' + $i + '","age":"30"}' }
        }
        $cpu0 = Get-ProcessCounters
        $sw = [Diagnostics.Stopwatch]::StartNew()
        foreach ($p in $items) {
            $json = @{ name = "u$($p.UserId)"; age = '30' } | ConvertTo-Json -Compress
            $null = $db.HashSet('user_profiles', "user:$($p.UserId)", $json)
            $null = $db.ListLeftPush('write_queue', "update:user:$($p.UserId):$json")
        }
        $sw.Stop()
        Add-CounterDeltas $result $cpu0
        $result.seconds = $sw.Elapsed.TotalSeconds
        $result.queueDepth = [long]$db.ListLength('write_queue')
        $mux.Dispose()
    }
    { $_ -in 'PipelineFloor', 'PipelineFloorUpdate' } {
        # What PowerShell itself costs for the same input: a compiled cmdlet with the measured cmdlet's two
        # pipeline parameters (by property name) that does nothing with them. PipelineFloor has
        # Set-UserProfile's (UserId, Profile), PipelineFloorUpdate Add-WriteQueueItem's (UserId, Update).
        $second = if ($Mode -eq 'PipelineFloorUpdate') { 'Update' } else { 'Profile' }
        $type = Add-Type -PassThru -TypeDefinition (@'
using System.Management.Automation;
[Cmdlet("Set", "BenchNoOp")]
public sealed class SetBenchNoOpCommand : PSCmdlet
{
    public static long Seen;
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Id")]
    [ValidateNotNullOrEmpty]
    public string UserId { get; set; }
    [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    public object SECOND { get; set; }
    protected override void ProcessRecord() { Seen++; }
}
'@ -replace 'SECOND', $second)
        Import-Module -Assembly ($type | Select-Object -First 1).Assembly
        $items = [object[]]::new($Count)
        for ($i = 0; $i -lt $Count; $i++) {
            $items[$i] = if ($second -eq 'Update') { [pscustomobject]@{ UserId = "$i"; Update = '{"age":"31"}' } }
                         else { [pscustomobject]@{ UserId = "$i"; Profile = '{"name":"u' + $i + '","age":"30"}' } }
        }
        $cpu0 = Get-ProcessCounters
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $items | Set-BenchNoOp
        $sw.Stop()
        Add-CounterDeltas $result $cpu0
        $result.seconds = $sw.Elapsed.TotalSeconds
    }
    'Flush' {
        Import-Module $ModulePath
        $mapping = if ($StoreMapping) { @{ StoreMapping = $StoreMapping } } else { @{} }
        $null = Connect-WriteBehind -Redis $Redis -Store $Store @mapping
        $cpu0 = Get-ProcessCounters
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $flush = Invoke-WriteBehindFlush -BatchSize $BatchSize
        $sw.Stop()
        Add-CounterDeltas $result $cpu0
        $result.seconds = $sw.Elapsed.TotalSeconds
        Add-FlushFigures $result $flush
    }
    'ClusterEnqueue' {
        # Patches over Count/2 distinct ids (so half the items coalesce), each to its id's partition.
        Import-Module $ModulePath
        $null = Connect-WriteBehind -Redis $Redis -KeyPrefix 'bench:' -Partitions $Partitions
        $items = [string[]]::new($Count)
        $distinct = [Math]::Max(1, [long]($Count / 2))
        for ($i = 0; $i -lt $Count; $i++) { $items[$i] = 'update:user:' + ($i % $distinct) + ':{"age":"' + $i + '"}' }
        $cpu0 = Get-ProcessCounters
        $sw = [Diagnostics.Stopwatch]::StartNew()
        Add-WriteQueueItem -Item $items
        $sw.Stop()
        Add-CounterDeltas $result $cpu0
        $result.seconds = $sw.Elapsed.TotalSeconds
    }
    'ClusterFlush' {
        Import-Module $ModulePath
        $null = Connect-WriteBehind -Redis $Redis -Store $Store -KeyPrefix 'bench:' -Partitions $Partitions
        $null = Get-WriteBehindStatus   # opens the store before the clock
        [Console]::Out.WriteLine('READY'); [Console]::Out.Flush()
        while (-not (Test-Path $GoFile)) { Start-Sleep -Milliseconds 5 }
        $cpu0 = Get-ProcessCounters
        $result.startMs = [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds()
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $flush = Invoke-WriteBehindFlush -BatchSize $BatchSize
        $sw.Stop()
        $result.endMs = [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds()
        Add-CounterDeltas $result $cpu0
        $result.seconds = $sw.Elapsed.TotalSeconds
        Add-FlushFigures $result $flush
    }
    'DeadLetterRestore' {
        # An admin requeueing dead letters newest first (Sort-Object the other way, or a filter over a
        # reversed list): Count poison items pushed raw and flushed into the dead-letter list (not timed),
        # then every other one restored, newest first. redis-server's CPU for the restore alone is read here.
        Import-Module $ModulePath
        $null = Connect-WriteBehind -Redis $Redis -Store $Store
        Add-Type -Path (Join-Path (Split-Path $ModulePath) 'net8.0/dependencies/StackExchange.Redis.dll')
        $mux = [StackExchange.Redis.ConnectionMultiplexer]::Connect("$Redis,allowAdmin=true")
        $db = $mux.GetDatabase()
        $server = $mux.GetServer($mux.GetEndPoints()[0])
        function Get-RedisCpu { $i = $server.Info('cpu')[0]; [double]($i | Where-Object Key -eq 'used_cpu_sys').Value + [double]($i | Where-Object Key -eq 'used_cpu_user').Value }
        for ($i = 0; $i -lt $Count; $i += 1000) {
            $values = [StackExchange.Redis.RedisValue[]]@(($i + 1)..[Math]::Min($Count, $i + 1000) | ForEach-Object { [StackExchange.Redis.RedisValue]"update:user:$($_):{bad" })
            $null = $db.ListLeftPush('write_queue', $values)
        }
        $null = Invoke-WriteBehindFlush
        $entries = @(Get-WriteBehindDeadLetter)
        [array]::Reverse($entries)
        $chosen = @(for ($i = 0; $i -lt $entries.Count; $i += 2) { $entries[$i] })
        $redis0 = Get-RedisCpu
        $cpu0 = Get-ProcessCounters
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $chosen | Restore-WriteBehindDeadLetter
        $sw.Stop()
        Add-CounterDeltas $result $cpu0
        $result.redisCpuSeconds = (Get-RedisCpu) - $redis0
        $result.seconds = $sw.Elapsed.TotalSeconds
        $result.deadLetters = $entries.Count
        $result.count = $chosen.Count
        $result.left = [long]$db.ListLength('write_queue:dead')
        $mux.Dispose()
    }
}
if ($result.seconds -gt 0) { $result.perSecond = $result.count / $result.seconds }
[GC]::Collect()
$result.peakRssBytes = Get-PeakRssBytes
'BENCH-RESULT ' + ($result | ConvertTo-Json -Compress)
