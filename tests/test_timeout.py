"""A gpg that does not answer within the policy's timeout rejects the push (fail closed)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from support import run_bytes
from support.keys import People, signed_policy
from support.repos import Clone, Server


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
    assert proc.stderr.decode().splitlines() == [
        "stepup-git: push rejected: the policy check did not finish in time"]
    assert elapsed < 20, "the hook gave up at its timeout, not when gpg finished"
    assert server.ref("refs/heads/main") is None
