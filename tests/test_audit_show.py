"""`stepup-git audit show` answers the security team's questions (README.md, "The audit log"): every
decision, `--since` as a date, an age or a day, `--path`, every matched path in the record, the whole
reason, full fingerprints with `--wide`, and the approvals view.

One server's log is made once for the module by real pushes through the installed hook: a rejected and
an accepted migration on main, a break-glass push to a release branch, a warned push in audit mode and a
push that could not be judged (a key missing from the keyring).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.cli import stepup
from support.keys import People, key_toml
from support.repos import Clone, Server

from stepup_git import audit
from stepup_git.judge import MORE_PATHS

MAIN = "refs/heads/main"
RELEASE = "refs/heads/release/1.0"
STEP_UP = "migrations-step-up"
SIGNED = "release-signed"
PATTERNS = "(db/migrations/**, infra/**)"
MIGRATIONS = ["db/migrations/0001.sql", "db/migrations/0002.sql"]
GLASS = "prod is down, hotfix"
SINCE_FORMS = ("an ISO-8601 date or time (2026-11-24, 2026-11-24T09:30Z), an age (30m, 2h, 7d, 1h30m) "
               "or today or yesterday (UTC)")


def policy(people: People, state: str | None = None) -> str:
    """alice maintainer, bob contributor, carol release (and break-glass); migrations on main need a
    fresh maintainer proof; release branches need commits signed by a maintainer."""
    return f"""
version = 1
[settings]
break_glass = "release"
{f"state = '{state}'" if state else ""}
[tiers]
order = ["contributor", "maintainer", "release"]
{key_toml(people.alice, "alice", "maintainer")}
{key_toml(people.bob, "bob", "contributor")}
{key_toml(people.carol, "carol", "release")}
[[rules]]
name = "{STEP_UP}"
refs = ["{MAIN}"]
paths = ["db/migrations/**", "infra/**"]
require = "step-up"
tier = "maintainer"
fresh_within = "10m"

[[rules]]
name = "{SIGNED}"
refs = ["refs/heads/release/*"]
require = "signed"
tier = "maintainer"
"""


def keyring(people: People) -> dict[str, str]:
    return {f"{name}.asc": getattr(people, name).export() for name in ("alice", "bob", "carol")}


@dataclass(frozen=True)
class Log:
    """The module's server and its records, in the order the pushes made them."""

    server: Server
    records: list[dict[str, Any]]
    people: People

    def by(self, decision: str) -> dict[str, Any]:
        (record,) = [r for r in self.records if r["decision"] == decision]
        return record


@pytest.fixture(scope="module")
def log(people: People, tmp_path_factory: pytest.TempPathFactory) -> Log:
    root = tmp_path_factory.mktemp("audit-show")
    server = Server(root / "server")
    clone = Clone(server, root / "dev")
    clone.write("README.md", "app\n")
    base = clone.commit("base")
    assert clone.push("main").ok  # before the hook: not judged, not recorded
    server.write_policy(policy(people), keyring(people))
    server.install()

    # bob's unsigned migrations are refused; alice's signed ones are accepted
    for path in MIGRATIONS:
        clone.write(path, f"-- {path}\n")
    clone.write("src/app.py", "print('v2')\n")
    clone.commit("Two migrations")
    assert not clone.push("main", pusher="bob").ok
    clone.git("reset", "-q", "--soft", base)
    approved = clone.commit("Two migrations", sign=people.alice)
    assert clone.push("main", pusher="alice").ok and server.ref(MAIN) == approved

    # carol breaks the glass for an unsigned hotfix on a release branch
    clone.write("hotfix.txt", "urgent\n")
    clone.commit("Unsigned hotfix")
    assert clone.push(f"HEAD:{RELEASE}", signed=people.carol, pusher="carol",
                      options=[f"stepup.break-glass={GLASS}"]).ok

    # in audit mode bob's unsigned infrastructure change is warned about
    server.git("config", "stepup.mode", "audit")
    clone.git("reset", "-q", "--hard", approved)
    clone.write("infra/main.tf", "# tf\n")
    clone.commit("Infra")
    assert clone.push("main", pusher="bob").ok
    server.git("config", "--unset", "stepup.mode")

    # a key the policy lists is missing from the keyring: the push cannot be judged
    (server.keys_dir / "bob.asc").unlink()
    assert not clone.push("HEAD:refs/heads/topic", pusher="bob").ok

    records = server.audit_records()
    assert [(r["ref"], r["pusher"], r["decision"]) for r in records] == [
        (MAIN, "bob", "reject"), (MAIN, "alice", "accept"), (RELEASE, "carol", "break-glass"),
        (MAIN, "bob", "warn"), ("refs/heads/topic", "bob", "error")]
    return Log(server, records, people)


def show(log: Log, *args: str) -> tuple[int, list[str], str]:
    proc = stepup("audit", "show", "--repo", log.server.path, *args)
    return proc.returncode, proc.stdout.splitlines(), proc.stderr


def shown_json(log: Log, *args: str) -> list[dict[str, Any]]:
    code, lines, err = show(log, "--json", *args)
    assert (code, err) == (0, "")
    return [json.loads(line) for line in lines]


def when(record: dict[str, Any]) -> datetime:
    return audit.parse_time(record["time"])


# --- what the record holds -----------------------------------------------------------------------


def test_the_record_lists_every_path_the_rule_matched(log: Log) -> None:
    """Both migrations, not the first alone, and not src/app.py, which the rule does not watch."""
    for decision in ("reject", "accept"):
        (rule,) = log.by(decision)["rules"]
        assert (rule["name"], rule["path"], rule["paths"]) == (STEP_UP, MIGRATIONS[0], MIGRATIONS)
    (rule,) = log.by("warn")["rules"]
    assert (rule["path"], rule["paths"]) == ("infra/main.tf", ["infra/main.tf"])
    (rule,) = log.by("break-glass")["rules"]
    assert "paths" not in rule and "path" not in rule  # a rule without paths
    verified = stepup("audit", "verify", "--repo", log.server.path)
    assert (verified.returncode, verified.stdout) == (0, "audit log intact: 5 records\n")


def test_json_lines_are_the_records_as_written(log: Log) -> None:
    code, lines, err = show(log, "--json")
    assert (code, err) == (0, "")
    assert "\n".join(lines) + "\n" == log.server.audit_path.read_text(encoding="utf-8")


# --- --decision: every decision a record carries -------------------------------------------------


@pytest.mark.parametrize("decision", ["accept", "reject", "warn", "break-glass", "error"])
def test_decision_selects_each_decision(log: Log, decision: str) -> None:
    assert shown_json(log, "--decision", decision) == [log.by(decision)]


def test_an_unknown_decision_is_refused_naming_the_choices(log: Log) -> None:
    code, lines, err = show(log, "--decision", "denied")
    assert (code, lines) == (2, [])
    assert err.splitlines()[-1].endswith("argument --decision: invalid choice: 'denied' (choose from 'accept', "
                                         "'reject', 'warn', 'break-glass', 'error')")



# --- the table -----------------------------------------------------------------------------------


def header() -> str:
    return "TIME                  PUSHER        REF                         ACTION      DECISION     OLD..NEW"


def record_line(r: dict[str, Any], pusher: str, ref: str, action: str, decision: str) -> str:
    return f"{r['time']}  {pusher:12}  {ref:26}  {action:10}  {decision:11}  {r['old'][:8]}..{r['new'][:8]}"


def test_the_table_keeps_every_reason_whole_and_lists_the_matched_paths(log: Log) -> None:
    reject, accept = log.by("reject"), log.by("accept")
    (proof,) = accept["rules"][0]["proofs"]
    code, lines, err = show(log, "--ref", "main", "--decision", "reject")
    assert (code, err) == (0, "")
    assert lines == [
        header(),
        record_line(reject, "bob", MAIN, "update", "reject"),
        f"    ! rule {STEP_UP}        fail   step-up not proven: update of {MAIN} changes {MIGRATIONS[0]} "
        f"{PATTERNS}",
        f"        paths {MIGRATIONS[0]}, {MIGRATIONS[1]}",
    ]
    code, lines, err = show(log, "--decision", "accept")
    assert (code, err) == (0, "")
    assert lines == [
        header(),
        record_line(accept, "alice", MAIN, "update", "accept"),
        f"      rule {STEP_UP}        pass   step-up proven by alice (tip-signature): update of {MAIN} "
        f"changes {MIGRATIONS[0]} {PATTERNS}",
        f"        paths {MIGRATIONS[0]}, {MIGRATIONS[1]}",
        f"        key alice         maintainer   {log.people.alice.fingerprint[-16:]}      signed "
        f"{proof['signed_at']}  via tip-signature",
    ]


def test_wide_shows_full_fingerprints(log: Log) -> None:
    accept, glass = log.by("accept"), log.by("break-glass")
    code, lines, err = show(log, "--wide", "--ref", "refs/heads/*", "--since", glass["time"],
                            "--decision", "break-glass")
    assert (code, err) == (0, "")
    assert lines == [
        header(),
        record_line(glass, "carol", RELEASE, "create", "break-glass"),
        f"    ! rule {SIGNED}            fail   1 of 2 new commit(s) not signed as required",
        f"    ! break-glass {GLASS}",
        f"        key carol         release      {log.people.carol.fingerprint}  signed "
        f"{glass['break_glass']['signed_at']}  via push-certificate",
    ]
    code, lines, err = show(log, "--wide", "--decision", "accept")
    assert lines[-1] == (f"        key alice         maintainer   {log.people.alice.fingerprint}  signed "
                         f"{accept['rules'][0]['proofs'][0]['signed_at']}  via tip-signature")


def test_an_update_that_could_not_be_judged_shows_its_whole_error(log: Log) -> None:
    error = log.by("error")
    keys = log.server.keys_dir
    assert error["error"].endswith(f"key {log.people.bob.fingerprint} (bob) is not in the keyring folder {keys}; "
                                   f"add its public key as {keys / 'bob.asc'}")
    code, lines, err = show(log, "--decision", "error")
    assert (code, err) == (0, "")
    assert lines == [header(), record_line(error, "bob", "refs/heads/topic", "create", "error"),
                     f"    ! error {error['error']}"]


def test_a_long_list_of_paths_is_cut_unless_wide() -> None:
    paths = [f"db/migrations/{n:04}.sql" for n in range(1, 6)]
    record = {"time": "2026-11-24T03:01:12Z", "pusher": "alice", "ref": MAIN, "action": "update",
              "decision": "accept", "old": "1" * 40, "new": "2" * 40,
              "rules": [{"name": STEP_UP, "result": "pass", "reason": "ok", "path": paths[0], "paths": paths,
                         "proofs": []}]}
    assert audit.render_table([record]).splitlines()[3] == (
        "        paths db/migrations/0001.sql, db/migrations/0002.sql, db/migrations/0003.sql, "
        "and 2 more (--wide shows all)")
    assert audit.render_table([record], wide=True).splitlines()[3] == "        paths " + ", ".join(paths)


# --- the approvals view --------------------------------------------------------------------------


APPROVALS = ("TIME                  REF                         RULE                      RESULT  DECISION     "
             "PUSHER        APPROVED-BY   KEY               PROOF             SIGNED")


def approval(r: dict[str, Any], ref: str, rule: str, result: str, decision: str, pusher: str,
             owner: str = "-", key: str = "-", kind: str = "-", signed: str = "-") -> str:
    return (f"{r['time']}  {ref:26}  {rule:24}  {result:6}  {decision:11}  {pusher:12}  {owner:12}  {key:16}  "
            f"{kind:16}  {signed}").rstrip()


def test_approvals_say_who_approved_what_with_which_key_when(log: Log) -> None:
    reject, accept, glass, warn, error = log.records
    (proof,) = accept["rules"][0]["proofs"]
    code, lines, err = show(log, "--approvals")
    assert (code, err) == (0, "")
    assert lines == [
        APPROVALS,
        approval(reject, MAIN, STEP_UP, "fail", "reject", "bob"),
        approval(accept, MAIN, STEP_UP, "pass", "accept", "alice", "alice", log.people.alice.fingerprint[-16:],
                 "tip-signature", proof["signed_at"]),
        approval(glass, RELEASE, SIGNED, "fail", "break-glass", "carol"),
        approval(glass, RELEASE, "break-glass", "-", "break-glass", "carol", "carol",
                 log.people.carol.fingerprint[-16:], "push-certificate", glass["break_glass"]["signed_at"]),
        approval(warn, MAIN, STEP_UP, "fail", "warn", "bob"),
        approval(error, "refs/heads/topic", "-", "-", "error", "bob"),
    ]


def test_wide_approvals_show_full_fingerprints(log: Log) -> None:
    accept = log.by("accept")
    fingerprint = log.people.alice.fingerprint
    code, lines, err = show(log, "--approvals", "--wide", "--decision", "accept")
    assert (code, err) == (0, "")
    assert lines == [
        APPROVALS.replace("KEY               ", "KEY".ljust(len(fingerprint) + 2)),
        approval(accept, MAIN, STEP_UP, "pass", "accept", "alice", "alice", fingerprint.ljust(16),
                 "tip-signature", accept["rules"][0]["proofs"][0]["signed_at"]),
    ]


def test_approvals_and_json_exclude_each_other(log: Log) -> None:
    code, lines, err = show(log, "--approvals", "--json")
    assert (code, lines) == (2, [])
    assert err.splitlines()[-1].endswith("argument --json: not allowed with argument --approvals")


# --- --path --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("glob", "decisions"), [
    ("db/migrations/", ["reject", "accept"]),
    ("db/migrations/**", ["reject", "accept"]),
    ("db/migrations", ["reject", "accept"]),
    ("db/migrations/0002.sql", ["reject", "accept"]),  # the second path the rule matched
    ("*.sql", ["reject", "accept"]),
    ("infra/", ["warn"]),
    ("db/", ["reject", "accept"]),
    ("db/migrations/0003.sql", []),
    ("src/", []),  # changed, but no rule watches it: the log holds the paths rules matched
])
def test_path_selects_the_records_whose_rules_matched_such_a_path(log: Log, glob: str,
                                                                 decisions: list[str]) -> None:
    assert shown_json(log, "--path", glob) == [log.by(d) for d in decisions]


def test_path_with_the_approvals_view(log: Log) -> None:
    accept = log.by("accept")
    code, lines, err = show(log, "--approvals", "--path", "db/migrations/", "--pusher", "alice")
    assert (code, err) == (0, "")
    assert lines == [
        APPROVALS,
        approval(accept, MAIN, STEP_UP, "pass", "accept", "alice", "alice", log.people.alice.fingerprint[-16:],
                 "tip-signature", accept["rules"][0]["proofs"][0]["signed_at"]),
    ]
    code, lines, err = show(log, "--path", "src/")
    assert (code, lines, err) == (0, [header(), "(no records)"], "")


def test_a_bad_path_pattern_is_one_line(log: Log) -> None:
    assert show(log, "--path", "#x") == (2, [], "stepup-git: --path: bad path pattern '#x': a leading # makes it "
                                                "a comment; write \\# for a literal #\n")


# --- --since -------------------------------------------------------------------------------------


def since(log: Log, value: str, now: datetime | None = None) -> list[dict[str, Any]]:
    return shown_json(log, "--since", value, *(["--now", now.isoformat()] if now else []))


def test_since_takes_an_iso_date_or_time(log: Log) -> None:
    glass = log.by("break-glass")
    assert since(log, "2026-01-01") == log.records
    assert since(log, glass["time"]) == [r for r in log.records if when(r) >= when(glass)]
    assert since(log, when(glass).replace(tzinfo=None).isoformat()) == since(log, glass["time"])  # UTC
    assert since(log, "2999-01-01T00:00Z") == []


@pytest.mark.parametrize(("age", "delta"), [
    ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)), ("7d", timedelta(days=7)),
    ("1h30m", timedelta(hours=1, minutes=30)), ("90s", timedelta(seconds=90)),
])
def test_since_takes_an_age_back_from_now(log: Log, age: str, delta: timedelta) -> None:
    glass = log.by("break-glass")
    assert since(log, age, when(glass) + delta) == [r for r in log.records if when(r) >= when(glass)]
    assert since(log, age, when(log.records[-1]) + delta + timedelta(seconds=1)) == []
    assert since(log, age) == log.records  # the clock: the pushes were made just now


def test_since_today_and_yesterday_start_at_midnight_utc(log: Log) -> None:
    first = when(log.records[0])
    midnight = first.replace(hour=0, minute=0, second=0)
    day_after = midnight + timedelta(days=1, hours=12)
    assert since(log, "today", first) == log.records
    assert since(log, "yesterday", day_after) == log.records
    assert since(log, "today", day_after) == [r for r in log.records if when(r) >= midnight + timedelta(days=1)]
    assert since(log, "Yesterday", midnight + timedelta(days=2, hours=1)) == since(log, "today", day_after)


@pytest.mark.parametrize("value", ["last week", "2h30", "1w", "", "24-11-2026"])
def test_a_bad_since_is_one_line_naming_the_accepted_forms(log: Log, value: str) -> None:
    assert show(log, "--since", value) == (2, [], f"stepup-git: --since takes {SINCE_FORMS}, not {value!r}\n")


def test_a_bad_now_is_one_line(log: Log) -> None:
    assert show(log, "--since", "2h", "--now", "noon") == (
        2, [], "stepup-git: --now takes an ISO-8601 date or time such as 2026-11-24T09:30Z, not 'noon'\n")


# --- records written before every path was kept --------------------------------------------------


def test_records_without_paths_are_shown_and_found_by_their_first_path(log: Log, tmp_path: Path) -> None:
    """A record of an earlier version holds `path` (the first) alone; the chain of old and new records
    verifies, and `--path` and the table use the path it has."""
    old = {k: v for k, v in log.by("reject").items() if k not in ("prev", "hash")}
    old["rules"] = [{k: v for k, v in rule.items() if k != "paths"} for rule in old["rules"]]
    mixed = tmp_path / "audit.jsonl"
    audit.append(mixed, [old])
    audit.append(mixed, [{k: v for k, v in log.by("accept").items() if k not in ("prev", "hash")}])
    verified = stepup("audit", "verify", "--log", mixed)
    assert (verified.returncode, verified.stdout) == (0, "audit log intact: 2 records\n")
    shown = stepup("audit", "show", "--log", mixed, "--path", MIGRATIONS[0])
    assert [line for line in shown.stdout.splitlines() if "paths" in line] == [
        f"        paths {MIGRATIONS[0]}", f"        paths {MIGRATIONS[0]}, {MIGRATIONS[1]}"]
    shown = stepup("audit", "show", "--log", mixed, "--path", MIGRATIONS[1], "--json")
    assert [json.loads(line)["decision"] for line in shown.stdout.splitlines()] == ["accept"]


# --- the state database --------------------------------------------------------------------------


def test_show_reads_the_state_database_with_every_filter(people: People, server: Server, clone: Clone,
                                                         state_db: str) -> None:
    """With `settings.state` the records are in the database only; `--repo` reads them there."""
    server.write_policy(policy(people, state_db), keyring(people))
    server.install()
    for path in MIGRATIONS:
        clone.write(path, f"-- {path}\n")
    clone.commit("Two migrations")
    assert not clone.push("main", pusher="bob").ok
    assert not server.audit_path.exists()
    (record,) = shown_json(Log(server, [], people), "--path", "db/migrations/0002.sql", "--since", "1h",
                           "--decision", "reject")
    assert (record["pusher"], record["rules"][0]["paths"]) == ("bob", MIGRATIONS)
    code, lines, err = show(Log(server, [record], people), "--approvals", "--since", "yesterday")
    assert (code, err) == (0, "")
    assert lines == [APPROVALS, approval(record, MAIN, STEP_UP, "fail", "reject", "bob")]


# --- how far a long push is read for the list ---------------------------------------------------


def _migrations_pushed(people: People, server: Server, clone: Clone, count: int) -> dict[str, Any]:
    """One commit adding ``count`` migrations, pushed with a fresh signed tip: its record's rule."""
    server.write_policy(policy(people), {f"{n}.asc": getattr(people, n).export() for n in ("alice", "bob", "carol")})
    server.install()
    for n in range(count):
        clone.write(f"db/migrations/{n:05}.sql", f"-- {n}\n")
    clone.commit("many migrations", sign=people.alice)
    pushed = clone.push("HEAD:main")
    assert pushed.ok, pushed
    (rule,) = server.audit_records()[-1]["rules"]
    return rule


def test_a_push_with_more_changes_than_are_read_for_the_list_says_so(
        people: People, server: Server, clone: Clone) -> None:
    rule = _migrations_pushed(people, server, clone, MORE_PATHS + 50)
    assert (rule["name"], rule["result"], rule["paths_complete"]) == (STEP_UP, "pass", False)
    assert len(rule["paths"]) == MORE_PATHS + 1  # the first match, then the changes read for the list
    line = audit.render_table(server.audit_records(), wide=True).splitlines()[3]
    assert line.endswith(", and perhaps more (the push's further changes were not read)")


def test_a_push_whose_changes_are_all_read_lists_every_match(people: People, server: Server, clone: Clone) -> None:
    rule = _migrations_pushed(people, server, clone, 40)
    assert "paths_complete" not in rule
    assert rule["paths"] == [f"db/migrations/{n:05}.sql" for n in range(40)]
