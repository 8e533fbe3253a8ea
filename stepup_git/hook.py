"""The pre-receive hook entry: gather stdin and the environment, judge, audit, print, exit 0 or 1.

Fails closed: any error, timeout or unreadable policy rejects the push with one line (in audit mode an
error inside judging warns and accepts, but a policy that cannot be loaded always rejects: the hook
cannot know what to protect). Run as ``python -m stepup_git.hook``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from .errors import PolicyError, StepupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from .gitrepo import Repo, Update

PREFIX = "stepup-git"
CHAINED = "pre-receive.stepup-chained"  # where install --chain keeps a foreign pre-receive hook
DEFAULT_TIMEOUT = 120


class _Deadline(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _Deadline()


def shared_cache_dir(env: Mapping[str, str]) -> Path | None:
    """The server user's cache folder for what depends only on content (keyring homes, compiled path
    patterns), so a new repository does not build them again; None when there is no private one."""
    base = env.get("XDG_CACHE_HOME") or (str(Path(env["HOME"]) / ".cache") if env.get("HOME") else "")
    if not base or not os.path.isabs(base):
        return None
    path = Path(base) / "stepup-git"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022 or not os.access(path, os.W_OK | os.X_OK):
        return None  # not ours alone: keep everything in the repository's own folder
    return path


def pusher_from(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first set, non-empty variable of ``names`` (SPEC §5.4)."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def main(stdin: bytes | None = None, env: Mapping[str, str] | None = None, out: TextIO | None = None,
         launcher: Path | None = None) -> int:
    env = dict(os.environ if env is None else env)
    out = out or sys.stderr
    raw = sys.stdin.buffer.read() if stdin is None else stdin
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(DEFAULT_TIMEOUT)
    state = {"mode": "enforce"}  # becomes the policy's mode once the policy has loaded
    try:
        return _run(raw, env, out, state, launcher)
    except _Deadline:
        return _fail(out, state["mode"], "the policy check did not finish in time")
    except PolicyError as exc:  # the hook cannot know what to protect: rejected whatever the mode
        more = len(exc.problems) - 1
        return _fail(out, "enforce", str(exc) + (f" (and {more} more problem(s))" if more > 0 else ""))
    except StepupError as exc:
        return _fail(out, state["mode"], str(exc))
    except Exception as exc:  # fail closed on anything unforeseen, without a traceback
        if env.get("STEPUP_DEBUG"):
            import traceback

            traceback.print_exc(file=out)
        return _fail(out, state["mode"], f"internal error ({type(exc).__name__}: {exc})")
    finally:
        signal.alarm(0)


def _fail(out: TextIO, mode: str, reason: str) -> int:
    reason = " ".join(reason.split())
    if mode == "audit":
        print(f"{PREFIX}: WARNING (audit mode): {reason}; the push is accepted", file=out)
        return 0
    print(f"{PREFIX}: push rejected: {reason}", file=out)
    return 1


def _run(raw: bytes, env: dict[str, str], out: TextIO, state: dict[str, str], launcher: Path | None) -> int:
    from .errors import GitError
    from .gitrepo import Repo, parse_updates

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GitError("the hook's input is not UTF-8 text") from None
    updates = parse_updates(text)

    repo = Repo(env.get("GIT_DIR") or ".", env=env, from_env=True)  # the quarantine comes from env
    try:
        return _judge(repo, updates, raw, env, out, state, launcher)
    finally:
        repo.close()


def _judge(repo: Repo, updates: list[Update], raw: bytes, env: dict[str, str], out: TextIO, state: dict[str, str],
           launcher: Path | None) -> int:
    from . import policy as policy_mod

    git_dir = Path(repo.path)
    policy_path = repo.config("stepup.policy")
    if not policy_path:
        raise PolicyError([f"no policy configured for {git_dir} (run: stepup-git install {git_dir} --policy FILE)"])
    policy_file = Path(policy_path) if os.path.isabs(policy_path) else git_dir / policy_path
    shared = shared_cache_dir(env)
    policy = policy_mod.load(policy_file, cache_dir=shared or git_dir / "stepup")  # errors reject in any mode
    mode = repo.config("stepup.mode") or policy.settings.mode
    if mode not in policy_mod.MODES:
        raise PolicyError([f"git config stepup.mode is {mode!r}; use enforce or audit"])
    state["mode"] = mode
    signal.alarm(max(1, int(policy.settings.timeout.total_seconds())))

    now = datetime.now(UTC)
    pusher = pusher_from(env, policy.settings.pusher_env)
    state_dir = git_dir / "stepup"

    chained = repo.config("stepup.chain") or _beside(launcher)
    chained_code = _run_chained(chained, raw, env) if chained else 0

    from .evaluate import Session, audit_record
    from .findings import render

    session = Session.open(policy, repo, state_dir, now=now, shared_dir=shared)
    certificate = None
    if env.get("GIT_PUSH_CERT", "").strip():  # only signed pushes load the certificate machinery
        from .pushcert import from_environment

        certificate = from_environment(env, session, now)
    verdicts = session.judge(updates, now=now, pusher=pusher, push_cert=certificate)
    if policy.settings.break_glass is not None:
        from .breakglass import apply

        verdicts = apply(verdicts, certificate, policy, now)
    allowed = all(v.accepted for v in verdicts) and chained_code == 0
    accepted = allowed or (mode == "audit" and chained_code == 0)
    if certificate is not None:
        certificate.commit_use(verdicts, accepted)

    from . import audit

    nonce = env.get("GIT_PUSH_CERT_NONCE_STATUS") or None
    extra: dict[str, object] = {"push_cert": certificate.blob_id} if certificate is not None else {}
    if chained:
        extra["chained_hook_exit"] = chained_code
    records = [audit_record(v, now=now, repo=str(git_dir), pusher=pusher, mode=mode, nonce_status=nonce,
                            extra=extra) for v in verdicts]
    if chained_code != 0:  # the chained hook's refusal rejects every update
        for record in records:
            record["decision"] = "reject"
    log = policy.settings.audit_log or state_dir / "audit.jsonl"
    # No enforcement decision without its record: AuditError rejects the push.
    audit.append(log, records, syslog=policy.settings.syslog)

    lines = render(verdicts, mode=mode)
    if chained_code != 0:
        lines = [f"{PREFIX}: push rejected: the chained pre-receive hook {chained} exited {chained_code}",
                 *(line for line in lines if not line.startswith(f"{PREFIX}: push accepted"))]
    for line in lines:
        print(line, file=out)
    return 0 if accepted else 1


def _beside(launcher: Path | None) -> str | None:
    """A hook that install --chain moved aside next to the launcher (a hooks folder shared by many
    repositories, whose own config may not name it)."""
    if launcher is None:
        return None
    candidate = launcher.parent / CHAINED
    return str(candidate) if candidate.is_file() else None


def _run_chained(path: str, raw: bytes, env: Mapping[str, str]) -> int:
    """Run the pre-receive hook that stepup-git was installed in front of, with the same input."""
    import subprocess

    try:
        proc = subprocess.run([path], input=raw, env=dict(env), check=False, stdout=sys.stderr)
    except OSError as exc:
        raise StepupError(f"cannot run the chained pre-receive hook {path}: {exc.strerror}") from None
    return proc.returncode


def entry(argv: list[str]) -> int:
    """Dispatch on the path the launcher was installed as (its ``$0``): ``pre-push`` on clients, else
    pre-receive, with a chained hook looked for beside the launcher."""
    launcher = Path(argv[0]) if argv else None
    if launcher is not None and launcher.name == "pre-push":
        from .prepush import main as prepush

        return prepush(argv[1:])
    return main(launcher=launcher)


if __name__ == "__main__":
    code = entry(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and closed by now (audit log, caches, git processes): leave without the
    # interpreter's teardown of every loaded module, a few milliseconds of each push.
    os._exit(code)
