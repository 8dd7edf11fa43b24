# The root module: imports the cmdlet assembly built for this edition, PowerShell 7.4+ (net8.0/, .NET 8 or later)
# or Windows PowerShell 5.1 (netstandard2.0/). Each folder holds its WriteBehind.dll and the dependencies/ its
# resolver loads from (src/WriteBehind/DependencyResolver.cs). The resolver is registered before PowerShell
# imports WriteBehind.dll: PowerShell enumerates the assembly's types before it calls the module's
# IModuleAssemblyInitializer, and laying out two of them needs WriteBehind.Engine, which lives in dependencies/.
if ($PSEdition -eq 'Core') {
    if ([Environment]::Version.Major -lt 8) {
        throw "WriteBehind needs PowerShell 7.4 or later (.NET 8+), or Windows PowerShell 5.1; this is PowerShell $($PSVersionTable.PSVersion) on .NET $([Environment]::Version)."
    }
    $framework = 'net8.0'
} else {
    $framework = 'netstandard2.0'
}
# [IO.Path], not Join-Path: Join-Path would auto-load Microsoft.PowerShell.Management (a module-path search and
# analysis-cache read) in every session that has not loaded it yet, pwsh -NoProfile -Command among them.
$cmdletPath = [System.IO.Path]::Combine($PSScriptRoot, $framework, 'WriteBehind.dll')
[System.Reflection.Assembly]::LoadFrom($cmdletPath).GetType('WriteBehind.Commands.ModuleInitializer', $true)::new().OnImport()
# By path, not -Assembly: a re-import (Import-Module -Force, or after Remove-Module) of the same Assembly object
# would export no cmdlets.
Import-Module $cmdletPath
Export-ModuleMember -Cmdlet *
