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
from ..model import Update, is_zero_id, short_ref_names
from ..proofs.pushcert import from_file
from ..render import render
from ..text import iso


def register(sub: Any) -> None:
    c = sub.add_parser("check", help="judge one update without pushing (dry run)",
                       description="Judge one update OLD -> NEW of REF as the pre-receive hook would, without "
                                   "pushing (exit 0 allowed, 1 denied).")
    _common(c)
    c.add_argument("--push-cert", type=Path, metavar="FILE",
                   help="a signed push certificate to count as the push's (its nonce and replay cannot be judged "
                        "outside a push)")
    c.add_argument("old", metavar="OLD", help="where REF stands now: a revision, or the zero id for a create")
    c.add_argument("new", metavar="NEW", help="where REF would stand: a revision, or the zero id for a delete")
    c.add_argument("ref", metavar="REF", help=f"the ref updated: a full name, or {SHORT_REF_HELP}")
    c.set_defaults(func=cmd_check)

    v = sub.add_parser("verify", help="CI gate: judge a range as an update of a ref",
                       description="Judge the commits of a range A..B as an update of a ref (exit 0 allowed, "
                                   "1 denied; docs/ci-gate.md).")
    v.add_argument("--range", required=True, dest="range_", metavar="A..B",
                   help="the update: A where the ref stands (empty or the zero id for a create), B the new tip")
    v.add_argument("--ref", metavar="REF",
                   help=f"the ref updated: a full name, or {SHORT_REF_HELP} (default: the branch HEAD names)")
    _common(v)
    v.set_defaults(func=cmd_verify)


SHORT_REF_HELP = "a short name such as main or v1.2 (its refs/heads/ or refs/tags/ ref in the repository)"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", type=Path, default=Path("."), metavar="R",
                   help="the repository to read (default: the current directory's)")
    p.add_argument("--policy", type=Path, metavar="FILE",
                   help="the policy file (default: the repository's git config stepup.policy)")
    p.add_argument("--pusher", metavar="NAME",
                   help="judge as if NAME pushes (the server takes it from STEPUP_PUSHER, GL_USERNAME, ...)")
    p.add_argument("--now", metavar="ISO", help="judge as of this ISO-8601 time (default: now)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_check(args: argparse.Namespace) -> int:
    repo = Repo(str(args.repo), env=os.environ)
    old = None if is_zero_id(args.old) else _resolve(repo, args.old)
    new = None if is_zero_id(args.new) else _resolve(repo, args.new)
    if old is None and new is None:
        raise UsageError("OLD and NEW cannot both be the zero id")
    return _judge_one(args, Update(old, new, full_ref(repo, args.ref)), certificate_file=args.push_cert, repo=repo)


def cmd_verify(args: argparse.Namespace) -> int:
    repo = Repo(str(args.repo), env=os.environ)
    a, sep, b = args.range_.partition("..")
    if not sep or not b:
        raise UsageError(f"--range must be A..B, not {args.range_!r}")
    old = _resolve(repo, a) if a and not is_zero_id(a) else None
    new = _resolve(repo, b)
    ref = full_ref(repo, args.ref) if args.ref else _head_ref(repo)
    return _judge_one(args, Update(old, new, ref), repo=repo)


def full_ref(repo: Repo | None, name: str) -> str:
    """The ref a name given on the command line stands for: a full name as it is; a short one (``main``,
    ``v1.2``) as the branch or the tag of that name that exists in ``repo`` (the names ``audit show
    --ref`` matches). UsageError when it is no ref name, names both or neither, or there is no repository."""
    if not name or any(c.isspace() or ord(c) < 32 or c in _NOT_IN_REFS for c in name) or ".." in name \
            or "@{" in name or name.endswith(("/", ".", ".lock")) or "//" in name:
        raise UsageError(f"{name!r} is not a ref name")
    if name.startswith("refs/"):
        return name
    candidates = short_ref_names(name)
    if repo is None:
        raise UsageError(f"{name!r} is not a full ref name and there is no repository to look it up in; "
                         f"give {' or '.join(candidates)}")
    found = [ref for ref in candidates if repo.ref_target(ref) is not None]
    if len(found) == 1:
        return found[0]
    if found:
        raise UsageError(f"{name!r} is both {' and '.join(found)}; give the full ref name")
    raise UsageError(f"no branch or tag {name!r} in {repo.path}; give the full ref name, e.g. {candidates[0]}")


_NOT_IN_REFS = "~^:?*[\\"


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

