"""The repository as SPEC §2 sees it: updates, their action, added commits and changed paths.

Objects, refs, diffs and configuration are read through the ``git`` command itself: one long-lived
``git cat-file --batch`` for objects, and ``rev-list``, ``diff-tree``, ``merge-base``, ``config``
where Git computes the answer. Inside a pre-receive hook the pushed objects are still in Git's
quarantine directory; these commands inherit the hook's environment (``GIT_OBJECT_DIRECTORY``,
``GIT_ALTERNATE_OBJECT_DIRECTORIES``, ``GIT_QUARANTINE_PATH``), so they see exactly what Git sees,
configuration included. Every git process runs with ``GIT_NO_REPLACE_OBJECTS=1`` and no graft file, so
a pushed ``refs/replace/*`` ref (or a graft) can never substitute the objects being judged (SPEC §6).
(pygit2 sees them too when opened with ``RepositoryOpenFlag.FROM_ENV``, but
importing it costs about 75 ms, most of the hook's start-up budget: see ``bench/README.md``.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
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
# What is judged is the objects themselves (SPEC §6): git must not substitute replace refs or grafts for
# them, and answers in a fixed language.
_FIXED_ENV = {"GIT_NO_REPLACE_OBJECTS": "1", "GIT_GRAFT_FILE": "/nonexistent/stepup-git/no-grafts", "LC_ALL": "C"}
BASELINE = "baseline"  # the file in the repository's stepup/ folder that keeps the baseline (SPEC §2)
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

    def __init__(self, path: str | None, *, env: Mapping[str, str], from_env: bool = False,
                 remote: str | None = None) -> None:
        """``env``: the environment git runs in (the caller's, passed in). ``from_env``: the hook; git
        finds the repository and its quarantine from ``env``. ``remote``: judge as that remote's server
        would, in a clone: its remote-tracking refs are the existing refs (the client pre-push hook)."""
        self.remote = remote
        self.absent: set[str] = set()  # refs a dry run treats as not existing yet (see pretend_absent)
        self._env = dict(env)
        if not from_env:
            for name in _REPO_ENV:
                self._env.pop(name, None)
        self._env.update(_FIXED_ENV)
        self._batch: Child | None = None
        self._config: dict[str, str] | None = None
        self._config_child: Child | None = None
        self._refs: list[tuple[str, str]] | None = None  # refs do not move while a push is judged
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

    def first_parent(self, oid: str) -> str | None:
        """A commit's first parent, or None for a root commit (or what is not a commit)."""
        found = self._cat(f"{oid}^1") if oid else None
        return found[0] if found else None

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
        _, out = self._git("for-each-ref", "--format=%(objectname) %(objecttype) %(*objectname) %(*objecttype) "
                           "%(refname)", prefix)
        found = []
        for line in out.decode("utf-8", errors="surrogateescape").split("\n"):
            parts = line.split(" ", 4)
            if len(parts) != 5 or parts[4] in self.absent:
                continue
            name = parts[4]
            if self.remote:
                if name == f"{prefix}HEAD":
                    continue
                name = "refs/heads/" + name.removeprefix(prefix)
            if parts[1] == "commit":
                found.append((name, parts[0]))
            elif parts[1] == "tag" and parts[3] == "commit":
                found.append((name, parts[2]))
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
        code, _ = self._git("merge-base", "--is-ancestor", update.old, update.new, ok=(0, 1))
        return "update" if code == 0 else "force-push"

    def _walk_request(self, update: Update, vetted: Sequence[str]) -> bytes | None:
        """rev-list's input for the update's added commits: ``new``, then ``^old`` and ``^`` each vetted
        commit (one that is gone, such as a baseline commit since collected, is ignored); None when
        ``new`` leads to no commit."""
        new = self.peel_commit(update.new)
        if new is None:
            return None
        old = self.peel_commit(update.old)
        hidden = dict.fromkeys([*([old] if old else []), *vetted])
        return "".join([f"{new}\n", *(f"^{oid}\n" for oid in hidden)]).encode()

    def added_commits(self, update: Update, vetted: Sequence[str]) -> Iterator[str]:
        """SPEC §2's added commits: reachable from ``new``, not from ``old`` and not from the ``vetted``
        commits (the rule's refs and the baseline); newest first, streamed from ``git rev-list`` so
        that a push's size never grows this process (``--reverse`` would make git hold the whole list)."""
        request = self._walk_request(update, vetted)
        if request is None:
            return
        for line in self._stream([*GIT, "--git-dir", self.path, "rev-list", "--ignore-missing", "--stdin"], request,
                                 f"git rev-list for {update.ref}", sep=b"\n"):
            yield line.decode("ascii")

    def changed_paths(self, update: Update, vetted: Sequence[str]) -> Iterator[tuple[str, bool]]:
        """SPEC §2's changed paths as (path, is a gitlink): for an update, those whose blob, mode or
        type differ between old and new; then those each added commit changes against its first
        parent. Renames appear at both paths (no rename detection); names keep their bytes."""
        new_tree = self._peel_tree(update.new)
        old_tree = self._peel_tree(update.old)
        if update.old is not None and (new_tree is not None or old_tree is not None):
            empty = EMPTY_TREE[len(new_tree or old_tree or "0" * 40)]
            _, out = self._git("diff-tree", "-r", "-z", "--no-renames", old_tree or empty, new_tree or empty)
            yield from _diff_paths(out.split(b"\0"))
        request = self._walk_request(update, vetted)
        if request is None:
            return
        # Each added commit against its first parent (a root commit against the empty tree). awk hands
        # the commits to a new diff-tree every DIFF_CHUNK commits: one diff-tree keeps every tree it has
        # read, so a single one would grow with the push (about 1 kB a commit). A failure of rev-list
        # (a marker line) or of any diff-tree (close's status) fails the whole command.
        git = " ".join(GIT)
        diff = f'{git} --git-dir "$STEPUP_GIT_DIR" diff-tree --stdin -r -z --no-renames --root'
        script = (
            'STEPUP_GIT_DIR="$1"; export STEPUP_GIT_DIR; shift; '
            f'{{ {git} --git-dir "$STEPUP_GIT_DIR" rev-list --parents --ignore-missing --stdin '
            '|| echo rev-list-failed; } | '
            f"awk -v chunk={DIFF_CHUNK} -v diff='{diff}' '"
            "/^rev-list-failed$/ { exit 3 } "
            "{ if (NF > 1) print $1, $2 | diff; else print $1 | diff; busy = 1 } "
            "NR % chunk == 0 { busy = 0; if (close(diff)) exit 4 } "
            "END { if (busy && close(diff)) exit 4 }'"
        )
        yield from _diff_paths(self._stream(["/bin/sh", "-c", script, "sh", self.path], request,
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
    full, kind, raw = found
    if kind == "commit":
        signature, payload = split_commit(raw, sha256=len(full) == 64)  # 64 hex digits: a SHA-256 repository
        return SignedObject(oid, "commit", signature, payload)
    if kind == "tag":
        signature, payload = split_tag(raw)
        return SignedObject(oid, "tag", signature, payload)
    return None


GITLINK = b"160000"


def _diff_paths(tokens: Iterator[bytes] | list[bytes]) -> Iterator[tuple[str, bool]]:
    """(path, is a gitlink on either side) in ``git diff-tree -z --no-renames`` output (commit ids
    skipped). A name that is not UTF-8 keeps its bytes as surrogate escapes."""
    gitlink: bool | None = None
    for token in tokens:
        if gitlink is not None:
            yield token.decode("utf-8", errors="surrogateescape"), gitlink
            gitlink = None
        elif token.startswith(b":"):
            old_mode, _, rest = token[1:].partition(b" ")
            gitlink = old_mode == GITLINK or rest.startswith(GITLINK)


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
    kept: list[bytes] = []
    signature: list[bytes] = []
    headers = 0
    inside: bytes | None = None  # the signature header whose continuation lines follow, if any
    for line in _header_lines(raw[:end]):
        if inside is not None and line.startswith(b" "):
            if inside == own:
                signature.append(line[1:])
            continue
        inside = None
        if line.startswith(own):
            headers += 1
            signature.append(line[len(own) :])
            inside = own
        elif line.startswith(b"gpgsig"):
            inside = b"gpgsig"  # the other format's signature (or a stray one): not part of the payload
        else:
            kept.append(line)
    payload = b"".join(kept) + raw[end:]
    if headers != 1:
        return None, payload
    block = b"".join(signature)
    return (block if block.endswith(b"\n") else block + b"\n"), payload


def _header_lines(header: bytes) -> Iterator[bytes]:
    """The lines of a commit's header, each with its newline (the last one may have none)."""
    start = 0
    while start < len(header):
        stop = header.find(b"\n", start)
        stop = len(header) if stop < 0 else stop + 1
        yield header[start:stop]
        start = stop
