"""Several Git servers, one truth (docs/servers.md), through real pushes and a real PostgreSQL server.

Three replicas of one project: bare repositories with the same history, one policy and keyring, one
nonce seed (`install --nonce-seed-file`) and one state database. Each is served over smart HTTP by its
own web server (nginx, fcgiwrap, `git http-backend`) whose backend, and so whose hook, runs under
`unshare --mount` with that replica's repository bind-mounted at one common path: every replica sees
its repository at the same path, as replicas behind a load balancer do. (Outside the servers the common
path is an empty folder; the tests read each replica through its own folder, or run the command line
in the replica's view of the file system, like an admin logged in on that server.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support import run
from support.keys import Key, People, key_toml
from support.lines import unwrap
from support.replay import RecordingProxy, parse_report, replay
from support.repos import Clone, PushResult, Server
from support.servers import HttpServer, ServerUnavailable, http_server, unavailable

if TYPE_CHECKING:
    from support.postgres import PostgresServer

RULE = "migrations-step-up"
MAIN = "refs/heads/main"
MIGRATION = "db/migrations/0001.sql"
ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"
ACCEPTED_NO_RULE = "stepup-git: push accepted (1 update(s), 0 rule check(s) passed)"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
PASSWORDS = {"alice": "alice pw", "bob": "bob pw"}
NO_PROMPT = {"GIT_TERMINAL_PROMPT": "0"}
REPLAYED = r"push certificate: {blob} was already used at \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \(a replayed certificate\)"


def policy_text(people: People, state: str | None, *, timeout: str = "2m") -> str:
    """alice maintainer, bob contributor; migrations need a step-up; the state in `state`."""
    settings = f'[settings]\ntimeout = "{timeout}"\n' + (f"state = '{state}'\n" if state else "")
    return (
        settings
        + '\n[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'
        + key_toml(people.alice, "alice", "maintainer")
        + key_toml(people.bob, "bob", "contributor")
        + f'\n[[rules]]\nname = "{RULE}"\npaths = ["db/migrations/**"]\nrequire = "step-up"\n'
        'tier = "maintainer"\nfresh_within = "10m"\n'
    )


def keyring(people: People) -> dict[str, str]:
    return {"alice.asc": people.alice.export(), "bob.asc": people.bob.export()}


def stepup(*args: str | Path, cwd: Path | None = None) -> Any:
    return run([sys.executable, "-m", "stepup_git", *map(str, args)], cwd=cwd, check=False)


def seed_file(folder: Path, content: str | None = None, mode: int = 0o600, name: str = "nonce-seed") -> Path:
    path = folder / name
    path.write_text((content if content is not None else secrets.token_hex(32)) + "\n")
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------- the project and its replicas


@dataclass
class Replica:
    """One server: its own copy of the repository (`path`), seen by its hook at the common path."""

    name: str
    path: Path
    common: Path
    http: HttpServer

    def url(self, user: str = "alice") -> str:
        return self.http.url(self.common.name, user, PASSWORDS[user])

    def ref(self, name: str = MAIN) -> str | None:
        proc = run(["git", "rev-parse", "--verify", "-q", name], cwd=self.path, check=False)
        return proc.stdout.strip() or None

    def stepup(self, *args: str | Path) -> Any:
        """The command line as an admin on this server runs it: in its view of the file system."""
        script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return run(["unshare", "--mount", "--", "sh", "-c", script, "sh", self.path, self.common,
                    sys.executable, "-m", "stepup_git", *map(str, args)], check=False)

    def local_records(self) -> list[dict[str, Any]]:
        log = self.path / "stepup" / "audit.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@dataclass
class Project:
    replicas: list[Replica]
    common: Path
    origin: Server
    dev: Clone
    seed: str
    policy: Path
    people: People

    def chain(self) -> list[dict[str, Any]]:
        """The shared audit chain, as `audit show --json` on the first replica prints it."""
        shown = self.replicas[0].stepup("audit", "show", "--repo", self.common, "--json")
        assert shown.returncode == 0, shown.stderr
        return [json.loads(line) for line in shown.stdout.splitlines()]


@pytest.fixture
def project(tmp_path: Path, people: People, state_db: str) -> Iterator[Project]:
    """Three replicas of one project sharing seed, policy, keyring and state database, each over HTTP."""
    if reason := unavailable("http"):
        pytest.skip(reason)
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("replicas at one path need bind mounts: root and unshare (Debian: util-linux)")
    origin = Server(tmp_path / "origin")
    dev = Clone(origin, tmp_path / "dev")
    dev.write("README", "app\n")
    seed = dev.commit("Seed")
    assert dev.push("HEAD:main").ok
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    policy = policy_dir / "policy.toml"
    policy.write_text(policy_text(people, state_db))
    (policy_dir / "keys").mkdir()
    for name, text in keyring(people).items():
        (policy_dir / "keys" / name).write_text(text)
    nonce_seed = seed_file(tmp_path)
    base = Path(tempfile.mkdtemp(prefix="sgrep", dir="/tmp"))
    common = base / "app.git"
    common.mkdir()
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        replicas = []
        for name in ("a", "b", "c"):
            path = tmp_path / name / "app.git"
            run(["git", "clone", "-q", "--bare", origin.path, path])
            installed = stepup("install", path, "--policy", policy, "--nonce-seed-file", nonce_seed)
            assert installed.returncode == 0, installed.stderr
            try:
                http = stack.enter_context(http_server(base, PASSWORDS, mounts={path: common}))
            except ServerUnavailable as exc:
                pytest.skip(str(exc))
            replicas.append(Replica(name, path, common, http))
        yield Project(replicas, common, origin, dev, seed, policy, people)


def push(replica: Replica | RecordingProxy, clone: Clone, refspec: str = "HEAD:main", *,
         signed: Key | None = None) -> PushResult:
    url = replica.url("alice") if isinstance(replica, Replica) else replica.url("app.git", "alice",
                                                                                PASSWORDS["alice"])
    return clone.push(refspec, signed=signed, remote=url, env=NO_PROMPT)


def add_migration(clone: Clone, name: str = MIGRATION) -> str:
    clone.write(name, "CREATE TABLE t (id int);\n")
    return clone.commit(f"Add {name}")


def at(replica: Replica, recorded: Any) -> Any:
    """A recorded request, sent to another replica instead of the one it went to."""
    return dataclasses.replace(recorded, upstream=(replica.http.host, replica.http.port))


# --------------------------------------------------------------------------- replays across replicas


def test_a_certificate_used_on_one_replica_is_refused_on_another(project: Project) -> None:
    a, b, c = project.replicas
    dev, alice = project.dev, project.people.alice
    # every replica has the same seed and serves the repository at the same path
    seeds = {run(["git", "config", "receive.certNonceSeed"], cwd=r.path).stdout for r in project.replicas}
    assert len(seeds) == 1
    tip = add_migration(dev)
    with RecordingProxy(a.http) as proxy:
        result = push(proxy, dev, signed=alice)
        assert result.ok, result
        assert result.remote == [ACCEPTED]
        captured = proxy.last_receive_pack()
    assert a.ref() == tip
    (first,) = project.chain()
    assert first["decision"] == "accept" and first["repo"] == str(project.common)
    blob = first["push_cert"]

    # The same request replayed at once on replica b: Git there calls its nonce OK (same seed, same
    # path, inside the slop); only the shared replay store knows it was used on a.
    report = parse_report(replay(at(b, captured))[1])
    assert report["ng"] == {MAIN: "pre-receive hook declined"} and report["ok"] == []
    lines = unwrap(report["remote"])
    assert lines[:2] == [REJECTED, f'{MAIN}: rule "{RULE}" failed for commit {tip[:10]}']
    assert re.fullmatch("    found:    " + REPLAYED.format(blob=blob[:10]), lines[3]), lines
    assert lines[4] == f"              tip commit {tip[:10]}: no signature"
    assert b.ref() == project.seed
    second = project.chain()[1]
    assert (second["decision"], second["push_cert"], second["push_cert_nonce_status"]) == ("reject", blob, "OK")

    # Its legitimate twin: a certificate b has never seen is accepted at its first use there (sent
    # to c first: accepted), and refused when it comes again on b.
    later = add_migration(dev, "db/migrations/0002.sql")
    with RecordingProxy(b.http) as proxy:
        proxy.hold = True
        assert not push(proxy, dev, signed=alice).ok
        held = proxy.last_receive_pack()
    assert held.held
    report = parse_report(replay(at(c, held))[1])
    assert report["accepted"], report
    assert report["remote"] == [ACCEPTED]
    assert c.ref() == later
    report = parse_report(replay(at(b, held))[1])
    assert report["ng"] == {MAIN: "pre-receive hook declined"}
    assert b.ref() == project.seed

    chain = project.chain()
    assert [r["decision"] for r in chain] == ["accept", "reject", "accept", "reject"]
    for replica in project.replicas:  # one chain, whichever server an admin asks
        verified = replica.stepup("audit", "verify", "--repo", project.common)
        assert (verified.returncode, verified.stdout) == (0, "audit log intact: 4 records\n")
        # nothing of it in local files
        assert not (replica.path / "stepup" / "audit.jsonl").exists()
        assert not (replica.path / "stepup" / "push-certs.sqlite").exists()


def test_sixteen_concurrent_pushes_over_three_replicas_make_one_chain(project: Project) -> None:
    dev = project.dev
    branches = []
    for n in range(16):
        dev.git("checkout", "-q", "-b", f"b{n}", project.seed)
        dev.write(f"notes/{n}.txt", f"{n}\n")
        branches.append((f"b{n}", dev.commit(f"Note {n}")))
    results: dict[int, PushResult] = {}
    barrier = threading.Barrier(len(branches))

    def send(n: int) -> None:
        barrier.wait()
        results[n] = push(project.replicas[n % 3], dev, f"b{n}:refs/heads/b{n}")

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(branches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, (branch, commit) in enumerate(branches):
        assert results[n].ok, results[n]
        assert results[n].remote == [ACCEPTED_NO_RULE]
        assert project.replicas[n % 3].ref(f"refs/heads/{branch}") == commit

    chain = project.chain()
    assert len(chain) == 16
    assert sorted((r["ref"], r["new"]) for r in chain) == sorted((f"refs/heads/{b}", c) for b, c in branches)
    assert [r["prev"] for r in chain[1:]] == [r["hash"] for r in chain[:-1]]  # never forked
    for replica in project.replicas:
        verified = replica.stepup("audit", "verify", "--repo", project.common, "--head",
                                  f"{chain[-1]['hash']}:16")
        assert (verified.returncode, verified.stdout) == (0, "audit log intact: 16 records, ending in the "
                                                             "given head\n")


# --------------------------------------------------------------------------- the database down


def test_the_database_down_rejects_with_one_line_and_the_chain_survives(
        project: Project, postgres_server: PostgresServer, state_db: str) -> None:
    a, b, c = project.replicas
    dev, alice = project.dev, project.people.alice
    dev.write("notes/1.txt", "1\n")
    one = dev.commit("Note 1")
    assert push(a, dev).remote == [ACCEPTED_NO_RULE]
    where = re.escape(f"the state database stepup@{postgres_server.socket_dir}:{postgres_server.port}/")
    with postgres_server.stopped():
        dev.write("notes/2.txt", "2\n")
        two = dev.commit("Note 2")
        result = push(b, dev)
        assert not result.ok
        (line,) = result.remote[:1]
        assert re.fullmatch(rf"stepup-git: push rejected: cannot append to the audit chain of "
                            rf"{re.escape(str(project.common))}: {where}t\d+ is unreachable: No such file or "
                            r"directory", line), line
        assert result.remote == [line]
        assert b.ref() == project.seed
        # recorded where it can be: b's local log, as an error
        (record,) = b.local_records()
        assert (record["decision"], record["new"], record["error"]) == ("error", two, line.split(": ", 2)[2])
        assert b.stepup("audit", "verify", "--log", b.path / "stepup" / "audit.jsonl").stdout == \
            "audit log intact: 1 record\n"

        # a signed push: the claim of its certificate fails first (the update cannot be judged), then
        # its record cannot be written either; both are in the local record
        tip = add_migration(dev)
        result = push(c, dev, signed=alice)
        assert not result.ok and c.ref() == project.seed
        assert len(result.remote) == 1 and re.fullmatch(
            rf"stepup-git: push rejected: cannot append to the audit chain of {re.escape(str(project.common))}: "
            rf"{where}t\d+ is unreachable: No such file or directory", result.remote[0]), result.remote
        (record,) = c.local_records()
        assert record["decision"] == "error"
        assert re.fullmatch(rf"cannot claim the push certificate: {where}t\d+ is unreachable: No such file or "
                            rf"directory; {re.escape(result.remote[0].split(': ', 2)[2])}", record["error"]), record

        # audit mode warns and accepts
        run(["git", "config", "stepup.mode", "audit"], cwd=b.path)
        result = push(b, dev, "HEAD:refs/heads/audited")
        assert result.ok and b.ref("refs/heads/audited") == tip
        assert len(result.remote) == 1 and result.remote[0].startswith(
            "stepup-git: WARNING (audit mode): cannot append to the audit chain of ")
        assert result.remote[0].endswith("; the push is accepted")
        run(["git", "config", "--unset", "stepup.mode"], cwd=b.path)

    # back up: pushes are recorded again, and the chain has exactly what was recorded, intact
    result = push(c, dev, signed=alice)
    assert result.remote == [ACCEPTED] and c.ref() == tip
    assert [(r["decision"], r["new"]) for r in project.chain()] == [("accept", one), ("accept", tip)]
    assert a.stepup("audit", "verify", "--repo", project.common).stdout == "audit log intact: 2 records\n"

    # a server that no longer answers: rejected once the policy's timeout is over, nothing written
    project.policy.write_text(policy_text(project.people, state_db, timeout="3s"))
    dev.git("checkout", "-q", "-b", "late", project.seed)
    dev.write("notes/3.txt", "3\n")
    dev.commit("Note 3")
    with postgres_server.frozen():
        result = push(a, dev, "HEAD:refs/heads/late")
    assert not result.ok and a.ref("refs/heads/late") is None
    assert len(result.remote) == 1 and re.fullmatch(
        rf"stepup-git: push rejected: cannot append to the audit chain of {re.escape(str(project.common))}: "
        rf"{where}t\d+ did not answer within the deadline", result.remote[0]), result.remote
    assert a.stepup("audit", "verify", "--repo", project.common).stdout == "audit log intact: 2 records\n"


# --------------------------------------------------------------------------- moving to the database


def test_state_migrate_moves_the_log_and_the_replay_store(
        people: People, server: Server, clone: Clone, state_db: str) -> None:
    clone.write("README", "app\n")
    seed = clone.commit("Seed")
    assert clone.push("HEAD:main").ok
    server.write_policy(policy_text(people, None), keyring(people))
    server.install()
    tip = add_migration(clone)
    assert clone.push("HEAD:main", signed=people.alice).remote == [ACCEPTED]
    local = server.audit_path.read_bytes()
    (record,) = server.audit_records()
    blob = record["push_cert"]

    server.write_policy(policy_text(people, state_db), keyring(people))
    name = str(server.path.resolve())
    moved = stepup("state", "migrate", "--repo", server.path)
    assert moved.returncode == 0, moved.stderr
    target = re.escape(re.sub(r".*host=(\S+) port=(\d+) dbname=(\S+).*", r"stepup@\1:\2/\3", state_db))
    assert re.fullmatch(
        rf"moved the state of {re.escape(name)} into the state database {target}\n"
        rf"  audit log {re.escape(str(server.audit_path))}: 1 of 1 record\(s\) copied; the chain ends in "
        rf"{record['hash'][:12]}…\n"
        rf"  replay store {re.escape(str(server.path / 'stepup' / 'push-certs.sqlite'))}: 1 push "
        r"certificate\(s\) copied\n"
        r"  the local files are left as they were; the hook now reads and writes the database\n",
        moved.stdout), moved.stdout
    verified = stepup("audit", "verify", "--repo", server.path, "--head", f"{record['hash']}:1")
    assert (verified.returncode, verified.stdout) == (0, "audit log intact: 1 record, ending in the given head\n")

    # The certificate used before the move stays used after it: its replay is refused.
    cert = server.git("cat-file", "blob", blob)
    nonce = re.search(r"^nonce (\S+)$", cert, re.M)
    assert nonce
    hook = run([server.path / "hooks" / "pre-receive"], cwd=server.path, input=f"{seed} {tip} {MAIN}\n",
               env={"GIT_DIR": str(server.path), "GIT_PUSH_CERT": blob, "GIT_PUSH_CERT_NONCE": nonce.group(1),
                    "GIT_PUSH_CERT_NONCE_STATUS": "OK"}, check=False)
    assert hook.returncode == 1
    lines = unwrap(hook.stderr.splitlines())
    assert re.fullmatch("    found:    " + REPLAYED.format(blob=blob[:10]), lines[3]), hook.stderr
    assert lines[4] == f"              tip commit {tip[:10]}: no signature"

    # Pushes now go to the database; the local log is left as it was.
    clone.write("notes.txt", "n\n")
    clone.commit("Notes")
    assert clone.push("HEAD:main").remote == [ACCEPTED_NO_RULE]
    assert server.audit_path.read_bytes() == local
    shown = stepup("audit", "show", "--repo", server.path, "--json")
    assert shown.stdout.encode().startswith(local)
    assert [json.loads(line)["decision"] for line in shown.stdout.splitlines()] == ["accept", "reject", "accept"]
    verified = stepup("audit", "verify", "--repo", server.path, "--head", f"{record['hash']}:1")
    assert verified.stdout == "audit log intact: 3 records, 2 records after the given head (record 1)\n"

    # Migrating again copies nothing and breaks nothing.
    again = stepup("state", "migrate", "--repo", server.path)
    assert again.returncode == 0
    assert "  audit log " in again.stdout and ": 0 of 1 record(s) copied; " in again.stdout
    assert ": 0 push certificate(s) copied" in again.stdout


def test_state_migrate_needs_a_database_in_the_policy(people: People, server: Server) -> None:
    server.write_policy(policy_text(people, None), keyring(people))
    server.install()
    proc = stepup("state", "migrate", "--repo", server.path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (f"stepup-git: the policy of {server.path} names no state database (settings.state); "
                           "there is nowhere to move its state\n")


# --------------------------------------------------------------------------- the seed and the setting


def test_nonce_seed_file_is_shared_and_refused_when_weak_or_readable(
        people: People, tmp_path: Path) -> None:
    servers = [Server(tmp_path / name) for name in ("one", "two")]
    for s in servers:
        s.write_policy(policy_text(people, None), keyring(people))
    folder = tmp_path / "seeds"
    folder.mkdir()
    OPEN = "has mode {mode}, which lets others than its owner read or change it; make it private: chmod 600 {{path}}"
    cases = [
        (seed_file(folder, mode=0o644, name="readable"), OPEN.format(mode="0644")),
        (seed_file(folder, mode=0o620, name="writable"), OPEN.format(mode="0620")),
        (seed_file(folder, "x" * 31, name="short"), "SHORT"),
        (folder / "missing", "MISSING"),
    ]
    for path, why in cases:
        proc = stepup("install", servers[0].path, "--policy", servers[0].policy_path, "--nonce-seed-file", path)
        if why == "SHORT":
            message = f"the nonce seed in {path} is 31 byte(s); use at least 32, e.g. openssl rand -hex 32"
        elif why == "MISSING":
            message = f"cannot read the nonce seed file {path}: No such file or directory"
        else:
            message = f"the nonce seed file {path} " + why.format(path=path)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"stepup-git: {message}\n")
        assert not (servers[0].path / "hooks" / "pre-receive").exists()  # nothing installed

    shared = seed_file(folder, "s" * 32)
    for s in servers:
        proc = stepup("install", s.path, "--policy", s.policy_path, "--nonce-seed-file", shared)
        assert proc.returncode == 0, proc.stderr
        assert s.git("config", "receive.certNonceSeed") == "s" * 32
    own = Server(tmp_path / "own")  # without the option: a random seed of its own, as before
    own.write_policy(policy_text(people, None), keyring(people))
    own.install()
    assert re.fullmatch(r"[0-9a-f]{64}", own.git("config", "receive.certNonceSeed"))


def test_the_state_setting_is_checked_when_the_policy_loads(people: People, tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    cases = {
        "postgresql://stepup:secret@db.example/stepup": "state must not hold a password: give it in the libpq "
        "password file (~/.pgpass, or passfile=) or the service file (~/.pg_service.conf)",
        "host=db.example password=secret": "state must not hold a password: give it in the libpq "
        "password file (~/.pgpass, or passfile=) or the service file (~/.pg_service.conf)",
        "host='db.example": "state is not a valid libpq connection string or service name (unterminated "
        "quoted string in connection info string)",
        " ": "state must name a database (a libpq connection string, postgresql:// URI or service name); "
        "leave it out to keep the state in local files",
    }
    for value, message in cases.items():
        path.write_text(f'[settings]\nmode = "enforce"\nstate = "{value}"\n')
        proc = stepup("policy", "check", path)
        assert proc.returncode == 1 and proc.stderr.splitlines()[0] == f"{path}:3: {message}", proc.stderr
    for fine in ("service=stepup", "stepup", "postgresql://stepup@db.example/stepup?sslmode=require",
                 "host=db.example dbname=stepup user=stepup passfile=/etc/stepup/pgpass"):
        path.write_text(f'[settings]\nstate = "{fine}"\nrepository = "app"\n')
        proc = stepup("policy", "check", path)
        assert (proc.returncode, proc.stdout) == (0, f"{path}: ok\n"), proc.stderr
    path.write_text('[settings]\nrepository = ""\n')
    proc = stepup("policy", "check", path)
    assert proc.stderr.splitlines()[0] == (f"{path}:2: repository must not be empty (leave it out to use the "
                                           "repository's path)")
