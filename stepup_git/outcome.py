"""What a push comes to, and how it is told: the records first, then the lines for the pusher.

:class:`PushState` is what the hook has learnt so far (git directory, updates, mode, where records
go), so that an error at any step is recorded with what is known (:meth:`PushState.failed`).
:func:`finish` writes the records and then prints; a record that cannot be written rejects the push
(warns in audit mode), and the log is left as it was.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .environment import pusher_from
from .errors import AuditError, StateError
from .model import Update
from .progress import Progress

if TYPE_CHECKING:
    from .policy import Settings
    from .state.chain import PostgresAuditLog
    from .state.replay import PostgresReplayStore

PREFIX = "stepup-git"
DEFAULT_TIMEOUT = 120


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the push comes to, before anything is written: the records, the lines, the exit code."""

    code: int
    lines: tuple[str, ...]
    records: tuple[dict[str, Any], ...] = ()
    log: Path | None = None
    syslog: bool = False
    chain: PostgresAuditLog | None = None  # the shared audit chain, instead of ``log`` (which is then the fallback)


class PushState:
    """What the hook has learnt so far; an error at any step is recorded with what is known."""

    def __init__(self, env: Mapping[str, str], now: datetime) -> None:
        self.env = env
        self.now = now
        self.mode = "enforce"  # the policy's mode once the policy has loaded
        self.git_dir: Path | None = None
        self.updates: list[Update] | None = None
        self.pusher_env: tuple[str, ...] | None = None
        self.log: Path | None = None  # the policy's audit log once the policy has loaded
        self.syslog = False
        self.chain: PostgresAuditLog | None = None  # the shared audit chain when the policy names a database
        self.timeout = float(DEFAULT_TIMEOUT)
        self.progress: Progress | None = None  # the counted line a long push shows while it is judged

    def open_state(self, settings: Settings, git_dir: Path) -> PostgresReplayStore:
        """The shared state (docs/servers.md): one connection for the push, bounded by the hook's timeout
        (opened on first use); the audit chain goes there, and the replay store it returns."""
        from .state import repository_name
        from .state.chain import PostgresAuditLog
        from .state.database import Database
        from .state.replay import PostgresReplayStore

        assert settings.state is not None
        db = Database(settings.state, deadline=time.monotonic() + self.timeout)
        name = repository_name(settings.repository, git_dir)
        self.chain = PostgresAuditLog(db, name)
        return PostgresReplayStore(db, name)

    def close_state(self) -> None:
        if self.chain is not None:
            self.chain.db.close()

    def failed(self, reason: str, *, mode: str | None = None, local: bool = False) -> Outcome:
        """One line for the pusher and an ``error`` record per update (one for the input as a whole
        when it could not be read), in the shared chain (unless ``local``: the database is what
        failed), else the policy's log or the repository's default log."""
        mode = mode or self.mode
        reason = " ".join(reason.split())
        line = fail_line(mode, reason)
        log = self.log
        if log is None and self.git_dir is not None and is_repository(self.git_dir):
            from .audit import default_log

            log = default_log(self.git_dir)
        if log is None:
            return Outcome(0 if mode == "audit" else 1, (line,))
        from .text import iso

        if self.pusher_env is None:
            from .policy import DEFAULT_PUSHER_ENV

            self.pusher_env = DEFAULT_PUSHER_ENV
        common = {"time": iso(self.now), "repo": str(self.git_dir), "pusher": pusher_from(self.env, self.pusher_env)}
        nonce = self.env.get("GIT_PUSH_CERT_NONCE_STATUS") or None
        rest: dict[str, Any] = {"decision": "error", "rules": [], "push_cert_nonce_status": nonce, "mode": mode,
                                "error": reason}
        records: list[dict[str, Any]] = []
        updates: Sequence[Update | None] = self.updates or [None]
        for update in updates:
            if update is None:
                where: dict[str, Any] = {"ref": None, "old": None, "new": None, "action": "unknown"}
            else:
                action = "create" if update.old is None else "delete" if update.new is None else "unknown"
                where = {"ref": update.ref, "old": update.old_id, "new": update.new_id, "action": action}
            records.append({**common, **where, **rest})
        chain = None if local else self.chain
        return Outcome(0 if mode == "audit" else 1, (line,), tuple(records), log, self.syslog, chain)


def finish(outcome: Outcome, push: PushState, out: TextIO) -> int:
    """Write the records, then tell the pusher; a record that cannot be written rejects the push
    (warns in audit mode) with one line, and the log is left as it was. A record the state
    database cannot take is recorded as an ``error`` in the local log instead."""
    from .text import visible

    code, lines = outcome.code, list(outcome.lines)
    if push.progress is not None:
        push.progress.done()  # the counted line ends before the verdict is printed
    if outcome.records and (outcome.chain is not None or outcome.log is not None):
        from . import audit

        mode = "audit" if outcome.records[0].get("mode") == "audit" else "enforce"
        try:
            if outcome.chain is not None:
                outcome.chain.db.deadline = time.monotonic() + push.timeout  # the write's own time
                outcome.chain.append(outcome.records, syslog=outcome.syslog)
            elif outcome.log is not None:
                audit.append(outcome.log, outcome.records, syslog=outcome.syslog)
        except StateError as exc:
            reason = " ".join(str(exc).split())  # audit mode warns, and never turns a refusal into an accept
            code, lines = max(code, 0 if mode == "audit" else 1), [fail_line(mode, reason)]
            if outcome.log is not None:
                with suppress(AuditError):  # nowhere left to record it: the pusher is told all the same
                    audit.append(outcome.log, _not_recorded(outcome.records, reason), syslog=outcome.syslog)
        except AuditError as exc:
            code, lines = (0 if mode == "audit" else 1), [fail_line(mode, " ".join(str(exc).split()))]
    for line in lines:
        print(visible(line), file=out)
    return code


def _not_recorded(records: Sequence[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    """The records the state database could not take, as ``error`` records for the local log."""
    return [{**r, "decision": "error", "error": f"{r['error']}; {reason}" if r.get("error") else reason}
            for r in records]


def fail_line(mode: str, reason: str) -> str:
    if mode == "audit":
        return f"{PREFIX}: WARNING (audit mode): {reason}; the push is accepted"
    return f"{PREFIX}: push rejected: {reason}"


def is_repository(git_dir: Path) -> bool:
    return (git_dir / "HEAD").is_file() and (git_dir / "objects").is_dir()
