"""Findings as the pusher reads them, wrapped to fit 80 columns after `remote: `, joined back into one
line per field for tests that check a phrase whose wrapping depends on lengths that vary between runs
(ages, temporary paths, blob ids). Tests of each kind of message also assert the exact wrapped lines."""

from __future__ import annotations

import re

FIELDS = ("    required: ", "    found:    ", "    fix:      ", "    ... and ", "    note: ")
VALUE = " " * 14  # where required, found and fix write their values
# the label of a found part about one proof, or the rule's count
LABEL = re.compile(r"(push certificate|signers|pusher|tip (?:commit|tag|tree|blob) [^:]*): ")


def _continued_at(line: str) -> str:
    """How deep a continuation of ``line`` is indented."""
    if line.startswith("stepup-git: "):
        return " " * len("stepup-git: ")
    if line.startswith("    ... and "):
        return " " * 8
    if line.startswith("    note: "):
        return " " * 10
    if line.startswith(("    found:    ", VALUE)):
        return VALUE + "  " if LABEL.match(line[len(VALUE):]) else VALUE
    if line.startswith(FIELDS):
        return VALUE
    return "    "  # a finding's first line, or an update that cannot be judged


def unwrap(lines: list[str]) -> list[str]:
    """``lines`` with every continuation joined to the line it continues: one line per finding head,
    ``required``, ``fix`` and found part (the first after ``found:``, the others under it)."""
    out: list[str] = []
    for line in lines:
        if out and line.startswith(_continued_at(out[-1])) and not line.startswith(FIELDS) \
                and line[len(_continued_at(out[-1])):][:1] not in ("", " "):
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return out
