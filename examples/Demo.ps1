# The seed scenario, four steps, with the WriteBehind cmdlets; prints what each step left.
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Redis = $env:WRITEBEHIND_REDIS,
    [string] $Store = $env:WRITEBEHIND_STORE
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$connect = @{ Redis = $(if ($Redis) { $Redis } else { 'localhost:6379' }) }
if ($Store) { $connect.Store = $Store }
$connection = Connect-WriteBehind @connect -PassThru
function Show-Cache {
    foreach ($id in '1001', '1002') {
        $p = Get-UserProfile -UserId $id -ErrorAction SilentlyContinue
        '    HGET user_profiles user:{0} -> {1} (version {2})' -f $id, $p.Json, $p.Version
    }
}
function Show-Queue {
    $items = @((Get-WriteBehindStatus -NoStore).QueueDepth)
    '    LLEN write_queue -> {0}' -f $items[0]
}

"Redis: $($connection.RedisEndpoint)   store: $($connection.StoreUri)"
''
'Step 1  data setup: Set-UserProfile user:1001 and user:1002'
Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
Show-Cache
''
'Step 2  configuration: Clear-WriteQueue (the queue starts empty)'
$cleared = Clear-WriteQueue -Confirm:$false
'    dropped {0} pending item(s)' -f $cleared.Dropped
Show-Queue
''
'Step 3  core logic: Add-WriteQueueItem -UserId 1001 -Update ''{"age":"31"}'''
Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}' -PassThru | ForEach-Object { '    LPUSH write_queue "{0}"' -f $_.Item }
Show-Queue
''
'Step 4  completion: Invoke-WriteBehindFlush (atomic pop-and-apply, then the store commit)'
$result = Invoke-WriteBehindFlush
'    dequeued {0}, persisted {1}, coalesced {2}, dead-lettered {3}, {4:N1} ms' -f $result.Dequeued, $result.Persisted, $result.Coalesced, $result.DeadLettered, $result.Duration.TotalMilliseconds
Show-Queue
Show-Cache
$status = Get-WriteBehindStatus
'    store ({0}) holds {1} profile(s)' -f $status.Store, $status.StoredProfiles
$row = Get-UserProfile -UserId 1001 -FromStore
'    store row user 1001 -> {0} (version {1})' -f $row.Json, $row.Version
Disconnect-WriteBehind
