"""Real PostgreSQL and mosquitto servers, started and stopped by the tests.

The tests talk to genuine services instead of fakes, so behaviour such as
transactions, constraints and MQTT QoS handshakes is exercised for real.  Each
server is private to the test session: it listens on a random loopback port
and keeps its data in a temporary directory, so it cannot collide with a
system-wide instance or with a parallel test run.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql

from gateway.api.server import free_port  # one way to find a port, shared with the demo

#: Unprivileged account used to run PostgreSQL when the tests run as root,
#: because ``initdb``/``postgres`` refuse to run as root.
SERVICE_USER = "tgwtest"

#: Debian package providing each service, quoted in "please install" messages.
DEBIAN_PACKAGES = {"postgresql": "postgresql", "mosquitto": "mosquitto"}

STARTUP_TIMEOUT = 30.0


class ServiceUnavailable(Exception):
    """A service's binaries are not installed, so it cannot be started."""


def require_service(name: str, why: str) -> NoReturn:
    """Give up on a test that needs service ``name``.

    Developers without the service installed get a skip that tells them what
    to install; in CI (``CI=true``) a missing service is a broken setup, and
    skipping would silently hide the tests, so it is a failure there.
    """
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"CI: required service {name} missing: {why}", pytrace=False)
    package = DEBIAN_PACKAGES.get(name, name)
    pytest.skip(
        f"{name} not available ({why}); install the Debian package "
        f"'{package}' (apt-get install {package}) to run these tests"
    )


def _log_tail(path: Path, lines: int = 30) -> str:
    """Last ``lines`` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log at {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


@dataclass
class PostgresServer:
    """A running throw-away PostgreSQL cluster (superuser ``postgres``, trust auth)."""

    url: str
    port: int
    datadir: Path
    _pg_ctl: list[str] = field(repr=False)
    _cleanup_dir: Path | None = field(default=None, repr=False)

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string for ``dbname`` on this server."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL.

        ``CREATE DATABASE`` cannot run inside a transaction, hence autocommit.
        """
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Shut the server down (fast mode: disconnect clients, no waiting)."""
        subprocess.run(
            [*self._pg_ctl, "-D", str(self.datadir), "stop", "-m", "fast"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if self._cleanup_dir is not None:
            shutil.rmtree(self._cleanup_dir, ignore_errors=True)


def find_postgres_bindir() -> Path:
    """Directory holding ``initdb`` and ``pg_ctl``.

    Debian does not put ``initdb`` on PATH, so after PATH we look under
    ``/usr/lib/postgresql/<version>/bin`` and take the highest version.
    """
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
        reverse=True,
    )
    candidates.extend(versions)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return bindir
    raise ServiceUnavailable("initdb/pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin")


def _ensure_service_user() -> pwd.struct_passwd:
    """Return the unprivileged PostgreSQL account, creating it if needed."""
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise ServiceUnavailable("running as root but useradd is missing")
    subprocess.run(
        [
            useradd,
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            SERVICE_USER,
        ],
        capture_output=True,
        check=False,  # a concurrent run may have created it; re-check below
    )
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise ServiceUnavailable(f"could not create user {SERVICE_USER}") from None


def _traversable_by_others(path: Path) -> bool:
    """True if every directory from / down to ``path`` has the o+x bit."""
    path = path.resolve()
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _run(cmd: Sequence[str], cwd: Path, what: str, log: Path | None = None) -> None:
    """Run a setup command, turning failure into an error with its output."""
    proc = subprocess.run(
        list(cmd),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        details = proc.stdout + proc.stderr
        if log is not None:
            details += f"\n--- {log} ---\n{_log_tail(log)}"
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{details}")


def start_postgres(base_dir: Path) -> PostgresServer:
    """Create a fresh cluster under ``base_dir`` and start it on a free port.

    ``initdb`` and ``postgres`` refuse to run as root.  As root we therefore
    run them as the unprivileged :data:`SERVICE_USER` via ``runuser``, which
    must be able to reach the data directory: pytest's temp dirs live in the
    0700 ``/tmp/pytest-of-root``, so in that case a private directory is made
    with :func:`tempfile.mkdtemp` instead (and removed by ``stop()``).
    """
    bindir = find_postgres_bindir()
    prefix: list[str] = []
    cleanup: Path | None = None
    if os.geteuid() != 0:
        workdir = Path(tempfile.mkdtemp(prefix="postgres-", dir=base_dir))
    else:
        runuser = shutil.which("runuser")
        if runuser is None:
            raise ServiceUnavailable("running as root but runuser is missing")
        user = _ensure_service_user()
        prefix = [runuser, "-u", SERVICE_USER, "--"]
        if _traversable_by_others(base_dir):
            workdir = Path(tempfile.mkdtemp(prefix="postgres-", dir=base_dir))
        else:
            workdir = cleanup = Path(tempfile.mkdtemp(prefix="tgw-postgres-"))
        os.chmod(workdir, 0o755)
        os.chown(workdir, user.pw_uid, user.pw_gid)

    datadir, sockdir, log = workdir / "data", workdir / "sock", workdir / "server.log"
    pg_ctl = [*prefix, str(bindir / "pg_ctl")]
    _run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        cwd=workdir,
        what="initdb",
    )
    _run([*prefix, "mkdir", "-m", "0700", str(sockdir)], cwd=workdir, what="mkdir")

    port = free_port()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c unix_socket_directories={sockdir}"
    _run(
        [
            *pg_ctl,
            "-D",
            str(datadir),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            str(int(STARTUP_TIMEOUT)),
            "start",
        ],
        cwd=workdir,
        what="pg_ctl start",
        log=log,
    )
    server = PostgresServer(
        url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
        port=port,
        datadir=datadir,
        _pg_ctl=pg_ctl,
        _cleanup_dir=cleanup,
    )
    try:
        _wait_for_postgres(server, log)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_postgres(server: PostgresServer, log: Path) -> None:
    """Poll until the server accepts a real connection over TCP."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            with psycopg.connect(server.conninfo(), connect_timeout=2) as conn:
                conn.execute("select 1")
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL on port {server.port} not accepting connections "
                    f"after {STARTUP_TIMEOUT:.0f}s: {exc}\n--- {log} ---\n"
                    f"{_log_tail(log)}"
                ) from exc
            time.sleep(0.1)


# --------------------------------------------------------------------------
# mosquitto
# --------------------------------------------------------------------------


@dataclass
class MosquittoServer:
    """A running private mosquitto broker (anonymous access, no persistence)."""

    host: str
    port: int
    url: str
    _process: subprocess.Popen[bytes] = field(repr=False)

    def stop(self) -> None:
        """Terminate the broker, killing it if it does not exit promptly."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def find_mosquitto() -> str:
    """Path of the mosquitto binary (Debian installs it in /usr/sbin)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    if os.access("/usr/sbin/mosquitto", os.X_OK):
        return "/usr/sbin/mosquitto"
    raise ServiceUnavailable("mosquitto not found on PATH or in /usr/sbin")


def start_mosquitto(base_dir: Path) -> MosquittoServer:
    """Start mosquitto in the foreground with a config file of our own.

    Started as root, mosquitto 2 switches to the ``mosquitto`` account, which
    could not write the log inside root's 0700 pytest directory; setting
    ``user`` to the current account keeps it as whoever runs the tests.
    """
    binary = find_mosquitto()
    workdir = Path(tempfile.mkdtemp(prefix="mosquitto-", dir=base_dir))
    port = free_port()
    conf, log = workdir / "mosquitto.conf", workdir / "mosquitto.log"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        f"log_dest file {log}\n"
        "log_type all\n"
        f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
    )
    # Errors before the log file is opened (e.g. a bad config) go to stderr.
    with open(workdir / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            cwd=workdir,
        )
    server = MosquittoServer(host="127.0.0.1", port=port, url=f"mqtt://127.0.0.1:{port}", _process=process)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            socket.create_connection((server.host, port), timeout=1).close()
            return server
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"mosquitto did not start on port {port} (exit {process.poll()}):\n"
                f"{_log_tail(workdir / 'stderr.log')}\n{_log_tail(log)}"
            )
        time.sleep(0.05)
