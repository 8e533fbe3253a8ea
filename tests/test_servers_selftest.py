"""Self-test of the network test servers (support/servers.py, support/replay.py), no stepup hook.

Each bare repository gets a tiny shell pre-receive hook that logs what a real hook would see
(auth user, pusher, push certificate and its nonce status), so these tests pin down what each
transport hands the hook, and what a replayed HTTP push looks like to it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.replay import parse_report, pkt_lines, recording_proxy, replay
from support.servers import (
    HOST,
    git_daemon,
    http_server,
    make_ssh_key,
    ssh_server,
    unavailable,
)

ZERO = "0" * 40

HOOK = r"""#!/bin/sh
# Selftest pre-receive hook: log what the server handed us, accept everything.
{
  printf 'REMOTE_USER=%s\n' "${REMOTE_USER-}"
  printf 'STEPUP_PUSHER=%s\n' "${STEPUP_PUSHER-}"
  printf 'STEPUP_SELFTEST=%s\n' "${STEPUP_SELFTEST-}"
  printf 'GNUPGHOME=%s\n' "${GNUPGHOME-<unset>}"
  printf 'GIT_PUSH_CERT=%s\n' "${GIT_PUSH_CERT-}"
  printf 'GIT_PUSH_CERT_NONCE=%s\n' "${GIT_PUSH_CERT_NONCE-}"
  printf 'GIT_PUSH_CERT_NONCE_STATUS=%s\n' "${GIT_PUSH_CERT_NONCE_STATUS-}"
  printf 'GIT_PUSH_CERT_NONCE_SLOP=%s\n' "${GIT_PUSH_CERT_NONCE_SLOP-}"
  if [ -n "${GIT_PUSH_CERT-}" ]; then
    printf 'CERT_PUSHER=%s\n' "$(git cat-file blob "$GIT_PUSH_CERT" | sed -n 's/^pusher //p')"
  fi
  while read -r old new ref; do printf 'UPDATE=%s %s %s\n' "$old" "$new" "$ref"; done
  printf 'END\n'
} >> __LOG__
echo "selftest hook ran for ${REMOTE_USER:-${STEPUP_PUSHER:-nobody}}" >&2
exit 0
"""


def _skip_unless(transport: str) -> None:
    reason = unavailable(transport)  # type: ignore[arg-type]
    if reason:
        pytest.skip(reason)


def git(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run git as a client (the session's isolated environment plus `env`)."""
    full = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    proc = subprocess.run(
        ["git", *map(str, args)],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(map(str, args))} failed:\n{proc.stdout}{proc.stderr}")
    return proc


@dataclass(frozen=True)
class Signer:
    """A throw-away OpenPGP key in a short GNUPGHOME, for `git push --signed`."""

    home: Path
    fingerprint: str
    program: str

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.home)}

    @property
    def config(self) -> list[str]:
        return ["-c", f"gpg.program={self.program}", "-c", f"user.signingkey={self.fingerprint}"]


@pytest.fixture(scope="module")
def signer() -> Iterator[Signer]:
    gpg = shutil.which("gpg")
    if gpg is None:
        pytest.skip("gpg missing (Debian: gnupg)")
    home = Path(tempfile.mkdtemp(prefix="sgt", dir="/tmp"))
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(
            [
                gpg,
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                "T <t@example.org>",
                "ed25519",
                "sign",
                "never",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        listing = subprocess.run(
            [gpg, "--batch", "--with-colons", "--list-secret-keys"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        yield Signer(home, fpr, gpg)
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def make_bare(base: Path, name: str = "repo.git", slop: int | None = None) -> tuple[Path, Path]:
    """A bare repository with a random nonce seed and the logging hook; (repo, hook log)."""
    bare = base / name
    git("init", "-q", "--bare", "-b", "main", bare)
    git("config", "receive.certNonceSeed", secrets.token_hex(16), cwd=bare)
    if slop is not None:
        git("config", "receive.certNonceSlop", str(slop), cwd=bare)
    log = base / f"{name}.hook.log"
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(HOOK.replace("__LOG__", str(log)))
    hook.chmod(0o755)
    return bare, log


def hook_runs(log: Path) -> list[dict[str, str]]:
    """The hook's log: one dict per run (UPDATE lines joined with newlines)."""
    if not log.exists():
        return []
    runs: list[dict[str, str]] = []
    entry: dict[str, str] = {}
    for line in log.read_text().splitlines():
        if line == "END":
            runs.append(entry)
            entry = {}
            continue
        key, _, value = line.partition("=")
        entry[key] = f"{entry[key]}\n{value}" if key in entry else value
    return runs


def ref(bare: Path, name: str = "refs/heads/main") -> str | None:
    proc = git("rev-parse", "--verify", "-q", name, cwd=bare, check=False)
    return proc.stdout.strip() or None


def new_work(path: Path) -> Path:
    git("init", "-q", "-b", "main", path)
    return path


def commit(work: Path, message: str) -> str:
    git("commit", "-q", "--allow-empty", "-m", message, cwd=work)
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def push(
    work: Path,
    url: str,
    *,
    signer: Signer | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    args: list[str] = []
    full_env = dict(env or {})
    if signer is not None:
        args += signer.config
        full_env.update(signer.env)
    args += ["push"]
    if signer is not None:
        args.append("--signed")
    return git(*args, url, "main", cwd=work, env=full_env, check=check)


def _closed(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return False
    except OSError:
        return True


# --------------------------------------------------------------------------- git daemon


def test_git_daemon_push_and_signed_push(tmp_path: Path, signer: Signer) -> None:
    _skip_unless("daemon")
    base = tmp_path / "srv"
    base.mkdir()
    bare, log = make_bare(base)
    with git_daemon(base, env={"STEPUP_SELFTEST": "daemon"}) as prefix:
        port = int(prefix.rsplit(":", 1)[1].strip("/"))
        url = prefix + "repo.git"
        assert url.startswith(f"git://{HOST}:")
        work = new_work(tmp_path / "work")
        tip = commit(work, "one")
        push(work, url)
        assert ref(bare) == tip
        (run,) = hook_runs(log)
        assert run["REMOTE_USER"] == "" and run["STEPUP_PUSHER"] == ""  # no auth at all
        assert run["STEPUP_SELFTEST"] == "daemon"
        assert run["GIT_PUSH_CERT"] == ""
        assert run["UPDATE"] == f"{ZERO} {tip} refs/heads/main"

        tip2 = commit(work, "two")
        push(work, url, signer=signer)
        assert ref(bare) == tip2
        signed = hook_runs(log)[-1]
        assert signed["GIT_PUSH_CERT"] and signed["GIT_PUSH_CERT_NONCE_STATUS"] == "OK"
        assert signed["UPDATE"] == f"{tip} {tip2} refs/heads/main"

        fetched = git("clone", "-q", url, tmp_path / "copy")
        assert fetched.returncode == 0
        assert git("rev-parse", "HEAD", cwd=tmp_path / "copy").stdout.strip() == tip2
    assert _closed(port)


# --------------------------------------------------------------------------- smart HTTP


def test_http_basic_auth_signed_push_and_replay(
    tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _skip_unless("http")
    # Neither may leak from the test process into the server's hook environment.
    monkeypatch.setenv("GNUPGHOME", str(signer.home))
    monkeypatch.setenv("STEPUP_PUSHER", "leaked")
    base = tmp_path / "srv"
    base.mkdir()
    slop = 2
    bare, log = make_bare(base, slop=slop)
    users = {"alice": "s3cret pass", "bob": "pw"}
    with (
        http_server(base, users, env={"STEPUP_SELFTEST": "http"}) as server,
        recording_proxy(server) as proxy,
    ):
        work = new_work(tmp_path / "work")
        tip1 = commit(work, "one")

        denied = push(work, server.url("repo.git"), check=False)
        assert denied.returncode != 0 and ref(bare) is None
        wrong = push(work, server.url("repo.git", "alice", "nope"), check=False)
        assert wrong.returncode != 0 and ref(bare) is None
        assert hook_runs(log) == []

        push(work, proxy.url("repo.git", "alice", users["alice"]))
        assert ref(bare) == tip1
        (plain,) = hook_runs(log)
        assert plain["REMOTE_USER"] == "alice"
        assert plain["STEPUP_PUSHER"] == ""
        assert plain["GNUPGHOME"] == "<unset>"
        assert plain["STEPUP_SELFTEST"] == "http"
        assert plain["GIT_PUSH_CERT"] == ""

        # A signed push through the recording proxy.
        tip2 = commit(work, "two")
        push(work, proxy.url("repo.git", "alice", users["alice"]), signer=signer)
        assert ref(bare) == tip2
        signed = hook_runs(log)[-1]
        assert signed["REMOTE_USER"] == "alice"
        assert signed["GIT_PUSH_CERT"]
        assert signed["GIT_PUSH_CERT_NONCE_STATUS"] == "OK"
        assert signed["CERT_PUSHER"].startswith(signer.fingerprint)  # git writes user.signingkey
        assert signed["UPDATE"] == f"{tip1} {tip2} refs/heads/main"
        recorded = proxy.last_receive_pack()
        assert recorded.status == 200 and not recorded.held
        assert recorded.response is not None
        original = parse_report(recorded.response)
        assert original["accepted"] and original["ok"] == ["refs/heads/main"]
        assert "selftest hook ran for alice" in original["remote"]
        nonce_stamp = int(signed["GIT_PUSH_CERT_NONCE"].split("-", 1)[0])

        # Replay inside the slop window: Git reports the nonce OK (the attack the replay
        # store of docs/semantics.md exists for).
        git("update-ref", "refs/heads/main", tip1, cwd=bare)
        status, body = replay(recorded)
        assert status == 200
        report = parse_report(body)
        assert report["accepted"], report
        assert "selftest hook ran for alice" in report["remote"]
        assert ref(bare) == tip2
        inside = hook_runs(log)[-1]
        assert inside["GIT_PUSH_CERT"] == signed["GIT_PUSH_CERT"]
        assert inside["REMOTE_USER"] == "alice"
        assert int(time.time()) - nonce_stamp <= slop
        assert inside["GIT_PUSH_CERT_NONCE_STATUS"] == "OK"

        # Replay after the slop window: the HMAC still matches, so the status is SLOP.
        while int(time.time()) - nonce_stamp <= slop:
            time.sleep(0.2)
        git("update-ref", "refs/heads/main", tip1, cwd=bare)
        status, body = replay(recorded)
        assert status == 200 and parse_report(body)["accepted"]
        after = hook_runs(log)[-1]
        assert after["GIT_PUSH_CERT"] == signed["GIT_PUSH_CERT"]
        assert after["GIT_PUSH_CERT_NONCE_STATUS"] == "SLOP"
        assert int(after["GIT_PUSH_CERT_NONCE_SLOP"]) > slop

        # Another nonce seed (another repository's): BAD. The hook env is live-updatable.
        server.set_env(STEPUP_SELFTEST="changed")
        git("config", "receive.certNonceSeed", secrets.token_hex(16), cwd=bare)
        git("update-ref", "refs/heads/main", tip1, cwd=bare)
        status, body = replay(recorded)
        assert status == 200 and parse_report(body)["accepted"]
        bad = hook_runs(log)[-1]
        assert bad["GIT_PUSH_CERT_NONCE_STATUS"] == "BAD"
        assert bad["STEPUP_SELFTEST"] == "changed"

        # Without credentials the replay never reaches the backend.
        git("update-ref", "refs/heads/main", tip1, cwd=bare)
        status, _ = replay(recorded, headers={"Authorization": ""})
        assert status == 401 and ref(bare) == tip1
        port, state = server.port, server.state_dir
    assert _closed(port) and not state.exists()


def test_http_hold_captures_unseen_certificate(tmp_path: Path, signer: Signer) -> None:
    _skip_unless("http")
    base = tmp_path / "srv"
    base.mkdir()
    bare, log = make_bare(base, slop=60)
    with http_server(base, {"alice": "pw"}) as server, recording_proxy(server) as proxy:
        work = new_work(tmp_path / "work")
        tip = commit(work, "one")
        proxy.hold = True
        held_push = push(work, proxy.url("repo.git", "alice", "pw"), signer=signer, check=False)
        assert held_push.returncode != 0
        assert ref(bare) is None and hook_runs(log) == []
        held = proxy.last_receive_pack()
        assert held.held and held.status is None and b"certificate version" in held.body

        status, body = replay(held)
        assert status == 200
        report = parse_report(body)
        assert report["accepted"] and report["unpack"] == "ok"
        assert ref(bare) == tip
        (run,) = hook_runs(log)
        assert run["REMOTE_USER"] == "alice"
        assert run["GIT_PUSH_CERT"] and run["GIT_PUSH_CERT_NONCE_STATUS"] == "OK"


# --------------------------------------------------------------------------- SSH


def test_ssh_pusher_per_key(tmp_path: Path, signer: Signer) -> None:
    _skip_unless("ssh")
    base = tmp_path / "srv"
    base.mkdir()
    bare, log = make_bare(base)
    keys = tmp_path / "keys"
    alice = make_ssh_key(keys, "alice")
    bob = make_ssh_key(keys, "bob")
    authorized = {
        "alice": (keys / "id_alice.pub").read_text(),
        "bob": str(keys / "id_bob.pub"),
    }
    with ssh_server(base, authorized, env={"STEPUP_SELFTEST": "ssh"}) as server:
        url = server.url("repo.git")
        assert url == f"ssh://{server.user}@{HOST}:{server.port}{bare.resolve()}"
        as_alice = {"GIT_SSH_COMMAND": server.git_ssh_command(alice)}
        as_bob = {"GIT_SSH_COMMAND": server.git_ssh_command(bob)}

        work = new_work(tmp_path / "work")
        tip1 = commit(work, "one")
        push(work, url, env=as_alice)
        assert ref(bare) == tip1
        first = hook_runs(log)[-1]
        assert first["STEPUP_PUSHER"] == "alice"
        assert first["STEPUP_SELFTEST"] == "ssh"
        assert first["REMOTE_USER"] == ""

        tip2 = commit(work, "two")
        push(work, url, env=as_bob)
        assert ref(bare) == tip2
        assert hook_runs(log)[-1]["STEPUP_PUSHER"] == "bob"

        tip3 = commit(work, "three")
        push(work, url, env=as_alice, signer=signer)
        assert ref(bare) == tip3
        signed = hook_runs(log)[-1]
        assert signed["STEPUP_PUSHER"] == "alice"
        assert signed["GIT_PUSH_CERT"] and signed["GIT_PUSH_CERT_NONCE_STATUS"] == "OK"

        git("clone", "-q", url, tmp_path / "copy", env=as_bob)
        assert git("rev-parse", "HEAD", cwd=tmp_path / "copy").stdout.strip() == tip3

        shell = subprocess.run(
            [*server.git_ssh_command(alice).split(), f"{server.user}@{HOST}", "id"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert shell.returncode != 0 and "command not allowed" in shell.stderr
        port = server.port
    assert _closed(port)


# --------------------------------------------------------------------------- parse_report


def _pkt(payload: bytes) -> bytes:
    return f"{len(payload) + 4:04x}".encode() + payload


def test_parse_report_side_band_and_plain() -> None:
    inner = _pkt(b"unpack ok\n") + _pkt(b"ng refs/heads/main pre-receive hook declined\n")
    inner += _pkt(b"ok refs/tags/v1\n") + b"0000"
    body = _pkt(b"\x02rule failed: need fresh\nsecond line\r") + _pkt(b"\x01" + inner) + b"0000"
    report = parse_report(body)
    assert report["sideband"] and report["unpack"] == "ok"
    assert report["ng"] == {"refs/heads/main": "pre-receive hook declined"}
    assert report["ok"] == ["refs/tags/v1"]
    assert report["remote"] == ["rule failed: need fresh", "second line"]
    assert not report["accepted"]

    plain = parse_report(_pkt(b"unpack ok\n") + _pkt(b"ok refs/heads/main\n") + b"0000")
    assert plain["accepted"] and not plain["sideband"] and plain["remote"] == []
    assert pkt_lines(b"0000") == [None]
    with pytest.raises(ValueError):
        parse_report(b"<html>503</html>")
