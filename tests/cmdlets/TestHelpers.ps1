# Shared set-up for the cmdlet suites: the built module, a raw Redis connection for interop checks
# (StackExchange.Redis, as loaded by the module), and per-test key prefixes.
$script:ModulePath = $env:WRITEBEHIND_TEST_MODULE
$script:RedisEndpoint = $env:WRITEBEHIND_TEST_REDIS
if (-not $script:ModulePath -or -not $script:RedisEndpoint) { throw 'Run through build.ps1 Test (WRITEBEHIND_TEST_MODULE and WRITEBEHIND_TEST_REDIS are unset).' }
Import-Module $script:ModulePath -Force
# The same assembly files the module loads, for raw access beside it (the module itself loads them into a
# private AssemblyLoadContext; these copies go to the default one).
$moduleDir = Join-Path (Split-Path $script:ModulePath) 'net8.0/dependencies'
Add-Type -Path (Join-Path $moduleDir 'StackExchange.Redis.dll'), (Join-Path $moduleDir 'Microsoft.Data.Sqlite.dll')
# The engine points only its own copy of SQLitePCLRaw at the module's native SQLite; point this copy there too.
$sqliteProvider = [Reflection.Assembly]::LoadFrom((Join-Path $moduleDir 'SQLitePCLRaw.provider.e_sqlite3.dll'))
$rid = '{0}-{1}' -f $(if ($IsWindows) { 'win' } elseif ($IsMacOS) { 'osx' } else { 'linux' }),
    [Runtime.InteropServices.RuntimeInformation]::ProcessArchitecture.ToString().ToLowerInvariant()
$sqliteNative = [Runtime.InteropServices.NativeLibrary]::Load(
    (Get-ChildItem -File (Join-Path $moduleDir "runtimes/$rid/native") | Select-Object -First 1).FullName)
try {
    [Runtime.InteropServices.NativeLibrary]::SetDllImportResolver($sqliteProvider, [Runtime.InteropServices.DllImportResolver] {
        param($name) if ($name -eq 'e_sqlite3') { $sqliteNative } else { [IntPtr]::Zero } }.GetNewClosure())
} catch {
    # An earlier test file in this process set it already.
    if ($_.Exception.InnerException -isnot [InvalidOperationException]) { throw }
}
$script:Raw = [StackExchange.Redis.ConnectionMultiplexer]::Connect("$($script:RedisEndpoint),allowAdmin=true")
$script:Db = $script:Raw.GetDatabase()

function Invoke-Raw {
    param([Parameter(Mandatory)][string] $Command, [object[]] $Arguments = @())
    $script:Db.Execute($Command, [object[]]$Arguments)
}

function Get-RawString([string] $Key, [string] $Field) {
    $v = $script:Db.HashGet($Key, $Field)
    if ($v.IsNull) { return $null }
    [string]$v
}

function Get-RawList([string] $Key) {
    @($script:Db.ListRange($Key, 0, -1) | ForEach-Object { [string]$_ })
}

function New-TestPrefix { 'pt-' + [guid]::NewGuid().ToString('N').Substring(0, 12) + ':' }

function Remove-TestKeys([string] $Prefix) {
    # A KEYS reply is read by index: casting it to RedisResult[] would wrap it, not convert it.
    $reply = $script:Db.Execute('KEYS', [object[]]@("$Prefix*"))
    for ($i = 0; $i -lt $reply.Length; $i++) { $null = $script:Db.KeyDelete([string]$reply[$i]) }
}

function New-TestStore {
    $dir = Join-Path ([IO.Path]::GetTempPath()) ('wb-pester-' + [guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $dir | Out-Null
    Join-Path $dir 'store.db'
}

# Reads the store file itself with SQL, independent of the module's read path.
function Get-StoreRow([string] $Path, [string] $UserId) {
    $conn = [Microsoft.Data.Sqlite.SqliteConnection]::new("Data Source=$Path;Mode=ReadOnly;Pooling=False")
    $conn.Open()
    try {
        $cmd = $conn.CreateCommand()
        $cmd.CommandText = 'SELECT json, version, deleted FROM user_profiles WHERE user_id = $id'
        $null = $cmd.Parameters.AddWithValue('$id', $UserId)
        $r = $cmd.ExecuteReader()
        if (-not $r.Read()) { return $null }
        [pscustomobject]@{ Json = $(if ($r.IsDBNull(0)) { $null } else { $r.GetString(0) }); Version = $r.GetInt64(1); Deleted = $r.GetInt64(2) -eq 1 }
    } finally { $conn.Dispose() }
}

# ---- PostgreSQL (the server build.ps1 Test starts; absent when WRITEBEHIND_TEST_POSTGRES is unset) ----
# WRITEBEHIND_TEST_POSTGRES: postgres://user@127.0.0.1:port/database (no password);
# WRITEBEHIND_TEST_POSTGRES_PASSWORD: the role's password; WRITEBEHIND_TEST_POSTGRES_BIN: PostgreSQL's bin folder.
# Raw reads go through psql, independent of the module's Npgsql.
$script:PostgresUri = $env:WRITEBEHIND_TEST_POSTGRES
$script:PostgresSkipReason = 'WRITEBEHIND_TEST_POSTGRES is not set: no test PostgreSQL server (build.ps1 Test starts one).'

function Get-TestPostgresCredential {
    [pscredential]::new(($script:PostgresUri -replace '^postgres(ql)?://([^@]+)@.*$', '$2'),
        (ConvertTo-SecureString $env:WRITEBEHIND_TEST_POSTGRES_PASSWORD -AsPlainText -Force))
}

function Invoke-TestPsql([string] $Sql, [string] $Database) {
    if ($script:PostgresUri -notmatch '^postgres(?:ql)?://([^@]+)@([^:/]+):(\d+)/([^?]+)') { throw "Unexpected WRITEBEHIND_TEST_POSTGRES: $($script:PostgresUri)" }
    $user, $pgHost, $port = $Matches[1], $Matches[2], $Matches[3]
    if (-not $Database) { $Database = $Matches[4] }
    $bin = $env:WRITEBEHIND_TEST_POSTGRES_BIN
    if (-not $bin) { $bin = (Get-ChildItem -Directory '/usr/lib/postgresql/*/bin' | Sort-Object { [int](Split-Path (Split-Path $_.FullName) -Leaf) } | Select-Object -Last 1).FullName }
    $previous = $env:PGPASSWORD
    $env:PGPASSWORD = $env:WRITEBEHIND_TEST_POSTGRES_PASSWORD
    try {
        $out = & (Join-Path $bin 'psql') -h $pgHost -p $port -U $user -d $Database -v ON_ERROR_STOP=1 -X -q -t -A -F "`t" -c $Sql 2>&1
        if ($LASTEXITCODE -ne 0) { throw "psql failed: $($out -join "`n")" }
        $out
    } finally { $env:PGPASSWORD = $previous }
}

# A fresh database on the test server; returns its store URI (no password).
function New-TestPostgresDatabase {
    $name = 'wbp_' + [guid]::NewGuid().ToString('N').Substring(0, 16)
    $null = Invoke-TestPsql "CREATE DATABASE $name"
    ($script:PostgresUri -replace '\?.*$', '') -replace '/[^/]+$', "/$name"
}

function Remove-TestPostgresDatabase([string] $Uri) {
    if (-not $Uri) { return }
    $name = ($Uri -replace '\?.*$', '') -replace '^.*/', ''
    try { $null = Invoke-TestPsql "DROP DATABASE IF EXISTS $name WITH (FORCE)" } catch { Write-Warning $_ }
}

# Reads a row of the PostgreSQL store with psql: json (byte for byte), version, deleted.
function Get-PostgresStoreRow([string] $Uri, [string] $UserId) {
    if ($UserId -notmatch '^[A-Za-z0-9_.@-]+$') { throw "Unexpected user id $UserId" }
    $name = ($Uri -replace '\?.*$', '') -replace '^.*/', ''
    # encode(...,'base64') keeps the text byte for byte through psql's output.
    $line = Invoke-TestPsql "SELECT coalesce(translate(encode(convert_to(json, 'UTF8'), 'base64'), E'\n', ''), '<null>'), version, deleted FROM user_profiles WHERE user_id = '$UserId'" $name
    if (-not $line) { return $null }
    $json64, $version, $deleted = ((@($line) -join '') -split "`t")
    $json = if ($json64 -eq '<null>') { $null } else { [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String(($json64 -replace '\s', ''))) }
    [pscustomobject]@{ Json = $json; Version = [long]$version; Deleted = $deleted -eq 't' }
}
