"""SHA-256 repositories (SPEC §5.1): a commit's signature is the `gpgsig-sha256` header there and the
`gpgsig` header in a SHA-1 repository; the signed payload is the commit without any header whose name
starts with `gpgsig`, as Git's `parse_buffer_signed_by_header` has it. A signed commit never reads as
unsigned, nor an unsigned one as signed: every crafted variant below is also put to `git verify-commit`,
whose verdict ours must match.

End to end, the hook protects a bare SHA-256 server repository: install, a signed push accepted, an
unsigned one refused, a push certificate (with 64-hex update lines) accepted once and not twice.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from support import run, run_bytes
from support.keys import Key, People, key_toml, signed_policy
from support.repos import Clone, MakeClone, Server, signing_config

from stepup_git.gitrepo import split_commit

MAIN = "refs/heads/main"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy (nothing was updated)"
ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"
HEAD = b"tree " + b"a" * 64 + b"\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 1 +0000\n"
SIG = b" -----BEGIN PGP SIGNATURE-----\n \n iQ\n -----END PGP SIGNATURE-----\n"
BLOCK = b"-----BEGIN PGP SIGNATURE-----\n\niQ\n-----END PGP SIGNATURE-----\n"


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


@pytest.fixture
def server256(tmp_path: Path) -> Server:
    return Server(tmp_path / "server256", object_format="sha256")


def install(server: Server, people: People, text: str) -> None:
    server.write_policy(text, {"alice.asc": people.alice.export()})
    server.install()


def signed_finding(oid: str, found: str, fix: str) -> list[str]:
    return [
        f'{MAIN}: rule "signed" failed for commit {oid[:10]}',
        "    required: every new commit signed by a policy key of tier maintainer or higher",
        f"    found:    {found}",
        f"    fix:      sign with a policy key of tier maintainer or higher (git config user.signingkey "
        f"<key id>): {fix}",
    ]


AMEND = "git commit --amend --no-edit -S, then push again"


def test_sha256_server_accepts_signed_and_refuses_unsigned(
    people: People, server256: Server, make_clone: MakeClone
) -> None:
    install(server256, people, signed_policy(people.alice))
    clone = make_clone(server256)
    assert clone.git("rev-parse", "--show-object-format") == "sha256"
    clone.write("app.txt", "one\n")
    unsigned = clone.commit("Unsigned")
    assert len(unsigned) == 64
    result = clone.push("HEAD:main")
    assert not result.ok
    assert result.remote == [REJECTED, *signed_finding(unsigned, "no signature", AMEND)]
    assert server256.ref(MAIN) is None

    clone.git(*signing_config(people.alice), "commit", "-q", "--amend", "--no-edit", "-S")
    signed = clone.rev()
    raw = clone.git("cat-file", "commit", signed)
    assert "\ngpgsig-sha256 -----BEGIN PGP SIGNATURE-----" in raw and "\ngpgsig " not in raw
    result = clone.push("HEAD:main")
    assert result.ok, result
    assert result.remote == [ACCEPTED]
    assert server256.ref(MAIN) == signed
    record = server256.audit_records()[-1]
    assert (record["old"], record["new"], record["decision"]) == ("0" * 64, signed, "accept")
    (rule,) = record["rules"]
    assert [(p["kind"], p["owner"]) for p in rule["proofs"]] == [("commit-signature", "alice")]

    follow = clone.commit("Follow-up", sign=people.alice)
    result = clone.push("HEAD:main")
    assert result.ok and server256.ref(MAIN) == follow
    audit = run([sys.executable, "-m", "stepup_git", "audit", "verify", "--log", server256.audit_path], check=False)
    assert audit.returncode == 0, audit


def step_up_policy(people: People) -> str:
    return (
        "version = 1\n" + key_toml(people.alice, "alice", "maintainer")
        + '[[rules]]\nname = "main-step-up"\nrefs = ["refs/heads/**"]\nrequire = "step-up"\n'
        'tier = "maintainer"\nproofs = ["push-certificate"]\n'
    )


def test_sha256_push_certificate_is_accepted_once(
    people: People, server256: Server, make_clone: MakeClone
) -> None:
    """A certificate listing 64-hex ids proves a create, an update and a delete, each once."""
    install(server256, people, step_up_policy(people))
    clone = make_clone(server256)
    first = clone.commit("First")
    refused = clone.push("HEAD:main")
    assert not refused.ok and server256.ref(MAIN) is None
    assert refused.remote[3] == (
        "    found:    no signed push certificate (the push was not made with git push --signed)"
    )

    result = clone.push("HEAD:main", signed=people.alice)
    assert result.ok, result
    assert result.remote == [ACCEPTED]
    assert server256.ref(MAIN) == first
    record = server256.audit_records()[-1]
    blob = str(record["push_cert"])
    assert re.fullmatch(r"[0-9a-f]{64}", blob)
    kept = (server256.path / "stepup" / "certs" / f"{blob}.txt").read_text()
    assert f"{'0' * 64} {first} {MAIN}" in kept.splitlines()

    # the same certificate, handed to the hook again: already used
    proc = run([server256.path / "hooks" / "pre-receive"], cwd=server256.path, check=False,
               input=f"{'0' * 64} {first} {MAIN}\n",
               env={"GIT_DIR": str(server256.path), "GIT_PUSH_CERT": blob, "GIT_PUSH_CERT_NONCE_STATUS": "OK"})
    assert proc.returncode == 1
    assert re.fullmatch(rf"    found:    push certificate {blob[:10]} was already used at [\d: -]+ "
                        r"\(a replayed certificate\)", proc.stderr.splitlines()[3]), proc.stderr

    clone.push("HEAD:doomed", signed=people.alice)
    assert server256.ref("refs/heads/doomed") == first
    assert not clone.push(":doomed").ok
    assert server256.ref("refs/heads/doomed") == first
    deleted = clone.push(":doomed", signed=people.alice)
    assert deleted.ok, deleted
    assert server256.ref("refs/heads/doomed") is None
    record = server256.audit_records()[-1]
    assert (record["action"], record["new"], record["decision"]) == ("delete", "0" * 64, "accept")


def test_sha256_signed_tag_and_ssh_signed_commit(
    people: People, server256: Server, make_clone: MakeClone
) -> None:
    text = (
        "version = 1\n" + key_toml(people.alice, "alice", "maintainer")
        + key_toml(people.alice_ssh, "alice", "maintainer")
        + '[[rules]]\nname = "signed"\nrefs = ["refs/heads/main"]\nrequire = "signed"\ntier = "maintainer"\n'
        + '[[rules]]\nname = "tags"\nrefs = ["refs/tags/v*"]\nrequire = "signed-tag"\ntier = "maintainer"\n'
    )
    install(server256, people, text)
    clone = make_clone(server256)
    oid = clone.commit("Signed with SSH", sign=people.alice_ssh)
    result = clone.push("HEAD:main")
    assert result.ok, result
    assert server256.ref(MAIN) == oid
    tag = clone.tag("v1.0", sign=people.alice)
    assert len(tag) == 64
    result = clone.push("refs/tags/v1.0")
    assert result.ok, result
    assert server256.ref("refs/tags/v1.0") == tag
    unsigned = clone.tag("v1.1", message="unsigned")
    assert not clone.push("refs/tags/v1.1").ok
    assert server256.ref("refs/tags/v1.1") is None and unsigned


# --------------------------------------------------------------------------- crafted headers


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


def push_crafted(clone: Clone, server: Server, raw: bytes) -> tuple[str, list[str]]:
    oid = write_commit(clone, raw)
    clone.git("update-ref", MAIN, oid)
    result = clone.push("+main:main")
    return oid, result.remote


@pytest.mark.parametrize("form", ["sha256", "sha1"])
def test_signature_under_the_other_formats_header_is_unsigned(
    form: str, people: People, tmp_path: Path, make_clone: MakeClone
) -> None:
    """The repository's own signature moved to the other format's header name: no signature (and
    git agrees); the commit as signed is accepted."""
    server = Server(tmp_path / f"s-{form}", object_format=form)
    install(server, people, signed_policy(people.alice))
    clone = make_clone(server)
    raw = signed_raw(clone, people.alice)
    own, other = (b"gpgsig-sha256 ", b"gpgsig ") if form == "sha256" else (b"gpgsig ", b"gpgsig-sha256 ")
    assert raw.count(b"\n" + own) == 1
    moved = raw.replace(b"\n" + own, b"\n" + other)
    oid, remote = push_crafted(clone, server, moved)
    assert not git_verifies(clone, oid, people)
    assert remote == [REJECTED, *signed_finding(oid, "no signature", AMEND)]
    assert server.ref(MAIN) is None

    oid, remote = push_crafted(clone, server, raw)
    assert git_verifies(clone, oid, people)
    assert remote == [ACCEPTED]
    assert server.ref(MAIN) == oid


def test_sha256_commit_with_a_stray_sha1_header_still_verifies(
    people: People, server256: Server, make_clone: MakeClone
) -> None:
    """A `gpgsig` header added to a SHA-256 commit is no part of what was signed: the signature
    still verifies, as git verify-commit says too."""
    install(server256, people, signed_policy(people.alice))
    clone = make_clone(server256)
    raw = signed_raw(clone, people.alice)
    header, sep, message = raw.partition(b"\n\n")
    crafted = header + b"\ngpgsig -----BEGIN PGP SIGNATURE-----\n junk\n -----END PGP SIGNATURE-----" + sep + message
    oid, remote = push_crafted(clone, server256, crafted)
    assert git_verifies(clone, oid, people)
    assert remote == [ACCEPTED]
    assert server256.ref(MAIN) == oid


def test_sha256_commit_with_two_own_headers_is_unsigned(
    people: People, server256: Server, make_clone: MakeClone
) -> None:
    install(server256, people, signed_policy(people.alice))
    clone = make_clone(server256)
    raw = signed_raw(clone, people.alice)
    header, sep, message = raw.partition(b"\n\n")
    signature = header[header.index(b"\ngpgsig-sha256 ") :]
    oid, remote = push_crafted(clone, server256, header + signature + sep + message)
    assert not git_verifies(clone, oid, people)
    assert remote == [REJECTED, *signed_finding(oid, "no signature", AMEND)]
    assert server256.ref(MAIN) is None


def test_verify_command_on_a_sha256_clone(people: People, server256: Server, make_clone: MakeClone) -> None:
    """`stepup-git verify` (the CI gate) reads a SHA-256 clone's signatures too."""
    install(server256, people, signed_policy(people.alice))
    clone = make_clone(server256)
    base = clone.commit("Base", sign=people.alice)
    assert clone.push("HEAD:main").ok
    signed = clone.commit("Signed", sign=people.alice)
    argv = [sys.executable, "-m", "stepup_git", "verify", "--repo", str(clone.path), "--range", f"{base}..{signed}",
            "--ref", MAIN, "--policy", str(server256.policy_path)]
    assert run(argv, check=False).returncode == 0
    unsigned = clone.commit("Unsigned")
    argv[argv.index("--range") + 1] = f"{base}..{unsigned}"
    proc = run(argv, check=False)
    assert proc.returncode == 1, proc
    assert f"failed for commit {unsigned[:10]}" in proc.stdout + proc.stderr
