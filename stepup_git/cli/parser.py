"""The argument parser of every ``stepup-git`` command: a usage error is a :class:`UsageError`
(one line, exit 2), never argparse's own exit."""

from __future__ import annotations

import argparse

from ..errors import UsageError


class CommandParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("stepup-git").strip()
        raise UsageError(f"{command}: {message}" if command else message)

