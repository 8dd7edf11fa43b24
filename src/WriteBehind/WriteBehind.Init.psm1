# The manifest's first nested module: puts WriteBehind.dll's dependency resolver in place before PowerShell
# loads WriteBehind.dll as the root module. PowerShell enumerates the cmdlet assembly's types before it calls
# the module's IModuleAssemblyInitializer, and laying out two of them needs WriteBehind.Engine, which lives in
# dependencies/ (see src/WriteBehind/ModuleInitializer.cs). Exports nothing.
$cmdletAssembly = [System.Reflection.Assembly]::LoadFrom((Join-Path $PSScriptRoot 'WriteBehind.dll'))
$cmdletAssembly.GetType('WriteBehind.Commands.ModuleInitializer', $true)::new().OnImport()
Export-ModuleMember
