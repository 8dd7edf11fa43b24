# Shared by the security suites (tests/security): each starts its own redis-server (ACL users, TLS, a
# password) with build/Servers.psm1, so they run once, in build.ps1 Test's redis-server pass.
. (Join-Path $PSScriptRoot '../cmdlets/TestHelpers.ps1')
Import-Module (Join-Path $PSScriptRoot '../../build/Servers.psm1') -Force
$script:ServerDir = Join-Path ([IO.Path]::GetTempPath()) ('wb-security-' + [guid]::NewGuid().ToString('N').Substring(0, 8))

function New-Password { 'pw-' + [guid]::NewGuid().ToString('N') + [guid]::NewGuid().ToString('N').Substring(0, 8) }

function New-TestCredential([string] $User, [string] $Password) {
    [pscredential]::new($User, (ConvertTo-SecureString -String $Password -AsPlainText -Force))
}

# Sends one command to a server as its default user (AUTH first when a password is given) over a raw
# socket speaking RESP, so that set-up (ACL SETUSER, CONFIG RESETSTAT, a raw LPUSH) sends exactly that
# command and nothing else (a StackExchange.Redis connection would add INFO, CONFIG GET, SUBSCRIBE...).
# Returns the reply: a string, a long, $null, or an array of them; an error reply throws.
function Invoke-AdminCommand([string] $Endpoint, [string] $Command, [object[]] $Arguments = @(), [string] $Password, [switch] $Tls) {
    $hostName, $port = $Endpoint -split ':'
    $client = [System.Net.Sockets.TcpClient]::new($hostName, [int]$port)
    try {
        $stream = $client.GetStream()
        if ($Tls) {
            $ssl = [System.Net.Security.SslStream]::new($stream, $false, { $true })
            $ssl.AuthenticateAsClient('localhost')
            $stream = $ssl
        }
        $reader = [System.IO.BinaryReader]::new($stream)
        $send = {
            param([object[]] $parts)
            $buffer = [System.IO.MemoryStream]::new()
            $w = { param($t) $b = [Text.Encoding]::UTF8.GetBytes($t); $buffer.Write($b, 0, $b.Length) }
            & $w "*$($parts.Count)`r`n"
            foreach ($p in $parts) { $b = [Text.Encoding]::UTF8.GetBytes([string]$p); & $w "`$$($b.Length)`r`n"; $buffer.Write($b, 0, $b.Length); & $w "`r`n" }
            $stream.Write($buffer.ToArray(), 0, [int]$buffer.Length); $stream.Flush()
        }
        $readLine = {
            $sb = [Text.StringBuilder]::new()
            while ($true) { $c = $reader.ReadByte(); if ($c -eq 13) { $null = $reader.ReadByte(); break }; $null = $sb.Append([char]$c) }
            $sb.ToString()
        }
        $read = {
            $line = & $readLine
            switch ($line[0]) {
                '+' { return $line.Substring(1) }
                '-' { throw "Redis error: $($line.Substring(1))" }
                ':' { return [long]$line.Substring(1) }
                '$' { $n = [int]$line.Substring(1); if ($n -lt 0) { return $null }; $b = $reader.ReadBytes($n); $null = $reader.ReadBytes(2); return [Text.Encoding]::UTF8.GetString($b) }
                '*' { $n = [int]$line.Substring(1); if ($n -lt 0) { return $null }; $items = for ($i = 0; $i -lt $n; $i++) { , (& $read) }; return , @($items) }
                default { throw "Unexpected reply: $line" }
            }
        }
        if ($Password) { & $send @('AUTH', $Password); $null = & $read }
        & $send (@($Command) + $Arguments)
        , (& $read)
    } finally { $client.Dispose() }
}

# The seed's four steps and then every other cmdlet the module has, against the session's default
# connection (no key prefix, default key names, a fresh store). Returns what each step produced.
function Invoke-SecurityScenario([hashtable] $Admin) {
    $r = [ordered]@{}
    Set-UserProfile -UserId 1001 -Profile '{"name":"Alice","age":"30"}'
    Set-UserProfile -UserId 1002 -Profile '{"name":"Bob","age":"25"}'
    $r.Step1 = (Get-UserProfile -UserId 1001).Json
    $r.Dropped = (Clear-WriteQueue -Confirm:$false).Dropped
    Add-WriteQueueItem -UserId 1001 -Update '{"age":"31"}'
    $r.Flush = Invoke-WriteBehindFlush
    $r.Cache1001 = (Get-UserProfile -UserId 1001).Json
    $r.Store1001 = (Get-UserProfile -UserId 1001 -FromStore).Json
    # the rest: a poison item into the dead letters, restore and remove them, a delete, the status,
    # the consistency check, the completer's scan, and a continuous flush (BLMOVE on its own connection)
    Add-WriteQueueItem -Item 'update:user:1002:{"age":"26"}'
    $r.Continuous = Invoke-WriteBehindFlush -Continuous -MaxDuration '00:00:02'
    $r.AfterContinuous = (Get-UserProfile -UserId 1002).Json
    $r.All = @(Get-UserProfile).Count
    Remove-UserProfile -UserId 1002 -Confirm:$false
    $r.Poison = Invoke-WriteBehindFlush -RecoverOnly
    $null = Invoke-AdminCommand @Admin -Command 'LPUSH' -Arguments @('write_queue', 'not an item')
    $null = Invoke-AdminCommand @Admin -Command 'LPUSH' -Arguments @('write_queue', 'not an item either')
    $null = Invoke-WriteBehindFlush
    $r.DeadLetters = @(Get-WriteBehindDeadLetter).Count
    # one of two: the script marks the entry it takes (LSET) and drops the mark (LREM)
    Get-WriteBehindDeadLetter | Select-Object -First 1 | Restore-WriteBehindDeadLetter -Confirm:$false
    $null = Invoke-WriteBehindFlush
    Remove-WriteBehindDeadLetter -All -Confirm:$false
    $r.DeadLettersAfter = @(Get-WriteBehindDeadLetter).Count
    $r.Completions = @((TabExpansion2 -inputScript 'Get-UserProfile -UserId 10' -cursorColumn 26).CompletionMatches.CompletionText)
    $r.Status = Get-WriteBehindStatus
    $r.Consistent = Test-WriteBehindConsistency -Quiet
    $r.Repair = Test-WriteBehindConsistency -Repair
    Disconnect-WriteBehind
    [pscustomobject]$r
}

# A throwaway CA and a server certificate it issued for localhost and 127.0.0.1, and a second CA that
# issued nothing the server has (openssl, which Debian's base system has). Returns the file paths.
function New-TestCertificates([string] $Dir) {
    New-Item -ItemType Directory -Force -Path $Dir | Out-Null
    $openssl = (Get-Command openssl -ErrorAction Stop).Source
    $run = {
        param([string[]] $a)
        $out = & $openssl @a 2>&1
        if ($LASTEXITCODE -ne 0) { throw "openssl $($a[0]) failed: $out" }
    }
    $f = [ordered]@{
        Ca = Join-Path $Dir 'ca.crt'; CaKey = Join-Path $Dir 'ca.key'
        OtherCa = Join-Path $Dir 'other-ca.crt'; OtherCaKey = Join-Path $Dir 'other-ca.key'
        Cert = Join-Path $Dir 'server.crt'; Key = Join-Path $Dir 'server.key'
    }
    $csr = Join-Path $Dir 'server.csr'
    $ext = Join-Path $Dir 'server.ext'
    Set-Content -Path $ext -Value "subjectAltName=DNS:localhost,IP:127.0.0.1`nbasicConstraints=CA:FALSE`nkeyUsage=digitalSignature,keyEncipherment`nextendedKeyUsage=serverAuth"
    & $run @('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', $f.CaKey, '-out', $f.Ca, '-days', '2', '-subj', '/CN=WriteBehind Test CA')
    & $run @('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', $f.OtherCaKey, '-out', $f.OtherCa, '-days', '2', '-subj', '/CN=WriteBehind Other CA')
    & $run @('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', $f.Key, '-out', $csr, '-subj', '/CN=localhost')
    & $run @('x509', '-req', '-in', $csr, '-CA', $f.Ca, '-CAkey', $f.CaKey, '-CAcreateserial', '-out', $f.Cert, '-days', '2', '-extfile', $ext)
    [pscustomobject]$f
}
