"""Run an outside program (gpg, ssh-keygen, gitolite) to its end, within a time limit.

Every way such a call can go wrong becomes one error of the caller's layer with a one-line message:
the program is missing or cannot be started, it does not answer in time, or it exits with a status
the caller does not accept.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Collection, Mapping, Sequence

from .errors import StepupError

DETAIL_LIMIT = 300  # characters of a failing program's output quoted in the error


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float,
    ok: Collection[int] | None = (0,),
    error: type[StepupError] = StepupError,
    install_hint: str | None = None,
    name: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` with ``input`` on its stdin and its output captured; wait at most ``timeout`` seconds.

    ``ok`` holds the exit statuses that are not failures (None: the caller judges every status). Raises
    ``error`` when the program cannot be found or started (``install_hint`` says how to get it), when it
    does not finish in time (it is killed), or when it exits with a status outside ``ok``. A missing
    program is named by its file name, a timeout or a failure by ``name`` (e.g. "gitolite setup --hooks-only";
    default: the file name).
    """
    program = os.path.basename(argv[0])
    name = name or program
    try:
        proc = subprocess.run(list(argv), input=input, env=None if env is None else dict(env),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise error(f"{name} did not answer within {timeout:g}s") from None
    except FileNotFoundError:
        hint = f" ({install_hint})" if install_hint else ""
        raise error(f"{program} is not installed on the server{hint}") from None
    except OSError as exc:
        raise error(f"cannot run {program}: {exc.strerror or exc}") from None
    if ok is not None and proc.returncode not in ok:
        detail = " ".join((proc.stderr or proc.stdout).decode(errors="replace").split())[:DETAIL_LIMIT]
        raise error(f"{name} failed (exit status {proc.returncode})" + (f": {detail}" if detail else ""))
    return proc
