"""``stepup-git audit show|verify``: the command line of the audit log, read from the file or, when the
repository's policy names one, from the state database (docs/servers.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from ..audit import (
    Record,
    canonical,
    default_log,
    git_dir_of,
    parse_head,
    parse_since,
    parse_time,
    read,
    render_approvals,
    render_table,
    select,
    verify,
)
from ..errors import UsageError
from ..patterns import PathPatterns
from .state import SharedState, shared_state


def _log_of(args: argparse.Namespace) -> Path:
    if args.log is not None:
        return Path(args.log)
    return default_log(git_dir_of(Path(args.repo) if args.repo is not None else Path.cwd()))


def _state_of(args: argparse.Namespace) -> SharedState | None:
    """The repository's state database, when it is read from there (never with ``--log``)."""
    if args.log is not None:
        return None
    return shared_state(Path(args.repo) if args.repo is not None else Path.cwd())


def _now(args: argparse.Namespace) -> datetime:
    """The time ``--since`` counts back from: ``--now``, else the clock (read here, at the edge)."""
    if args.now is None:
        return datetime.now(UTC)
    try:
        return parse_time(args.now)
    except ValueError:
        raise UsageError(f"--now takes an ISO-8601 date or time such as 2026-11-24T09:30Z, not {args.now!r}"
                         ) from None


def _chooser(args: argparse.Namespace) -> Callable[[Iterable[Record]], list[Record]]:
    """:func:`stepup_git.audit.select` with the filters of ``audit show``; UsageError for a bad one."""
    now = _now(args)
    try:
        since = parse_since(args.since, now) if args.since is not None else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        path = PathPatterns.compile([args.path]) if args.path is not None else None
    except ValueError as exc:
        raise UsageError(f"--path: {exc}") from None
    return partial(select, ref=args.ref, pusher=args.pusher, since=since, decision=args.decision, path=path)


def _show(args: argparse.Namespace) -> int:
    choose = _chooser(args)  # bad input is refused before the log or the database is opened
    state = _state_of(args)
    if state is not None:
        from ..state.chain import PostgresAuditLog

        with state.db:
            records = list(PostgresAuditLog(state.db, state.name).read())
    else:
        records = list(read(_log_of(args)))
    chosen = choose(records)
    if args.json:
        print("".join(canonical(record).decode("utf-8") + "\n" for record in chosen), end="")
    elif args.approvals:
        print(render_approvals(chosen, wide=args.wide), end="")
    else:
        print(render_table(chosen, wide=args.wide), end="")
    return 0


def _verify(args: argparse.Namespace) -> int:
    try:
        expected = parse_head(args.head) if args.head is not None else None
    except ValueError as exc:
        raise UsageError(f"--head: {exc}") from None
    state = _state_of(args)
    if state is not None:
        from ..state.chain import PostgresAuditLog

        with state.db:
            result = PostgresAuditLog(state.db, state.name).verify(expected)
        where = f"{state.name} in the state database {state.db.target}"
    else:
        log_path = _log_of(args)
        result = verify(log_path, expected)
        where = str(log_path)
    print(result.message if result.ok else f"{where}: {result.message}")
    return 0 if result.ok else 1


DECISIONS = ("accept", "reject", "warn", "break-glass", "error")  # every decision a record carries


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
                           help="use R's <git dir>/stepup/audit.jsonl, or the state database its policy "
                                "names (default: the current dir)")
    show.add_argument("--ref", help="a ref name or glob: refs/heads/main, main, refs/tags/v*")
    show.add_argument("--pusher", help="only records of this pusher")
    show.add_argument("--since", metavar="WHEN",
                      help="only records at or after WHEN: an ISO-8601 date or time (2026-11-24, "
                           "2026-11-24T09:30Z), an age (30m, 2h, 7d, 1h30m), today or yesterday (UTC)")
    show.add_argument("--now", metavar="ISO", help="the time --since counts back from (default: the clock)")
    show.add_argument("--decision", choices=DECISIONS, help="only records with this decision")
    show.add_argument("--path", metavar="GLOB",
                      help="only records in which a rule matched a changed path that GLOB matches "
                           "(gitignore-style, as a rule's paths: db/migrations/ or db/migrations/** "
                           "is everything below it)")
    view = show.add_mutually_exclusive_group()
    view.add_argument("--approvals", action="store_true",
                      help="a line per approval: who approved what, with which key, when")
    view.add_argument("--json", action="store_true", help="the records as JSON lines, as written")
    show.add_argument("--wide", action="store_true", help="cut nothing: full names and key fingerprints")
    show.set_defaults(func=_show)
    check.add_argument("--head", metavar="HASH[:COUNT]",
                       help="a head kept elsewhere (a syslog line's head=): the log must hold "
                            "that record, as record COUNT when given")
    check.set_defaults(func=_verify)
