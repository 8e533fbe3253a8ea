"""``stepup-git policy check`` (a policy and its keyring, every problem as ``PATH:LINE: message``) and
``stepup-git policy init`` (a commented starter policy with the given keys)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..files import replace_file
from ..policy.check import check_policy
from ..policy.keyfiles import place
from ..policy.starter import KEYRING, starter_policy
from .parser import CommandParser


def register(sub: Any) -> None:
    p = sub.add_parser("policy", help="validate a policy, or write a starter policy")
    psub = p.add_subparsers(metavar="ACTION", parser_class=CommandParser)
    pc = psub.add_parser("check", help="validate a policy and its keyring")
    pc.add_argument("file", type=Path)
    pc.set_defaults(func=cmd_policy_check)

    pi = psub.add_parser("init", help="write a commented starter policy with the given keys",
                         description="Write a commented starter policy (audit mode) with a key of tier "
                                     "maintainer for each --key.")
    pi.add_argument("--key", type=Path, action="append", default=[], metavar="FILE",
                    help="a public key: an armored OpenPGP key file, or an SSH .pub file (repeat for more)")
    pi.add_argument("--output", type=Path, metavar="FILE",
                    help=f"write the policy to FILE and the OpenPGP keys to the folder {KEYRING}/ beside it "
                         "(default: print the policy; OpenPGP keys need --output)")
    pi.add_argument("--force", action="store_true", help="replace FILE when it exists")
    pi.set_defaults(func=cmd_policy_init)


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


def cmd_policy_init(args: argparse.Namespace) -> int:
    output: Path | None = args.output
    if output is not None and (output.exists() or output.is_symlink()) and not args.force:
        raise UsageError(f"{output} already exists; give --force to replace it")
    if output is None and any(path.suffix != ".pub" for path in args.key):
        raise UsageError(f"an OpenPGP --key needs --output FILE: its key file goes to the keyring folder "
                         f"{KEYRING}/ beside the policy")
    starter = starter_policy(args.key, name=output.name if output is not None else "policy.toml")
    if output is None:
        print(starter.text, end="")
    else:
        folder = output.parent / KEYRING
        for name, data in starter.files.items():
            place(folder / name, data)
        try:
            replace_file(output, starter.text.encode("utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
        print(f"stepup-git: wrote a starter policy to {output} (mode audit: failing pushes are warned of, not "
              f"rejected; {len(starter.keys)} key(s), keyring folder {folder})")
        for key in starter.keys:
            kind = "OpenPGP key" if key.kind == "openpgp" else "SSH key"
            print(f"  {key.owner}: {kind} {key.id}, tier maintainer, file {folder / key.file}")
        print(f"  next: check each owner, then stepup-git policy check {output} and "
              f"stepup-git install REPO --policy {output}")
    for line in starter.warnings:
        print(line, file=sys.stderr)
    if not starter.keys:
        print("stepup-git: no --key given: add keys with stepup-git keys add before installing the policy",
              file=sys.stderr)
    return 0
