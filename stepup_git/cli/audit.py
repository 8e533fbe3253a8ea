"""``stepup-git audit show|verify``: the command line of the audit log, read from the file or, when the
repository's policy names one, from the state database (docs/servers.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..audit import canonical, default_log, git_dir_of, parse_head, parse_time, read, render_table, select, verify
from ..errors import UsageError
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


def _show(args: argparse.Namespace) -> int:
    try:
        since = parse_time(args.since) if args.since is not None else None
    except ValueError:
        raise UsageError(f"--since: not an ISO-8601 date or date-time: {args.since}") from None
    state = _state_of(args)
    if state is not None:
        from ..state.chain import PostgresAuditLog

        with state.db:
            records = list(PostgresAuditLog(state.db, state.name).read())
    else:
        records = list(read(_log_of(args)))
    chosen = select(records, ref=args.ref, pusher=args.pusher, since=since, decision=args.decision)
    if args.json:
        print("".join(canonical(record).decode("utf-8") + "\n" for record in chosen), end="")
    else:
        print(render_table(chosen), end="")
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
    show.add_argument("--since", metavar="ISO", help="only records at or after this date or time")
    show.add_argument("--decision", choices=["accept", "reject", "warn", "error", "break-glass"])
    show.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show.set_defaults(func=_show)
    check.add_argument("--head", metavar="HASH[:COUNT]",
                       help="a head kept elsewhere (a syslog line's head=): the log must hold "
                            "that record, as record COUNT when given")
    check.set_defaults(func=_verify)
