"""The tamper-evident audit log: hash-chained JSON Lines plus a head file (docs/semantics.md).

Each line is the canonical JSON of one record. ``prev`` is the previous record's ``hash``
(``GENESIS`` for the first); ``hash`` is the SHA-256 of the canonical JSON of the record without
``hash``. The head file ``<log>.head`` holds ``{"count": N, "hash": <last hash>}`` so that records
removed from the end, or the whole log, are detected too. Writers hold ``flock`` on ``<log>.lock``.
This module writes the log; :mod:`.verify` checks it and :mod:`.show` reads it for people.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AuditError
from ..text import visible

Record = dict[str, Any]

GENESIS = "0" * 64


def canonical(record: Mapping[str, object]) -> bytes:
    """The record as canonical JSON: keys sorted, no spaces, UTF-8 (not ASCII-escaped).

    Text that was not UTF-8 (a path or ref name decoded with ``surrogateescape``, so the byte 0xff is
    the lone surrogate U+DCFF) is written as the JSON escape ``\\udcff``: ``json.loads`` gives the
    surrogate back, and ``.encode("utf-8", "surrogateescape")`` the original bytes. The characters
    besides ``\\n`` that some readers end a line at (U+0085, U+2028, U+2029; JSON escapes the
    control characters) are escaped too, so that a record is one line for every reader.
    """
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    if not text.isascii():
        text = text.translate(_LINE_BREAKS)
    return text.encode("utf-8", "backslashreplace")


_LINE_BREAKS = {code: f"\\u{code:04x}" for code in (0x85, 0x2028, 0x2029)}


def record_hash(record_without_hash: Mapping[str, object]) -> str:
    """SHA-256 hex digest of the canonical JSON of a record that has no ``hash`` key."""
    return hashlib.sha256(canonical(record_without_hash)).hexdigest()


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_line(raw: bytes) -> object:
    """Strict JSON: no NaN or Infinity, which canonical JSON cannot hold."""
    return json.loads(raw, parse_constant=_no_constant)


def beside(log_path: Path, suffix: str) -> Path:
    return log_path.with_name(log_path.name + suffix)


@dataclass(frozen=True, slots=True)
class HeadFile:
    hash: str
    count: int


def load_head(path: Path) -> HeadFile | None:
    """The head file's content; None when it does not exist; ValueError when it is not valid."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    digest, count = (data.get("hash"), data.get("count")) if isinstance(data, dict) else (0, 0)
    if not isinstance(digest, str) or len(digest) != 64 or type(count) is not int or count < 0:
        raise ValueError("it needs a 64-digit hash and a count")
    return HeadFile(digest, count)


def head_from_log(log_path: Path) -> HeadFile:
    """The chain's end read from the log itself, for when the head file is missing or invalid."""
    head = HeadFile(GENESIS, 0)
    if log_path.is_file():
        for raw in log_path.read_bytes().splitlines():
            try:
                digest = json.loads(raw).get("hash")
            except (ValueError, AttributeError):
                digest = None
            head = HeadFile(digest if isinstance(digest, str) else head.hash, head.count + 1)
    return head


@contextmanager
def locked(log_path: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold ``flock`` on ``<log>.lock``; a reader goes on unlocked when there is no lock file."""
    flags = os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY
    try:
        fd = os.open(beside(log_path, ".lock"), flags | os.O_CLOEXEC, 0o640)
    except OSError:
        if exclusive:
            raise
        fd = -1
    try:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (one ``write`` unless it comes up short) and fsync."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _replace_head(head_path: Path, content: bytes | None) -> None:
    """Put ``content`` in the head file atomically (temporary file, fsync, rename); None removes it."""
    if content is None:
        head_path.unlink(missing_ok=True)
        return
    tmp = head_path.with_name(f"{head_path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            _write_all(fd, content)
        finally:
            os.close(fd)
        os.replace(tmp, head_path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


def _write_chained(log_path: Path, lines: bytes, head: bytes) -> None:
    """Append ``lines`` to the log and make ``head`` its head file, or leave both as they were.

    A write that fails (disk full, file-size limit, I/O error, the process interrupted) is undone
    before the lock is released: the log is cut back to its size before, the head file restored.
    """
    head_path = beside(log_path, ".head")
    before = _read_or_none(head_path)
    fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:
        size = os.fstat(fd).st_size
        replaced = False
        try:
            if size and os.pread(fd, 1, size - 1) != b"\n":
                lines = b"\n" + lines  # a line cut short by a crash stays a line of its own
            _write_all(fd, lines)
            _replace_head(head_path, head)
            replaced = True
            _fsync_dir(log_path.parent)
        except BaseException:
            with suppress(OSError):
                os.ftruncate(fd, size)
                os.fsync(fd)
            if replaced:
                with suppress(OSError):
                    _replace_head(head_path, before)
            raise
    finally:
        os.close(fd)


def append(log_path: Path, records: Sequence[Mapping[str, object]], *,
           syslog: bool = False) -> list[Record]:
    """Chain ``records`` onto the log; return them as written (with ``prev`` and ``hash``).

    Under the lock: read the head file (without a valid one, the log's last line), chain the
    records from it even when the log disagrees (``verify`` reports that), write all lines with one
    ``O_APPEND`` write and fsync, then replace the head file atomically; a write that fails leaves
    the log and the head file byte for byte as they were. Each record is chained as it reads back
    from its line (JSON types, text as ``json.loads`` gives it), so that its hash verifies.
    Caller-provided ``prev`` and ``hash`` are overwritten. ``AuditError`` when the log cannot be
    written. With ``syslog`` a one-line summary per record, with its hash and place in the chain
    (``head=HASH:COUNT``, what ``audit verify --head`` takes), also goes to syslog (LOG_AUTH);
    failures there are ignored.
    """
    if not records:
        return []
    where = f"cannot write the audit log {log_path}"
    parent = log_path.parent
    try:
        if parent.exists() and not parent.is_dir():
            raise AuditError(f"{where}: {parent} is not a directory")
        parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        with locked(log_path, exclusive=True):
            try:
                head = load_head(beside(log_path, ".head")) or head_from_log(log_path)
            except ValueError:
                head = head_from_log(log_path)
            written: list[Record] = []
            prev = head.hash
            for record in records:
                body: Record = json.loads(canonical(
                    {key: value for key, value in record.items() if key not in ("hash", "prev")}))
                body["prev"] = prev
                prev = record_hash(body)
                written.append({**body, "hash": prev})
            lines = b"".join(canonical(record) + b"\n" for record in written)
            _write_chained(log_path, lines,
                           canonical({"count": head.count + len(written), "hash": prev}))
            first = head.count + 1
    except OSError as exc:
        raise AuditError(f"{where}: {exc.strerror or exc}") from exc
    except (TypeError, ValueError) as exc:
        raise AuditError(f"{where}: a record is not JSON ({exc})") from exc
    if syslog:
        to_syslog(written, first)
    return written


def to_syslog(records: Iterable[Record], first: int) -> None:
    """One auth-facility syslog line per record, numbered from ``first`` with its ``head=HASH:N``
    (what ``audit verify --head`` takes); syslog failing never stops a push."""
    try:
        import syslog

        syslog.openlog("stepup-git", syslog.LOG_PID, syslog.LOG_AUTH)
        for number, r in enumerate(records, start=first):
            line = (f"audit {r.get('decision')} {r.get('action')} {r.get('ref')} by "
                    f"{r.get('pusher')} in {r.get('repo')} {short_id(r.get('old'))}.."
                    f"{short_id(r.get('new'))} head={r.get('hash')}:{number}")
            syslog.syslog(syslog.LOG_INFO, visible(line))
    except (ImportError, OSError, ValueError, TypeError):
        pass


def short_id(oid: object) -> str:
    """An object id cut to 8 hex digits for people; ``-`` for none."""
    return oid[:8] if isinstance(oid, str) and oid else "-"
