"""The refs a push is judged against and the baseline that ``stepup-git install`` records in the
repository's ``stepup/`` folder (docs/semantics.md, "What is judged")."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence

import pygit2
from pygit2.enums import ReferenceType

from ..errors import GitError
from ..files import replace_file
from .objects import LIBGIT2_ERRORS
from .updates import OID

BASELINE = "baseline"  # the file in the repository's stepup/ folder that keeps the baseline


def list_refs(repo: pygit2.Repository, *, remote: str | None, absent: Collection[str],
              peel_commit: Callable[[str], str | None]) -> list[tuple[str, str]]:
    """(name, commit) of each ref of ``repo`` that leads to a commit, but those ``absent``; with
    ``remote``, only that remote's tracking refs, named as its branches."""
    prefix = f"refs/remotes/{remote}/" if remote else "refs/"
    found = []
    for ref in repo.references.iterator():
        name = ref.raw_name.decode("utf-8", errors="surrogateescape")
        if not name.startswith(prefix) or name in absent:
            continue
        if remote:
            if name == f"{prefix}HEAD":
                continue
            name = "refs/heads/" + name.removeprefix(prefix)
        try:
            target = ref.resolve().target if ref.type == ReferenceType.SYMBOLIC else ref.target
            commit = peel_commit(str(target))
        except (*LIBGIT2_ERRORS, GitError):
            continue  # a dangling or broken ref leads to no commit
        if commit is not None:
            found.append((name, commit))
    return found


def read_baseline(git_dir: str) -> list[str]:
    """The commits of the baseline recorded in ``git_dir``; none when it was never recorded."""
    try:
        with open(os.path.join(git_dir, "stepup", BASELINE), "rb") as f:
            text = f.read().decode("ascii")
    except (OSError, UnicodeDecodeError):
        return []
    return [word for line in text.split("\n") if (word := line.partition(" ")[0]) and OID.fullmatch(word)]


def write_baseline(git_dir: str, refs: Sequence[tuple[str, str]]) -> int:
    """Record the commits of ``refs`` (name, commit) as the baseline; returns how many it holds."""
    tips = sorted({commit for _, commit in refs})
    names: dict[str, str] = {}
    for name, commit in refs:
        names.setdefault(commit, name)
    text = "".join(f"{commit} {names[commit]}\n" for commit in tips)
    os.makedirs(os.path.join(git_dir, "stepup"), exist_ok=True)
    replace_file(os.path.join(git_dir, "stepup", BASELINE), text.encode("utf-8", errors="surrogateescape"))
    return len(tips)
