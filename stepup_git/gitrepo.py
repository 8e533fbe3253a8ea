"""The git adapter: the repository as SPEC §2 sees it (updates, their action, added commits, changed
paths), read with pygit2. It is the only module that imports pygit2.

How the repository is opened (SPEC §6):

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
  that line, whatever the mode (SPEC §5.1: never treat a signed commit as unsigned or vice versa).
"""

from __future__ import annotations

import codecs
import os
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pygit2
from pygit2.enums import ConfigLevel, DiffOption, FileMode, ObjectType, ReferenceType, RepositoryOpenFlag, SortMode

from .errors import GitError
from .model import SignedObject, Update

BASELINE = "baseline"  # the file in the repository's stepup/ folder that keeps the baseline (SPEC §2)
GIT_TIMEOUT = 60  # seconds for one git command (the hook's own deadline is shorter and still fires)
# What is judged is the objects themselves (SPEC §6): git must not substitute replace refs, and answers
# in a fixed language.
_FIXED_ENV = {"GIT_NO_REPLACE_OBJECTS": "1", "LC_ALL": "C"}
# Variables that point git at another repository: a command-line run (check, verify) drops them.
_REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
             "GIT_QUARANTINE_PATH", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_NAMESPACE")
_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_SIG_MARKERS = (b"-----BEGIN PGP SIGNATURE-----", b"-----BEGIN SSH SIGNATURE-----",
                b"-----BEGIN SIGNED MESSAGE-----")
_KINDS = {ObjectType.COMMIT: "commit", ObjectType.TREE: "tree", ObjectType.BLOB: "blob", ObjectType.TAG: "tag"}
# What libgit2 raises for objects it cannot find or read (InvalidSpecError is a ValueError).
_LIBGIT2_ERRORS = (KeyError, ValueError, pygit2.GitError)
# Bounded memory whatever the push's size: libgit2 maps pack files in windows of up to 1 GiB (8 GiB
# in all) and caches up to 256 MiB of objects by default; mapped pages count as the hook's memory. Each
# object is read once or twice in a row (walk, then signature), so a small cache hits as often as a big
# one: at 100,000 commits 64 MiB of windows and a 32 MiB cache made the hook peak at 166 MB, 16 MiB and
# 4 MiB at 94 MB, in the same time (bench/).
_LIMITS = {"mwindow_size": 8 << 20, "mwindow_mapped_limit": 16 << 20, "cache_max_size": 4 << 20}


class UnsupportedRepository(GitError):
    """The repository's format cannot be read (a SHA-256 repository): every push is refused."""


def sha256_refusal() -> str:
    return (f"the repository uses SHA-256 object ids, which this stepup-git (libgit2 {pygit2.LIBGIT2_VERSION}) "
            "cannot read; every push is refused")


def parse_updates(text: str) -> list[Update]:
    """Parse the pre-receive input strictly; any malformed line rejects the whole input.

    Lines end at ``\n`` only: a ref name may hold U+2028, U+0085 or other characters that
    ``str.splitlines`` would also split at, and must reach the rules and the audit log whole.
    """
    updates: list[Update] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip(" \t\r"):  # the end of the input, or an empty line (only ASCII blanks)
            continue
        parts = line.split(" ")
        if len(parts) != 3 or not _OID.fullmatch(parts[0]) or not _OID.fullmatch(parts[1]):
            raise GitError(f"input line {number} is not '<old-id> <new-id> <ref>': {line[:80]!r}")
        old, new, ref = parts
        if len(old) != len(new) or not ref.startswith("refs/") or any(ord(c) < 33 for c in ref):
            raise GitError(f"input line {number} is not '<old-id> <new-id> <ref>': {line[:80]!r}")
        update = Update.from_ids(old, new, ref)
        if update.old is None and update.new is None:
            raise GitError(f"input line {number} has two zero ids for {ref}")
        updates.append(update)
    if not updates:
        raise GitError("no ref updates on the input")
    return updates


def split_tag(raw: bytes) -> tuple[bytes | None, bytes]:
    """Split a raw annotated tag object into (signature block, signed payload)."""
    best = -1
    for marker in _SIG_MARKERS:
        at = raw.rfind(b"\n" + marker)
        if at > best:
            best = at
    if best < 0:
        return None, raw
    return raw[best + 1 :], raw[: best + 1]


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
        self._env.update(_FIXED_ENV)
        self._config: dict[str, str] | None = None
        self._refs: list[tuple[str, str]] | None = None  # refs do not move while a push is judged
        start = path or "."
        if not os.path.isdir(start):
            raise GitError(f"cannot open the repository {start}: no such directory")
        _configure_libgit2(self._env)
        self._repo = self._open(start, from_env)
        self.path: str = os.path.abspath(self._repo.path).rstrip("/")
        odb = self._repo.odb
        if from_env:
            for directory in _quarantine_dirs(self._env):
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
            code, out = self._git_at(where, "config", "--get", "extensions.objectFormat")
        except GitError:
            return False
        return code == 0 and out.strip().lower() == b"sha256"

    # -- configuration: git itself ------------------------------------------------------------

    def _git_at(self, git_dir: str, *args: str) -> tuple[int, bytes]:
        try:
            proc = subprocess.run(["git", "--git-dir", git_dir, *args], env=self._env, capture_output=True,
                                  timeout=GIT_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise GitError(f"git {args[0]} did not finish within {GIT_TIMEOUT} s") from None
        except OSError as exc:
            raise GitError(f"cannot run git: {exc.strerror}") from None
        if proc.returncode not in (0, 1):
            raise GitError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
        return proc.returncode, proc.stdout

    def _git(self, *args: str) -> tuple[int, bytes]:
        return self._git_at(self.path, *args)

    def config(self, name: str) -> str | None:
        """A configuration value as git sees it (system, global, repository, ``GIT_CONFIG_PARAMETERS``)."""
        if self._config is None:
            _, out = self._git("config", "-z", "--list")
            self._config = {}
            for entry in out.split(b"\0"):
                key, _, value = entry.decode("utf-8", errors="replace").partition("\n")
                if key:
                    self._config[key.lower()] = value
        return self._config.get(name.lower())

    def local_config(self, name: str) -> str | None:
        """A value from the repository's own config file only (not inherited from global or system)."""
        code, out = self._git("config", "--local", "--get", name)
        return out.decode().strip() if code == 0 else None

    def set_config(self, name: str, value: str) -> None:
        code, _ = self._git("config", "--local", name, value)
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
        repository's ``stepup/`` folder (SPEC §2); none when it was never recorded, or in a clone."""
        if self.remote:
            return []
        try:
            with open(os.path.join(self.path, "stepup", BASELINE), "rb") as f:
                text = f.read().decode("ascii")
        except (OSError, UnicodeDecodeError):
            return []
        return [word for line in text.split("\n") if (word := line.partition(" ")[0]) and _OID.fullmatch(word)]

    def record_baseline(self) -> int:
        """Record the current ref tips as the baseline; returns how many commits it holds."""
        from .files import replace_file

        tips = sorted({commit for _, commit in self.refs()})
        names: dict[str, str] = {}
        for name, commit in self.refs():
            names.setdefault(commit, name)
        text = "".join(f"{commit} {names[commit]}\n" for commit in tips)
        os.makedirs(os.path.join(self.path, "stepup"), exist_ok=True)
        replace_file(os.path.join(self.path, "stepup", BASELINE), text.encode("utf-8", errors="surrogateescape"))
        return len(tips)

    # -- SPEC §2 --------------------------------------------------------------------------

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
        """SPEC §2's added commits: reachable from ``new``, not from ``old`` and not from the ``vetted``
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
        """SPEC §2's changed paths as (path, is a gitlink): for an update, those whose blob, mode or
        type differ between old and new; then those each added commit changes against its first
        parent (a root commit against the empty tree). Renames appear at both paths (no rename
        detection); names keep their bytes. Lazy: computed only as far as they are read."""
        try:
            if update.old is not None:
                yield from _diff(self._peel_tree(update.old), self._peel_tree(update.new))
            for commit in self._commits(update, vetted):
                parent = self._object(str(commit.parent_ids[0])) if commit.parent_ids else None
                parent_tree = parent.tree if isinstance(parent, pygit2.Commit) else None
                yield from _diff(parent_tree, commit.tree)
        except _LIBGIT2_ERRORS as exc:
            raise GitError(f"cannot read the changes of {update.ref}: {exc}") from None


_DIFF_FLAGS = DiffOption.SKIP_BINARY_CHECK  # only which entries differ is asked, never their content


def _diff(old: pygit2.Tree | None, new: pygit2.Tree | None) -> Iterator[tuple[str, bool]]:
    """(path, is a gitlink on either side) of each entry that differs between two trees (None: the
    empty tree). A name that is not UTF-8 keeps its bytes as surrogate escapes."""
    if old is None and new is None:
        return
    if old is None:
        assert new is not None
        diff = new.diff_to_tree(flags=_DIFF_FLAGS, swap=True)
    elif new is None:
        diff = old.diff_to_tree(flags=_DIFF_FLAGS)
    else:
        diff = old.diff_to_tree(new, flags=_DIFF_FLAGS)
    for delta in diff.deltas:
        gitlink = FileMode.COMMIT in (delta.old_file.mode, delta.new_file.mode)
        names = dict.fromkeys([delta.old_file.raw_path, delta.new_file.raw_path])
        for name in names:
            if name:
                yield name.decode("utf-8", errors="surrogateescape"), gitlink


def _quarantine_dirs(env: Mapping[str, str]) -> list[str]:
    """The object directories a hook's environment adds to the repository's: the quarantine and the
    alternates Git passes along (``GIT_ALTERNATE_OBJECT_DIRECTORIES``, colon-separated, an entry in
    double quotes when it holds a colon)."""
    found = [env.get("GIT_OBJECT_DIRECTORY", ""), env.get("GIT_QUARANTINE_PATH", "")]
    rest = env.get("GIT_ALTERNATE_OBJECT_DIRECTORIES", "")
    while rest:
        if rest.startswith('"'):
            end = 1
            while end < len(rest) and (rest[end] != '"' or rest[end - 1] == "\\"):
                end += 1
            quoted, rest = rest[1:end], rest[end + 1 :].removeprefix(":")
            found.append(codecs.escape_decode(quoted.encode("utf-8", errors="surrogateescape"))[0]
                         .decode("utf-8", errors="surrogateescape"))
        else:
            entry, _, rest = rest.partition(":")
            found.append(entry)
    return [os.path.abspath(d) for d in dict.fromkeys(found) if d and os.path.isdir(d)]


def _configure_libgit2(env: Mapping[str, str]) -> None:
    """Process-wide libgit2 settings: memory bounds, and the user's global configuration found through
    the given environment, not the process's."""
    settings = pygit2.settings
    settings.mwindow_size = _LIMITS["mwindow_size"]
    settings.mwindow_mapped_limit = _LIMITS["mwindow_mapped_limit"]
    settings.cache_max_size(_LIMITS["cache_max_size"])
    home = env.get("HOME", "")
    xdg = env.get("XDG_CONFIG_HOME") or (os.path.join(home, ".config") if home else "")
    settings.search_path[ConfigLevel.GLOBAL] = home
    settings.search_path[ConfigLevel.XDG] = os.path.join(xdg, "git") if xdg else ""


def split_commit(raw: bytes, *, sha256: bool = False) -> tuple[bytes | None, bytes]:
    """Split a raw commit into (signature, signed payload) as Git does (``parse_buffer_signed_by_header``).

    The signature is the header of the repository's own object format: ``gpgsig`` in a SHA-1
    repository, ``gpgsig-sha256`` in a SHA-256 one (``sha256``). The payload is the commit without any
    header whose name starts with ``gpgsig`` (either format's, with its continuation lines). A commit
    carrying only the other format's header is unsigned; two headers of its own format make no
    signature (Git would join them into one block, which is never one valid signature)."""
    own = b"gpgsig-sha256 " if sha256 else b"gpgsig "
    # The header ends at the first empty line (none at all when the first line is empty; without an
    # empty line every line is a header).
    at = raw.find(b"\n\n")
    end = 0 if raw.startswith(b"\n") else len(raw) if at < 0 else at + 1
    header = raw[:end]
    kept: list[bytes] = []
    signatures: list[bytes] = []
    start = 0  # where the header not yet kept begins
    at = 0 if header.startswith(b"gpgsig") else _next_signature_header(header, 0)
    while at >= 0:
        block = _SIGNATURE_HEADER.match(header, at)
        assert block is not None  # the line starts with "gpgsig"
        kept.append(header[start:at])
        if header.startswith(own, at):
            signatures.append(header[at + len(own) : block.end()])
        start = block.end()
        at = _next_signature_header(header, start)
    if not start:
        return None, raw  # no signature header: the payload is the whole commit
    payload = b"".join(kept) + header[start:] + raw[end:]
    if len(signatures) != 1:
        return None, payload
    # a continuation line carries one space more than the line it continues
    signature = signatures[0].replace(b"\n ", b"\n")
    return (signature if signature.endswith(b"\n") else signature + b"\n"), payload


def _next_signature_header(header: bytes, start: int) -> int:
    """Where the next header line from ``start`` (a line's start) whose name starts with "gpgsig"
    begins, or -1."""
    at = header.find(b"\ngpgsig", start - 1) if start else header.find(b"\ngpgsig")
    return at + 1 if at >= 0 else -1


# A header line whose name starts with "gpgsig", with its continuation lines (each starts with a space).
_SIGNATURE_HEADER = re.compile(rb"gpgsig[^\n]*(?:\n|\Z)(?: [^\n]*(?:\n|\Z))*")
