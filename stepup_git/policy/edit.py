"""Editing the ``[[keys]]`` tables of a policy file while keeping the rest of its text (README.md, "Commands").

A new ``[[keys]]`` table is rendered with tomlkit and spliced in after the last listed key, and a
removed table is cut out by its lines, so every comment, blank line and ordering outside the changed
table stays byte for byte. (tomlkit's own array-of-tables editing would hand the comment above the next
section to the wrong table, or drop it with a removed key.) Each edit is then proven before the policy
file is replaced atomically:

1. the new text parses to exactly the old data with that one change (else the layout is refused);
2. ``policy check`` of the new text, beside the original, reports no error that the original lacked;
3. the policy file has not changed since it was read.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import tomlkit

from ..errors import PolicyError, StepupError
from .check import check_policy
from .model import Policy

_KEYS_HEADER = re.compile(r"""[ \t]*\[\[[ \t]*(keys|"keys"|'keys')[ \t]*\]\][ \t]*(#.*)?\s*\Z""")
_RULES_HEADER = re.compile(r"""[ \t]*\[\[[ \t]*(rules|"rules"|'rules')[ \t]*\]\]""")
_ANY_HEADER = re.compile(r"[ \t]*\[")


def with_key(text: str, policy: Policy, entry: dict[str, Any], comment: str | None) -> str:
    """The policy text with a ``[[keys]]`` table for ``entry`` after the last listed key (step 1 done)."""
    expected = tomllib.loads(text)
    expected.setdefault("keys", []).append(dict(entry))
    new_text = _insert(text, _render(entry, comment, _newline(text)), _spans(text, policy))
    _prove(new_text, expected, policy.path)
    return new_text


def without_keys(text: str, policy: Policy, gone: set[str]) -> str:
    """The policy text without the ``[[keys]]`` tables of the key ids ``gone`` (step 1 done)."""
    expected = tomllib.loads(text)
    expected["keys"] = [e for e, k in zip(expected["keys"], policy.keys, strict=True) if k.id not in gone]
    if not expected["keys"]:
        del expected["keys"]
    spans = _spans(text, policy)
    lines = text.splitlines(keepends=True)
    for index in sorted((i for i, k in enumerate(policy.keys) if k.id in gone), reverse=True):
        _cut(lines, spans[index])
    new_text = "".join(lines)
    _prove(new_text, expected, policy.path)
    return new_text


def replace_checked(shown: Path, real: Path, original: bytes, new_text: str) -> None:
    """Steps 2 and 3: check the new text beside the original, then replace the original atomically."""
    before = {_message(p, real) for p in check_policy(real)[0]}
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(new_text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        shutil.copymode(real, tmp)
        errors = [p.replace(str(tmp), str(shown)) for p in check_policy(tmp)[0]
                  if _message(p, tmp) not in before]
        if errors:
            raise PolicyError([f"{shown}: nothing was changed: the edit would make the policy invalid", *errors])
        if real.read_bytes() != original:
            raise StepupError(f"{shown} changed while it was being edited; nothing was changed, try again")
        os.replace(tmp, real)
    finally:
        tmp.unlink(missing_ok=True)


def _render(entry: dict[str, Any], comment: str | None, newline: str) -> str:
    table = tomlkit.table()
    for name, value in entry.items():
        table.add(name, value)
    if comment:
        table[next(iter(entry))].comment(comment)
    aot = tomlkit.aot()
    aot.append(table)
    doc = tomlkit.document()
    doc.append("keys", aot)
    return doc.as_string().replace("\n", newline)


def _insert(text: str, table: str, spans: list[tuple[int, int]]) -> str:
    """The text with ``table`` after the last ``[[keys]]`` (or before the first ``[[rules]]``)."""
    newline = _newline(text)
    lines = text.splitlines(keepends=True)
    if spans:
        at = spans[-1][1]
    else:
        first_rule = next((i for i, line in enumerate(lines) if _RULES_HEADER.match(line)), None)
        if first_rule is not None:
            at = first_rule
            while at > 0 and lines[at - 1].lstrip().startswith("#"):
                at -= 1
            before = "".join(lines[:at])
            sep = newline if before and lines[at - 1].strip() else ""
            return before + sep + table + newline + "".join(lines[at:])
        at = len(lines)
    head, tail = lines[:at], lines[at:]
    if head and not head[-1].endswith("\n"):
        head[-1] += newline
    return "".join(head) + (newline if head else "") + table + "".join(tail)


def _cut(lines: list[str], span: tuple[int, int]) -> None:
    start, end = span
    if start > 0 and not lines[start - 1].strip():
        start -= 1
    elif end < len(lines) and not lines[end].strip():
        end += 1
    del lines[start:end]


def _spans(text: str, policy: Policy) -> list[tuple[int, int]]:
    """Per ``[[keys]]`` table, in order: (header line index, index after its last key/value line)."""
    lines = text.splitlines(keepends=True)
    spans = []
    for i, line in enumerate(lines):
        if _KEYS_HEADER.match(line):
            end = i + 1
            for j in range(i + 1, len(lines)):
                if _ANY_HEADER.match(lines[j]):
                    break
                if lines[j].strip() and not lines[j].lstrip().startswith("#"):
                    end = j + 1
            spans.append((i, end))
    if len(spans) != len(policy.keys):
        raise StepupError(f"{policy.path}: cannot find each key as a [[keys]] table in the text "
                          f"({len(spans)} tables for {len(policy.keys)} keys); edit the file by hand")
    return spans


def _prove(new_text: str, expected: dict[str, Any], path: Path) -> None:
    """Step 1: the edited text means exactly the intended data."""
    try:
        got = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError:
        got = None
    if got != expected:
        raise StepupError(f"{path}: the [[keys]] tables are laid out in a way this command cannot edit "
                          "safely; nothing was changed, edit the file by hand")


def _message(problem: str, path: Path) -> str:
    """A problem without its ``PATH:LINE:`` prefix, to compare problems across two files."""
    rest = problem.removeprefix(f"{path}:")
    return re.sub(r"^\d+: ", "", rest)


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"
