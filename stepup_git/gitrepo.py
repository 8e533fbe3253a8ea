"""The repository as SPEC §2 sees it: updates, their action, base, added commits and changed paths.

All object, ref and diff reading goes through pygit2. Inside a pre-receive hook the pushed objects
are still in Git's quarantine directory, which only an environment-aware open can see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import GitError

CACHE_BYTES = 2 * 1024 * 1024
WINDOW_BYTES = 1024 * 1024
MAPPED_BYTES = 8 * 1024 * 1024
_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SIG_MARKERS = (b"-----BEGIN PGP SIGNATURE-----", b"-----BEGIN SSH SIGNATURE-----",
                b"-----BEGIN SIGNED MESSAGE-----")


@dataclass(frozen=True)
class Update:
    """One line of the hook's input: ``<old> <new> <ref>``; ``None`` stands for the zero id."""

    old: str | None
    new: str | None
    ref: str

    @property
    def line(self) -> str:
        zero = "0" * len(self.old or self.new or "0" * 40)
        return f"{self.old or zero} {self.new or zero} {self.ref}"


@dataclass(frozen=True)
class SignedObject:
    """An object's signature and the exact bytes it signs (``signature`` is None when unsigned)."""

    oid: str
    kind: str  # "commit" or "tag"
    signature: bytes | None
    payload: bytes


def parse_updates(text: str) -> list[Update]:
    """Parse the pre-receive input strictly; any malformed line rejects the whole input."""
    updates: list[Update] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 3 or not _OID.fullmatch(parts[0]) or not _OID.fullmatch(parts[1]):
            raise GitError(f"input line {number} is not '<old-id> <new-id> <ref>': {line[:80]!r}")
        old, new, ref = parts
        if len(old) != len(new) or not ref.startswith("refs/") or any(ord(c) < 33 for c in ref):
            raise GitError(f"input line {number} is not '<old-id> <new-id> <ref>': {line[:80]!r}")
        if set(old) == {"0"} and set(new) == {"0"}:
            raise GitError(f"input line {number} has two zero ids for {ref}")
        updates.append(Update(None if set(old) == {"0"} else old, None if set(new) == {"0"} else new, ref))
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
    """A repository opened through pygit2, quarantine-aware when ``from_env`` is set."""

    def __init__(self, path: str | None, *, from_env: bool = False, remote: str | None = None) -> None:
        """``remote``: judge as that remote's server would, in a clone: its remote-tracking refs are the
        existing refs and its HEAD the default branch (the client pre-push hook)."""
        import pygit2

        self.remote = remote
        self.absent: set[str] = set()  # refs a dry run treats as not existing yet (see pretend_absent)
        self._pygit2 = pygit2
        # Bound libgit2's object cache (256 MiB by default): a push reads each commit once, so keeping
        # them only grows the hook's memory with the size of the push.
        pygit2.settings.cache_max_size(CACHE_BYTES)
        # Likewise the pack windows libgit2 maps (8 GiB by default): mapped pages count as the hook's
        # memory, and a big push reads through a big pack.
        pygit2.settings.mwindow_size = WINDOW_BYTES
        pygit2.settings.mwindow_mapped_limit = MAPPED_BYTES
        try:
            if from_env:
                self.git = pygit2.Repository(path, flags=pygit2.enums.RepositoryOpenFlag.FROM_ENV)
            else:
                self.git = pygit2.Repository(path)
        except (pygit2.GitError, KeyError, ValueError) as exc:
            raise GitError(f"cannot open the repository {path or '(from the environment)'}: {exc}") from None
        self.path: str = self.git.path.rstrip("/")
        self._empty_tree: Any = None

    # -- objects --------------------------------------------------------------------------

    def _get(self, oid: str) -> Any:
        try:
            return self.git[oid]
        except (KeyError, ValueError):
            raise GitError(f"object {oid[:12]} is not in the repository") from None

    def type_of(self, oid: str) -> str:
        return str(self._get(oid).type_str)

    def peel_commit(self, oid: str | None) -> str | None:
        """The commit an object leads to through annotated tags, or None (tree, blob, missing)."""
        if oid is None:
            return None
        obj = self._get(oid)
        while obj.type_str == "tag":
            obj = self._get(str(obj.target))
        return str(obj.id) if obj.type_str == "commit" else None

    def _peel_tree(self, oid: str | None) -> Any:
        if oid is None:
            return None
        obj = self._get(oid)
        while obj.type_str == "tag":
            obj = self._get(str(obj.target))
        if obj.type_str == "commit":
            return obj.tree
        return obj if obj.type_str == "tree" else None

    def signed_object(self, oid: str) -> SignedObject | None:
        """The signature and payload of a commit or annotated tag; None for other objects."""
        obj = self._get(oid)
        if obj.type_str == "commit":
            signature, payload = obj.gpg_signature
            if signature is None:
                return SignedObject(oid, "commit", None, obj.read_raw())
            return SignedObject(oid, "commit", bytes(signature), bytes(payload))
        if obj.type_str == "tag":
            signature, payload = split_tag(obj.read_raw())
            return SignedObject(oid, "tag", signature, payload)
        return None

    def tag_info(self, oid: str) -> tuple[str, str, str]:
        """(tag name, target id, target type) of an annotated tag."""
        tag = self._get(oid)
        target = self._get(str(tag.target))
        return str(tag.name), str(tag.target), str(target.type_str)

    def commit_time(self, oid: str) -> int:
        return int(self._get(oid).commit_time)

    # -- refs -----------------------------------------------------------------------------

    def pretend_absent(self, ref: str) -> None:
        """Judge a create of ``ref`` outside a push (``check``, ``verify``): in a clone the branch, and
        its remote-tracking twin, usually exist already, but on the server they do not yet."""
        self.absent.add(ref)
        if ref.startswith("refs/heads/"):
            for remote in {"origin", self.remote or "origin"}:
                self.absent.add(f"refs/remotes/{remote}/{ref.removeprefix('refs/heads/')}")

    def default_branch(self) -> str | None:
        """The commit that HEAD's branch points to, when both exist."""
        try:
            head = self.git.references.get(f"refs/remotes/{self.remote}/HEAD" if self.remote else "HEAD")
            if head is None:
                return None
            target = head.target
            if not isinstance(target, str):
                return None if self.absent else self.peel_commit(str(target))  # detached: unknown
            if target in self.absent:
                return None
            ref = self.git.references.get(target)
            return self.peel_commit(str(ref.target)) if ref is not None else None
        except self._pygit2.GitError:
            return None

    def ref_commits(self) -> list[str]:
        """The commits that the repository's refs lead to (symbolic refs and non-commits skipped)."""
        tips = []
        prefix = f"refs/remotes/{self.remote}/" if self.remote else ""
        for name in self.git.references:
            if not name.startswith(prefix) or name in self.absent:
                continue
            ref = self.git.references.get(name)
            if ref is None or ref.type == self._pygit2.enums.ReferenceType.SYMBOLIC:
                continue
            try:
                commit = self.peel_commit(str(ref.target))
            except GitError:
                continue
            if commit is not None:
                tips.append(commit)
        return tips

    def ref_target(self, name: str) -> str | None:
        ref = self.git.references.get(name)
        if ref is None:
            return None
        try:
            return str(ref.resolve().target)
        except (self._pygit2.GitError, KeyError):
            return None

    # -- SPEC §2 --------------------------------------------------------------------------

    def action(self, update: Update) -> str:
        if update.old is None:
            return "create"
        if update.new is None:
            return "delete"
        old = self.peel_commit(update.old) if self.type_of(update.old) == "commit" else None
        new = self.peel_commit(update.new) if self.type_of(update.new) == "commit" else None
        if old is None or new is None:
            return "force-push"  # replacing a tag, tree or blob is never a fast-forward
        if old == new or self.git.descendant_of(new, old):
            return "update"
        return "force-push"

    def base(self, update: Update) -> str | None:
        """``old`` when it exists; for a create, the merge-base of ``new`` with the default branch."""
        if update.old is not None:
            return update.old
        new = self.peel_commit(update.new)
        head = self.default_branch()
        if new is None or head is None:
            return None
        merge_base = self.git.merge_base(new, head)
        return str(merge_base) if merge_base is not None else None

    def added_commits(self, update: Update, base: str | None) -> Iterator[str]:
        """Commits reachable from ``new`` and not from ``base`` (no base: not from any existing ref).

        Streamed from ``git rev-list``, so the push's size never grows this process's memory (libgit2's
        walk keeps about half a kilobyte a commit). It inherits the quarantine environment, so it sees
        the pushed objects as the hook does."""
        new = self.peel_commit(update.new)
        if new is None:
            return
        hide = [self.peel_commit(base)] if base is not None else self.ref_commits()
        request = "".join([f"{new}\n", *(f"^{oid}\n" for oid in hide if oid is not None)]).encode()
        import subprocess

        try:
            proc = subprocess.Popen(["git", "--git-dir", self.path, "rev-list", "--reverse", "--stdin"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise GitError(f"cannot run git rev-list: {exc.strerror}") from None
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(request)  # rev-list reads all of its input before it starts walking
            proc.stdin.close()
            for line in proc.stdout:
                yield line.decode("ascii").strip()
            if proc.wait() != 0:
                detail = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                raise GitError(f"git rev-list failed for {update.ref}: {detail[:200]}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    def changed_paths(self, update: Update, base: str | None, added: Iterable[str]) -> Iterator[str]:
        """Paths whose blob, mode or type differ between base and new, then those each added commit
        changes against its first parent. Renames appear at both paths (no rename detection)."""
        new_tree = self._peel_tree(update.new)
        base_tree = self._peel_tree(base)
        if new_tree is not None or base_tree is not None:
            yield from self._diff_paths(base_tree, new_tree)
        for oid in added:
            commit = self._get(oid)
            parent_tree = commit.parents[0].tree if commit.parent_ids else None
            yield from self._diff_paths(parent_tree, commit.tree)

    def _diff_paths(self, a: Any, b: Any) -> Iterator[str]:
        if a is None and b is None:
            return
        if a is None:
            diff = b.diff_to_tree(swap=True)
        elif b is None:
            diff = a.diff_to_tree()
        else:
            diff = a.diff_to_tree(b)
        for delta in diff.deltas:
            yield _decode(delta.old_file.raw_path)
            if delta.new_file.raw_path != delta.old_file.raw_path:
                yield _decode(delta.new_file.raw_path)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")
