"""One error hierarchy: library code raises these, only the CLI chooses exit codes and prints."""

from __future__ import annotations


class StepupError(Exception):
    """Base of every error stepup-git reports to a user as one line."""


class UsageError(StepupError):
    """A command was called with arguments that do not fit."""


class PolicyError(StepupError):
    """The policy cannot be loaded; ``problems`` holds every ``PATH:LINE: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(problems[0] if problems else "invalid policy")


class GitError(StepupError):
    """The repository or the hook's input cannot be read."""


class SignatureError(StepupError):
    """A signature tool is missing, failed or timed out (not: a signature that does not verify)."""


class AuditError(StepupError):
    """The audit record cannot be written or read."""


class StateError(StepupError):
    """The shared state database (docs/servers.md) is unreachable, refuses the login, is too slow or fails."""
