"""A repository's audit chain in the state database (docs/servers.md), the twin of the file log
(:mod:`stepup_git.audit.log`), checked the way :mod:`stepup_git.audit.verify` checks a file."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from functools import partial

from ..audit.log import GENESIS, HeadFile, Record, canonical, parse_line, record_hash, to_syslog
from ..audit.verify import ChainCheck, Head, Verification
from ..errors import AuditError
from .database import Cursor, Database


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
            to_syslog(written, first)
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
        chain = ChainCheck(expected)
        with cur.connection.cursor(name="stepup_verify") as rows:
            rows.itersize = 1000
            rows.execute("SELECT number, line FROM stepup_audit WHERE repository = %s ORDER BY number",
                         (self.repository,))
            for position, (number, line) in enumerate(rows, start=1):
                if number != position:
                    return Verification(False, chain.count, position, f"line {position}: numbered {number} "
                                        "(a record removed or inserted before it)")
                bad = chain.add(position, bytes(line) + b"\n")
                if bad:
                    return bad
        if head_row is None:
            message = ("the head row is missing" if chain.count
                       else f"the database holds no audit chain for {self.repository}")
            return Verification(False, chain.count, None, f"end of log: {message}")
        return chain.end(HeadFile(str(head_row[0]), int(head_row[1])), "head row")
