# The store limit measured by programs that do not use the module (issue 13), dot-sourced by Bench.ps1 and
# called there (it uses Bench.ps1's Invoke-StoreLimitTool, New-PostgresStore, Remove-PostgresStore, Remove-Store,
# Write-Step, $tmp, $raw, $counts and $Postgres):
#   - the sqlite3 shell running SqliteProfileStore's upsert with its PRAGMAs, 2,000 rows per transaction, the
#     same rows in the same order as the store limit (one literal statement per row; and, for information, the
#     rows staged in a TEMP table first and upserted by one INSERT ... SELECT per transaction: SQLite's own
#     limit with no parse or bind work per row);
#   - the PostgreSQL store's own limit (PostgresProfileStore.CommitAsync, 2,000 rows per commit) beside psql
#     with COPY into a TEMP staging table + INSERT ... ON CONFLICT DO UPDATE ... WHERE stored.version <
#     excluded.version, 2,000 rows per transaction, each into a fresh database of the bench's PostgreSQL.
# See bench/StoreLimit/ExternalLimits.cs for what each one times.

# One run of each; the raw results go to $raw.sqliteShellLimit, sqliteShellStagedLimit, postgresStoreLimit and
# psqlCopyLimit.
function Invoke-ExternalStoreLimits([long] $Rows, [int] $Batch = 2000) {
    foreach ($k in 'sqliteShellLimit', 'sqliteShellStagedLimit', 'postgresStoreLimit', 'psqlCopyLimit') {
        if (-not $raw.Contains($k)) { $raw[$k] = @() }
    }
    if (Get-Command sqlite3 -ErrorAction SilentlyContinue) {
        $store = Join-Path $tmp 'sqlite-shell.db'
        foreach ($shape in 'literal', 'staged') {
            $r = Invoke-StoreLimitTool @('sqlite-shell', $store, [string]$Rows, [string]$Batch, 'shuffled', $shape)
            Remove-Store $store
            if ($shape -eq 'literal') { $raw.sqliteShellLimit += $r } else { $raw.sqliteShellStagedLimit += $r }
            Write-Step ("sqlite3 shell, {0,-7} {1,9:N0} rows  {2,12}  ({3:N0}/tx; shell CPU {4:F1} s; SQLite {5}, {6})" -f $shape, $r.rows, (Format-Rate $r.rowsPerSecond), $Batch, $r.cpuSeconds, $r.sqliteVersion, $r.settings)
        }
    } else {
        Write-Warning 'sqlite3 is not on PATH: the sqlite3 shell store limit is skipped (Debian: apt-get install -y sqlite3).'
    }
    if ($Postgres) {
        $env:WRITEBEHIND_STORE_PASSWORD = $Postgres.Password
        $env:WRITEBEHIND_PSQL = Join-Path $Postgres.Bin 'psql'
        $pidFile = Join-Path $Postgres.DataDir 'postmaster.pid'
        $env:WRITEBEHIND_BENCH_PG_PID = $(try { (Get-Content $pidFile -TotalCount 1 -ErrorAction Stop).Trim() } catch { '' })
        try {
            foreach ($mode in 'pg-store-limit', 'psql-copy') {
                $uri = New-PostgresStore
                try { $r = Invoke-StoreLimitTool @($mode, $uri, [string]$Rows, [string]$Batch, 'shuffled') } finally { Remove-PostgresStore $uri }
                if ($mode -eq 'pg-store-limit') { $raw.postgresStoreLimit += $r; $label = 'PostgreSQL store limit  ' } else { $raw.psqlCopyLimit += $r; $label = 'psql COPY + upsert      ' }
                Write-Step ("{0}{1,9:N0} rows  {2,12}  ({3:N0}/tx; client CPU {4:F1} s, PostgreSQL CPU {5:F1} s)" -f $label, $r.rows, (Format-Rate $r.rowsPerSecond), $Batch, $r.cpuSeconds, $r.dbCpuSeconds)
            }
        } finally {
            Remove-Item Env:WRITEBEHIND_STORE_PASSWORD, Env:WRITEBEHIND_PSQL, Env:WRITEBEHIND_BENCH_PG_PID -ErrorAction SilentlyContinue
        }
    }
}

# The medians and ratios of those runs, added to the bench's medians ($m) beside the existing fields.
function Add-ExternalStoreLimitFigures($m) {
    $m.sqliteShellLimitRowsPerSecond = Get-MedianOf $raw.sqliteShellLimit 'rowsPerSecond'
    $m.sqliteShellLimitCpuSeconds = Get-MedianOf $raw.sqliteShellLimit 'cpuSeconds'
    $m.sqliteShellStagedLimitRowsPerSecond = Get-MedianOf $raw.sqliteShellStagedLimit 'rowsPerSecond'
    $m.sqliteShellStagedLimitCpuSeconds = Get-MedianOf $raw.sqliteShellStagedLimit 'cpuSeconds'
    $m.storeLimitCpuSeconds = Get-MedianOf $raw.storeLimit 'cpuSeconds'
    $m.postgresStoreLimitRowsPerSecond = Get-MedianOf $raw.postgresStoreLimit 'rowsPerSecond'
    $m.postgresStoreLimitClientCpuSeconds = Get-MedianOf $raw.postgresStoreLimit 'cpuSeconds'
    $m.postgresStoreLimitDbCpuSeconds = Get-MedianOf $raw.postgresStoreLimit 'dbCpuSeconds'
    $m.psqlCopyLimitRowsPerSecond = Get-MedianOf $raw.psqlCopyLimit 'rowsPerSecond'
    $m.psqlCopyLimitClientCpuSeconds = Get-MedianOf $raw.psqlCopyLimit 'cpuSeconds'
    $m.psqlCopyLimitDbCpuSeconds = Get-MedianOf $raw.psqlCopyLimit 'dbCpuSeconds'
    # Our SQLite store path (CommitAsync, 2,000 rows/tx) beside the shell at the same rows per transaction.
    $m.storeLimitVsSqliteShell = Get-Ratio $m.storeLimitRowsPerSecond $m.sqliteShellLimitRowsPerSecond
    $m.storeLimitVsSqliteShellStaged = Get-Ratio $m.storeLimitRowsPerSecond $m.sqliteShellStagedLimitRowsPerSecond
    $m.flushVsSqliteShellLimit = Get-Ratio $m.flushPerSecond $m.sqliteShellLimitRowsPerSecond
    $m.flushVsSqliteShellStagedLimit = Get-Ratio $m.flushPerSecond $m.sqliteShellStagedLimitRowsPerSecond
    # Our PostgreSQL store path beside psql COPY at the same rows per transaction; the flush beside both.
    $m.postgresStoreLimitVsPsqlCopy = Get-Ratio $m.postgresStoreLimitRowsPerSecond $m.psqlCopyLimitRowsPerSecond
    $m.flushPostgresVsPostgresStoreLimit = Get-Ratio $m.flushPostgresPerSecond $m.postgresStoreLimitRowsPerSecond
    $m.flushPostgresVsPsqlCopyLimit = Get-Ratio $m.flushPostgresPerSecond $m.psqlCopyLimitRowsPerSecond
}
