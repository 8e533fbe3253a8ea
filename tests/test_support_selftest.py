"""The test fixtures themselves, with real git, gpg and ssh-keygen (no stepup-git hook)."""

from __future__ import annotations

import os
from pathlib import Path

from support import as_datetime, isolated_env, run
from support.keys import Gpg, People, key_toml
from support.repos import Clone, MakeClone, Server, remote_lines


def verify_commit(clone: Clone, gpg: Gpg, rev: str = "HEAD") -> list[str]:
    """`git verify-commit --raw` status lines, verified with the given GnuPG home."""
    proc = run(
        ["git", "-c", f"gpg.program={gpg.gpg_program()}", "verify-commit", "--raw", rev],
        cwd=clone.path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [line.removeprefix("[GNUPG:] ") for line in proc.stderr.splitlines()]


def validsig(status: list[str]) -> list[str]:
    return next(line.split() for line in status if line.startswith("VALIDSIG "))


def test_environment_is_isolated_and_pinned() -> None:
    env = isolated_env()
    assert os.environ["HOME"] == env["HOME"]
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert Path(env["GIT_CONFIG_GLOBAL"]).read_text() == ""
    assert env["LC_ALL"] == "C" and env["TZ"] == "UTC"
    assert not {"GNUPGHOME", "RUST_BACKTRACE", "STEPUP_PUSHER"} & env.keys()


def test_commit_ids_are_reproducible(server: Server, make_clone: MakeClone) -> None:
    one, two = make_clone(server), make_clone(server)
    for dev in (one, two):
        dev.write("a.txt", "hello\n")
    assert one.commit("first") == two.commit("first")


def test_signed_commit_verifies(people: People, server: Server, clone: Clone) -> None:
    clone.write("README", "hi\n")
    clone.commit("signed", sign=people.alice)
    sig = validsig(verify_commit(clone, people.gpg))
    assert sig[1] == people.alice.fingerprint


def test_stale_signature_is_dated(people: People, clone: Clone) -> None:
    oid = clone.commit("old", sign=people.bob, at="2020-06-01T12:00:00Z")
    sig = validsig(verify_commit(clone, people.gpg, oid))
    assert sig[2] == "2020-06-01"
    assert int(sig[3]) == int(as_datetime("2020-06-01T12:00:00Z").timestamp())
    assert clone.git("log", "-1", "--format=%cI", oid) == "2020-06-01T12:00:00+00:00"


def test_subkey_signs(people: People, clone: Clone) -> None:
    key = people.subkeyed
    assert key.signing_fingerprint != key.fingerprint
    clone.commit("by subkey", sign=key)
    sig = validsig(verify_commit(clone, people.gpg))
    assert sig[1] == key.signing_fingerprint and sig[-1] == key.fingerprint
    program = f"gpg.program={people.gpg.gpg_program()}"
    assert clone.git("-c", program, "log", "-1", "--format=%GF %GP") == (
        f"{key.signing_fingerprint} {key.fingerprint}"
    )


def test_expired_key_exports_as_expired(people: People, gpg: Gpg, clone: Clone) -> None:
    gpg.import_key(people.expired.export())
    listing = gpg.gpg("--with-colons", "--list-keys", people.expired.fingerprint).decode()
    assert listing.splitlines()[1].split(":")[1] == "e"
    signature = people.gpg.sign_detached(people.expired, b"data", at="2020-06-01T00:00:00Z")
    assert any(line.startswith("EXPKEYSIG") for line in gpg.verify_detached(b"data", signature))
    clone.commit("by a key that has expired since", sign=people.expired, at="2020-06-01")
    assert clone.git("cat-file", "-p", "HEAD").count("BEGIN PGP SIGNATURE") == 1


def validity(gpg: Gpg, armored: str) -> str:
    out = gpg.gpg("--with-colons", "--show-keys", input=armored.encode()).decode()
    return next(line.split(":")[1] for line in out.splitlines() if line.startswith("pub:"))


def test_revocation(people: People, gpg: Gpg) -> None:
    # Non-mutating: the export carries the revocation, the shared home still signs.
    assert validity(gpg, people.carol.export(revoked=True)) == "r"
    assert validity(gpg, people.carol.export()) != "r"
    # Mutating, in a private home.
    key = gpg.gen_key("Rev Oked", "revoked@example.com")
    gpg.revoke(key)
    assert validity(gpg, gpg.export(key)) == "r"


def test_sign_detached_and_verify(people: People) -> None:
    signature = people.gpg.sign_detached(people.alice, b"payload", at="2021-03-04T05:06:07Z")
    status = people.gpg.verify_detached(b"payload", signature)
    sig = validsig(status)
    assert sig[1] == people.alice.fingerprint and sig[2] == "2021-03-04"
    assert any(line.startswith("BADSIG") for line in people.gpg.verify_detached(b"x", signature))


def test_push_moves_ref_without_hook(server: Server, clone: Clone) -> None:
    assert server.ref("refs/heads/main") is None
    clone.write("a/b.txt", "x\n")
    oid = clone.commit("one")
    result = clone.push("main")
    assert result.ok, result
    assert server.ref("refs/heads/main") == oid
    clone.remove("a")
    clone.commit("two")
    assert clone.push("main").ok
    clone.git("reset", "-q", "--hard", oid)
    clone.write("c", "y\n")
    rewritten = clone.commit("three")
    assert not clone.push("main").ok
    assert clone.push("main", force=True).ok
    assert server.ref("refs/heads/main") == rewritten
    assert clone.push(":refs/heads/main").ok
    assert server.ref("refs/heads/main") is None
    assert server.audit_records() == []


def test_tags(people: People, server: Server, clone: Clone) -> None:
    commit = clone.commit("base")
    assert clone.tag("light", message=None) == commit
    annotated = clone.tag("v1.0", sign=people.alice, message="Release 1.0")
    assert clone.git("cat-file", "-t", annotated) == "tag"
    assert "-----BEGIN PGP SIGNATURE-----" in clone.git("cat-file", "-p", annotated)
    proc = run(
        ["git", "-c", f"gpg.program={people.gpg.gpg_program()}", "verify-tag", "--raw", "v1.0"],
        cwd=clone.path,
        check=False,
    )
    assert proc.returncode == 0 and f"VALIDSIG {people.alice.fingerprint}" in proc.stderr
    plain = clone.tag("v0.9", message="unsigned")
    assert "SIGNATURE" not in clone.git("cat-file", "-p", plain)
    assert clone.push("main", "refs/tags/*").ok
    assert server.ref("refs/tags/v1.0") == annotated
    assert server.ref("refs/tags/light") == commit


def test_ssh_signed_commit_verifies(people: People, clone: Clone, tmp_path: Path) -> None:
    clone.commit("ssh signed", sign=people.bob_ssh)
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(people.bob_ssh.allowed_signer("bob@example.com") + "\n")
    config = ["-c", f"gpg.ssh.allowedSignersFile={allowed}"]
    clone.git(*config, "verify-commit", "HEAD")
    assert clone.git(*config, "log", "-1", "--format=%G? %GS") == "G bob@example.com"
    allowed.write_text(people.mallory_ssh.allowed_signer("m@example.com") + "\n")
    assert clone.git(*config, "verify-commit", "HEAD", check=False) == ""
    assert clone.git(*config, "log", "-1", "--format=%G?") != "G"


HOOK_DUMP = """#!/bin/sh
env > "$GIT_DIR/hook-env"
if [ -n "$GIT_PUSH_CERT" ]; then git cat-file blob "$GIT_PUSH_CERT" > "$GIT_DIR/hook-cert"; fi
echo "hello from the hook" >&2
echo "second line" >&2
exit "${HOOK_EXIT:-0}"
"""


def dump_hook(server: Server) -> None:
    hook = server.path / "hooks" / "pre-receive"
    hook.write_text(HOOK_DUMP)
    hook.chmod(0o755)


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name: value for name, value in pairs}


def test_signed_push_and_hook_environment(people: People, server: Server, clone: Clone) -> None:
    server.git("config", "receive.certNonceSeed", "selftest-seed")
    server.git("config", "receive.advertisePushOptions", "true")
    dump_hook(server)
    clone.write("f", "1\n")
    oid = clone.commit("signed push")
    result = clone.push("main", signed=people.alice, pusher="alice", options=["ci.skip"])
    assert result.ok, result
    assert result.remote == ["hello from the hook", "second line"]
    hook_env = read_env(server.path / "hook-env")
    for name in ("HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "LC_ALL", "TZ"):
        assert hook_env[name] == os.environ[name], name
    assert hook_env["STEPUP_PUSHER"] == "alice"
    assert hook_env["GIT_PUSH_CERT_NONCE_STATUS"] == "OK"
    assert hook_env["GIT_PUSH_OPTION_0"] == "ci.skip"
    assert hook_env["GIT_COMMITTER_DATE"] == os.environ["GIT_COMMITTER_DATE"]
    cert = (server.path / "hook-cert").read_text()
    assert f"{'0' * 40} {oid} refs/heads/main" in cert
    assert "-----BEGIN PGP SIGNATURE-----" in cert


def test_stale_push_certificate(people: People, server: Server, clone: Clone) -> None:
    server.git("config", "receive.certNonceSeed", "selftest-seed")
    dump_hook(server)
    clone.commit("c")
    assert clone.push("main", signed=people.carol, at="2022-02-02T00:00:00Z").ok
    cert = (server.path / "hook-cert").read_bytes()
    cut = cert.index(b"-----BEGIN PGP SIGNATURE-----")
    sig = validsig(people.gpg.verify_detached(cert[:cut], cert[cut:]))
    assert sig[1] == people.carol.fingerprint and sig[2] == "2022-02-02"


def test_ssh_signed_push_certificate(people: People, server: Server, clone: Clone) -> None:
    server.git("config", "receive.certNonceSeed", "selftest-seed")
    dump_hook(server)
    clone.commit("c")
    assert clone.push("main", signed=people.bob_ssh).ok
    assert "-----BEGIN SSH SIGNATURE-----" in (server.path / "hook-cert").read_text()


def test_rejecting_hook_is_reported(server: Server, clone: Clone) -> None:
    dump_hook(server)
    clone.commit("c")
    result = clone.push("main", env={"HOOK_EXIT": "1"})
    assert not result.ok and result.returncode != 0
    assert result.remote == ["hello from the hook", "second line"]
    assert server.ref("refs/heads/main") is None


def test_remote_lines_parsing() -> None:
    stderr = "To x\nremote: a finding        \nremote: \x1b[K\nremote:\n ! [rejected]\n"
    assert remote_lines(stderr) == ["a finding", "", ""]


def test_policy_files_and_key_toml(people: People, server: Server) -> None:
    text = "version = 1\n" + key_toml(people.alice, "alice", "maintainer")
    text += key_toml(people.bob_ssh, "bob", "contributor", expires="2027-06-30")
    server.write_policy(text, {"alice.asc": people.alice.export()})
    server.write_policy(text, {"bob.asc": people.bob.export()})
    assert sorted(p.name for p in server.keys_dir.iterdir()) == ["bob.asc"]
    assert f'fingerprint = "{people.alice.fingerprint}"' in server.policy_path.read_text()
    assert "expires = 2027-06-30" in text and people.bob_ssh.public_line in text
