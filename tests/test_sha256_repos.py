"""SHA-256 repositories (docs/semantics.md, "Valid signatures").

`split_commit` reads a commit's signature as Git's `parse_buffer_signed_by_header` does: the
`gpgsig-sha256` header in a SHA-256 repository, `gpgsig` in a SHA-1 one, over the commit without any
header whose name starts with `gpgsig`.

libgit2 as built into the pygit2 wheels cannot read SHA-256 repositories, so stepup-git cannot judge
their pushes: the hook refuses every push to one with a single line saying so, in enforce and audit
mode alike (as a policy error: it cannot know what it would accept), and never reads a signed commit
as unsigned or an unsigned one as signed. `check`, `verify` and `install` stop with the same line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support import run, run_bytes
from support.keys import Key, People, signed_policy
from support.lines import unwrap
from support.repos import Clone, MakeClone, Server

from stepup_git.git import sha256_refusal, split_commit
from stepup_git.install import launcher_text

HEAD = b"tree " + b"a" * 64 + b"\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 1 +0000\n"
SIG = b" -----BEGIN PGP SIGNATURE-----\n \n iQ\n -----END PGP SIGNATURE-----\n"
BLOCK = b"-----BEGIN PGP SIGNATURE-----\n\niQ\n-----END PGP SIGNATURE-----\n"
REFUSAL = sha256_refusal()
MAIN = "refs/heads/main"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"
AMEND = "git commit --amend --no-edit -S, then push again"


# --------------------------------------------------------------------------- split_commit


def test_sha256_signature_header_is_the_signature() -> None:
    raw = HEAD + b"gpgsig-sha256" + SIG + b"\nmessage\n"
    assert split_commit(raw, sha256=True) == (BLOCK, HEAD + b"\nmessage\n")


def test_only_the_other_formats_header_is_no_signature() -> None:
    """Either format's header alone, in the other format's repository: unsigned, and no part of the
    payload."""
    sha1_only = HEAD + b"gpgsig" + SIG + b"\nmessage\n"
    sha256_only = HEAD + b"gpgsig-sha256" + SIG + b"\nmessage\n"
    assert split_commit(sha1_only, sha256=True) == (None, HEAD + b"\nmessage\n")
    assert split_commit(sha256_only, sha256=False) == (None, HEAD + b"\nmessage\n")
    assert split_commit(sha1_only, sha256=False) == (BLOCK, HEAD + b"\nmessage\n")


def test_both_headers_sign_without_either() -> None:
    """A commit carrying both formats' signatures (as Git writes in a repository that keeps both):
    each format reads its own, over the commit without either."""
    other = b"gpgsig -----BEGIN PGP SIGNATURE-----\n other\n -----END PGP SIGNATURE-----\n"
    raw = HEAD + other + b"gpgsig-sha256" + SIG + b"mergetag object x\n type commit\n\nmessage\n"
    payload = HEAD + b"mergetag object x\n type commit\n\nmessage\n"
    assert split_commit(raw, sha256=True) == (BLOCK, payload)
    assert split_commit(raw, sha256=False) == (
        b"-----BEGIN PGP SIGNATURE-----\nother\n-----END PGP SIGNATURE-----\n", payload
    )


def test_two_headers_of_the_own_format_are_no_signature() -> None:
    raw = HEAD + b"gpgsig-sha256" + SIG + b"gpgsig-sha256" + SIG + b"\nmsg\n"
    assert split_commit(raw, sha256=True) == (None, HEAD + b"\nmsg\n")


def test_any_header_named_gpgsig_is_left_out_of_the_payload() -> None:
    """Git drops every header line starting with `gpgsig` (and its continuation lines) from what it
    verifies; only the exact name of the repository's format is the signature."""
    raw = HEAD + b"gpgsigx junk\n more\n" + b"gpgsig" + SIG + b"\nmsg gpgsig in the message\n"
    assert split_commit(raw) == (BLOCK, HEAD + b"\nmsg gpgsig in the message\n")
    assert split_commit(raw, sha256=True) == (None, HEAD + b"\nmsg gpgsig in the message\n")


def test_a_message_line_named_gpgsig_is_not_a_header() -> None:
    raw = HEAD + b"\ngpgsig-sha256" + SIG
    assert split_commit(raw, sha256=True) == (None, raw)


# --------------------------------------------------------------------------- end to end


def test_the_refusal_is_one_line_naming_the_format_and_the_library() -> None:
    assert REFUSAL.startswith("the repository uses SHA-256 object ids, which this stepup-git (libgit2 1.")
    assert REFUSAL.endswith("cannot read; every push is refused") and "\n" not in REFUSAL


@pytest.fixture
def server256(tmp_path: Path, people: People) -> Server:
    """A bare SHA-256 repository with the hook in place the way a server-wide hooks folder puts it
    there (core.hooksPath): `install` itself refuses such a repository."""
    server = Server(tmp_path / "server256", object_format="sha256")
    server.write_policy(signed_policy(people.alice), {"alice.asc": people.alice.export()})
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "pre-receive").write_text(launcher_text(sys.executable))
    (hooks / "pre-receive").chmod(0o755)
    server.git("config", "core.hooksPath", str(hooks))
    server.git("config", "stepup.policy", str(server.policy_path))
    return server


@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_every_push_to_a_sha256_server_is_refused_with_one_line(
    mode: str, people: People, server256: Server, make_clone: MakeClone
) -> None:
    server256.git("config", "stepup.mode", mode)
    clone = make_clone(server256)
    assert clone.git("rev-parse", "--show-object-format") == "sha256"
    unsigned = clone.commit("Unsigned")
    assert len(unsigned) == 64
    result = clone.push("HEAD:main")
    assert not result.ok
    assert result.remote == [f"stepup-git: push rejected: {REFUSAL}"]
    assert server256.ref(MAIN) is None
    # a signed commit is refused the same way: it is never read as signed, nor as unsigned
    signed = clone.commit("Signed", sign=people.alice)
    assert "\ngpgsig-sha256 " in clone.git("cat-file", "commit", signed)
    result = clone.push("HEAD:main")
    assert not result.ok
    assert result.remote == [f"stepup-git: push rejected: {REFUSAL}"]
    assert server256.ref(MAIN) is None


def test_check_and_verify_of_a_sha256_repository_stop_with_the_line(
    server256: Server, make_clone: MakeClone
) -> None:
    clone = make_clone(server256)
    base = clone.commit("Base")
    tip = clone.commit("Tip")
    stepup = [sys.executable, "-m", "stepup_git"]
    for argv in (
        [*stepup, "verify", "--repo", str(clone.path), "--range", f"{base}..{tip}", "--ref", MAIN,
         "--policy", str(server256.policy_path)],
        [*stepup, "check", "--repo", str(clone.path), "--policy", str(server256.policy_path), base, tip,
         MAIN],
        [*stepup, "check", "--repo", str(server256.path), base, tip, MAIN],
    ):
        proc = run(argv, check=False)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"stepup-git: {REFUSAL}\n"), argv


def test_install_refuses_a_sha256_repository(tmp_path: Path, people: People) -> None:
    server = Server(tmp_path / "plain256", object_format="sha256")
    server.write_policy(signed_policy(people.alice), {"alice.asc": people.alice.export()})
    proc = server.install(check=False)
    assert proc.returncode == 2
    assert proc.stderr == f"stepup-git: {server.path}: {REFUSAL}\n"
    assert not (server.path / "hooks" / "pre-receive").exists()


# --------------------------------------------------------------------------- crafted headers, SHA-1


def signed_finding(oid: str, found: str, fix: str) -> list[str]:
    """A finding's lines as :func:`unwrap` joins them."""
    return [
        f'{MAIN}: rule "signed" failed for commit {oid[:10]}',
        "    required: every new commit signed by a policy key of tier maintainer or higher",
        f"    found:    {found}",
        f"    fix:      sign with a policy key of tier maintainer or higher (git config user.signingkey "
        f"<key id>): {fix}",
    ]


def write_commit(clone: Clone, raw: bytes) -> str:
    return run_bytes(["git", "hash-object", "-t", "commit", "-w", "--stdin"], cwd=clone.path,
                     input=raw).stdout.decode().strip()


def git_verifies(clone: Clone, oid: str, people: People) -> bool:
    """`git verify-commit` with the signer's own GnuPG home (where alice's key is trusted)."""
    proc = run(["git", "verify-commit", oid], cwd=clone.path, env={"GNUPGHOME": str(people.gpg.home)},
               check=False)
    return proc.returncode == 0


def signed_raw(clone: Clone, key: Key) -> bytes:
    oid = clone.commit("Signed", sign=key)
    return run_bytes(["git", "cat-file", "commit", oid], cwd=clone.path).stdout


def push_crafted(clone: Clone, raw: bytes) -> tuple[str, list[str]]:
    oid = write_commit(clone, raw)
    clone.git("update-ref", MAIN, oid)
    result = clone.push("+main:main")
    return oid, result.remote


def test_a_sha1_signature_under_the_sha256_header_is_unsigned(
    people: People, server: Server, make_clone: MakeClone
) -> None:
    """A SHA-1 repository's signature moved to the `gpgsig-sha256` header: no signature (git agrees);
    the commit as signed is accepted."""
    server.write_policy(signed_policy(people.alice), {"alice.asc": people.alice.export()})
    server.install()
    clone = make_clone(server)
    raw = signed_raw(clone, people.alice)
    assert raw.count(b"\ngpgsig ") == 1
    oid, remote = push_crafted(clone, raw.replace(b"\ngpgsig ", b"\ngpgsig-sha256 "))
    assert not git_verifies(clone, oid, people)
    assert unwrap(remote) == [REJECTED, *signed_finding(oid, "no signature", AMEND)]
    assert server.ref(MAIN) is None

    oid, remote = push_crafted(clone, raw)
    assert git_verifies(clone, oid, people)
    assert remote == [ACCEPTED]
    assert server.ref(MAIN) == oid
