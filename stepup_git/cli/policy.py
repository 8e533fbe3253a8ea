"""``stepup-git policy check``: a policy and its keyring, every problem as ``PATH:LINE: message``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..policy.check import check_policy
from .parser import CommandParser


def register(sub: Any) -> None:
    p = sub.add_parser("policy", help="validate a policy")
    psub = p.add_subparsers(metavar="ACTION", parser_class=CommandParser)
    pc = psub.add_parser("check", help="validate a policy and its keyring")
    pc.add_argument("file", type=Path)
    pc.set_defaults(func=cmd_policy_check)


def cmd_policy_check(args: argparse.Namespace) -> int:
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

