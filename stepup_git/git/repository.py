"""The repository as the judge reads it (docs/semantics.md, "What is judged"), with pygit2: objects,
refs, the baseline, walks and changed paths (read by :mod:`.objects` and :mod:`.refs`). The
:mod:`stepup_git.git` package is the only one that imports pygit2.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pygit2
from pygit2.enums import ReferenceType, RepositoryOpenFlag

from ..errors import GitError
from ..model import SignedObject, Update
from .config import FIXED_ENV, config_values, run_git
from .environment import configure_libgit2, quarantine_dirs
from .objects import LIBGIT2_ERRORS, SHA1, Objects
from .payloads import split_commit, split_tag
from .refs import list_refs, read_baseline, write_baseline
from .refusals import UnsupportedRepository, foreign_repository, sha256_refusal

# Variables that point git at another repository: a command-line run (check, verify) drops them.
_REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
             "GIT_QUARANTINE_PATH", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_NAMESPACE")


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
        self._objects = Objects(odb)
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
        except LIBGIT2_ERRORS as exc:
            if "object format" in str(exc) or self._sha256(where or start):
                raise UnsupportedRepository(sha256_refusal()) from None
            refused = where is None or "not owned by current user" in str(exc)
            if not from_env and refused and (foreign := foreign_repository(start, self._env)) is not None:
                raise foreign from None
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
        if SHA1.fullmatch(rev):
            return rev if rev in self._odb else None
        try:
            return str(self._repo.revparse_single(rev).id)
        except LIBGIT2_ERRORS:
            return None

    def head_ref(self) -> str | None:
        """The branch HEAD names, or None when HEAD is detached."""
        try:
            head = self._repo.lookup_reference("HEAD")
        except LIBGIT2_ERRORS:
            return None
        return str(head.target) if head.type == ReferenceType.SYMBOLIC else None

    def ref_target(self, name: str) -> str | None:
        """The object a ref points at now (through a symbolic ref), or None when there is no such ref."""
        try:
            ref = self._repo.references.get(name)
            if ref is None:
                return None
            return str(ref.resolve().target)
        except LIBGIT2_ERRORS:
            return None  # a dangling symbolic ref points at nothing

    def close(self) -> None:
        self._objects.close()
        self._repo.free()

    # -- objects --------------------------------------------------------------------------

    def read_blob(self, oid: str) -> bytes | None:
        if not SHA1.fullmatch(oid or "") or oid not in self._odb:
            return None
        kind, raw = self._objects.read(oid)
        return raw if kind == "blob" else None

    def type_of(self, oid: str) -> str:
        return self._objects.type_of(oid)

    def peel_commit(self, oid: str | None) -> str | None:
        """The commit an object leads to through annotated tags, or None (tree, blob)."""
        return self._objects.peel_commit(oid)

    def first_parent(self, oid: str) -> str | None:
        """A commit's first parent, or None for a root commit (or what is not a commit)."""
        if not oid:
            return None
        obj = self._objects.lookup(oid)
        if not isinstance(obj, pygit2.Commit) or not obj.parent_ids:
            return None
        return str(obj.parent_ids[0])

    def signed_object(self, oid: str) -> SignedObject | None:
        """The signature and payload of a commit or annotated tag; None for other objects."""
        kind, raw = self._objects.read(oid)
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
        kind, raw = self._objects.read(oid)
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
            self._refs = list_refs(self._repo, remote=self.remote, absent=self.absent,
                                   peel_commit=self._objects.peel_commit)
        return self._refs

    def baseline(self) -> list[str]:
        """The commits of the baseline that ``stepup-git install`` (or ``baseline``) recorded in the
        repository's ``stepup/`` folder; none when it was never recorded, or in a clone."""
        return [] if self.remote else read_baseline(self.path)

    def record_baseline(self) -> int:
        """Record the current ref tips as the baseline; returns how many commits it holds."""
        return write_baseline(self.path, self.refs())

    # -- updates: action, added commits, changed paths --------------------------------------

    def action(self, update: Update) -> str:
        """``create``, ``delete``, ``update`` (a fast-forward) or ``force-push``."""
        return self._objects.action(update)

    def learned_ancestry(self) -> list[tuple[str, str]]:
        """(descendant, ancestor) commit pairs that this push's long walks established (see :mod:`.objects`)."""
        return sorted(self._objects.learned)

    def report_progress(self, progress: Callable[[int], None]) -> None:
        """Tell ``progress(n)`` of the commits every walk reads (added commits and changed paths alike)."""
        self._objects.progress = progress

    def recall_ancestry(self, recall: Callable[[str, str], bool]) -> None:
        """Let fast-forward checks ask ``recall(descendant, ancestor)`` what earlier pushes learned."""
        self._objects.recall = recall

    def added_commits(self, update: Update, vetted: Sequence[str]) -> Iterator[str]:
        """The added commits: reachable from ``new``, not from ``old`` and not from the ``vetted``
        commits (the rule's refs and the baseline); newest first, one at a time."""
        for commit in self._objects.commits(update, vetted):
            yield str(commit.id)

    def changed_paths(self, update: Update, vetted: Sequence[str]) -> Iterator[tuple[str, bool]]:
        """The changed paths as (path, is a gitlink): for an update, those whose blob, mode or
        type differ between old and new; then those each added commit changes against its first
        parent (a root commit against the empty tree). Renames appear at both paths (no rename
        detection); names keep their bytes. Lazy: computed only as far as they are read."""
        return self._objects.changed_paths(update, vetted)
