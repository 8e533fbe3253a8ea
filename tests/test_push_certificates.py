"""Signed push certificates as step-up proofs (docs/semantics.md), over every transport a Git server offers.

Real pushes go through the installed hook over a local path, `git daemon`, smart HTTP (nginx +
fcgiwrap, basic auth, so `REMOTE_USER` is the pusher) and SSH (`STEPUP_PUSHER` per key). Replay
attacks use the recording proxy of `support.replay`: a captured receive-pack request is sent again,
as-is or edited, straight to the web server. Checks that need a Git nonce status a client cannot
provoke on demand run the installed hook directly with a real certificate written into the repository.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import support
from support import run
from support.keys import Key, People, key_toml
from support.lines import unwrap
from support.replay import (
    RecordedRequest,
    RecordingProxy,
    certificate_of,
    parse_report,
    pkt_lines,
    replay,
    rewrite_certificate,
)
from support.repos import Clone, MakeClone, PushResult, Server
from support.servers import (
    HttpServer,
    ServerUnavailable,
    SshServer,
    git_daemon,
    http_server,
    ssh_server,
    unavailable,
)

from stepup_git.proofs import pushcert

RULE = "migrations-step-up"
MAIN = "refs/heads/main"
MIGRATION = "db/migrations/0001.sql"
ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
PASSWORDS = {"alice": "alice pw", "bob": "bob pw"}
NO_PROMPT = {"GIT_TERMINAL_PROMPT": "0"}
NO_CERT = "push certificate: none (the push was not made with git push --signed)"


# --------------------------------------------------------------------------- policy and setup


def policy_text(
    people: People,
    *,
    fresh: str = "10m",
    bind_pusher: bool = False,
    signers: int = 1,
    extra_rules: str = "",
) -> str:
    """alice maintainer, bob contributor, carol release (mallory absent); migrations need a step-up."""
    rule = (
        f'[[rules]]\nname = "{RULE}"\npaths = ["db/migrations/**"]\nrequire = "step-up"\n'
        f'tier = "maintainer"\nfresh_within = "{fresh}"\n'
    )
    if bind_pusher:
        rule += "bind_pusher = true\n"
    if signers != 1:
        rule += f"signers = {signers}\n"
    return (
        'version = 1\n\n[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'
        + key_toml(people.alice, "alice", "maintainer")
        + key_toml(people.bob, "bob", "contributor")
        + key_toml(people.carol, "carol", "release")
        + "\n"
        + rule
        + extra_rules
    )


_exports: dict[str, str] = {}


def keyring(people: People) -> dict[str, str]:
    """The policy's keyring folder: alice, bob and carol (exported once per module)."""
    for name in ("alice", "bob", "carol"):
        if f"{name}.asc" not in _exports:
            _exports[f"{name}.asc"] = getattr(people, name).export()
    return dict(_exports)


def protect(server: Server, clone: Clone, people: People, **policy: Any) -> str:
    """Push an unprotected seed commit to `main`, then install the policy; the seed's id."""
    clone.write("README", "app\n")
    seed = clone.commit("Seed")
    pushed = clone.push("HEAD:main")
    assert pushed.ok, pushed
    server.write_policy(policy_text(people, **policy), keyring(people))
    server.install()
    return seed


def add_migration(clone: Clone, path: str = MIGRATION, *, sign: Key | None = None) -> str:
    clone.write(path, "CREATE TABLE t (id int);\n")
    return clone.commit(f"Add {path}", sign=sign)


def who(key: Key, owner: str, tier: str) -> str:
    return f"{owner} ({tier}, key {key.fingerprint[-16:]})"


def finding(
    tip: str,
    found: list[str],
    *,
    bind_pusher: bool = False,
    path: str = MIGRATION,
    window: str = "10m",
    ref: str = MAIN,
    fix: str | None = None,
) -> list[str]:
    """The lines of a failed `migrations-step-up` for an update of `ref`, a line per `found` part, as
    :func:`unwrap` joins them."""
    owned = " owned by the pusher" if bind_pusher else ""
    yours = " that is yours" if bind_pusher else ""
    return [
        f'{ref}: rule "{RULE}" failed for commit {tip[:10]}',
        f"    required: a fresh proof of tier maintainer or higher{owned}: a signed push certificate "
        f"for this update (git push --signed) or a signature on the pushed tip made within the last "
        f"{window} (update of {ref} changes {path} (db/migrations/**))",
        *[("    found:    " if i == 0 else " " * 14) + part for i, part in enumerate(found)],
        "    fix:      " + (fix or f"sign the push with a key of tier maintainer or higher{yours}: git config "
                            "user.signingkey <key id>, then git push --signed; or re-sign the tip now: git commit "
                            "--amend --no-edit -S, then push"),
    ]


def unsigned_tip(tip: str) -> str:
    return f"tip commit {tip[:10]}: no signature"


def cert_found(key: Key, owner: str, tier: str, status: str = "OK") -> str:
    return f"push certificate: signed by {who(key, owner, tier)}, nonce {status}"


def assert_cert_accepted(server: Server, key: Key, owner: str, *, pusher: str | None) -> str:
    """The last audit record accepts by `owner`'s push certificate, kept in stepup/certs; its blob."""
    record = server.audit_records()[-1]
    assert record["decision"] == "accept"
    assert record["pusher"] == pusher
    assert record["push_cert_nonce_status"] == "OK"
    (rule,) = record["rules"]
    assert rule["name"] == RULE and rule["result"] == "pass"
    assert [(p["kind"], p["owner"], p["fingerprint"]) for p in rule["proofs"]] == [
        ("push-certificate", owner, key.fingerprint)
    ]
    blob = str(record["push_cert"])
    assert re.fullmatch(r"[0-9a-f]{40}", blob)
    kept = server.path / "stepup" / "certs" / f"{blob}.txt"
    assert kept.is_file()
    text = kept.read_text()
    assert text.startswith("certificate version 0.1\n")
    assert text == server.git("cat-file", "blob", blob) + "\n"
    return blob


def cert_nonce(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode()
    match = re.search(r"^nonce (\S+)$", text, re.M)
    assert match, text
    return match.group(1)


def nonce_stamp(nonce: str) -> int:
    return int(nonce.split("-", 1)[0])


# --------------------------------------------------------------------------- network servers


@pytest.fixture(scope="module")
def net_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every network server of this module serves; each test puts its repository in it."""
    return tmp_path_factory.mktemp("net")


@pytest.fixture(scope="module")
def daemon_url(net_base: Path) -> Iterator[str]:
    if reason := unavailable("daemon"):
        pytest.skip(reason)
    with git_daemon(net_base) as prefix:
        yield prefix


@pytest.fixture(scope="module")
def http(net_base: Path) -> Iterator[HttpServer]:
    if reason := unavailable("http"):
        pytest.skip(reason)
    try:
        with http_server(net_base, PASSWORDS) as server:
            yield server
    except ServerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def ssh(net_base: Path, people: People) -> Iterator[SshServer]:
    if reason := unavailable("ssh"):
        pytest.skip(reason)
    authorized = {"alice": people.alice_ssh.public_line, "bob": people.bob_ssh.public_line}
    try:
        with ssh_server(net_base, authorized) as server:
            yield server
    except ServerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def module_proxy(http: HttpServer) -> Iterator[RecordingProxy]:
    with RecordingProxy(http) as started:
        yield started


@pytest.fixture
def proxy(module_proxy: RecordingProxy) -> RecordingProxy:
    """The recording proxy in front of the HTTP server, emptied and forwarding."""
    module_proxy.clear()
    module_proxy.hold = False
    return module_proxy


_repo_numbers = itertools.count(1)


@pytest.fixture
def net_server(net_base: Path) -> Server:
    """A fresh bare repository inside the served folder (`r<N>/server.git`)."""
    return Server(net_base / f"r{next(_repo_numbers)}")


def http_push(
    clone: Clone, url: str, *refspecs: str, signed: Key | None = None
) -> PushResult:
    return clone.push(*refspecs, signed=signed, remote=url, env=NO_PROMPT)


def report_of(status: int, body: bytes) -> dict[str, Any]:
    assert status == 200, body[:400]
    return parse_report(body)


def held_push(proxy: RecordingProxy, clone: Clone, url: str, signer: Key) -> RecordedRequest:
    """A signed push the proxy records but never forwards (the server never sees it)."""
    proxy.hold = True
    try:
        result = http_push(clone, url, "HEAD:main", signed=signer)
    finally:
        proxy.hold = False
    assert not result.ok
    held = proxy.last_receive_pack()
    assert held.held and b"certificate version 0.1" in held.body
    return held


def cert_text(recorded: RecordedRequest) -> bytes:
    """The certificate lines of a recorded receive-pack body (pkt-line headers stripped)."""
    body = recorded.body.split(b"PACK", 1)[0]
    lines = []
    for packet in pkt_lines(body):
        if packet is None:
            continue
        if packet.startswith(b"push-cert-end"):
            break
        lines.append(packet)
    return b"".join(lines[1:])


def edit_body(body: bytes, old: bytes, new: bytes) -> bytes:
    """Replace `old` (once, inside the certificate) by `new` of the same length."""
    assert len(old) == len(new) and body.count(old) == 1, old
    return body.replace(old, new)


# --------------------------------------------------------------------------- direct hook runs


def fresh_certificate(server: Server, clone: Clone, signer: Key, refspec: str = "HEAD:main") -> bytes:
    """A real certificate for pushing `refspec` to `server`, never shown to `server`'s hook.

    The push goes to a bare copy of the server without stepup-git, whose own hook saves the
    certificate; the pushed objects are then fetched into the server (no ref moves).
    """
    scratch = server.root / f"scratch-{secrets.token_hex(4)}.git"
    saved = scratch.with_suffix(".cert")
    run(["git", "clone", "-q", "--bare", server.path, scratch])
    run(["git", "config", "receive.certNonceSeed", secrets.token_hex(16)], cwd=scratch)
    hook = scratch / "hooks" / "pre-receive"
    hook.write_text(f'#!/bin/sh\ngit cat-file blob "$GIT_PUSH_CERT" > "{saved}"\n')
    hook.chmod(0o755)
    pushed = clone.push(refspec, signed=signer, remote=str(scratch))
    assert pushed.ok, pushed
    server.git("fetch", "-q", str(clone.path), "+refs/heads/*:refs/scratch-fetch/*")
    for name in server.git("for-each-ref", "--format=%(refname)", "refs/scratch-fetch").split():
        server.git("update-ref", "-d", name)
    return saved.read_bytes()


def store_blob(server: Server, data: bytes) -> str:
    path = server.root / f"blob-{secrets.token_hex(4)}"
    path.write_bytes(data)
    return server.git("hash-object", "-w", str(path))


def hook_env(
    server: Server,
    blob: str,
    nonce: str | None,
    status: str | None = "OK",
    slop: int | None = None,
) -> dict[str, str]:
    """What receive-pack hands its pre-receive hook for a signed push."""
    env = {"GIT_DIR": str(server.path), "GIT_PUSH_CERT": blob}
    if nonce is not None:
        env["GIT_PUSH_CERT_NONCE"] = nonce
    if status is not None:
        env["GIT_PUSH_CERT_NONCE_STATUS"] = status
    if slop is not None:
        env["GIT_PUSH_CERT_NONCE_SLOP"] = str(slop)
    return env


def run_hook(server: Server, update: str, env: dict[str, str]) -> tuple[int, list[str]]:
    """Run the installed pre-receive hook on one update line; (exit code, stderr lines)."""
    proc = run(
        [server.path / "hooks" / "pre-receive"],
        cwd=server.path,
        env=env,
        input=update + "\n",
        check=False,
    )
    return proc.returncode, proc.stderr.splitlines()


# =========================================================================== accepted


def test_local_signed_push_of_unsigned_tip_is_accepted(
    people: People, server: Server, clone: Clone
) -> None:
    """alice's push certificate alone proves an unsigned migration; it is audited and kept."""
    protect(server, clone, people)
    tip = add_migration(clone)
    result = clone.push("HEAD:main", signed=people.alice)
    assert result.ok, result
    assert server.ref(MAIN) == tip
    assert result.remote == [ACCEPTED]
    blob = assert_cert_accepted(server, people.alice, "alice", pusher=None)
    record = server.audit_records()[-1]
    assert record["rules"][0]["reason"] == (
        f"step-up proven by alice (push-certificate): update of {MAIN} changes {MIGRATION} "
        "(db/migrations/**)"
    )
    kept = (server.path / "stepup" / "certs" / f"{blob}.txt").read_text()
    assert f"{record['old']} {tip} {MAIN}" in kept.splitlines()


@pytest.mark.parametrize("transport", ["daemon", "http", "ssh"])
def test_signed_push_over_network_transport_is_accepted(
    transport: str,
    request: pytest.FixtureRequest,
    people: People,
    net_server: Server,
    make_clone: MakeClone,
) -> None:
    """Each transport carries the certificate to the hook; HTTP and SSH also bind it to the pusher."""
    clone = make_clone(net_server)
    bind = transport != "daemon"  # git daemon authenticates nobody
    protect(net_server, clone, people, bind_pusher=bind)
    tip = add_migration(clone)
    env: dict[str, str] = dict(NO_PROMPT)
    if transport == "daemon":
        url = request.getfixturevalue("daemon_url") + f"{net_server.root.name}/server.git"
        pusher = None
    elif transport == "http":
        url = request.getfixturevalue("http").url(net_server.path, "alice", PASSWORDS["alice"])
        pusher = "alice"
    else:
        sshd: SshServer = request.getfixturevalue("ssh")
        url = sshd.url(net_server.path)
        env["GIT_SSH_COMMAND"] = sshd.git_ssh_command(people.alice_ssh.private_path)
        pusher = "alice"
    result = clone.push("HEAD:main", signed=people.alice, remote=url, env=env)
    assert result.ok, result
    assert net_server.ref(MAIN) == tip
    assert result.remote == [ACCEPTED]
    assert_cert_accepted(net_server, people.alice, "alice", pusher=pusher)


def test_two_person_rule_tip_by_carol_certificate_by_alice(
    people: People, server: Server, clone: Clone
) -> None:
    """`signers = 2`: one key signing both tip and certificate counts once; carol + alice pass."""
    seed = protect(server, clone, people, signers=2)
    tip = add_migration(clone, sign=people.alice)
    alone = clone.push("HEAD:main", signed=people.alice)
    assert not alone.ok
    assert server.ref(MAIN) == seed
    alice = who(people.alice, "alice", "maintainer")
    aged = [re.sub(r"\) \d+s ago;", ") AGE ago;", line) for line in unwrap(alone.remote)]
    assert aged == [
        REJECTED,
        f'{MAIN}: rule "{RULE}" failed for commit {tip[:10]}',
        "    required: fresh proofs from 2 different people of tier maintainer or higher: a signed "
        "push certificate for this update (git push --signed) or a signature on the pushed tip made "
        f"within the last 10m (update of {MAIN} changes {MIGRATION} (db/migrations/**))",
        f"    found:    push certificate: signed by {alice}, nonce OK",
        f"              tip commit {tip[:10]}: signed by {alice} AGE ago; alice is counted once already (one "
        "person counts once, whatever keys they hold)",
        "              signers: 1 of 2 counted (alice)",
        "    fix:      sign the push with a key of tier maintainer or higher: git config "
        "user.signingkey <key id>, then git push --signed; or re-sign the tip now: git commit "
        "--amend --no-edit -S, then push; 2 different people must each prove: e.g. one signs the "
        "tip commit (git commit --amend --no-edit -S) and another pushes it with git push --signed",
    ]

    clone.git("reset", "-q", "--hard", seed)
    tip = add_migration(clone, sign=people.carol)
    result = clone.push("HEAD:main", signed=people.alice)
    assert result.ok, result
    assert server.ref(MAIN) == tip
    assert result.remote == [ACCEPTED]
    record = server.audit_records()[-1]
    assert record["decision"] == "accept"
    proofs = {(p["kind"], p["owner"], p["fingerprint"]) for p in record["rules"][0]["proofs"]}
    assert proofs == {
        ("push-certificate", "alice", people.alice.fingerprint),
        ("tip-signature", "carol", people.carol.fingerprint),
    }
    assert (server.path / "stepup" / "certs" / f"{record['push_cert']}.txt").is_file()


# =========================================================================== refused


def test_no_certificate_and_unsigned_tip_is_refused(
    people: People, server: Server, clone: Clone
) -> None:
    """Without `--signed` and without a fresh tip signature nothing proves the step-up."""
    seed = protect(server, clone, people)
    tip = add_migration(clone)
    result = clone.push("HEAD:main")
    assert not result.ok
    assert server.ref(MAIN) == seed
    assert unwrap(result.remote) == [REJECTED, *finding(tip, [NO_CERT, unsigned_tip(tip)])]
    record = server.audit_records()[-1]
    assert record["decision"] == "reject" and "push_cert" not in record
    assert record["push_cert_nonce_status"] is None


def test_certificate_by_unknown_key_is_refused(
    people: People, server: Server, clone: Clone
) -> None:
    """mallory's key is in no policy: her certificate proves nothing and is not kept."""
    seed = protect(server, clone, people)
    tip = add_migration(clone)
    result = clone.push("HEAD:main", signed=people.mallory)
    assert not result.ok
    assert server.ref(MAIN) == seed
    lines = unwrap(result.remote)
    assert lines[0] == REJECTED
    found = lines[3]
    assert found.startswith("    found:    push certificate: signed by unknown key ")
    assert people.mallory.fingerprint[-16:] in found
    assert lines[1:] == finding(tip, [found.removeprefix("    found:    "), unsigned_tip(tip)])
    record = server.audit_records()[-1]
    assert record["decision"] == "reject" and record["rules"][0]["proofs"] == []
    assert not (server.path / "stepup" / "certs" / f"{record['push_cert']}.txt").exists()


def test_certificate_by_lower_tier_is_refused(
    people: People, server: Server, clone: Clone
) -> None:
    """bob's valid certificate is only contributor tier; the rule needs maintainer."""
    seed = protect(server, clone, people)
    tip = add_migration(clone)
    result = clone.push("HEAD:main", signed=people.bob)
    assert not result.ok
    assert server.ref(MAIN) == seed
    found = [f"{cert_found(people.bob, 'bob', 'contributor')}; tier contributor is below maintainer",
             unsigned_tip(tip)]
    assert unwrap(result.remote) == [REJECTED, *finding(tip, found)]
    record = server.audit_records()[-1]
    assert record["decision"] == "reject"
    assert not (server.path / "stepup" / "certs" / f"{record['push_cert']}.txt").exists()


def test_http_pusher_must_own_the_certificate_key(
    people: People, http: HttpServer, net_server: Server, make_clone: MakeClone
) -> None:
    """`bind_pusher`: bob logs in over HTTP and pushes a certificate alice signed: refused."""
    clone = make_clone(net_server)
    seed = protect(net_server, clone, people, bind_pusher=True)
    tip = add_migration(clone)
    url = http.url(net_server.path, "bob", PASSWORDS["bob"])
    result = http_push(clone, url, "HEAD:main", signed=people.alice)
    assert not result.ok
    assert net_server.ref(MAIN) == seed
    found = [cert_found(people.alice, "alice", "maintainer"), unsigned_tip(tip),
             "pusher: bob, but the proof is alice's"]
    # bob (a contributor) cannot prove it with any key of his: alice must push it herself
    fix = ("bob holds no key of tier maintainer or higher, so no signature of theirs can prove this; someone who "
           "does (alice, carol) must sign it and push it themselves: git push --signed")
    assert unwrap(result.remote) == [REJECTED, *finding(tip, found, bind_pusher=True, fix=fix)]
    record = net_server.audit_records()[-1]
    assert record["pusher"] == "bob" and record["decision"] == "reject"


def test_http_replay_inside_slop_window_is_refused(
    people: People, http: HttpServer, proxy: RecordingProxy, net_server: Server,
    make_clone: MakeClone,
) -> None:
    """A captured push replayed at once: Git calls its nonce OK, the replay store refuses it."""
    clone = make_clone(net_server)
    seed = protect(net_server, clone, people, bind_pusher=True)
    tip = add_migration(clone)
    url = proxy.url(net_server.path, "alice", PASSWORDS["alice"])
    result = http_push(clone, url, "HEAD:main", signed=people.alice)
    assert result.ok, result
    assert net_server.ref(MAIN) == tip
    blob = assert_cert_accepted(net_server, people.alice, "alice", pusher="alice")
    captured = proxy.last_receive_pack()
    assert parse_report(captured.response or b"")["accepted"]

    net_server.git("update-ref", MAIN, seed)
    report = report_of(*replay(captured))
    assert report["ng"] == {MAIN: "pre-receive hook declined"} and report["ok"] == []
    assert net_server.ref(MAIN) == seed
    lines = unwrap(report["remote"])
    assert lines[:2] == [REJECTED, f'{MAIN}: rule "{RULE}" failed for commit {tip[:10]}']
    assert re.fullmatch(
        rf"    found:    push certificate: {blob[:10]} was already used at "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(a replayed certificate\)",
        lines[3],
    ), lines
    assert lines[4] == " " * 14 + unsigned_tip(tip)
    record = net_server.audit_records()[-1]
    assert record["decision"] == "reject" and record["push_cert"] == blob
    assert record["push_cert_nonce_status"] == "OK"


def test_http_replay_after_slop_window_is_refused(
    people: People, http: HttpServer, proxy: RecordingProxy, net_server: Server,
    make_clone: MakeClone,
) -> None:
    """Replayed once Git's slop is over (status SLOP): refused, by the nonce or the replay check.

    With SLOP Git hands the hook its own new nonce, not the certificate's, so the hook's nonce
    comparison speaks first; were it to pass, the replay store would refuse the used certificate.
    """
    clone = make_clone(net_server)
    seed = protect(net_server, clone, people)
    net_server.git("config", "receive.certNonceSlop", "1")
    tip = add_migration(clone)
    url = proxy.url(net_server.path, "alice", PASSWORDS["alice"])
    result = http_push(clone, url, "HEAD:main", signed=people.alice)
    assert result.ok, result
    assert net_server.ref(MAIN) == tip
    blob = assert_cert_accepted(net_server, people.alice, "alice", pusher="alice")
    captured = proxy.last_receive_pack()
    stamp = nonce_stamp(cert_nonce(net_server.git("cat-file", "blob", blob)))

    net_server.git("update-ref", MAIN, seed)
    while time.time() < stamp + 2.2:
        time.sleep(0.1)
    report = report_of(*replay(captured))
    assert report["ng"] == {MAIN: "pre-receive hook declined"}
    assert net_server.ref(MAIN) == seed
    found = unwrap(report["remote"])[3]
    assert found.startswith(f"    found:    push certificate: {blob[:10]} was already used at "), found
    record = net_server.audit_records()[-1]
    assert record["decision"] == "reject" and record["push_cert"] == blob
    assert record["push_cert_nonce_status"] == "SLOP"


def test_http_first_use_after_slop_but_within_window_is_accepted(
    people: People, http: HttpServer, proxy: RecordingProxy, net_server: Server,
    make_clone: MakeClone,
) -> None:
    """A slow push (nonce older than `receive.certNonceSlop`, inside `fresh_within`) is accepted.

    Git reports SLOP with the nonce's age; docs/semantics.md, "Push certificates" accepts SLOP within the rule's window.
    """
    clone = make_clone(net_server)
    seed = protect(net_server, clone, people)
    net_server.git("config", "receive.certNonceSlop", "1")
    tip = add_migration(clone)
    held = held_push(proxy, clone, proxy.url(net_server.path, "alice", PASSWORDS["alice"]),
                     people.alice)
    stamp = nonce_stamp(cert_nonce(cert_text(held)))
    while time.time() < stamp + 2.2:
        time.sleep(0.1)
    report = report_of(*replay(held))
    record = net_server.audit_records()[-1]
    assert record["push_cert_nonce_status"] == "SLOP"
    assert report["accepted"], report["remote"]
    assert net_server.ref(MAIN) == tip != seed
    assert report["remote"] == [ACCEPTED]


def test_held_certificate_fresh_first_use_accepted_stale_refused(
    people: People, http: HttpServer, proxy: RecordingProxy, net_server: Server,
    make_clone: MakeClone,
) -> None:
    """A certificate held back by a man in the middle and never seen by the server.

    Sent on inside the rule's window it is accepted: to the server this is the first and only
    use of a nonce it issued moments ago, by the key that signed it, which is exactly an honest
    push (the attacker gains only a delay, bounded by the window). Sent after the window it is
    refused: the nonce's own time stamp is older than `fresh_within`, though Git's nonce status
    is still OK (its slop is 300 s).
    """
    clone = make_clone(net_server)
    seed = protect(net_server, clone, people, fresh="3s")
    url = proxy.url(net_server.path, "alice", PASSWORDS["alice"])
    late_tip = add_migration(clone)
    late = held_push(proxy, clone, url, people.alice)
    clone.git("checkout", "-q", "-b", "other", seed)
    soon_tip = add_migration(clone, "db/migrations/0002.sql")
    soon = held_push(proxy, clone, url, people.alice)
    assert net_server.ref(MAIN) == seed

    report = report_of(*replay(soon))
    assert report["accepted"], report["remote"]
    assert report["remote"] == [ACCEPTED]
    assert net_server.ref(MAIN) == soon_tip
    assert_cert_accepted(net_server, people.alice, "alice", pusher="alice")

    net_server.git("update-ref", MAIN, seed)
    stamp = nonce_stamp(cert_nonce(cert_text(late)))
    while time.time() < stamp + 4.2:
        time.sleep(0.1)
    report = report_of(*replay(late))
    assert report["ng"] == {MAIN: "pre-receive hook declined"}
    assert net_server.ref(MAIN) == seed
    expected = [REJECTED, *finding(late_tip, ["", unsigned_tip(late_tip)], window="3s")]
    lines = unwrap(report["remote"])
    assert lines[:3] == expected[:3] and lines[4:] == expected[4:]
    assert re.fullmatch(r"    found:    push certificate: nonce was issued \ds ago, outside 3s", lines[3]), lines
    assert net_server.audit_records()[-1]["push_cert_nonce_status"] == "OK"


def test_http_edited_certificate_is_refused(
    people: People, http: HttpServer, proxy: RecordingProxy, net_server: Server,
    make_clone: MakeClone,
) -> None:
    """One character changed in a held certificate (pushee or nonce line) breaks its signature."""
    clone = make_clone(net_server)
    seed = protect(net_server, clone, people)
    tip = add_migration(clone)
    held = held_push(proxy, clone, proxy.url(net_server.path, "alice", PASSWORDS["alice"]),
                     people.alice)
    text = cert_text(held)
    nonce = cert_nonce(text)
    pushee = re.search(rb"^pushee (\S+)$", text, re.M)
    assert pushee and b"/server.git" in pushee.group(1)

    flipped = nonce[:-1] + ("0" if nonce[-1] != "0" else "1")
    edits = {
        "OK": edit_body(held.body, b"/server.git", b"/SERVER.git"),
        "BAD": edit_body(held.body, f"nonce {nonce}".encode(), f"nonce {flipped}".encode()),
    }
    for status, body in edits.items():
        report = report_of(*replay(held, body=body))
        assert report["ng"] == {MAIN: "pre-receive hook declined"}, report
        assert net_server.ref(MAIN) == seed
        assert unwrap(report["remote"]) == [
            REJECTED,
            *finding(tip, ["push certificate: bad signature (the signed content was changed)", unsigned_tip(tip)]),
        ]
        record = net_server.audit_records()[-1]
        assert record["decision"] == "reject" and record["push_cert_nonce_status"] == status

    report = report_of(*replay(held))
    assert report["accepted"] and report["remote"] == [ACCEPTED]
    assert net_server.ref(MAIN) == tip


def test_certificate_for_another_update_is_refused(
    people: People, server: Server, clone: Clone
) -> None:
    """A certificate proves only the exact `old new ref` lines it lists."""
    seed = protect(server, clone, people)
    clone.git("checkout", "-q", "-b", "side")
    other = add_migration(clone, "db/migrations/0002.sql")
    clone.git("checkout", "-q", "main")
    tip = add_migration(clone)
    raw = fresh_certificate(server, clone, people.alice)
    assert f"{seed} {tip} {MAIN}".encode() in raw.splitlines()
    blob = store_blob(server, raw)
    env = hook_env(server, blob, cert_nonce(raw))
    alice = who(people.alice, "alice", "maintainer")

    for update, new in (
        (f"{seed} {tip} refs/heads/other", tip),
        (f"{seed} {other} {MAIN}", other),
    ):
        code, lines = run_hook(server, update, env)
        assert code == 1
        found = [f"push certificate: signed by {alice} does not list this update ({update})", unsigned_tip(new)]
        path = MIGRATION if new == tip else "db/migrations/0002.sql"
        assert unwrap(lines) == [REJECTED, *finding(new, found, path=path, ref=update.split()[2])]

    code, lines = run_hook(server, f"{seed} {tip} {MAIN}", env)
    assert (code, lines) == (0, [ACCEPTED])
    assert server.ref(MAIN) == seed  # the hook judges; only Git moves refs


NONCE_CASES = [
    ("BAD", None, None, "push certificate: nonce status is BAD (not issued by this server for this push)"),
    ("MISSING", None, None,
     "push certificate: nonce status is MISSING (not issued by this server for this push)"),
    ("UNSOLICITED", None, None,
     "push certificate: nonce status is UNSOLICITED (not issued by this server for this push)"),
    (None, None, None, "push certificate: nonce status is MISSING (not issued by this server for this push)"),
    ("SLOP", 700, None, "push certificate: nonce is 11m old, older than 10m"),
    ("SLOP", -700, None, "push certificate: nonce is 11m old, older than 10m"),
    ("SLOP", None, None, "push certificate: nonce status SLOP without a slop value"),
    ("OK", None, "1700000000-0123456789abcdef0123456789abcdef01234567",
     "push certificate: nonce does not match the nonce Git reports for this push"),
]
"""(GIT_PUSH_CERT_NONCE_STATUS, GIT_PUSH_CERT_NONCE_SLOP, GIT_PUSH_CERT_NONCE if not the
certificate's own, what the hook finds)."""


def test_nonce_status_must_be_ok_or_slop_within_window(
    people: People, server: Server, clone: Clone
) -> None:
    """Git's nonce verdict counts: BAD, MISSING, UNSOLICITED, no status, SLOP beyond the window
    (or without its value) and a nonce other than the one Git reports are refused; SLOP within the
    window is accepted. Refusals never spend the certificate, so it is still accepted afterwards."""
    seed = protect(server, clone, people)
    tip = add_migration(clone)
    raw = fresh_certificate(server, clone, people.alice)
    blob = store_blob(server, raw)
    update = f"{seed} {tip} {MAIN}"
    for status, slop, git_nonce, found in NONCE_CASES:
        env = hook_env(server, blob, git_nonce or cert_nonce(raw), status, slop)
        code, lines = run_hook(server, update, env)
        assert code == 1, (status, slop)
        assert unwrap(lines) == [REJECTED, *finding(tip, [found, unsigned_tip(tip)])], (status, slop)
        record = server.audit_records()[-1]
        assert record["decision"] == "reject" and record["push_cert_nonce_status"] == status
        assert not (server.path / "stepup" / "certs" / f"{blob}.txt").exists()

    code, lines = run_hook(server, update, hook_env(server, blob, cert_nonce(raw), "SLOP", 5))
    assert (code, lines) == (0, [ACCEPTED])
    record = server.audit_records()[-1]
    assert record["decision"] == "accept" and record["push_cert_nonce_status"] == "SLOP"
    assert (server.path / "stepup" / "certs" / f"{blob}.txt").read_bytes() == raw


def test_delete_is_proven_only_by_a_release_push_certificate(
    people: People, server: Server, clone: Clone
) -> None:
    """`on = ["delete"]`: a fresh release signature on the branch tip cannot prove a delete;
    maintainer alice's certificate is too low; carol's `git push --signed origin :doomed` is it."""
    delete_rule = (
        '\n[[rules]]\nname = "doomed-delete"\nrefs = ["refs/heads/doomed"]\non = ["delete"]\n'
        'require = "step-up"\ntier = "release"\n'
    )
    protect(server, clone, people, extra_rules=delete_rule)
    clone.git("checkout", "-q", "-b", "doomed")
    clone.write("notes.txt", "temporary\n")
    doomed = clone.commit("Temporary branch", sign=people.carol)
    created = clone.push("HEAD:doomed")
    assert created.ok, created
    assert server.ref("refs/heads/doomed") == doomed
    assert created.remote == ["stepup-git: push accepted (1 update(s), 0 rule check(s) passed)"]

    def lines(found: str) -> list[str]:
        return [
            "stepup-git: push rejected: 1 of 1 update(s) fail the policy",
            'refs/heads/doomed: rule "doomed-delete" failed for the delete of refs/heads/doomed',
            "    required: a fresh proof of tier release or higher: a signed push certificate for "
            "this update (git push --signed) (delete of refs/heads/doomed)",
            f"    found:    {found}",
            "    fix:      sign the push with a key of tier release or higher: git config "
            "user.signingkey <key id>, then git push --signed origin :doomed",
        ]

    unsigned = clone.push(":doomed")
    assert not unsigned.ok
    assert server.ref("refs/heads/doomed") == doomed
    assert unwrap(unsigned.remote) == lines(NO_CERT)

    low = clone.push(":doomed", signed=people.alice)
    assert not low.ok
    assert server.ref("refs/heads/doomed") == doomed
    assert low.remote == [
        REJECTED,
        'refs/heads/doomed: rule "doomed-delete" failed for',
        "    the delete of refs/heads/doomed",
        "    required: a fresh proof of tier release or higher: a signed push",
        "              certificate for this update (git push --signed) (delete of",
        "              refs/heads/doomed)",
        "    found:    push certificate: signed by alice (maintainer, key",
        f"                {people.alice.fingerprint[-16:]}), nonce OK; tier maintainer is below",
        "                release",
        "    fix:      sign the push with a key of tier release or higher:",
        "              git config user.signingkey <key id>, then",
        "              git push --signed origin :doomed",
    ]

    result = clone.push(":doomed", signed=people.carol)
    assert result.ok, result
    assert server.ref("refs/heads/doomed") is None
    assert result.remote == [ACCEPTED]
    record = server.audit_records()[-1]
    assert record["action"] == "delete" and record["decision"] == "accept"
    assert record["rules"][0]["name"] == "doomed-delete"
    assert [(p["kind"], p["owner"]) for p in record["rules"][0]["proofs"]] == [
        ("push-certificate", "carol")
    ]


def test_concurrent_uses_of_one_certificate_accept_exactly_one(
    people: People, server: Server, clone: Clone
) -> None:
    """Four hooks judging the same certificate at once: the replay store lets exactly one through."""
    seed = protect(server, clone, people)
    tip = add_migration(clone)
    raw = fresh_certificate(server, clone, people.alice)
    blob = store_blob(server, raw)
    stdin = server.root / "update.txt"
    stdin.write_text(f"{seed} {tip} {MAIN}\n")
    env = support.isolated_env(hook_env(server, blob, cert_nonce(raw)))
    procs = []
    for n in range(4):
        with open(stdin, "rb") as source, open(server.root / f"hook{n}.err", "wb") as err:
            procs.append(subprocess.Popen([server.path / "hooks" / "pre-receive"], cwd=server.path,
                                          env=env, stdin=source, stdout=subprocess.DEVNULL, stderr=err))
    outcomes = []
    for n, proc in enumerate(procs):
        proc.wait(timeout=support.TIMEOUT)
        outcomes.append((proc.returncode, (server.root / f"hook{n}.err").read_text().splitlines()))
    accepted = [lines for code, lines in outcomes if code == 0]
    refused = [lines for code, lines in outcomes if code != 0]
    assert accepted == [[ACCEPTED]], outcomes
    assert len(refused) == 3
    for lines in map(unwrap, refused):
        assert lines[:2] == [REJECTED, f'{MAIN}: rule "{RULE}" failed for commit {tip[:10]}']
        assert re.fullmatch(rf"    found:    push certificate: {blob[:10]} was already used at "
                            r"[\d: -]+ \(a replayed certificate\)", lines[3]), lines
        assert lines[4] == " " * 14 + unsigned_tip(tip)
    decisions = sorted(r["decision"] for r in server.audit_records() if r.get("push_cert") == blob)
    assert decisions == ["accept", "reject", "reject", "reject"]
    assert run(
        [sys.executable, "-m", "stepup_git", "audit", "verify", "--log", server.audit_path],
        check=False,
    ).returncode == 0



# =========================================================================== re-encoded replays

BEGIN = b"-----BEGIN PGP SIGNATURE-----"
END = b"-----END PGP SIGNATURE-----"


def signature_parts(cert: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(the certificate before its signature block, the block's base64 body lines, its checksum line)."""
    at = cert.index(BEGIN)
    head, block = cert[:at], cert[at:]
    lines = block.split(b"\n")
    assert lines[0] == BEGIN and lines[1] == b"", lines[:2]  # gpg writes no armour header
    body = [line for line in lines[2:] if line and not line.startswith((b"=", END))]
    checksum = next(line for line in lines if line.startswith(b"="))
    return head, body, checksum


def armour(head: bytes, body: bytes, checksum: bytes, *, width: int = 64, headers: bytes = b"",
           newline: bytes = b"\n") -> bytes:
    encoded = base64.b64encode(body)
    rows = [encoded[i : i + width] for i in range(0, len(encoded), width)]
    block = [BEGIN, *([headers] if headers else []), b"", *rows, checksum, END]
    return head + newline.join(block) + newline


def crc24(data: bytes) -> bytes:
    """The armour checksum line (RFC 9580 §6.1) of `data`."""
    crc = 0xB704CE
    for octet in data:
        crc ^= octet << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return b"=" + base64.b64encode((crc & 0xFFFFFF).to_bytes(3, "big"))


def with_comment(cert: bytes) -> bytes:
    head, body, checksum = signature_parts(cert)
    return armour(head, base64.b64decode(b"".join(body)), checksum, headers=b"Comment: x")


def with_crlf(cert: bytes) -> bytes:
    head, body, checksum = signature_parts(cert)
    return armour(head, base64.b64decode(b"".join(body)), checksum, newline=b"\r\n")


def rewrapped(cert: bytes) -> bytes:
    head, body, checksum = signature_parts(cert)
    assert max(len(line) for line in body) > 40
    return armour(head, base64.b64decode(b"".join(body)), checksum, width=40)


def new_format_packet(cert: bytes) -> bytes:
    """The signature packet with a new-format header (tag 2, one-octet length) instead of gpg's old one."""
    head, body, _ = signature_parts(cert)
    packet = base64.b64decode(b"".join(body))
    assert packet[0] == 0x88 and packet[1] == len(packet) - 2, packet[:2]  # old format, one-octet length
    renewed = bytes([0xC2]) + packet[1:]
    return armour(head, renewed, crc24(renewed))


REENCODINGS: dict[str, Callable[[bytes], bytes]] = {
    "comment-header": with_comment,
    "crlf-signature-block": with_crlf,
    "rewrapped-armour": rewrapped,
    "new-format-packet": new_format_packet,
}


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_http_replay_of_a_reencoded_certificate_is_refused(
    people: People, http: HttpServer, proxy: RecordingProxy, net_server: Server,
    make_clone: MakeClone,
) -> None:
    """A captured certificate replayed with a new encoding of the same signature (an armour header,
    CRLF line endings, other line wrapping, another packet header) is a new blob but the same
    certificate: each replay is refused as one; the first, unmodified use was accepted."""
    clone = make_clone(net_server)
    seed = protect(net_server, clone, people)
    tip = add_migration(clone)
    url = proxy.url(net_server.path, "alice", PASSWORDS["alice"])
    result = http_push(clone, url, "HEAD:main", signed=people.alice)
    assert result.ok, result
    assert result.remote == [ACCEPTED]
    assert net_server.ref(MAIN) == tip
    blob = assert_cert_accepted(net_server, people.alice, "alice", pusher="alice")
    captured = proxy.last_receive_pack()
    original = certificate_of(captured.body)
    assert blob_id(original) == blob

    for name, reencode in REENCODINGS.items():
        net_server.git("update-ref", MAIN, seed)
        cert = reencode(original)
        assert cert != original and cert.startswith(signature_parts(original)[0]), name
        assert any(line.startswith("VALIDSIG ") for line in people.gpg.verify_detached(*split_cert(cert))), name
        report = report_of(*replay(captured, body=rewrite_certificate(captured.body, cert)))
        assert report["ng"] == {MAIN: "pre-receive hook declined"}, (name, report)
        assert net_server.ref(MAIN) == seed, name
        new_blob = blob_id(cert)
        assert new_blob != blob
        lines = unwrap(report["remote"])
        assert lines[:3] == [REJECTED, *finding(tip, [])[:2]], name
        assert re.fullmatch(rf"    found:    push certificate: {new_blob[:10]} was already used at "
                            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(a replayed certificate\)", lines[3]), (name, lines)
        assert lines[4] == " " * 14 + unsigned_tip(tip)
        record = net_server.audit_records()[-1]
        assert (record["decision"], record["push_cert"], record["push_cert_nonce_status"]) == (
            "reject", new_blob, "OK"), name
        assert net_server.git("cat-file", "blob", new_blob).encode() + b"\n" == cert, name


def split_cert(cert: bytes) -> tuple[bytes, bytes]:
    """(payload, signature) of a certificate, for gpg."""
    at = cert.index(BEGIN)
    return cert[:at], cert[at:]


def test_reencoded_certificate_proves_before_first_use(
    people: People, server: Server, clone: Clone
) -> None:
    """Each re-encoding verifies as the signature it is: were it the first use, it would prove the
    update (so the replay refusals above are the replay store's, not a broken signature's)."""
    seed = protect(server, clone, people)
    tip = add_migration(clone)
    raw = fresh_certificate(server, clone, people.alice)
    for name, reencode in REENCODINGS.items():
        (server.path / "stepup" / "push-certs.sqlite").unlink(missing_ok=True)
        cert = reencode(raw)
        blob = store_blob(server, cert)
        code, lines = run_hook(server, f"{seed} {tip} {MAIN}", hook_env(server, blob, cert_nonce(raw)))
        assert (code, lines) == (0, [ACCEPTED]), name


def test_certificate_in_a_store_written_by_blob_id_is_still_refused(
    people: People, server: Server, clone: Clone
) -> None:
    """A replay store written before certificates were identified by what they sign holds blob ids
    (table `used`): a certificate it holds stays refused; one it does not hold is accepted."""
    seed = protect(server, clone, people)
    tip = add_migration(clone)
    raw = fresh_certificate(server, clone, people.alice)
    blob = store_blob(server, raw)
    store = server.path / "stepup" / "push-certs.sqlite"
    store.parent.mkdir(exist_ok=True)
    db = sqlite3.connect(store)
    db.execute("CREATE TABLE used (blob TEXT PRIMARY KEY, nonce TEXT NOT NULL, used_at REAL NOT NULL)")
    db.execute("INSERT INTO used VALUES (?, ?, ?)", (blob, cert_nonce(raw), time.time() - 30))
    db.commit()
    db.close()
    update = f"{seed} {tip} {MAIN}"
    code, lines = run_hook(server, update, hook_env(server, blob, cert_nonce(raw)))
    assert code == 1
    lines = unwrap(lines)
    assert lines[:3] == [REJECTED, *finding(tip, [])[:2]]
    assert re.fullmatch(rf"    found:    push certificate: {blob[:10]} was already used at [\d: -]+ "
                        r"\(a replayed certificate\)", lines[3]), lines
    assert lines[4] == " " * 14 + unsigned_tip(tip)

    db = sqlite3.connect(store)
    db.execute("UPDATE used SET blob = ?", ("0" * 40,))
    db.commit()
    db.close()
    code, lines = run_hook(server, update, hook_env(server, blob, cert_nonce(raw)))
    assert (code, lines) == (0, [ACCEPTED])
    db = sqlite3.connect(store)
    assert {row[0] for row in db.execute("SELECT blob FROM used")} == {"0" * 40, blob}
    (identity,) = db.execute("SELECT payload FROM signed WHERE blob = ?", (blob,)).fetchone()
    db.close()
    assert identity == pushcert.parse(raw).identity
    code, lines = run_hook(server, update, hook_env(server, store_blob(server, with_comment(raw)), cert_nonce(raw)))
    assert code == 1 and "(a replayed certificate)" in unwrap(lines)[3], lines


CERT = (
    b"certificate version 0.1\npusher ABCDEF 1700000000 +0000\npushee https://h/r.git\n"
    b"nonce 1700000000-0123456789abcdef\npush-option ci.skip\n\n"
    + b"1" * 40 + b" " + b"2" * 40 + b" refs/heads/main\n"
)
SIGNATURE = BEGIN + b"\n\niQ\n" + END + b"\n"


def test_certificate_identity_is_what_it_signs() -> None:
    """The identity leaves out the encoding (header order, whitespace ending a line, the signature
    block) and keeps every field's content."""
    identity = pushcert.parse(CERT + SIGNATURE).identity
    assert identity == hashlib.sha256(CERT).hexdigest()
    lines = CERT.split(b"\n")
    reordered = b"\n".join([lines[0], lines[3], lines[1], lines[2], *lines[4:]])
    trailing = CERT.replace(b"ci.skip\n", b"ci.skip \n").replace(b"+0000\n", b"+0000\t\n")
    for same in (reordered, trailing):
        assert pushcert.parse(same + SIGNATURE).identity == identity
    assert pushcert.parse(CERT + SIGNATURE.replace(b"iQ", b"iR")).identity == identity
    for changed in (
        CERT.replace(b"0123456789abcdef", b"0123456789abcdee"),
        CERT.replace(b"refs/heads/main", b"refs/heads/mainx"),
        CERT.replace(b"ci.skip", b"ci.run"),
        CERT.replace(b"pusher ABCDEF", b"pusher ABCDEE"),
        CERT.replace(b"pushee https://h/r.git\n", b""),
        CERT.replace(b"push-option ci.skip\n", b""),
    ):
        assert pushcert.parse(changed + SIGNATURE).identity != identity, changed
