"""Reading the audit log for people: records in order and the filters of ``audit show`` (its tables
are :mod:`.table`)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from ..errors import AuditError
from ..model import short_ref_names
from ..patterns import PathPatterns
from ..policy.model import parse_duration
from .log import Record, parse_line


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


SINCE_FORMS = ("an ISO-8601 date or time (2026-11-24, 2026-11-24T09:30Z), an age (30m, 2h, 7d, 1h30m) "
               "or today or yesterday (UTC)")


def parse_since(value: str, now: datetime) -> datetime:
    """What ``--since`` means at ``now``: an ISO-8601 date or time (:func:`parse_time`); an age back
    from ``now`` (``30m``, ``2h``, ``7d``, ``1h30m``); ``today`` or ``yesterday``, the start of that
    day in UTC. ValueError naming the accepted forms (:data:`SINCE_FORMS`) otherwise."""
    word = value.strip().lower()
    if word in ("today", "yesterday"):
        start = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
        return start - timedelta(days=1) if word == "yesterday" else start
    try:
        return now - parse_duration(word)
    except ValueError:
        pass
    try:
        return parse_time(value.strip())
    except ValueError:
        raise ValueError(f"--since takes {SINCE_FORMS}, not {value!r}") from None


def _ref_matches(ref: object, pattern: str) -> bool:
    names = [pattern] if pattern.startswith("refs/") else [pattern, *short_ref_names(pattern)]
    return isinstance(ref, str) and any(fnmatch.fnmatchcase(ref, name) for name in names)


def _at_or_after(value: object, since: datetime) -> bool:
    try:
        return isinstance(value, str) and parse_time(value) >= since
    except ValueError:
        return False


def rule_paths(rule: Record) -> list[str]:
    """The changed paths a path rule matched: ``paths`` (every one), or in records written before it
    was kept, ``path`` (the first); none for a rule without paths."""
    paths = rule.get("paths")
    if isinstance(paths, list):
        return [p for p in paths if isinstance(p, str)]
    path = rule.get("path")
    return [path] if isinstance(path, str) else []


def dicts(value: object) -> list[Record]:
    """The objects of a JSON list (a record's ``rules``, a rule's ``proofs``); [] for anything else."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _touches(record: Record, paths: PathPatterns) -> bool:
    return any(paths.matches(path) for rule in dicts(record.get("rules")) for path in rule_paths(rule))


def select(records: Iterable[Record], *, ref: str | None = None, pusher: str | None = None,
           since: datetime | None = None, decision: str | None = None,
           path: PathPatterns | None = None) -> list[Record]:
    """The records that match every given filter.

    ``ref`` matches exactly or as an fnmatch-style glob (``*`` also crosses ``/``); a pattern not
    starting with ``refs/`` also matches under ``refs/heads/`` and ``refs/tags/``. ``since`` keeps
    records whose ``time`` is at or after it (naive means UTC; an unreadable time never matches).
    ``path`` (gitignore-style, as a rule's ``paths``) keeps records in which a rule matched a changed
    path that it matches (:func:`rule_paths`).
    """
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return [r for r in records
            if (ref is None or _ref_matches(r.get("ref"), ref))
            and (pusher is None or r.get("pusher") == pusher)
            and (decision is None or r.get("decision") == decision)
            and (since is None or _at_or_after(r.get("time"), since))
            and (path is None or _touches(r, path))]


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
