"""The shared state of several servers in PostgreSQL (SPEC §11): the replay store and the audit chain.

The only module that imports psycopg. A :class:`Database` is one connection, opened on first use from a
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

import json
import math
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import psycopg

from ..audit.log import GENESIS, Record, _to_syslog, canonical, parse_line, record_hash
from ..audit.verify import Head, Verification, _check_line, _ending, _plural
from ..errors import AuditError, StateError

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
            if _scalar(cur):
                cur.execute("SELECT max(version) FROM stepup_schema")
                version = _scalar(cur)
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


def _scalar(cur: Cursor) -> Any:
    row = cur.fetchone()
    return None if row is None else row[0]


class PostgresReplayStore:
    """The replay store of :class:`stepup_git.proofs.replay.ReplayStore`, shared by every server of a
    repository: the same ``claim`` and ``release``. A certificate is refused when its identity (what
    it signs) or its blob id (rows from a local store older than identities) is already held; the
    claim is one ``INSERT … ON CONFLICT DO NOTHING``, so of two servers claiming at once exactly one
    wins. Rows of this repository older than ``keep`` are pruned in the same transaction."""

    def __init__(self, db: Database, repository: str) -> None:
        self.db = db
        self.repository = repository

    def claim(self, identity: str, blob: str, nonce: str, keep: timedelta, now: datetime) -> float | None:
        """Record a certificate as used at ``now``; return when it was first used if it already was."""
        used_at = now.timestamp()
        cutoff = used_at - keep.total_seconds()

        def work(cur: Cursor) -> float | None:
            # Rows another server is pruning right now are left to it (SKIP LOCKED): no waiting, no deadlock.
            cur.execute("DELETE FROM stepup_replay WHERE id IN (SELECT id FROM stepup_replay "
                        "WHERE repository = %s AND used_at < %s FOR UPDATE SKIP LOCKED)",
                        (self.repository, cutoff))
            for _ in range(RETRIES):
                cur.execute("INSERT INTO stepup_replay (repository, identity, blob, nonce, used_at) "
                            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING used_at",
                            (self.repository, identity, blob, nonce, used_at))
                if cur.fetchone() is not None:
                    return None
                cur.execute("SELECT min(used_at) FROM stepup_replay WHERE repository = %s "
                            "AND (identity = %s OR blob = %s)", (self.repository, identity, blob))
                first = _scalar(cur)
                if first is not None:
                    return float(first)
                # The row in the way was released or pruned since: claim again.
            return used_at  # fail closed: never accept what could not be claimed

        return self.db.run(work, what="cannot claim the push certificate")

    def release(self, identity: str, blob: str) -> None:
        """Free a claim (the push was rejected after all). Like the local store, a failure is ignored:
        the certificate then stays used, which refuses a retry with it, never accepts a replay."""
        def work(cur: Cursor) -> None:
            cur.execute("DELETE FROM stepup_replay WHERE repository = %s AND identity = %s AND blob = %s",
                        (self.repository, identity, blob))

        with suppress(StateError):
            self.db.run(work, what="cannot release the push certificate")

    def add(self, cur: Cursor, rows: Iterable[tuple[str | None, str, str, float]]) -> int:
        """Copy rows (identity or None, blob, nonce, used_at) in the caller's transaction; rows already
        held are skipped. How many were new."""
        added = 0
        for identity, blob, nonce, used_at in rows:
            cur.execute("INSERT INTO stepup_replay (repository, identity, blob, nonce, used_at) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                        (self.repository, identity, blob, nonce, used_at))
            added += cur.fetchone() is not None
        return added


class PostgresAuditLog:
    """A repository's audit chain in the database, the file log's twin (:mod:`stepup_git.audit.log`):
    the same records, ``prev`` and ``hash``, kept as the exact bytes of the lines the file log would
    write. Appends take the repository's head row ``FOR UPDATE``, so the appends of every server
    queue up one after another and the chain never forks. ``repository`` is the name every replica
    knows the repository by (its configured name or path)."""

    def __init__(self, db: Database, repository: str) -> None:
        self.db = db
        self.repository = repository

    def append(self, records: Sequence[Mapping[str, object]], *, syslog: bool = False) -> list[Record]:
        """Chain ``records`` onto the repository's chain in one transaction; return them as written.
        Like :func:`stepup_git.audit.log.append`: caller-provided ``prev``/``hash`` are overwritten,
        each record is chained as it reads back; all or nothing. ``AuditError`` for a record that is
        not JSON, ``StateError`` when the database fails."""
        if not records:
            return []
        try:
            bodies: list[Record] = [json.loads(canonical(
                {key: value for key, value in record.items() if key not in ("hash", "prev")}))
                for record in records]
        except (TypeError, ValueError) as exc:
            raise AuditError(f"cannot write the audit chain of {self.repository}: "
                             f"a record is not JSON ({exc})") from exc

        def work(cur: Cursor) -> tuple[list[Record], int]:
            prev, count = self.lock_head(cur)
            written: list[Record] = []
            for body in bodies:
                body = {**body, "prev": prev}
                prev = record_hash(body)
                written.append({**body, "hash": prev})
            cur.executemany("INSERT INTO stepup_audit (repository, number, line) VALUES (%s, %s, %s)",
                            [(self.repository, count + n, canonical(r)) for n, r in enumerate(written, 1)])
            self.set_head(cur, prev, count + len(written))
            return written, count + 1

        written, first = self.db.run(work, what=f"cannot append to the audit chain of {self.repository}")
        if syslog:
            _to_syslog(written, first)
        return written

    def lock_head(self, cur: Cursor) -> tuple[str, int]:
        """The head row (created at ``GENESIS``, 0 when missing), locked until the caller's transaction ends:
        appends of every server wait here for one another."""
        cur.execute("INSERT INTO stepup_audit_head (repository, hash, count) VALUES (%s, %s, 0) "
                    "ON CONFLICT DO NOTHING", (self.repository, GENESIS))
        cur.execute("SELECT hash, count FROM stepup_audit_head WHERE repository = %s FOR UPDATE",
                    (self.repository,))
        row = cur.fetchone()
        assert row is not None
        return str(row[0]), int(row[1])

    def set_head(self, cur: Cursor, digest: str, count: int) -> None:
        """Move the locked head row, in the caller's transaction."""
        cur.execute("UPDATE stepup_audit_head SET hash = %s, count = %s WHERE repository = %s",
                    (digest, count, self.repository))

    def head(self) -> tuple[str, int]:
        """The chain's last hash and its record count (``GENESIS``, 0 for a repository without one)."""
        def work(cur: Cursor) -> tuple[str, int]:
            cur.execute("SELECT hash, count FROM stepup_audit_head WHERE repository = %s", (self.repository,))
            row = cur.fetchone()
            return (GENESIS, 0) if row is None else (str(row[0]), int(row[1]))

        return self.db.run(work, what=f"cannot read the audit chain of {self.repository}", snapshot=True)

    def lines(self, cur: Cursor, after: int = 0, limit: int | None = None) -> list[bytes]:
        """The canonical lines (without their newline) from record ``after + 1`` on, in the caller's
        transaction."""
        cur.execute("SELECT line FROM stepup_audit WHERE repository = %s AND number > %s ORDER BY number"
                    + (" LIMIT %s" if limit is not None else ""),
                    (self.repository, after, *(() if limit is None else (limit,))))
        return [bytes(row[0]) for row in cur.fetchall()]

    def read(self, batch: int = 1000) -> Iterator[Record]:
        """Yield the chain's records in order (a batch per transaction); none for a repository without
        one. ``AuditError`` for a record that is not a JSON object."""
        number = 0
        what = f"cannot read the audit chain of {self.repository}"
        while True:
            lines = self.db.run(partial(self.lines, after=number, limit=batch), what=what)
            for raw in lines:
                number += 1
                try:
                    record = parse_line(raw)
                except (ValueError, RecursionError):
                    record = None
                if not isinstance(record, dict):
                    raise AuditError(f"{self.repository}: record {number} is not a JSON record "
                                     "(see `stepup-git audit verify`)")
                yield record
            if len(lines) < batch:
                return

    def verify(self, expected: Head | None = None) -> Verification:
        """Check the chain like :func:`stepup_git.audit.verify.verify` checks a file (the same steps
        and messages; "line N" is record N): each record in canonical form, its hash, its link to the
        one before; then the head row; then, given, a head kept elsewhere. All in one snapshot."""
        return self.db.run(lambda cur: self._verify(cur, expected),
                           what=f"cannot verify the audit chain of {self.repository}", snapshot=True)

    def _verify(self, cur: Cursor, expected: Head | None) -> Verification:
        cur.execute("SELECT hash, count FROM stepup_audit_head WHERE repository = %s", (self.repository,))
        head_row = cur.fetchone()
        count, prev = 0, GENESIS
        found = 0 if expected is not None and expected.hash == GENESIS else None
        with cur.connection.cursor(name="stepup_verify") as rows:
            rows.itersize = 1000
            rows.execute("SELECT number, line FROM stepup_audit WHERE repository = %s ORDER BY number",
                         (self.repository,))
            for position, (number, line) in enumerate(rows, start=1):
                if number != position:
                    return Verification(False, count, position, f"line {position}: numbered {number} "
                                        "(a record removed or inserted before it)")
                raw = bytes(line) + b"\n"
                bad = _check_line(position, raw, prev)
                if bad:
                    return Verification(False, count, position, f"line {position}: {bad}")
                count, prev = count + 1, json.loads(raw)["hash"]
                if found is None and expected is not None and prev == expected.hash:
                    found = count
        # Step 5: the head row names the same last record and count as the chain.
        if head_row is None:
            message = ("the head row is missing" if count
                       else f"the database holds no audit chain for {self.repository}")
            return Verification(False, count, None, f"end of log: {message}")
        head_hash, head_count = str(head_row[0]), int(head_row[1])
        if (head_hash, head_count) != (prev, count):
            why = ("records removed from the end" if head_count > count
                   else "records added without updating the head row" if head_count < count
                   else "last record replaced or head row edited")
            return Verification(False, count, None, f"end of log: the head row records "
                                f"{_plural(head_count)} ending in {head_hash[:12]}…, the log has "
                                f"{_ending(count, prev)} ({why})")
        return _against(expected, found, count, prev)


def _against(expected: Head | None, found: int | None, count: int, prev: str) -> Verification:
    """Step 6: the head kept elsewhere is in the chain, at its count (the file verifier's messages)."""
    intact = f"audit log intact: {_plural(count)}"
    if expected is None:
        return Verification(True, count, None, intact)
    given = expected.hash[:12] + "…" + (f":{expected.count}" if expected.count is not None else "")
    if found is None:
        return Verification(False, count, None, f"end of log: the given head {given} is not in "
                            f"the log, which has {_ending(count, prev)} (the chain was rewritten "
                            "or cut short)")
    if expected.count is not None and found != expected.count:
        return Verification(False, count, None, f"end of log: the given head {given} is record "
                            f"{found} of the log, not record {expected.count} (records removed "
                            "or inserted before it, the chain rewritten)")
    after = count - found
    return Verification(True, count, None, intact + (
        ", ending in the given head" if after == 0
        else f", {_plural(after)} after the given head (record {found})"))
