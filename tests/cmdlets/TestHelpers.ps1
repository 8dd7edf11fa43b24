# Shared set-up for the cmdlet suites: the built module, a raw Redis connection for interop checks
# (StackExchange.Redis, as loaded by the module), and per-test key prefixes.
$script:ModulePath = $env:WRITEBEHIND_TEST_MODULE
$script:RedisEndpoint = $env:WRITEBEHIND_TEST_REDIS
if (-not $script:ModulePath -or -not $script:RedisEndpoint) { throw 'Run through build.ps1 Test (WRITEBEHIND_TEST_MODULE and WRITEBEHIND_TEST_REDIS are unset).' }
Import-Module $script:ModulePath -Force
# The same assembly files the module loads, for raw access beside it (the module itself loads them into a
# private AssemblyLoadContext; these copies go to the default one).
$moduleDir = Join-Path (Split-Path $script:ModulePath) 'dependencies'
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
