"""Why a repository cannot be opened, said in one line: another user's repository, which Git refuses
(``safe.directory``), or a format libgit2 as built into the pygit2 wheels cannot read (SHA-256)."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping

import pygit2

from ..errors import GitError


class ForeignRepository(GitError):
    """Git refuses the repository because another user owns it ("dubious ownership", ``safe.directory``)."""

    def __init__(self, git_dir: str, owner: str) -> None:
        self.git_dir, self.owner = git_dir, owner
        super().__init__(f"{git_dir} belongs to {owner}, not to {_user(os.geteuid())}, and Git refuses "
                         "another user's repository (dubious ownership); run this as its owner "
                         f"(sudo -u {owner} stepup-git ...) or trust it: git config --global --add "
                         f"safe.directory {git_dir}")


def foreign_repository(start: str, env: Mapping[str, str]) -> ForeignRepository | None:
    """The refusal when the only reason ``start`` does not open is that another user owns it."""
    try:
        pygit2.settings.owner_validation = False
        where = pygit2.discover_repository(start, False, env.get("GIT_CEILING_DIRECTORIES", ""))
    finally:
        pygit2.settings.owner_validation = True
    if where is None:
        return None
    git_dir = os.path.abspath(where).rstrip("/")
    try:
        uid = os.stat(git_dir).st_uid
    except OSError:
        return None
    return ForeignRepository(git_dir, _user(uid)) if uid != os.geteuid() else None


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class UnsupportedRepository(GitError):
    """The repository's format cannot be read (a SHA-256 repository): every push is refused."""


def sha256_refusal() -> str:
    return (f"the repository uses SHA-256 object ids, which this stepup-git (libgit2 {pygit2.LIBGIT2_VERSION}) "
            "cannot read; every push is refused")
