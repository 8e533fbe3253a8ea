"""``stepup-git demo``: a throw-away server, keys and policy, with a rejected and an accepted push."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..demo import Demo


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="show stepup-git at work on a throw-away repository")
    p.add_argument("--keep", action="store_true", help="keep the demo folder and print where it is")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="sgdemo"))
    try:
        return Demo(root).run()
    finally:
        if args.keep:
            print(f"\nthe demo folder is {root}")
        else:
            subprocess.run(["gpgconf", "--homedir", str(root / "g"), "--kill", "all"], capture_output=True, check=False)
            shutil.rmtree(root, ignore_errors=True)
