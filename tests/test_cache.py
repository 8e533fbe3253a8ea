"""The verification cache (bench/README.md): reused under the same keyring and policy, never across a change,
and anything wrong with its file only turns it off (it never decides a push)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from support import isolated_env, run
from support.keys import Gpg, Key, People, key_toml
from support.repos import Clone, PushResult, Server, Signer, signing_config

from stepup_git.cache import FLUSH_EVERY, open_store
from stepup_git.evaluate import STORE_MIN
from stepup_git.signatures import Verified

ROOT = Path(__file__).resolve().parents[1]
KEYRING, POLICY = "a" * 64, "b" * 64
COMMITS = 40
"""A push this size goes through the cache (smaller ones are verified directly)."""
ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
ROOT_FIX = [  # wrapped, the rebase command whole on its line
    "    fix:      sign with a policy key of tier contributor or higher",
    "              (git config user.signingkey <key id>):",
    "              git rebase --rebase-merges --exec 'git commit --amend --no-edit -S' --root,",
    "              then push again",
]
REQUIRED = [
    "    required: every new commit signed by a policy key of tier",
    "              contributor or higher",
]
MORE = f'    ... and {COMMITS - 5} more object(s) failing rule "signed" the same way'

GOOD = Verified(True, "openpgp", key_id="C" * 40, signing_key="D" * 40,
                created=datetime(2023, 5, 6, 7, 8, 9, tzinfo=UTC),
                expires=datetime(2043, 5, 6, 7, 8, 9, tzinfo=UTC))
BAD = Verified(False, "openpgp", key_id="E" * 16, problem="bad signature (the signed content was changed)")
SSH = Verified(True, "ssh", key_id="SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")


def oid(n: int) -> str:
    return f"{n:040x}"


def test_round_trip(tmp_path: Path) -> None:
    """What one push stores, a later push under the same digests reads back unchanged."""
    store = open_store(tmp_path, KEYRING, POLICY)
    store.put(oid(1), GOOD)
    store.put(oid(2), BAD)
    store.put(oid(3), SSH)
    store.flush()
    again = open_store(tmp_path, KEYRING, POLICY)
    assert again.get_many([oid(1), oid(2), oid(3), oid(4)]) == {oid(1): GOOD, oid(2): BAD, oid(3): SSH}
    assert again.get_many([]) == {}


def test_large_batches_flush_and_read_in_chunks(tmp_path: Path) -> None:
    """FLUSH_EVERY puts are written without an explicit flush, and read back in one call."""
    store = open_store(tmp_path, KEYRING, POLICY)
    for n in range(FLUSH_EVERY):
        store.put(oid(n), GOOD if n % 2 else BAD)
    found = open_store(tmp_path, KEYRING, POLICY).get_many([oid(n) for n in range(FLUSH_EVERY + 5)])
    assert len(found) == FLUSH_EVERY
    assert found[oid(0)] == BAD and found[oid(FLUSH_EVERY - 1)] == GOOD


def test_other_keyring_or_policy_never_sees_entries(tmp_path: Path) -> None:
    """An entry is never trusted across a keyring or policy change, and contexts never overwrite each other."""
    store = open_store(tmp_path, KEYRING, POLICY)
    store.put(oid(1), GOOD)
    store.flush()
    assert open_store(tmp_path, "f" * 64, POLICY).get_many([oid(1)]) == {}
    assert open_store(tmp_path, KEYRING, "f" * 64).get_many([oid(1)]) == {}
    assert open_store(tmp_path, POLICY, KEYRING).get_many([oid(1)]) == {}
    other = open_store(tmp_path, "f" * 64, POLICY)
    other.put(oid(1), BAD)
    other.flush()
    assert open_store(tmp_path, KEYRING, POLICY).get_many([oid(1)]) == {oid(1): GOOD}
    assert open_store(tmp_path, "f" * 64, POLICY).get_many([oid(1)]) == {oid(1): BAD}


def assert_disabled(state: Path) -> None:
    store = open_store(state, KEYRING, POLICY)
    store.put(oid(1), GOOD)
    store.flush()
    assert store.get_many([oid(1)]) == {}
    assert open_store(state, KEYRING, POLICY).get_many([oid(1)]) == {}


def test_garbage_cache_file_disables_the_cache(tmp_path: Path) -> None:
    """A cache file that is not a database: no error, no hit, and the file is left as it was."""
    path = tmp_path / "verified.sqlite"
    path.write_bytes(b"this is not an SQLite database\n" * 100)
    assert_disabled(tmp_path)
    assert path.read_bytes() == b"this is not an SQLite database\n" * 100


def test_cache_path_that_is_a_directory_disables_the_cache(tmp_path: Path) -> None:
    (tmp_path / "verified.sqlite").mkdir()
    assert_disabled(tmp_path)


def test_foreign_table_disables_the_cache(tmp_path: Path) -> None:
    """A database whose `verified` table has another shape: lookups and writes fail quietly."""
    with closing(sqlite3.connect(tmp_path / "verified.sqlite")) as db:
        db.execute("CREATE TABLE verified (oid TEXT PRIMARY KEY, other INTEGER)")
        db.commit()
    assert_disabled(tmp_path)


def test_corrupt_row_gives_no_hit(tmp_path: Path) -> None:
    """A stored result that is not a verification (bad JSON, missing fields) is a miss, not an error."""
    store = open_store(tmp_path, KEYRING, POLICY)
    store.put(oid(1), GOOD)
    store.put(oid(2), GOOD)
    store.flush()
    with closing(sqlite3.connect(tmp_path / "verified.sqlite")) as db:
        db.execute("UPDATE verified SET result = '{not json' WHERE oid = ?", (oid(1),))
        db.commit()
    assert open_store(tmp_path, KEYRING, POLICY).get_many([oid(1), oid(2)]) == {}
    with closing(sqlite3.connect(tmp_path / "verified.sqlite")) as db:
        db.execute("UPDATE verified SET result = '{\"kind\": \"ssh\"}' WHERE oid = ?", (oid(1),))
        db.commit()
    assert open_store(tmp_path, KEYRING, POLICY).get_many([oid(1)]) == {}


def test_state_folder_that_is_a_file_disables_the_cache(tmp_path: Path) -> None:
    state = tmp_path / "stepup"
    state.write_text("not a folder\n")
    assert_disabled(state)


WRITER = """
import sys, time
from pathlib import Path
from stepup_git.cache import open_store
from stepup_git.signatures import Verified
state, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
store = open_store(state, sys.argv[4], sys.argv[5])
for batch in range(10):
    for n in range(50):
        store.put(f"{name}-{batch}-{n}", Verified(True, "ssh", key_id=name))
    store.flush()
"""


def write_at_once(state: Path, names: list[str]) -> None:
    """Run one writer process per name, released together; each stores 500 verifications."""
    go = state.parent / f"go-{state.name}"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(state), name, str(go), KEYRING, POLICY],
                         cwd=ROOT, env=isolated_env(), stderr=subprocess.PIPE)
        for name in names
    ]
    time.sleep(0.3)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()


def stored_ids(state: Path, names: list[str]) -> dict[str, Verified]:
    wanted = [f"{name}-{batch}-{n}" for name in names for batch in range(10) for n in range(50)]
    return open_store(state, KEYRING, POLICY).get_many(wanted)


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    """Two pushes flushing into the same cache at the same time both store all their verifications."""
    state = tmp_path / "stepup"
    open_store(state, KEYRING, POLICY)  # the cache exists, as after any earlier push
    write_at_once(state, ["one", "two"])
    found = stored_ids(state, ["one", "two"])
    assert len(found) == 1000
    assert found["one-9-49"] == Verified(True, "ssh", key_id="one")
    assert found["two-0-0"] == Verified(True, "ssh", key_id="two")


HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE IF NOT EXISTS other (x)")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


def test_opening_while_another_process_creates_the_cache(tmp_path: Path) -> None:
    """A push that opens the cache while a concurrent first push is creating it still stores its results."""
    state = tmp_path / "stepup"
    state.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state / "verified.sqlite")], cwd=ROOT,
                              env=isolated_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        store = open_store(state, KEYRING, POLICY)
        store.put(oid(1), GOOD)
    finally:
        holder.communicate(b"\n", timeout=30)
    assert holder.returncode == 0
    store.flush()
    assert open_store(state, KEYRING, POLICY).get_many([oid(1)]) == {oid(1): GOOD}


# -- end to end: the installed hook -----------------------------------------------------------------


def policy_text(*keys: str) -> str:
    return (
        'version = 1\n\n[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'
        + "".join(keys)
        + '\n[[rules]]\nname = "signed"\nrefs = ["refs/heads/**"]\nrequire = "signed"\ntier = "contributor"\n'
    )


def cache_rows(server: Server) -> list[int]:
    """Rows per context (keyring and policy digests) in the repository's cache, smallest first."""
    path = server.path / "stepup" / "verified.sqlite"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as db:
        return sorted(n for _, n in db.execute("SELECT context, count(*) FROM verified GROUP BY context"))


def signed_commits(clone: Clone, signer: Signer, count: int = COMMITS) -> list[str]:
    """A chain of `count` signed commits (git commit-tree -S) on the clone's current branch."""
    config = signing_config(signer)
    tree = clone.git("write-tree")
    commits: list[str] = []
    for n in range(count):
        parent = ["-p", commits[-1]] if commits else []
        commits.append(clone.git(*config, "commit-tree", "-S", *parent, "-m", f"change {n}", tree))
    clone.git("update-ref", "HEAD", commits[-1])
    return commits


def delete(clone: Clone, server: Server, ref: str) -> None:
    """Delete a branch on the server, so the same commits are new again in the next push."""
    result = clone.push(f":{ref}")
    assert result.ok and result.remote == [ACCEPTED], result
    assert server.ref(ref) is None


def assert_accepted(result: PushResult, server: Server, ref: str, tip: str) -> None:
    assert result.ok and result.remote == [ACCEPTED], result
    assert server.ref(ref) == tip


def test_hook_reuses_verifications_until_the_keyring_changes(people: People, server: Server,
                                                             clone: Clone) -> None:
    """The same commits pushed again are not verified again; a changed keyring folder starts afresh."""
    server.write_policy(policy_text(key_toml(people.alice, "alice", "maintainer")),
                        {"alice.asc": people.alice.export()})
    server.install()
    tip = signed_commits(clone, people.alice)[-1]

    assert_accepted(clone.push("HEAD:refs/heads/one"), server, "refs/heads/one", tip)
    assert cache_rows(server) == [COMMITS]
    delete(clone, server, "refs/heads/one")

    assert_accepted(clone.push("HEAD:refs/heads/two"), server, "refs/heads/two", tip)
    assert cache_rows(server) == [COMMITS]  # all hits: nothing new to store

    # The verdicts of a push under the same keyring come from the cache: rewrite them, and they show.
    planted = json.dumps(Verified(False, "openpgp", problem="verdict read from the cache").to_json())
    with closing(sqlite3.connect(server.path / "stepup" / "verified.sqlite")) as db:
        db.execute("UPDATE verified SET result = ?", (planted,))
        db.commit()
    delete(clone, server, "refs/heads/two")
    result = clone.push("HEAD:refs/heads/three")
    assert not result.ok and server.ref("refs/heads/three") is None
    assert result.remote[0] == REJECTED
    assert result.remote.count("    found:    verdict read from the cache") == 5
    assert result.remote[-1] == MORE

    # Another key file in the keyring folder: a new context, every commit verified (and stored) again.
    (server.keys_dir / "bob.asc").write_text(people.bob.export())
    assert_accepted(clone.push("HEAD:refs/heads/four"), server, "refs/heads/four", tip)
    assert cache_rows(server) == [COMMITS, COMMITS]


def test_cached_failure_is_not_reused_after_the_keyring_gains_the_subkey(gpg: Gpg, server: Server,
                                                                         clone: Clone) -> None:
    """Commits by a subkey the keyring does not hold yet fail; once the keyring has it, they pass."""
    kim = gpg.gen_key("Kim", "kim@example.com", created="2020-01-01T00:00:00Z")
    before = kim.export()
    status = gpg.gpg("--status-fd", "1", "--quick-add-key", kim.fingerprint, "ed25519", "sign", "never",
                     at="2020-01-01T00:00:00Z").decode()
    subkey = next(line.split()[3] for line in status.splitlines() if "KEY_CREATED" in line)
    by_subkey = Key("Kim", "kim@example.com", subkey + "!", subkey, gpg)
    server.write_policy(policy_text(key_toml(kim, "kim", "maintainer")), {"kim.asc": before})
    server.install()
    commits = signed_commits(clone, by_subkey)
    tip = commits[-1]

    result = clone.push("HEAD:refs/heads/topic")
    assert not result.ok and server.ref("refs/heads/topic") is None
    assert len(subkey) == 40
    assert result.remote[:10] == [
        REJECTED,
        f'refs/heads/topic: rule "signed" failed for commit {commits[0][:10]}',
        *REQUIRED,
        "    found:    signed by unknown key",
        f"              {subkey}",
        *ROOT_FIX,
    ]
    assert len(result.remote) == 1 + 5 * 9 + 1 and result.remote[-1] == MORE
    assert cache_rows(server) == [COMMITS]

    (server.keys_dir / "kim.asc").write_text(kim.export())
    assert_accepted(clone.push("HEAD:refs/heads/topic"), server, "refs/heads/topic", tip)
    assert cache_rows(server) == [COMMITS, COMMITS]


def test_cached_failure_is_not_reused_after_the_policy_lists_the_key(people: People, server: Server,
                                                                     clone: Clone) -> None:
    """Commits by an SSH key the policy does not list fail; once the policy lists it, they pass."""
    keyring = {"alice.asc": people.alice.export()}
    server.write_policy(policy_text(key_toml(people.alice, "alice", "maintainer")), keyring)
    server.install()
    commits = signed_commits(clone, people.bob_ssh)
    tip = commits[-1]

    result = clone.push("HEAD:refs/heads/topic")
    assert not result.ok and server.ref("refs/heads/topic") is None
    fingerprint = run(["ssh-keygen", "-l", "-E", "sha256", "-f", people.bob_ssh.public_path]).stdout.split()[1]
    assert result.remote[:11] == [
        REJECTED,
        f'refs/heads/topic: rule "signed" failed for commit {commits[0][:10]}',
        *REQUIRED,
        "    found:    signed by SSH key",  # the SHA256 fingerprint is too long to follow on the line
        f"              {fingerprint}, which",
        "              the policy does not list",
        *ROOT_FIX,
    ]
    assert len(result.remote) == 1 + 5 * 10 + 1 and result.remote[-1] == MORE
    assert cache_rows(server) == [COMMITS]

    server.write_policy(
        policy_text(key_toml(people.alice, "alice", "maintainer"), key_toml(people.bob_ssh, "bob", "contributor")),
        keyring,
    )
    assert_accepted(clone.push("HEAD:refs/heads/topic"), server, "refs/heads/topic", tip)
    assert cache_rows(server) == [COMMITS, COMMITS]


def test_a_small_push_verifies_without_the_cache_and_keeps_nothing(people: People, server: Server,
                                                                   clone: Clone) -> None:
    """Below STORE_MIN signatures a push does not open SQLite; from STORE_MIN on it does."""
    server.write_policy(policy_text(key_toml(people.alice, "alice", "maintainer")),
                        {"alice.asc": people.alice.export()})
    server.install()
    state = server.path / "stepup"
    small = signed_commits(clone, people.alice, STORE_MIN - 1)[-1]
    assert_accepted(clone.push("HEAD:refs/heads/small"), server, "refs/heads/small", small)
    assert sorted(p.name for p in state.iterdir()) == ["audit.jsonl", "audit.jsonl.head", "audit.jsonl.lock",
                                                       "baseline"]
    clone.write("other.txt", "another tree, so that no commit of the next chain is one of the first\n")
    clone.git("add", "other.txt")
    big = signed_commits(clone, people.alice, STORE_MIN)[-1]
    assert_accepted(clone.push("HEAD:refs/heads/big"), server, "refs/heads/big", big)
    assert cache_rows(server) == [STORE_MIN]
