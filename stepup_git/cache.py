"""A persistent verification cache: (object id, keyring digest, policy digest) -> verification.

It only ever saves work: a verification is a pure function of the object's bytes (named by its id),
the keyring and the policy's SSH keys, so a hit under the same digests is the same answer. Anything
going wrong with the cache file disables the cache for the push; it never decides a push.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

from .lean import sha256
from .signatures import Verified

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TABLES = (
    "verified (oid TEXT NOT NULL, context TEXT NOT NULL, result TEXT NOT NULL, PRIMARY KEY (oid, context))",
    "ranges (new TEXT NOT NULL, base TEXT NOT NULL, context TEXT NOT NULL, summary TEXT NOT NULL, "
    "PRIMARY KEY (new, base, context))",
    # context-free: whether a commit is an ancestor of another depends on the ids alone
    "ancestors (old TEXT NOT NULL, new TEXT NOT NULL, PRIMARY KEY (old, new))",
)
FLUSH_EVERY = 2000
BATCH = 500  # object ids per lookup (SQLite's variable limit is 999 on old builds)


class SqliteStore:
    def __init__(self, path: Path, context: str) -> None:
        import sqlite3

        self.context = context
        self._error = sqlite3.Error
        self._pending: list[tuple[str, str, str]] = []
        self._ancestors: list[tuple[str, str]] = []
        self._db: sqlite3.Connection | None = None
        self._ready = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=10, isolation_level=None)
        except (sqlite3.Error, OSError):
            self._db = None

    def _prepare(self) -> bool:
        """Create the table on first use (not at open: another push may hold the write lock then)."""
        if self._db is None:
            return False
        if not self._ready:
            try:
                mode = None
                with contextlib.suppress(self._error):  # refused while another push writes: fine
                    mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode == "wal":  # a cache needs no durability across a power loss, only the
                    self._db.execute("PRAGMA synchronous=NORMAL")  # consistency that WAL keeps with it
                present = self._db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                                           "('verified', 'ranges', 'ancestors')").fetchone()[0]
                if present != 3:
                    with self._db:  # a new cache: its tables in one transaction
                        self._db.execute("BEGIN IMMEDIATE")
                        for table in TABLES:
                            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} WITHOUT ROWID")
                self._ready = True
            except self._error:
                self._db = None
                return False
        return True

    def get_many(self, oids: Sequence[str]) -> dict[str, Verified]:
        found: dict[str, Verified] = {}
        if not self._prepare():
            return found
        assert self._db is not None
        try:
            for start in range(0, len(oids), BATCH):
                chunk = list(oids[start : start + BATCH])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT oid, result FROM verified WHERE context = ? AND oid IN ({marks})",
                                        [self.context, *chunk])
                for oid, result in rows:
                    found[oid] = Verified.from_json(json.loads(result))
        except (self._error, ValueError, KeyError, TypeError):
            return {}
        return found

    def get_range(self, new: str, base: str) -> list[list[Any]] | None:
        """The summary kept for a range whose every commit verified (see ``judge.Judge._signed``)."""
        if not self._prepare():
            return None
        assert self._db is not None
        try:
            row = self._db.execute("SELECT summary FROM ranges WHERE new = ? AND base = ? AND context = ?",
                                   (new, base, self.context)).fetchone()
            summary = json.loads(row[0]) if row else None
        except (self._error, ValueError):
            return None
        return summary if isinstance(summary, list) else None

    def put_range(self, new: str, base: str, summary: list[list[Any]]) -> None:
        if not self._prepare():
            return
        assert self._db is not None
        try:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO ranges VALUES (?, ?, ?, ?)",
                                 (new, base, self.context, json.dumps(summary, separators=(",", ":"))))
        except self._error:
            pass

    def is_ancestor(self, old: str, new: str) -> bool:
        """Whether an earlier push proved ``old`` an ancestor of ``new`` (False: not known)."""
        if not self._prepare():
            return False
        assert self._db is not None
        try:
            row = self._db.execute("SELECT 1 FROM ancestors WHERE old = ? AND new = ?", (old, new)).fetchone()
        except self._error:
            return False
        return row is not None

    def put_ancestor(self, old: str, new: str) -> None:
        if self._db is not None:
            self._ancestors.append((old, new))

    def put(self, oid: str, verified: Verified) -> None:
        if self._db is None:
            return
        self._pending.append((oid, self.context, json.dumps(verified.to_json(), separators=(",", ":"))))
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not (self._pending or self._ancestors) or not self._prepare():
            return
        rows, self._pending = self._pending, []
        ancestors, self._ancestors = self._ancestors, []
        assert self._db is not None
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO verified VALUES (?, ?, ?)", rows)
                self._db.executemany("INSERT OR IGNORE INTO ancestors VALUES (?, ?)", ancestors)
        except self._error:
            pass

    def close(self) -> None:
        """Write what is pending and close the file."""
        self.flush()
        if self._db is not None:
            with contextlib.suppress(self._error):
                self._db.close()
            self._db = None


def open_store(state_dir: Path, keyring_digest: str, policy_digest: str) -> SqliteStore:
    context = sha256(f"{keyring_digest}:{policy_digest}".encode()).hexdigest()[:32]
    return SqliteStore(state_dir / "verified.sqlite", context)


class LazyStore:
    """Opens the SQLite store on first use, so pushes too small to need it never load sqlite3."""

    def __init__(self, state_dir: Path, keyring_digest: str, policy_digest: str) -> None:
        self._args = (state_dir, keyring_digest, policy_digest)
        self._store: SqliteStore | None = None

    def _open(self) -> SqliteStore:
        if self._store is None:
            self._store = open_store(*self._args)
        return self._store

    def get_many(self, oids: Sequence[str]) -> dict[str, Verified]:
        return self._open().get_many(oids)

    def put(self, oid: str, verified: Verified) -> None:
        self._open().put(oid, verified)

    def flush(self) -> None:
        if self._store is not None:
            self._store.flush()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def get_range(self, new: str, base: str) -> list[list[Any]] | None:
        return self._open().get_range(new, base)

    def put_range(self, new: str, base: str, summary: list[list[Any]]) -> None:
        self._open().put_range(new, base, summary)

    def is_ancestor(self, old: str, new: str) -> bool:
        return self._open().is_ancestor(old, new)

    def put_ancestor(self, old: str, new: str) -> None:
        self._open().put_ancestor(old, new)
