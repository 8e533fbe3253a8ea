"""The repository as SPEC §2 sees it: updates, their action, base, added commits and changed paths.

Objects, refs, diffs and configuration are read through the ``git`` command itself: one long-lived
``git cat-file --batch`` for objects, and ``rev-list``, ``diff-tree``, ``merge-base``, ``config``
where Git computes the answer. Inside a pre-receive hook the pushed objects are still in Git's
quarantine directory; these commands inherit the hook's environment (``GIT_OBJECT_DIRECTORY``,
``GIT_ALTERNATE_OBJECT_DIRECTORIES``, ``GIT_QUARANTINE_PATH``), so they see exactly what Git sees,
configuration included. (pygit2 sees them too when opened with ``RepositoryOpenFlag.FROM_ENV``, but
importing it costs about 75 ms, most of the hook's start-up budget: see ``bench/README.md``.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import GitError
from .record import record
from .spawn import Child, collect, run

EMPTY_TREE = {40: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
              64: "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"}
DIFF_CHUNK = 10000  # commits per diff-tree process (see changed_paths)
BATCH = 1000  # object names per cat-file batch: 41-65 bytes each, under a pipe's 64 KiB
# Bounded memory whatever the push's size: git maps pack files in windows of up to 1 GiB (8 GiB in all)
# and keeps 96 MiB of delta bases by default, and mapped pages count as the hook's memory.
GIT = ("git", "-c", "core.packedGitWindowSize=1m", "-c", "core.packedGitLimit=4m",
       "-c", "core.deltaBaseCacheLimit=4m")
# Variables that point git at another repository: a command-line run (check, verify) drops them.
_REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
             "GIT_QUARANTINE_PATH", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_NAMESPACE")
_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SIG_MARKERS = (b"-----BEGIN PGP SIGNATURE-----", b"-----BEGIN SSH SIGNATURE-----",
                b"-----BEGIN SIGNED MESSAGE-----")


@record
class Update:
    """One line of the hook's input: ``<old> <new> <ref>``; ``None`` stands for the zero id."""

    old: str | None
    new: str | None
    ref: str

    @property
    def line(self) -> str:
        zero = "0" * len(self.old or self.new or "0" * 40)
        return f"{self.old or zero} {self.new or zero} {self.ref}"


@record
class SignedObject:
    """An object's signature and the exact bytes it signs (``signature`` is None when unsigned)."""

    oid: str
    kind: str  # "commit" or "tag"
    signature: bytes | None
    payload: bytes


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
    """A repository read through the git command; quarantine-aware when ``from_env`` is set."""

    def __init__(self, path: str | None, *, from_env: bool = False, remote: str | None = None) -> None:
        """``from_env``: the hook; git finds the repository and its quarantine from the environment.
        ``remote``: judge as that remote's server would, in a clone: its remote-tracking refs are the
        existing refs and its HEAD the default branch (the client pre-push hook)."""
        self.remote = remote
        self.absent: set[str] = set()  # refs a dry run treats as not existing yet (see pretend_absent)
        self._env = dict(os.environ)
        if not from_env:
            for name in _REPO_ENV:
                self._env.pop(name, None)
        self._batch: Child | None = None
        self._config: dict[str, str] | None = None
        self._config_child: Child | None = None
        self._ref_commits: list[str] | None = None  # refs do not move while a push is judged
        if not os.path.isdir(path or "."):
            raise GitError(f"cannot open the repository {path}: no such directory")
        if from_env and self._env.get("GIT_DIR"):  # a hook: git names the repository (one git process less)
            self.path: str = os.path.realpath(self._env["GIT_DIR"])
            # A hook reads the config and objects in any case: both git processes start now and run
            # while Python loads the rest of the hook.
            self._config_child = Child([*GIT, "--git-dir", self.path, "config", "-z", "--list"], self._env)
            self._start_batch()
            return
        code, out, err = run([*GIT, "-C", path or ".", "rev-parse", "--absolute-git-dir"], self._env)
        if code != 0:
            raise GitError(f"cannot open the repository {path or '(from the environment)'}: "
                           f"{err.decode(errors='replace').strip()[:200]}")
        self.path = out.decode().strip().rstrip("/")

    # -- running git --------------------------------------------------------------------------

    def _git(self, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, bytes]:
        code, out, err = run([*GIT, "--git-dir", self.path, *args], self._env)
        if code not in ok:
            raise GitError(f"git {args[0]} failed: {err.decode(errors='replace').strip()[:200]}")
        return code, out

    def _cat(self, rev: str) -> tuple[str, str, bytes] | None:
        """(id, type, content) of an object named by ``rev``, or None when there is none."""
        return self._cat_many([rev])[0]

    def _cat_many(self, revs: Sequence[str]) -> list[tuple[str, str, bytes] | None]:
        """Objects for many names: the requests of a batch go out together, then the answers are read.
        A batch's requests stay under the pipe's buffer, so neither side can block the other."""
        for rev in revs:
            if "\n" in rev or not rev:
                raise GitError(f"bad object name {rev!r}")
        results: list[tuple[str, str, bytes] | None] = []
        for start in range(0, len(revs), BATCH):
            results += self._cat_batch(revs[start : start + BATCH])
        return results

    def _start_batch(self) -> Child:
        if self._batch is None:
            # its stderr only repeats, as notes, what its "missing" answers say
            self._batch = Child([*GIT, "--git-dir", self.path, "cat-file", "--batch"], self._env, stdin=True,
                                stderr=False)
        return self._batch

    def _cat_batch(self, revs: Sequence[str]) -> list[tuple[str, str, bytes] | None]:
        self._start_batch()
        assert self._batch is not None and self._batch.stdin is not None and self._batch.stdout is not None
        out = self._batch.stdout
        try:
            self._batch.stdin.write("".join(f"{rev}\n" for rev in revs).encode())
            self._batch.stdin.flush()
            found: list[tuple[str, str, bytes] | None] = []
            for _ in revs:
                header = out.readline().split()
                if len(header) != 3:
                    if len(header) >= 2 and header[-1] in (b"missing", b"ambiguous"):
                        found.append(None)
                        continue
                    raise GitError("git cat-file stopped answering")
                size = int(header[2])
                data = out.read(size)
                out.read(1)  # the newline after each object
                if len(data) != size:
                    raise GitError("git cat-file stopped answering")
                found.append((header[0].decode(), header[1].decode(), data))
        except OSError as exc:
            raise GitError(f"git cat-file stopped: {exc.strerror}") from None
        return found

    def close(self) -> None:
        if self._config_child is not None:
            self._config_child.kill()
            collect(self._config_child)
            self._config_child = None
        if self._batch is not None:
            self._batch.close()  # cat-file ends at the end of its input
            self._batch.wait()
            self._batch = None

    def config(self, name: str) -> str | None:
        """A configuration value as git sees it (system, global, repository)."""
        if self._config is None:
            if self._config_child is not None:
                code, out, err = collect(self._config_child)
                self._config_child = None
                if code not in (0, 1):
                    raise GitError(f"git config failed: {err.decode(errors='replace').strip()[:200]}")
            else:
                _, out = self._git("config", "-z", "--list", ok=(0, 1))
            self._config = {}
            for entry in out.split(b"\0"):
                key, _, value = entry.decode("utf-8", errors="replace").partition("\n")
                if key:
                    self._config[key.lower()] = value
        return self._config.get(name.lower())

    def local_config(self, name: str) -> str | None:
        """A value from the repository's own config file only (not inherited from global or system)."""
        code, out = self._git("config", "--local", "--get", name, ok=(0, 1))
        return out.decode().strip() if code == 0 else None

    def set_config(self, name: str, value: str) -> None:
        self._git("config", "--local", name, value)
        self._config = None

    def workdir(self) -> Path | None:
        """The working tree, or None for a bare repository."""
        _, out = self._git("rev-parse", "--is-bare-repository")
        if out.strip() == b"true":
            return None
        return Path(self.path).parent

    def resolve(self, rev: str) -> str | None:
        """The object a revision names (``HEAD~1``, a ref, an id), or None."""
        found = self._cat(rev) if rev and not rev.startswith("-") else None
        return found[0] if found else None

    def head_ref(self) -> str | None:
        """The branch HEAD names, or None when HEAD is detached."""
        code, out = self._git("symbolic-ref", "-q", "HEAD", ok=(0, 1))
        return out.decode().strip() if code == 0 else None

    def read_blob(self, oid: str) -> bytes | None:
        found = self._cat(oid)
        return found[2] if found and found[1] == "blob" else None

    # -- objects --------------------------------------------------------------------------

    def _get(self, oid: str) -> tuple[str, str, bytes]:
        found = self._cat(oid)
        if found is None:
            raise GitError(f"object {oid[:12]} is not in the repository")
        return found

    def type_of(self, oid: str) -> str:
        return self._get(oid)[1]

    def peel_commit(self, oid: str | None) -> str | None:
        """The commit an object leads to through annotated tags, or None (tree, blob)."""
        if oid is None:
            return None
        found = self._cat(f"{oid}^{{commit}}")
        if found is None:
            self._get(oid)  # a missing object is an error; a tree or blob simply has no commit
            return None
        return found[0]

    def _peel_tree(self, oid: str | None) -> str | None:
        if oid is None:
            return None
        found = self._cat(f"{oid}^{{tree}}")
        if found is None:
            self._get(oid)
            return None
        return found[0]

    def signed_object(self, oid: str) -> SignedObject | None:
        """The signature and payload of a commit or annotated tag; None for other objects."""
        return self.signed_objects([oid])[0]

    def signed_objects(self, oids: Sequence[str]) -> list[SignedObject | None]:
        return [_signed(oid, found) for oid, found in zip(oids, self._cat_many(oids), strict=True)]

    def tag_info(self, oid: str) -> tuple[str, str, str]:
        """(tag name, target id, target type) of an annotated tag."""
        _, kind, raw = self._get(oid)
        fields: dict[str, str] = {}
        for line in raw.split(b"\n\n", 1)[0].decode("utf-8", errors="replace").split("\n"):
            name, _, value = line.partition(" ")
            fields.setdefault(name, value)
        if kind != "tag" or not {"object", "type", "tag"} <= fields.keys():
            raise GitError(f"object {oid[:12]} is not a well-formed annotated tag")
        return fields["tag"], fields["object"], fields["type"]

    # -- refs -----------------------------------------------------------------------------

    def pretend_absent(self, ref: str) -> None:
        """Judge a create of ``ref`` outside a push (``check``, ``verify``): in a clone the branch, and
        its remote-tracking twin, usually exist already, but on the server they do not yet."""
        self.absent.add(ref)
        self._ref_commits = None
        if ref.startswith("refs/heads/"):
            for remote in {"origin", self.remote or "origin"}:
                self.absent.add(f"refs/remotes/{remote}/{ref.removeprefix('refs/heads/')}")

    def default_branch(self) -> str | None:
        """The commit that HEAD's branch points to, when both exist."""
        if not self.remote and not self.absent:  # the server's own HEAD: cat-file follows it
            found = self._cat("HEAD^{commit}")
            return found[0] if found else None
        head = f"refs/remotes/{self.remote}/HEAD" if self.remote else "HEAD"
        code, out = self._git("symbolic-ref", "-q", head, ok=(0, 1, 128))
        if code != 0:  # detached, or no such ref: a dry run or a clone has no default branch to go by
            return None
        target = out.decode().strip()
        if target in self.absent:
            return None
        found = self._cat(f"{target}^{{commit}}")
        return found[0] if found else None

    def ref_commits(self) -> list[str]:
        """The commits that the repository's refs lead to (non-commits skipped), listed once."""
        if self._ref_commits is None:
            self._ref_commits = self._list_ref_commits()
        return self._ref_commits

    def _list_ref_commits(self) -> list[str]:
        prefix = f"refs/remotes/{self.remote}/" if self.remote else "refs/"
        _, out = self._git("for-each-ref", "--format=%(objectname) %(objecttype) %(*objectname) %(*objecttype) "
                           "%(refname)", prefix)
        tips = []
        for line in out.decode("utf-8", errors="replace").splitlines():
            parts = line.split(" ", 4)
            if len(parts) != 5 or parts[4] in self.absent:
                continue
            if parts[1] == "commit":
                tips.append(parts[0])
            elif parts[1] == "tag" and parts[3] == "commit":
                tips.append(parts[2])
        return tips

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
        code, _ = self._git("merge-base", "--is-ancestor", update.old, update.new, ok=(0, 1))
        return "update" if code == 0 else "force-push"

    def base(self, update: Update) -> str | None:
        """``old`` when it exists; for a create, the merge-base of ``new`` with the default branch."""
        if update.old is not None:
            return update.old
        new = self.peel_commit(update.new)
        head = self.default_branch()
        if new is None or head is None:
            return None
        code, out = self._git("merge-base", new, head, ok=(0, 1))
        return out.decode().strip() if code == 0 and out.strip() else None

    def _hide(self, base: str | None) -> tuple[list[str], list[str]]:
        """What a walk from an update's new commit leaves out: (``^commit`` lines for rev-list's input,
        arguments for its command line). No base: every existing ref."""
        if base is not None:
            peeled = self.peel_commit(base)
            return ([f"^{peeled}\n"] if peeled else []), []
        if not self.remote and not self.absent:
            return [], ["--not", "--all"]  # the refs as git sees them, without listing them first
        return [f"^{oid}\n" for oid in self.ref_commits()], []

    def added_commits(self, update: Update, base: str | None) -> Iterator[str]:
        """Commits reachable from ``new`` and not from ``base`` (no base: not from any existing ref),
        newest first, streamed from ``git rev-list`` so that a push's size never grows this process
        (``--reverse`` would make git hold the whole list)."""
        new = self.peel_commit(update.new)
        if new is None:
            return
        hidden, args = self._hide(base)
        request = "".join([f"{new}\n", *hidden]).encode()
        for line in self._stream([*GIT, "--git-dir", self.path, "rev-list", "--stdin", *args], request,
                                 f"git rev-list for {update.ref}", sep=b"\n"):
            yield line.decode("ascii")

    def changed_paths(self, update: Update, base: str | None) -> Iterator[str]:
        """Paths whose blob, mode or type differ between base and new, then those each added commit
        changes against its first parent. Renames appear at both paths (no rename detection)."""
        new_tree = self._peel_tree(update.new)
        base_tree = self._peel_tree(base)
        if new_tree is None and base_tree is None:
            return
        empty = EMPTY_TREE[len(new_tree or base_tree or "0" * 40)]
        _, out = self._git("diff-tree", "-r", "-z", "--no-renames", base_tree or empty, new_tree or empty)
        yield from _diff_paths(out.split(b"\0"))
        new = self.peel_commit(update.new)
        if new is None:
            return
        hidden, args = self._hide(base)
        request = "".join([f"{new}\n", *hidden]).encode()
        # Each added commit against its first parent (a root commit against the empty tree). awk hands
        # the commits to a new diff-tree every DIFF_CHUNK commits: one diff-tree keeps every tree it has
        # read, so a single one would grow with the push (about 1 kB a commit). A failure of rev-list
        # (a marker line) or of any diff-tree (close's status) fails the whole command.
        git = " ".join(GIT)
        diff = f'{git} --git-dir "$STEPUP_GIT_DIR" diff-tree --stdin -r -z --no-renames --root'
        script = (
            'STEPUP_GIT_DIR="$1"; export STEPUP_GIT_DIR; shift; '
            f'{{ {git} --git-dir "$STEPUP_GIT_DIR" rev-list --parents --stdin "$@" || echo rev-list-failed; }} | '
            f"awk -v chunk={DIFF_CHUNK} -v diff='{diff}' '"
            "/^rev-list-failed$/ { exit 3 } "
            "{ if (NF > 1) print $1, $2 | diff; else print $1 | diff; busy = 1 } "
            "NR % chunk == 0 { busy = 0; if (close(diff)) exit 4 } "
            "END { if (busy && close(diff)) exit 4 }'"
        )
        yield from _diff_paths(self._stream(["/bin/sh", "-c", script, "sh", self.path, *args], request,
                                            f"git diff-tree for {update.ref}", sep=b"\0"))

    def _stream(self, argv: list[str], request: bytes, what: str, *, sep: bytes) -> Iterator[bytes]:
        """Run a command with ``request`` on its input and yield its output split at ``sep``; stop it
        if the reader stops early."""
        proc = Child(argv, self._env, stdin=True, new_session=True)  # a session: a pipeline is killed whole
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        finished = False
        try:
            proc.stdin.write(request)  # rev-list reads all of its input before it starts walking
            proc.stdin.close()
            rest = b""
            while chunk := os.read(proc.stdout.fileno(), 65536):
                *items, rest = (rest + chunk).split(sep)
                yield from items
            if rest:
                yield rest
            if proc.wait() != 0:
                raise GitError(f"{what} failed: {proc.stderr.read().decode(errors='replace').strip()[:200]}")
            finished = True
        finally:
            if not finished:
                proc.kill(group=True)
            proc.wait()
            proc.close()


def _signed(oid: str, found: tuple[str, str, bytes] | None) -> SignedObject | None:
    if found is None:
        raise GitError(f"object {oid[:12]} is not in the repository")
    _, kind, raw = found
    if kind == "commit":
        signature, payload = split_commit(raw)
        return SignedObject(oid, "commit", signature, payload)
    if kind == "tag":
        signature, payload = split_tag(raw)
        return SignedObject(oid, "tag", signature, payload)
    return None


def _diff_paths(tokens: Iterator[bytes] | list[bytes]) -> Iterator[str]:
    """The paths in ``git diff-tree -z --no-renames`` output (commit ids and metadata skipped)."""
    want_path = False
    for token in tokens:
        if want_path:
            yield token.decode("utf-8", errors="surrogateescape")
            want_path = False
        elif token.startswith(b":"):
            want_path = True


def split_commit(raw: bytes) -> tuple[bytes | None, bytes]:
    """Split a raw commit into (signature, signed payload): the payload is the commit without its
    ``gpgsig`` header, as Git signs and verifies it. Two ``gpgsig`` headers make no signature."""
    end_of_header = raw.find(b"\n\n")
    if end_of_header < 0:
        end_of_header = len(raw)
    start = raw.find(b"\ngpgsig ", 0, end_of_header)
    if start < 0:
        return None, raw
    start += 1
    end = raw.find(b"\n", start)
    while end >= 0 and raw.startswith(b" ", end + 1) and end < end_of_header:
        end = raw.find(b"\n", end + 1)
    if end < 0:
        end = len(raw)
    header = raw[start + len(b"gpgsig ") : end]
    payload = raw[:start] + raw[end + 1 :]
    if raw.find(b"\ngpgsig ", end, end_of_header) >= 0:
        return None, payload  # a second signature header: nothing counts
    return header.replace(b"\n ", b"\n") + b"\n", payload
