# build.ps1 Bench, part of Bench.ps1: the flush's scaling curve on a local Redis Cluster (3 masters, 3
# replicas). For 1, 2 and 3 concurrent flusher processes: the same $Count patches queued over 16 partitions
# (ClusterEnqueue), then the flushers started together (ClusterFlush waits for a go file); the aggregate
# rate is all items dequeued / (last end - first start). Every flusher writes to the same store, as flushers
# on several machines would. Returns one object per flusher count.
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $Child,
    [Parameter(Mandatory)] [long] $Count,
    [Parameter(Mandatory)] [string] $WorkDir,
    # Returns a fresh, empty store URI for one measurement (and its description)
    [Parameter(Mandatory)] [scriptblock] $NewStore,
    [int[]] $Flushers = @(1, 2, 3),
    [int] $Partitions = 16
)
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot '../build/Servers.psm1')

# a long node timeout: a busy 2-core machine must not make the cluster fail a master over mid-measurement
$cluster = Start-TestCluster -WorkDir (Join-Path $WorkDir 'cluster') -NodeTimeoutMs 15000
try {
    $masters = @(Get-TestClusterMaster $cluster)
    $results = foreach ($f in $Flushers) {
        foreach ($m in $masters) { $null = Invoke-RedisCli $m.Port flushall }
        $store = & $NewStore
        $enqueueOut = & dotnet pwsh -NoProfile -NonInteractive -File $Child -Mode ClusterEnqueue -ModulePath $ModulePath -Redis $cluster.Endpoint -Count $Count -Partitions $Partitions 2>&1 | ForEach-Object { "$_" }
        $line = $enqueueOut | Where-Object { $_ -like 'BENCH-RESULT *' } | Select-Object -Last 1
        if (-not $line) { throw "ClusterEnqueue failed:`n$($enqueueOut -join "`n")" }
        $enqueue = $line.Substring(13) | ConvertFrom-Json

        $go = Join-Path $WorkDir "go-$f"
        Remove-Item -Force -ErrorAction SilentlyContinue $go
        $children = foreach ($i in 1..$f) {
            $out = Join-Path $WorkDir "flusher-$f-$i.out"
            $p = Start-Process -FilePath 'dotnet' -PassThru -RedirectStandardOutput $out -RedirectStandardError "$out.err" -ArgumentList @(
                'pwsh', '-NoProfile', '-NonInteractive', '-File', $Child, '-Mode', 'ClusterFlush', '-ModulePath', $ModulePath, '-Redis', $cluster.Endpoint,
                '-Store', $store.Uri, '-Partitions', "$Partitions", '-BatchSize', '2000', '-GoFile', $go)
            [pscustomobject]@{ Process = $p; Out = $out }
        }
        $deadline = [DateTime]::UtcNow.AddSeconds(120)
        while (@($children | Where-Object { (Get-Content -Raw -ErrorAction SilentlyContinue $_.Out) -notmatch 'READY' }).Count -gt 0) {
            if ([DateTime]::UtcNow -gt $deadline -or @($children | Where-Object { $_.Process.HasExited }).Count) {
                throw "A cluster flusher did not get ready: $(($children | ForEach-Object { Get-Content -Raw -ErrorAction SilentlyContinue $_.Out, "$($_.Out).err" }) -join ' | ')"
            }
            Start-Sleep -Milliseconds 50
        }
        New-Item -ItemType File -Path $go | Out-Null
        foreach ($c in $children) { $null = $c.Process.WaitForExit(1800000) }
        $runs = foreach ($c in $children) {
            $l = Get-Content $c.Out | Where-Object { $_ -like 'BENCH-RESULT *' } | Select-Object -Last 1
            if (-not $l) { throw "A cluster flusher failed: $(Get-Content -Raw $c.Out) $(Get-Content -Raw "$($c.Out).err")" }
            $l.Substring(13) | ConvertFrom-Json
        }
        $dequeued = ($runs | Measure-Object dequeued -Sum).Sum
        $wall = (($runs | Measure-Object endMs -Maximum).Maximum - ($runs | Measure-Object startMs -Minimum).Minimum) / 1000.0
        $errors = @($runs | Where-Object { $_.error } | ForEach-Object error)
        [pscustomobject]@{
            flushers = $f; queued = $Count; dequeued = $dequeued; seconds = $wall
            perSecond = $(if ($wall -gt 0) { $dequeued / $wall } else { $null })
            perFlusher = @($runs | ForEach-Object { $_.dequeued })
            enqueuePerSecond = $enqueue.perSecond
            store = $store.Description
            errors = $errors
        }
    }
    $results
} finally {
    Stop-TestCluster $cluster
}
