"""The replay store of push certificates (docs/semantics.md): over stateless HTTP a captured certificate
replays with nonce status OK inside the slop window, so every accepted certificate is kept, by what it
signs, until it is older than the longest window, and a certificate seen before is refused."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from ..errors import StepupError


class ReplayStore:
    """Accepted certificates, shared by concurrent pushes through SQLite.

    ``signed`` holds them by what they sign (:attr:`Certificate.identity`); ``used`` by blob id, as
    stores written before certificates were identified by their content did. Both are checked, so a
    certificate an older store holds stays refused, and both are written, so an older stepup-git
    reading this store still refuses what this one accepted."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            self.db.execute("CREATE TABLE IF NOT EXISTS used (blob TEXT PRIMARY KEY, nonce TEXT NOT NULL, "
                            "used_at REAL NOT NULL)")
            self.db.execute("CREATE TABLE IF NOT EXISTS signed (payload TEXT PRIMARY KEY, blob TEXT NOT NULL, "
                            "nonce TEXT NOT NULL, used_at REAL NOT NULL)")
        except sqlite3.Error as exc:
            raise StepupError(f"cannot open the push certificate replay store {path}: {exc}") from None

    def claim(self, identity: str, blob: str, nonce: str, keep: timedelta, now: datetime) -> float | None:
        """Record a certificate (what it signs, and its blob) as used at ``now``; return when it was
        first used if it already was, under either."""
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                cutoff = now.timestamp() - keep.total_seconds()
                self.db.execute("DELETE FROM signed WHERE used_at < ?", (cutoff,))
                self.db.execute("DELETE FROM used WHERE used_at < ?", (cutoff,))
                row = (self.db.execute("SELECT used_at FROM signed WHERE payload = ?", (identity,)).fetchone()
                       or self.db.execute("SELECT used_at FROM used WHERE blob = ?", (blob,)).fetchone())
                if row:
                    return float(row[0])
                used_at = now.timestamp()
                self.db.execute("INSERT INTO signed VALUES (?, ?, ?, ?)", (identity, blob, nonce, used_at))
                self.db.execute("INSERT INTO used VALUES (?, ?, ?)", (blob, nonce, used_at))
                return None
        except sqlite3.Error as exc:
            raise StepupError(f"cannot use the push certificate replay store: {exc}") from None

    def release(self, identity: str, blob: str) -> None:
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("DELETE FROM signed WHERE payload = ?", (identity,))
                self.db.execute("DELETE FROM used WHERE blob = ?", (blob,))
        except sqlite3.Error:
            pass
