"""The ``stepup-git`` command line. Only this layer chooses exit codes and prints errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from . import __version__
from . import policy as policy_mod
from .errors import GitError, StepupError, UsageError
from .evaluate import Session
from .findings import iso, render
from .gitrepo import Repo, Update
from .hook import entry, shared_cache_dir

# The hook is dispatched before the parser is built: what only the other subcommands use (install,
# keys, demo, the audit commands, policy check, push-certificate files, the TOML writer they pull in)
# is imported where they are built or run. What is imported above, every push needs anyway.


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("stepup-git").strip()
        raise UsageError(f"{command}: {message}" if command else message)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["hook"]:
        return entry(argv[1:])
    verbose = "--verbose" in argv  # wherever it stands: before or after the subcommand
    argv = [arg for arg in argv if arg != "--verbose"]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not hasattr(args, "func"):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args))
    except StepupError as exc:
        if verbose:
            raise
        for line in getattr(exc, "problems", None) or [str(exc)]:
            print(f"stepup-git: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (check --json | head): end quietly, as git log does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # SIGPIPE
    except Exception as exc:  # a bug or an unforeseen condition: one line, the traceback with --verbose
        if verbose:
            raise
        print(f"stepup-git: internal error ({type(exc).__name__}: {exc}); rerun with --verbose for details",
              file=sys.stderr)
        return 3


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stepup-git", description="Step-up authentication for Git pushes.")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"stepup-git {__version__}")
    from . import cli_audit, demo, install, keys

    sub = parser.add_subparsers(metavar="COMMAND", parser_class=_Parser)
    install.register(sub)

    p = sub.add_parser("policy", help="validate a policy")
    psub = p.add_subparsers(metavar="ACTION", parser_class=_Parser)
    pc = psub.add_parser("check", help="validate a policy and its keyring")
    pc.add_argument("file", type=Path)
    pc.set_defaults(func=cmd_policy_check)

    c = sub.add_parser("check", help="judge one update without pushing (dry run)")
    c.add_argument("--repo", type=Path, default=Path("."))
    c.add_argument("--policy", type=Path)
    c.add_argument("--pusher")
    c.add_argument("--push-cert", type=Path)
    c.add_argument("--now", help="judge as of this ISO-8601 time (default: now)")
    c.add_argument("--json", action="store_true")
    c.add_argument("old")
    c.add_argument("new")
    c.add_argument("ref")
    c.set_defaults(func=cmd_check)

    v = sub.add_parser("verify", help="CI gate: judge a range as an update of a ref")
    v.add_argument("--repo", type=Path, default=Path("."))
    v.add_argument("--range", required=True, dest="range_", metavar="A..B")
    v.add_argument("--ref")
    v.add_argument("--policy", type=Path)
    v.add_argument("--pusher")
    v.add_argument("--now")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_verify)

    cli_audit.register(sub)  # type: ignore[arg-type]
    keys.register(sub)
    demo.register(sub)
    return parser


def cmd_policy_check(args: argparse.Namespace) -> int:
    from .policycheck import check_policy

    if not args.file.is_file():
        raise UsageError(f"cannot read the policy {args.file}: no such file")
    problems, warnings = check_policy(args.file)
    for line in warnings:
        print(line, file=sys.stderr)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{args.file}: {len(problems)} error(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    zero = {"0" * 40, "0" * 64}
    repo = Repo(str(args.repo), env=os.environ)
    old = None if args.old in zero else _resolve(repo, args.old)
    new = None if args.new in zero else _resolve(repo, args.new)
    if old is None and new is None:
        raise UsageError("OLD and NEW cannot both be the zero id")
    return _judge_one(args, Update(old, new, _full_ref(args.ref)), certificate_file=args.push_cert, repo=repo)


def cmd_verify(args: argparse.Namespace) -> int:
    repo = Repo(str(args.repo), env=os.environ)
    a, sep, b = args.range_.partition("..")
    if not sep or not b:
        raise UsageError(f"--range must be A..B, not {args.range_!r}")
    old = _resolve(repo, a) if a and a not in ("0" * 40, "0" * 64) else None
    new = _resolve(repo, b)
    ref = _full_ref(args.ref) if args.ref else _head_ref(repo)
    return _judge_one(args, Update(old, new, ref), repo=repo)


def _full_ref(ref: str) -> str:
    if not ref.startswith("refs/") or any(c.isspace() for c in ref):
        raise UsageError(f"{ref!r} is not a full ref name; give e.g. refs/heads/{ref.removeprefix('refs/')}")
    return ref


def _resolve(repo: Repo, rev: str) -> str:
    oid = repo.resolve(rev)
    if oid is None:
        raise GitError(f"unknown revision {rev!r}")
    return oid


def _head_ref(repo: Repo) -> str:
    target = repo.head_ref()
    if target is None:
        raise UsageError("HEAD does not name a branch; give --ref")
    return target


def _judge_one(args: argparse.Namespace, update: Update, *, certificate_file: Path | None = None,
               repo: Repo | None = None) -> int:
    from .pushcert import from_file

    repo = repo or Repo(str(args.repo), env=os.environ)
    repo.pretend_absent(update.ref)  # where the ref stands is the update's old
    git_dir = Path(repo.path)
    policy_file = args.policy
    if policy_file is None:
        configured = repo.config("stepup.policy")
        if not configured:
            raise UsageError("no --policy given and the repository has no stepup.policy configured")
        policy_file = Path(configured) if Path(configured).is_absolute() else git_dir / configured
    policy = policy_mod.load(policy_file)
    now = _parse_now(args.now) if args.now else datetime.now(UTC)
    session = Session.open(policy, repo, git_dir / "stepup", now=now, shared_dir=shared_cache_dir(os.environ))
    certificate = None
    if certificate_file is not None:
        certificate = from_file(certificate_file, session)
    verdicts = session.judge([update], now=now, pusher=args.pusher, push_cert=certificate)
    allowed = all(v.allowed for v in verdicts)
    if args.json:
        out = [{"ref": v.update.ref, "old": v.update.old, "new": v.update.new, "action": v.action,
                "allowed": v.allowed, "error": v.error, "rules": [r.to_json() for r in v.results],
                "findings": [f.to_json() for r in v.results for f in r.findings]} for v in verdicts]
        print(json.dumps({"allowed": allowed, "now": iso(now), "updates": out}, indent=2))
    else:
        for line in render(verdicts, mode="enforce", dry_run=True):
            print(line)
        for v in verdicts:
            for r in v.results:
                print(f"  {'pass' if r.passed else 'FAIL'}  {r.rule}: {r.reason}")
        if certificate is not None:
            print("note: the push certificate's nonce and replay can only be judged during a real push")
    return 0 if allowed else 1


def _parse_now(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now must be an ISO-8601 time such as 2026-11-24T10:00:00Z, not {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


if __name__ == "__main__":
    sys.exit(main())
