"""Move a repository's local state into the database (``stepup-git state migrate``, docs/servers.md).

The audit log is verified first, then its lines are copied as they are, so the chain in the database
has the same hashes, the same last hash and the same count, and a head kept elsewhere (a syslog line's
``head=``) still verifies against it. The replay store's certificates are copied too, so a certificate
used before the move stays refused after it. All in one transaction: the database gets all of it or
none. A database that already holds the chain (or the chain and records written since) is left as it
is; one that holds what is not a prefix of the local chain, or that the local chain is not a prefix of,
is refused: two chains are never mixed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..audit.log import beside, load_head, locked
from ..audit.verify import verify
from ..errors import StateError
from .chain import PostgresAuditLog
from .database import Cursor, Database
from .replay import PostgresReplayStore


@dataclass(frozen=True, slots=True)
class Migration:
    """What a migration did: ``records`` in the local chain, ``copied`` of them written now (0 when the
    database already held them), ``certificates`` replay rows written now, and ``head``, the hash the
    chain ends in in the database ("" when there was no local chain)."""

    records: int
    copied: int
    certificates: int
    head: str


def local_lines(log_path: Path) -> list[bytes]:
    """The verified local log's lines (without newlines); none when there is neither log nor head file.
    ``StateError`` when the chain does not verify or changes while being read."""
    head_path = beside(log_path, ".head")
    if not log_path.exists() and not head_path.exists():
        return []
    result = verify(log_path)
    if not result.ok:
        raise StateError(f"cannot migrate the audit log {log_path}: it does not verify ({result.message})")
    with locked(log_path, exclusive=False):
        lines = log_path.read_bytes().splitlines()
        head = load_head(head_path)
    last = json.loads(lines[-1])["hash"] if lines else None
    if head is None or len(lines) != result.count or (lines and head.hash != last):
        raise StateError(f"cannot migrate the audit log {log_path}: it changed while it was read "
                         "(stop pushes to the repository during the move)")
    return lines


def local_certificates(replay_path: Path) -> list[tuple[str | None, str, str, float]]:
    """The local replay store's rows (identity or None, blob, nonce, used_at): a row known only by its
    blob (written before certificates had an identity) keeps None. None when there is no store."""
    if not replay_path.exists():
        return []
    try:
        db = sqlite3.connect(f"{replay_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            signed = list(db.execute("SELECT payload, blob, nonce, used_at FROM signed")) \
                if "signed" in tables else []
            known = {row[1] for row in signed}
            used = [row for row in db.execute("SELECT blob, nonce, used_at FROM used")
                    if row[0] not in known] if "used" in tables else []
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StateError(f"cannot read the push certificate replay store {replay_path}: {exc}") from None
    return [(str(i), str(b), str(n), float(t)) for i, b, n, t in signed] + \
           [(None, str(b), str(n), float(t)) for b, n, t in used]


def migrate(db: Database, repository: str, *, log_path: Path, replay_path: Path) -> Migration:
    """Copy the local audit log and replay store of ``repository`` into the database."""
    lines = local_lines(log_path)
    certificates = local_certificates(replay_path)
    audit = PostgresAuditLog(db, repository)
    replay = PostgresReplayStore(db, repository)

    def work(cur: Cursor) -> Migration:
        last, copied = copy_chain(cur) if lines else ("", 0)
        return Migration(len(lines), copied, replay.add(cur, certificates), last)

    def copy_chain(cur: Cursor) -> tuple[str, int]:
        last, count = audit.lock_head(cur)
        shared = min(count, len(lines))
        if audit.lines(cur, 0, shared) != lines[:shared]:
            raise StateError(f"the state database {db.target} already holds another audit chain for "
                             f"{repository} ({count} records ending in {last[:12]}…); not mixing it with "
                             f"the local one ({len(lines)} records)")
        missing = lines[count:]
        if missing:
            cur.executemany("INSERT INTO stepup_audit (repository, number, line) VALUES (%s, %s, %s)",
                            [(repository, count + n, line) for n, line in enumerate(missing, 1)])
            last = json.loads(missing[-1])["hash"]
            audit.set_head(cur, last, len(lines))
        return last, len(missing)

    return db.run(work, what=f"cannot migrate {repository} into the state database")
