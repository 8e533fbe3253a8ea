"""A real PostgreSQL server for the tests of the shared state (docs/servers.md), started and stopped by the suite.

Debian's `postgresql` package (`initdb`, `pg_ctl` under /usr/lib/postgresql/<version>/bin, installed by
the test command from tests/system-packages.txt) runs a throw-away cluster in a short temporary folder:
it listens on a Unix socket in that folder and on 127.0.0.1 at a free port. PostgreSQL refuses to run as
root, so under root the server runs as the unprivileged `postgres` account (through `runuser`), owning
its data folder. Every login needs a password (scram-sha-256); the tests find theirs in a libpq password
file, never in a connection string.

* `postgres_server` (session): the `PostgresServer`; `stop()`/`start()` or `with server.stopped():` take
  it down mid-test, `frozen()` stops its processes with SIGSTOP (a server that no longer answers).
* `state_db` (per test): the connection string of a fresh, empty database owned by the test role.

tests/conftest.py loads them for the whole suite (`pytest_plugins`), so one server serves every test.
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .servers import HOST, free_port

ROLE = "stepup"
"""The role the tests log in as (not a superuser: it owns only its databases)."""

START_TIMEOUT = 30
"""Seconds `pg_ctl` may take to start or stop the server."""

_SERVER_SETTINGS = {
    "fsync": "off",  # a throw-away cluster: durability buys nothing here and costs seconds
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "120",
    "shared_buffers": "16MB",
    "log_min_messages": "warning",
    "lc_messages": "C",
}


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's program folder (15 on Debian bookworm), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def unavailable() -> str | None:
    """Why a PostgreSQL server cannot run here (for `pytest.skip`), or None when it can."""
    if bin_dir() is None:
        return "PostgreSQL is not installed (Debian: postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a `postgres` account to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root without `runuser` (Debian: util-linux)"
    return None


@dataclass
class PostgresServer:
    """A cluster of its own: `base` holds the data folder, the socket, the log and the password file."""

    base: Path
    bin: Path
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    superuser_password: str = field(default_factory=lambda: secrets.token_hex(16))
    role: str = ROLE
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    @property
    def passfile(self) -> Path:
        """The libpq password file of the tests (mode 0600, as libpq demands)."""
        return self.base / "pgpass"

    @property
    def socket_dir(self) -> Path:
        return self.base

    def conninfo(self, database: str = "postgres", *, tcp: bool = False, user: str = ROLE, **extra: str) -> str:
        """A libpq connection string without a password: libpq takes it from `passfile`."""
        host = HOST if tcp else str(self.socket_dir)
        params = {"host": host, "port": str(self.port), "dbname": database, "user": user,
                  "passfile": str(self.passfile), **extra}
        return " ".join(f"{key}={value}" for key, value in params.items())

    # ---------------------------------------------------------------- life cycle

    def _as_server_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def _run(self, argv: list[str], *, timeout: float = START_TIMEOUT + 10) -> None:
        env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C", "TZ": "UTC"}
        # pg_ctl's server outlives the call: its output goes to the log, never to a pipe we wait on.
        with open(self.base / "pg_ctl.out", "ab") as out:
            proc = subprocess.run(self._as_server_user(argv), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, env=env, cwd=self.base, timeout=timeout, check=False)
        if proc.returncode != 0:
            tail = (self.base / "pg_ctl.out").read_text(errors="replace")[-2000:]
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} exited {proc.returncode}:\n{tail}\n{log}")

    def init(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self.base.chmod(0o700)
        pwfile = self.base / "superuser-password"
        pwfile.write_text(self.superuser_password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "scram-sha-256",
                   f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        pwfile.unlink()
        self.port = free_port()
        self.passfile.write_text(f"*:{self.port}:*:{ROLE}:{self.password}\n"
                                 f"*:{self.port}:*:postgres:{self.superuser_password}\n")
        self.passfile.chmod(0o600)  # owned by whoever runs the tests, who is the libpq client

    def start(self) -> None:
        options = [f"-c {key}={value}" for key, value in {
            **_SERVER_SETTINGS, "port": str(self.port), "listen_addresses": HOST,
            "unix_socket_directories": str(self.socket_dir)}.items()]
        self._run([str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log), "-w",
                   "-t", str(START_TIMEOUT), "-o", " ".join(options)])

    def stop(self) -> None:
        """Stop it the way an admin does (`pg_ctl stop -m fast`): open sessions are cut off."""
        self._run([str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w",
                   "-t", str(START_TIMEOUT)])

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The server down for the block, up again after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def _pids(self) -> list[int]:
        """The postmaster and its children (our own server's processes, found by their parent)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        pids = [postmaster]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    pids.append(int(stat.parent.name))
        return pids

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Every process of the server stopped (SIGSTOP) for the block: connected or not, nothing answers."""
        pids = self._pids()
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    # ---------------------------------------------------------------- administration

    def admin(self, sql: str, database: str = "postgres") -> None:
        """Run statements as the superuser (with psql, as an admin would)."""
        env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C", "PGPASSFILE": str(self.passfile),
               "HOME": str(self.base)}
        proc = subprocess.run([str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                               self.conninfo(database, user="postgres"), "-c", sql],
                              capture_output=True, text=True, env=env, timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {sql}\n{proc.stderr}")

    def create_role(self) -> None:
        self.admin(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'")

    def new_database(self) -> str:
        """A fresh database owned by the test role; its connection string."""
        name = f"t{next(self._counter)}"
        self.admin(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.conninfo(name)


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A started cluster with the test role; stopped and removed at the end."""
    where = bin_dir()
    assert where is not None
    base = Path(tempfile.mkdtemp(prefix="sgpg", dir="/tmp"))  # short: the socket path has a limit
    server = PostgresServer(base, where)
    try:
        server.init()
        server.start()
        server.create_role()
        yield server
    finally:
        with suppress(RuntimeError, subprocess.TimeoutExpired):
            if server.running:
                server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (skipped where PostgreSQL cannot run)."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with running_server() as server:
        yield server


@pytest.fixture
def state_db(postgres_server: PostgresServer) -> str:
    """The connection string of a fresh, empty database for this test; the server is running."""
    if not postgres_server.running:
        postgres_server.start()  # a test that stopped it and failed before starting it again
    return postgres_server.new_database()
