"""The pre-receive hook's input: one ``<old> <new> <ref>`` line per update, parsed strictly."""

from __future__ import annotations

import re

from ..errors import GitError
from ..model import Update

OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def parse_updates(text: str) -> list[Update]:
    """Parse the pre-receive input strictly; any malformed line rejects the whole input.

    Lines end at ``\n`` only: a ref name may hold U+2028, U+0085 or other characters that
    ``str.splitlines`` would also split at, and must reach the rules and the audit log whole.
    """
    updates: list[Update] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip(" \t\r"):  # the end of the input, or an empty line (only ASCII blanks)
            continue
        parts = line.split(" ")
        if len(parts) != 3 or not OID.fullmatch(parts[0]) or not OID.fullmatch(parts[1]):
            raise GitError(f"input line {number} is not '<old-id> <new-id> <ref>': {line[:80]!r}")
        old, new, ref = parts
        if len(old) != len(new) or not ref.startswith("refs/") or any(ord(c) < 33 for c in ref):
            raise GitError(f"input line {number} is not '<old-id> <new-id> <ref>': {line[:80]!r}")
        # Two zero ids: a delete of a ref the client says does not exist (git warns and goes on); the
        # judge looks at what the ref is now.
        updates.append(Update.from_ids(old, new, ref))
    if not updates:
        raise GitError("no ref updates on the input")
    return updates
