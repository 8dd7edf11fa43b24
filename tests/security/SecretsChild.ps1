# Run by Secrets.Tests.ps1 in a fresh pwsh: every exported cmdlet with -Verbose -Debug (and the preference
# variables at Continue), all six streams captured, every object formatted, then everything $Error holds,
# and a transcript of it all; writes one text file for the test to search for the secrets. The password
# reaches this process only through the environment (WB_TEST_SECRET_PASSWORD), never its command line.
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $Endpoint,
    [Parameter(Mandatory)] [ValidateSet('Credential', 'Environment', 'EnvironmentString')] [string] $Source,
    [Parameter(Mandatory)] [string] $OutFile,
    [Parameter(Mandatory)] [string] $TranscriptPath,
    [Parameter(Mandatory)] [string] $StorePath,
    # a PostgreSQL store instead of SQLite; its password comes through WB_TEST_STORE_PASSWORD
    [string] $StoreUri
)
$ErrorActionPreference = 'Continue'
$VerbosePreference = 'Continue'
$DebugPreference = 'Continue'
$WarningPreference = 'Continue'
$InformationPreference = 'Continue'
$ProgressPreference = 'SilentlyContinue'
$password = $env:WB_TEST_SECRET_PASSWORD
Remove-Item Env:WB_TEST_SECRET_PASSWORD
$storePassword = $env:WB_TEST_STORE_PASSWORD
Remove-Item Env:WB_TEST_STORE_PASSWORD -ErrorAction SilentlyContinue
$dump = [System.Text.StringBuilder]::new()
function Add-Dump([string] $Title, $Value) {
    $null = $dump.AppendLine("=== $Title").AppendLine(($Value | Out-String -Width 4096))
}
$null = Start-Transcript -Path $TranscriptPath -IncludeInvocationHeader
Import-Module $ModulePath

$store = if ($StoreUri) { $StoreUri } else { "sqlite://$StorePath" }
$cred = [pscredential]::new('default', (ConvertTo-SecureString -String $password -AsPlainText -Force))
# How the session holds the password: a PSCredential, WRITEBEHIND_REDIS_PASSWORD, or password= inside
# WRITEBEHIND_REDIS (the environment is an allowed source of it).
$env:WRITEBEHIND_STORE = $store
switch ($Source) {
    'Credential' { $env:WRITEBEHIND_REDIS = $Endpoint; $connect = @{ Redis = $Endpoint; Credential = $cred } }
    'Environment' { $env:WRITEBEHIND_REDIS = $Endpoint; $env:WRITEBEHIND_REDIS_PASSWORD = $password; $connect = @{} }
    'EnvironmentString' { $env:WRITEBEHIND_REDIS = "$Endpoint,password=$password"; $connect = @{} }
}
if ($StoreUri) {
    # the store password as -StoreCredential, or in WRITEBEHIND_STORE_PASSWORD
    $storeUser = ([uri]$StoreUri).UserInfo
    if ($Source -eq 'Credential') { $connect.StoreCredential = [pscredential]::new($storeUser, (ConvertTo-SecureString -String $storePassword -AsPlainText -Force)) }
    else { $env:WRITEBEHIND_STORE_PASSWORD = $storePassword }
}
$common = @{ Verbose = $true; Debug = $true; ErrorAction = 'Continue' }
# the flush's run log and the metrics file, searched like the streams
$runLog = Join-Path (Split-Path $OutFile) 'flush.jsonl'
$metricsFile = Join-Path (Split-Path $OutFile) 'writebehind.prom'

# One invocation per exported cmdlet; a cmdlet missing here is reported (and fails the test).
$calls = [ordered]@{
    'Connect-WriteBehind'           = { Connect-WriteBehind @connect -Store $store -PassThru @common }
    'Set-UserProfile'               = { Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}' -PassThru @common }
    'Get-UserProfile'               = { Get-UserProfile -UserId 1001 @common; Get-UserProfile @common; Get-UserProfile -UserId 1001 -FromStore @common }
    'Add-WriteQueueItem'            = { Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}' @common }
    'Invoke-WriteBehindFlush'       = { Invoke-WriteBehindFlush -LogPath $runLog @common; Invoke-WriteBehindFlush -Continuous -MaxDuration '00:00:01' -LogPath $runLog @common }
    'Export-WriteBehindMetrics'     = { Export-WriteBehindMetrics @common; Export-WriteBehindMetrics -Path $metricsFile @common }
    'Suspend-WriteBehindFlush'      = { Suspend-WriteBehindFlush -Reason 'secrets test' @common; Invoke-WriteBehindFlush -LogPath $runLog @common }
    'Resume-WriteBehindFlush'       = { Resume-WriteBehindFlush @common }
    'Get-WriteBehindStatus'         = { Get-WriteBehindStatus @common }
    'Get-WriteBehindDeadLetter'     = { Get-WriteBehindDeadLetter @common }
    'Restore-WriteBehindDeadLetter' = { Restore-WriteBehindDeadLetter -All -Confirm:$false @common }
    'Remove-WriteBehindDeadLetter'  = { Remove-WriteBehindDeadLetter -All -Confirm:$false @common }
    'Test-WriteBehindConsistency'   = { Test-WriteBehindConsistency @common; Test-WriteBehindConsistency -Repair @common }
    'Remove-UserProfile'            = { Remove-UserProfile -UserId 1001 -Confirm:$false @common }
    'Clear-WriteQueue'              = { Clear-WriteQueue -Confirm:$false @common }
    'Disconnect-WriteBehind'        = { Disconnect-WriteBehind @common }
}
$exported = @(Get-Command -Module WriteBehind -CommandType Cmdlet | ForEach-Object Name)
$null = $dump.AppendLine("EXPORTED: $($exported -join ',')")
foreach ($name in $exported) { if (-not $calls.Contains($name)) { $null = $dump.AppendLine("MISSING-INVOCATION: $name") } }
foreach ($name in $calls.Keys) {
    $out = @(& $calls[$name] *>&1)
    Add-Dump "$name (all streams)" $out
    foreach ($o in $out) {
        # every object as its default view, every property, and its ToString
        Add-Dump "$name object" ($o | Format-List * -Force)
        $null = $dump.AppendLine("$o")
        if ($o -and $o.PSObject.Properties['Options']) { Add-Dump "$name options" ($o.Options | Format-List * -Force) }
        try { $null = $dump.AppendLine(($o | ConvertTo-Json -Depth 2 -WarningAction SilentlyContinue)) } catch { $null = $dump.AppendLine("json: $_") }
    }
    $null = $dump.AppendLine("DONE: $name")
}
# The PSCredential path once more with -Redis holding the password: refused, not echoed.
$redisWithPassword = "$Endpoint,password=$password"
Add-Dump 'password in -Redis' (Connect-WriteBehind -Redis $redisWithPassword -Credential $cred @common *>&1)
Add-Dump 'password in -Redis, user too' (Connect-WriteBehind -Redis "$Endpoint,user=default,password=$password" @common *>&1)
if ($StoreUri) {
    # and the store password in the URI: refused (InvalidStoreUri), not echoed
    $u = [uri]$StoreUri
    Add-Dump 'password in the store URI' (Connect-WriteBehind -Redis $Endpoint -Credential $cred -Store "postgres://$($u.UserInfo):$storePassword@$($u.Authority)$($u.AbsolutePath)" @common *>&1)
}

foreach ($file in $runLog, $metricsFile) {
    if (Test-Path $file) { Add-Dump "file $(Split-Path -Leaf $file)" (Get-Content $file -Raw) }
}

# Everything $Error holds, every way a script would print it.
$null = $dump.AppendLine("ERRORS: $($Error.Count)")
foreach ($e in @($Error)) {
    if ($e -is [System.Management.Automation.ErrorRecord]) {
        $null = $dump.AppendLine("ERRORID: $($e.FullyQualifiedErrorId)")
        $null = $dump.AppendLine($e.ToString())
        Add-Dump 'error record' ($e | Format-List * -Force)
        Add-Dump 'error details' $e.ErrorDetails
        Add-Dump 'target object' ($e.TargetObject | Format-List * -Force)
        $null = $dump.AppendLine("LINE: $($e.InvocationInfo.Line)")
        $null = $dump.AppendLine($e.InvocationInfo.PositionMessage)
        $null = $dump.AppendLine($e.ScriptStackTrace)
        Add-Dump 'Get-Error' ($e | Get-Error)
        $x = $e.Exception
    } else { $x = $e }
    $null = $dump.AppendLine($x.ToString())
    while ($x) { $null = $dump.AppendLine("EXCEPTION: $($x.GetType().FullName): $($x.Message)"); $x = $x.InnerException }
}
$null = Stop-Transcript
Set-Content -Path $OutFile -Value $dump.ToString() -Encoding utf8NoBOM
