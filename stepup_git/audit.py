"""The tamper-evident audit log: hash-chained JSON Lines plus a head file (SPEC.md §8).

Each line is the canonical JSON of one record. ``prev`` is the previous record's ``hash``
(``GENESIS`` for the first); ``hash`` is the SHA-256 of the canonical JSON of the record without
``hash``. The head file ``<log>.head`` holds ``{"count": N, "hash": <last hash>}`` so that records
removed from the end, or the whole log, are detected too. Writers hold ``flock`` on ``<log>.lock``.
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import AuditError, UsageError
from .findings import visible

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


def _parse(raw: bytes) -> object:
    """Strict JSON: no NaN or Infinity, which canonical JSON cannot hold."""
    return json.loads(raw, parse_constant=_no_constant)


def _beside(log_path: Path, suffix: str) -> Path:
    return log_path.with_name(log_path.name + suffix)


@dataclass(frozen=True, slots=True)
class _Head:
    hash: str
    count: int


def _load_head(path: Path) -> _Head | None:
    """The head file's content; None when it does not exist; ValueError when it is not valid."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    digest, count = (data.get("hash"), data.get("count")) if isinstance(data, dict) else (0, 0)
    if not isinstance(digest, str) or len(digest) != 64 or type(count) is not int or count < 0:
        raise ValueError("it needs a 64-digit hash and a count")
    return _Head(digest, count)


def _head_from_log(log_path: Path) -> _Head:
    """The chain's end read from the log itself, for when the head file is missing or invalid."""
    head = _Head(GENESIS, 0)
    if log_path.is_file():
        for raw in log_path.read_bytes().splitlines():
            try:
                digest = json.loads(raw).get("hash")
            except (ValueError, AttributeError):
                digest = None
            head = _Head(digest if isinstance(digest, str) else head.hash, head.count + 1)
    return head


@contextmanager
def _locked(log_path: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold ``flock`` on ``<log>.lock``; a reader goes on unlocked when there is no lock file."""
    flags = os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY
    try:
        fd = os.open(_beside(log_path, ".lock"), flags | os.O_CLOEXEC, 0o640)
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
    head_path = _beside(log_path, ".head")
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
        with _locked(log_path, exclusive=True):
            try:
                head = _load_head(_beside(log_path, ".head")) or _head_from_log(log_path)
            except ValueError:
                head = _head_from_log(log_path)
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
        _to_syslog(written, first)
    return written


def _to_syslog(records: Iterable[Record], first: int) -> None:
    try:
        import syslog

        syslog.openlog("stepup-git", syslog.LOG_PID, syslog.LOG_AUTH)
        for number, r in enumerate(records, start=first):
            line = (f"audit {r.get('decision')} {r.get('action')} {r.get('ref')} by "
                    f"{r.get('pusher')} in {r.get('repo')} {_short(r.get('old'))}.."
                    f"{_short(r.get('new'))} head={r.get('hash')}:{number}")
            syslog.syslog(syslog.LOG_INFO, visible(line))
    except (ImportError, OSError, ValueError, TypeError):
        pass


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``verify`` found. ``count``: intact records before the first problem (all when
    ``ok``); ``line``: the 1-based first bad line, None for a problem at the end of the log."""

    ok: bool
    count: int
    line: int | None
    message: str


def _plural(count: int) -> str:
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
    head_path = _beside(log_path, ".head")
    count, prev = 0, GENESIS
    found = 0 if expected is not None and expected.hash == GENESIS else None
    try:
        with _locked(log_path, exclusive=False):
            try:
                head, problem = _load_head(head_path), "the head file is missing"
            except ValueError as exc:
                head, problem = None, f"the head file is not valid: {exc}"
            if not log_path.exists():
                message = ("the log file is missing" if head_path.exists()
                           else "the log file and its head file do not exist")
                return Verification(False, 0, None, f"end of log: {message}")
            with log_path.open("rb") as log:
                for number, raw in enumerate(log, start=1):
                    bad = _check_line(number, raw, prev)
                    if bad:
                        return Verification(False, count, number, f"line {number}: {bad}")
                    count, prev = count + 1, json.loads(raw)["hash"]
                    if found is None and expected is not None and prev == expected.hash:
                        found = count
    except OSError as exc:
        raise AuditError(f"cannot read the audit log {log_path}: {exc.strerror or exc}") from exc
    # Step 5: the head file names the same last record and count as the log.
    if head is None:
        return Verification(False, count, None, f"end of log: {problem}")
    if head != _Head(prev, count):
        why = ("records removed from the end" if head.count > count
               else "records added without updating the head file" if head.count < count
               else "last record replaced or head file edited")
        return Verification(False, count, None, f"end of log: the head file records "
                            f"{_plural(head.count)} ending in {head.hash[:12]}…, the log has "
                            f"{_ending(count, prev)} ({why})")
    intact = f"audit log intact: {_plural(count)}"
    if expected is None:
        return Verification(True, count, None, intact)
    # Step 6: the head kept elsewhere is in the chain, at its count.
    given = expected.hash[:12] + "…" + (f":{expected.count}" if expected.count is not None else "")
    if found is None:
        return Verification(False, count, None, f"end of log: the given head {given} is not in "
                            f"the log, which has {_ending(count, prev)} (the chain was rewritten "
                            "or cut short)")
    if expected.count is not None and found != expected.count:
        return Verification(False, count, None, f"end of log: the given head {given} is record "
                            f"{found} of the log, not record {expected.count} (records removed "
                            "or inserted before it, the chain rewritten)")
    after = count - found
    return Verification(True, count, None, intact + (
        ", ending in the given head" if after == 0
        else f", {_plural(after)} after the given head (record {found})"))


def _ending(count: int, last: str) -> str:
    return f"{count} ending in {last[:12]}…" if count else "0"


def _check_line(number: int, raw: bytes, prev: str) -> str | None:
    """What is wrong with one log line given the previous record's hash; None when intact."""
    # Step 1: the line is a JSON object with a hash.
    try:
        record = _parse(raw)
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


def read(log_path: Path) -> Iterator[Record]:
    """Yield the log's records in order; none when the log does not exist.

    ``AuditError`` for an unreadable log or a line that is not a JSON object.
    """
    try:
        with log_path.open("rb") as log:
            for number, raw in enumerate(log, start=1):
                try:
                    record = _parse(raw)
                except (ValueError, RecursionError):
                    record = None
                if not isinstance(record, dict):
                    raise AuditError(f"{log_path}:{number}: not a JSON record "
                                     "(see `stepup-git audit verify`)")
                yield record
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AuditError(f"cannot read the audit log {log_path}: {exc.strerror or exc}") from exc


def _parse_time(value: str) -> datetime:
    """An ISO-8601 date or date-time; without a zone it is UTC. ValueError when invalid."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ref_matches(ref: object, pattern: str) -> bool:
    names = [pattern] if pattern.startswith("refs/") else [
        pattern, f"refs/heads/{pattern}", f"refs/tags/{pattern}"]
    return isinstance(ref, str) and any(fnmatch.fnmatchcase(ref, name) for name in names)


def _at_or_after(value: object, since: datetime) -> bool:
    try:
        return isinstance(value, str) and _parse_time(value) >= since
    except ValueError:
        return False


def select(records: Iterable[Record], *, ref: str | None = None, pusher: str | None = None,
           since: datetime | None = None, decision: str | None = None) -> list[Record]:
    """The records that match every given filter.

    ``ref`` matches exactly or as an fnmatch-style glob (``*`` also crosses ``/``); a pattern not
    starting with ``refs/`` also matches under ``refs/heads/`` and ``refs/tags/``. ``since`` keeps
    records whose ``time`` is at or after it (naive means UTC; an unreadable time never matches).
    """
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return [r for r in records
            if (ref is None or _ref_matches(r.get("ref"), ref))
            and (pusher is None or r.get("pusher") == pusher)
            and (decision is None or r.get("decision") == decision)
            and (since is None or _at_or_after(r.get("time"), since))]


def _fit(value: object, width: int, *, keep_end: bool = False) -> str:
    text = "-" if value in (None, "") else visible(str(value))
    if len(text) > width:
        text = "…" + text[1 - width:] if keep_end else text[:width - 1] + "…"
    return text.ljust(width)


def _short(oid: object) -> str:
    return oid[:8] if isinstance(oid, str) and oid else "-"


def _key_id(fingerprint: object) -> str:
    """An OpenPGP fingerprint as its long key id (its last 16 hex digits), others cut to 20."""
    text = str(fingerprint or "-")
    if len(text) > 16 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text[-16:].upper().ljust(20)
    return _fit(text, 20)


def _dicts(value: object) -> list[Record]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def render_table(records: Iterable[Record]) -> str:
    """A fixed-width table: a line per update, under it the error that stopped its judging, each
    rule (``!`` marks one that did not pass) with its reason, and under a rule each proof: owner,
    tier, key id, signing time, kind. Text that is not printable (bytes that were not UTF-8, line
    separators) shows escaped (see :func:`stepup_git.findings.visible`)."""
    lines = ["TIME                  PUSHER        REF                         ACTION      DECISION"
             "  OLD..NEW"]
    for r in records:
        lines.append(f"{_fit(r.get('time'), 20)}  {_fit(r.get('pusher'), 12)}  "
                     f"{_fit(r.get('ref'), 26, keep_end=True)}  {_fit(r.get('action'), 10)}  "
                     f"{_fit(r.get('decision'), 8)}  {_short(r.get('old'))}.."
                     f"{_short(r.get('new'))}")
        if r.get("error") not in (None, ""):
            lines.append(f"    ! error {visible(str(r.get('error')))}")
        for rule in _dicts(r.get("rules")):
            mark = " " if rule.get("result") == "pass" else "!"
            lines.append(f"    {mark} rule {_fit(rule.get('name'), 24)}  "
                         f"{_fit(rule.get('result'), 5)}  {_fit(rule.get('reason'), 72)}".rstrip())
            lines.extend(f"        key {_fit(p.get('owner'), 12)}  {_fit(p.get('tier'), 11)}  "
                         f"{_key_id(p.get('fingerprint'))}  signed {_fit(p.get('signed_at'), 20)}"
                         f"  via {_fit(p.get('kind'), 20)}".rstrip()
                         for p in _dicts(rule.get("proofs")))
    if len(lines) == 1:
        lines.append("(no records)")
    return "\n".join(lines) + "\n"


def git_dir_of(repo: Path) -> Path:
    """The git dir of ``repo``: the repository itself when it is bare, else ``repo/.git``."""
    if (repo / ".git").is_dir():
        return repo / ".git"
    if (repo / "HEAD").is_file() and (repo / "objects").is_dir():
        return repo
    raise AuditError(f"not a git repository: {repo}")


def default_log(git_dir: Path) -> Path:
    """Where a repository's audit log lives: ``<git dir>/stepup/audit.jsonl``."""
    return git_dir / "stepup" / "audit.jsonl"


def _log_of(args: argparse.Namespace) -> Path:
    if args.log is not None:
        return Path(args.log)
    return default_log(git_dir_of(Path(args.repo) if args.repo is not None else Path.cwd()))


def _show(args: argparse.Namespace) -> int:
    try:
        since = _parse_time(args.since) if args.since is not None else None
    except ValueError:
        raise UsageError(f"--since: not an ISO-8601 date or date-time: {args.since}") from None
    chosen = select(read(_log_of(args)), ref=args.ref, pusher=args.pusher, since=since,
                    decision=args.decision)
    if args.json:
        print("".join(canonical(record).decode("utf-8") + "\n" for record in chosen), end="")
    else:
        print(render_table(chosen), end="")
    return 0


def _verify(args: argparse.Namespace) -> int:
    log_path = _log_of(args)
    try:
        expected = parse_head(args.head) if args.head is not None else None
    except ValueError as exc:
        raise UsageError(f"--head: {exc}") from None
    result = verify(log_path, expected)
    print(result.message if result.ok else f"{log_path}: {result.message}")
    return 0 if result.ok else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit show`` and ``audit verify``; each sets ``func(args) -> exit code``."""
    audit = subparsers.add_parser("audit", help="show or verify the audit log")
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="{show,verify}")
    show = commands.add_parser("show", help="show audit records as a table or JSON lines")
    check = commands.add_parser("verify", help="verify the hash chain (exit 1 when broken or missing)")
    for parser in (show, check):
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--log", metavar="FILE", help="the audit log file")
        where.add_argument("--repo", metavar="R",
                           help="use R's <git dir>/stepup/audit.jsonl (default: the current dir)")
    show.add_argument("--ref", help="a ref name or glob: refs/heads/main, main, refs/tags/v*")
    show.add_argument("--pusher", help="only records of this pusher")
    show.add_argument("--since", metavar="ISO", help="only records at or after this date or time")
    show.add_argument("--decision", choices=["accept", "reject", "warn", "error", "break-glass"])
    show.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show.set_defaults(func=_show)
    check.add_argument("--head", metavar="HASH[:COUNT]",
                       help="a head kept elsewhere (a syslog line's head=): the log must hold "
                            "that record, as record COUNT when given")
    check.set_defaults(func=_verify)
