"""The hook's deadline (docs/semantics.md): it rejects a push that takes too long, no library code can swallow
it, it is recorded as an error, and it is disarmed before the record is written, so a record always
says what Git was told."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from support import run_bytes
from support.keys import People, signed_policy
from support.repos import Clone, Server

from stepup_git.deadline import Alarm, Deadline

TIMED_OUT = "the policy check did not finish in time"


def _hanging_gpg(folder: Path) -> str:
    """A PATH whose gpg hangs, with the tools the hook needs otherwise."""
    folder.mkdir()
    for tool in ("git", "basename", "dirname", "cut"):
        found = shutil.which(tool)
        assert found is not None
        (folder / tool).symlink_to(found)
    fake = folder / "gpg"
    fake.write_text(f"#!/bin/sh\nexec {shutil.which('sleep')} 30\n")
    fake.chmod(0o755)
    return str(folder)


def _gpg_hanging_on(arg: str, folder: Path) -> str:
    """A PATH whose gpg is the real one, except that a call with ``arg`` hangs."""
    folder.mkdir()
    real = shutil.which("gpg")
    assert real is not None
    fake = folder / "gpg"
    fake.write_text(f'#!/bin/sh\nfor arg; do [ "$arg" = {arg} ] && exec {shutil.which("sleep")} 30; done\n'
                    f'exec {real} "$@"\n')
    fake.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_a_gpg_call_past_the_timeout_rejects(people: People, server: Server, clone: Clone, tmp_path: Path) -> None:
    server.write_policy(signed_policy(people.alice, settings='timeout = "2s"'), {"alice.asc": people.alice.export()})
    server.install()
    tip = clone.commit("signed", sign=people.alice)
    clone.git("push", "-q", str(server.path), f"{tip}:refs/heads/staging")  # objects on the server, no main
    started = time.monotonic()
    proc = run_bytes([str(server.path / "hooks" / "pre-receive")], cwd=server.path, check=False,
                     input=f"{'0' * 40} {tip} refs/heads/main\n".encode(),
                     env={"GIT_DIR": str(server.path), "PATH": _hanging_gpg(tmp_path / "bin"),
                          "XDG_CACHE_HOME": str(tmp_path / "cache")})
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines() == [f"stepup-git: push rejected: {TIMED_OUT}"]
    assert elapsed < 20, "the hook gave up at its timeout, not when gpg finished"
    assert server.ref("refs/heads/main") is None
    error = server.audit_records()[-1]
    assert (error["ref"], error["new"], error["decision"], error["mode"], error["error"]) == (
        "refs/heads/main", tip, "error", "enforce", TIMED_OUT)


def _bad_signature(clone: Clone, people: People) -> str:
    """A commit whose signature is alice's but whose content changed: Sequoia cannot vouch for it
    and hands it to gpg, the reference verifier."""
    clone.write("a.txt", "a\n")
    clone.commit("signed", sign=people.alice)
    raw = clone.git("cat-file", "commit", "HEAD").replace("signed", "forged")
    return run_bytes(["git", "hash-object", "-t", "commit", "-w", "--stdin"], cwd=clone.path,
                     input=raw.encode() + b"\n").stdout.decode().strip()


@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_a_deadline_during_the_gpg_fallback_is_not_swallowed(
        people: People, server: Server, clone: Clone, tmp_path: Path, mode: str) -> None:
    """A real push whose signature goes from the in-process verifier to gpg, which hangs: the hook
    stops at its deadline, says so in one line and records an error; audit mode warns and accepts."""
    server.write_policy(signed_policy(people.alice, settings=f'timeout = "2s"\nmode = "{mode}"'),
                        {"alice.asc": people.alice.export()})
    server.install()
    clone.commit("base", sign=people.alice)
    assert clone.push("main").ok  # the keyring is built with the real gpg
    base = clone.rev()
    forged = _bad_signature(clone, people)
    started = time.monotonic()
    result = clone.push(f"{forged}:refs/heads/main", env={"PATH": _gpg_hanging_on("--verify", tmp_path / "bin")})
    assert time.monotonic() - started < 20, "the hook gave up at its deadline, not when gpg finished"
    if mode == "enforce":
        assert not result.ok
        assert result.remote == [f"stepup-git: push rejected: {TIMED_OUT}"]
        assert server.ref("refs/heads/main") == base
    else:
        assert result.ok, result
        assert result.remote == [f"stepup-git: WARNING (audit mode): {TIMED_OUT}; the push is accepted"]
        assert server.ref("refs/heads/main") == forged
    error = server.audit_records()[-1]
    assert (error["new"], error["decision"], error["mode"], error["error"]) == (forged, "error", mode, TIMED_OUT)
    result = clone.push(f"{forged}:refs/heads/main", force=True)  # with the real gpg: a plain refusal
    if mode == "enforce":
        assert not result.ok and result.remote[1].startswith('refs/heads/main: rule "signed" failed for commit')


@pytest.mark.parametrize("hangs_on", ["--list-config", "--verify"])
def test_check_gives_up_on_a_hung_gpg(people: People, server: Server, clone: Clone, tmp_path: Path,
                                      hangs_on: str) -> None:
    """`stepup-git check` runs under no hook deadline: python-gnupg's calls, starting gpg (which runs
    --list-config) and verifying a signature, are bounded by the policy's timeout. The update cannot be
    judged, and the check says why in one line, soon after the timeout, not when gpg would finish."""
    policy = server.write_policy(signed_policy(people.alice, settings='timeout = "2s"'),
                                 {"alice.asc": people.alice.export()})
    base = clone.commit("base", sign=people.alice)
    forged = _bad_signature(clone, people)  # Sequoia hands it to gpg
    started = time.monotonic()
    proc = run_bytes([sys.executable, "-m", "stepup_git", "check", "--repo", str(clone.path), "--policy", str(policy),
                      base, forged, "refs/heads/main"], check=False,
                     env={"PATH": _gpg_hanging_on(hangs_on, tmp_path / "bin"),
                          "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert time.monotonic() - started < 20, "check waited for gpg, not for its timeout"
    assert (proc.returncode, proc.stderr) == (1, b""), proc
    assert proc.stdout.decode().splitlines() == [
        "stepup-git: would be rejected: 1 of 1 update(s) fail the policy",
        "refs/heads/main: cannot be judged: gpg did not answer within 2s",
    ]


def test_the_deadline_is_no_exception_library_code_can_catch() -> None:
    assert issubclass(Deadline, BaseException) and not issubclass(Deadline, Exception)
    alarm = Alarm()
    swallowed = False
    with pytest.raises(Deadline):
        try:
            alarm.arm(1)
            try:
                time.sleep(5)
            except Exception:  # what a library's fallback does
                swallowed = True
        finally:
            alarm.disarm()
    assert not swallowed
    alarm.arm(1)
    alarm.disarm()
    time.sleep(1.5)  # a disarmed deadline never fires


def test_the_deadline_is_disarmed_before_the_record_is_written(
        people: People, server: Server, clone: Clone) -> None:
    """The audit lock is held past the deadline (another push writing): the push, judged in time,
    waits for the lock and is accepted, and its record says accept, what Git was told."""
    server.write_policy(signed_policy(people.alice, settings='timeout = "2s"'), {"alice.asc": people.alice.export()})
    server.install()
    clone.commit("first", sign=people.alice)
    assert clone.push("main").ok
    tip = clone.commit("second", sign=people.alice)
    fd = os.open(server.audit_path.with_name("audit.jsonl.lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    release = threading.Timer(5, os.close, (fd,))
    release.start()
    started = time.monotonic()
    try:
        result = clone.push("main")
    finally:
        release.join()
    assert time.monotonic() - started >= 5
    assert result.ok, result
    assert result.remote == ["stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"]
    assert server.ref("refs/heads/main") == tip
    record = server.audit_records()[-1]
    assert (record["new"], record["decision"]) == (tip, "accept")
