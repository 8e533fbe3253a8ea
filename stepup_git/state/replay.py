"""The push certificate replay store in the state database (docs/servers.md), shared by every server of a
repository: the twin of the local :class:`stepup_git.proofs.replay.ReplayStore`."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from datetime import datetime, timedelta

from ..errors import StateError
from .database import RETRIES, Cursor, Database, scalar


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
                first = scalar(cur)
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
