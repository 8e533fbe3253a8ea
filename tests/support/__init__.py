"""Test support: an isolated, deterministic environment and a runner for real tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

PINNED_DATE = "2024-01-01T00:00:00+00:00"
"""Author and committer date of every object unless a call overrides it."""

TIMEOUT = 120.0
"""Seconds any one subprocess may run before the test fails."""

_STRIP_PREFIXES = ("GIT_", "STEPUP_")
_STRIP_NAMES = frozenset(
    {
        "GNUPGHOME",
        "GPG_AGENT_INFO",
        "GPG_TTY",
        "SSH_AUTH_SOCK",
        "RUST_BACKTRACE",
        "EMAIL",
        "LANG",
        "LANGUAGE",
        # Pusher identities a Git server sets (docs/semantics.md, "The pusher"): tests pass them per push.
        "GL_USERNAME",
        "GITEA_PUSHER_NAME",
        "GL_USER",
        "GITHUB_USER_LOGIN",
        "REMOTE_USER",
    }
)

_home: Path | None = None


class CommandFailed(AssertionError):
    """A command that had to succeed did not; the message carries its output."""


def home() -> Path:
    """The temporary HOME of this test session (created on first use)."""
    global _home
    if _home is None:
        _home = Path(tempfile.mkdtemp(prefix="sghome", dir="/tmp"))
        (_home / "gitconfig").write_text("")
    return _home


def cleanup() -> None:
    """Remove the session HOME (the next `home()` makes a new one)."""
    global _home
    if _home is not None:
        shutil.rmtree(_home, ignore_errors=True)
        _home = None


def isolated_env(overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The caller's environment without Git/GnuPG/stepup settings, with pinned identity.

    An override of None removes that variable.
    """
    base = home()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_STRIP_PREFIXES) and name not in _STRIP_NAMES
    }
    env.update(
        HOME=str(base),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(base / "gitconfig"),
        GIT_AUTHOR_NAME="A U Thor",
        GIT_AUTHOR_EMAIL="author@example.com",
        GIT_AUTHOR_DATE=git_date(PINNED_DATE),
        GIT_COMMITTER_NAME="C O Mitter",
        GIT_COMMITTER_EMAIL="committer@example.com",
        GIT_COMMITTER_DATE=git_date(PINNED_DATE),
        LC_ALL="C",
        TZ="UTC",
    )
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_bytes(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command in the isolated environment; raise CommandFailed when `check` and rc != 0."""
    argv = [os.fspath(arg) for arg in args]
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=isolated_env(env),
        input=input if input is not None else b"",
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"command failed with exit {proc.returncode}: {' '.join(argv)}\n"
            f"--- stdout ---\n{_text(proc.stdout)}\n--- stderr ---\n{_text(proc.stderr)}"
        )
    return proc


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Like `run_bytes`, with text in and out (UTF-8, undecodable bytes escaped)."""
    proc = run_bytes(
        args, cwd=cwd, env=env, input=None if input is None else input.encode(), check=check
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, _text(proc.stdout), _text(proc.stderr)
    )


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


Moment = str | datetime
"""A point in time: an aware/naive (UTC) datetime, ISO 8601 text, or GnuPG's `20200101T000000`."""


def as_datetime(at: Moment) -> datetime:
    """The moment as an aware UTC datetime."""
    if isinstance(at, str):
        at = datetime.fromisoformat(at.rstrip("!").replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC)


def ago(**delta: float) -> datetime:
    """Now minus a `timedelta(**delta)`, e.g. `ago(minutes=20)`; negative values reach ahead."""
    return datetime.now(UTC) - timedelta(**delta)


def gpg_time(at: Moment) -> str:
    """The moment in `--faked-system-time` form, frozen (`20200101T000000!`)."""
    return as_datetime(at).strftime("%Y%m%dT%H%M%S") + "!"


def git_date(at: Moment) -> str:
    """The moment in Git's raw date form (`<unix seconds> +0000`)."""
    return f"{int(as_datetime(at).timestamp())} +0000"
