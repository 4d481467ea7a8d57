"""Real processes for tests: the engine and the gateway, on free loopback ports.

Each is started as a child process, waited for by a readiness probe with a deadline, and
stopped by its pid. Nothing here sleeps to synchronise: it polls a condition.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from obstore.store import S3Store

ROOT = Path(__file__).resolve().parent.parent
ENGINE_DIR = ROOT / "deploy" / "engine"
ENGINES = ("operaton", "camunda", "cibseven")
ADMIN_USER = ("demo", "demo")
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], *, timeout_seconds: float, what: str, poll_seconds: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_seconds} s waiting for {what}")
        time.sleep(poll_seconds)


def http_status(url: str, timeout_seconds: float = 2.0) -> int | None:
    """Status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, urllib.error.URLError):
        return None


@dataclass(frozen=True)
class Running:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _spawn(
    command: list[str],
    log_path: Path,
    port: int,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Running:
    """`command` as a child process with its output in `log_path` (after what an earlier
    process on the same port wrote there), serving on `port`; `env` added to ours."""
    environment = {**os.environ, **env} if env else None
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=environment
        )
    return Running(process, f"http://{LOOPBACK}:{port}", log_path)


def stop(process: subprocess.Popen[bytes], timeout_seconds: float = 30.0) -> int:
    """SIGTERM by pid, then SIGKILL if it does not exit in time; returns the exit code."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
    return process.wait()


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


def _wait_ready(
    running: Running, probe: str | Callable[[], bool], timeout_seconds: float, what: str
) -> None:
    """Until `probe` (a URL answering 200, or a condition) holds, or the process dies."""

    def ready() -> bool:
        if running.process.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{running.log_tail()}")
        return probe() if callable(probe) else http_status(probe) == 200

    try:
        wait_until(ready, timeout_seconds=timeout_seconds, what=what, poll_seconds=0.25)
    except TimeoutError:
        stop(running.process)
        raise


def engine_name() -> str:
    name = os.environ.get("ENGINE", "operaton")
    if name not in ENGINES:
        raise ValueError(f"ENGINE must be one of {ENGINES}, got {name!r}")
    return name


def engine_jar(name: str) -> Path:
    jar = ENGINE_DIR / "target" / f"engine-{name}.jar"
    if not jar.exists():
        # `make test` builds it first; this keeps a bare `pytest` working too.
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(ENGINE_DIR / "pom.xml"),
                f"-P{name}",
                "package",
                "-DskipTests",
            ],
            check=True,
        )
    return jar


DATABASES = ("h2", "postgres")
POSTGRES_USER = "engine"
POSTGRES_DATABASE = "engine"


def database_name() -> str:
    name = os.environ.get("DB", "h2")
    if name not in DATABASES:
        raise ValueError(f"DB must be one of {DATABASES}, got {name!r}")
    return name


@dataclass(frozen=True)
class Postgres:
    running: Running
    port: int
    password: str

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{LOOPBACK}:{self.port}/{POSTGRES_DATABASE}"

    def engine_args(self) -> tuple[str, ...]:
        """The engine's command-line settings for this database (Spring Boot's datasource;
        the engine detects the database type and creates its schema)."""
        return (
            f"--spring.datasource.url={self.jdbc_url}",
            f"--spring.datasource.username={POSTGRES_USER}",
            f"--spring.datasource.password={self.password}",
        )


def postgres_bin() -> Path:
    """The newest of Debian's PostgreSQL server builds (/usr/lib/postgresql/N/bin)."""
    builds = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda path: int(path.parts[-3])
    )
    if not builds:
        raise RuntimeError("no PostgreSQL server: `make test` installs Debian's postgresql")
    return builds[-1].parent


@contextlib.contextmanager
def postgres(work_dir: Path) -> Iterator[Postgres]:
    """Debian's PostgreSQL server: its own cluster (initdb) in a fresh directory, on a free
    loopback port with password authentication and no Unix socket, a database for the
    engine; stopped by pid (fast shutdown) and its directory removed."""
    bin_dir = postgres_bin()
    # PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user, in a
    # directory of its own outside root's private temporary directories.
    account: dict[str, str] = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
    cluster_dir = Path(tempfile.mkdtemp(prefix="engine-gateway-postgres-"))
    data_dir = cluster_dir / "data"
    password = secrets.token_urlsafe(18)
    password_file = cluster_dir / "password"
    password_file.write_text(password + "\n")
    if account:
        shutil.chown(cluster_dir, **account)
        shutil.chown(password_file, **account)
    port = free_port()
    log_path = work_dir / f"postgres-{port}.log"
    try:
        with log_path.open("wb") as log:
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    f"--pgdata={data_dir}",
                    f"--username={POSTGRES_USER}",
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                **account,  # type: ignore[call-overload]
            )
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data_dir),
                    "-p",
                    str(port),
                    "-c",
                    f"listen_addresses={LOOPBACK}",
                    "-c",
                    "unix_socket_directories=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                **account,  # type: ignore[call-overload]
            )
        running = Running(process, f"postgresql://{LOOPBACK}:{port}", log_path)
        client_env = {**os.environ, "PGPASSWORD": password}
        address = ["--host", LOOPBACK, "--port", str(port), "--username", POSTGRES_USER]

        def accepting() -> bool:
            probe = [str(bin_dir / "pg_isready"), *address, "--dbname=postgres", "--quiet"]
            return subprocess.run(probe, env=client_env, check=False).returncode == 0

        try:
            _wait_ready(running, accepting, 60, "postgres")
            subprocess.run(
                [str(bin_dir / "createdb"), *address, POSTGRES_DATABASE],
                env=client_env,
                check=True,
            )
            yield Postgres(running, port, password)
        finally:
            # SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave.
            if process.poll() is None:
                os.kill(process.pid, signal.SIGINT)
            stop(process)
    finally:
        shutil.rmtree(cluster_dir, ignore_errors=True)


@contextlib.contextmanager
def engine(
    work_dir: Path,
    name: str | None = None,
    *extra_args: str,
    database: Postgres | None = None,
    port: int | None = None,
) -> Iterator[Running]:
    """The engine on `port` (a free one if None): on an H2 file in `work_dir`, or on
    `database`."""
    name = name or engine_name()
    jar = engine_jar(name)
    port = port or free_port()
    log_path = work_dir / f"engine-{name}-{port}.log"
    database_args = database.engine_args() if database is not None else ()
    # On PostgreSQL the engine holds more copies of a binary value while it moves it (the
    # driver's as well as its own): a 200 MB upload that fits in 1 GiB on H2 fails there
    # with OutOfMemoryError, and passes with 2 GiB.
    heap = "-Xmx2g" if database is not None else "-Xmx1g"
    running = _spawn(
        [
            "java",
            heap,
            "-Dfile.encoding=UTF-8",
            "-jar",
            str(jar),
            f"--server.port={port}",
            f"--server.address={LOOPBACK}",
            f"--engine.data-dir={work_dir / ('engine-data-' + name)}",
            *database_args,
            *extra_args,
        ],
        log_path,
        port,
    )
    try:
        _wait_ready(running, f"{running.base_url}/engine-rest/engine", 180, f"engine {name}")
        yield running
    finally:
        stop(running.process)


# The console script, as the container image runs it (Dockerfile: ENTRYPOINT).
GATEWAY_COMMAND = Path(sys.executable).parent / "engine-gateway"


@dataclass(frozen=True)
class Gateway:
    running: Running
    admin_url: str

    @property
    def base_url(self) -> str:
        return self.running.base_url


def start_gateway(
    work_dir: Path,
    upstream_url: str,
    *extra_args: str,
    wait_for: str = "/readyz",
    ports: tuple[int, int] | None = None,
    env: dict[str, str] | None = None,
) -> Gateway:
    """The gateway before `upstream_url` on `ports` (public, admin), free ones if None."""
    port, admin_port = ports or (free_port(), free_port())
    log_path = work_dir / f"gateway-{port}.log"
    running = _spawn(
        [
            str(GATEWAY_COMMAND),
            "--upstream",
            upstream_url,
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--admin-host",
            LOOPBACK,
            "--admin-port",
            str(admin_port),
            *extra_args,
        ],
        log_path,
        port,
        cwd=ROOT,
        env=env,
    )
    admin_url = f"http://{LOOPBACK}:{admin_port}"
    _wait_ready(running, admin_url + wait_for, 30, "gateway")
    return Gateway(running, admin_url)


@contextlib.contextmanager
def gateway(
    work_dir: Path, upstream_url: str, *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[Gateway]:
    started = start_gateway(work_dir, upstream_url, *extra_args, env=env)
    try:
        yield started
    finally:
        stop(started.running.process)


NGINX_CONFIG = ROOT / "deploy" / "nginx" / "engine-gateway.conf"
NGINX_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass(frozen=True)
class Nginx:
    running: Running
    prefix: Path

    @property
    def base_url(self) -> str:
        return self.running.base_url

    @property
    def temp_dir(self) -> Path:
        """Where nginx would spool request and response bodies (it must not)."""
        return self.prefix / "temp"

    def spooled_files(self) -> list[str]:
        """Temp files nginx holds open, deleted or not: nginx unlinks a spool file as soon as
        it creates it, so an empty directory alone proves nothing."""
        held = []
        for pid in with_children(self.running.pid):
            with contextlib.suppress(FileNotFoundError, PermissionError):
                for fd in (Path("/proc") / str(pid) / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        target = os.readlink(fd)
                        if target.startswith(str(self.temp_dir)):
                            held.append(target)
        return held


def with_children(pid: int) -> list[int]:
    """`pid` and its children (nginx's workers)."""
    path = Path("/proc") / str(pid) / "task" / str(pid) / "children"
    return [pid, *(int(child) for child in path.read_text().split())] if path.exists() else [pid]


def nginx_site(
    gateway_address: str,
    port: int,
    config: Path = NGINX_CONFIG,
    *,
    more_gateways: tuple[str, ...] = (),
) -> str:
    """The shipped site config with only its addresses changed: its own `listen` and the
    gateway's address in the upstream block (one `server` line more for each of
    `more_gateways`, the same but for the address)."""
    text = config.read_text()
    rendered = text.replace("    listen 8080;", f"    listen {LOOPBACK}:{port};")
    server_line = next(line for line in text.splitlines() if "server 127.0.0.1:8000;" in line)
    servers = "\n".join(
        server_line.replace("127.0.0.1:8000", address)
        for address in (gateway_address, *more_gateways)
    )
    rendered = rendered.replace(server_line, servers)
    assert rendered.count(f"{LOOPBACK}:{port};") == 1, "listen line not found in the config"
    assert rendered.count(f"server {gateway_address};") == 1, "upstream server not found"
    return rendered


@contextlib.contextmanager
def nginx(
    work_dir: Path,
    gateway_address: str,
    *,
    site: Callable[[str, int], str] = nginx_site,
    port: int | None = None,
) -> Iterator[Nginx]:
    """Debian's nginx in front of `gateway_address` (host:port) with the shipped site config
    (or the one `site` renders for the gateway's address and nginx's port), in its own
    prefix directory on `port` (a free one if None)."""
    port = port or free_port()
    prefix = work_dir / "nginx"
    temp = prefix / "temp"
    for name in NGINX_TEMP_DIRS:
        (temp / name).mkdir(parents=True, exist_ok=True)
    (prefix / "site.conf").write_text(site(gateway_address, port))
    temp_paths = "".join(f"    {name}_temp_path {temp / name};\n" for name in NGINX_TEMP_DIRS)
    # As root, workers would run as `nobody` and could not use temp dirs under a private
    # tmp_path; running them as the same user keeps spooling possible, so tests can see it.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} info;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {prefix / 'access.log'};\n"
        f"{temp_paths}"
        f"    include {prefix / 'site.conf'};\n"
        "}\n"
    )
    log_path = prefix / "stderr.log"
    running = _spawn(
        ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
        log_path,
        port,
    )
    try:
        # Listening is enough: a probe through nginx would need the gateway, which may
        # live in this very thread's event loop (tests/inprocess.py).
        _wait_ready(running, lambda: accepts_connections(port), 30, "nginx")
        yield Nginx(running, prefix)
    finally:
        stop(running.process)


PROMETHEUS_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"


@contextlib.contextmanager
def prometheus(
    work_dir: Path, scrape_target: str, *, scrape_interval: str = "1s"
) -> Iterator[Running]:
    """Debian's Prometheus scraping `scrape_target` (host:port) as job `engine-gateway`,
    with the shipped alert rules loaded; its own data dir, a free port."""
    port = free_port()
    config = work_dir / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
        f"rule_files:\n  - {PROMETHEUS_RULES}\n"
        "scrape_configs:\n  - job_name: engine-gateway\n"
        f"    static_configs:\n      - targets: ['{scrape_target}']\n"
    )
    log_path = work_dir / "prometheus.log"
    running = _spawn(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={work_dir / 'prometheus-data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
        ],
        log_path,
        port,
    )
    try:
        _wait_ready(running, f"{running.base_url}/-/ready", 60, "prometheus")
        yield running
    finally:
        stop(running.process)


@contextlib.contextmanager
def stub_upstream(files: Path | None = None) -> Iterator[str]:
    """The STUB UPSTREAM (tests/faults/stub_upstream.py, not an engine) in its own process,
    for benchmarks that need a fast upstream; yields its URL. With `files`, it serves them
    by sendfile at /engine-rest/process-instance/file/variables/{file name}/data."""
    port = free_port()
    environ = {**os.environ, "STUB_FILES": str(files)} if files is not None else None
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.stub_upstream", str(port)], cwd=ROOT, env=environ
    )
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_until(
            lambda: http_status(url + "/engine-rest/engine") == 200,
            timeout_seconds=30,
            what="stub upstream",
        )
        yield url
    finally:
        stop(process)


CLAMD_SIGNATURES = ROOT / "deploy" / "clamd"
# ClamAV's test string, which every scanner detects by agreement; built here from two
# halves so this file is not itself the test file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@dataclass(frozen=True)
class Clamd:
    running: Running
    port: int
    socket_path: Path

    @property
    def tcp_url(self) -> str:
        return f"tcp://{LOOPBACK}:{self.port}"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}"


def clamd_answers(port: int) -> bool:
    """clamd's own liveness command: PING, answered PONG."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2.0) as connection:
            connection.sendall(b"zPING\0")
            return connection.recv(16) == b"PONG\0"
    except OSError:
        return False


def start_clamd(work_dir: Path, *, stream_max_length: str = "4000M") -> Clamd:
    """Debian's clamd (clamav-daemon) with its own config, TCP port, Unix socket, temporary
    directory and the project's signature database (deploy/clamd): no network, no official
    database. Files up to 2 GiB are scanned whole (clamd's own limit), and a file over a
    limit is reported as found (AlertExceedsMax), never as clean."""
    directory = Path(tempfile.mkdtemp(prefix="clamd-", dir=work_dir))
    port = free_port()
    socket_path = directory / "clamd.sock"
    (directory / "tmp").mkdir()
    config = directory / "clamd.conf"
    config.write_text(
        "Foreground yes\n"
        f"DatabaseDirectory {CLAMD_SIGNATURES}\n"
        f"LocalSocket {socket_path}\n"
        f"TCPSocket {port}\nTCPAddr {LOOPBACK}\n"
        f"TemporaryDirectory {directory / 'tmp'}\n"
        f"PidFile {directory / 'clamd.pid'}\n"
        f"LogFile {directory / 'clamd.log'}\nLogTime yes\n"
        f"StreamMaxLength {stream_max_length}\n"
        "MaxFileSize 2047M\nMaxScanSize 4000M\nAlertExceedsMax yes\n"
    )
    running = _spawn(["clamd", "--config-file", str(config)], directory / "stderr.log", port)
    _wait_ready(running, lambda: clamd_answers(port), 60, "clamd")
    return Clamd(running, port, socket_path)


@contextlib.contextmanager
def clamd(work_dir: Path, *, stream_max_length: str = "4000M") -> Iterator[Clamd]:
    started = start_clamd(work_dir, stream_max_length=stream_max_length)
    try:
        yield started
    finally:
        stop(started.running.process)


WEED = ROOT / ".tools" / "bin" / "weed"
S3_REGION = "us-east-1"


@dataclass(frozen=True)
class SeaweedFS:
    """A SeaweedFS serving S3 on loopback, with its own signing identity."""

    running: Running
    s3_port: int
    access_key: str
    secret_key: str
    directory: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.s3_port}"

    @property
    def credentials(self) -> dict[str, str]:
        """The environment an S3 client finds its credentials in."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": S3_REGION,
        }

    def _signed(self, method: str, path: str, body: bytes | None = None) -> bytes:
        """A request signed with SigV4 by curl: what obstore cannot do (buckets, uploads)."""
        sent = ["-T", "-"] if body is not None else []
        done = subprocess.run(
            [
                "curl", "-sS", "--fail-with-body", "-X", method, *sent,
                "--aws-sigv4", f"aws:amz:{S3_REGION}:s3",
                "--user", f"{self.access_key}:{self.secret_key}",
                self.url + path,
            ],
            input=body,
            capture_output=True,
            check=False,
            timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{method} {path}: {done.stdout!r} {done.stderr!r}")
        return done.stdout

    def create_bucket(self, bucket: str) -> None:
        self._signed("PUT", f"/{bucket}")

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        self._signed("PUT", f"/{bucket}/{key}", body)

    def open_multipart_uploads(self, bucket: str) -> list[str]:
        """ListMultipartUploads: the keys of uploads begun and neither completed nor aborted."""
        # Our own SeaweedFS on loopback: its XML is not untrusted input.
        answer = ElementTree.fromstring(self._signed("GET", f"/{bucket}?uploads="))  # noqa: S314
        return [key.text or "" for key in answer.iter() if key.tag.endswith("}Key")]

    def bucket_store(self, bucket: str) -> S3Store:
        return S3Store(
            bucket,
            endpoint=self.url,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            region=S3_REGION,
            client_options={"allow_http": True},
        )


def _s3_identity(path: Path) -> tuple[str, str]:
    """An S3 identity of its own, written where weed's -s3.config reads it: every request
    must then be signed with its key."""
    access_key, secret_key = secrets.token_hex(8), secrets.token_hex(20)
    identity = {
        "name": "gateway",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    path.write_text(json.dumps({"identities": [identity]}))
    return access_key, secret_key


def _s3_answers(url: str) -> bool:
    """Anything but a refused connection: unsigned, S3 answers 403 once it serves."""
    return http_status(url + "/") is not None


def start_seaweedfs(work_dir: Path) -> SeaweedFS:
    """`weed mini` (master, volume server, filer and S3 in one process), built by
    deploy/local/ensure-seaweedfs.sh: every port free and on loopback, no admin UI or
    WebDAV, and an S3 identity of its own, so every request must be signed."""
    directory = Path(tempfile.mkdtemp(prefix="seaweedfs-", dir=work_dir))
    identities = directory / "s3.json"
    access_key, secret_key = _s3_identity(identities)
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, admin,
     admin_grpc) = (free_port() for _ in range(10))  # fmt: skip
    command = [
        str(WEED), "mini", f"-dir={directory / 'data'}",
        f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-webdav=false", "-admin.ui=false", "-admin.port.legacy=0",
        f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}",
        # mini sizes its volumes (128 MB each) by the disk's free space at start: a fixed
        # count makes a busy machine's run like any other's (nothing is preallocated).
        "-volume.max=100",
        "-master.telemetry=false", f"-s3.config={identities}",
        f"-filer.localSocket={directory / 'filer.sock'}",
        f"-s3.localSocket={directory / 's3.sock'}",
    ]  # fmt: skip
    (directory / "data").mkdir()
    running = _spawn(command, directory / "weed.log", s3, cwd=directory)
    started = SeaweedFS(running, s3, access_key, secret_key, directory)
    _wait_ready(running, lambda: _s3_answers(started.url), 120, "SeaweedFS")
    return started


@contextlib.contextmanager
def seaweedfs(work_dir: Path) -> Iterator[SeaweedFS]:
    started = start_seaweedfs(work_dir)
    try:
        yield started
    finally:
        stop(started.running.process)
        # Gigabytes of test files: not kept for the next runs' disks.
        shutil.rmtree(started.directory / "data", ignore_errors=True)


@dataclass(frozen=True)
class SeaweedFSCluster(SeaweedFS):
    """SeaweedFS as a cluster: a master, two volume servers holding every volume twice
    (replication 001), a filer, and S3 before them; each its own process."""

    volumes: tuple[Running, ...] = ()
    others: tuple[Running, ...] = ()  # the master and the filer


def _weed(directory: Path, name: str, *args: str) -> Running:
    return _spawn([str(WEED), *args], directory / f"{name}.log", 0, cwd=directory)


def start_seaweedfs_cluster(work_dir: Path) -> SeaweedFSCluster:
    directory = Path(tempfile.mkdtemp(prefix="seaweedfs-cluster-", dir=work_dir))
    access_key, secret_key = _s3_identity(directory / "s3.json")
    master, master_grpc, filer, filer_grpc, s3, s3_grpc = (free_port() for _ in range(6))
    loopback = (f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}")
    # A peer is ip:port.grpcPort: with ip:port alone they dial port + 10000 for ever.
    master_at = f"{LOOPBACK}:{master}.{master_grpc}"
    started: list[Running] = []
    try:
        for name in ("m", "v1", "v2", "f"):
            (directory / name).mkdir()
        started.append(_weed(directory, "master", "master", *loopback, f"-port={master}",
                             f"-port.grpc={master_grpc}", f"-mdir={directory / 'm'}",
                             "-defaultReplication=001", "-volumeSizeLimitMB=64",
                             "-telemetry=false", "-peers=none"))  # fmt: skip
        volumes = []
        for name in ("v1", "v2"):
            port, grpc = free_port(), free_port()
            volumes.append(_weed(directory, name, "volume", *loopback, f"-port={port}",
                                 f"-port.grpc={grpc}", f"-dir={directory / name}", "-max=64",
                                 f"-master={master_at}", "-dataCenter=dc1", "-rack=r1",
                                 "-preStopSeconds=0"))  # fmt: skip
        started += volumes
        started.append(_weed(directory, "filer", "filer", *loopback, f"-port={filer}",
                             f"-port.grpc={filer_grpc}", f"-master={master_at}",
                             f"-defaultStoreDir={directory / 'f'}",
                             f"-localSocket={directory / 'filer.sock'}"))  # fmt: skip
        s3_process = _weed(directory, "s3", "s3", *loopback, f"-port={s3}", f"-port.grpc={s3_grpc}",
                           "-port.iceberg=0", "-port.lance=0",
                           f"-filer={LOOPBACK}:{filer}.{filer_grpc}",
                           f"-config={directory / 's3.json'}",
                           f"-localSocket={directory / 's3.sock'}")  # fmt: skip
        started.append(s3_process)
        cluster = SeaweedFSCluster(
            s3_process, s3, access_key, secret_key, directory, tuple(volumes),
            (started[0], started[3]),
        )  # fmt: skip
        _wait_ready(s3_process, lambda: _s3_answers(cluster.url), 60, "SeaweedFS's S3")

        cluster.create_bucket("probe")

        def writable() -> bool:
            # The master allocates no volume in its first seconds: the first write waits.
            try:
                cluster.put_object("probe", "probe", b"probe")
            except (RuntimeError, subprocess.TimeoutExpired):
                return False
            return True

        _wait_ready(s3_process, writable, 120, "SeaweedFS's first write")
        return cluster
    except BaseException:
        for running in reversed(started):
            stop(running.process)
        raise


@contextlib.contextmanager
def seaweedfs_cluster(work_dir: Path) -> Iterator[SeaweedFSCluster]:
    cluster = start_seaweedfs_cluster(work_dir)
    try:
        yield cluster
    finally:
        # S3, the filer, the volume servers, the master: the filer flushes to the volumes.
        for running in (cluster.running, cluster.others[1], *cluster.volumes, cluster.others[0]):
            stop(running.process)
        for name in ("v1", "v2", "f"):
            shutil.rmtree(cluster.directory / name, ignore_errors=True)
