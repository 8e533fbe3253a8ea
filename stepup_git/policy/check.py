"""``stepup-git policy check``: the policy file and its keyring, every problem as ``PATH:LINE: message``."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from ..errors import PolicyError
from ..signatures import Keyring, keyring_problems
from .load import load_with_warnings


def check_policy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a policy and its keyring folder."""
    policy, problems, warnings = load_with_warnings(path)
    if policy is None:
        return problems, warnings
    state = Path(tempfile.mkdtemp(prefix="stepup-check-"))
    try:
        keyring = Keyring.open(policy, state)
        errors, key_warnings = keyring_problems(policy, keyring, datetime.now(UTC))
    except PolicyError as exc:
        return exc.problems, warnings
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return errors, warnings + key_warnings
