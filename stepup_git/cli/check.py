"""``stepup-git check`` and ``stepup-git verify``: dry runs that judge one update as the hook would
(docs/semantics.md, "Dry runs"; docs/ci-gate.md)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import policy as policy_mod
from ..environment import shared_cache_dir
from ..errors import GitError, UsageError
from ..evaluate import Session
from ..git import Repo
from ..model import Update, is_zero_id
from ..proofs.pushcert import from_file
from ..render import render
from ..text import iso


def register(sub: Any) -> None:
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


def cmd_check(args: argparse.Namespace) -> int:
    repo = Repo(str(args.repo), env=os.environ)
    old = None if is_zero_id(args.old) else _resolve(repo, args.old)
    new = None if is_zero_id(args.new) else _resolve(repo, args.new)
    if old is None and new is None:
        raise UsageError("OLD and NEW cannot both be the zero id")
    return _judge_one(args, Update(old, new, _full_ref(args.ref)), certificate_file=args.push_cert, repo=repo)


def cmd_verify(args: argparse.Namespace) -> int:
    repo = Repo(str(args.repo), env=os.environ)
    a, sep, b = args.range_.partition("..")
    if not sep or not b:
        raise UsageError(f"--range must be A..B, not {args.range_!r}")
    old = _resolve(repo, a) if a and not is_zero_id(a) else None
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
    repo = repo or Repo(str(args.repo), env=os.environ)
    repo.pretend_absent(update.ref)  # where the ref stands is the update's old
    git_dir = Path(repo.path)
    policy_file = args.policy or policy_mod.configured_policy_path(git_dir, repo.config("stepup.policy"))
    if policy_file is None:
        raise UsageError("no --policy given and the repository has no stepup.policy configured")
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
        for line in render(verdicts, mode="enforce", style="dry-run"):
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

