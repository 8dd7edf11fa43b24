# Help for WriteBehind, generated at build time (platyPS is not available):
#   docs/<Cmdlet-Name>.md + the compiled cmdlets' metadata -> en-US/WriteBehind.dll-Help.xml (MAML)
#   docs/about_*.md                                       -> en-US/about_*.help.txt
# The markdown format is described in docs/README.md. Types, Mandatory, Position, pipeline input, aliases
# and parameter sets are read from the compiled cmdlets (in a child pwsh), never from the markdown, and the
# build fails when the docs and the cmdlets disagree.
Set-StrictMode -Version 3.0

$script:NsMaml = 'http://schemas.microsoft.com/maml/2004/10'
$script:NsCommand = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$script:NsDev = 'http://schemas.microsoft.com/maml/dev/2004/10'

# Section name -> required. Sections must appear in this order.
$script:CmdletSections = [ordered]@{
    'Synopsis' = $true; 'Description' = $true; 'Parameters' = $true; 'Examples' = $true
    'Inputs' = $true; 'Outputs' = $true; 'Notes' = $false; 'Related Links' = $false
}

# Written for every cmdlet that supports ShouldProcess; never documented in the markdown.
$script:ShouldProcessHelp = [ordered]@{
    'WhatIf'  = 'Shows what would happen if the cmdlet runs. The cmdlet is not run.'
    'Confirm' = 'Prompts you for confirmation before running the cmdlet.'
}

#region Markdown

# Splits a document into its title, its ## sections and their ### subsections (headings inside code
# fences are text). Structural problems are added to $Problems.
function Read-HelpMarkdown {
    param([Parameter(Mandatory)] [string] $Path, [System.Collections.Generic.List[string]] $Problems)
    $name = Split-Path $Path -Leaf
    $doc = [pscustomobject]@{ Path = $Path; Name = $name; Title = $null; Sections = [System.Collections.Generic.List[object]]::new() }
    $section = $null; $sub = $null; $inFence = $false; $lineNo = 0
    foreach ($line in [IO.File]::ReadAllLines($Path)) {
        $lineNo++
        $line = $line.TrimEnd()
        # assigned, not taken from an if expression: an empty list would be unrolled to nothing
        $target = $null
        if ($sub) { $target = $sub.Body } elseif ($section) { $target = $section.Body }
        if ($inFence) {
            $target.Add($line)
            if ($line -match '^\s*```\s*$') { $inFence = $false }
            continue
        }
        if ($line -match '^\s*```') {
            if ($null -eq $target) { $Problems.Add("${name}:${lineNo}: a code block before the first ## section."); continue }
            $inFence = $true; $target.Add($line); continue
        }
        if ($line -match '^# (\S.*)$') {
            if ($doc.Title -or $section) { $Problems.Add("${name}:${lineNo}: a second # title ('$($Matches[1])'); only the first line is a # title.") }
            else { $doc.Title = $Matches[1].Trim() }
            continue
        }
        if ($line -match '^## (\S.*)$') {
            $section = [pscustomobject]@{ Name = $Matches[1].Trim(); Line = $lineNo; Body = [System.Collections.Generic.List[string]]::new(); Subsections = [System.Collections.Generic.List[object]]::new() }
            $doc.Sections.Add($section); $sub = $null
            continue
        }
        if ($line -match '^### (\S.*)$') {
            if (-not $section) { $Problems.Add("${name}:${lineNo}: ### heading outside a ## section."); continue }
            $sub = [pscustomobject]@{ Title = $Matches[1].Trim(); Line = $lineNo; Body = [System.Collections.Generic.List[string]]::new() }
            $section.Subsections.Add($sub)
            continue
        }
        if ($line -match '^#+\s') { $Problems.Add("${name}:${lineNo}: only #, ## and ### headings are allowed ('$line')."); continue }
        if ($null -eq $target) {
            if ($line) { $Problems.Add("${name}:${lineNo}: text before the first ## section.") }
            continue
        }
        $target.Add($line)
    }
    if ($inFence) { $Problems.Add("${name}: a code block is not closed.") }
    if (-not $doc.Title) { $Problems.Add("${name}: no '# <name>' title on the first line.") }
    $doc
}

# Markdown inline syntax to plain text: `code`, **bold**, *em*, [text](url), backslash escapes.
function ConvertFrom-MarkdownInline([string] $Text) {
    $t = $Text -replace '\[([^\]]+)\]\((https?://[^)]+)\)', '$1 ($2)'
    $t = $t -replace '\[([^\]]+)\]\([^)]*\)', '$1'
    $t = $t -replace '\*\*([^*]+)\*\*', '$1'
    $t = $t -replace '(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])', '$1'
    $t = $t -replace '`([^`]+)`', '$1'
    $t -replace '\\([\\`*_|\[\]#<>-])', '$1'
}

# Body lines -> blocks: Para (text), Item (a list item, with its marker), Code (lines, language), Table (rows of cells).
function ConvertTo-HelpBlock([string[]] $Lines) {
    $blocks = [System.Collections.Generic.List[object]]::new()
    $current = $null
    $i = 0
    while ($i -lt $Lines.Count) {
        $line = $Lines[$i]
        if ($line -match '^\s*```\s*(\S*)') {
            $lang = $Matches[1]
            $code = [System.Collections.Generic.List[string]]::new()
            $i++
            while ($i -lt $Lines.Count -and $Lines[$i] -notmatch '^\s*```\s*$') { $code.Add($Lines[$i]); $i++ }
            $i++
            $blocks.Add([pscustomobject]@{ Kind = 'Code'; Lang = $lang; Lines = $code.ToArray(); Text = $null })
            $current = $null
            continue
        }
        if (-not $line.Trim()) { $current = $null; $i++; continue }
        if ($line -match '^\s*\|') {
            $rows = [System.Collections.Generic.List[object]]::new()
            while ($i -lt $Lines.Count -and $Lines[$i] -match '^\s*\|') {
                $row = $Lines[$i].Trim()
                if ($row -notmatch '^\|[\s:|-]+\|$') {
                    $cells = ($row.Trim('|') -split '(?<!\\)\|') | ForEach-Object { ConvertFrom-MarkdownInline $_.Trim() }
                    $rows.Add(@($cells))
                }
                $i++
            }
            $blocks.Add([pscustomobject]@{ Kind = 'Table'; Lang = $null; Lines = $rows.ToArray(); Text = $null })
            $current = $null
            continue
        }
        if ($line -match '^(\s*)([-*]|\d+\.)\s+(.*)$') {
            $marker = if ($Matches[2] -match '^\d') { $Matches[2] } else { '-' }
            $current = [pscustomobject]@{ Kind = 'Item'; Lang = $marker; Lines = $null; Text = $Matches[3].Trim() }
            $blocks.Add($current)
            $i++; continue
        }
        if ($current) { $current.Text += ' ' + $line.Trim() }
        else {
            $current = [pscustomobject]@{ Kind = 'Para'; Lang = $null; Lines = $null; Text = $line.Trim() }
            $blocks.Add($current)
        }
        $i++
    }
    foreach ($b in $blocks) { if ($b.Text) { $b.Text = ConvertFrom-MarkdownInline $b.Text } }
    $blocks.ToArray()
}

function Test-HasText([object[]] $Blocks) { @($Blocks | Where-Object { ($_.Text -and $_.Text.Trim()) -or ($_.Lines -and $_.Lines.Count) }).Count -gt 0 }

# A table as aligned text lines (for the plain-text about topics and MAML paragraphs).
function Format-TextTable([object[]] $Rows) {
    $widths = @{}
    foreach ($r in $Rows) { for ($c = 0; $c -lt $r.Count; $c++) { $widths[$c] = [Math]::Max([int]$widths[$c], $r[$c].Length) } }
    $out = [System.Collections.Generic.List[string]]::new()
    for ($n = 0; $n -lt $Rows.Count; $n++) {
        $r = $Rows[$n]
        $out.Add((@(for ($c = 0; $c -lt $r.Count; $c++) { $r[$c].PadRight($widths[$c]) }) -join '  ').TrimEnd())
        if ($n -eq 0) { $out.Add((@(for ($c = 0; $c -lt $r.Count; $c++) { '-' * $widths[$c] }) -join '  ')) }
    }
    $out.ToArray()
}

# Blocks -> MAML paragraph texts (Get-Help shows each as a paragraph).
function ConvertTo-ParaText([object[]] $Blocks) {
    foreach ($b in $Blocks) {
        switch ($b.Kind) {
            'Para' { $b.Text }
            'Item' { "$($b.Lang) $($b.Text)" }
            'Code' { ($b.Lines | ForEach-Object { "    $_" }) -join "`n" }
            'Table' { (Format-TextTable $b.Lines | ForEach-Object { "    $_" }) -join "`n" }
        }
    }
}

#endregion

#region Cmdlet docs

function Get-Section($Doc, [string] $Name) { $Doc.Sections | Where-Object Name -eq $Name | Select-Object -First 1 }

# Checks a cmdlet doc against the strict format and against the compiled cmdlet, and turns it into the
# model the MAML writer uses. Problems go to $Problems.
function ConvertTo-CmdletHelpModel {
    param($Doc, $Meta, [System.Collections.Generic.List[string]] $Problems)
    $n = $Doc.Name
    if ($Doc.Title -and $Doc.Title -ne $Meta.Name) { $Problems.Add("${n}: the title is '# $($Doc.Title)'; expected '# $($Meta.Name)'.") }

    $known = @($script:CmdletSections.Keys)
    $order = -1
    foreach ($s in $Doc.Sections) {
        $idx = [array]::IndexOf($known, $s.Name)
        if ($idx -lt 0) { $Problems.Add("${n}:$($s.Line): unknown section '## $($s.Name)' (allowed: $($known -join ', '))."); continue }
        if ($idx -le $order) { $Problems.Add("${n}:$($s.Line): '## $($s.Name)' is out of order or repeated (order: $($known -join ', '))."); continue }
        $order = $idx
    }
    foreach ($k in $known) {
        if ($script:CmdletSections[$k] -and -not (Get-Section $Doc $k)) { $Problems.Add("${n}: the '## $k' section is missing.") }
    }

    $model = [ordered]@{ Name = $Meta.Name; Synopsis = ''; Description = @(); Parameters = [ordered]@{}; Defaults = @{}; Examples = @(); Inputs = @(); Outputs = @(); Notes = @(); Links = @() }

    $s = Get-Section $Doc 'Synopsis'
    if ($s) {
        $blocks = @(ConvertTo-HelpBlock $s.Body)
        if ($s.Subsections.Count -or $blocks.Count -ne 1 -or $blocks[0].Kind -ne 'Para') { $Problems.Add("${n}: '## Synopsis' must be exactly one paragraph of text.") }
        elseif ($blocks[0].Text -like "$($Meta.Name)*") { $Problems.Add("${n}: the synopsis must say what the cmdlet does, not repeat its syntax.") }
        else { $model.Synopsis = $blocks[0].Text }
    }

    $s = Get-Section $Doc 'Description'
    if ($s) {
        $model.Description = @(ConvertTo-HelpBlock $s.Body)
        if ($s.Subsections.Count) { $Problems.Add("${n}: '## Description' has no ### subsections.") }
        if (-not (Test-HasText $model.Description)) { $Problems.Add("${n}: '## Description' is empty.") }
    }

    $s = Get-Section $Doc 'Parameters'
    if ($s) {
        if ($s.Body | Where-Object { $_ }) { $Problems.Add("${n}: '## Parameters' holds only '### -Name' subsections.") }
        foreach ($p in $s.Subsections) {
            if ($p.Title -notmatch '^-([A-Za-z][A-Za-z0-9_]*)$') { $Problems.Add("${n}:$($p.Line): a parameter heading must be '### -Name', not '### $($p.Title)'."); continue }
            $pname = $Matches[1]
            $body = [System.Collections.Generic.List[string]]::new()
            foreach ($line in $p.Body) {
                if ($line -match '^Default value:\s*(\S.*)$') { $model.Defaults[$pname] = ConvertFrom-MarkdownInline $Matches[1].Trim() } else { $body.Add($line) }
            }
            $blocks = @(ConvertTo-HelpBlock $body.ToArray())
            if ($model.Parameters.Contains($pname)) { $Problems.Add("${n}:$($p.Line): -$pname is documented twice."); continue }
            if (-not (Test-HasText $blocks)) { $Problems.Add("${n}:$($p.Line): -$pname has no description.") }
            $model.Parameters[$pname] = $blocks
        }
        $actual = @($Meta.Parameters | ForEach-Object Name)
        foreach ($pname in $actual) {
            if (-not ($model.Parameters.Keys | Where-Object { $_ -eq $pname })) { $Problems.Add("${n}: -$pname of $($Meta.Name) is not documented (add '### -$pname' under '## Parameters').") }
        }
        foreach ($pname in @($model.Parameters.Keys)) {
            $real = $actual | Where-Object { $_ -eq $pname }
            if (-not $real) {
                if ($script:ShouldProcessHelp.Contains($pname) -or [System.Management.Automation.PSCmdlet]::CommonParameters.Contains($pname)) {
                    $Problems.Add("${n}: documents -$pname, a common parameter; remove it (common parameters are documented automatically).")
                } else { $Problems.Add("${n}: documents -$pname, which $($Meta.Name) does not have.") }
            } elseif ($real -cne $pname) { $Problems.Add("${n}: '### -$pname' must be spelled '-$real'.") }
        }
    }

    $s = Get-Section $Doc 'Examples'
    if ($s) {
        if ($s.Body | Where-Object { $_ }) { $Problems.Add("${n}: '## Examples' holds only '### Example N: Title' subsections.") }
        $num = 0
        foreach ($e in $s.Subsections) {
            $num++
            if ($e.Title -notmatch '^Example (\d+): (\S.*)$' -or [int]$Matches[1] -ne $num) { $Problems.Add("${n}:$($e.Line): expected '### Example ${num}: <title>', found '### $($e.Title)'."); continue }
            $title = $Matches[2].Trim()
            $blocks = @(ConvertTo-HelpBlock $e.Body)
            $codes = @($blocks | Where-Object Kind -eq 'Code')
            if ($codes.Count -ne 1 -or $blocks[0].Kind -ne 'Code' -or $codes[0].Lang -ne 'powershell' -or -not ($codes[0].Lines -join '').Trim()) {
                $Problems.Add("${n}:$($e.Line): Example $num must start with one non-empty ``````powershell code block (and have no other).")
                continue
            }
            $remarks = @($blocks | Select-Object -Skip 1)
            if (-not (Test-HasText $remarks)) { $Problems.Add("${n}:$($e.Line): Example $num has no explanation after its code.") }
            $model.Examples += [pscustomobject]@{ Title = "Example ${num}: $title"; Code = ($codes[0].Lines -join "`n"); Remarks = $remarks }
        }
        if ($num -lt 2) { $Problems.Add("${n}: has $num example(s); at least two are required.") }
    }

    foreach ($kind in 'Inputs', 'Outputs') {
        $s = Get-Section $Doc $kind
        if (-not $s) { continue }
        if ($s.Body | Where-Object { $_ }) { $Problems.Add("${n}: '## $kind' holds only '### <type name>' subsections.") }
        if (-not $s.Subsections.Count) { $Problems.Add("${n}: '## $kind' needs at least one '### <type name>' (or '### None').") }
        $model[$kind] = @(foreach ($t in $s.Subsections) { [pscustomobject]@{ Type = ConvertFrom-MarkdownInline $t.Title; Blocks = @(ConvertTo-HelpBlock $t.Body) } })
    }
    $declared = @($Meta.OutputTypes | Where-Object { $_ -ne 'System.Void' })
    foreach ($t in $declared) {
        if (-not ($model.Outputs | Where-Object { $_.Type -eq $t -or $_.Type -eq ($t -split '\.')[-1] })) {
            Write-Warning "Help: $n does not describe the output type $t that $($Meta.Name) declares with [OutputType]."
        }
    }

    $s = Get-Section $Doc 'Notes'
    if ($s) { $model.Notes = @(ConvertTo-HelpBlock $s.Body) }
    $s = Get-Section $Doc 'Related Links'
    if ($s) {
        $model.Links = @(foreach ($b in (ConvertTo-HelpBlock $s.Body)) {
            if ($b.Kind -ne 'Item') { $Problems.Add("${n}: '## Related Links' is a list ('- Name' or '- [Name](https://...)')."); continue }
            if ($b.Text -match '^(.+?) \((https?://\S+)\)$') { [pscustomobject]@{ Text = $Matches[1]; Uri = $Matches[2] } }
            else { [pscustomobject]@{ Text = $b.Text; Uri = '' } }
        })
    }
    [pscustomobject]$model
}

#endregion

#region Cmdlet metadata (from the compiled module, in a child pwsh)

$script:MetadataScript = @'
param([string] $Module, [string] $OutFile)
$ErrorActionPreference = 'Stop'
$m = Import-Module $Module -PassThru -Force
$common = [System.Collections.Generic.HashSet[string]]::new([string[]]([System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters), [StringComparer]::OrdinalIgnoreCase)
$cmdlets = foreach ($c in $m.ExportedCmdlets.Values) {
    $attr = [System.Attribute]::GetCustomAttribute($c.ImplementingType, [System.Management.Automation.CmdletAttribute])
    $parameters = foreach ($p in $c.Parameters.Values) {
        if ($common.Contains($p.Name)) { continue }
        $t = $p.ParameterType
        $element = if ($t.IsArray) { $t.GetElementType() } else { $t }
        [ordered]@{
            Name = $p.Name; TypeName = $t.Name; TypeFullName = $t.FullName; IsSwitch = $p.SwitchParameter; IsArray = $t.IsArray
            Aliases = @($p.Aliases); EnumValues = @(if ($element.IsEnum) { [Enum]::GetNames($element) })
        }
    }
    $sets = foreach ($s in $c.ParameterSets) {
        [ordered]@{
            Name = $s.Name; IsDefault = $s.IsDefault
            Parameters = @(foreach ($p in $s.Parameters) {
                if ($common.Contains($p.Name)) { continue }
                [ordered]@{ Name = $p.Name; IsMandatory = $p.IsMandatory; Position = $(if ($p.Position -eq [int]::MinValue) { $null } else { $p.Position }); ByValue = $p.ValueFromPipeline; ByPropertyName = $p.ValueFromPipelineByPropertyName }
            })
        }
    }
    [ordered]@{
        Name = $c.Name; Verb = $c.Verb; Noun = $c.Noun
        SupportsShouldProcess = [bool]$attr.SupportsShouldProcess; ConfirmImpact = [string]$attr.ConfirmImpact
        OutputTypes = @($c.OutputType | ForEach-Object { if ($_.Type) { $_.Type.FullName } else { $_.Name } })
        Parameters = @($parameters); ParameterSets = @($sets)
    }
}
ConvertTo-Json -InputObject @($cmdlets) -Depth 10 | Set-Content -LiteralPath $OutFile -Encoding utf8
'@

function Get-CompiledCmdletMetadata([string] $ModulePath) {
    $script = Join-Path ([IO.Path]::GetTempPath()) ("wb-help-meta-$PID-" + [guid]::NewGuid().ToString('N') + '.ps1')
    $json = [IO.Path]::ChangeExtension($script, '.json')
    Set-Content -LiteralPath $script -Value $script:MetadataScript -Encoding utf8
    try {
        # The same PowerShell that runs the build, in a fresh process: the build never loads the module itself.
        $host_ = [Environment]::ProcessPath
        $pwshArgs = @('-NoProfile', '-NonInteractive', '-File', $script, '-Module', $ModulePath, '-OutFile', $json)
        if ([IO.Path]::GetFileNameWithoutExtension($host_) -notmatch '^pwsh') { $pwshArgs = @((Join-Path $PSHOME 'pwsh.dll')) + $pwshArgs }
        $output = & $host_ @pwshArgs 2>&1
        if ($LASTEXITCODE -ne 0 -or -not (Test-Path $json)) {
            throw "Help: could not read the cmdlets of $ModulePath (exit code $LASTEXITCODE):`n$($output -join "`n")"
        }
        @(Get-Content -LiteralPath $json -Raw | ConvertFrom-Json)
    } finally {
        Remove-Item -LiteralPath $script, $json -Force -ErrorAction SilentlyContinue
    }
}

#endregion

#region MAML

function Write-Paras([System.Xml.XmlWriter] $W, [string[]] $Paras) {
    if (-not $Paras) { $W.WriteElementString('maml', 'para', $script:NsMaml, ''); return }
    foreach ($p in $Paras) { $W.WriteElementString('maml', 'para', $script:NsMaml, $p) }
}

function Write-Description([System.Xml.XmlWriter] $W, [object[]] $Blocks) {
    $W.WriteStartElement('maml', 'description', $script:NsMaml)
    Write-Paras $W @(ConvertTo-ParaText $Blocks)
    $W.WriteEndElement()
}

function Write-DevType([System.Xml.XmlWriter] $W, [string] $Name) {
    $W.WriteStartElement('dev', 'type', $script:NsDev)
    $W.WriteElementString('maml', 'name', $script:NsMaml, $Name)
    $W.WriteElementString('maml', 'uri', $script:NsMaml, '')
    $W.WriteEndElement()
}

function Get-PipelineInputText($Usages) {
    $kinds = @()
    if ($Usages | Where-Object ByValue) { $kinds += 'ByValue' }
    if ($Usages | Where-Object ByPropertyName) { $kinds += 'ByPropertyName' }
    if ($kinds) { "True ($($kinds -join ', '))" } else { 'False' }
}

# One <command:parameter>. $Usages: the parameter's entries in the parameter sets concerned.
function Write-MamlParameter {
    param([System.Xml.XmlWriter] $W, $Param, $Usages, [object[]] $Description, [string] $Default, [switch] $InSyntax)
    $positions = @($Usages | Where-Object { $null -ne $_.Position } | ForEach-Object Position | Select-Object -Unique)
    $W.WriteStartElement('command', 'parameter', $script:NsCommand)
    $W.WriteAttributeString('required', $(if ($Usages | Where-Object IsMandatory) { 'true' } else { 'false' }))
    $W.WriteAttributeString('variableLength', $(if ($Param.IsArray) { 'true' } else { 'false' }))
    $W.WriteAttributeString('globbing', 'false')
    $W.WriteAttributeString('pipelineInput', (Get-PipelineInputText $Usages))
    $W.WriteAttributeString('position', $(if ($positions.Count) { [string]$positions[0] } else { 'named' }))
    $W.WriteAttributeString('aliases', $(if ($Param.Aliases) { $Param.Aliases -join ', ' } else { 'none' }))
    $W.WriteElementString('maml', 'name', $script:NsMaml, $Param.Name)
    if (-not $InSyntax) { Write-Description $W $Description }
    if ($Param.EnumValues) {
        $W.WriteStartElement('command', 'parameterValueGroup', $script:NsCommand)
        foreach ($v in $Param.EnumValues) {
            $W.WriteStartElement('command', 'parameterValue', $script:NsCommand)
            $W.WriteAttributeString('required', 'false'); $W.WriteAttributeString('variableLength', 'false')
            $W.WriteString($v)
            $W.WriteEndElement()
        }
        $W.WriteEndElement()
    }
    if (-not $Param.IsSwitch -or -not $InSyntax) {
        $W.WriteStartElement('command', 'parameterValue', $script:NsCommand)
        $W.WriteAttributeString('required', $(if ($Param.IsSwitch) { 'false' } else { 'true' }))
        $W.WriteAttributeString('variableLength', $(if ($Param.IsArray) { 'true' } else { 'false' }))
        $W.WriteString($Param.TypeName)
        $W.WriteEndElement()
    }
    Write-DevType $W $Param.TypeFullName
    $W.WriteElementString('dev', 'defaultValue', $script:NsDev, $(if ($Default) { $Default } elseif ($Param.IsSwitch) { 'False' } else { 'None' }))
    $W.WriteEndElement()
}

function Get-ShouldProcessParameters($Meta) {
    if (-not $Meta.SupportsShouldProcess) { return @() }
    foreach ($name in $script:ShouldProcessHelp.Keys) {
        [pscustomobject]@{
            Param = [pscustomobject]@{ Name = $name; TypeName = 'SwitchParameter'; TypeFullName = 'System.Management.Automation.SwitchParameter'; IsSwitch = $true; IsArray = $false; Aliases = @(if ($name -eq 'WhatIf') { 'wi' } else { 'cf' }); EnumValues = @() }
            Usage = [pscustomobject]@{ Name = $name; IsMandatory = $false; Position = $null; ByValue = $false; ByPropertyName = $false }
            Description = @([pscustomobject]@{ Kind = 'Para'; Lang = $null; Lines = $null; Text = $script:ShouldProcessHelp[$name] })
        }
    }
}

function Write-MamlCommand([System.Xml.XmlWriter] $W, $Model, $Meta) {
    $W.WriteStartElement('command', 'command', $script:NsCommand)
    $W.WriteAttributeString('xmlns', 'maml', $null, $script:NsMaml)
    $W.WriteAttributeString('xmlns', 'command', $null, $script:NsCommand)
    $W.WriteAttributeString('xmlns', 'dev', $null, $script:NsDev)

    $W.WriteStartElement('command', 'details', $script:NsCommand)
    $W.WriteElementString('command', 'name', $script:NsCommand, $Meta.Name)
    $W.WriteElementString('command', 'verb', $script:NsCommand, $Meta.Verb)
    $W.WriteElementString('command', 'noun', $script:NsCommand, $Meta.Noun)
    $W.WriteStartElement('maml', 'description', $script:NsMaml)
    Write-Paras $W @($Model.Synopsis)
    $W.WriteEndElement()
    $W.WriteEndElement()

    Write-Description $W $Model.Description

    $byName = @{}
    foreach ($p in $Meta.Parameters) { $byName[$p.Name] = $p }
    $shouldProcess = @(Get-ShouldProcessParameters $Meta)

    # Syntax: one item per parameter set, the default first; positional parameters by position, then
    # mandatory ones, then the rest in declaration order.
    $W.WriteStartElement('command', 'syntax', $script:NsCommand)
    $sets = @($Meta.ParameterSets | Sort-Object { -not $_.IsDefault })
    foreach ($set in $sets) {
        $W.WriteStartElement('command', 'syntaxItem', $script:NsCommand)
        $W.WriteElementString('maml', 'name', $script:NsMaml, $Meta.Name)
        $ordered = @($set.Parameters | Where-Object { $null -ne $_.Position } | Sort-Object Position) +
                   @($set.Parameters | Where-Object { $null -eq $_.Position -and $_.IsMandatory }) +
                   @($set.Parameters | Where-Object { $null -eq $_.Position -and -not $_.IsMandatory })
        foreach ($u in $ordered) { Write-MamlParameter -W $W -Param $byName[$u.Name] -Usages @($u) -InSyntax }
        foreach ($sp in $shouldProcess) { Write-MamlParameter -W $W -Param $sp.Param -Usages @($sp.Usage) -InSyntax }
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    # Parameters, in the order the doc lists them.
    $W.WriteStartElement('command', 'parameters', $script:NsCommand)
    foreach ($name in $Model.Parameters.Keys) {
        $usages = @($Meta.ParameterSets | ForEach-Object { $_.Parameters } | Where-Object Name -eq $name)
        Write-MamlParameter -W $W -Param $byName[$name] -Usages $usages -Description $Model.Parameters[$name] -Default $Model.Defaults[$name]
    }
    foreach ($sp in $shouldProcess) { Write-MamlParameter -W $W -Param $sp.Param -Usages @($sp.Usage) -Description $sp.Description }
    $W.WriteEndElement()

    foreach ($kind in @(@('inputTypes', 'inputType', 'Inputs'), @('returnValues', 'returnValue', 'Outputs'))) {
        $W.WriteStartElement('command', $kind[0], $script:NsCommand)
        foreach ($t in $Model.($kind[2])) {
            $W.WriteStartElement('command', $kind[1], $script:NsCommand)
            Write-DevType $W $t.Type
            Write-Description $W $t.Blocks
            $W.WriteEndElement()
        }
        $W.WriteEndElement()
    }

    $W.WriteStartElement('maml', 'alertSet', $script:NsMaml)
    $W.WriteStartElement('maml', 'alert', $script:NsMaml)
    Write-Paras $W @(ConvertTo-ParaText $Model.Notes)
    $W.WriteEndElement()
    $W.WriteEndElement()

    $W.WriteStartElement('command', 'examples', $script:NsCommand)
    foreach ($e in $Model.Examples) {
        $W.WriteStartElement('command', 'example', $script:NsCommand)
        $W.WriteElementString('maml', 'title', $script:NsMaml, "--------- $($e.Title) ---------")
        $W.WriteElementString('dev', 'code', $script:NsDev, $e.Code)
        $W.WriteStartElement('dev', 'remarks', $script:NsDev)
        # the empty paragraph leaves a blank line before the next example's title
        Write-Paras $W (@(ConvertTo-ParaText $e.Remarks) + '')
        $W.WriteEndElement()
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteStartElement('command', 'relatedLinks', $script:NsCommand)
    foreach ($l in $Model.Links) {
        $W.WriteStartElement('maml', 'navigationLink', $script:NsMaml)
        $W.WriteElementString('maml', 'linkText', $script:NsMaml, $l.Text)
        $W.WriteElementString('maml', 'uri', $script:NsMaml, $l.Uri)
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteEndElement()
}

#endregion

#region About topics

function Format-Wrapped([string] $Text, [int] $Indent, [int] $Hang = 0, [int] $Width = 80) {
    $lines = [System.Collections.Generic.List[string]]::new()
    $line = ''
    $pad = ' ' * $Indent
    foreach ($word in ($Text -split '\s+' | Where-Object { $_ })) {
        if ($line -and ($pad.Length + $line.Length + 1 + $word.Length) -gt $Width) {
            $lines.Add($pad + $line); $line = $word; $pad = ' ' * ($Indent + $Hang)
        } else { $line = if ($line) { "$line $word" } else { $word } }
    }
    if ($line) { $lines.Add($pad + $line) }
    $lines.ToArray()
}

function ConvertTo-AboutText([object[]] $Blocks, [int] $Indent) {
    $out = [System.Collections.Generic.List[string]]::new()
    $prev = $null
    foreach ($b in $Blocks) {
        # consecutive list items stay together; everything else is separated by a blank line
        if ($null -ne $prev -and -not ($prev.Kind -eq 'Item' -and $b.Kind -eq 'Item')) { $out.Add('') }
        switch ($b.Kind) {
            'Para' { $out.AddRange([string[]]@(Format-Wrapped $b.Text $Indent)) }
            'Item' { $out.AddRange([string[]]@(Format-Wrapped "$($b.Lang) $($b.Text)" $Indent -Hang ($b.Lang.Length + 1))) }
            'Code' { foreach ($l in $b.Lines) { $out.Add(((' ' * ($Indent + 4)) + $l).TrimEnd()) } }
            'Table' { foreach ($l in (Format-TextTable $b.Lines)) { $out.Add((' ' * $Indent) + $l) } }
        }
        $prev = $b
    }
    $out.ToArray()
}

# docs/about_X.md -> about_X.help.txt: '# about_X', '## Short description' (one paragraph) first, then
# '## Long description' and any further ## sections (### subsections allowed).
function ConvertTo-AboutHelp([string] $Path, [System.Collections.Generic.List[string]] $Problems) {
    $doc = Read-HelpMarkdown -Path $Path -Problems $Problems
    $n = $doc.Name
    $topic = [IO.Path]::GetFileNameWithoutExtension($Path)
    if ($doc.Title -and $doc.Title -ne $topic) { $Problems.Add("${n}: the title must be '# $topic'.") }
    if ($doc.Sections.Count -lt 2 -or $doc.Sections[0].Name -ne 'Short description' -or $doc.Sections[1].Name -ne 'Long description') {
        $Problems.Add("${n}: the first sections must be '## Short description' and '## Long description'.")
        return $null
    }
    $text = [System.Collections.Generic.List[string]]::new()
    $text.Add('TOPIC'); $text.Add("    $topic"); $text.Add('')
    foreach ($s in $doc.Sections) {
        $text.Add($s.Name.ToUpperInvariant())
        $body = @(ConvertTo-HelpBlock $s.Body)
        if ($body) { $text.AddRange([string[]]@(ConvertTo-AboutText $body 4)) }
        foreach ($sub in $s.Subsections) {
            if ($body -or $sub -ne $s.Subsections[0]) { $text.Add('') }
            $text.Add("  $($sub.Title)")
            $text.Add('')
            $text.AddRange([string[]]@(ConvertTo-AboutText @(ConvertTo-HelpBlock $sub.Body) 4))
        }
        $text.Add('')
    }
    [pscustomobject]@{ Topic = $topic; Text = ($text -join [Environment]::NewLine) }
}

#endregion

<#
.SYNOPSIS
    Builds the module's help: en-US/WriteBehind.dll-Help.xml (MAML) from docs/<Cmdlet>.md and the compiled
    cmdlets, and en-US/about_*.help.txt from docs/about_*.md. Throws, listing every problem, when a
    cmdlet has no doc, a doc misses or invents a parameter, or has fewer than two examples.
.PARAMETER Docs
    The docs folder.
.PARAMETER Destination
    The module's culture folder (out/WriteBehind/<version>/en-US).
.PARAMETER ModulePath
    What the child pwsh imports to read the cmdlets: by default WriteBehind.psd1 in the parent of
    -Destination when it exists, else WriteBehind.dll there.
.PARAMETER Manifest
    The source manifest whose CmdletsToExport lists the cmdlets that need help.
#>
function Export-WriteBehindHelp {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)] [string] $Docs,
        [Parameter(Mandatory)] [string] $Destination,
        [string] $ModulePath,
        [string] $Manifest = (Join-Path (Split-Path $PSScriptRoot -Parent) 'WriteBehind.psd1')
    )
    $Docs = (Resolve-Path -LiteralPath $Docs).Path
    $Destination = [IO.Path]::GetFullPath($Destination)
    if (-not $ModulePath) {
        $moduleDir = Split-Path $Destination -Parent
        $ModulePath = @('WriteBehind.psd1', 'WriteBehind.dll') | ForEach-Object { Join-Path $moduleDir $_ } | Where-Object { Test-Path $_ } | Select-Object -First 1
        if (-not $ModulePath) { throw "Help: neither WriteBehind.psd1 nor WriteBehind.dll is in $moduleDir." }
    }
    $exported = @((Import-PowerShellDataFile -LiteralPath $Manifest).CmdletsToExport)
    $compiled = @{}
    foreach ($c in (Get-CompiledCmdletMetadata $ModulePath)) { $compiled[$c.Name] = $c }

    $problems = [System.Collections.Generic.List[string]]::new()
    $models = [System.Collections.Generic.List[object]]::new()
    foreach ($name in $exported) {
        $meta = $compiled[$name]
        if (-not $meta) { $problems.Add("$name is in CmdletsToExport but $(Split-Path $ModulePath -Leaf) has no such cmdlet."); continue }
        $path = Join-Path $Docs "$name.md"
        if (-not (Test-Path -LiteralPath $path)) { $problems.Add("$name has no help: create docs/$name.md (format: docs/README.md)."); continue }
        # The file name must match the cmdlet exactly, also on case-insensitive file systems.
        $leaf = (Get-Item -LiteralPath $path).Name
        if ($leaf -cne "$name.md") { $problems.Add("docs/${leaf}: rename it to $name.md."); continue }
        $doc = Read-HelpMarkdown -Path $path -Problems $problems
        $models.Add([pscustomobject]@{ Model = (ConvertTo-CmdletHelpModel -Doc $doc -Meta $meta -Problems $problems); Meta = $meta })
    }
    foreach ($f in (Get-ChildItem -LiteralPath $Docs -Filter '*-*.md' -File)) {
        $cmd = $f.BaseName
        if (-not ($exported | Where-Object { $_ -ceq $cmd })) { $problems.Add("docs/$($f.Name) documents '$cmd', which is not in CmdletsToExport.") }
    }
    $abouts = @(foreach ($f in (Get-ChildItem -LiteralPath $Docs -Filter 'about_*.md' -File)) { ConvertTo-AboutHelp -Path $f.FullName -Problems $problems })
    if ($problems.Count) {
        # One line each in the build log (an exception message gets reflowed by the error view).
        foreach ($p in $problems) { Write-Host "    help problem: $p" }
        $failure = [System.InvalidOperationException]::new("Help: $($problems.Count) problem(s) in $Docs, listed above (the format is in docs/README.md).")
        $failure.Data['Problems'] = $problems.ToArray()
        throw $failure
    }

    New-Item -ItemType Directory -Force -Path $Destination | Out-Null
    $settings = [System.Xml.XmlWriterSettings]::new()
    $settings.Indent = $true
    $settings.Encoding = [System.Text.UTF8Encoding]::new($false)
    $xmlPath = Join-Path $Destination 'WriteBehind.dll-Help.xml'
    $w = [System.Xml.XmlWriter]::Create($xmlPath, $settings)
    try {
        $w.WriteStartDocument()
        $w.WriteStartElement('helpItems', 'http://msh')
        $w.WriteAttributeString('schema', 'maml')
        foreach ($m in $models) { Write-MamlCommand $w $m.Model $m.Meta }
        $w.WriteEndElement()
        $w.WriteEndDocument()
    } finally { $w.Dispose() }
    foreach ($a in $abouts) {
        [IO.File]::WriteAllText((Join-Path $Destination "$($a.Topic).help.txt"), $a.Text + [Environment]::NewLine, [System.Text.UTF8Encoding]::new($false))
    }
    Write-Host "    help: $($models.Count) cmdlets, $($abouts.Count) about topic(s) -> $Destination"
}

Export-ModuleMember -Function Export-WriteBehindHelp
