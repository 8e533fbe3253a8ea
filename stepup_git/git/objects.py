"""A repository's objects as the judge reads them: looked up, peeled, walked and diffed through a bare
``pygit2.Repository`` that wraps only the object database (see :mod:`.repository`, "The objects
themselves"), so no graft, shallow file or replace ref can change a commit's parents.

**What a walk learns about ancestry.** A walk of added commits hides ``old`` and the vetted commits;
when a commit it yields has a hidden commit H as a parent, the walk's tip descends from H. Such facts
are kept (:attr:`Objects.learned`) from walks long enough that finding them out again would cost
more than looking them up, and a fast-forward check asks them (through ``recall``, the verification
cache's ancestry table) before it walks: the commits a branch brought once are not walked again
when another branch is fast-forwarded to the same tip. A fact names two object ids, and an id names
the bytes that list its parents, so a fact stays true wherever those objects are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

import pygit2
from pygit2.enums import ObjectType, SortMode

from ..errors import GitError
from ..model import Update
from .diff import tree_changes

SHA1 = re.compile(r"[0-9a-f]{40}")
KINDS = {ObjectType.COMMIT: "commit", ObjectType.TREE: "tree", ObjectType.BLOB: "blob", ObjectType.TAG: "tag"}
# What libgit2 raises for objects it cannot find or read (InvalidSpecError is a ValueError).
LIBGIT2_ERRORS = (KeyError, ValueError, pygit2.GitError)
# A walk this long teaches the ancestry it reached (a shorter one is cheaper to walk again than to look up).
LEARN_MIN = 256
PROGRESS_EVERY = 256  # commits walked between two calls of ``progress``
# First parents followed from ``new`` looking for ``old`` before a fast-forward check asks ``recall``.
FIRST_PARENTS = 32


class Objects:
    """The object database ``odb`` alone, in a repository without a git directory."""

    def __init__(self, odb: pygit2.Odb) -> None:
        self.odb = odb
        self._repo = pygit2.Repository()
        self._repo.set_odb(odb)
        self._repo.set_refdb(pygit2.Refdb.new(self._repo))
        self.learned: set[tuple[str, str]] = set()  # (descendant, ancestor) that long walks reached
        self.recall: Callable[[str, str], bool] | None = None  # ancestry that earlier pushes learned
        self.progress: Callable[[int], None] | None = None  # told of every PROGRESS_EVERY commits walked

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
            if self._known_descendant(update.new, update.old):
                return "update"
            return "update" if self._repo.descendant_of(update.new, update.old) else "force-push"
        except LIBGIT2_ERRORS as exc:
            raise GitError(f"cannot tell whether {update.ref} is fast-forwarded: {exc}") from None

    def _known_descendant(self, new: str, old: str) -> bool:
        """Whether ``new`` is known to descend from ``old`` without a walk: ``old`` among the first
        parents just below ``new``, or a fact a long walk learned (here or in an earlier push)."""
        commit = self.lookup(new)
        for _ in range(FIRST_PARENTS):
            if not isinstance(commit, pygit2.Commit) or not commit.parent_ids:
                break
            parent = str(commit.parent_ids[0])
            if parent == old:
                return True
            commit = self.lookup(parent)
        if (new, old) in self.learned:
            return True
        return self.recall is not None and self.recall(new, old)

    def _walker(self, new: str, update: Update, vetted: Sequence[str]) -> tuple[pygit2.Walker, set[pygit2.Oid]]:
        """A walk of the update's added commits from the commit ``new``, hiding ``old`` and each vetted
        commit (one that is gone, such as a baseline commit since collected, is ignored), and the set
        of commits it hides."""
        walker = self._repo.walk(new, SortMode.NONE)
        old = self.peel_commit(update.old)
        hidden: set[pygit2.Oid] = set()
        for oid in dict.fromkeys([*([old] if old else []), *vetted]):
            if SHA1.fullmatch(oid) and oid in self.odb and self.type_of(oid) == "commit":
                walker.hide(oid)
                hidden.add(pygit2.Oid(hex=oid))
        return walker, hidden

    def commits(self, update: Update, vetted: Sequence[str]) -> Iterator[pygit2.Commit]:
        """The added commits (see :meth:`.repository.Repo.added_commits`), newest first, one at a time."""
        new = self.peel_commit(update.new)
        if new is None:
            return
        walker, hidden = self._walker(new, update, vetted)
        walked, reached = 0, set[pygit2.Oid]()
        try:
            for commit in walker:
                walked += 1
                if walked % PROGRESS_EVERY == 0 and self.progress is not None:
                    self.progress(PROGRESS_EVERY)
                if hidden:
                    reached.update(p for p in commit.parent_ids if p in hidden)
                yield commit
        except LIBGIT2_ERRORS as exc:
            raise GitError(f"cannot walk the commits of {update.ref}: {exc}") from None
        finally:  # also when the reader stops early: what was reached so far is reached
            if walked % PROGRESS_EVERY and self.progress is not None:
                self.progress(walked % PROGRESS_EVERY)
            if walked >= LEARN_MIN:
                self.learned.update((new, str(oid)) for oid in reached)

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
