"""The connection to the state database shared by several servers (docs/servers.md), and its schema.

The only module that imports psycopg; :mod:`.replay` and :mod:`.chain` keep their tables through it.
A :class:`Database` is one connection, opened on first use from a
libpq connection string (``host=… dbname=…``, ``postgresql://…``) or a service name (``service=NAME``,
or ``NAME`` alone); passwords come from libpq's password or service file, never from the string. Every
transaction is bounded by the caller's deadline three ways: ``connect_timeout`` at connection time,
``statement_timeout`` and ``lock_timeout`` on the server, and a watchdog that cuts the socket of a server
that stops answering at all. Whatever fails (unreachable, login refused, too slow) is one
:class:`StateError` line naming the database and what was being done; the transaction was not
committed, so nothing is half-written. Serialisation failures and deadlocks are retried a few times.

Tables (created when missing, with a schema version row): ``stepup_replay`` holds accepted push
certificates per repository; ``stepup_audit`` holds each repository's chain as the exact canonical
bytes of the file log's lines, ``stepup_audit_head`` its last hash and count (the head file's content).
"""

from __future__ import annotations

import math
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Any, TypeVar

import psycopg

from ..errors import StateError

SCHEMA_VERSION = 1
RETRIES = 5
"""Attempts of a transaction that failed on a serialisation failure or a deadlock."""

_RETRY = frozenset({"40001", "40P01", "23505"})  # serialization_failure, deadlock_detected, unique_violation
_SLOW = frozenset({"57014", "55P03"})  # query_canceled (statement_timeout), lock_not_available (lock_timeout)
_SCHEMA_LOCK = 0x5374_6570_5570  # pg_advisory_xact_lock key: one server creates the tables at a time

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS stepup_schema ("
    " one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)",
    # identity: the SHA-256 of what a certificate signs; NULL for a row copied from a local store
    # written before certificates had one, known only by the id of its blob.
    "CREATE TABLE IF NOT EXISTS stepup_replay ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, repository text NOT NULL, identity text,"
    " blob text NOT NULL, nonce text NOT NULL, used_at double precision NOT NULL,"
    " UNIQUE (repository, identity), UNIQUE (repository, blob))",
    "CREATE INDEX IF NOT EXISTS stepup_replay_age ON stepup_replay (repository, used_at)",
    "CREATE TABLE IF NOT EXISTS stepup_audit_head ("
    " repository text PRIMARY KEY, hash text NOT NULL, count bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS stepup_audit ("
    " repository text NOT NULL, number bigint NOT NULL, line bytea NOT NULL, PRIMARY KEY (repository, number))",
    f"INSERT INTO stepup_schema (version) VALUES ({SCHEMA_VERSION}) ON CONFLICT DO NOTHING",
)

T = TypeVar("T")
Cursor = psycopg.Cursor[tuple[Any, ...]]
Connection = psycopg.Connection[tuple[Any, ...]]


def conninfo_of(setting: str) -> str:
    """The libpq connection string a setting names: a bare word is a service name."""
    text = setting.strip()
    if text and "=" not in text and "://" not in text:
        return f"service={text}"
    return text


def setting_problem(setting: str) -> str | None:
    """Why libpq would not take a ``state`` setting, or why the policy must not hold it (a password:
    libpq reads it from its password or service file); None when it is fine."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo_of(setting))
    except psycopg.Error as exc:
        return f"state is not a valid libpq connection string or service name ({_one_line(exc)})"
    if params.get("password") is not None:
        return ("state must not hold a password: give it in the libpq password file (~/.pgpass, or passfile=) "
                "or the service file (~/.pg_service.conf)")
    return None


def describe(conninfo: str) -> str:
    """The database for messages, never with its password: ``service=NAME`` or ``user@host:port/db``."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "(an invalid connection string)"
    if params.get("service"):
        return f"service={params['service']}"
    host = str(params.get("host") or params.get("hostaddr") or "(default host)")
    where = host + (f":{params['port']}" if params.get("port") else "")
    user = f"{params['user']}@" if params.get("user") else ""
    database = f"/{params['dbname']}" if params.get("dbname") else ""
    return f"{user}{where}{database}"


def _one_line(exc: BaseException) -> str:
    """libpq's message, its reason only: ``connection to server … failed: X`` gives X, on one line."""
    text = str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    for prefix in ("connection failed: ", "connection is bad: "):
        text = text.removeprefix(prefix)
    if " failed: " in text:
        text = text.rsplit(" failed: ", 1)[1]
    text = re.sub(r"\s+", " ", text).strip()
    return text.removeprefix("FATAL: ").removeprefix("ERROR: ") or type(exc).__name__


class _Stale(Exception):
    """A kept connection the server closed meanwhile (it restarted): open a new one and start again."""


class _Watchdog:
    """Cuts a connection's socket when the deadline passes. ``statement_timeout`` covers a busy server;
    a server that no longer answers at all (stopped, a network that drops packets) needs the client to
    give up, and then the connection fails at once instead of waiting."""

    def __init__(self, conn: Connection, seconds: float) -> None:
        self.fired = False
        self._fd = conn.pgconn.socket
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            try:
                sock = socket.socket(fileno=os.dup(self._fd))
            except OSError:
                return
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                sock.close()


class Database:
    """One connection to the state database, opened on first use and reopened after a failure (or
    after the server dropped it while idle); for one thread at a time, like the hook that holds it.

    ``deadline`` is a :func:`time.monotonic` instant no transaction may outlive; the caller may move it
    (the hook gives the audit write its own time once judging is done)."""

    def __init__(self, setting: str, *, deadline: float) -> None:
        self.conninfo = conninfo_of(setting)
        self.target = describe(self.conninfo)
        self.deadline = deadline
        self._conn: Connection | None = None
        try:
            psycopg.conninfo.conninfo_to_dict(self.conninfo)
        except psycopg.Error:
            raise StateError("the state database setting is not a valid libpq connection string "
                             "or service name") from None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _remaining(self, what: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StateError(f"{what}: the state database {self.target} did not answer within the deadline")
        return left

    def run(self, work: Callable[[Cursor], T], *, what: str, snapshot: bool = False) -> T:
        """``work`` in one transaction, committed when it returns; retried on a serialisation failure
        or a deadlock. ``snapshot``: a read-only transaction that sees one consistent state.
        ``what`` says what is being done (``cannot append to the audit chain of R``) for messages."""
        for attempt in range(1, RETRIES + 1):
            fired = False
            reused = self._conn is not None
            try:
                conn = self._connection(what)
                left = self._remaining(what)
                with _Watchdog(conn, left) as watchdog:
                    try:
                        result = self._transaction(conn, work, left, snapshot, reused)
                    finally:
                        fired = watchdog.fired
                return result
            except _Stale:
                self.close()  # a connection the server dropped since its last use: nothing was sent yet
                continue
            except psycopg.Error as exc:
                self.close()
                if exc.sqlstate in _RETRY and attempt < RETRIES and not fired \
                        and self.deadline - time.monotonic() > 0:
                    time.sleep(random.uniform(0.005, 0.05) * attempt)
                    continue
                raise self._error(exc, what, fired) from None
            except BaseException:
                self.close()  # the server rolls back what it was not told to commit
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _transaction(self, conn: Connection, work: Callable[[Cursor], T], left: float, snapshot: bool,
                     reused: bool = False) -> T:
        """``work`` between the session settings and the commit; ``_Stale`` when a ``reused``
        connection turns out to be gone before anything of ``work`` was sent."""
        with conn.cursor() as cur:
            limit = f"{max(1, int(left * 900))}ms"  # the server gives up a little before the watchdog
            try:
                if snapshot:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cur.execute("SELECT set_config('statement_timeout', %s, true), "
                            "set_config('lock_timeout', %s, true)", (limit, limit))
            except psycopg.OperationalError:
                if reused and conn.closed:
                    raise _Stale() from None
                raise
            result = work(cur)
        conn.commit()
        return result

    def _connection(self, what: str) -> Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        left = self._remaining(what)
        # libpq waits at least 2 s (it reads 1 as 2); the watchdog cannot cover a socket not yet open.
        self._conn = psycopg.connect(self.conninfo, connect_timeout=str(max(2, math.ceil(left))),
                                     application_name="stepup-git")
        self._ensure_schema(self._conn, left)
        return self._conn

    def _ensure_schema(self, conn: Connection, left: float) -> None:
        def work(cur: Cursor) -> None:
            cur.execute("SELECT to_regclass('stepup_schema') IS NOT NULL")
            if scalar(cur):
                cur.execute("SELECT max(version) FROM stepup_schema")
                version = scalar(cur)
                if version is not None and version >= SCHEMA_VERSION:
                    if version > SCHEMA_VERSION:
                        raise StateError(f"the state database {self.target} has schema version {version}, "
                                         f"newer than this stepup-git's ({SCHEMA_VERSION}): upgrade stepup-git")
                    return
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                cur.execute(statement)

        with _Watchdog(conn, left):
            self._transaction(conn, work, left, False)

    def _error(self, exc: psycopg.Error, what: str, fired: bool) -> StateError:
        where = f"the state database {self.target}"
        text = _one_line(exc)
        if fired or exc.sqlstate in _SLOW or "timeout expired" in text:
            return StateError(f"{what}: {where} did not answer within the deadline")
        if (exc.sqlstate or "").startswith("28") or any(
                sign in text for sign in ("authentication failed", "no password supplied", "pg_hba.conf")):
            return StateError(f"{what}: {where} refused the login: {text}")
        if isinstance(exc, psycopg.OperationalError):
            return StateError(f"{what}: {where} is unreachable: {text}")
        return StateError(f"{what}: {where} failed: {text}")


def scalar(cur: Cursor) -> Any:
    """The first column of the next row; None when there is none."""
    row = cur.fetchone()
    return None if row is None else row[0]
