# Throwaway servers for Demo, Test and Bench: redis-server from PATH, else Garnet from the tool manifest.
# Garnet runs with --lua-transaction-mode true: without it Garnet does not lock a script's keys, and
# WriteBehind's scripts must run atomically (the fault suite's concurrency test fails without it).
# Every server binds 127.0.0.1 on a free port and is stopped by Stop-TestServer.

function Get-FreeTcpPort {
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    $listener.Start()
    try { $listener.LocalEndpoint.Port } finally { $listener.Stop() }
}

function Test-RedisPing([int] $Port) {
    try {
        $client = [System.Net.Sockets.TcpClient]::new()
        $client.ReceiveTimeout = 1000
        $client.Connect('127.0.0.1', $Port)
        $stream = $client.GetStream()
        $bytes = [Text.Encoding]::ASCII.GetBytes("PING`r`n")
        $stream.Write($bytes, 0, $bytes.Length)
        $buffer = [byte[]]::new(64)
        $n = $stream.Read($buffer, 0, 64)
        $client.Dispose()
        # a server with a password (--requirepass) answers, too: NOAUTH
        $reply = [Text.Encoding]::ASCII.GetString($buffer, 0, $n)
        return ($reply -like '+PONG*' -or $reply -like '-NOAUTH*')
    } catch { return $false }
}

# PING over TLS (any certificate accepted: this only asks whether the server is up).
function Test-RedisTlsPing([int] $Port) {
    try {
        $client = [System.Net.Sockets.TcpClient]::new()
        $client.ReceiveTimeout = 1000
        $client.Connect('127.0.0.1', $Port)
        $ssl = [System.Net.Security.SslStream]::new($client.GetStream(), $false, { $true })
        $ssl.AuthenticateAsClient('localhost')
        $bytes = [Text.Encoding]::ASCII.GetBytes("PING`r`n")
        $ssl.Write($bytes, 0, $bytes.Length)
        $buffer = [byte[]]::new(64)
        $n = $ssl.Read($buffer, 0, 64)
        $client.Dispose()
        return ([Text.Encoding]::ASCII.GetString($buffer, 0, $n) -like '+PONG*')
    } catch { return $false }
}

function Start-TestServer {
    [CmdletBinding()]
    param(
        [ValidateSet('Auto', 'Redis', 'Garnet')] [string] $Kind = 'Auto',
        [Parameter(Mandatory)] [string] $WorkDir,
        # Optional: more arguments for the server, after the defaults (a later redis-server option wins,
        # e.g. '--appendonly', 'yes', '--appendfsync', 'always').
        [string[]] $ExtraArguments = @(),
        # Optional: this port instead of a free one, e.g. to restart a server on its port and WorkDir/<kind>-<port>.
        [ValidateRange(0, 65535)] [int] $Port = 0,
        # Optional (redis-server only): serve TLS only, on the port, with this certificate and key (PEM);
        # clients are not asked for certificates. The plain port is off.
        [string] $TlsCertFile,
        [string] $TlsKeyFile,
        [string] $TlsCaFile
    )
    $redis = Get-Command redis-server -ErrorAction SilentlyContinue
    if ($Kind -eq 'Auto') { $Kind = if ($redis) { 'Redis' } else { 'Garnet' } }
    if ($Kind -eq 'Redis' -and -not $redis) { throw "redis-server is not on PATH (on Debian: apt-get install -y redis-server)." }
    $port = if ($Port -gt 0) { $Port } else { Get-FreeTcpPort }
    $dir = Join-Path $WorkDir "$($Kind.ToLowerInvariant())-$port"
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    $psi = [System.Diagnostics.ProcessStartInfo]::new()
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.WorkingDirectory = $dir
    if ($Kind -eq 'Redis') {
        $psi.FileName = $redis.Source
        foreach ($a in @('--port', "$port", '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', $dir, '--protected-mode', 'yes')) { $psi.ArgumentList.Add($a) }
        if ($TlsCertFile) {
            foreach ($a in @('--port', '0', '--tls-port', "$port", '--tls-cert-file', $TlsCertFile, '--tls-key-file', $TlsKeyFile,
                    '--tls-ca-cert-file', $TlsCaFile, '--tls-auth-clients', 'no')) { $psi.ArgumentList.Add($a) }
        }
    } else {
        $psi.FileName = 'dotnet'
        foreach ($a in @('garnet-server', '--port', "$port", '--bind', '127.0.0.1', '--lua', 'true', '--lua-transaction-mode', 'true', '--memory', '256m', '--index', '16m')) { $psi.ArgumentList.Add($a) }
        $psi.WorkingDirectory = $PSScriptRoot | Split-Path   # the tool manifest lives at the repo root
    }
    foreach ($a in $ExtraArguments) { $psi.ArgumentList.Add($a) }
    $process = [System.Diagnostics.Process]::Start($psi)
    $null = $process.StandardOutput.ReadToEndAsync()
    $null = $process.StandardError.ReadToEndAsync()
    $deadline = [DateTime]::UtcNow.AddSeconds(60)
    if ($TlsCertFile -and $Kind -ne 'Redis') { throw 'TLS test servers are redis-server only.' }
    $ping = if ($TlsCertFile) { { Test-RedisTlsPing $port } } else { { Test-RedisPing $port } }
    while (-not (& $ping)) {
        if ($process.HasExited) { throw "$Kind exited with code $($process.ExitCode) before answering on port $port." }
        if ([DateTime]::UtcNow -gt $deadline) { $process.Kill($true); throw "$Kind did not answer PING on port $port within 60 s." }
        Start-Sleep -Milliseconds 100
    }
    [pscustomobject]@{ Kind = $Kind; Port = $port; Endpoint = "127.0.0.1:$port"; Process = $process; Dir = $dir }
}

function Stop-TestServer($Server) {
    if ($null -eq $Server) { return }
    if (-not $Server.Process.HasExited) {
        try { $Server.Process.Kill($true) } catch { }
        $null = $Server.Process.WaitForExit(10000)
    }
}

function Test-TcpPortFree([int] $Port) {
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, $Port)
    try { $listener.Start(); $listener.Stop(); $true } catch { $false }
}

function Invoke-RedisCli {
    param([int] $Port, [Parameter(ValueFromRemainingArguments)] [string[]] $Arguments)
    $out = & redis-cli -h 127.0.0.1 -p $Port @Arguments 2>&1
    ($out | Out-String).Trim()
}

<#
.SYNOPSIS
A local Redis Cluster of $Masters masters with one replica each (2 x $Masters redis-server processes on
loopback ports), made with `redis-cli --cluster create`. Each node's cluster bus is its port + 10000, so
both must be free. -NodeTimeoutMs is how long a master may be silent before its replica takes over.
#>
function Start-TestCluster {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)] [string] $WorkDir,
        [ValidateRange(3, 10)] [int] $Masters = 3,
        [int] $NodeTimeoutMs = 2000
    )
    if (-not (Get-Command redis-cli -ErrorAction SilentlyContinue)) { throw "redis-cli is not on PATH (on Debian: apt-get install -y redis-server)." }
    $nodes = [System.Collections.Generic.List[object]]::new()
    $ports = [System.Collections.Generic.List[int]]::new()
    try {
        while ($ports.Count -lt 2 * $Masters) {
            $port = Get-FreeTcpPort
            if ($port -gt 55000 -or $ports.Contains($port) -or -not (Test-TcpPortFree ($port + 10000))) { continue }
            $ports.Add($port)
        }
        foreach ($port in $ports) {
            $node = Start-TestServer -Kind Redis -WorkDir $WorkDir -Port $port -ExtraArguments @(
                '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', "$NodeTimeoutMs",
                '--appendonly', 'no', '--cluster-replica-validity-factor', '0')
            $nodes.Add($node)
        }
        $endpoints = $ports | ForEach-Object { "127.0.0.1:$_" }
        $created = & redis-cli --cluster create @endpoints --cluster-replicas 1 --cluster-yes 2>&1 | Out-String
        if ($LASTEXITCODE -ne 0) { throw "redis-cli --cluster create failed: $created" }
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        foreach ($port in $ports) {
            while ((Invoke-RedisCli $port cluster info) -notmatch 'cluster_state:ok') {
                if ([DateTime]::UtcNow -gt $deadline) { throw "The cluster did not reach cluster_state:ok within 60 s." }
                Start-Sleep -Milliseconds 200
            }
        }
        # every replica in sync with its master before the cluster is handed out
        foreach ($port in $ports) {
            while ((Invoke-RedisCli $port info replication) -match 'role:slave' -and (Invoke-RedisCli $port info replication) -notmatch 'master_link_status:up') {
                if ([DateTime]::UtcNow -gt $deadline) { throw "A replica did not sync within 60 s." }
                Start-Sleep -Milliseconds 200
            }
        }
        [pscustomobject]@{
            Kind = 'RedisCluster'; Nodes = $nodes.ToArray(); Ports = $ports.ToArray()
            Endpoint = ($endpoints -join ','); WorkDir = $WorkDir; NodeTimeoutMs = $NodeTimeoutMs
        }
    } catch {
        foreach ($n in $nodes) { Stop-TestServer $n }
        throw
    }
}

function Stop-TestCluster($Cluster) {
    if ($null -eq $Cluster) { return }
    foreach ($n in $Cluster.Nodes) { Stop-TestServer $n }
}

<#
.SYNOPSIS
The node processes of a test cluster that are masters now, with the slot ranges they serve.
#>
function Get-TestClusterMaster($Cluster) {
    foreach ($n in $Cluster.Nodes) {
        if ($n.Process.HasExited) { continue }
        if ((Invoke-RedisCli $n.Port info replication) -match 'role:master') { $n }
    }
}

# ---- PostgreSQL -------------------------------------------------------------------------------------
# A throwaway cluster: initdb into a temp folder, pg_ctl start on a free loopback port, the unix socket
# inside the folder, scram-sha-256 password auth for a test role (CREATEDB, generated password) and ssl=on
# with a throwaway CA and server certificate (CN/SAN 127.0.0.1 and localhost). initdb refuses to run as
# root: as root the folder belongs to the 'postgres' OS user (created when missing) and initdb, pg_ctl and
# psql run through runuser.

function Get-PostgresBin {
    $bins = Get-ChildItem -Directory '/usr/lib/postgresql/*/bin' -ErrorAction SilentlyContinue |
        Where-Object { Test-Path (Join-Path $_.FullName 'initdb') } |
        Sort-Object { [int](Split-Path (Split-Path $_.FullName) -Leaf) } -Descending
    if ($bins) { return ($bins | Select-Object -First 1).FullName }
    $initdb = Get-Command initdb -ErrorAction SilentlyContinue
    if ($initdb) { return (Split-Path $initdb.Source) }
    return $null
}

function Invoke-AsPostgres([string] $RunAs, [string] $Exe, [string[]] $Arguments) {
    $output = if ($RunAs) { & runuser -u $RunAs -- $Exe @Arguments 2>&1 } else { & $Exe @Arguments 2>&1 }
    if ($LASTEXITCODE -ne 0) { throw "$(Split-Path $Exe -Leaf) failed with exit code $LASTEXITCODE`: $($output -join "`n")" }
    $output
}

function Start-TestPostgres {
    [CmdletBinding()]
    param(
        # The role the tests use (password auth); the bootstrap superuser 'postgres' is reachable only
        # through the unix socket in the temp folder.
        [string] $User = 'writebehind',
        [string] $Database = 'writebehind',
        # fsync and full-page writes on (the bench; WAL flushed by the background writer as with
        # synchronous_commit=off, the closest to SQLite's WAL with synchronous=NORMAL). Tests run without.
        [switch] $Durable
    )
    $bin = Get-PostgresBin
    if (-not $bin) { throw 'PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; on Debian: apt-get install -y postgresql).' }
    $openssl = (Get-Command openssl -ErrorAction SilentlyContinue)
    if (-not $openssl) { throw 'openssl is needed for the test server certificate.' }
    $runAs = $null
    if ((& id -u) -eq '0') {
        $runAs = 'postgres'
        & id -u postgres *> $null
        if ($LASTEXITCODE -ne 0) {
            & useradd --system --no-create-home --shell /usr/sbin/nologin postgres
            if ($LASTEXITCODE -ne 0) { throw 'Could not create the postgres OS user.' }
        }
    }
    $root = Join-Path ([IO.Path]::GetTempPath()) ('wb-pg-' + [guid]::NewGuid().ToString('N').Substring(0, 12))
    $data = Join-Path $root 'data'
    $socket = Join-Path $root 'socket'
    $tls = Join-Path $root 'tls'
    New-Item -ItemType Directory -Force -Path $root, $socket, $tls | Out-Null
    $password = -join ((1..24) | ForEach-Object { '{0:x2}' -f (Get-Random -Maximum 256) })
    try {
        # Throwaway CA + server certificate for 127.0.0.1 / localhost.
        $ca = Join-Path $tls 'ca.crt'
        $ext = Join-Path $tls 'server.ext'
        Set-Content -Path $ext -Value "subjectAltName=IP:127.0.0.1,DNS:localhost`nbasicConstraints=CA:FALSE`nkeyUsage=digitalSignature,keyEncipherment`nextendedKeyUsage=serverAuth"
        foreach ($step in @(
                @('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=WriteBehind test CA', '-keyout', (Join-Path $tls 'ca.key'), '-out', $ca),
                @('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', (Join-Path $tls 'server.key'), '-out', (Join-Path $tls 'server.csr')),
                @('x509', '-req', '-in', (Join-Path $tls 'server.csr'), '-CA', $ca, '-CAkey', (Join-Path $tls 'ca.key'), '-CAcreateserial', '-days', '2', '-extfile', $ext, '-out', (Join-Path $tls 'server.crt')))) {
            $out = & $openssl.Source @step 2>&1
            if ($LASTEXITCODE -ne 0) { throw "openssl $($step[0]) failed: $($out -join "`n")" }
        }
        $pwfile = Join-Path $root 'pwfile'
        Set-Content -Path $pwfile -Value ('super' + $password) -NoNewline
        if ($runAs) { & chown -R "${runAs}:" $root; & chmod 700 $root }
        Invoke-AsPostgres $runAs (Join-Path $bin 'initdb') @('-D', $data, '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--auth-local=trust', '--auth-host=scram-sha-256', "--pwfile=$pwfile", '--no-sync') | Out-Null
        Copy-Item (Join-Path $tls 'server.crt'), (Join-Path $tls 'server.key') $data
        if ($runAs) { & chown "${runAs}:" (Join-Path $data 'server.crt') (Join-Path $data 'server.key') }
        & chmod 600 (Join-Path $data 'server.key')
        Add-Content -Path (Join-Path $data 'postgresql.conf') -Value @(
            "listen_addresses = '127.0.0.1'", "unix_socket_directories = '$socket'", 'ssl = on',
            "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'", "password_encryption = 'scram-sha-256'",
            'synchronous_commit = off', 'max_connections = 200', "shared_buffers = '128MB'")
        if (-not $Durable) { Add-Content -Path (Join-Path $data 'postgresql.conf') -Value @('fsync = off', 'full_page_writes = off') }
        # Only loopback TCP with a password (with or without TLS), and the bootstrap superuser on the socket.
        Set-Content -Path (Join-Path $data 'pg_hba.conf') -Value @(
            'local all postgres trust', 'host all all 127.0.0.1/32 scram-sha-256')
        if ($runAs) { & chown "${runAs}:" (Join-Path $data 'postgresql.conf') (Join-Path $data 'pg_hba.conf') }
        $deadline = [DateTime]::UtcNow.AddSeconds(30)
        while ($true) {
            $port = Get-FreeTcpPort
            try {
                Invoke-AsPostgres $runAs (Join-Path $bin 'pg_ctl') @('-D', $data, '-l', (Join-Path $root 'server.log'), '-o', "-p $port", '-w', '-t', '60', 'start') | Out-Null
                break
            } catch {
                if ([DateTime]::UtcNow -gt $deadline) { throw }
            }
        }
        foreach ($sql in @("CREATE ROLE $User LOGIN CREATEDB PASSWORD '$password'", "CREATE DATABASE $Database OWNER $User")) {
            Invoke-AsPostgres $runAs (Join-Path $bin 'psql') @('-h', $socket, '-p', "$port", '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-q', '-c', $sql) | Out-Null
        }
    } catch {
        if (Test-Path (Join-Path $data 'postmaster.pid')) {
            try { Invoke-AsPostgres $runAs (Join-Path $bin 'pg_ctl') @('-D', $data, '-m', 'immediate', '-w', 'stop') | Out-Null } catch { }
        }
        Remove-Item -Recurse -Force $root -ErrorAction SilentlyContinue
        throw
    }
    [pscustomobject]@{
        Kind = 'PostgreSQL'; Durable = [bool]$Durable; Version = ((& (Join-Path $bin 'postgres') --version) -replace '^.*\) ', ''); Port = $port; Host = '127.0.0.1'; User = $User; Database = $Database; Password = $password
        # The URI never carries the password (WriteBehind refuses one there).
        Uri = "postgres://$User@127.0.0.1:$port/$Database"
        CaFile = $ca; Dir = $root; DataDir = $data; SocketDir = $socket; Bin = $bin; RunAs = $runAs
    }
}

function Stop-TestPostgres($Server) {
    if ($null -eq $Server) { return }
    if (Test-Path (Join-Path $Server.DataDir 'postmaster.pid')) {
        try { Invoke-AsPostgres $Server.RunAs (Join-Path $Server.Bin 'pg_ctl') @('-D', $Server.DataDir, '-m', 'immediate', '-w', 'stop') | Out-Null } catch { Write-Warning $_ }
    }
    Remove-Item -Recurse -Force $Server.Dir -ErrorAction SilentlyContinue
}

# ---- MariaDB (a throwaway server for the MariaDB/MySQL store tests; Debian's mariadb-server) ----
function Start-TestMariaDb {
    [CmdletBinding()]
    param(
        [string] $User = 'writebehind',
        [string] $Database = 'writebehind',
        # innodb_flush_log_at_trx_commit=1 and doublewrite on (the bench); tests run without.
        [switch] $Durable
    )
    $server = Get-Command mariadbd -ErrorAction SilentlyContinue
    if (-not $server) { $server = Get-Item /usr/sbin/mariadbd -ErrorAction SilentlyContinue }
    $install = Get-Command mariadb-install-db -ErrorAction SilentlyContinue
    $client = Get-Command mariadb -ErrorAction SilentlyContinue
    if (-not $server -or -not $install -or -not $client) { throw 'MariaDB is not installed (no mariadbd / mariadb-install-db / mariadb; on Debian: apt-get install -y mariadb-server).' }
    $serverPath = if ($server.Source) { $server.Source } else { $server.FullName }
    $root = Join-Path ([IO.Path]::GetTempPath()) ('wb-maria-' + [guid]::NewGuid().ToString('N').Substring(0, 12))
    $data = Join-Path $root 'data'
    $socket = Join-Path $root 's.sock'
    New-Item -ItemType Directory -Force -Path $data | Out-Null
    $password = -join ((1..24) | ForEach-Object { '{0:x2}' -f (Get-Random -Maximum 256) })
    $process = $null
    try {
        # As root the server runs as root (--user=root): the folder is a throwaway of this process's own.
        $out = & $install.Source --no-defaults "--datadir=$data" --auth-root-authentication-method=normal --user=root --skip-test-db 2>&1
        if ($LASTEXITCODE -ne 0) { throw "mariadb-install-db failed: $($out -join "`n")" }
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        while ($true) {
            $port = Get-FreeTcpPort
            $arguments = @('--no-defaults', "--datadir=$data", "--port=$port", '--bind-address=127.0.0.1', "--socket=$socket", '--user=root',
                '--skip-log-bin', '--skip-name-resolve', "--log-error=$(Join-Path $root 'server.log')", "--pid-file=$(Join-Path $root 'server.pid')",
                '--innodb-buffer-pool-size=64M', '--max-connections=200', '--character-set-server=utf8mb4', '--collation-server=utf8mb4_bin')
            if (-not $Durable) { $arguments += @('--innodb-flush-log-at-trx-commit=2', '--innodb-doublewrite=0', '--sync-binlog=0') }
            $psi = [Diagnostics.ProcessStartInfo]::new($serverPath)
            foreach ($a in $arguments) { $psi.ArgumentList.Add($a) }
            $psi.UseShellExecute = $false
            $psi.RedirectStandardOutput = $true
            $psi.RedirectStandardError = $true
            $process = [Diagnostics.Process]::Start($psi)
            $up = $false
            while (-not $process.HasExited -and [DateTime]::UtcNow -lt $deadline) {
                & $client.Source --no-defaults -uroot "--socket=$socket" -e 'SELECT 1' *> $null
                if ($LASTEXITCODE -eq 0) { $up = $true; break }
                Start-Sleep -Milliseconds 200
            }
            if ($up) { break }
            if (-not $process.HasExited) { $process.Kill($true) }
            if ([DateTime]::UtcNow -gt $deadline) { throw "mariadbd did not start: $((Get-Content (Join-Path $root 'server.log') -ErrorAction SilentlyContinue) -join "`n")" }
        }
        # Only loopback TCP with a password; the tests' user may create databases of its own.
        $sql = "CREATE USER '$User'@'127.0.0.1' IDENTIFIED BY '$password'; GRANT ALL PRIVILEGES ON *.* TO '$User'@'127.0.0.1'; " +
               "CREATE DATABASE $Database CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"
        $out = & $client.Source --no-defaults -uroot "--socket=$socket" -e $sql 2>&1
        if ($LASTEXITCODE -ne 0) { throw "mariadb setup failed: $($out -join "`n")" }
        $version = (& $client.Source --no-defaults -uroot "--socket=$socket" -N -e 'SELECT VERSION()' 2>&1) -join ''
    } catch {
        if ($process -and -not $process.HasExited) { $process.Kill($true) }
        Remove-Item -Recurse -Force $root -ErrorAction SilentlyContinue
        throw
    }
    [pscustomobject]@{
        Kind = 'MariaDB'; Durable = [bool]$Durable; Version = $version; Port = $port; Host = '127.0.0.1'; User = $User; Database = $Database; Password = $password
        # The URI never carries the password (WriteBehind refuses one there).
        Uri = "mysql://$User@127.0.0.1:$port/$Database"
        Dir = $root; DataDir = $data; Socket = $socket; Process = $process; Client = $client.Source
    }
}

function Stop-TestMariaDb($Server) {
    if ($null -eq $Server) { return }
    if ($Server.Process -and -not $Server.Process.HasExited) {
        & $Server.Client --no-defaults -uroot "--socket=$($Server.Socket)" -e 'SHUTDOWN' *> $null
        if (-not $Server.Process.WaitForExit(20000)) { $Server.Process.Kill($true); $Server.Process.WaitForExit() }
    }
    Remove-Item -Recurse -Force $Server.Dir -ErrorAction SilentlyContinue
}

Export-ModuleMember -Function Get-FreeTcpPort, Test-RedisPing, Test-RedisTlsPing, Start-TestServer, Stop-TestServer, Start-TestCluster, Stop-TestCluster, Get-TestClusterMaster, Invoke-RedisCli, Get-PostgresBin, Start-TestPostgres, Stop-TestPostgres, Start-TestMariaDb, Stop-TestMariaDb
