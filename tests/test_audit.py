"""The audit log: hash chain, head file, tamper detection, locking, filters, table and CLI."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stepup_git import audit
from stepup_git.cli import audit as cli_audit
from stepup_git.errors import AuditError, UsageError

FPR_ALICE = "0123456789ABCDEF0123456789ABCDEF01234567"
FPR_BOB = "FEDCBA9876543210FEDCBA9876543210FEDCBA98"


def make_record(n: int, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "time": f"2026-11-24T03:{n:02d}:12Z",
        "repo": "/srv/git/app.git",
        "pusher": "alice",
        "ref": "refs/heads/main",
        "old": hashlib.sha1(b"%d" % n).hexdigest(),
        "new": hashlib.sha1(b"%d" % (n + 1)).hexdigest(),
        "action": "update",
        "decision": "accept",
        "rules": [{
            "name": "migrations-step-up",
            "result": "pass",
            "reason": "db/migrations/0042.sql changed: 1 fresh maintainer proof",
            "proofs": [{"kind": "tip-signature", "fingerprint": FPR_ALICE, "owner": "alice",
                        "tier": "maintainer", "signed_at": f"2026-11-24T03:{n:02d}:00Z"}],
        }],
        "push_cert_nonce_status": None,
        "mode": "enforce",
        "n": n,
    }
    record.update(changes)
    return record


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "stepup" / "audit.jsonl"


def write_five(log: Path) -> list[dict[str, Any]]:
    return audit.append(log, [make_record(1), make_record(2)]) + audit.append(
        log, [make_record(3)]) + audit.append(log, [make_record(4), make_record(5)])


def lines_of(log: Path) -> list[bytes]:
    return log.read_bytes().splitlines(keepends=True)


def head_of(log: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((log.parent / "audit.jsonl.head").read_text())
    return result


def ok(count: int) -> audit.Verification:
    noun = "record" if count == 1 else "records"
    return audit.Verification(True, count, None, f"audit log intact: {count} {noun}")


# --- writing ---------------------------------------------------------------------------------

def test_canonical_is_sorted_compact_utf8() -> None:
    assert audit.canonical({"b": 1, "a": "é", "c": [None, True]}) == (
        '{"a":"é","b":1,"c":[null,true]}'.encode())
    assert audit.record_hash({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()
    assert audit.GENESIS == "0" * 64


def test_appends_build_one_chain(log: Path) -> None:
    written = write_five(log)

    assert [r["n"] for r in written] == [1, 2, 3, 4, 5]
    assert written[0]["prev"] == audit.GENESIS
    for before, after in itertools.pairwise(written):
        assert after["prev"] == before["hash"]
    for record in written:
        body = {k: v for k, v in record.items() if k != "hash"}
        assert record["hash"] == audit.record_hash(body)
    assert lines_of(log) == [audit.canonical(r) + b"\n" for r in written]
    assert head_of(log) == {"count": 5, "hash": written[-1]["hash"]}
    assert list(audit.read(log)) == written
    assert audit.verify(log) == ok(5)


def test_caller_prev_and_hash_are_overwritten_and_input_untouched(log: Path) -> None:
    given = make_record(1, prev="f" * 64, hash="e" * 64)
    (written,) = audit.append(log, [given])
    assert written["prev"] == audit.GENESIS
    assert written["hash"] == audit.record_hash({**make_record(1), "prev": audit.GENESIS})
    assert given["prev"] == "f" * 64
    assert audit.verify(log) == ok(1)


def test_no_records_writes_nothing(log: Path) -> None:
    assert audit.append(log, []) == []
    assert not log.parent.exists()


def test_append_trusts_the_head_when_the_log_was_truncated(log: Path) -> None:
    written = write_five(log)
    log.write_bytes(lines_of(log)[0])
    (sixth,) = audit.append(log, [make_record(6)])
    assert sixth["prev"] == written[-1]["hash"]
    assert head_of(log) == {"count": 6, "hash": sixth["hash"]}
    assert audit.verify(log) == audit.Verification(
        False, 1, 2, "line 2: prev does not match line 1's hash (record removed or reordered)")


def test_append_without_a_head_file_continues_from_the_log(log: Path) -> None:
    written = write_five(log)
    (log.parent / "audit.jsonl.head").unlink()
    (sixth,) = audit.append(log, [make_record(6)])
    assert sixth["prev"] == written[-1]["hash"]
    assert audit.verify(log) == ok(6)


def test_a_cut_short_last_line_stays_apart_from_new_records(log: Path) -> None:
    audit.append(log, [make_record(1)])
    with log.open("ab") as f:
        f.write(b'{"time":"2026-11')
    audit.append(log, [make_record(2)])
    assert len(lines_of(log)) == 3
    assert audit.verify(log) == audit.Verification(False, 1, 2, "line 2: not valid JSON")


def test_syslog_gets_one_summary_line_per_record(log: Path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    import syslog

    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(syslog, "openlog", lambda *args: None)
    monkeypatch.setattr(syslog, "syslog", lambda priority, message: sent.append((priority,
                                                                                  message)))
    (written,) = audit.append(log, [make_record(1, ref="refs/heads/ma\nin")], syslog=True)
    assert sent == [(syslog.LOG_INFO,
                     "audit accept update refs/heads/ma\\x0ain by alice in /srv/git/app.git "
                     f"356a192b..da4b9237 head={written['hash']}:1")]
    sent.clear()
    second, third = audit.append(log, [make_record(2, ref="refs/heads/\udcff"), make_record(3)],
                                 syslog=True)
    assert [message.rsplit(" ", 1)[1] for _, message in sent] == [
        f"head={second['hash']}:2", f"head={third['hash']}:3"]
    assert "refs/heads/\\xff by alice" in sent[0][1]


def test_syslog_failures_are_ignored(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import syslog

    def fail(*args: object) -> None:
        raise OSError("no syslog")

    monkeypatch.setattr(syslog, "syslog", fail)
    assert len(audit.append(log, [make_record(1)], syslog=True)) == 1
    assert audit.verify(log) == ok(1)


# --- failures to write -----------------------------------------------------------------------

def test_parent_is_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "stepup"
    blocker.write_text("not a directory")
    log = blocker / "audit.jsonl"
    with pytest.raises(AuditError) as caught:
        audit.append(log, [make_record(1)])
    assert str(caught.value) == f"cannot write the audit log {log}: {blocker} is not a directory"


def test_an_ancestor_is_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "git").write_text("not a directory")
    log = tmp_path / "git" / "stepup" / "audit.jsonl"
    with pytest.raises(AuditError) as caught:
        audit.append(log, [make_record(1)])
    assert str(caught.value) == f"cannot write the audit log {log}: Not a directory"


def test_log_path_is_a_directory(log: Path) -> None:
    log.mkdir(parents=True)
    with pytest.raises(AuditError) as caught:
        audit.append(log, [make_record(1)])
    assert str(caught.value) == f"cannot write the audit log {log}: Is a directory"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_leaves_the_head_alone(log: Path) -> None:
    log.parent.mkdir(parents=True)
    log.symlink_to("/dev/full")
    with pytest.raises(AuditError) as caught:
        audit.append(log, [make_record(1)])
    assert str(caught.value) == f"cannot write the audit log {log}: No space left on device"
    assert not (log.parent / "audit.jsonl.head").exists()


def test_a_record_that_is_not_json(log: Path) -> None:
    with pytest.raises(AuditError) as caught:
        audit.append(log, [make_record(1, extra={1, 2})])
    assert str(caught.value) == (f"cannot write the audit log {log}: a record is not JSON "
                                 "(Object of type set is not JSON serializable)")
    assert not log.exists()


# --- tampering -------------------------------------------------------------------------------

def test_edited_field_names_its_line(log: Path) -> None:
    write_five(log)
    lines = lines_of(log)
    lines[2] = lines[2].replace(b'"pusher":"alice"', b'"pusher":"mallory"')
    log.write_bytes(b"".join(lines))
    assert audit.verify(log) == audit.Verification(
        False, 2, 3, "line 3: hash does not match its content (record edited)")


def test_edited_and_rehashed_record_breaks_the_next_link(log: Path) -> None:
    write_five(log)
    lines = lines_of(log)
    record = json.loads(lines[2])
    del record["hash"]
    record["decision"] = "reject"
    record["hash"] = audit.record_hash(record)
    lines[2] = audit.canonical(record) + b"\n"
    log.write_bytes(b"".join(lines))
    assert audit.verify(log) == audit.Verification(
        False, 3, 4, "line 4: prev does not match line 3's hash (record removed or reordered)")


def test_removed_record_names_the_line_after_the_gap(log: Path) -> None:
    write_five(log)
    lines = lines_of(log)
    del lines[1]
    log.write_bytes(b"".join(lines))
    assert audit.verify(log) == audit.Verification(
        False, 1, 2, "line 2: prev does not match line 1's hash (record removed or reordered)")


def test_removed_first_record(log: Path) -> None:
    write_five(log)
    log.write_bytes(b"".join(lines_of(log)[1:]))
    assert audit.verify(log) == audit.Verification(
        False, 0, 1, "line 1: prev is not the genesis value (records removed from the start)")


def test_swapped_records(log: Path) -> None:
    write_five(log)
    lines = lines_of(log)
    lines[1], lines[2] = lines[2], lines[1]
    log.write_bytes(b"".join(lines))
    assert audit.verify(log) == audit.Verification(
        False, 1, 2, "line 2: prev does not match line 1's hash (record removed or reordered)")


def test_removed_last_record_is_caught_by_the_head(log: Path) -> None:
    written = write_five(log)
    log.write_bytes(b"".join(lines_of(log)[:4]))
    assert audit.verify(log) == audit.Verification(
        False, 4, None,
        f"end of log: the head file records 5 records ending in {written[4]['hash'][:12]}…, "
        f"the log has 4 ending in {written[3]['hash'][:12]}… (records removed from the end)")


def test_truncated_log_is_caught_by_the_head(log: Path) -> None:
    written = write_five(log)
    log.write_bytes(b"")
    assert audit.verify(log) == audit.Verification(
        False, 0, None,
        f"end of log: the head file records 5 records ending in {written[4]['hash'][:12]}…, "
        "the log has 0 (records removed from the end)")


def test_deleted_log_is_caught_by_the_head(log: Path) -> None:
    write_five(log)
    log.unlink()
    assert audit.verify(log) == audit.Verification(
        False, 0, None, "end of log: the log file is missing")


def test_replaced_last_record(log: Path) -> None:
    written = write_five(log)
    lines = lines_of(log)
    forged = {**make_record(9), "prev": written[3]["hash"]}
    forged["hash"] = audit.record_hash(forged)
    lines[4] = audit.canonical(forged) + b"\n"
    log.write_bytes(b"".join(lines))
    assert audit.verify(log) == audit.Verification(
        False, 5, None,
        f"end of log: the head file records 5 records ending in {written[4]['hash'][:12]}…, "
        f"the log has 5 ending in {forged['hash'][:12]}… (last record replaced or head file "
        "edited)")


def test_garbage_line_is_named(log: Path) -> None:
    write_five(log)
    lines = lines_of(log)
    lines.insert(2, b"this is not json\n")
    log.write_bytes(b"".join(lines))
    assert audit.verify(log) == audit.Verification(False, 2, 3, "line 3: not valid JSON")


def test_json_that_is_not_a_record(log: Path) -> None:
    write_five(log)
    log.write_bytes(b"[1, 2]\n" + log.read_bytes())
    assert audit.verify(log) == audit.Verification(False, 0, 1, "line 1: not a record with a hash")


def test_duplicate_key_hiding_a_value_is_not_canonical(log: Path) -> None:
    write_five(log)
    lines = lines_of(log)
    lines[1] = b'{"pusher":"mallory",' + lines[1][1:]
    log.write_bytes(b"".join(lines))
    assert audit.verify(log) == audit.Verification(
        False, 1, 2, "line 2: not in canonical form (record edited or cut short)")


def test_head_file_missing_or_invalid(log: Path) -> None:
    write_five(log)
    head = log.parent / "audit.jsonl.head"
    head.write_text('{"count": 5}')
    assert audit.verify(log) == audit.Verification(
        False, 5, None,
        "end of log: the head file is not valid: it needs a 64-digit hash and a count")
    head.unlink()
    assert audit.verify(log) == audit.Verification(
        False, 5, None, "end of log: the head file is missing")


def test_a_missing_log_fails_and_an_empty_one_without_head_too(log: Path) -> None:
    assert audit.verify(log) == audit.Verification(
        False, 0, None, "end of log: the log file and its head file do not exist")
    log.parent.mkdir(parents=True)
    log.write_bytes(b"")
    assert audit.verify(log) == audit.Verification(
        False, 0, None, "end of log: the head file is missing")
    assert list(audit.read(log)) == []


def test_one_record_is_singular(log: Path) -> None:
    audit.append(log, [make_record(1)])
    assert audit.verify(log) == audit.Verification(True, 1, None, "audit log intact: 1 record")


def test_unreadable_log_raises(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.mkdir()
    with pytest.raises(AuditError) as caught:
        audit.verify(log)
    assert str(caught.value) == f"cannot read the audit log {log}: Is a directory"
    with pytest.raises(AuditError) as caught:
        list(audit.read(log))
    assert str(caught.value) == f"cannot read the audit log {log}: Is a directory"


def test_read_names_a_bad_line(log: Path) -> None:
    write_five(log)
    log.write_bytes(lines_of(log)[0] + b"{oops\n")
    with pytest.raises(AuditError) as caught:
        list(audit.read(log))
    assert str(caught.value) == f"{log}:2: not a JSON record (see `stepup-git audit verify`)"


# --- concurrency -----------------------------------------------------------------------------

WORKERS = 10
PER_WORKER = 25


def _append_from_worker(log: str, worker: int, barrier: Any) -> None:
    barrier.wait()
    batch = 1 if worker % 2 == 0 else 5
    for start in range(0, PER_WORKER, batch):
        audit.append(Path(log), [make_record(seq % 60, worker=worker, seq=seq,
                                             padding="x" * (500 * worker))
                                 for seq in range(start, start + batch)])


def test_concurrent_appends_lose_and_interleave_nothing(log: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(WORKERS)
    workers = [context.Process(target=_append_from_worker, args=(str(log), n, barrier))
               for n in range(WORKERS)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [process.exitcode for process in workers] == [0] * WORKERS

    lines = lines_of(log)
    assert len(lines) == WORKERS * PER_WORKER
    records = [json.loads(line) for line in lines]
    assert [audit.canonical(r) + b"\n" for r in records] == lines
    for worker in range(WORKERS):
        assert [r["seq"] for r in records if r["worker"] == worker] == list(range(PER_WORKER))
    assert head_of(log) == {"count": WORKERS * PER_WORKER, "hash": records[-1]["hash"]}
    assert audit.verify(log) == ok(WORKERS * PER_WORKER)


# --- select and render -----------------------------------------------------------------------

def sample() -> list[dict[str, Any]]:
    return [
        make_record(1),
        make_record(2, pusher="bob", ref="refs/heads/release/1.2", decision="reject"),
        make_record(3, ref="refs/tags/v1.2.0", action="create"),
        make_record(4, pusher="bob", decision="warn", time="not a time"),
        make_record(5, ref="refs/heads/mainline"),
    ]


def ns(records: list[dict[str, Any]]) -> list[int]:
    return [r["n"] for r in records]


def test_select_filters() -> None:
    records = sample()
    assert ns(audit.select(records)) == [1, 2, 3, 4, 5]
    assert ns(audit.select(records, ref="refs/heads/main")) == [1, 4]
    assert ns(audit.select(records, ref="main")) == [1, 4]
    assert ns(audit.select(records, ref="refs/heads/*")) == [1, 2, 4, 5]
    assert ns(audit.select(records, ref="release/*")) == [2]
    assert ns(audit.select(records, ref="v1.*")) == [3]
    assert ns(audit.select(records, pusher="bob")) == [2, 4]
    assert ns(audit.select(records, decision="reject")) == [2]
    assert ns(audit.select(records, since=datetime(2026, 11, 24, 3, 3, 12, tzinfo=UTC))) == [3, 5]
    assert ns(audit.select(records, since=datetime(2026, 11, 24, 3, 3, 13))) == [5]
    assert ns(audit.select(records, pusher="alice", ref="main", since=datetime(2026, 1, 1))) == [1]


def test_render_table_answers_who_approved_with_which_key_when() -> None:
    failing = make_record(2, pusher="mallory", decision="reject", rules=[
        {"name": "protected-main", "result": "fail",
         "reason": "no fresh signature by a maintainer key", "proofs": []},
        {"name": "two-person-release", "result": "pass", "reason": "2 of 2 release keys",
         "proofs": [{"kind": "push-certificate", "fingerprint": FPR_BOB, "owner": "bob",
                     "tier": "release", "signed_at": "2026-11-24T03:02:01Z"},
                    {"kind": "push-certificate", "fingerprint": "SHA256:abcdefghijklmnopqrstuvwxyz",
                     "owner": "carol-with-a-long-name", "tier": "release", "signed_at": None}]},
    ], ref="refs/heads/feature/a-very-long-branch-name", new="0" * 40, action="delete")
    assert audit.render_table([make_record(1), failing]).splitlines() == [
        "TIME                  PUSHER        REF                         ACTION      DECISION"
        "     OLD..NEW",
        "2026-11-24T03:01:12Z  alice         refs/heads/main             update      accept     "
        "  356a192b..da4b9237",
        "      rule migrations-step-up        pass   db/migrations/0042.sql changed: 1 fresh "
        "maintainer proof",
        "        key alice         maintainer   89ABCDEF01234567      signed "
        "2026-11-24T03:01:00Z  via tip-signature",
        "2026-11-24T03:02:12Z  mallory       …e/a-very-long-branch-name  delete      reject     "
        "  da4b9237..00000000",
        "    ! rule protected-main            fail   no fresh signature by a maintainer key",
        "      rule two-person-release        pass   2 of 2 release keys",
        "        key bob           release      76543210FEDCBA98      signed "
        "2026-11-24T03:02:01Z  via push-certificate",
        "        key carol-with-…  release      SHA256:abcdefghijkl…  signed -            "
        "         via push-certificate",
    ]


def test_render_table_without_records() -> None:
    assert audit.render_table([]).splitlines()[1:] == ["(no records)"]


# --- command line ----------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="stepup-git")
    cli_audit.register(top.add_subparsers(dest="command", required=True))
    return top


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result


def test_cli_show_json_and_filters(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written = audit.append(log, sample())
    assert run(["audit", "show", "--log", str(log), "--json"]) == 0
    assert capsys.readouterr().out.encode() == b"".join(
        audit.canonical(r) + b"\n" for r in written)
    assert run(["audit", "show", "--log", str(log), "--json", "--pusher", "bob",
                "--decision", "warn"]) == 0
    assert capsys.readouterr().out == audit.canonical(written[3]).decode() + "\n"
    assert run(["audit", "show", "--log", str(log), "--json", "--ref", "main",
                "--since", "2026-11-24T03:02"]) == 0
    assert capsys.readouterr().out == ""
    assert run(["audit", "show", "--log", str(log), "--ref", "refs/tags/*",
                "--since", "2026-11-24"]) == 0
    assert capsys.readouterr().out == audit.render_table([written[2]])


def test_cli_show_bad_since(log: Path) -> None:
    with pytest.raises(UsageError) as caught:
        run(["audit", "show", "--log", str(log), "--since", "last week"])
    assert str(caught.value) == (
        "--since takes an ISO-8601 date or time (2026-11-24, 2026-11-24T09:30Z), an age (30m, 2h, 7d, "
        "1h30m) or today or yesterday (UTC), not 'last week'")


def test_cli_verify_exit_codes(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_five(log)
    assert run(["audit", "verify", "--log", str(log)]) == 0
    assert capsys.readouterr().out == "audit log intact: 5 records\n"
    log.write_bytes(log.read_bytes().replace(b'"n":3', b'"n":33'))
    assert run(["audit", "verify", "--log", str(log)]) == 1
    assert capsys.readouterr().out == (
        f"{log}: line 3: hash does not match its content (record edited)\n")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_cli_repo_finds_the_log_in_the_git_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bare, work = tmp_path / "app.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    audit.append(bare / "stepup" / "audit.jsonl", [make_record(1)])
    audit.append(work / ".git" / "stepup" / "audit.jsonl", [make_record(1), make_record(2)])

    assert run(["audit", "verify", "--repo", str(bare)]) == 0
    assert run(["audit", "verify", "--repo", str(work)]) == 0
    monkeypatch.chdir(work)
    assert run(["audit", "verify"]) == 0
    assert capsys.readouterr().out == (
        "audit log intact: 1 record\naudit log intact: 2 records\naudit log intact: 2 records\n")

    with pytest.raises(AuditError) as caught:
        run(["audit", "show", "--repo", str(tmp_path)])
    assert str(caught.value) == f"not a git repository: {tmp_path}"


def test_cli_log_and_repo_exclude_each_other(log: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(["audit", "verify", "--log", str(log), "--repo", "."])
    assert caught.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_nan_is_not_json(log: Path) -> None:
    audit.append(log, [make_record(1)])
    log.write_bytes(log.read_bytes().replace(b'"n":1', b'"n":NaN'))
    assert audit.verify(log) == audit.Verification(False, 0, 1, "line 1: not valid JSON")


def test_append_with_an_invalid_head_continues_from_the_last_record(log: Path) -> None:
    written = write_five(log)
    (log.parent / "audit.jsonl.head").write_text("{not json")
    with log.open("ab") as f:
        f.write(b"[]\n")
    (seventh,) = audit.append(log, [make_record(7)])
    assert seventh["prev"] == written[-1]["hash"]
    assert head_of(log) == {"count": 7, "hash": seventh["hash"]}
    assert audit.verify(log) == audit.Verification(
        False, 5, 6, "line 6: not a record with a hash")


def test_lock_file_that_cannot_be_opened(log: Path) -> None:
    (log.parent / "audit.jsonl.lock").mkdir(parents=True)
    with pytest.raises(AuditError) as caught:
        audit.append(log, [make_record(1)])
    assert str(caught.value) == f"cannot write the audit log {log}: Is a directory"
    assert not log.exists()
    assert list(audit.read(log)) == []
