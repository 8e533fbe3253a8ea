"""A pre-receive hook that ``stepup-git install --chain`` kept: it runs first, with the same input,
and its refusal rejects the push."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from .errors import StepupError

CHAINED = "pre-receive.stepup-chained"  # where install --chain keeps a foreign pre-receive hook


def chained_hook_beside(launcher: Path | None) -> str | None:
    """A hook that install --chain moved aside next to the launcher (a hooks folder shared by many
    repositories, whose own config may not name it)."""
    if launcher is None:
        return None
    candidate = launcher.parent / CHAINED
    return str(candidate) if candidate.is_file() else None


def run_chained(path: str, raw: bytes, env: Mapping[str, str]) -> int:
    """Run the pre-receive hook that stepup-git was installed in front of, with the same input."""
    try:
        proc = subprocess.run([path], input=raw, env=dict(env), check=False, stdout=sys.stderr)
    except OSError as exc:
        raise StepupError(f"cannot run the chained pre-receive hook {path}: {exc.strerror}") from None
    return proc.returncode
