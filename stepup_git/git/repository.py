"""The repository as the judge reads it (docs/semantics.md, "What is judged"), with pygit2: objects,
refs, the baseline, walks and changed paths. The :mod:`stepup_git.git` package is the only one that
imports pygit2.

- **One repository, the one named.** The hook opens the git directory its environment names
  (``GIT_DIR``, as a value of the ``env`` it is given) without searching upwards, and never with
  ``RepositoryOpenFlag.FROM_ENV``: libgit2 would then read ``GIT_DIR``, ``GIT_OBJECT_DIRECTORY`` and
  the rest from the *process* environment, not from the values the caller passed (the environment
  enters at the edge only). libgit2's global configuration search paths are set from that same
  ``env`` (``HOME``, ``XDG_CONFIG_HOME``), so nothing here reads ``os.environ``.
- **Quarantine.** Inside a pre-receive hook the pushed objects are still in Git's quarantine
  directory. The hook's ``env`` names it (``GIT_OBJECT_DIRECTORY``, ``GIT_QUARANTINE_PATH``) with the
  repository's own object directories (``GIT_ALTERNATE_OBJECT_DIRECTORIES``); each is added to the
  object database with ``Odb.add_disk_alternate``, so the pushed objects are visible exactly as Git
  sees them. A command-line run (``check``, ``verify``) ignores these variables.
- **The objects themselves.** Objects are read, walked and diffed through a second, bare
  ``pygit2.Repository`` that wraps only the object database (``set_odb``; its reference database is
  empty). libgit2 never substitutes ``refs/replace/*``, and a repository without a git directory has
  no ``info/grafts`` or ``shallow`` file, which libgit2 (since 1.7) would otherwise apply to every
  commit it parses, walks included. So a commit's parents are always the ones its bytes name.
  References (``refs()``, ``HEAD``, ``resolve``) come from the repository opened at its path;
  ``resolve`` of a revision such as ``main~2`` is the only reading that a graft file on the server
  could bend, and it is used only by ``check``/``verify`` to turn what the user typed into an id.
- **Git's own answer where libgit2 has none.** Configuration is read with ``git config -z --list``
  (it honours ``GIT_CONFIG_PARAMETERS``/``GIT_CONFIG_COUNT``, which forges set and libgit2 ignores)
  and install's writes go through ``git config``; always with ``GIT_NO_REPLACE_OBJECTS=1`` and
  ``LC_ALL=C``, through ``subprocess.run`` with a timeout.
- **SHA-256 repositories** cannot be read by libgit2 as built into the pygit2 wheels: opening one
  raises :class:`UnsupportedRepository` with one line saying so, and the hook rejects every push with
  that line, whatever the mode (never treating a signed commit as unsigned or vice versa).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pygit2
from pygit2.enums import ObjectType, ReferenceType, RepositoryOpenFlag, SortMode

from ..errors import GitError
from ..files import replace_file
from ..model import SignedObject, Update
from .config import FIXED_ENV, config_values, run_git
from .diff import tree_changes
from .environment import configure_libgit2, quarantine_dirs
from .payloads import split_commit, split_tag
from .updates import OID

BASELINE = "baseline"  # the file in the repository's stepup/ folder that keeps the baseline
# Variables that point git at another repository: a command-line run (check, verify) drops them.
_REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
             "GIT_QUARANTINE_PATH", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_NAMESPACE")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_KINDS = {ObjectType.COMMIT: "commit", ObjectType.TREE: "tree", ObjectType.BLOB: "blob", ObjectType.TAG: "tag"}
# What libgit2 raises for objects it cannot find or read (InvalidSpecError is a ValueError).
_LIBGIT2_ERRORS = (KeyError, ValueError, pygit2.GitError)


class UnsupportedRepository(GitError):
    """The repository's format cannot be read (a SHA-256 repository): every push is refused."""


def sha256_refusal() -> str:
    return (f"the repository uses SHA-256 object ids, which this stepup-git (libgit2 {pygit2.LIBGIT2_VERSION}) "
            "cannot read; every push is refused")


class Repo:
    """A repository read with pygit2; quarantine-aware when ``from_env`` is set (the hook)."""

    def __init__(self, path: str | None, *, env: Mapping[str, str], from_env: bool = False,
                 remote: str | None = None) -> None:
        """``env``: the caller's environment, passed in (the only one read). ``from_env``: the hook;
        ``path`` is the git directory Git named, and the quarantine comes from ``env``. ``remote``:
        judge as that remote's server would, in a clone: its remote-tracking refs are the existing
        refs (the client pre-push hook)."""
        self.remote = remote
        self.absent: set[str] = set()  # refs a dry run treats as not existing yet (see pretend_absent)
        self._env = dict(env)
        if not from_env:
            for name in _REPO_ENV:
                self._env.pop(name, None)
        self._env.update(FIXED_ENV)
        self._config: dict[str, str] | None = None
        self._refs: list[tuple[str, str]] | None = None  # refs do not move while a push is judged
        start = path or "."
        if not os.path.isdir(start):
            raise GitError(f"cannot open the repository {start}: no such directory")
        configure_libgit2(self._env)
        self._repo = self._open(start, from_env)
        self.path: str = os.path.abspath(self._repo.path).rstrip("/")
        odb = self._repo.odb
        if from_env:
            for directory in quarantine_dirs(self._env):
                odb.add_disk_alternate(directory)
        # The objects alone, in a repository without a git directory: no grafts, no shallow, no replace.
        self._objects = pygit2.Repository()
        self._objects.set_odb(odb)
        self._objects.set_refdb(pygit2.Refdb.new(self._objects))
        self._odb = odb

    def _open(self, start: str, from_env: bool) -> pygit2.Repository:
        # The hook opens what Git named, ownership already settled by Git running the hook there; a
        # command line finds the repository above a directory, as git does, and checks its owner.
        pygit2.settings.owner_validation = not from_env
        where: str | None = start
        if not from_env:
            where = pygit2.discover_repository(start, False, self._env.get("GIT_CEILING_DIRECTORIES", ""))
        try:
            if where is None:
                raise pygit2.GitError("Repository not found")
            return pygit2.Repository(where, RepositoryOpenFlag.NO_SEARCH)
        except _LIBGIT2_ERRORS as exc:
            if "object format" in str(exc) or self._sha256(where or start):
                raise UnsupportedRepository(sha256_refusal()) from None
            why = "it is not a Git repository" if "not found" in str(exc) else str(exc)
            raise GitError(f"cannot open the repository {start}: {why}") from None

    def _sha256(self, where: str) -> bool:
        try:
            code, out = run_git(where, self._env, "config", "--get", "extensions.objectFormat")
        except GitError:
            return False
        return code == 0 and out.strip().lower() == b"sha256"

    # -- configuration: git itself (see .config) ----------------------------------------------

    def config(self, name: str) -> str | None:
        """A configuration value as git sees it (system, global, repository, ``GIT_CONFIG_PARAMETERS``)."""
        if self._config is None:
            self._config = config_values(self.path, self._env)
        return self._config.get(name.lower())

    def local_config(self, name: str) -> str | None:
        """A value from the repository's own config file only (not inherited from global or system)."""
        code, out = run_git(self.path, self._env, "config", "--local", "--get", name)
        return out.decode().strip() if code == 0 else None

    def set_config(self, name: str, value: str) -> None:
        code, _ = run_git(self.path, self._env, "config", "--local", name, value)
        if code != 0:
            raise GitError(f"git config {name} failed")
        self._config = None

    # -- the repository at its path: work tree, HEAD, revisions -------------------------------

    def workdir(self) -> Path | None:
        """The working tree, or None for a bare repository."""
        workdir = self._repo.workdir
        return Path(workdir) if workdir else None

    def resolve(self, rev: str) -> str | None:
        """The object a revision names (``HEAD~1``, a ref, an id), or None."""
        if not rev or rev.startswith("-"):
            return None
        if _SHA1.fullmatch(rev):
            return rev if rev in self._odb else None
        try:
            return str(self._repo.revparse_single(rev).id)
        except _LIBGIT2_ERRORS:
            return None

    def head_ref(self) -> str | None:
        """The branch HEAD names, or None when HEAD is detached."""
        try:
            head = self._repo.lookup_reference("HEAD")
        except _LIBGIT2_ERRORS:
            return None
        return str(head.target) if head.type == ReferenceType.SYMBOLIC else None

    def close(self) -> None:
        self._objects.free()
        self._repo.free()

    # -- objects --------------------------------------------------------------------------

    def _read(self, oid: str) -> tuple[str, bytes]:
        """(type, raw content) of an object; a missing object is an error."""
        if not _SHA1.fullmatch(oid or ""):
            raise GitError(f"object {oid[:12]} is not in the repository")
        try:
            kind, raw = self._odb.read(oid)
        except KeyError:
            raise GitError(f"object {oid[:12]} is not in the repository") from None
        return _KINDS.get(ObjectType(kind), "unknown"), raw

    def _object(self, oid: str) -> pygit2.Object | pygit2.Commit:  # (the stubs do not derive Commit from Object)
        if not _SHA1.fullmatch(oid or ""):
            raise GitError(f"object {oid[:12]} is not in the repository")
        try:
            return self._objects[oid]
        except _LIBGIT2_ERRORS:
            raise GitError(f"object {oid[:12]} is not in the repository") from None

    def read_blob(self, oid: str) -> bytes | None:
        if not _SHA1.fullmatch(oid or "") or oid not in self._odb:
            return None
        kind, raw = self._read(oid)
        return raw if kind == "blob" else None

    def type_of(self, oid: str) -> str:
        if not _SHA1.fullmatch(oid or ""):
            raise GitError(f"object {oid[:12]} is not in the repository")
        try:
            kind, _ = self._odb.read_header(oid)
        except KeyError:
            raise GitError(f"object {oid[:12]} is not in the repository") from None
        return _KINDS.get(ObjectType(kind), "unknown")

    def _peel(self, oid: str | None) -> pygit2.Object | pygit2.Commit | None:
        """What an object leads to through annotated tags (a commit, tree or blob)."""
        if oid is None:
            return None
        obj: pygit2.Object | pygit2.Commit = self._object(oid)
        while isinstance(obj, pygit2.Tag):
            obj = self._object(str(obj.target))
        return obj

    def peel_commit(self, oid: str | None) -> str | None:
        """The commit an object leads to through annotated tags, or None (tree, blob)."""
        obj = self._peel(oid)
        return str(obj.id) if isinstance(obj, pygit2.Commit) else None

    def first_parent(self, oid: str) -> str | None:
        """A commit's first parent, or None for a root commit (or what is not a commit)."""
        if not oid:
            return None
        obj = self._object(oid)
        if not isinstance(obj, pygit2.Commit) or not obj.parent_ids:
            return None
        return str(obj.parent_ids[0])

    def _peel_tree(self, oid: str | None) -> pygit2.Tree | None:
        obj = self._peel(oid)
        if isinstance(obj, pygit2.Commit):
            try:
                return obj.tree
            except _LIBGIT2_ERRORS:
                raise GitError(f"the tree of commit {obj.id!s:.12} is not in the repository") from None
        return obj if isinstance(obj, pygit2.Tree) else None

    def signed_object(self, oid: str) -> SignedObject | None:
        """The signature and payload of a commit or annotated tag; None for other objects."""
        kind, raw = self._read(oid)
        if kind == "commit":
            signature, payload = split_commit(raw)
            return SignedObject(oid, "commit", signature, payload)
        if kind == "tag":
            signature, payload = split_tag(raw)
            return SignedObject(oid, "tag", signature, payload)
        return None

    def signed_objects(self, oids: Sequence[str]) -> list[SignedObject | None]:
        return [self.signed_object(oid) for oid in oids]

    def tag_info(self, oid: str) -> tuple[str, str, str]:
        """(tag name, target id, target type) of an annotated tag."""
        kind, raw = self._read(oid)
        fields: dict[str, str] = {}
        for line in raw.split(b"\n\n", 1)[0].decode("utf-8", errors="replace").split("\n"):
            name, _, value = line.partition(" ")
            fields.setdefault(name, value)
        if kind != "tag" or not {"object", "type", "tag"} <= fields.keys():
            raise GitError(f"object {oid[:12]} is not a well-formed annotated tag")
        return fields["tag"], fields["object"], fields["type"]

    # -- refs -----------------------------------------------------------------------------

    def pretend_absent(self, ref: str) -> None:
        """Judge an update of ``ref`` outside a push (``check``, ``verify``): the update's ``old`` says
        where the ref stands, so neither the ref nor its remote-tracking twin may vet anything."""
        self.absent.add(ref)
        self._refs = None
        if ref.startswith("refs/heads/"):
            for remote in {"origin", self.remote or "origin"}:
                self.absent.add(f"refs/remotes/{remote}/{ref.removeprefix('refs/heads/')}")

    def refs(self) -> list[tuple[str, str]]:
        """(name, commit) of each existing ref that leads to a commit, listed once. In a clone judged
        for a remote (``remote``), that remote's tracking refs stand for its branches
        (``refs/remotes/origin/main`` as ``refs/heads/main``) and nothing else is the server's."""
        if self._refs is None:
            self._refs = self._list_refs()
        return self._refs

    def _list_refs(self) -> list[tuple[str, str]]:
        prefix = f"refs/remotes/{self.remote}/" if self.remote else "refs/"
        found = []
        for ref in self._repo.references.iterator():
            name = ref.raw_name.decode("utf-8", errors="surrogateescape")
            if not name.startswith(prefix) or name in self.absent:
                continue
            if self.remote:
                if name == f"{prefix}HEAD":
                    continue
                name = "refs/heads/" + name.removeprefix(prefix)
            try:
                target = ref.resolve().target if ref.type == ReferenceType.SYMBOLIC else ref.target
                commit = self.peel_commit(str(target))
            except (*_LIBGIT2_ERRORS, GitError):
                continue  # a dangling or broken ref leads to no commit
            if commit is not None:
                found.append((name, commit))
        return found

    def baseline(self) -> list[str]:
        """The commits of the baseline that ``stepup-git install`` (or ``baseline``) recorded in the
        repository's ``stepup/`` folder; none when it was never recorded, or in a clone."""
        if self.remote:
            return []
        try:
            with open(os.path.join(self.path, "stepup", BASELINE), "rb") as f:
                text = f.read().decode("ascii")
        except (OSError, UnicodeDecodeError):
            return []
        return [word for line in text.split("\n") if (word := line.partition(" ")[0]) and OID.fullmatch(word)]

    def record_baseline(self) -> int:
        """Record the current ref tips as the baseline; returns how many commits it holds."""
        tips = sorted({commit for _, commit in self.refs()})
        names: dict[str, str] = {}
        for name, commit in self.refs():
            names.setdefault(commit, name)
        text = "".join(f"{commit} {names[commit]}\n" for commit in tips)
        os.makedirs(os.path.join(self.path, "stepup"), exist_ok=True)
        replace_file(os.path.join(self.path, "stepup", BASELINE), text.encode("utf-8", errors="surrogateescape"))
        return len(tips)

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
            return "update" if self._objects.descendant_of(update.new, update.old) else "force-push"
        except _LIBGIT2_ERRORS as exc:
            raise GitError(f"cannot tell whether {update.ref} is fast-forwarded: {exc}") from None

    def _walker(self, update: Update, vetted: Sequence[str]) -> pygit2.Walker | None:
        """A walk of the update's added commits: from ``new``, hiding ``old`` and each vetted commit
        (one that is gone, such as a baseline commit since collected, is ignored); None when ``new``
        leads to no commit."""
        new = self.peel_commit(update.new)
        if new is None:
            return None
        walker = self._objects.walk(new, SortMode.NONE)
        old = self.peel_commit(update.old)
        for oid in dict.fromkeys([*([old] if old else []), *vetted]):
            if _SHA1.fullmatch(oid) and oid in self._odb and self.type_of(oid) == "commit":
                walker.hide(oid)
        return walker

    def added_commits(self, update: Update, vetted: Sequence[str]) -> Iterator[str]:
        """The added commits: reachable from ``new``, not from ``old`` and not from the ``vetted``
        commits (the rule's refs and the baseline); newest first, one at a time."""
        for commit in self._commits(update, vetted):
            yield str(commit.id)

    def _commits(self, update: Update, vetted: Sequence[str]) -> Iterator[pygit2.Commit]:
        walker = self._walker(update, vetted)
        if walker is None:
            return
        try:
            yield from walker
        except _LIBGIT2_ERRORS as exc:
            raise GitError(f"cannot walk the commits of {update.ref}: {exc}") from None

    def changed_paths(self, update: Update, vetted: Sequence[str]) -> Iterator[tuple[str, bool]]:
        """The changed paths as (path, is a gitlink): for an update, those whose blob, mode or
        type differ between old and new; then those each added commit changes against its first
        parent (a root commit against the empty tree). Renames appear at both paths (no rename
        detection); names keep their bytes. Lazy: computed only as far as they are read."""
        try:
            if update.old is not None:
                yield from tree_changes(self._peel_tree(update.old), self._peel_tree(update.new))
            for commit in self._commits(update, vetted):
                parent = self._object(str(commit.parent_ids[0])) if commit.parent_ids else None
                parent_tree = parent.tree if isinstance(parent, pygit2.Commit) else None
                yield from tree_changes(parent_tree, commit.tree)
        except _LIBGIT2_ERRORS as exc:
            raise GitError(f"cannot read the changes of {update.ref}: {exc}") from None
