"""The shared state in a real PostgreSQL server (docs/servers.md): the replay store, the audit chain, their
faults and the move of a repository's local state into the database."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from stepup_git.audit.log import GENESIS, append, canonical
from stepup_git.audit.verify import Head, verify
from stepup_git.errors import AuditError, StateError, StepupError
from stepup_git.proofs.replay import ReplayStore
from stepup_git.state import names_database
from stepup_git.state.chain import PostgresAuditLog
from stepup_git.state.database import Cursor, Database, conninfo_of, describe
from stepup_git.state.migrate import migrate
from stepup_git.state.replay import PostgresReplayStore

if TYPE_CHECKING:
    from support.postgres import PostgresServer


NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
KEEP = timedelta(hours=1)
REPO = "/srv/git/app.git"


def database(conninfo: str, seconds: float = 20) -> Database:
    return Database(conninfo, deadline=time.monotonic() + seconds)


def dbname(conninfo: str) -> str:
    match = re.search(r"dbname=(\S+)", conninfo)
    assert match
    return match.group(1)


def record(n: int, **extra: object) -> dict[str, object]:
    return {"time": f"2024-06-01T12:00:{n:02d}Z", "repo": REPO, "pusher": "alice", "ref": "refs/heads/main",
            "old": "0" * 40, "new": f"{n:040x}", "action": "update", "decision": "accept", "rules": [],
            **extra}


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    return text


# ---------------------------------------------------------------------------- the replay store


def test_a_claim_race_between_servers_has_exactly_one_winner(state_db: str) -> None:
    racers = 12
    barrier = threading.Barrier(racers)
    results: list[float | None] = []
    errors: list[BaseException] = []
    stores = [PostgresReplayStore(database(state_db), REPO) for _ in range(racers)]
    for store in stores:  # every "server" connected and the schema in place before the race
        store.release("warm-up", "warm-up")

    def claim(store: PostgresReplayStore, n: int) -> None:
        try:
            barrier.wait()
            # the same certificate, as sent to each server (some re-encoded: another blob)
            results.append(store.claim("identity-1", f"blob-{n % 3}", "nonce", KEEP, NOW))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(store, n)) for n, store in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert results.count(None) == 1
    assert set(results) - {None} == {NOW.timestamp()}
    for store in stores:
        store.db.close()


def test_a_re_encoded_certificate_is_the_same_certificate(state_db: str) -> None:
    with database(state_db) as db:
        store = PostgresReplayStore(db, REPO)
        assert store.claim("identity-1", "blob-a", "nonce", KEEP, NOW) is None
        later = NOW + timedelta(minutes=5)
        assert store.claim("identity-1", "blob-b", "nonce", KEEP, later) == NOW.timestamp()
        # another certificate, and the same one in another repository, are not refused
        assert store.claim("identity-2", "blob-c", "nonce", KEEP, later) is None
        assert PostgresReplayStore(db, "/srv/git/other.git").claim("identity-1", "blob-a", "nonce", KEEP,
                                                                    later) is None


def test_a_row_known_only_by_its_blob_is_refused(state_db: str) -> None:
    with database(state_db) as db:
        store = PostgresReplayStore(db, REPO)
        old = (NOW - timedelta(minutes=10)).timestamp()
        assert db.run(lambda cur: store.add(cur, [(None, "blob-a", "nonce", old)]), what="adding") == 1
        assert store.claim("identity-1", "blob-a", "nonce", KEEP, NOW) == old
        assert store.claim("identity-1", "blob-b", "nonce", KEEP, NOW) is None


def test_release_frees_only_its_own_claim(state_db: str) -> None:
    with database(state_db) as db:
        store = PostgresReplayStore(db, REPO)
        assert store.claim("identity-1", "blob-a", "nonce", KEEP, NOW) is None
        store.release("identity-1", "blob-b")  # not this claim: nothing freed
        assert store.claim("identity-1", "blob-a", "nonce", KEEP, NOW) == NOW.timestamp()
        store.release("identity-1", "blob-a")
        assert store.claim("identity-1", "blob-b", "nonce", KEEP, NOW + timedelta(seconds=1)) is None


def test_rows_older_than_keep_are_pruned_in_their_repository_only(state_db: str) -> None:
    with database(state_db) as db:
        here, there = PostgresReplayStore(db, REPO), PostgresReplayStore(db, "/srv/git/other.git")
        assert here.claim("old", "blob-old", "nonce", KEEP, NOW) is None
        assert there.claim("theirs", "blob-theirs", "nonce", timedelta(days=1), NOW) is None
        inside = NOW + KEEP - timedelta(seconds=1)
        assert here.claim("old", "blob-old", "nonce", KEEP, inside) == NOW.timestamp()
        after = NOW + KEEP + timedelta(seconds=1)
        assert here.claim("new", "blob-new", "nonce", KEEP, after) is None  # prunes "old"
        assert db.run(lambda cur: _count(cur, "stepup_replay WHERE identity = 'old'"), what="counting") == 0
        assert here.claim("old", "blob-old", "nonce", KEEP, after) is None
        # the other repository keeps its longer window, whatever this one prunes
        assert there.claim("theirs", "blob-theirs", "nonce", timedelta(days=1), after) == NOW.timestamp()


def _count(cur: Cursor, table_and_filter: str) -> int:
    cur.execute(f"SELECT count(*) FROM {table_and_filter}")
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


# ---------------------------------------------------------------------------- the audit chain


def test_appends_chain_like_the_file_log_and_verify(state_db: str, tmp_path: Path) -> None:
    weird = b"src/caf\xe9/\xff.txt".decode("utf-8", "surrogateescape")
    records = [record(1), record(2, path=weird, note="line\u2028break"), record(3)]
    file_log = tmp_path / "audit.jsonl"
    on_file = append(file_log, records)
    with database(state_db) as db:
        chain = PostgresAuditLog(db, REPO)
        assert chain.verify().message.endswith(f"the database holds no audit chain for {REPO}")
        assert chain.head() == (GENESIS, 0)
        assert list(chain.read()) == []
        written = chain.append(records[:1]) + chain.append(records[1:])
        assert written == on_file  # the same records, prev and hash as the file log writes
        assert chain.head() == (on_file[-1]["hash"], 3)
        back = list(chain.read(batch=2))
        assert back == on_file
        assert back[1]["path"].encode("utf-8", "surrogateescape") == b"src/caf\xe9/\xff.txt"
        stored = db.run(lambda cur: chain.lines(cur), what="reading")
        assert b"\n".join(stored) + b"\n" == file_log.read_bytes()
        assert chain.verify().ok and chain.verify().message == verify(file_log).message
        assert chain.verify(Head(on_file[0]["hash"], 1)).message == \
            "audit log intact: 3 records, 2 records after the given head (record 1)"
        assert chain.verify(Head(on_file[-1]["hash"])).message == \
            "audit log intact: 3 records, ending in the given head"
        assert chain.verify(Head(GENESIS, 0)).ok
        assert not chain.verify(Head(on_file[0]["hash"], 2)).ok
        assert "is not in the log" in chain.verify(Head("a" * 64)).message
        assert chain.append([]) == []
        with pytest.raises(AuditError, match="not JSON"):
            chain.append([{"bad": object()}])
        assert chain.head() == (on_file[-1]["hash"], 3)


def test_verify_finds_what_was_edited_removed_or_reordered(state_db: str,
                                                          postgres_server: PostgresServer) -> None:
    name = dbname(state_db)
    with database(state_db) as db:
        chain = PostgresAuditLog(db, REPO)
        written = chain.append([record(n) for n in range(1, 5)])
        edited = canonical({**written[1], "decision": "reject"})
        postgres_server.admin(f"UPDATE stepup_audit SET line = '\\x{edited.hex()}' WHERE number = 2", name)
        assert chain.verify().message == "line 2: hash does not match its content (record edited)"
        original = canonical(written[1])
        postgres_server.admin(f"UPDATE stepup_audit SET line = '\\x{original.hex()}' WHERE number = 2", name)
        assert chain.verify().ok
        postgres_server.admin("DELETE FROM stepup_audit WHERE number = 4", name)
        result = chain.verify()
        assert (result.ok, result.count) == (False, 3)
        assert "the head row records 4 records" in result.message and "records removed from the end" in \
            result.message
        postgres_server.admin("DELETE FROM stepup_audit WHERE number = 2", name)
        assert chain.verify().message == "line 2: numbered 3 (a record removed or inserted before it)"
        postgres_server.admin("UPDATE stepup_audit SET number = 2 WHERE number = 3", name)
        assert chain.verify().message == \
            "line 2: prev does not match line 1's hash (record removed or reordered)"
        other = PostgresAuditLog(db, "/srv/git/other.git")
        other.append([record(1)])
        postgres_server.admin("DELETE FROM stepup_audit_head WHERE repository = '/srv/git/other.git'", name)
        assert other.verify().message == "end of log: the head row is missing"


def test_sixteen_servers_appending_at_once_write_one_chain(state_db: str) -> None:
    child = (
        "import sys, time\n"
        "from stepup_git.state.chain import PostgresAuditLog\nfrom stepup_git.state.database import Database\n"
        "chain = PostgresAuditLog(Database(sys.argv[1], deadline=time.monotonic() + 60), sys.argv[2])\n"
        "chain.head()\n"  # connected, schema in place: all that is left is the append
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "print(chain.append([{'server': int(sys.argv[3]), 'decision': 'accept'}])[0]['hash'], flush=True)\n"
    )
    servers = [subprocess.Popen([sys.executable, "-c", child, state_db, REPO, str(n)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for n in range(16)]
    try:
        for server in servers:
            assert server.stdout is not None and server.stdout.readline() == "ready\n"
        for server in servers:  # go, all at once
            assert server.stdin is not None
            server.stdin.write("\n")
            server.stdin.flush()
        hashes = [server.communicate(timeout=60)[0].strip() for server in servers]
        assert [server.returncode for server in servers] == [0] * 16
    finally:
        for server in servers:
            if server.poll() is None:  # pragma: no cover - only after a failure above
                server.kill()
    with database(state_db) as db:
        chain = PostgresAuditLog(db, REPO)
        result = chain.verify()
        assert (result.ok, result.count) == (True, 16), result.message
        records = list(chain.read())
        assert sorted(r["server"] for r in records) == list(range(16))
        assert sorted(r["hash"] for r in records) == sorted(hashes)
        assert chain.head() == (records[-1]["hash"], 16)


# ---------------------------------------------------------------------------- faults


def test_the_server_stopped_mid_run_is_one_line_within_the_deadline(state_db: str,
                                                                   postgres_server: PostgresServer) -> None:
    db = database(state_db)
    chain, store = PostgresAuditLog(db, REPO), PostgresReplayStore(db, REPO)
    first = chain.append([record(1), record(2)])
    idle = database(state_db)  # another server's connection, unused while the database restarts
    assert PostgresAuditLog(idle, REPO).head() == (first[-1]["hash"], 2)
    with postgres_server.stopped():
        db.deadline = time.monotonic() + 3
        for attempt in (lambda: chain.append([record(3)]),
                        lambda: store.claim("identity-1", "blob-a", "nonce", KEEP, NOW),
                        chain.verify):
            started = time.monotonic()
            with pytest.raises(StateError) as caught:
                attempt()
            assert time.monotonic() - started < 3.5
            assert "is unreachable" in one_line(caught.value)
        store.release("identity-1", "blob-a")  # ignored, as the local store ignores it
    db.deadline = time.monotonic() + 20
    result = chain.verify()  # the same Database: its dropped connection is replaced
    assert (result.ok, result.count) == (True, 2)
    assert chain.head() == (first[-1]["hash"], 2)
    assert chain.append([record(3)])[0]["prev"] == first[-1]["hash"]
    assert PostgresAuditLog(idle, REPO).head()[1] == 3  # its dropped connection is replaced too
    db.close()
    idle.close()


def test_a_server_that_stops_answering_is_one_line_within_the_deadline(state_db: str,
                                                                      postgres_server: PostgresServer) -> None:
    connected, fresh = database(state_db), database(state_db)
    chain = PostgresAuditLog(connected, REPO)
    chain.append([record(1)])
    with postgres_server.frozen():
        for db, seconds in ((connected, 2.0), (fresh, 2.0)):
            db.deadline = time.monotonic() + seconds
            started = time.monotonic()
            with pytest.raises(StateError) as caught:
                PostgresAuditLog(db, REPO).append([record(2)])
            assert time.monotonic() - started < seconds + 1.0
            assert one_line(caught.value).endswith("did not answer within the deadline")
    connected.deadline = time.monotonic() + 20
    assert chain.verify().count == 1  # nothing half-written
    with pytest.raises(StateError, match="did not answer within the deadline"):
        Database(state_db, deadline=time.monotonic() - 1).run(lambda cur: None, what="late")
    connected.close()
    fresh.close()


def test_an_append_waiting_too_long_for_another_one_gives_up(state_db: str) -> None:
    holder, waiter = database(state_db), database(state_db, seconds=1.5)
    PostgresAuditLog(holder, REPO).append([record(1)])
    locked, release = threading.Event(), threading.Event()

    def hold(cur: Cursor) -> None:
        PostgresAuditLog(holder, REPO).lock_head(cur)
        locked.set()
        release.wait(30)

    thread = threading.Thread(target=holder.run, args=(hold,), kwargs={"what": "holding"})
    thread.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        with pytest.raises(StateError) as caught:
            PostgresAuditLog(waiter, REPO).append([record(2)])
        assert time.monotonic() - started < 2.5
        assert one_line(caught.value) == (f"cannot append to the audit chain of {REPO}: the state database "
                                          f"{describe(state_db)} did not answer within the deadline")
    finally:
        release.set()
        thread.join(30)
    waiter.deadline = time.monotonic() + 20
    assert PostgresAuditLog(waiter, REPO).verify().count == 1
    holder.close()
    waiter.close()


def test_a_refused_login_is_one_line(state_db: str, postgres_server: PostgresServer, tmp_path: Path) -> None:
    wrong = tmp_path / "pgpass"
    role = postgres_server.role
    wrong.write_text(f"*:*:*:{role}:not-the-password\n")
    wrong.chmod(0o600)
    for tcp in (False, True):
        conninfo = postgres_server.conninfo(dbname(state_db), tcp=tcp, passfile=str(wrong))
        with pytest.raises(StateError) as caught:
            PostgresAuditLog(database(conninfo), REPO).head()
        message = one_line(caught.value)
        assert message.startswith(f"cannot read the audit chain of {REPO}: the state database "
                                  f"{role}@")
        assert message.endswith(f'refused the login: password authentication failed for user "{role}"')
        assert "not-the-password" not in message


def test_nothing_listening_is_one_line(tmp_path: Path) -> None:
    for conninfo in (f"host={tmp_path} port=5 dbname=x user=y", "postgresql://y@127.0.0.1:1/x"):
        with pytest.raises(StateError) as caught:
            PostgresReplayStore(database(conninfo, 5), REPO).claim("i", "b", "n", KEEP, NOW)
        assert "cannot claim the push certificate: the state database y@" in one_line(caught.value)
        assert "is unreachable: " in str(caught.value)
    with pytest.raises(StateError, match="not a valid libpq connection string"):
        Database("host='unterminated", deadline=time.monotonic() + 5)


def test_a_service_name_and_its_password_come_from_libpq_files(
        state_db: str, postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[stepup]\nhost={postgres_server.socket_dir}\nport={postgres_server.port}\n"
                        f"dbname={dbname(state_db)}\nuser={postgres_server.role}\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.setenv("PGPASSFILE", str(postgres_server.passfile))
    assert conninfo_of(" stepup ") == "service=stepup" and describe("service=stepup") == "service=stepup"
    assert names_database("service=stepup") and not names_database("") and not names_database(None)
    for setting in ("stepup", "service=stepup"):
        with database(setting) as db:
            assert PostgresAuditLog(db, REPO).append([record(1)])
    with database("stepup") as db:
        assert PostgresAuditLog(db, REPO).verify().count == 2


def test_a_schema_newer_than_this_version_is_refused(state_db: str, postgres_server: PostgresServer) -> None:
    with database(state_db) as db:
        PostgresAuditLog(db, REPO).head()
    postgres_server.admin("UPDATE stepup_schema SET version = 99", dbname(state_db))
    with pytest.raises(StateError, match=r"has schema version 99, newer than this stepup-git's \(1\)"):
        PostgresAuditLog(database(state_db), REPO).head()


# ---------------------------------------------------------------------------- migration


def _local_state(git_dir: Path, records: int) -> tuple[Path, Path, list[dict[str, object]]]:
    log, replay = git_dir / "stepup" / "audit.jsonl", git_dir / "stepup" / "push-certs.sqlite"
    written = append(log, [record(n) for n in range(1, records + 1)])
    store = ReplayStore(replay)
    assert store.claim("identity-1", "blob-a", "nonce", KEEP, NOW) is None
    assert store.claim("identity-2", "blob-b", "nonce", KEEP, NOW) is None
    store.db.execute("INSERT INTO used VALUES ('blob-old', 'nonce', ?)", (NOW.timestamp() - 60,))
    store.db.close()
    return log, replay, written


def test_a_migration_keeps_the_chain_and_the_used_certificates(state_db: str, tmp_path: Path) -> None:
    log, replay, written = _local_state(tmp_path / "app.git", 5)
    with database(state_db) as db:
        moved = migrate(db, REPO, log_path=log, replay_path=replay)
        assert (moved.records, moved.copied, moved.certificates, moved.head) == (5, 5, 3, written[-1]["hash"])
        chain = PostgresAuditLog(db, REPO)
        assert chain.verify(Head(str(written[-1]["hash"]), 5)).message == \
            "audit log intact: 5 records, ending in the given head"
        assert list(chain.read()) == written
        store = PostgresReplayStore(db, REPO)
        later = NOW + timedelta(minutes=1)
        assert store.claim("identity-1", "blob-z", "nonce", KEEP, later) == NOW.timestamp()
        assert store.claim("identity-9", "blob-old", "nonce", KEEP, later) == NOW.timestamp() - 60
        # again: nothing to do
        again = migrate(db, REPO, log_path=log, replay_path=replay)
        assert (again.records, again.copied, again.certificates) == (5, 0, 0)
        # records the database received since do not make the local chain "another one"
        chain.append([record(6)])
        assert migrate(db, REPO, log_path=log, replay_path=replay).copied == 0
        assert chain.verify().count == 6


def test_a_migration_finishes_what_the_local_log_gained_since(state_db: str, tmp_path: Path) -> None:
    log, replay, _ = _local_state(tmp_path / "app.git", 2)
    with database(state_db) as db:
        migrate(db, REPO, log_path=log, replay_path=replay)
        more = append(log, [record(3), record(4)])
        assert migrate(db, REPO, log_path=log, replay_path=replay).copied == 2
        assert PostgresAuditLog(db, REPO).head() == (more[-1]["hash"], 4)


def test_a_migration_never_mixes_two_chains(state_db: str, tmp_path: Path) -> None:
    log, replay, _ = _local_state(tmp_path / "app.git", 3)
    other = tmp_path / "other.git" / "stepup" / "audit.jsonl"
    append(other, [record(n, pusher="mallory") for n in range(1, 3)])
    with database(state_db) as db:
        migrate(db, REPO, log_path=log, replay_path=replay)
        with pytest.raises(StateError) as caught:
            migrate(db, REPO, log_path=other, replay_path=tmp_path / "none.sqlite")
        assert "already holds another audit chain for /srv/git/app.git (3 records ending in" in \
            one_line(caught.value)
        assert PostgresAuditLog(db, REPO).verify().count == 3
        # the other chain goes in under its own repository
        assert migrate(db, "/srv/git/other.git", log_path=other, replay_path=tmp_path / "none.sqlite").copied == 2


def test_a_local_log_that_does_not_verify_is_not_migrated(state_db: str, tmp_path: Path) -> None:
    log, replay, _ = _local_state(tmp_path / "app.git", 3)
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0] + lines[2] + lines[1])
    with database(state_db) as db, pytest.raises(StateError) as caught:
        migrate(db, REPO, log_path=log, replay_path=replay)
    assert one_line(caught.value).startswith(f"cannot migrate the audit log {log}: it does not verify (line 2:")
    with database(state_db) as db:  # nothing went in, not even the certificates
        assert PostgresAuditLog(db, REPO).head() == (GENESIS, 0)
        assert PostgresReplayStore(db, REPO).claim("identity-1", "blob-a", "nonce", KEEP, NOW) is None


def test_a_repository_without_local_state_migrates_to_nothing(state_db: str, tmp_path: Path) -> None:
    with database(state_db) as db:
        moved = migrate(db, REPO, log_path=tmp_path / "audit.jsonl", replay_path=tmp_path / "certs.sqlite")
        assert (moved.records, moved.copied, moved.certificates, moved.head) == (0, 0, 0, "")
        assert not PostgresAuditLog(db, REPO).verify().ok


def test_an_unreadable_replay_store_is_one_line(state_db: str, tmp_path: Path) -> None:
    broken = tmp_path / "push-certs.sqlite"
    broken.write_bytes(b"not a database" * 100)
    with database(state_db) as db, pytest.raises(StateError, match="cannot read the push certificate replay"):
        migrate(db, REPO, log_path=tmp_path / "audit.jsonl", replay_path=broken)
    assert isinstance(caught_error(broken), StepupError)


def caught_error(path: Path) -> BaseException:
    from stepup_git.state.migrate import local_certificates

    try:
        local_certificates(path)
    except StateError as exc:
        return exc
    raise AssertionError("no error")
