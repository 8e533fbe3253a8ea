"""Reading the audit log for people: records in order, filters, and the table of ``audit show``."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from ..errors import AuditError
from ..model import short_ref_names
from ..text import visible
from .log import Record, parse_line, short_id


def read(log_path: Path) -> Iterator[Record]:
    """Yield the log's records in order; none when the log does not exist.

    ``AuditError`` for an unreadable log or a line that is not a JSON object.
    """
    try:
        with log_path.open("rb") as log:
            for number, raw in enumerate(log, start=1):
                try:
                    record = parse_line(raw)
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


def parse_time(value: str) -> datetime:
    """An ISO-8601 date or date-time; without a zone it is UTC. ValueError when invalid."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ref_matches(ref: object, pattern: str) -> bool:
    names = [pattern] if pattern.startswith("refs/") else [pattern, *short_ref_names(pattern)]
    return isinstance(ref, str) and any(fnmatch.fnmatchcase(ref, name) for name in names)


def _at_or_after(value: object, since: datetime) -> bool:
    try:
        return isinstance(value, str) and parse_time(value) >= since
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
    tier, key id, signing time, kind (and for an SSH certificate, a line with its authority, key id,
    serial, principal and validity window). Text that is not printable (bytes that were not UTF-8, line
    separators) shows escaped (see :func:`stepup_git.text.visible`)."""
    lines = ["TIME                  PUSHER        REF                         ACTION      DECISION"
             "  OLD..NEW"]
    for r in records:
        lines.append(f"{_fit(r.get('time'), 20)}  {_fit(r.get('pusher'), 12)}  "
                     f"{_fit(r.get('ref'), 26, keep_end=True)}  {_fit(r.get('action'), 10)}  "
                     f"{_fit(r.get('decision'), 8)}  {short_id(r.get('old'))}.."
                     f"{short_id(r.get('new'))}")
        if r.get("error") not in (None, ""):
            lines.append(f"    ! error {visible(str(r.get('error')))}")
        for rule in _dicts(r.get("rules")):
            mark = " " if rule.get("result") == "pass" else "!"
            lines.append(f"    {mark} rule {_fit(rule.get('name'), 24)}  "
                         f"{_fit(rule.get('result'), 5)}  {_fit(rule.get('reason'), 72)}".rstrip())
            for p in _dicts(rule.get("proofs")):
                lines.append(f"        key {_fit(p.get('owner'), 12)}  {_fit(p.get('tier'), 11)}  "
                             f"{_key_id(p.get('fingerprint'))}  signed {_fit(p.get('signed_at'), 20)}"
                             f"  via {_fit(p.get('kind'), 20)}".rstrip())
                if p.get("kind") == "ssh-certificate":
                    lines.append(_certificate_line(p))
    if len(lines) == 1:
        lines.append("(no records)")
    return "\n".join(lines) + "\n"


def _certificate_line(p: Record) -> str:
    """Under an ``ssh-certificate`` proof: the authority, key id, serial, principal and validity window."""
    return (f"            certificate {visible(str(p.get('key_id')))!r} serial {p.get('serial')} from "
            f"{visible(str(p.get('authority')))} for principal {visible(str(p.get('principal')))}, valid "
            f"{p.get('valid_after')} to {p.get('valid_before')}, through {visible(str(p.get('via')))}")


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
