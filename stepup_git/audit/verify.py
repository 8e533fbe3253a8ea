"""Verifying the audit log's hash chain, alone or against a head kept elsewhere (``--head``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import AuditError
from .log import GENESIS, HeadFile, beside, canonical, load_head, locked, parse_line, record_hash


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``verify`` found. ``count``: intact records before the first problem (all when
    ``ok``); ``line``: the 1-based first bad line, None for a problem at the end of the log."""

    ok: bool
    count: int
    line: int | None
    message: str


def plural(count: int) -> str:
    """``1 record``, ``N records``."""
    return f"{count} record" + ("" if count == 1 else "s")


@dataclass(frozen=True, slots=True)
class Head:
    """A head kept away from the log (``audit verify --head HASH[:COUNT]``): the hash of a record
    the chain must hold and, when known, how many records it had then."""

    hash: str
    count: int | None = None


def parse_head(text: str) -> Head:
    """``HASH`` or ``HASH:COUNT`` (a syslog line's ``head=``); ValueError when it is neither."""
    digest, sep, number = text.strip().partition(":")
    digest = digest.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{text!r} is not HASH[:COUNT] with a 64-digit SHA-256 hash")
    if not sep:
        return Head(digest)
    if not number.isdigit() or not number.isascii():
        raise ValueError(f"{text!r}: the count after ':' is not a number")
    return Head(digest, int(number))


def verify(log_path: Path, expected: Head | None = None) -> Verification:
    """Check each line, then the head file against the end of the log, then (given) a head kept
    elsewhere; stop at the first problem.

    A log that does not exist fails (with or without its head file), and so does an empty log
    without a head file: a chain is intact only when something vouches for where it ends. A head
    kept elsewhere must be in the chain (at its count, when given): the log is what it was then, or
    that plus records appended since. ``AuditError`` when the log or the head file exists but
    cannot be read.
    """
    head_path = beside(log_path, ".head")
    chain = ChainCheck(expected)
    try:
        with locked(log_path, exclusive=False):
            try:
                head, problem = load_head(head_path), "the head file is missing"
            except ValueError as exc:
                head, problem = None, f"the head file is not valid: {exc}"
            if not log_path.exists():
                message = ("the log file is missing" if head_path.exists()
                           else "the log file and its head file do not exist")
                return Verification(False, 0, None, f"end of log: {message}")
            with log_path.open("rb") as log:
                for number, raw in enumerate(log, start=1):
                    bad = chain.add(number, raw)
                    if bad:
                        return bad
    except OSError as exc:
        raise AuditError(f"cannot read the audit log {log_path}: {exc.strerror or exc}") from exc
    if head is None:
        return Verification(False, chain.count, None, f"end of log: {problem}")
    return chain.end(head, "head file")


class ChainCheck:
    """Steps 1 to 6 over a chain's lines, whether they come from the log file or the database: ``add``
    each line in order, then ``end`` with the head kept beside the chain (the head file or row).
    ``count`` and ``prev``: the intact records so far and the last one's hash; ``found``: the record
    count at which the head kept elsewhere (``expected``) was seen, None while it was not."""

    def __init__(self, expected: Head | None) -> None:
        self.expected = expected
        self.count, self.prev = 0, GENESIS
        self.found = 0 if expected is not None and expected.hash == GENESIS else None

    def add(self, number: int, raw: bytes) -> Verification | None:
        """Steps 1 to 4 for line ``number`` (with its newline); the failed verification, or None."""
        bad = check_line(number, raw, self.prev)
        if bad:
            return Verification(False, self.count, number, f"line {number}: {bad}")
        self.count, self.prev = self.count + 1, json.loads(raw)["hash"]
        if self.found is None and self.expected is not None and self.prev == self.expected.hash:
            self.found = self.count
        return None

    def end(self, head: HeadFile, kept: str) -> Verification:
        """Steps 5 and 6 once every line is in; ``kept`` names where ``head`` is kept (``head file``)."""
        count, prev, expected, found = self.count, self.prev, self.expected, self.found
        # Step 5: the head file (row) names the same last record and count as the log.
        if head != HeadFile(prev, count):
            why = ("records removed from the end" if head.count > count
                   else f"records added without updating the {kept}" if head.count < count
                   else f"last record replaced or {kept} edited")
            return Verification(False, count, None, f"end of log: the {kept} records "
                                f"{plural(head.count)} ending in {head.hash[:12]}…, the log has "
                                f"{ending(count, prev)} ({why})")
        intact = f"audit log intact: {plural(count)}"
        if expected is None:
            return Verification(True, count, None, intact)
        # Step 6: the head kept elsewhere is in the chain, at its count.
        given = expected.hash[:12] + "…" + (f":{expected.count}" if expected.count is not None else "")
        if found is None:
            return Verification(False, count, None, f"end of log: the given head {given} is not in "
                                f"the log, which has {ending(count, prev)} (the chain was rewritten "
                                "or cut short)")
        if expected.count is not None and found != expected.count:
            return Verification(False, count, None, f"end of log: the given head {given} is record "
                                f"{found} of the log, not record {expected.count} (records removed "
                                "or inserted before it, the chain rewritten)")
        after = count - found
        return Verification(True, count, None, intact + (
            ", ending in the given head" if after == 0
            else f", {plural(after)} after the given head (record {found})"))


def ending(count: int, last: str) -> str:
    """``N ending in HASH…`` for a chain of N records, ``0`` for none."""
    return f"{count} ending in {last[:12]}…" if count else "0"


def check_line(number: int, raw: bytes, prev: str) -> str | None:
    """What is wrong with one log line given the previous record's hash; None when intact."""
    # Step 1: the line is a JSON object with a hash.
    try:
        record = parse_line(raw)
    except (ValueError, RecursionError):
        return "not valid JSON"
    if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
        return "not a record with a hash"
    # Step 2: the hash is the hash of the content.
    if record_hash({k: v for k, v in record.items() if k != "hash"}) != record["hash"]:
        return "hash does not match its content (record edited)"
    # Step 3: the line is exactly the record's canonical JSON (no duplicate keys, no cut-off).
    if raw != canonical(record) + b"\n":
        return "not in canonical form (record edited or cut short)"
    # Step 4: the record links to the one before it.
    if record.get("prev") != prev:
        return ("prev is not the genesis value (records removed from the start)" if number == 1
                else f"prev does not match line {number - 1}'s hash (record removed or reordered)")
    return None
