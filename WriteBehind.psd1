# Source manifest. build.ps1 stamps ModuleVersion from Directory.Build.props and lays the module out in
# out/WriteBehind/<version>/ next to the assemblies; import that one.
@{
    # Imports net8.0/WriteBehind.dll on PowerShell 7.4+, netstandard2.0/WriteBehind.dll on Windows PowerShell 5.1.
    RootModule           = 'WriteBehind.psm1'
    ModuleVersion        = '0.0.0'
    GUID                 = '5b0e7f4e-3c2a-4d8e-9f5e-7a1c2b3d4e5f'
    Author               = 'WriteBehind contributors'
    CompanyName          = 'WriteBehind'
    Copyright            = '(c) WriteBehind contributors. MIT licence.'
    Description          = 'Write-behind caching on Redis: profile writes land in a Redis hash at once, pending operations wait in a Redis list, and Invoke-WriteBehindFlush drains them into the system of record (a SQLite file or a PostgreSQL database) in batches, losing nothing, applying nothing twice and never moving the store backwards.'
    PowerShellVersion    = '5.1'
    CompatiblePSEditions = @('Desktop', 'Core')
    FormatsToProcess     = @('WriteBehind.format.ps1xml')
    FunctionsToExport    = @()
    CmdletsToExport      = @(
        'Connect-WriteBehind'
        'Disconnect-WriteBehind'
        'Set-UserProfile'
        'Get-UserProfile'
        'Remove-UserProfile'
        'Add-WriteQueueItem'
        'Clear-WriteQueue'
        'Invoke-WriteBehindFlush'
        'Get-WriteBehindStatus'
        'Get-WriteBehindDeadLetter'
        'Restore-WriteBehindDeadLetter'
        'Remove-WriteBehindDeadLetter'
        'Test-WriteBehindConsistency'
        'Export-WriteBehindMetrics'
        'Suspend-WriteBehindFlush'
        'Resume-WriteBehindFlush'
    )
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('Redis', 'WriteBehind', 'Cache', 'Queue', 'SQLite', 'PostgreSQL', 'Linux', 'Windows', 'PSEdition_Core', 'PSEdition_Desktop')
            LicenseUri = 'https://opensource.org/licenses/MIT'
            ProjectUri = 'https://example.invalid/writebehind'
        }
    }
}
