"""The pre-receive hook entry: gather stdin, the environment and the clock, judge, audit, print, exit.

The order is fixed: judge under the deadline, disarm it, write the audit record, print, exit 0 or 1.
A record therefore always says what Git was told. Fails closed: any error, timeout or unreadable
policy rejects the push with one line, and is itself recorded (decision ``error``). In audit mode an
error inside judging warns and accepts; a policy that cannot be loaded rejects in every mode (the
hook cannot know what to protect) and is recorded in the repository's default log. A record that
cannot be written rejects the push (warns in audit mode). When ``settings.state`` names a database
(docs/servers.md), the replay store and the audit chain are there; a push whose state cannot be reached is
rejected (warned in audit mode) and recorded in the local log, since the database cannot hold it.
Run as ``python -m stepup_git.hook``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from .chained import chained_hook_beside, run_chained
from .environment import pusher_from, shared_cache_dir
from .errors import AuditError, PolicyError, StateError, StepupError
from .git import Repo
from .model import Update
from .progress import AFTER as PROGRESS_AFTER
from .progress import Progress

if TYPE_CHECKING:
    from .policy import Settings
    from .state.chain import PostgresAuditLog
    from .state.replay import PostgresReplayStore

PREFIX = "stepup-git"
DEFAULT_TIMEOUT = 120
TIMED_OUT = "the policy check did not finish in time"


class _Deadline(BaseException):
    """The hook's time is up. Not an ``Exception``: no library's ``except Exception`` (a fallback from
    one verifier to another, a retry) can swallow it and go on without a deadline."""


class _Alarm:
    """The deadline, on SIGALRM. Once disarmed it cannot fire, even from a signal already pending."""

    def __init__(self) -> None:
        self.armed = False
        signal.signal(signal.SIGALRM, self._fire)

    def arm(self, seconds: int) -> None:
        self.armed = True
        signal.alarm(max(1, seconds))

    def disarm(self) -> None:
        self.armed = False
        signal.alarm(0)

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self.armed = False
            raise _Deadline()


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the push comes to, before anything is written: the records, the lines, the exit code."""

    code: int
    lines: tuple[str, ...]
    records: tuple[dict[str, Any], ...] = ()
    log: Path | None = None
    syslog: bool = False
    chain: PostgresAuditLog | None = None  # the shared audit chain, instead of ``log`` (which is then the fallback)


class _Push:
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

    def failed(self, reason: str, *, mode: str | None = None, local: bool = False) -> _Outcome:
        """One line for the pusher and an ``error`` record per update (one for the input as a whole
        when it could not be read), in the shared chain (unless ``local``: the database is what
        failed), else the policy's log or the repository's default log."""
        mode = mode or self.mode
        reason = " ".join(reason.split())
        line = _fail_line(mode, reason)
        log = self.log
        if log is None and self.git_dir is not None and _is_repository(self.git_dir):
            from .audit import default_log

            log = default_log(self.git_dir)
        if log is None:
            return _Outcome(0 if mode == "audit" else 1, (line,))
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
        return _Outcome(0 if mode == "audit" else 1, (line,), tuple(records), log, self.syslog, chain)


def main(stdin: bytes, env: Mapping[str, str], now: datetime, out: TextIO | None = None,
         launcher: Path | None = None, progress_after: float = PROGRESS_AFTER) -> int:
    """Judge the push that ``stdin`` (the hook's input) describes, with ``env`` as its environment
    and ``now`` as the time of the push; print to ``out``, with a progress line once judging has taken
    ``progress_after`` seconds; return the exit code for Git."""
    out = out or sys.stderr
    # A file-size limit (RLIMIT_FSIZE) makes a write fail with EFBIG, which the audit log undoes,
    # instead of killing the hook half way through a record.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    push = _Push(dict(env), now)
    push.progress = Progress(out, after=progress_after)
    alarm = _Alarm()
    try:
        try:
            alarm.arm(DEFAULT_TIMEOUT)
            outcome = _run(stdin, push, alarm, launcher)
        finally:
            alarm.disarm()  # from here on nothing can fire: what is recorded is what Git is told
    except _Deadline:
        push.close_state()  # a transaction may have been cut off half way: the next one needs a new connection
        outcome = push.failed(TIMED_OUT)
    except PolicyError as exc:  # the hook cannot know what to protect: rejected whatever the mode
        more = len(exc.problems) - 1
        outcome = push.failed(str(exc) + (f" (and {more} more problem(s))" if more > 0 else ""), mode="enforce")
    except StateError as exc:  # the database cannot hold the record of its own failure
        outcome = push.failed(str(exc), local=True)
    except StepupError as exc:
        outcome = push.failed(str(exc))
    except Exception as exc:  # fail closed on anything unforeseen, without a traceback
        if env.get("STEPUP_DEBUG"):
            import traceback

            traceback.print_exc(file=out)
        outcome = push.failed(f"internal error ({type(exc).__name__}: {exc})")
    try:
        return _finish(outcome, push, out)
    finally:
        push.close_state()


def _finish(outcome: _Outcome, push: _Push, out: TextIO) -> int:
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
            code, lines = max(code, 0 if mode == "audit" else 1), [_fail_line(mode, reason)]
            if outcome.log is not None:
                with suppress(AuditError):  # nowhere left to record it: the pusher is told all the same
                    audit.append(outcome.log, _not_recorded(outcome.records, reason), syslog=outcome.syslog)
        except AuditError as exc:
            code, lines = (0 if mode == "audit" else 1), [_fail_line(mode, " ".join(str(exc).split()))]
    for line in lines:
        print(visible(line), file=out)
    return code


def _not_recorded(records: Sequence[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    """The records the state database could not take, as ``error`` records for the local log."""
    return [{**r, "decision": "error", "error": f"{r['error']}; {reason}" if r.get("error") else reason}
            for r in records]


def _fail_line(mode: str, reason: str) -> str:
    if mode == "audit":
        return f"{PREFIX}: WARNING (audit mode): {reason}; the push is accepted"
    return f"{PREFIX}: push rejected: {reason}"


def _is_repository(git_dir: Path) -> bool:
    return (git_dir / "HEAD").is_file() and (git_dir / "objects").is_dir()


def _run(raw: bytes, push: _Push, alarm: _Alarm, launcher: Path | None) -> _Outcome:
    from .git import Repo, parse_updates

    repo = Repo(push.env.get("GIT_DIR") or ".", env=push.env, from_env=True)
    if push.progress is not None:
        repo.progress = push.progress.tick
    try:
        push.git_dir = Path(repo.path)
        # Split at \n only, and keep every byte: a ref name that is not UTF-8 is judged and
        # recorded as what it is (docs/semantics.md, "Failing closed"; docs/semantics.md, "The audit log").
        push.updates = parse_updates(raw.decode("utf-8", "surrogateescape"))
        return _judge(repo, push.updates, raw, push, alarm, launcher)
    finally:
        repo.close()


def _judge(repo: Repo, updates: list[Update], raw: bytes, push: _Push, alarm: _Alarm,
           launcher: Path | None) -> _Outcome:
    from . import policy as policy_mod

    env, now = push.env, push.now
    git_dir = Path(repo.path)
    policy_file = policy_mod.configured_policy_path(git_dir, repo.config("stepup.policy"))
    if policy_file is None:
        raise PolicyError([f"no policy configured for {git_dir} (run: stepup-git install {git_dir} --policy FILE)"])
    shared = shared_cache_dir(env)
    policy = policy_mod.load(policy_file, cache_dir=shared or git_dir / "stepup")  # errors reject in any mode
    state_dir = git_dir / "stepup"
    push.log = policy.settings.audit_log or state_dir / "audit.jsonl"
    push.syslog = policy.settings.syslog
    push.pusher_env = policy.settings.pusher_env
    mode = repo.config("stepup.mode") or policy.settings.mode
    if mode not in policy_mod.MODES:
        raise PolicyError([f"git config stepup.mode is {mode!r}; use enforce or audit"])
    push.mode = mode
    push.timeout = policy.settings.timeout.total_seconds()
    alarm.arm(int(push.timeout))
    from .state import names_database

    replay = push.open_state(policy.settings, git_dir) if names_database(policy.settings.state) else None

    pusher = pusher_from(env, policy.settings.pusher_env)

    chained = repo.config("stepup.chain") or chained_hook_beside(launcher)
    chained_code = run_chained(chained, raw, env) if chained else 0

    from .evaluate import Session, audit_record
    from .render import render

    session = Session.open(policy, repo, state_dir, now=now, shared_dir=shared)
    certificate = None
    if env.get("GIT_PUSH_CERT", "").strip():  # only signed pushes load the certificate machinery
        from .proofs.pushcert import from_environment

        certificate = from_environment(env, session, now, replay)
    verdicts = session.judge(updates, now=now, pusher=pusher, push_cert=certificate)
    if policy.settings.break_glass is not None:
        from .breakglass import apply

        verdicts = apply(verdicts, certificate, policy, now)
    allowed = all(v.accepted for v in verdicts) and chained_code == 0
    accepted = allowed or (mode == "audit" and chained_code == 0)
    if certificate is not None:
        certificate.commit_use(verdicts, accepted)

    nonce = env.get("GIT_PUSH_CERT_NONCE_STATUS") or None
    extra: dict[str, object] = {"push_cert": certificate.blob_id} if certificate is not None else {}
    if chained:
        extra["chained_hook_exit"] = chained_code
    records = [audit_record(v, now=now, repo=str(git_dir), pusher=pusher, mode=mode, nonce_status=nonce,
                            extra=extra) for v in verdicts]
    for written, verdict in zip(records, verdicts, strict=True):
        if verdict.error is not None:  # the update could not be judged: an error, whatever the mode
            written["decision"] = "error"
        elif chained_code != 0:  # the chained hook's refusal rejects every update
            written["decision"] = "reject"

    lines = render(verdicts, mode=mode)
    if chained_code != 0:
        lines = [f"{PREFIX}: push rejected: the chained pre-receive hook {chained} exited {chained_code}",
                 *(line for line in lines if not line.startswith(f"{PREFIX}: push accepted"))]
    # No enforcement decision without its record: written (after the deadline is disarmed) by _finish.
    return _Outcome(0 if accepted else 1, tuple(lines), tuple(records), push.log, push.syslog, push.chain)


HOOK_TYPES = ("pre-receive", "pre-push")


def entry(argv: Sequence[str]) -> int:
    """``--hook-type TYPE LAUNCHER [ARGS...]``, as the launcher calls it: ``pre-receive`` judges the push
    (a chained hook is looked for beside the launcher), ``pre-push`` predicts it on a client. The hook's
    edge: stdin, the environment and the clock are read here, once, and passed in as values."""
    args = list(argv)
    hook_type = "pre-receive"
    if args[:1] == ["--hook-type"]:
        if len(args) < 2 or args[1] not in HOOK_TYPES:
            print(f"{PREFIX}: the hook launcher names an unknown hook type; expected one of "
                  f"{', '.join(HOOK_TYPES)}", file=sys.stderr)
            return 1
        hook_type, args = args[1], args[2:]
    launcher = Path(args[0]) if args else None
    if argv[:1] != ["--hook-type"] and launcher is not None and launcher.name == "pre-push":
        hook_type = "pre-push"  # a launcher written before the type was passed explicitly
    if hook_type == "pre-push":
        from .prepush import main as prepush

        return prepush(args[1:], sys.stdin.read(), os.environ, datetime.now(UTC), sys.stderr)
    stdin = sys.stdin.buffer.read()
    return main(stdin, os.environ, datetime.now(UTC), launcher=launcher)


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
