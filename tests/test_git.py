"""The repository as docs/semantics.md ("Updates") sees it, on real repositories built with git: updates, action, base,
added commits, changed paths and signed payloads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from support import run, run_bytes
from support.keys import People
from support.repos import signing_config

from stepup_git.errors import GitError
from stepup_git.git import Repo, parse_updates, split_commit, split_tag
from stepup_git.model import Update

Z40 = "0" * 40
A40 = "a" * 40
B40 = "b" * 40
C64 = "c" * 64
D64 = "d" * 64


class Work:
    """A working repository (branch `main`) built with the git command line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        run(["git", "init", "-q", "-b", "main", path])

    def git(self, *args: str) -> str:
        return run(["git", *args], cwd=self.path).stdout.removesuffix("\n")

    def write(self, name: str | bytes, text: str = "x\n") -> None:
        target = os.path.join(os.fsencode(self.path), os.fsencode(name))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "--no-gpg-sign", "-m", message)
        return self.git("rev-parse", "HEAD")

    def repo(self) -> Repo:
        return Repo(str(self.path), env=os.environ)


@pytest.fixture
def work(tmp_path: Path) -> Work:
    return Work(tmp_path / "work")


def changed(repo: Repo, old: str | None, new: str, ref: str = "refs/heads/topic",
            vetted: tuple[str, ...] = ()) -> set[str]:
    return {path for path, _ in repo.changed_paths(Update(old, new, ref), vetted)}


def added(repo: Repo, old: str | None, new: str | None, ref: str = "refs/heads/topic",
          vetted: tuple[str, ...] = ()) -> list[str]:
    return list(repo.added_commits(Update(old, new, ref), vetted))


# --- parse_updates ----------------------------------------------------------------------------

def test_parse_updates_accepts_valid_lines() -> None:
    text = f"{Z40} {A40} refs/heads/main\n{A40} {B40} refs/heads/release/1.0\n\n{B40} {Z40} refs/tags/v1\n"
    assert parse_updates(text) == [
        Update(None, A40, "refs/heads/main"),
        Update(A40, B40, "refs/heads/release/1.0"),
        Update(B40, None, "refs/tags/v1"),
    ]
    assert parse_updates(f"{C64} {D64} refs/heads/x") == [Update(C64, D64, "refs/heads/x")]
    assert Update(None, A40, "refs/heads/main").line == f"{Z40} {A40} refs/heads/main"
    assert Update(C64, None, "refs/heads/x").line == f"{C64} {'0' * 64} refs/heads/x"


@pytest.mark.parametrize("line", [
    "hello",
    f"{A40} {B40}",
    f"{A40} {B40} refs/heads/a extra",
    f"{A40}  {B40} refs/heads/a",
    f"{A40.upper()} {B40} refs/heads/a",
    f"{'g' * 40} {B40} refs/heads/a",
    f"{A40[:-1]} {B40} refs/heads/a",
    f"{A40} {B40}0 refs/heads/a",
    f"{A40} {D64} refs/heads/a",
    f"{A40} {B40} HEAD",
    f"{A40} {B40} heads/main",
    f"{A40} {B40} refs/heads/a\tb",
    f"{A40} {B40} refs/heads/a\x01",
])
def test_parse_updates_rejects_malformed_lines(line: str) -> None:
    good = f"{Z40} {A40} refs/heads/ok\n"
    with pytest.raises(GitError, match=r"^input line 2 is not '<old-id> <new-id> <ref>': "):
        parse_updates(good + line + "\n")


def test_parse_updates_keeps_a_delete_with_two_zero_ids() -> None:
    """Git's delete of a ref the client says does not exist; the judge looks at what it is now."""
    assert parse_updates(f"{Z40} {Z40} refs/heads/main\n") == [Update(None, None, "refs/heads/main")]


def test_parse_updates_rejects_empty_input() -> None:
    for text in ("", "\n\n"):
        with pytest.raises(GitError, match="no ref updates"):
            parse_updates(text)


# --- action -----------------------------------------------------------------------------------

def test_action_classification(work: Work) -> None:
    a = work.commit("a")
    b = work.commit("b")
    work.git("checkout", "-q", "-b", "side", a)
    c = work.commit("c")
    repo = work.repo()
    assert repo.action(Update(None, b, "refs/heads/x")) == "create"
    assert repo.action(Update(a, b, "refs/heads/x")) == "update"
    assert repo.action(Update(b, b, "refs/heads/x")) == "update"
    assert repo.action(Update(b, a, "refs/heads/x")) == "force-push"
    assert repo.action(Update(b, c, "refs/heads/x")) == "force-push"
    assert repo.action(Update(b, None, "refs/heads/x")) == "delete"


def test_tag_object_replacing_another_is_a_force_push(work: Work) -> None:
    a = work.commit("a")
    first = work.git("tag", "-a", "-m", "one", "v1", a) or work.git("rev-parse", "refs/tags/v1")
    b = work.commit("b")
    work.git("tag", "-f", "-a", "-m", "two", "v1", b)
    second = work.git("rev-parse", "refs/tags/v1")
    assert first != second
    repo = work.repo()
    assert (repo.type_of(first), repo.type_of(second)) == ("tag", "tag")
    assert repo.action(Update(first, second, "refs/tags/v1")) == "force-push"
    assert repo.action(Update(a, second, "refs/tags/v1")) == "force-push"
    assert repo.action(Update(a, b, "refs/tags/v1")) == "update"  # lightweight tags move like branches


# --- refs and baseline ------------------------------------------------------------------------

def test_refs_lead_to_commits_through_annotated_tags_and_skip_the_rest(work: Work) -> None:
    a = work.commit("a")
    b = work.commit("b")
    work.git("tag", "-a", "-m", "t", "v1", a)
    tree = work.git("rev-parse", f"{b}^{{tree}}")
    work.git("update-ref", "refs/tags/a-tree", tree)
    work.git("update-ref", "refs/notes/x", a)
    assert sorted(work.repo().refs()) == [("refs/heads/main", b), ("refs/notes/x", a), ("refs/tags/v1", a)]


def test_refs_of_a_clone_judged_for_a_remote_are_its_tracking_refs_as_branches(work: Work) -> None:
    a = work.commit("a")
    b = work.commit("b")
    work.git("update-ref", "refs/remotes/origin/main", a)
    work.git("update-ref", "refs/remotes/origin/release/1", b)
    work.git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    repo = Repo(str(work.path), env=os.environ, remote="origin")
    assert sorted(repo.refs()) == [("refs/heads/main", a), ("refs/heads/release/1", b)]
    assert repo.baseline() == []  # a clone has no baseline of the server's


def test_a_dry_run_treats_the_judged_ref_and_its_tracking_twin_as_absent(work: Work) -> None:
    a = work.commit("a")
    work.git("update-ref", "refs/remotes/origin/main", a)
    work.git("update-ref", "refs/heads/other", a)
    repo = work.repo()
    repo.pretend_absent("refs/heads/main")
    assert repo.refs() == [("refs/heads/other", a)]


def test_the_baseline_is_recorded_and_read_back(work: Work) -> None:
    a = work.commit("a")
    b = work.commit("b")
    work.git("update-ref", "refs/heads/old", a)
    repo = work.repo()
    assert repo.baseline() == []  # never recorded
    assert repo.record_baseline() == 2
    assert sorted(repo.baseline()) == sorted([a, b])
    lines = (Path(repo.path) / "stepup" / "baseline").read_text().splitlines()
    assert sorted(lines) == sorted([f"{a} refs/heads/old", f"{b} refs/heads/main"])
    (Path(repo.path) / "stepup" / "baseline").write_text("garbage\n")
    assert repo.baseline() == []  # what is not a commit id is no baseline


def test_replace_refs_never_substitute_what_is_read(work: Work) -> None:
    work.write("a.txt", "real\n")
    real = work.commit("real")
    work.write("a.txt", "fake\n")
    fake = work.commit("fake")
    work.git("replace", real, fake)
    assert work.git("show", "-s", "--format=%s", real) == "fake"  # git itself substitutes
    repo = work.repo()
    obj = repo.signed_object(real)
    assert obj is not None and b"\n\nreal\n" in obj.payload
    assert added(repo, None, real) == [real]
    assert changed(repo, None, real) == {"a.txt"}


def test_grafts_and_shallow_never_substitute_parents(work: Work) -> None:
    """libgit2 applies info/grafts and shallow to every commit it parses; the objects are read
    without them, so the parents are the ones the commits name."""
    work.write("a.txt", "1\n")
    a = work.commit("a")
    work.write("db/migrations/1.sql")
    b = work.commit("b")
    work.write("a.txt", "2\n")
    c = work.commit("c")
    git_dir = work.path / ".git"
    (git_dir / "info").mkdir(exist_ok=True)
    (git_dir / "info" / "grafts").write_text(f"{c} {a}\n")  # c's parent would be a: b skipped
    (git_dir / "shallow").write_text(f"{b}\n")  # b would be a root
    assert work.git("-c", "advice.graftFileDeprecated=false", "log", "--format=%s", c) == "c\na"  # git grafts
    repo = work.repo()
    assert added(repo, a, c) == [c, b]
    assert repo.first_parent(c) == b and repo.first_parent(b) == a
    assert changed(repo, a, c) == {"a.txt", "db/migrations/1.sql"}
    assert repo.action(Update(b, c, "refs/heads/x")) == "update"
    assert repo.action(Update(a, b, "refs/heads/x")) == "update"


# --- added commits ----------------------------------------------------------------------------

def test_added_commits_of_update_is_the_range(work: Work) -> None:
    a = work.commit("a")
    b, c, d = work.commit("b"), work.commit("c"), work.commit("d")
    repo = work.repo()
    assert added(repo, a, d) == [d, c, b]  # newest first, as git rev-list gives them
    assert added(repo, c, d) == [d]
    assert added(repo, d, d) == []
    assert added(repo, d, None) == []


def test_added_commits_of_force_push(work: Work) -> None:
    a = work.commit("a")
    b = work.commit("b")
    work.git("checkout", "-q", "-b", "side", a)
    c = work.commit("c")
    assert added(work.repo(), b, c) == [c]


def test_added_commits_of_create_stop_at_the_vetted_commits(work: Work) -> None:
    a = work.commit("a")
    b = work.commit("b")
    work.git("checkout", "-q", "-b", "topic", a)
    c1, c2 = work.commit("c1"), work.commit("c2")
    work.git("checkout", "-q", "main")
    assert added(work.repo(), None, c2, vetted=(b,)) == [c2, c1]
    assert added(work.repo(), None, c2) == [c2, c1, a]  # nothing vetted: every commit is new
    assert added(work.repo(), c1, c2, vetted=(b,)) == [c2]
    assert added(work.repo(), None, c2, vetted=("ab" * 20, b)) == [c2, c1]  # a vetted commit since gone


def test_added_commits_through_an_annotated_tag(work: Work) -> None:
    a = work.commit("a")
    b = work.commit("b")
    work.git("tag", "-a", "-m", "t", "v1", b)
    tag = work.git("rev-parse", "refs/tags/v1")
    repo = work.repo()
    assert repo.peel_commit(tag) == b
    assert added(repo, a, tag, "refs/tags/v1") == [b]


# --- changed paths ----------------------------------------------------------------------------

def test_changed_paths_modified_added_deleted(work: Work) -> None:
    work.write("keep.txt")
    work.write("mod.txt", "1\n")
    work.write("gone.txt")
    a = work.commit("a")
    work.write("mod.txt", "2\n")
    work.write("new/file.txt")
    os.unlink(work.path / "gone.txt")
    b = work.commit("b")
    assert changed(work.repo(), a, b) == {"mod.txt", "new/file.txt", "gone.txt"}


def test_changed_paths_rename_counts_at_both_paths(work: Work) -> None:
    work.write("db/migrations/0001.sql", "create table t;\n")
    a = work.commit("a")
    (work.path / "archive").mkdir()
    work.git("mv", "db/migrations/0001.sql", "archive/0001.sql")
    b = work.commit("rename")
    assert changed(work.repo(), a, b) == {"db/migrations/0001.sql", "archive/0001.sql"}


def test_changed_paths_mode_change(work: Work) -> None:
    work.write("run.sh", "#!/bin/sh\n")
    work.write("other.txt")
    a = work.commit("a")
    (work.path / "run.sh").chmod(0o755)
    b = work.commit("chmod +x")
    assert work.git("diff", "--raw", a, b).startswith(":100644 100755")
    assert changed(work.repo(), a, b) == {"run.sh"}


def test_changed_paths_file_becomes_symlink(work: Work) -> None:
    work.write("target.txt", "x\n")
    work.write("link", "target.txt")  # same bytes as the symlink will hold
    a = work.commit("a")
    os.unlink(work.path / "link")
    os.symlink("target.txt", work.path / "link")
    b = work.commit("symlink")
    assert work.git("diff", "--raw", a, b).startswith(":100644 120000")
    assert changed(work.repo(), a, b) == {"link"}


def test_changed_paths_submodule_gitlink(work: Work) -> None:
    work.write("README")
    a = work.commit("a")
    sha1, sha2 = "1" * 40, "2" * 40
    work.git("update-index", "--add", "--cacheinfo", f"160000,{sha1},vendor/lib")
    work.git("commit", "-q", "--no-gpg-sign", "-m", "add gitlink")
    b = work.git("rev-parse", "HEAD")
    work.git("update-index", "--cacheinfo", f"160000,{sha2},vendor/lib")
    work.git("commit", "-q", "--no-gpg-sign", "-m", "move gitlink")
    c = work.git("rev-parse", "HEAD")
    repo = work.repo()
    assert changed(repo, a, b) == {"vendor/lib"}
    assert changed(repo, b, c) == {"vendor/lib"}


def test_changed_paths_of_root_commit_against_empty_tree(work: Work) -> None:
    work.write("a.txt")
    work.write("db/migrations/0001.sql")
    root = work.commit("root")
    work.git("update-ref", "-d", "refs/heads/main")
    assert changed(work.repo(), None, root, "refs/heads/main") == {"a.txt", "db/migrations/0001.sql"}


def test_changed_paths_include_a_change_reverted_within_the_push(work: Work) -> None:
    work.write("README")
    a = work.commit("a")
    work.write("db/migrations/0002.sql", "drop table users;\n")
    work.commit("sneak in")
    os.unlink(work.path / "db/migrations/0002.sql")
    c = work.commit("take out")
    assert work.git("diff", "--name-only", a, c) == ""
    assert changed(work.repo(), a, c) == {"db/migrations/0002.sql"}


def test_changed_paths_of_many_commits_include_what_each_commit_changed(work: Work) -> None:
    """Each added commit's own changes: a file added and removed inside the push shows only in its
    commits, not in the base..new diff."""
    work.write("README")
    a = work.commit("a")
    for n in range(7):
        work.write(f"db/migrations/{n}.sql", "alter table t;\n")
        work.commit(f"add {n}")
        os.unlink(work.path / f"db/migrations/{n}.sql")
        work.commit(f"remove {n}")
    tip = work.git("rev-parse", "HEAD")
    assert changed(work.repo(), a, tip) == {f"db/migrations/{n}.sql" for n in range(7)}


def loose_path(work: Work, oid: str) -> Path:
    return work.path / ".git" / "objects" / oid[:2] / oid[2:]


def test_a_missing_object_in_the_walk_is_an_error_not_an_empty_list(work: Work) -> None:
    """A commit whose parent is gone cannot be judged: the walk (and the diffs) fail, never read as
    "nothing changed"."""
    work.write("README")
    a = work.commit("a")
    work.write("db/migrations/1.sql")
    b = work.commit("b")
    loose_path(work, a).unlink()
    repo = work.repo()
    with pytest.raises(GitError, match=r"^(cannot walk the commits of refs/heads/topic: |object )"):
        list(repo.changed_paths(Update(None, b, "refs/heads/topic"), ()))
    with pytest.raises(GitError):
        list(repo.added_commits(Update(None, b, "refs/heads/topic"), ()))


def test_changed_paths_are_read_only_as_far_as_they_are_asked_for(work: Work) -> None:
    """The first changed path comes before the older commits are diffed: a rule that matches early
    never pays for the rest of a big push."""
    work.write("README")
    a = work.commit("a")
    work.write("old.txt")
    work.commit("b")
    work.write("new.txt")
    c = work.commit("c")
    loose_path(work, work.git("rev-parse", f"{a}^{{tree}}")).unlink()  # diffing b against a would fail
    paths = work.repo().changed_paths(Update(None, c, "refs/heads/topic"), (a,))
    assert next(paths) == ("new.txt", False)
    with pytest.raises(GitError):
        next(paths)


def test_changed_paths_of_a_merge_use_the_union_rule(work: Work) -> None:
    work.write("README")
    a = work.commit("a")
    work.write("db/migrations/0003.sql", "alter table t;\n")
    main = work.commit("migration on main")
    work.git("checkout", "-q", "-b", "side", a)
    work.write("db/migrations/0003.sql", "alter table t;\n")
    work.write("src/app.py", "print(1)\n")
    side = work.commit("same migration on a side branch")
    work.git("checkout", "-q", "main")
    work.git("merge", "-q", "--no-edit", "--no-gpg-sign", "side")
    merge = work.git("rev-parse", "HEAD")
    assert work.git("diff", "--name-only", main, merge) == "src/app.py"
    repo = work.repo()
    assert added(repo, main, merge, "refs/heads/main") == [merge, side]
    assert changed(repo, main, merge, "refs/heads/main") == {"src/app.py", "db/migrations/0003.sql"}


def test_changed_paths_preserve_names_exactly(work: Work) -> None:
    work.write("README")
    a = work.commit("a")
    latin1 = b"caf\xe9.sql"
    names: list[str | bytes] = [latin1, "caf\u00e9.sql", "cafe\u0301.sql", "A.txt", "a.txt"]
    for name in names:
        work.write(name)
    b = work.commit("names")
    paths = changed(work.repo(), a, b)
    assert paths == {"caf\udce9.sql", "caf\u00e9.sql", "cafe\u0301.sql", "A.txt", "a.txt"}
    assert os.fsencode("caf\udce9.sql") == latin1


# --- signed payloads --------------------------------------------------------------------------

def raw_object(work: Work, oid: str) -> bytes:
    kind = work.git("cat-file", "-t", oid)
    return run_bytes(["git", "cat-file", kind, oid], cwd=work.path).stdout


def test_split_tag_splits_exactly_before_the_signature(work: Work, people: People) -> None:
    work.commit("a")
    message = "release\n\n-----BEGIN PGP SIGNATURE-----\nnot a signature\n-----END PGP SIGNATURE-----\n"
    run(["git", *signing_config(people.alice), "tag", "-s", "-u", people.alice.fingerprint,
         "-m", message, "v1"], cwd=work.path)
    oid = work.git("rev-parse", "refs/tags/v1")
    raw = raw_object(work, oid)
    signature, payload = split_tag(raw)
    assert signature is not None
    assert payload + signature == raw
    assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----\n")
    assert signature.rstrip().endswith(b"-----END PGP SIGNATURE-----")
    assert signature.count(b"BEGIN PGP SIGNATURE") == 1
    assert payload.endswith(b"-----END PGP SIGNATURE-----\n")  # the fake block stays in the payload
    status = people.gpg.verify_detached(payload, signature)
    assert any(s.startswith(f"VALIDSIG {people.alice.fingerprint}") for s in status), status
    obj = work.repo().signed_object(oid)
    assert obj is not None
    assert (obj.kind, obj.signature, obj.payload) == ("tag", signature, payload)


def test_split_tag_of_unsigned_and_ssh_signed_tags(work: Work, people: People) -> None:
    work.commit("a")
    work.git("tag", "-a", "--no-sign", "-m", "plain", "v0")
    raw = raw_object(work, work.git("rev-parse", "refs/tags/v0"))
    assert split_tag(raw) == (None, raw)
    run(["git", *signing_config(people.bob_ssh), "tag", "-s", "-m", "ssh", "v1"], cwd=work.path)
    raw = raw_object(work, work.git("rev-parse", "refs/tags/v1"))
    signature, payload = split_tag(raw)
    assert signature is not None and signature.startswith(b"-----BEGIN SSH SIGNATURE-----\n")
    assert payload + signature == raw and payload.endswith(b"ssh\n")


def test_signed_commit_payload_excludes_the_signature_header(work: Work, people: People) -> None:
    run(["git", *signing_config(people.alice), "commit", "-q", "--allow-empty", "-S", "-m", "signed"],
        cwd=work.path)
    oid = work.git("rev-parse", "HEAD")
    obj = work.repo().signed_object(oid)
    assert obj is not None and obj.kind == "commit" and obj.signature is not None
    assert b"gpgsig" not in obj.payload and b"gpgsig" in raw_object(work, oid)
    status = people.gpg.verify_detached(obj.payload, obj.signature)
    assert any(s.startswith(f"VALIDSIG {people.alice.fingerprint}") for s in status), status
    unsigned = work.commit("unsigned")
    plain = work.repo().signed_object(unsigned)
    assert plain is not None and plain.signature is None and plain.payload == raw_object(work, unsigned)


def test_missing_object_is_a_git_error(work: Work) -> None:
    work.commit("a")
    with pytest.raises(GitError, match=r"^object aaaaaaaaaaaa is not in the repository$"):
        work.repo().action(Update(A40, B40, "refs/heads/main"))


def test_opening_a_non_repository_is_a_git_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="cannot open the repository"):
        Repo(str(tmp_path), env=os.environ)


# --- quarantine and the environment ----------------------------------------------------------

def quarantined_commit(work: Work, parent: str) -> tuple[Path, str]:
    """A commit written only into a quarantine object directory, as receive-pack keeps a push's objects."""
    objects = work.path / ".git" / "objects"
    quarantine = objects / "tmp_objdir-incoming-test"
    quarantine.mkdir()
    env = {"GIT_OBJECT_DIRECTORY": str(quarantine), "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects)}
    tree = work.git("rev-parse", f"{parent}^{{tree}}")
    oid = run(["git", "commit-tree", "--no-gpg-sign", "-p", parent, "-m", "pushed", tree], cwd=work.path,
              env=env).stdout.strip()
    assert not (objects / oid[:2] / oid[2:]).exists() and (quarantine / oid[:2] / oid[2:]).exists()
    return quarantine, oid


def test_the_hook_sees_quarantined_objects_through_the_environment_it_is_given(
        work: Work, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = work.commit("a")
    quarantine, pushed = quarantined_commit(work, a)
    git_dir = str(work.path / ".git")
    hook_env = {"GIT_DIR": git_dir, "GIT_QUARANTINE_PATH": str(quarantine), "GIT_OBJECT_DIRECTORY": str(quarantine),
                "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(work.path / ".git" / "objects")}
    hooked = Repo(git_dir, env=hook_env, from_env=True)
    assert hooked.type_of(pushed) == "commit"
    assert list(hooked.added_commits(Update(a, pushed, "refs/heads/main"), ())) == [pushed]
    assert hooked.action(Update(a, pushed, "refs/heads/main")) == "update"
    # a command-line run ignores the quarantine variables; so does the hook given none
    for repo in (Repo(git_dir, env=hook_env), Repo(git_dir, env={"GIT_DIR": git_dir}, from_env=True)):
        with pytest.raises(GitError, match=r"^object [0-9a-f]{12} is not in the repository$"):
            repo.type_of(pushed)
    # the process environment is never read: it names the quarantine and another repository here
    other = Work(tmp_path / "other")
    other.commit("other")
    for name, value in hook_env.items():
        monkeypatch.setenv(name, value if name != "GIT_DIR" else str(other.path / ".git"))
    alone = Repo(git_dir, env={"GIT_DIR": git_dir}, from_env=True)
    assert alone.path == os.path.realpath(git_dir)
    assert alone.refs() == [("refs/heads/main", a)]
    with pytest.raises(GitError):
        alone.type_of(pushed)


HOOK = """#!{python}
import os, sys
from stepup_git.git import Repo
from stepup_git.model import Update
old, new, ref = sys.stdin.read().split()
env = dict(os.environ)
seen = Repo(env["GIT_DIR"], env=env, from_env=True)
print("quarantined:", bool(env.get("GIT_QUARANTINE_PATH")), file=sys.stderr)
print("seen:", seen.type_of(new), list(seen.added_commits(Update(None, new, ref), ())) == [new], file=sys.stderr)
plain = Repo(env["GIT_DIR"], env={{"GIT_DIR": env["GIT_DIR"]}}, from_env=True)
try:
    plain.type_of(new)
    print("without the quarantine: seen", file=sys.stderr)
except Exception:
    print("without the quarantine: not seen", file=sys.stderr)
sys.exit(1)
"""


def test_a_real_push_is_judged_from_its_quarantine(work: Work, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    run(["git", "init", "-q", "--bare", bare])
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(HOOK.format(python=sys.executable))
    hook.chmod(0o755)
    work.commit("a")
    proc = run(["git", "push", str(bare), "HEAD:refs/heads/main"], cwd=work.path, check=False)
    assert proc.returncode != 0
    remote = [line.removeprefix("remote: ").strip() for line in proc.stderr.splitlines() if line.startswith("remote:")]
    assert remote == ["quarantined: True", "seen: commit True", "without the quarantine: not seen"], proc.stderr


SIG = b"gpgsig -----BEGIN PGP SIGNATURE-----\n \n iHUEABYKAB0WIQ\n =abcd\n -----END PGP SIGNATURE-----\n"
HEAD = (b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@b> 1 +0000\n"
        b"committer A <a@b> 1 +0000\n")


def test_split_commit_takes_the_gpgsig_header_out_of_the_payload() -> None:
    signature, payload = split_commit(HEAD + SIG + b"\nmessage\n")
    assert signature == b"-----BEGIN PGP SIGNATURE-----\n\niHUEABYKAB0WIQ\n=abcd\n-----END PGP SIGNATURE-----\n"
    assert payload == HEAD + b"\nmessage\n"


def test_split_commit_keeps_headers_after_the_signature() -> None:
    raw = HEAD + SIG + b"mergetag object 1111111111111111111111111111111111111111\n type commit\n\nmsg\n"
    signature, payload = split_commit(raw)
    assert signature is not None
    assert payload == HEAD + b"mergetag object 1111111111111111111111111111111111111111\n type commit\n\nmsg\n"


def test_split_commit_two_signature_headers_make_no_signature() -> None:
    assert split_commit(HEAD + SIG + SIG + b"\nmsg\n")[0] is None


def test_split_commit_ignores_gpgsig_in_the_message() -> None:
    raw = HEAD + b"\nmessage\ngpgsig not a header\n"
    assert split_commit(raw) == (None, raw)
