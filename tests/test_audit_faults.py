"""The audit log when things go wrong (docs/semantics.md): a write that fails leaves log and head byte for
byte as they were and refuses (or, in audit mode, warns about) the push; `audit verify` fails for a
missing log and checks the chain against a head kept elsewhere (`--head HASH[:COUNT]`)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from support import run
from support.keys import People, signed_policy
from support.lines import unwrap
from support.repos import Clone, Server

from stepup_git import audit
from stepup_git.errors import AuditError

ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"


def protected(server: Server, people: People, clone: Clone, mode: str = "enforce") -> None:
    """main needs commits signed by alice; two accepted pushes are in the log."""
    server.write_policy(signed_policy(people.alice, settings=f'mode = "{mode}"'), {"alice.asc": people.alice.export()})
    server.install()
    for message in ("one", "two"):
        clone.commit(message, sign=people.alice)
        assert clone.push("main").ok


def cli(*args: str) -> tuple[int, str, str]:
    proc = run([sys.executable, "-m", "stepup_git", *args], check=False)
    return proc.returncode, proc.stdout, proc.stderr


def state(server: Server) -> tuple[bytes, bytes]:
    return server.audit_path.read_bytes(), server.audit_path.with_name("audit.jsonl.head").read_bytes()


# --- a write that fails --------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_a_file_size_limit_during_the_write_leaves_log_and_head_as_they_were(
        people: People, server: Server, clone: Clone, mode: str) -> None:
    protected(server, people, clone, mode)
    before = state(server)
    base = server.ref("refs/heads/main")
    tip = clone.commit("three", sign=people.alice)
    # Git's receive-pack and the hook under it may write files up to 40 bytes past the log's size:
    # the next record (about 700 bytes) starts to be written and then fails with EFBIG.
    clone.git("config", "remote.origin.receivepack", f"prlimit --fsize={len(before[0]) + 40} git-receive-pack")
    result = clone.push("main")
    reason = f"cannot write the audit log {server.audit_path}: File too large"
    if mode == "enforce":
        assert not result.ok
        assert result.remote == [f"stepup-git: push rejected: {reason}"]
        assert server.ref("refs/heads/main") == base
    else:
        assert result.ok, result
        assert result.remote == [f"stepup-git: WARNING (audit mode): {reason}; the push is accepted"]
        assert server.ref("refs/heads/main") == tip
    assert "Traceback" not in result.stderr
    assert state(server) == before
    assert cli("audit", "verify", "--repo", str(server.path)) == (0, "audit log intact: 2 records\n", "")

    clone.git("config", "--unset", "remote.origin.receivepack")
    tip = clone.commit("four", sign=people.alice)
    result = clone.push("main")
    assert result.ok and result.remote == [ACCEPTED], result
    records = server.audit_records()
    assert [(r["new"], r["decision"]) for r in records[2:]] == [(tip, "accept")]
    assert records[2]["prev"] == records[1]["hash"]
    assert cli("audit", "verify", "--repo", str(server.path)) == (0, "audit log intact: 3 records\n", "")
    code, out, _ = cli("audit", "show", "--repo", str(server.path))
    assert code == 0 and len(out.splitlines()) == 1 + 3 * 3  # the header; each record, its rule, its proof


def test_a_head_file_that_cannot_be_replaced_undoes_the_lines_written(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    audit.append(log, [{"n": 1}, {"n": 2}])
    before = log.read_bytes(), log.with_name("audit.jsonl.head").read_bytes()
    blocker = log.with_name(f"audit.jsonl.head.{os.getpid()}.tmp")
    blocker.mkdir()  # where the new head is written first
    with pytest.raises(AuditError) as caught:
        audit.append(log, [{"n": 3}])
    assert str(caught.value) == f"cannot write the audit log {log}: Is a directory"
    assert (log.read_bytes(), log.with_name("audit.jsonl.head").read_bytes()) == before
    blocker.rmdir()
    audit.append(log, [{"n": 3}])
    assert audit.verify(log) == audit.Verification(True, 3, None, "audit log intact: 3 records")


# --- audit verify: a missing log, a head kept elsewhere ------------------------------------------


def test_verify_of_a_log_that_does_not_exist_fails(server: Server, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "audit.jsonl"
    assert cli("audit", "verify", "--log", str(missing)) == (
        1, f"{missing}: end of log: the log file and its head file do not exist\n", "")
    assert cli("audit", "verify", "--repo", str(server.path)) == (
        1, f"{server.audit_path}: end of log: the log file and its head file do not exist\n", "")


def test_verify_fails_when_log_and_head_are_deleted(people: People, server: Server, clone: Clone) -> None:
    protected(server, people, clone)
    server.audit_path.unlink()
    assert cli("audit", "verify", "--repo", str(server.path)) == (
        1, f"{server.audit_path}: end of log: the log file is missing\n", "")
    server.audit_path.with_name("audit.jsonl.head").unlink()
    assert cli("audit", "verify", "--repo", str(server.path)) == (
        1, f"{server.audit_path}: end of log: the log file and its head file do not exist\n", "")
    server.audit_path.write_bytes(b"")  # emptied, and the head removed
    assert cli("audit", "verify", "--repo", str(server.path)) == (
        1, f"{server.audit_path}: end of log: the head file is missing\n", "")


def test_verify_against_a_head_kept_elsewhere(people: People, server: Server, clone: Clone) -> None:
    protected(server, people, clone)
    first, second = server.audit_records()
    log, repo = server.audit_path, str(server.path)

    def verify(head: str) -> tuple[int, str, str]:
        return cli("audit", "verify", "--repo", repo, "--head", head)

    assert verify(f"{second['hash']}:2") == (0, "audit log intact: 2 records, ending in the given head\n", "")
    assert verify(second["hash"].upper()) == (0, "audit log intact: 2 records, ending in the given head\n", "")
    assert verify(f"{first['hash']}:1") == (
        0, "audit log intact: 2 records, 1 record after the given head (record 1)\n", "")
    other = "ab" * 32
    assert verify(f"{other}:2") == (
        1, f"{log}: end of log: the given head {other[:12]}…:2 is not in the log, which has 2 ending in "
           f"{second['hash'][:12]}… (the chain was rewritten or cut short)\n", "")
    assert verify(f"{second['hash']}:3") == (
        1, f"{log}: end of log: the given head {second['hash'][:12]}…:3 is record 2 of the log, not record 3 "
           "(records removed or inserted before it, the chain rewritten)\n", "")
    for bad in ("abc", f"{second['hash']}:two", f"{second['hash']}:-1"):
        code, out, err = verify(bad)
        assert (code, out) == (2, "")
        assert err.startswith("stepup-git: --head: ") and len(err.splitlines()) == 1, err


def test_a_truncated_log_with_a_rewritten_head_file_is_caught_by_the_head_kept_elsewhere(
        people: People, server: Server, clone: Clone) -> None:
    protected(server, people, clone)
    first, second = server.audit_records()
    log, head_file = server.audit_path, server.audit_path.with_name("audit.jsonl.head")
    log.write_bytes(log.read_bytes().splitlines(keepends=True)[0])  # the last record removed...
    head_file.write_bytes(audit.canonical({"count": 1, "hash": first["hash"]}))  # ...and the head rewritten
    assert cli("audit", "verify", "--repo", str(server.path)) == (0, "audit log intact: 1 record\n", "")
    assert cli("audit", "verify", "--repo", str(server.path), "--head", f"{second['hash']}:2") == (
        1, f"{log}: end of log: the given head {second['hash'][:12]}…:2 is not in the log, which has 1 ending "
           f"in {first['hash'][:12]}… (the chain was rewritten or cut short)\n", "")


def test_a_chain_rewritten_whole_is_caught_by_the_head_kept_elsewhere(
        people: People, server: Server, clone: Clone, tmp_path: Path) -> None:
    protected(server, people, clone)
    kept = server.audit_records()[-1]["hash"]
    forged = tmp_path / "forged.jsonl"
    audit.append(forged, [{**r, "pusher": "nobody"} for r in server.audit_records()])
    shutil.copy(forged, server.audit_path)
    shutil.copy(forged.with_name("forged.jsonl.head"), server.audit_path.with_name("audit.jsonl.head"))
    assert cli("audit", "verify", "--repo", str(server.path)) == (0, "audit log intact: 2 records\n", "")
    code, out, _ = cli("audit", "verify", "--repo", str(server.path), "--head", f"{kept}:2")
    assert code == 1 and "is not in the log" in out


# --- errors while judging ------------------------------------------------------------------------


def test_an_update_that_cannot_be_judged_is_recorded_as_an_error(
        people: People, server: Server, clone: Clone) -> None:
    protected(server, people, clone)
    missing = "1" * 40  # an object the repository does not have
    proc = run([str(server.path / "hooks" / "pre-receive")], cwd=server.path, check=False,
               input=f"{server.ref('refs/heads/main')} {missing} refs/heads/main\n",
               env={"GIT_DIR": str(server.path)})
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        "stepup-git: push rejected: 1 of 1 update(s) fail the policy")
    assert proc.stderr.splitlines()[1].startswith("refs/heads/main: cannot be judged: ")
    error = server.audit_records()[-1]
    assert (error["new"], error["decision"], error["mode"]) == (missing, "error", "enforce")
    assert unwrap(proc.stderr.splitlines())[1] == f"refs/heads/main: cannot be judged: {error['error']}"
    assert proc.stderr.splitlines()[1:] == [
        "refs/heads/main: cannot be judged: object 111111111111 is not in the",
        "    repository",
    ]
