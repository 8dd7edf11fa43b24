# build.ps1 Bench: the figures of issue 4, in one run, on one throwaway redis-server.
# Called by Invoke-Bench in build.ps1 (which builds the module and starts/stops the server); prints one table
# and writes the same figures as JSON to <OutDir>/bench-<timestamp>.json.
#
# Every measured figure comes from its own fresh child process (`dotnet pwsh -NoProfile -File Child.ps1`,
# or the StoreLimit helper), with the server's data flushed (FLUSHALL) before it. Only the measured part is
# timed (not the import, the connection or the building of the input array); see Child.ps1.
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] $Server,
    [double] $Scale = 1.0,
    [Parameter(Mandatory)] [string] $OutDir,
    [string] $Configuration = 'Release',
    # Optional: a throwaway PostgreSQL (build/Servers.psm1 Start-TestPostgres) for the PostgreSQL flush figure.
    $Postgres = $null,
    # Optional: a throwaway MariaDB (build/Servers.psm1 Start-TestMariaDb) for the MariaDB flush figures.
    $MariaDb = $null,
    # Repetitions of each throughput figure (medians are reported); default 3 when Scale <= 0.1, else 1.
    [int] $Runs = 0
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$benchDir = $PSScriptRoot
$repoRoot = Split-Path $benchDir
$child = Join-Path $benchDir 'Child.ps1'
$tmp = Join-Path $OutDir 'tmp'
$clock = [Diagnostics.Stopwatch]::StartNew()
$startedAt = [DateTimeOffset]::Now
$invariant = [Globalization.CultureInfo]::InvariantCulture

if ($Runs -le 0) {
    $Runs = if ($env:WRITEBEHIND_BENCH_RUNS) { [int]$env:WRITEBEHIND_BENCH_RUNS } elseif ($Scale -le 0.1) { 3 } else { 1 }
}
function Get-Scaled([double] $n) { [long][Math]::Max(1, [Math]::Round($n * $Scale)) }
$counts = [ordered]@{
    setUserProfile    = Get-Scaled 200000
    naive             = Get-Scaled 10000
    serverLua         = Get-Scaled 200000
    addWriteQueueItem = Get-Scaled 200000
    serverLpush       = Get-Scaled 200000
    flushSmall        = Get-Scaled 100000
    flush             = Get-Scaled 1000000
    clusterFlush      = Get-Scaled 300000
    deadLetters       = Get-Scaled 20000
    coldStartRuns     = 7
}

foreach ($tool in 'redis-benchmark', 'redis-cli') {
    if (-not (Get-Command $tool -ErrorAction SilentlyContinue)) {
        throw "$tool is not on PATH (on Debian: apt-get install -y redis-tools; it comes with redis-server)."
    }
}
Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $tmp
New-Item -ItemType Directory -Force -Path $OutDir, $tmp | Out-Null

$redisHost = '127.0.0.1'
$port = [string]$Server.Port
$endpoint = $Server.Endpoint

# ---------------------------------------------------------------------------------------------- helpers

function Invoke-Redis([string[]] $Arguments) {
    $out = & redis-cli -h $redisHost -p $port @Arguments 2>&1
    if ($LASTEXITCODE -ne 0) { throw "redis-cli $($Arguments -join ' ') failed: $out" }
    return $out
}

function Clear-Server {
    $r = Invoke-Redis @('FLUSHALL')
    if ("$r" -notmatch 'OK') { throw "FLUSHALL answered: $r" }
}

function Get-ServerCpuSeconds {
    $Server.Process.Refresh()
    return $Server.Process.TotalProcessorTime.TotalSeconds
}

# CPU seconds of the PostgreSQL server (from /proc): every live postgres process's own time plus the time
# of the children they reaped (a backend's CPU moves into the postmaster's cutime/cstime when it exits), 0
# without a server.
function Get-PostgresCpuSeconds {
    if (-not $Postgres -or -not (Test-Path /proc)) { return 0 }
    $ticks = 0
    foreach ($dir in Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -match '^\d+$') {
        try {
            $cmd = Get-Content (Join-Path $dir.FullName 'cmdline') -Raw -ErrorAction Stop
            if ($cmd -notlike "*postgres*" -and -not (Get-Content (Join-Path $dir.FullName 'comm') -ErrorAction Stop).StartsWith('postgres')) { continue }
            $stat = (Get-Content (Join-Path $dir.FullName 'stat') -Raw -ErrorAction Stop)
            $fields = $stat.Substring($stat.LastIndexOf(')') + 2).Split(' ')
            $ticks += [long]$fields[11] + [long]$fields[12] + [long]$fields[13] + [long]$fields[14]   # utime, stime, cutime, cstime
        } catch { }
    }
    $ticks / 100.0
}

function Get-Median([double[]] $Values) {
    $v = @($Values | Where-Object { $null -ne $_ } | Sort-Object)
    if ($v.Count -eq 0) { return $null }
    if ($v.Count % 2 -eq 1) { return [double]$v[[int][Math]::Floor($v.Count / 2)] }
    return ([double]$v[$v.Count / 2 - 1] + [double]$v[$v.Count / 2]) / 2
}

# A fresh database on the bench's PostgreSQL; returns its store URI (no password: the children get it
# from WRITEBEHIND_STORE_PASSWORD).
function New-PostgresStore {
    $name = 'bench_' + [guid]::NewGuid().ToString('N').Substring(0, 12)
    Invoke-Psql "CREATE DATABASE $name"
    "postgres://$($Postgres.User)@127.0.0.1:$($Postgres.Port)/$name"
}
function Remove-PostgresStore([string] $Uri) {
    # WITH (FORCE) cannot end an autovacuum worker (the bench's user is no superuser), and a database that
    # just took a million rows often has one: wait for it, up to a minute.
    for ($attempt = 1; ; $attempt++) {
        try { Invoke-Psql "DROP DATABASE IF EXISTS $($Uri -replace '^.*/', '') WITH (FORCE)"; return }
        catch { if ($attempt -ge 60 -or "$_" -notmatch 'pg_signal_backend|being accessed by other users') { throw }; Start-Sleep -Seconds 1 }
    }
}
function Invoke-Psql([string] $Sql) {
    $env:PGPASSWORD = $Postgres.Password
    try {
        $out = & (Join-Path $Postgres.Bin 'psql') -h 127.0.0.1 -p $Postgres.Port -U $Postgres.User -d $Postgres.Database -X -q -v ON_ERROR_STOP=1 -c $Sql 2>&1
        if ($LASTEXITCODE -ne 0) { throw "psql failed: $($out -join "`n")" }
    } finally { Remove-Item Env:PGPASSWORD -ErrorAction SilentlyContinue }
}

# The application's own table of the mapped-table figures: the fields the bench's profiles carry
# ({"name":"u1","age":"31"}; age a JSON string, converted to the integer column's type), keyed by the
# user id (text: the bench's ids are h<n>, s<n>, c<n>). The module never creates it; the bench does,
# in each fresh database, before the flusher connects.
$mappedTableSql = @{
    postgres = 'CREATE TABLE users(id text PRIMARY KEY, name text, age integer)'
    mariadb  = 'CREATE TABLE users(id varchar(64) PRIMARY KEY, name varchar(100), age int)'
}
# The mapping (Connect-WriteBehind -StoreMapping): both fields the profiles carry, into same-named columns.
$mappingFile = Join-Path $tmp 'users-mapping.psd1'
Set-Content -Path $mappingFile -Encoding utf8NoBOM -Value "@{ Table = 'users'; KeyColumn = 'id'; Columns = @{ name = 'name'; age = 'age' } }"

# SQL on the bench's PostgreSQL as its user, in one database; returns the unaligned, tuples-only output.
function Invoke-PsqlIn([string] $Database, [string] $Sql) {
    $env:PGPASSWORD = $Postgres.Password
    try {
        $out = & (Join-Path $Postgres.Bin 'psql') -h 127.0.0.1 -p $Postgres.Port -U $Postgres.User -d $Database -X -q -t -A -v ON_ERROR_STOP=1 -c $Sql 2>&1
        if ($LASTEXITCODE -ne 0) { throw "psql failed: $($out -join "`n")" }
        $out
    } finally { Remove-Item Env:PGPASSWORD -ErrorAction SilentlyContinue }
}

# SQL on the bench's MariaDB, as root through the server's unix socket (the store connects over TCP with
# its own user and password); returns the tab-separated output without headers.
function Invoke-MariaDbSql([string] $Sql, [string] $Database = '') {
    $arguments = @('--no-defaults', '-uroot', "--socket=$($MariaDb.Socket)", '-N', '-B', '-e', $Sql)
    if ($Database) { $arguments += $Database }
    $out = & $MariaDb.Client @arguments 2>&1
    if ($LASTEXITCODE -ne 0) { throw "mariadb failed: $($out -join "`n")" }
    $out
}
# A fresh database on the bench's MariaDB; returns its store URI (no password, as for PostgreSQL).
function New-MariaDbStore {
    $name = 'bench_' + [guid]::NewGuid().ToString('N').Substring(0, 12)
    $null = Invoke-MariaDbSql "CREATE DATABASE $name CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    "mysql://$($MariaDb.User)@127.0.0.1:$($MariaDb.Port)/$name"
}
function Remove-MariaDbStore([string] $Uri) {
    $null = Invoke-MariaDbSql "DROP DATABASE IF EXISTS $($Uri -replace '^.*/', '')"
}
# CPU seconds of the mariadbd process (one process, its threads included), 0 without a server.
function Get-MariaDbCpuSeconds {
    if (-not $MariaDb -or -not $MariaDb.Process) { return 0 }
    $MariaDb.Process.Refresh()
    $MariaDb.Process.TotalProcessorTime.TotalSeconds
}

# One flush of the 1M (x scale) workload into a fresh database of $Kind ('postgres' or 'mariadb'), into
# the module's own table or (-Mapped) into a users table made for it; returns the child's result with
# queued, dbCpuSeconds (the database server's CPU meanwhile) and, for a mapped table, its row count.
function Invoke-DatabaseFlush([string] $Kind, [switch] $Mapped, [int] $Seed) {
    Clear-Server
    $e = Invoke-StoreLimitTool @('enqueue', $endpoint, [string]$counts.flush, [string]$Seed)
    $isPg = $Kind -eq 'postgres'
    $uri = if ($isPg) { New-PostgresStore } else { New-MariaDbStore }
    $database = $uri -replace '^.*/', ''
    $env:WRITEBEHIND_STORE_PASSWORD = if ($isPg) { $Postgres.Password } else { $MariaDb.Password }
    try {
        $parameters = @{ Store = $uri; BatchSize = 2000 }
        if ($Mapped) {
            if ($isPg) { $null = Invoke-PsqlIn $database $mappedTableSql.postgres } else { $null = Invoke-MariaDbSql $mappedTableSql.mariadb $database }
            $parameters.StoreMapping = $mappingFile
        }
        $cpu0 = if ($isPg) { Get-PostgresCpuSeconds } else { Get-MariaDbCpuSeconds }
        $r = Invoke-Child 'Flush' $parameters
        $cpu = $(if ($isPg) { Get-PostgresCpuSeconds } else { Get-MariaDbCpuSeconds }) - $cpu0
        $r | Add-Member -NotePropertyName dbCpuSeconds -NotePropertyValue $cpu
        if ($isPg) { $r | Add-Member -NotePropertyName postgresCpuSeconds -NotePropertyValue $cpu }
        if ($Mapped) {
            $rows = if ($isPg) { Invoke-PsqlIn $database 'SELECT count(*) FROM users' } else { Invoke-MariaDbSql 'SELECT count(*) FROM users' $database }
            $r | Add-Member -NotePropertyName tableRows -NotePropertyValue ([long]("$rows".Trim()))
        }
    } finally {
        Remove-Item Env:WRITEBEHIND_STORE_PASSWORD -ErrorAction SilentlyContinue
        if ($isPg) { Remove-PostgresStore $uri } else { Remove-MariaDbStore $uri }
    }
    $r | Add-Member -NotePropertyName queued -NotePropertyValue $e.items
    $what = "$(if ($isPg) { 'PostgreSQL' } else { 'MariaDB' })$(if ($Mapped) { ' (mapped users table)' })"
    if ($r.dequeued -ne $e.items -or $r.error) { Write-Warning "The $what flush dequeued $($r.dequeued) of $($e.items) queued items (error: $($r.error))." }
    if ($Mapped -and $r.tableRows -le 0) { Write-Warning "The $what flush left no row in users." }
    [pscustomobject]@{ Flush = $r; Enqueue = $e }
}

function Remove-Store([string] $Path) {
    Remove-Item -Force -ErrorAction SilentlyContinue $Path, "$Path-wal", "$Path-shm"
}

# Runs Child.ps1 in a fresh `dotnet pwsh -NoProfile`; returns its BENCH-RESULT plus the server's CPU seconds.
function Invoke-Child([string] $Mode, [hashtable] $Parameters) {
    $arguments = @('pwsh', '-NoProfile', '-NonInteractive', '-File', $child, '-Mode', $Mode, '-ModulePath', $ModulePath, '-Redis', $endpoint)
    foreach ($k in $Parameters.Keys) { $arguments += @("-$k", [string]$Parameters[$k]) }
    $serverCpu0 = Get-ServerCpuSeconds
    $output = & dotnet @arguments 2>&1 | ForEach-Object { "$_" }
    $exit = $LASTEXITCODE
    $serverCpu = (Get-ServerCpuSeconds) - $serverCpu0
    $line = $output | Where-Object { $_ -like 'BENCH-RESULT *' } | Select-Object -Last 1
    if ($exit -ne 0 -or -not $line) {
        throw "The $Mode child failed (exit code $exit):`n$($output -join "`n")"
    }
    $result = $line.Substring('BENCH-RESULT '.Length) | ConvertFrom-Json
    $result | Add-Member -NotePropertyName serverCpuSeconds -NotePropertyValue $serverCpu
    return $result
}

$storeLimitDll = Join-Path $benchDir "StoreLimit/bin/$Configuration/net10.0/StoreLimit.dll"
function Invoke-StoreLimitTool([string[]] $Arguments) {
    $output = & dotnet $storeLimitDll @Arguments 2>&1 | ForEach-Object { "$_" }
    if ($LASTEXITCODE -ne 0) { throw "StoreLimit $($Arguments -join ' ') failed (exit code $LASTEXITCODE):`n$($output -join "`n")" }
    return ($output | Select-Object -Last 1 | ConvertFrom-Json)
}
# The store limit through the sqlite3 shell and psql COPY, beside our own store path (issue 13).
. (Join-Path $benchDir 'ExternalLimits.ps1')

# redis-benchmark pipelined (-P 64, default 50 clients); returns requests/s from its CSV line.
function Invoke-RedisBenchmark([long] $Requests, [string[]] $Command) {
    Clear-Server
    $serverCpu0 = Get-ServerCpuSeconds
    $output = & redis-benchmark -h $redisHost -p $port -n $Requests -P 64 -r 100000 --csv @Command 2>&1 | ForEach-Object { "$_" }
    if ($LASTEXITCODE -ne 0) { throw "redis-benchmark failed (exit code $LASTEXITCODE):`n$($output -join "`n")" }
    $serverCpu = (Get-ServerCpuSeconds) - $serverCpu0
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    # The test name holds the command with its own quotes, so the numbers are taken from the end of the line.
    $line = $output | Where-Object { $_ -match '"([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)"\s*$' } | Select-Object -Last 1
    if (-not $line) { throw "Could not read requests/s from redis-benchmark:`n$($output -join "`n")" }
    $null = $line -match '"([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)"\s*$'
    [pscustomobject]@{
        requests         = $Requests
        perSecond        = [double]::Parse($Matches[1], $invariant)
        p50Ms            = [double]::Parse($Matches[4], $invariant)
        serverCpuSeconds = $serverCpu
    }
}

function Write-Step([string] $Text) { Write-Host ("    [{0,6:F0} s] {1}" -f $clock.Elapsed.TotalSeconds, $Text) }
function Format-Diagnostics($r) {
    '(wall {0:F1} s; client CPU {1:F1} s, {2:N0} B allocated/item, GC pause {3:F2} s; server CPU {4:F1} s)' -f `
        $r.seconds, $r.cpuSeconds, ($r.allocatedBytes / [Math]::Max(1, $r.count)), $r.gcPauseSeconds, $r.serverCpuSeconds
}
function Format-Rate($v) { if ($null -eq $v) { 'n/a' } else { '{0:N0}/s' -f $v } }

# ---------------------------------------------------------------------------------------------- set-up

Write-Host "==> Building the bench helper (bench/StoreLimit)"
& dotnet build (Join-Path $benchDir 'StoreLimit/StoreLimit.csproj') -c $Configuration --nologo -v quiet -clp:ErrorsOnly | Out-Host
if ($LASTEXITCODE -ne 0) { throw "Building bench/StoreLimit failed with exit code $LASTEXITCODE." }

$redisVersion = ((Invoke-Redis @('INFO', 'server')) | Where-Object { $_ -like 'redis_version:*' } | Select-Object -First 1) -replace '^redis_version:', ''
$machine = [ordered]@{
    cores                  = [Environment]::ProcessorCount
    os                     = [Runtime.InteropServices.RuntimeInformation]::OSDescription
    cpu                    = $(if (Test-Path /proc/cpuinfo) { ((Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '^model name\s*:\s*', '') } else { '' })
    redisServer            = "$redisVersion".Trim()
    redisBenchmark         = ((& redis-benchmark --version) -join ' ').Trim()
    dotnetSdk              = ((& dotnet --version) -join '').Trim()
    pwsh                   = ((& dotnet pwsh -NoProfile -Command '$PSVersionTable.PSVersion.ToString()') -join '').Trim()
    # Other work on the machine skews every figure: the load averages before and after the bench say so.
    loadAverageBefore      = $(if (Test-Path /proc/loadavg) { (Get-Content /proc/loadavg -Raw).Trim() } else { '' })
}
Write-Host ("==> Bench: scale {0}, {1} run(s) per throughput figure, redis-server {2} on {3}, {4} cores" -f $Scale, $Runs, $machine.redisServer, $endpoint, $machine.cores)

$luaScript = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); redis.call('HINCRBY', KEYS[2], ARGV[1], 1); return redis.call('LPUSH', KEYS[3], ARGV[1])"
$raw = [ordered]@{
    setUserProfile = @(); naive = @(); pipelineFloor = @(); pipelineFloorUpdate = @(); serverLua = @()
    addWriteQueueItem = @(); serverLpush = @()
    enqueueSmall = @(); flushSmall = @(); enqueue = @(); flush = @(); enqueuePostgres = @(); flushPostgres = @()
    enqueuePostgresMapped = @(); flushPostgresMapped = @(); enqueueMariaDb = @(); flushMariaDb = @(); enqueueMariaDbMapped = @(); flushMariaDbMapped = @()
    storeLimit = @(); storeLimitKeyOrder = @(); storeLimitLargeTx = @()
    clusterScaling = @()
    deadLetterRestore = @()
    coldStart = $null
}

# ---------------------------------------------------------------------------------------------- runs
# The repetitions are interleaved (run 1 of everything, then run 2...) so that drift hits all figures alike.

for ($run = 1; $run -le $Runs; $run++) {
    Write-Host "==> Run $run of $Runs"

    # 1. Set-UserProfile, the naive loop, PowerShell's own pipeline floor, the server's Lua limit
    Clear-Server
    $r = Invoke-Child 'SetUserProfile' @{ Count = $counts.setUserProfile }
    $raw.setUserProfile += $r
    Write-Step ("Set-UserProfile      {0,9:N0} profiles  {1,12}  {2}" -f $r.count, (Format-Rate $r.perSecond), (Format-Diagnostics $r))

    Clear-Server
    $r = Invoke-Child 'Naive' @{ Count = $counts.naive }
    $raw.naive += $r
    Write-Step ("naive loop           {0,9:N0} items     {1,12}  {2}" -f $r.count, (Format-Rate $r.perSecond), (Format-Diagnostics $r))

    $r = Invoke-Child 'PipelineFloor' @{ Count = $counts.setUserProfile }
    $raw.pipelineFloor += $r
    Write-Step ("pipeline floor       {0,9:N0} items     {1,12}  no-op compiled cmdlet, same input; {2}" -f $r.count, (Format-Rate $r.perSecond), (Format-Diagnostics $r))

    $r = Invoke-RedisBenchmark $counts.serverLua @('eval', $luaScript, '3', 'bench:h', 'bench:v', 'bench:q', 'user:__rand_int__', '{"name":"x","age":"30"}')
    $raw.serverLua += $r
    Write-Step ("redis-benchmark EVAL {0,9:N0} requests  {1,12}  (-P 64)" -f $r.requests, (Format-Rate $r.perSecond))

    # 2. Add-WriteQueueItem and the server's LPUSH limit
    Clear-Server
    $r = Invoke-Child 'AddWriteQueueItem' @{ Count = $counts.addWriteQueueItem }
    $raw.addWriteQueueItem += $r
    Write-Step ("Add-WriteQueueItem   {0,9:N0} items     {1,12}  {2}" -f $r.count, (Format-Rate $r.perSecond), (Format-Diagnostics $r))

    $r = Invoke-Child 'PipelineFloorUpdate' @{ Count = $counts.addWriteQueueItem }
    $raw.pipelineFloorUpdate += $r
    Write-Step ("pipeline floor       {0,9:N0} items     {1,12}  no-op compiled cmdlet, Add-WriteQueueItem's input; {2}" -f $r.count, (Format-Rate $r.perSecond), (Format-Diagnostics $r))

    $r = Invoke-RedisBenchmark $counts.serverLpush @('lpush', 'bench:q', 'update:user:__rand_int__:{"age":"31"}')
    $raw.serverLpush += $r
    Write-Step ("redis-benchmark LPUSH{0,9:N0} requests  {1,12}  (-P 64)" -f $r.requests, (Format-Rate $r.perSecond))

    # 3./4. Invoke-WriteBehindFlush at 100k and 1M (x scale) queued items, each into a fresh SQLite file
    foreach ($size in @(@{ Name = 'flushSmall'; Enq = 'enqueueSmall'; Count = $counts.flushSmall }, @{ Name = 'flush'; Enq = 'enqueue'; Count = $counts.flush })) {
        Clear-Server
        $e = Invoke-StoreLimitTool @('enqueue', $endpoint, [string]$size.Count, [string](41 + $run))
        $raw[$size.Enq] += $e
        $store = Join-Path $tmp "flush-$($size.Count).db"
        Remove-Store $store
        $r = Invoke-Child 'Flush' @{ Store = "sqlite://$store"; BatchSize = 2000 }
        $r | Add-Member -NotePropertyName queued -NotePropertyValue $e.items
        $raw[$size.Name] += $r
        Remove-Store $store
        if ($r.dequeued -ne $e.items -or $r.error) { Write-Warning "The flush dequeued $($r.dequeued) of $($e.items) queued items (error: $($r.error))." }
        Write-Step ("Invoke-WriteBehindFlush {0,6:N0} items  {1,12}  peak RSS {2:N0} MiB, persisted {3:N0}, coalesced {4:N0}; {5}" -f `
            $r.dequeued, (Format-Rate $r.perSecond), ($r.peakRssBytes / 1MB), $r.persisted, $r.coalesced, (Format-Diagnostics $r))
    }

    # 3b. the same 1M (x scale) workload (same seed), flushed into fresh databases: PostgreSQL (the module's
    # Npgsql store), its table and a mapped users table; MariaDB (MySqlConnector), the same two
    $dbFigures = @()
    if ($Postgres) {
        $dbFigures += @{ Kind = 'postgres'; Mapped = $false; Flush = 'flushPostgres'; Enq = 'enqueuePostgres'; Label = 'flush into PostgreSQL ' }
        $dbFigures += @{ Kind = 'postgres'; Mapped = $true; Flush = 'flushPostgresMapped'; Enq = 'enqueuePostgresMapped'; Label = '  mapped users table  ' }
    }
    if ($MariaDb) {
        $dbFigures += @{ Kind = 'mariadb'; Mapped = $false; Flush = 'flushMariaDb'; Enq = 'enqueueMariaDb'; Label = 'flush into MariaDB    ' }
        $dbFigures += @{ Kind = 'mariadb'; Mapped = $true; Flush = 'flushMariaDbMapped'; Enq = 'enqueueMariaDbMapped'; Label = '  mapped users table  ' }
    }
    foreach ($f in $dbFigures) {
        $d = Invoke-DatabaseFlush -Kind $f.Kind -Mapped:$f.Mapped -Seed (41 + $run)
        $r = $d.Flush
        $raw[$f.Enq] += $d.Enqueue
        $raw[$f.Flush] += $r
        Write-Step ("{0}{1,6:N0} items  {2,12}  persisted {3:N0}, coalesced {4:N0}{5}; {6} CPU {7:F1} s; {8}" -f `
            $f.Label, $r.dequeued, (Format-Rate $r.perSecond), $r.persisted, $r.coalesced,
            $(if ($f.Mapped) { ", {0:N0} rows in users" -f $r.tableRows } else { '' }),
            $(if ($f.Kind -eq 'postgres') { 'PostgreSQL' } else { 'MariaDB' }), $r.dbCpuSeconds, (Format-Diagnostics $r))
    }

    # 3. the store's own limit: the same number of distinct rows, ids in random order (as the flush meets them)
    $store = Join-Path $tmp 'store-limit.db'
    $r = Invoke-StoreLimitTool @('store-limit', $store, [string]$counts.flush, '2000', 'shuffled')
    $raw.storeLimit += $r
    Remove-Store $store
    Write-Step ("store limit, random id order  {0,9:N0} rows  {1,12}  (CPU {2:F1} s, {3:N0} bytes written per row, file {4:N0} MiB)" -f $r.rows, (Format-Rate $r.rowsPerSecond), $r.cpuSeconds, ($r.bytesWritten / $r.rows), ($r.fileBytes / 1MB))
    # the same rows, 20,000 per transaction (the flush may group several leases into one store commit)
    $r = Invoke-StoreLimitTool @('store-limit', $store, [string]$counts.flush, '20000', 'shuffled')
    $raw.storeLimitLargeTx += $r
    Remove-Store $store
    Write-Step ("store limit, 20,000 rows/tx   {0,9:N0} rows  {1,12}  (CPU {2:F1} s, {3:N0} bytes written per row, file {4:N0} MiB)" -f $r.rows, (Format-Rate $r.rowsPerSecond), $r.cpuSeconds, ($r.bytesWritten / $r.rows), ($r.fileBytes / 1MB))
    # the same rows in key order (appends to the primary key): how much the id order costs the store
    $r = Invoke-StoreLimitTool @('store-limit', $store, [string]$counts.flush, '2000', 'sequential')
    $raw.storeLimitKeyOrder += $r
    Remove-Store $store
    Write-Step ("store limit, key order        {0,9:N0} rows  {1,12}  (CPU {2:F1} s, {3:N0} bytes written per row, file {4:N0} MiB)" -f $r.rows, (Format-Rate $r.rowsPerSecond), $r.cpuSeconds, ($r.bytesWritten / $r.rows), ($r.fileBytes / 1MB))
    # the same rows, 2,000 per transaction, through programs that do not use the module: sqlite3, psql COPY
    Invoke-ExternalStoreLimits -Rows $counts.flush -Batch 2000
}
Clear-Server

# ---------------------------------------------------------------------------------------------- dead letters
# Restore-WriteBehindDeadLetter over every other entry, newest first: one pass of dead_letters.lua whatever
# the order (a LREM scan per entry blocked the server for seconds at 20,000).
Write-Host "==> Dead letters: every other one of $('{0:N0}' -f $counts.deadLetters) restored, newest first"
$dlStore = Join-Path $tmp 'dead-letters.db'
Remove-Store $dlStore
$r = Invoke-Child 'DeadLetterRestore' @{ Count = $counts.deadLetters; Store = "sqlite://$dlStore" }
$raw.deadLetterRestore += $r
Remove-Store $dlStore
Write-Step ("Restore-WriteBehindDeadLetter {0,9:N0} entries {1,12}  of {2:N0}; redis-server CPU {3:F2} s during the restore; {4}" -f $r.count, (Format-Rate $r.perSecond), $r.deadLetters, $r.redisCpuSeconds, (Format-Diagnostics $r))
Clear-Server

# ---------------------------------------------------------------------------------------------- cluster scaling
# The flush's scaling curve on a local Redis Cluster: 1, 2 and 3 flusher processes over 16 partitions,
# all writing to one store (bench/ClusterScaling.ps1).
Write-Host "==> Redis Cluster: aggregate flush rate with 1, 2 and 3 flushers ($('{0:N0}' -f $counts.clusterFlush) patches over 16 partitions each time)"
# The flushers of several machines share one PostgreSQL database (SQLite when PostgreSQL is not installed).
$clusterStores = [System.Collections.Generic.List[string]]::new()
$newClusterStore = {
    if ($Postgres) {
        $uri = New-PostgresStore
        $clusterStores.Add($uri)
        $env:WRITEBEHIND_STORE_PASSWORD = $Postgres.Password   # the flusher processes inherit it
        return [pscustomobject]@{ Uri = $uri; Description = "PostgreSQL $($Postgres.Version), one database shared by the flushers" }
    }
    $file = Join-Path $tmp ('cluster-' + [guid]::NewGuid().ToString('N').Substring(0, 8) + '.db')
    [pscustomobject]@{ Uri = "sqlite://$file"; Description = 'SQLite, one file shared by the flushers' }
}
try {
    $raw.clusterScaling = @(& (Join-Path $benchDir 'ClusterScaling.ps1') -ModulePath $ModulePath -Child $child -Count $counts.clusterFlush `
        -WorkDir (Join-Path $tmp 'cluster') -NewStore $newClusterStore)
} finally {
    Remove-Item Env:WRITEBEHIND_STORE_PASSWORD -ErrorAction SilentlyContinue
    foreach ($uri in $clusterStores) { Remove-PostgresStore $uri }
}
foreach ($r in $raw.clusterScaling) {
    Write-Step ("{0} flusher(s)           {1,9:N0} items     {2,12}  (wall {3:F1} s; per flusher {4}; enqueue {5}; store {6})" -f `
        $r.flushers, $r.dequeued, (Format-Rate $r.perSecond), $r.seconds, ($r.perFlusher -join '/'), (Format-Rate $r.enqueuePerSecond), $r.store)
    if ($r.errors.Count) { Write-Warning "Cluster flush errors: $($r.errors -join '; ')" }
}

# ---------------------------------------------------------------------------------------------- cold start
Write-Host "==> Cold start ($($counts.coldStartRuns) runs each, alternating, after one unmeasured warm-up of each)"
$coldStore = Join-Path $tmp 'cold-start.db'
Remove-Store $coldStore
$savedRedis = $env:WRITEBEHIND_REDIS; $savedStore = $env:WRITEBEHIND_STORE
$env:WRITEBEHIND_REDIS = $endpoint
$env:WRITEBEHIND_STORE = "sqlite://$coldStore"
$flushCommand = "Import-Module '$($ModulePath -replace "'", "''")'; Invoke-WriteBehindFlush"
$importCommand = "Import-Module '$($ModulePath -replace "'", "''")'"
$moduleTimes = @(); $bareTimes = @(); $importTimes = @()
try {
    function Measure-Launch([string] $Command) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $output = & dotnet pwsh -NoProfile -NonInteractive -Command $Command 2>&1 | ForEach-Object { "$_" }
        $sw.Stop()
        if ($LASTEXITCODE -ne 0) { throw "dotnet pwsh -Command `"$Command`" failed (exit code $LASTEXITCODE):`n$($output -join "`n")" }
        return $sw.Elapsed.TotalSeconds
    }
    $null = Measure-Launch $flushCommand
    $null = Measure-Launch 'exit'
    for ($i = 0; $i -lt $counts.coldStartRuns; $i++) {
        $moduleTimes += Measure-Launch $flushCommand
        $bareTimes += Measure-Launch 'exit'
        $importTimes += Measure-Launch $importCommand   # where the difference goes: the import alone
    }
} finally {
    $env:WRITEBEHIND_REDIS = $savedRedis; $env:WRITEBEHIND_STORE = $savedStore
    Remove-Store $coldStore
}
$raw.coldStart = [ordered]@{ importAndFlushSeconds = $moduleTimes; bareSeconds = $bareTimes; importOnlySeconds = $importTimes }
Write-Step ("Import-Module + flush (empty queue): {0}" -f (($moduleTimes | ForEach-Object { '{0:F2}' -f $_ }) -join ' '))
Write-Step ("bare pwsh -Command exit:             {0}" -f (($bareTimes | ForEach-Object { '{0:F2}' -f $_ }) -join ' '))
Write-Step ("Import-Module only:                  {0}" -f (($importTimes | ForEach-Object { '{0:F2}' -f $_ }) -join ' '))

# ---------------------------------------------------------------------------------------------- figures
function Get-MedianOf([object[]] $Runs, [string] $Property) { Get-Median @($Runs | ForEach-Object { [double]$_.$Property }) }
function Get-Ratio($a, $b) { if ($null -eq $a -or $null -eq $b -or $b -eq 0) { $null } else { [double]$a / [double]$b } }

$m = [ordered]@{
    setUserProfilePerSecond    = Get-MedianOf $raw.setUserProfile 'perSecond'
    naivePerSecond             = Get-MedianOf $raw.naive 'perSecond'
    pipelineFloorPerSecond     = Get-MedianOf $raw.pipelineFloor 'perSecond'
    pipelineFloorUpdatePerSecond = Get-MedianOf $raw.pipelineFloorUpdate 'perSecond'
    serverLuaPerSecond         = Get-MedianOf $raw.serverLua 'perSecond'
    addWriteQueueItemPerSecond = Get-MedianOf $raw.addWriteQueueItem 'perSecond'
    serverLpushPerSecond       = Get-MedianOf $raw.serverLpush 'perSecond'
    flushPerSecond             = Get-MedianOf $raw.flush 'perSecond'
    flushSmallPerSecond        = Get-MedianOf $raw.flushSmall 'perSecond'
    flushPostgresPerSecond     = Get-MedianOf $raw.flushPostgres 'perSecond'
    flushPostgresSeconds       = Get-MedianOf $raw.flushPostgres 'seconds'
    flushPostgresServerCpuSeconds = Get-MedianOf $raw.flushPostgres 'serverCpuSeconds'
    flushPostgresClientCpuSeconds = Get-MedianOf $raw.flushPostgres 'cpuSeconds'
    flushPostgresDbCpuSeconds  = Get-MedianOf $raw.flushPostgres 'postgresCpuSeconds'
    flushPostgresMappedPerSecond = Get-MedianOf $raw.flushPostgresMapped 'perSecond'
    flushPostgresMappedSeconds = Get-MedianOf $raw.flushPostgresMapped 'seconds'
    flushPostgresMappedClientCpuSeconds = Get-MedianOf $raw.flushPostgresMapped 'cpuSeconds'
    flushPostgresMappedDbCpuSeconds = Get-MedianOf $raw.flushPostgresMapped 'dbCpuSeconds'
    flushMariaDbPerSecond      = Get-MedianOf $raw.flushMariaDb 'perSecond'
    flushMariaDbSeconds        = Get-MedianOf $raw.flushMariaDb 'seconds'
    flushMariaDbServerCpuSeconds = Get-MedianOf $raw.flushMariaDb 'serverCpuSeconds'
    flushMariaDbClientCpuSeconds = Get-MedianOf $raw.flushMariaDb 'cpuSeconds'
    flushMariaDbDbCpuSeconds   = Get-MedianOf $raw.flushMariaDb 'dbCpuSeconds'
    flushMariaDbMappedPerSecond = Get-MedianOf $raw.flushMariaDbMapped 'perSecond'
    flushMariaDbMappedSeconds  = Get-MedianOf $raw.flushMariaDbMapped 'seconds'
    flushMariaDbMappedClientCpuSeconds = Get-MedianOf $raw.flushMariaDbMapped 'cpuSeconds'
    flushMariaDbMappedDbCpuSeconds = Get-MedianOf $raw.flushMariaDbMapped 'dbCpuSeconds'
    storeLimitRowsPerSecond    = Get-MedianOf $raw.storeLimit 'rowsPerSecond'
    storeLimitKeyOrderRowsPerSecond = Get-MedianOf $raw.storeLimitKeyOrder 'rowsPerSecond'
    storeLimitLargeTxRowsPerSecond = Get-MedianOf $raw.storeLimitLargeTx 'rowsPerSecond'
    storeLimitBytesWrittenPerRow = (Get-MedianOf $raw.storeLimit 'bytesWritten') / $counts.flush
    storeLimitKeyOrderBytesWrittenPerRow = (Get-MedianOf $raw.storeLimitKeyOrder 'bytesWritten') / $counts.flush
    flushServerCpuSeconds      = Get-MedianOf $raw.flush 'serverCpuSeconds'
    flushClientCpuSeconds      = Get-MedianOf $raw.flush 'cpuSeconds'
    flushSeconds               = Get-MedianOf $raw.flush 'seconds'
    flushPeakRssMiB            = (Get-MedianOf $raw.flush 'peakRssBytes') / 1MB
    flushSmallPeakRssMiB       = (Get-MedianOf $raw.flushSmall 'peakRssBytes') / 1MB
    flushCoalesced             = Get-MedianOf $raw.flush 'coalesced'
    flushPersisted             = Get-MedianOf $raw.flush 'persisted'
    coldStartModuleSeconds     = Get-Median $moduleTimes
    deadLetterRestorePerSecond = Get-MedianOf $raw.deadLetterRestore 'perSecond'
    deadLetterRestoreRedisCpuSeconds = Get-MedianOf $raw.deadLetterRestore 'redisCpuSeconds'
    coldStartBareSeconds       = Get-Median $bareTimes
    coldStartImportOnlySeconds = Get-Median $importTimes
}
$m.setUserProfileVsNaive = Get-Ratio $m.setUserProfilePerSecond $m.naivePerSecond
$m.setUserProfileVsServerLua = Get-Ratio $m.setUserProfilePerSecond $m.serverLuaPerSecond
$m.setUserProfileVsPipelineFloor = Get-Ratio $m.setUserProfilePerSecond $m.pipelineFloorPerSecond
$m.addWriteQueueItemVsServerLpush = Get-Ratio $m.addWriteQueueItemPerSecond $m.serverLpushPerSecond
$m.addWriteQueueItemVsPipelineFloor = Get-Ratio $m.addWriteQueueItemPerSecond $m.pipelineFloorUpdatePerSecond
# CPU per flushed item (µs): redis-server's (the lease scripts: what one master can do) and the flushing
# process's own (parsing, store writes: what one flusher can do), for the 1M (x scale) SQLite flush.
$flushDequeued = Get-MedianOf $raw.flush 'dequeued'
$m.flushServerCpuMicrosPerItem = if ($flushDequeued) { $m.flushServerCpuSeconds * 1e6 / $flushDequeued } else { $null }
$m.flushClientCpuMicrosPerItem = if ($flushDequeued) { $m.flushClientCpuSeconds * 1e6 / $flushDequeued } else { $null }
$m.flushVsStoreLimit = Get-Ratio $m.flushPerSecond $m.storeLimitRowsPerSecond
$m.flushVsStoreLimitKeyOrder = Get-Ratio $m.flushPerSecond $m.storeLimitKeyOrderRowsPerSecond
$m.flushVsStoreLimitLargeTx = Get-Ratio $m.flushPerSecond $m.storeLimitLargeTxRowsPerSecond
$m.flushPostgresVsSqlite = Get-Ratio $m.flushPostgresPerSecond $m.flushPerSecond
# The mapped tables beside the module's own table on the same database server; MariaDB beside SQLite
# (as PostgreSQL's) and beside PostgreSQL.
$m.flushPostgresMappedVsPostgres = Get-Ratio $m.flushPostgresMappedPerSecond $m.flushPostgresPerSecond
$m.flushMariaDbVsSqlite = Get-Ratio $m.flushMariaDbPerSecond $m.flushPerSecond
$m.flushMariaDbVsPostgres = Get-Ratio $m.flushMariaDbPerSecond $m.flushPostgresPerSecond
$m.flushMariaDbMappedVsMariaDb = Get-Ratio $m.flushMariaDbMappedPerSecond $m.flushMariaDbPerSecond
$m.flushRss1MVs100k = Get-Ratio $m.flushPeakRssMiB $m.flushSmallPeakRssMiB
$m.coldStartRatio = Get-Ratio $m.coldStartModuleSeconds $m.coldStartBareSeconds
$m.coldStartImportOnlyRatio = Get-Ratio $m.coldStartImportOnlySeconds $m.coldStartBareSeconds
Add-ExternalStoreLimitFigures $m

# Scale on paper (issue 13): what the measured CPU per item allows. One Redis master runs the lease scripts
# on one thread, so it leases at most 1e6 / (its µs per item) items/s; one flusher process at most
# 1e6 / (its µs per item) on a core of its own. N masters (Redis Cluster, one partition group each) with N
# flushers give N times the smaller of the two, until the shared store is the bound: its measured limit
# (SQLite at 20,000 rows/tx; PostgreSQL through psql's COPY when measured).
$m.scaleMasterItemsPerSecond = if ($m.flushServerCpuMicrosPerItem) { 1e6 / $m.flushServerCpuMicrosPerItem } else { $null }
$m.scaleFlusherItemsPerSecond = if ($m.flushClientCpuMicrosPerItem) { 1e6 / $m.flushClientCpuMicrosPerItem } else { $null }
$m.scalePairItemsPerSecond = if ($null -ne $m.scaleMasterItemsPerSecond -and $null -ne $m.scaleFlusherItemsPerSecond) { [Math]::Min($m.scaleMasterItemsPerSecond, $m.scaleFlusherItemsPerSecond) } else { $null }
$scaleStores = [ordered]@{ 'SQLite, one file (CommitAsync, 20,000 rows/tx)' = $m.storeLimitLargeTxRowsPerSecond }
if ($null -ne $m['sqliteShellStagedLimitRowsPerSecond']) { $scaleStores['SQLite, the sqlite3 shell (staged, 2,000 rows/tx)'] = $m['sqliteShellStagedLimitRowsPerSecond'] }
if ($null -ne $m['psqlCopyLimitRowsPerSecond']) { $scaleStores['PostgreSQL, psql COPY + upsert (2,000 rows/tx)'] = $m['psqlCopyLimitRowsPerSecond'] }
$m.scaleOnPaper = @(foreach ($n in 1, 2, 4, 8) {
    [ordered]@{ masters = $n; flushers = $n; itemsPerSecond = $(if ($null -ne $m.scalePairItemsPerSecond) { $n * $m.scalePairItemsPerSecond } else { $null }) }
})
$m.scaleStoreBounds = @(foreach ($k in $scaleStores.Keys) {
    [ordered]@{ store = $k; rowsPerSecond = $scaleStores[$k]; mastersToReachIt = $(if ($m.scalePairItemsPerSecond -and $scaleStores[$k]) { $scaleStores[$k] / $m.scalePairItemsPerSecond } else { $null }) }
})

function Test-Target($value, [string] $op, [double] $limit) {
    if ($null -eq $value) { return 'n/a' }
    $ok = if ($op -eq '>=') { $value -ge $limit } else { $value -le $limit }
    if ($ok) { 'met' } else { 'MISSED' }
}
function F0($v) { if ($null -eq $v) { 'n/a' } else { '{0:N0}' -f $v } }
# Three decimals below 2x, so that a ratio just past a target (1.503x against <= 1.5x) does not print as met.
function F2x($v) { if ($null -eq $v) { 'n/a' } elseif ([Math]::Abs($v) -lt 2) { '{0:N3}x' -f $v } else { '{0:N2}x' -f $v } }

$c = $counts
$rows = @(
    [ordered]@{ measure = 'Set-UserProfile, piped'; items = $c.setUserProfile; result = "$(F0 $m.setUserProfilePerSecond) profiles/s"; against = ''; ratio = ''
        target = '>= 100,000/s'; status = Test-Target $m.setUserProfilePerSecond '>=' 100000 }
    [ordered]@{ measure = '  vs the naive loop'; items = $c.naive; result = ''; against = "$(F0 $m.naivePerSecond) items/s"; ratio = F2x $m.setUserProfileVsNaive
        target = '>= 40x'; status = Test-Target $m.setUserProfileVsNaive '>=' 40 }
    [ordered]@{ measure = '  vs redis-benchmark Lua (EVAL -P 64)'; items = $c.serverLua; result = ''; against = "$(F0 $m.serverLuaPerSecond) req/s"; ratio = F2x $m.setUserProfileVsServerLua
        target = '>= 0.3x'; status = Test-Target $m.setUserProfileVsServerLua '>=' 0.3 }
    [ordered]@{ measure = '  vs no-op cmdlet, same input'; items = $c.setUserProfile; result = ''; against = "$(F0 $m.pipelineFloorPerSecond) items/s"; ratio = F2x $m.setUserProfileVsPipelineFloor
        target = '>= 0.6x'; status = Test-Target $m.setUserProfileVsPipelineFloor '>=' 0.6 }
    [ordered]@{ measure = 'Add-WriteQueueItem, piped'; items = $c.addWriteQueueItem; result = "$(F0 $m.addWriteQueueItemPerSecond) items/s"; against = ''; ratio = ''
        target = '>= 150,000/s'; status = Test-Target $m.addWriteQueueItemPerSecond '>=' 150000 }
    [ordered]@{ measure = '  vs no-op cmdlet, same input'; items = $c.addWriteQueueItem; result = ''; against = "$(F0 $m.pipelineFloorUpdatePerSecond) items/s"; ratio = F2x $m.addWriteQueueItemVsPipelineFloor
        target = '>= 0.7x'; status = Test-Target $m.addWriteQueueItemVsPipelineFloor '>=' 0.7 }
    [ordered]@{ measure = '  vs redis-benchmark LPUSH (-P 64)'; items = $c.serverLpush; result = ''; against = "$(F0 $m.serverLpushPerSecond) req/s"; ratio = F2x $m.addWriteQueueItemVsServerLpush
        target = '-'; status = '' }
    [ordered]@{ measure = 'Invoke-WriteBehindFlush -BatchSize 2000'; items = $c.flush; result = "$(F0 $m.flushPerSecond) items/s"; against = ''; ratio = ''
        target = '>= 100,000/s'; status = Test-Target $m.flushPerSecond '>=' 100000 }
    # The flush commits 20,000 items per store transaction (-CommitSize): its store limit is the same size.
    [ordered]@{ measure = '  vs store limit (CommitAsync, 20,000/tx)'; items = $c.flush; result = ''; against = "$(F0 $m.storeLimitLargeTxRowsPerSecond) rows/s"; ratio = F2x $m.flushVsStoreLimitLargeTx
        target = '>= 0.6x'; status = Test-Target $m.flushVsStoreLimitLargeTx '>=' 0.6 }
    [ordered]@{ measure = '  redis-server CPU per flushed item'; items = $c.flush; result = ('{0:N1} µs' -f $m.flushServerCpuMicrosPerItem); against = ''; ratio = ''
        target = '<= 9 µs'; status = Test-Target $m.flushServerCpuMicrosPerItem '<=' 9 }
    [ordered]@{ measure = '  flushing pwsh CPU per flushed item'; items = $c.flush; result = ('{0:N1} µs' -f $m.flushClientCpuMicrosPerItem); against = ''; ratio = ''
        target = '<= 8 µs'; status = Test-Target $m.flushClientCpuMicrosPerItem '<=' 8 }
    [ordered]@{ measure = '  vs store limit, 2,000 rows/tx (info)'; items = $c.flush; result = ''; against = "$(F0 $m.storeLimitRowsPerSecond) rows/s"; ratio = F2x $m.flushVsStoreLimit
        target = '-'; status = '' }
    [ordered]@{ measure = '  vs sqlite3 shell, staged, 2,000 rows/tx (info)'; items = $c.flush; result = ''; against = "$(F0 $m['sqliteShellStagedLimitRowsPerSecond']) rows/s"; ratio = F2x $m['flushVsSqliteShellStagedLimit']
        target = '-'; status = '' }
    [ordered]@{ measure = '  vs store limit, ids in key order (info)'; items = $c.flush; result = ''; against = "$(F0 $m.storeLimitKeyOrderRowsPerSecond) rows/s"; ratio = F2x $m.flushVsStoreLimitKeyOrder
        target = '-'; status = '' }
    [ordered]@{ measure = 'Flush into PostgreSQL'; items = $c.flush; result = $(if ($Postgres) { "$(F0 $m.flushPostgresPerSecond) items/s" } else { 'not run' }); against = "$(F0 $m.flushPerSecond) items/s SQLite"; ratio = F2x $m.flushPostgresVsSqlite
        target = '>= 1.0x'; status = Test-Target $m.flushPostgresVsSqlite '>=' 1.0 }
    [ordered]@{ measure = '  vs psql COPY + upsert, 2,000 rows/tx (info)'; items = $c.flush; result = ''; against = "$(F0 $m['psqlCopyLimitRowsPerSecond']) rows/s"; ratio = F2x $m['flushPostgresVsPsqlCopyLimit']
        target = '-'; status = '' }
    [ordered]@{ measure = '  into a mapped users table (info)'; items = $c.flush; result = $(if ($Postgres) { "$(F0 $m.flushPostgresMappedPerSecond) items/s" } else { 'not run' }); against = "$(F0 $m.flushPostgresPerSecond) items/s own table"; ratio = F2x $m.flushPostgresMappedVsPostgres
        target = '-'; status = '' }
    [ordered]@{ measure = 'Flush into MariaDB (info)'; items = $c.flush; result = $(if ($MariaDb) { "$(F0 $m.flushMariaDbPerSecond) items/s" } else { 'not run' }); against = "$(F0 $m.flushPerSecond) items/s SQLite"; ratio = F2x $m.flushMariaDbVsSqlite
        target = '-'; status = '' }
    [ordered]@{ measure = '  into a mapped users table (info)'; items = $c.flush; result = $(if ($MariaDb) { "$(F0 $m.flushMariaDbMappedPerSecond) items/s" } else { 'not run' }); against = "$(F0 $m.flushMariaDbPerSecond) items/s own table"; ratio = F2x $m.flushMariaDbMappedVsMariaDb
        target = '-'; status = '' }
    foreach ($cs in $raw.clusterScaling) {
        $one = @($raw.clusterScaling | Where-Object flushers -eq 1 | Select-Object -First 1)
        [ordered]@{ measure = "Redis Cluster, 16 partitions, $($cs.flushers) flusher(s)"; items = $cs.dequeued; result = "$(F0 $cs.perSecond) items/s"
            against = $(if ($cs.flushers -gt 1 -and $one) { "$(F0 $one[0].perSecond) items/s, 1 flusher" } else { '' })
            ratio = $(if ($cs.flushers -gt 1 -and $one) { F2x (Get-Ratio $cs.perSecond $one[0].perSecond) } else { '' }); target = 'curve (info)'; status = '' }
    }
    [ordered]@{ measure = 'Restore dead letters, newest first (info)'; items = $c.deadLetters; result = "$(F0 $m.deadLetterRestorePerSecond) entries/s"; against = ('redis-server CPU {0:N2} s' -f $m.deadLetterRestoreRedisCpuSeconds); ratio = ''
        target = '-'; status = '' }
    [ordered]@{ measure = 'Flush peak RSS (VmHWM)'; items = $c.flush; result = ('{0:N0} MiB' -f $m.flushPeakRssMiB); against = ''; ratio = ''
        target = '<= 250 MiB'; status = Test-Target $m.flushPeakRssMiB '<=' 250 }
    [ordered]@{ measure = '  vs peak RSS at 100k x scale'; items = $c.flushSmall; result = ''; against = ('{0:N0} MiB' -f $m.flushSmallPeakRssMiB); ratio = F2x $m.flushRss1MVs100k
        target = 'same (<= 1.10x)'; status = Test-Target $m.flushRss1MVs100k '<=' 1.10 }
    [ordered]@{ measure = 'Cold start: Import-Module + flush'; items = $c.coldStartRuns; result = ('{0:N2} s' -f $m.coldStartModuleSeconds); against = ('{0:N2} s bare' -f $m.coldStartBareSeconds); ratio = F2x $m.coldStartRatio
        target = '<= 1.3x'; status = Test-Target $m.coldStartRatio '<=' 1.3 }
    [ordered]@{ measure = '  of which Import-Module alone (info)'; items = $c.coldStartRuns; result = ('{0:N2} s' -f $m.coldStartImportOnlySeconds); against = ('{0:N2} s bare' -f $m.coldStartBareSeconds); ratio = F2x $m.coldStartImportOnlyRatio
        target = '-'; status = '' }
)

$headers = [ordered]@{ measure = 'Measure'; items = 'Items'; result = 'Result'; against = 'Beside it'; ratio = 'Ratio'; target = 'Target'; status = '' }
$widths = @{}
foreach ($k in $headers.Keys) {
    $widths[$k] = (@($headers[$k]) + @($rows | ForEach-Object { if ($k -eq 'items') { '{0:N0}' -f $_[$k] } else { [string]$_[$k] } }) | Measure-Object -Property Length -Maximum).Maximum
}
$rightAligned = @('items', 'result', 'against', 'ratio')
function Format-Line($cells) {
    (@($headers.Keys | ForEach-Object {
        $text = [string]$cells[$_]
        if ($rightAligned -contains $_) { $text.PadLeft($widths[$_]) } else { $text.PadRight($widths[$_]) }
    }) -join '  ').TrimEnd()
}
$title = "WriteBehind Bench  scale $Scale  ($Runs run(s), medians)  redis-server $($machine.redisServer)  $($machine.cores) cores  pwsh $($machine.pwsh)"
$lines = @($title, (Format-Line $headers), (Format-Line ([ordered]@{ measure = '-' * $widths.measure; items = '-' * $widths.items; result = '-' * $widths.result; against = '-' * $widths.against; ratio = '-' * $widths.ratio; target = '-' * $widths.target; status = '' })))
foreach ($row in $rows) {
    $cells = [ordered]@{}
    foreach ($k in $headers.Keys) { $cells[$k] = if ($k -eq 'items') { '{0:N0}' -f $row[$k] } else { $row[$k] } }
    $lines += Format-Line $cells
}
$lines += ("Flush of {0:N0} mixed items: {1:N0} profiles persisted, {2:N0} coalesced (10% of items on 1% hot ids, ~5% set items, the rest patches over {0:N0} ids)." -f $c.flush, $m.flushPersisted, $m.flushCoalesced)
$lines += ("Store limit rows: ids in random order, as the flush meets them; SQLite wrote {0:N0} bytes per row that way, {1:N0} in key order." -f $m.storeLimitBytesWrittenPerRow, $m.storeLimitKeyOrderBytesWrittenPerRow)
$lines += ("Store limit without the module, 2,000 rows/tx: sqlite3 shell {0} (store limit {1} of it; staged in a TEMP table {2}, {3}); PostgreSQL store {4} vs psql COPY + upsert {5} ({6}); PostgreSQL flush {7} of psql's." -f `
    (Format-Rate $m.sqliteShellLimitRowsPerSecond), (F2x $m.storeLimitVsSqliteShell), (Format-Rate $m.sqliteShellStagedLimitRowsPerSecond), (F2x $m.storeLimitVsSqliteShellStaged),
    (Format-Rate $m.postgresStoreLimitRowsPerSecond), (Format-Rate $m.psqlCopyLimitRowsPerSecond), (F2x $m.postgresStoreLimitVsPsqlCopy), (F2x $m.flushPostgresVsPsqlCopyLimit))
$lines += ("Flush of {0:N0}: {1:N1} s wall; redis-server CPU meanwhile {2:N1} s (the lease scripts), flushing pwsh CPU {3:N1} s (SQLite, parsing, GC)." -f $c.flush, $m.flushSeconds, $m.flushServerCpuSeconds, $m.flushClientCpuSeconds)
if ($Postgres) {
    $lines += ("Flush of {0:N0} into PostgreSQL {1} (fsync on, synchronous_commit off; same workload, same -BatchSize): {2:N1} s wall; redis-server CPU {3:N1} s, flushing pwsh CPU {4:N1} s, PostgreSQL CPU {5:N1} s." -f `
        $c.flush, $Postgres.Version, $m.flushPostgresSeconds, $m.flushPostgresServerCpuSeconds, $m.flushPostgresClientCpuSeconds, $m.flushPostgresDbCpuSeconds)
    $lines += ("  into a mapped users(id text PRIMARY KEY, name text, age integer) with wb_versions: {0:N1} s wall; flushing pwsh CPU {1:N1} s, PostgreSQL CPU {2:N1} s." -f `
        $m.flushPostgresMappedSeconds, $m.flushPostgresMappedClientCpuSeconds, $m.flushPostgresMappedDbCpuSeconds)
}
if ($MariaDb) {
    $lines += ("Flush of {0:N0} into MariaDB {1} (InnoDB log flushed at every commit, doublewrite on; same workload): {2:N1} s wall ({3} PostgreSQL's rate); redis-server CPU {4:N1} s, flushing pwsh CPU {5:N1} s, mariadbd CPU {6:N1} s." -f `
        $c.flush, $MariaDb.Version, $m.flushMariaDbSeconds, (F2x $m.flushMariaDbVsPostgres), $m.flushMariaDbServerCpuSeconds, $m.flushMariaDbClientCpuSeconds, $m.flushMariaDbDbCpuSeconds)
    $lines += ("  into a mapped users(id varchar(64) PRIMARY KEY, name varchar(100), age int) with wb_versions: {0:N1} s wall; flushing pwsh CPU {1:N1} s, mariadbd CPU {2:N1} s." -f `
        $m.flushMariaDbMappedSeconds, $m.flushMariaDbMappedClientCpuSeconds, $m.flushMariaDbMappedDbCpuSeconds)
}
if ($null -ne $m.scalePairItemsPerSecond) {
    $lines += ("Scale on paper: one Redis master leases at most {0:N0} items/s ({1:N1} µs of redis-server CPU per item), one flusher process flushes at most {2:N0} items/s ({3:N1} µs of its CPU per item); N masters with N flushers: {4} when the store is not the bound." -f `
        $m.scaleMasterItemsPerSecond, $m.flushServerCpuMicrosPerItem, $m.scaleFlusherItemsPerSecond, $m.flushClientCpuMicrosPerItem,
        (($m.scaleOnPaper | ForEach-Object { '{0} -> {1:N0}/s' -f $_.masters, $_.itemsPerSecond }) -join ', '))
    foreach ($b in $m.scaleStoreBounds) {
        $lines += ("  the store's measured limit, {0}: {1:N0} rows/s, reached with {2:N1} master(s) and flusher(s); more buys nothing there." -f $b.store, $b.rowsPerSecond, $b.mastersToReachIt)
    }
}
$lines += ("Bench took {0:N0} s. Reproduce: dotnet tool restore && dotnet pwsh ./build.ps1 Bench -BenchScale {1}" -f $clock.Elapsed.TotalSeconds, $Scale)

Write-Host ''
$lines | ForEach-Object { Write-Host $_ }
Write-Host ''

$stamp = $startedAt.ToString('yyyyMMdd-HHmmss', $invariant)
$jsonPath = Join-Path $OutDir "bench-$stamp.json"
$machine.loadAverageAfter = $(if (Test-Path /proc/loadavg) { (Get-Content /proc/loadavg -Raw).Trim() } else { '' })
$report = [ordered]@{
    startedAt       = $startedAt.ToString('o', $invariant)
    durationSeconds = $clock.Elapsed.TotalSeconds
    scale           = $Scale
    runs            = $Runs
    command         = "dotnet tool restore && dotnet pwsh ./build.ps1 Bench -BenchScale $Scale"
    machine         = $machine
    counts          = $counts
    medians         = $m
    table           = $rows
    text            = $lines
    raw             = $raw
}
$report | ConvertTo-Json -Depth 8 | Set-Content -Path $jsonPath -Encoding utf8NoBOM
Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $tmp
Write-Host "==> Figures written to $jsonPath"
