"""The git command, for what only Git can answer: configuration as Git sees it (it honours
``GIT_CONFIG_PARAMETERS``/``GIT_CONFIG_COUNT``, which forges set and libgit2 ignores) and install's
config writes. Always with ``GIT_NO_REPLACE_OBJECTS=1`` and ``LC_ALL=C``, and a timeout."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from ..errors import GitError

GIT_TIMEOUT = 60  # seconds for one git command (the hook's own deadline is shorter and still fires)
# What is judged is the objects themselves: git must not substitute replace refs, and answers in a
# fixed language.
FIXED_ENV = {"GIT_NO_REPLACE_OBJECTS": "1", "LC_ALL": "C"}


def run_git(git_dir: str, env: Mapping[str, str], *args: str) -> tuple[int, bytes]:
    """(exit status 0 or 1, output) of ``git --git-dir GIT_DIR ARGS``; anything else is a GitError."""
    try:
        proc = subprocess.run(["git", "--git-dir", git_dir, *args], env={**env, **FIXED_ENV}, capture_output=True,
                              timeout=GIT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} did not finish within {GIT_TIMEOUT} s") from None
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror}") from None
    if proc.returncode not in (0, 1):
        raise GitError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
    return proc.returncode, proc.stdout


def config_values(git_dir: str, env: Mapping[str, str]) -> dict[str, str]:
    """Every configuration value git sees for the repository, by lower-cased name."""
    _, out = run_git(git_dir, env, "config", "-z", "--list")
    values: dict[str, str] = {}
    for entry in out.split(b"\0"):
        key, _, value = entry.decode("utf-8", errors="replace").partition("\n")
        if key:
            values[key.lower()] = value
    return values
