"""A repository's objects as the judge reads them: looked up, peeled, walked and diffed through a bare
``pygit2.Repository`` that wraps only the object database (see :mod:`.repository`, "The objects
themselves"), so no graft, shallow file or replace ref can change a commit's parents."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import pygit2
from pygit2.enums import ObjectType, SortMode

from ..errors import GitError
from ..model import Update
from .diff import tree_changes

SHA1 = re.compile(r"[0-9a-f]{40}")
KINDS = {ObjectType.COMMIT: "commit", ObjectType.TREE: "tree", ObjectType.BLOB: "blob", ObjectType.TAG: "tag"}
# What libgit2 raises for objects it cannot find or read (InvalidSpecError is a ValueError).
LIBGIT2_ERRORS = (KeyError, ValueError, pygit2.GitError)


class Objects:
    """The object database ``odb`` alone, in a repository without a git directory."""

    def __init__(self, odb: pygit2.Odb) -> None:
        self.odb = odb
        self._repo = pygit2.Repository()
        self._repo.set_odb(odb)
        self._repo.set_refdb(pygit2.Refdb.new(self._repo))

    def close(self) -> None:
        self._repo.free()

    def read(self, oid: str) -> tuple[str, bytes]:
        """(type, raw content) of an object; a missing object is an error."""
        try:
            kind, raw = self.odb.read(_checked(oid))
        except KeyError:
            raise _missing(oid) from None
        return KINDS.get(ObjectType(kind), "unknown"), raw

    def lookup(self, oid: str) -> pygit2.Object | pygit2.Commit:  # (the stubs do not derive Commit from Object)
        try:
            return self._repo[_checked(oid)]
        except LIBGIT2_ERRORS:
            raise _missing(oid) from None

    def type_of(self, oid: str) -> str:
        try:
            kind, _ = self.odb.read_header(_checked(oid))
        except KeyError:
            raise _missing(oid) from None
        return KINDS.get(ObjectType(kind), "unknown")

    def peel(self, oid: str | None) -> pygit2.Object | pygit2.Commit | None:
        """What an object leads to through annotated tags (a commit, tree or blob)."""
        if oid is None:
            return None
        obj: pygit2.Object | pygit2.Commit = self.lookup(oid)
        while isinstance(obj, pygit2.Tag):
            obj = self.lookup(str(obj.target))
        return obj

    def peel_commit(self, oid: str | None) -> str | None:
        """The commit an object leads to through annotated tags, or None (tree, blob)."""
        obj = self.peel(oid)
        return str(obj.id) if isinstance(obj, pygit2.Commit) else None

    def peel_tree(self, oid: str | None) -> pygit2.Tree | None:
        obj = self.peel(oid)
        if isinstance(obj, pygit2.Commit):
            try:
                return obj.tree
            except LIBGIT2_ERRORS:
                raise GitError(f"the tree of commit {obj.id!s:.12} is not in the repository") from None
        return obj if isinstance(obj, pygit2.Tree) else None

    # -- updates: action, added commits, changed paths --------------------------------------

    def action(self, update: Update) -> str:
        if update.old is None:
            return "create"
        if update.new is None:
            return "delete"
        if self.type_of(update.old) != "commit" or self.type_of(update.new) != "commit":
            return "force-push"  # replacing a tag, tree or blob is never a fast-forward
        if update.old == update.new:
            return "update"
        try:
            return "update" if self._repo.descendant_of(update.new, update.old) else "force-push"
        except LIBGIT2_ERRORS as exc:
            raise GitError(f"cannot tell whether {update.ref} is fast-forwarded: {exc}") from None

    def _walker(self, update: Update, vetted: Sequence[str]) -> pygit2.Walker | None:
        """A walk of the update's added commits: from ``new``, hiding ``old`` and each vetted commit
        (one that is gone, such as a baseline commit since collected, is ignored); None when ``new``
        leads to no commit."""
        new = self.peel_commit(update.new)
        if new is None:
            return None
        walker = self._repo.walk(new, SortMode.NONE)
        old = self.peel_commit(update.old)
        for oid in dict.fromkeys([*([old] if old else []), *vetted]):
            if SHA1.fullmatch(oid) and oid in self.odb and self.type_of(oid) == "commit":
                walker.hide(oid)
        return walker

    def commits(self, update: Update, vetted: Sequence[str]) -> Iterator[pygit2.Commit]:
        """The added commits (see :meth:`.repository.Repo.added_commits`), newest first, one at a time."""
        walker = self._walker(update, vetted)
        if walker is None:
            return
        try:
            yield from walker
        except LIBGIT2_ERRORS as exc:
            raise GitError(f"cannot walk the commits of {update.ref}: {exc}") from None

    def changed_paths(self, update: Update, vetted: Sequence[str]) -> Iterator[tuple[str, bool]]:
        """The changed paths (see :meth:`.repository.Repo.changed_paths`), lazily."""
        try:
            if update.old is not None:
                yield from tree_changes(self.peel_tree(update.old), self.peel_tree(update.new))
            for commit in self.commits(update, vetted):
                parent = self.lookup(str(commit.parent_ids[0])) if commit.parent_ids else None
                parent_tree = parent.tree if isinstance(parent, pygit2.Commit) else None
                yield from tree_changes(parent_tree, commit.tree)
        except LIBGIT2_ERRORS as exc:
            raise GitError(f"cannot read the changes of {update.ref}: {exc}") from None


def _missing(oid: str) -> GitError:
    return GitError(f"object {oid[:12]} is not in the repository")


def _checked(oid: str) -> str:
    """``oid`` when it is an object id of this repository's format; a GitError naming it otherwise."""
    if not SHA1.fullmatch(oid or ""):
        raise _missing(oid)
    return oid
