"""The pre-receive hook entry: gather stdin, the environment and the clock, judge, audit, print, exit.

The order is fixed: judge under the deadline, disarm it, write the audit record, print, exit 0 or 1.
A record therefore always says what Git was told. Fails closed: any error, timeout or unreadable
policy rejects the push with one line, and is itself recorded (decision ``error``). In audit mode an
error inside judging warns and accepts; a policy that cannot be loaded rejects in every mode (the
hook cannot know what to protect) and is recorded in the repository's default log. A record that
cannot be written rejects the push (warns in audit mode). When ``settings.state`` names a database
(docs/servers.md), the replay store and the audit chain are there; a push whose state cannot be reached is
rejected (warned in audit mode) and recorded in the local log, since the database cannot hold it.
The deadline is :mod:`.deadline`; what the push comes to, its records and its lines, :mod:`.outcome`.
Run as ``python -m stepup_git.hook``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from .chained import chained_hook_beside, run_chained
from .deadline import Alarm, Deadline
from .environment import pusher_from, shared_cache_dir
from .errors import PolicyError, StateError, StepupError
from .git import Repo
from .model import Update
from .outcome import DEFAULT_TIMEOUT, PREFIX, Outcome, PushState, finish
from .progress import AFTER as PROGRESS_AFTER
from .progress import Progress

TIMED_OUT = "the policy check did not finish in time"


def main(stdin: bytes, env: Mapping[str, str], now: datetime, out: TextIO | None = None,
         launcher: Path | None = None, progress_after: float = PROGRESS_AFTER) -> int:
    """Judge the push that ``stdin`` (the hook's input) describes, with ``env`` as its environment
    and ``now`` as the time of the push; print to ``out``, with a progress line once judging has taken
    ``progress_after`` seconds; return the exit code for Git."""
    out = out or sys.stderr
    # A file-size limit (RLIMIT_FSIZE) makes a write fail with EFBIG, which the audit log undoes,
    # instead of killing the hook half way through a record.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    push = PushState(dict(env), now)
    push.progress = Progress(out, after=progress_after)
    alarm = Alarm()
    try:
        try:
            alarm.arm(DEFAULT_TIMEOUT)
            outcome = _run(stdin, push, alarm, launcher)
        finally:
            alarm.disarm()  # from here on nothing can fire: what is recorded is what Git is told
    except Deadline:
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
        return finish(outcome, push, out)
    finally:
        push.close_state()


def _run(raw: bytes, push: PushState, alarm: Alarm, launcher: Path | None) -> Outcome:
    from .git import Repo, parse_updates

    repo = Repo(push.env.get("GIT_DIR") or ".", env=push.env, from_env=True)
    if push.progress is not None:
        repo.report_progress(push.progress.tick)
    try:
        push.git_dir = Path(repo.path)
        # Split at \n only, and keep every byte: a ref name that is not UTF-8 is judged and
        # recorded as what it is (docs/semantics.md, "Failing closed"; docs/semantics.md, "The audit log").
        push.updates = parse_updates(raw.decode("utf-8", "surrogateescape"))
        return _judge(repo, push.updates, raw, push, alarm, launcher)
    finally:
        repo.close()


def _judge(repo: Repo, updates: list[Update], raw: bytes, push: PushState, alarm: Alarm,
           launcher: Path | None) -> Outcome:
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
    # No enforcement decision without its record: written (after the deadline is disarmed) by finish.
    return Outcome(0 if accepted else 1, tuple(lines), tuple(records), push.log, push.syslog, push.chain)


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
