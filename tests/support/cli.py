"""Run the `stepup-git` command line of the package under test, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

from . import run


def stepup(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """`python -m stepup_git ARGS` in the isolated environment; never raises on a non-zero exit,
    but a traceback (an unhandled error) fails the test."""
    argv = [sys.executable, "-m", "stepup_git", *(os.fspath(arg) for arg in args)]
    proc = run(argv, check=False)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    return proc
