"""What a push learns that the next one may reuse, in SQLite in the repository's ``stepup/`` folder
(``verified.sqlite``):

- *verifications*: (object id, keyring digest, policy digest) -> verification. A verification is a
  pure function of the object's bytes (named by its id), the keyring and the policy's SSH keys, so a
  hit under the same digests is the same answer. SQLite is opened only for a batch of at least
  ``evaluate.STORE_MIN`` signatures: below that, Sequoia verifies them sooner than SQLite opens.
- *ancestry*: (descendant, ancestor) commit pairs that a long walk established
  (:mod:`stepup_git.git.objects`), asked by a fast-forward check before it walks the same commits
  again. Object ids name the parents, so a pair is true of those objects wherever they are.

The package version is part of every key, so nothing an earlier version kept is read.

It only ever saves work. Anything going wrong with the cache file disables it for the push; it never
decides a push.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from . import __version__
from .signatures import Verified

TABLES = {
    "verified": "(oid TEXT NOT NULL, context TEXT NOT NULL, result TEXT NOT NULL, PRIMARY KEY (oid, context))",
    "ancestry": "(descendant TEXT NOT NULL, ancestor TEXT NOT NULL, version TEXT NOT NULL, "
                "PRIMARY KEY (descendant, ancestor, version))",
}
FLUSH_EVERY = 2000
BATCH = 500  # object ids per lookup (SQLite's variable limit is 999 on old builds)
_FIELDS = tuple(f.name for f in fields(Verified))


def encode(verified: Verified) -> str:
    """A verification as the JSON that :meth:`Verified.from_json` reads. Its fields are flat values, so
    they are read one by one: ``Verified.to_json``'s ``asdict`` deep-copies each one, and took a third of
    the hook's time on a 10,000-commit push."""
    row: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(verified, name)
        row[name] = value.timestamp() if isinstance(value, datetime) else value
    return json.dumps(row, separators=(",", ":"))


class SqliteStore:
    def __init__(self, path: Path, context: str) -> None:
        import sqlite3

        self.context = context
        self._error = sqlite3.Error
        self._pending: list[tuple[str, str, str]] = []
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
                present = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                for name, columns in TABLES.items():
                    if name not in present:  # a new cache (the check needs no write lock; the creation does)
                        self._db.execute(f"CREATE TABLE IF NOT EXISTS {name} {columns} WITHOUT ROWID")
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

    def put(self, oid: str, verified: Verified) -> None:
        if self._db is None:
            return
        self._pending.append((oid, self.context, encode(verified)))
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self._pending or not self._prepare():
            return
        rows, self._pending = self._pending, []
        assert self._db is not None
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO verified VALUES (?, ?, ?)", rows)
        except self._error:
            pass

    def descends(self, descendant: str, ancestor: str) -> bool:
        """Whether an earlier push established that ``descendant`` descends from ``ancestor``."""
        if not self._prepare():
            return False
        assert self._db is not None
        try:
            row = self._db.execute("SELECT 1 FROM ancestry WHERE descendant = ? AND ancestor = ? AND version = ?",
                                   (descendant, ancestor, __version__)).fetchone()
        except self._error:
            return False
        return row is not None

    def remember(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Keep (descendant, ancestor) pairs for later pushes."""
        if not pairs or not self._prepare():
            return
        assert self._db is not None
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR IGNORE INTO ancestry VALUES (?, ?, ?)",
                                     [(d, a, __version__) for d, a in pairs])
        except self._error:
            pass

    def close(self) -> None:
        """Write what is pending and close the file."""
        self.flush()
        if self._db is not None:
            with contextlib.suppress(self._error):
                self._db.close()
            self._db = None


def context_of(keyring_digest: str, policy_digest: str) -> str:
    """What every cached answer is keyed by besides the object: the keyring, the policy and the package
    version (what an earlier version kept, perhaps read while replace refs substituted objects, is
    never trusted)."""
    return sha256(f"{__version__}:{keyring_digest}:{policy_digest}".encode()).hexdigest()[:32]


def open_store(state_dir: Path, keyring_digest: str, policy_digest: str) -> SqliteStore:
    return SqliteStore(state_dir / "verified.sqlite", context_of(keyring_digest, policy_digest))


class LazyStore:
    """The store, opened on first use (pushes too small to need it never load sqlite3)."""

    def __init__(self, state_dir: Path, keyring_digest: str, policy_digest: str) -> None:
        self._args = (state_dir, keyring_digest, policy_digest)
        self._path = state_dir / "verified.sqlite"
        self._store: SqliteStore | None = None

    def _open(self) -> SqliteStore:
        if self._store is None:
            self._store = open_store(*self._args)
        return self._store

    def get_many(self, oids: Sequence[str]) -> dict[str, Verified]:
        return self._open().get_many(oids)

    def put(self, oid: str, verified: Verified) -> None:
        self._open().put(oid, verified)

    def descends(self, descendant: str, ancestor: str) -> bool:
        if self._store is None and not self._path.exists():
            return False  # nothing was ever kept: no need to open (and create) the file
        return self._open().descends(descendant, ancestor)

    def remember(self, pairs: Sequence[tuple[str, str]]) -> None:
        if pairs:
            self._open().remember(pairs)

    def flush(self) -> None:
        if self._store is not None:
            self._store.flush()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
