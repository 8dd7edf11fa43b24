#Requires -Modules ScheduledTasks
<#
.SYNOPSIS
    Registers a Windows scheduled task that runs the WriteBehind flush every minute.
.DESCRIPTION
    The task runs Invoke-WriteBehindFlush.ps1 with pwsh.exe under the given account; a failed flush ends
    the task with a non-zero result (Last Run Result in Task Scheduler). Connection settings come from the
    account's environment (WRITEBEHIND_REDIS, WRITEBEHIND_STORE), so no password is stored in the task.
.EXAMPLE
    ./Register-WriteBehindFlushTask.ps1 -ScriptPath 'C:\WriteBehind\Invoke-WriteBehindFlush.ps1' -User 'CONTOSO\svc-writebehind'
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)] [string] $ScriptPath,
    [string] $TaskName = 'WriteBehind flush',
    [string] $User = 'NT AUTHORITY\SYSTEM',
    [timespan] $Every = '00:01:00',
    [string] $Pwsh = (Join-Path $PSHOME 'pwsh.exe')
)
$action = New-ScheduledTaskAction -Execute $Pwsh -Argument "-NoProfile -NonInteractive -File `"$ScriptPath`" -MaxDuration 00:05:00"
$trigger = New-ScheduledTaskTrigger -Once -At (Get-Date).AddMinutes(1) -RepetitionInterval $Every
$settings = New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew -ExecutionTimeLimit (New-TimeSpan -Minutes 10) -StartWhenAvailable
# Built-in service accounts need no password; any other account runs with S4U (no stored password, no
# network credentials: Redis and the store must be reachable without them).
$logon = if ($User -in 'NT AUTHORITY\SYSTEM', 'NT AUTHORITY\LOCAL SERVICE', 'NT AUTHORITY\NETWORK SERVICE') { 'ServiceAccount' } else { 'S4U' }
$principal = New-ScheduledTaskPrincipal -UserId $User -LogonType $logon -RunLevel Limited
if ($PSCmdlet.ShouldProcess($TaskName, 'Register scheduled task')) {
    Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Settings $settings -Principal $principal -Force
}
