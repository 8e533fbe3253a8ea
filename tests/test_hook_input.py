"""What the hook reads: names that are not UTF-8, ref names holding line separators, and stdin,
the environment and the clock passed in as values (docs/semantics.md).

Every push goes through the installed hook with real git and gpg; each test checks the exact
`remote:` lines, whether the server ref moved, the audit record and `audit verify`/`audit show`.
"""

from __future__ import annotations

import io
import json
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest
from support import run
from support.keys import People, key_toml
from support.lines import unwrap
from support.repos import Clone, Server

from stepup_git import hook

RULE = "migrations-step-up"
MAIN = "refs/heads/main"
ODD = "db/migrations/0002_\udcff.sql"  # the name's byte 0xff, as surrogateescape reads it
ODD_BYTES = b"db/migrations/0002_\xff.sql"
ODD_SHOWN = "db/migrations/0002_\\xff.sql"  # how the pusher and `audit show` see it
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
ZERO = "0" * 40


def accepted(checks: int) -> str:
    return f"stepup-git: push accepted (1 update(s), {checks} rule check(s) passed)"


def protect(server: Server, people: People, rule: str) -> None:
    server.write_policy(
        'version = 1\n[tiers]\norder = ["contributor", "maintainer", "release"]\n'
        + key_toml(people.alice, "alice", "maintainer") + key_toml(people.bob, "bob", "contributor") + rule,
        {"alice.asc": people.alice.export(), "bob.asc": people.bob.export()})
    server.install()


STEP_UP = f"""[[rules]]
name = "{RULE}"
paths = ["db/migrations/**"]
require = "step-up"
tier = "maintainer"
fresh_within = "10m"
"""
SIGNED = """[[rules]]
name = "signed"
refs = ["refs/heads/**"]
require = "signed"
tier = "contributor"
"""


def seeded(server: Server, clone: Clone, people: People, rule: str) -> str:
    clone.write("README.md", "app\n")
    base = clone.commit("base")
    assert clone.push("main").ok
    protect(server, people, rule)
    return base


def cli(*args: str) -> tuple[int, str, str]:
    """`stepup-git ARGS` with output that must be strict UTF-8 (a surrogate would fail it)."""
    proc = run([sys.executable, "-m", "stepup_git", *args], check=False,
               env={"PYTHONIOENCODING": "utf-8:strict"})
    return proc.returncode, proc.stdout, proc.stderr


def raw_log(server: Server) -> bytes:
    return server.audit_path.read_bytes()


def assert_intact(server: Server, count: int) -> None:
    noun = "record" if count == 1 else "records"
    assert cli("audit", "verify", "--repo", str(server.path)) == (0, f"audit log intact: {count} {noun}\n", "")


# --- names that are not UTF-8 --------------------------------------------------------------------


def test_unsigned_migration_whose_name_is_not_utf8_is_refused_and_audited(
        people: People, server: Server, clone: Clone) -> None:
    base = seeded(server, clone, people, STEP_UP)
    clone.write(ODD, "CREATE TABLE t (id integer);\n")
    oid = clone.commit("odd migration")
    assert (clone.path / os.fsdecode(ODD_BYTES)).is_file()
    result = clone.push("main")
    assert not result.ok, result
    assert server.ref(MAIN) == base
    why = f"update of {MAIN} changes {ODD_SHOWN} (db/migrations/**)"
    assert unwrap(result.remote)[:3] == [
        REJECTED,
        f'{MAIN}: rule "{RULE}" failed for commit {oid[:10]}',
        "    required: a fresh proof of tier maintainer or higher: a signed push certificate for this update "
        f"(git push --signed) or a signature on the pushed tip made within the last 10m ({why})",
    ], result
    assert result.remote[2:7] == [  # wrapped as the name is shown, with the byte escaped
        "    required: a fresh proof of tier maintainer or higher: a signed push",
        "              certificate for this update (git push --signed) or a",
        "              signature on the pushed tip made within the last 10m",
        "              (update of refs/heads/main changes",
        "              db/migrations/0002_\\xff.sql (db/migrations/**))",
    ]
    assert "Traceback" not in result.stderr
    (record,) = server.audit_records()
    assert (record["ref"], record["new"], record["decision"]) == (MAIN, oid, "reject")
    (rule,) = record["rules"]
    assert (rule["result"], rule["path"]) == ("fail", ODD)
    assert rule["path"].encode("utf-8", "surrogateescape") == ODD_BYTES
    assert b'"path":"db/migrations/0002_\\udcff.sql"' in raw_log(server)  # the escaped form
    assert_intact(server, 1)


def test_fresh_maintainer_signed_migration_whose_name_is_not_utf8_is_accepted_and_audited(
        people: People, server: Server, clone: Clone) -> None:
    seeded(server, clone, people, STEP_UP)
    clone.write(ODD, "CREATE TABLE t (id integer);\n")
    oid = clone.commit("odd migration", sign=people.alice)
    result = clone.push("main")
    assert result.ok, result
    assert result.remote == [accepted(1)]
    assert server.ref(MAIN) == oid
    (record,) = server.audit_records()
    assert (record["ref"], record["new"], record["decision"], record["mode"]) == (MAIN, oid, "accept", "enforce")
    (rule,) = record["rules"]
    assert (rule["result"], rule["path"]) == ("pass", ODD)
    assert rule["reason"] == f"step-up proven by alice (tip-signature): update of {MAIN} changes {ODD} " \
                             "(db/migrations/**)"
    assert rule["path"].encode("utf-8", "surrogateescape") == ODD_BYTES
    assert_intact(server, 1)
    code, out, err = cli("audit", "show", "--repo", str(server.path), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["rules"][0]["path"] == ODD
    assert "0002_\\udcff.sql" in out
    code, out, err = cli("audit", "show", "--repo", str(server.path))
    assert (code, err) == (0, "")
    assert out.splitlines()[1].split()[1:5] == ["-", MAIN, "update", "accept"]


ODD_REF = "refs/heads/caf\udcff"  # the byte 0xff in a branch name: Git allows it


def test_branch_whose_name_is_not_utf8_is_judged_shown_and_audited_as_it_is(
        people: People, server: Server, clone: Clone) -> None:
    base = seeded(server, clone, people, SIGNED)
    unsigned = clone.commit("unsigned")
    result = clone.push(f"HEAD:{ODD_REF}")
    assert not result.ok, result
    assert result.remote[:2] == [REJECTED, f'refs/heads/caf\\xff: rule "signed" failed for commit {unsigned[:10]}']
    assert server.ref(ODD_REF) is None
    clone.git("reset", "-q", "--hard", base)
    signed = clone.commit("signed", sign=people.bob)
    result = clone.push(f"HEAD:{ODD_REF}")
    assert result.ok, result
    assert result.remote == [accepted(1)]
    assert server.ref(ODD_REF) == signed
    refused, accepted_ = server.audit_records()
    assert [(r["ref"], r["new"], r["decision"]) for r in (refused, accepted_)] == [
        (ODD_REF, unsigned, "reject"), (ODD_REF, signed, "accept")]
    assert accepted_["ref"].encode("utf-8", "surrogateescape") == b"refs/heads/caf\xff"
    assert_intact(server, 2)
    code, out, err = cli("audit", "show", "--repo", str(server.path), "--ref", "refs/heads/caf*")
    assert (code, err) == (0, "")
    assert [line.split()[1:5] for line in out.splitlines()[1:] if not line.startswith(" ")] == [
        ["-", "refs/heads/caf\\xff", "create", "reject"], ["-", "refs/heads/caf\\xff", "create", "accept"]]


# --- ref names holding line separators -----------------------------------------------------------


@pytest.mark.parametrize(("name", "shown"), [
    ("refs/heads/topic\u2028", "refs/heads/topic\\u2028"),
    ("refs/heads/topic\x85", "refs/heads/topic\\x85"),
    ("refs/heads/to\u2028pic", "refs/heads/to\\u2028pic"),
    ("refs/heads/main\u2029", "refs/heads/main\\u2029"),
])
def test_a_ref_name_with_a_line_separator_is_one_name(
        people: People, server: Server, clone: Clone, name: str, shown: str) -> None:
    """U+2028, U+0085 (and U+2029) split a line for `str.splitlines`, not for Git: the ref is judged,
    refused or accepted, and audited under its whole name, as an ordinary name would be."""
    base = seeded(server, clone, people, SIGNED + '[[rules]]\nname = "main-frozen"\nrefs = ["refs/heads/main"]\n'
                                                  'require = "deny"\n')
    unsigned = clone.commit("unsigned")
    result = clone.push(f"HEAD:{name}")
    assert not result.ok, result
    assert result.remote[:2] == [REJECTED, f'{shown}: rule "signed" failed for commit {unsigned[:10]}']
    assert server.ref(name) is None
    clone.git("reset", "-q", "--hard", base)
    signed = clone.commit("signed", sign=people.bob)
    result = clone.push(f"HEAD:{name}")
    assert result.ok, result
    assert result.remote == [accepted(1)]  # one rule: "signed"; main's deny is not this ref's
    assert server.ref(name) == signed
    assert server.ref(MAIN) == base
    assert [(r["ref"], r["decision"], [x["name"] for x in r["rules"]]) for r in server.audit_records()] == [
        (name, "reject", ["signed"]), (name, "accept", ["signed"])]
    assert_intact(server, 2)


# --- stdin, environment and clock as values --------------------------------------------------------


def run_in_process(server: Server, stdin: bytes, now: datetime) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = hook.main(stdin, {**os.environ, "GIT_DIR": str(server.path)}, now, out=out)
    return code, out.getvalue().splitlines()


def test_the_hook_judges_at_the_time_it_is_given(people: People, server: Server, clone: Clone) -> None:
    """A tip signed in 2021 is a fresh proof for a push judged in 2021, a stale one today: the clock
    enters at the hook's edge, and the record's time is the time given."""
    base = clone.commit("base")
    clone.write("db/migrations/0003.sql", "CREATE TABLE u (id integer);\n")
    oid = clone.commit("migration", sign=people.alice, at="2021-06-01T12:00:00Z")
    assert clone.push(f"{base}:refs/heads/main", f"{oid}:refs/heads/staging").ok  # objects on the server
    protect(server, people, STEP_UP)
    stdin = f"{base} {oid} {MAIN}\n".encode()
    code, lines = run_in_process(server, stdin, datetime(2021, 6, 1, 12, 5, tzinfo=UTC))
    assert (code, lines) == (0, [accepted(1)])
    code, lines = run_in_process(server, stdin, datetime.now(UTC))
    assert (code, lines[0]) == (1, REJECTED)
    judged = [r for r in server.audit_records() if r["ref"] == MAIN]
    assert [r["decision"] for r in judged] == ["accept", "reject"]
    assert judged[0]["time"] == "2021-06-01T12:05:00Z"
    assert datetime.fromisoformat(judged[1]["time"]) > datetime.now(UTC) - timedelta(minutes=5)


def test_hook_input_that_is_not_utf8_is_read_as_bytes(server: Server, people: People, clone: Clone) -> None:
    """stdin is decoded with surrogateescape: a malformed line is refused for what it is, in one
    printable line, and recorded."""
    seeded(server, clone, people, SIGNED)
    code, lines = run_in_process(server, b"\xff\xfe\n", datetime(2026, 1, 2, tzinfo=UTC))
    assert (code, lines) == (1, ["stepup-git: push rejected: input line 1 is not '<old-id> <new-id> <ref>': "
                                 "'\\udcff\\udcfe'"])
    (record,) = server.audit_records()
    assert (record["time"], record["ref"], record["decision"]) == ("2026-01-02T00:00:00Z", None, "error")
