"""``stepup-git install`` and ``stepup-git baseline``: put the hook in front of repositories, and
record what history they trust (docs/semantics.md, "the baseline")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import layouts
from ..errors import StepupError, UsageError
from ..install import install, install_client, open_repository, read_nonce_seed


def register(sub: Any) -> None:
    p = sub.add_parser("install", help="install the pre-receive hook into repositories")
    p.add_argument("repos", nargs="+", type=Path, metavar="REPO")
    p.add_argument("--policy", type=Path, help="the policy file (default: keep the configured one)")
    p.add_argument("--mode", choices=["audit", "enforce"], help="override the policy's settings.mode")
    p.add_argument("--chain", action="store_true", help="keep an existing pre-receive hook and run it too")
    p.add_argument("--layout", choices=layouts.LAYOUTS, default="plain",
                   help="where the server runs hooks from (see docs/servers.md)")
    p.add_argument("--client", action="store_true",
                   help="install a pre-push hook into working clones that predicts the server's verdict")
    p.add_argument("--strict", action="store_true", help="with --client: stop pushes predicted to be rejected")
    p.add_argument("--nonce-seed-file", type=Path, metavar="FILE",
                   help="set receive.certNonceSeed from FILE (mode 600, at least 32 bytes): the seed every "
                        "replica of the repository shares")
    p.set_defaults(func=cmd_install)

    b = sub.add_parser("baseline", help="record the repository's ref tips as its baseline (vetted history)")
    b.add_argument("repo", type=Path, metavar="REPO")
    b.set_defaults(func=cmd_baseline)


def cmd_baseline(args: argparse.Namespace) -> int:
    repo = open_repository(args.repo)
    count = repo.record_baseline()
    print(f"stepup-git: baseline of {Path(repo.path).resolve()} recorded: {count} commit(s) and their history "
          "are vetted")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    failed = 0
    if args.strict and not args.client:
        raise UsageError("--strict goes with --client")
    if args.client and args.layout != "plain":
        raise UsageError("--client installs into working clones; --layout is for servers")
    if args.chain and layouts.uses_dot_d(args.layout):
        raise UsageError(f"--chain is not needed with --layout {args.layout}: the server runs every hook "
                         "in pre-receive.d")
    if args.nonce_seed_file is not None and args.client:
        raise UsageError("--nonce-seed-file is for servers; --client installs into working clones")
    seed = read_nonce_seed(args.nonce_seed_file) if args.nonce_seed_file is not None else None
    for repo in args.repos:
        try:
            if args.client:
                print(install_client(repo, policy=args.policy, strict=args.strict))
                continue
            done, warnings = install(repo, policy=args.policy, mode=args.mode, chain=args.chain,
                                     layout=args.layout, nonce_seed=seed)
            print(done)
            for line in warnings:
                print(f"stepup-git: {repo}: warning: {line}", file=sys.stderr)
        except StepupError as exc:
            failed += 1
            for line in getattr(exc, "problems", None) or [str(exc)]:
                print(f"stepup-git: {repo}: {line}", file=sys.stderr)
    return 2 if failed else 0

