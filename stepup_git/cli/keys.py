"""``stepup-git keys list|add|remove``: the command line of the policy's keys (README.md, "Commands").

The work is done in ``policy.keys``; this module parses the arguments, prints and chooses exit codes.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..policy.keys import add_key, list_keys, remove_keys, render_table


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD, not {text!r}") from None


def register(subparsers: Any) -> None:
    """Add ``keys list``, ``keys add`` and ``keys remove``; each sets ``func(args) -> exit code``."""
    keys = subparsers.add_parser("keys", help="list, add or remove the policy's keys")
    commands = keys.add_subparsers(dest="keys_command", required=True, metavar="{list,add,remove}")

    show = commands.add_parser("list", help="every [[keys]] entry with its expiry, revocation and file")
    show.add_argument("--policy", type=Path, required=True, metavar="FILE")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_list)

    add = commands.add_parser("add", help="add a key to the policy and its keyring folder")
    add.add_argument("--policy", type=Path, required=True, metavar="FILE")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--key", type=Path, metavar="ARMORED_FILE", help="an OpenPGP public key file")
    what.add_argument("--ssh", metavar='"ssh-ed25519 AAAA... comment"', help="an SSH public key line")
    what.add_argument("--ssh-file", type=Path, metavar="PUBFILE", help="an SSH public key file (.pub)")
    add.add_argument("--owner", required=True, help="the pusher name the key belongs to")
    add.add_argument("--tier", required=True, help="one of the policy's [tiers].order")
    add.add_argument("--expires", type=_day, metavar="YYYY-MM-DD",
                     help="the policy stops honouring the key after this day (UTC)")
    add.set_defaults(func=cmd_add)

    rm = commands.add_parser("remove", help="remove keys from the policy, and their key files that no other "
                             "policy sharing the keyring folder lists")
    rm.add_argument("--policy", type=Path, required=True, metavar="FILE")
    rm.add_argument("key", nargs="?", metavar="FINGERPRINT|SSH-ID")
    rm.add_argument("--owner", help="remove the key of this owner")
    rm.add_argument("--all", action="store_true", help="with --owner: remove every key of the owner")
    rm.add_argument("--keep-file", action="store_true", help="keep every key file in the keyring folder")
    rm.set_defaults(func=cmd_remove)


def cmd_list(args: argparse.Namespace) -> int:
    policy, listed = list_keys(args.policy)
    if args.json:
        print(json.dumps({"policy": str(args.policy), "keyring": str(policy.settings.keyring),
                          "keys": [item.to_json() for item in listed]}, indent=2))
        return 0
    for line in render_table(listed):
        print(line)
    print(f"{len(listed)} key(s) in {args.policy}; keyring folder {policy.settings.keyring}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    done, warnings = add_key(args.policy, owner=args.owner, tier=args.tier, key_file=args.key,
                             ssh=args.ssh, ssh_file=args.ssh_file, expires=args.expires)
    for line in warnings:
        print(f"stepup-git: warning: {line}", file=sys.stderr)
    print(done)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    if args.all and args.owner is None:
        raise UsageError("--all needs --owner")
    done, warnings = remove_keys(args.policy, key=args.key, owner=args.owner, all_of_owner=args.all,
                                 keep_file=args.keep_file)
    for line in done:
        print(line)
    for line in warnings:
        print(f"stepup-git: warning: {line}", file=sys.stderr)
    return 0
