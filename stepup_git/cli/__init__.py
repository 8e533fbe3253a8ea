"""The ``stepup-git`` command line: the only layer that prints and chooses exit codes.

Each subcommand is a module here with a ``register(subparsers)``: :mod:`.install` (install, baseline),
:mod:`.policy` (policy check), :mod:`.check` (check, verify), :mod:`.audit`, :mod:`.keys`, :mod:`.state`
(state migrate), :mod:`.demo`.
``stepup-git hook`` is the hook launcher's entry (:mod:`stepup_git.hook`); it is dispatched before any
subcommand module is loaded. Errors are one line on stderr: exit 2 for usage and bad input, 3 for an
internal error; ``--verbose``, wherever it stands, shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import StepupError
from .parser import CommandParser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["hook"]:
        from ..hook import entry

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
    from . import audit, check, demo, explain, install, keys, policy, state, status

    parser = CommandParser(prog="stepup-git", description="Step-up authentication for Git pushes.")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"stepup-git {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND", parser_class=CommandParser)
    for command in (install, policy, check, explain, audit, keys, state, status, demo):
        command.register(sub)
    return parser
