"""Pushing known commits again (bench/README.md): their verifications come from the cache, yet each push is
judged as of now (a key that stopped counting fails), and the action is always computed from the
objects (a re-push never turns the way back, or a rewrite, into a fast-forward)."""

from __future__ import annotations

import json
import sqlite3
import sys
from contextlib import closing

from support import run
from support.keys import People, key_toml, signed_policy
from support.lines import unwrap
from support.repos import Clone, Server

from stepup_git.evaluate import STORE_MIN
from stepup_git.git.objects import LEARN_MIN
from stepup_git.signatures import Verified

WORK = STORE_MIN + 4  # commits pushed: enough for the push to go through the verification cache


def _check(clone: Clone, server: Server, old: str, new: str, ref: str, *extra: str) -> tuple[int, list[str]]:
    proc = run([sys.executable, "-m", "stepup_git", "check", "--repo", str(clone.path), "--policy",
                str(server.policy_path), *extra, old, new, ref], check=False)
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def _setup(people: People, server: Server, clone: Clone) -> tuple[str, str]:
    server.write_policy(signed_policy(people.alice, refs="refs/heads/**", expires="2029-12-31"),
                        {"alice.asc": people.alice.export()})
    server.install()
    root = clone.commit("root", sign=people.alice)
    assert clone.push("HEAD:main").ok
    for n in range(WORK):
        clone.write(f"f{n}.txt", f"{n}\n")
        clone.commit(f"work {n}", sign=people.alice)
    return root, clone.rev()


def _plant(server: Server, problem: str) -> None:
    """Rewrite every cached verdict, so that a push that reads the cache shows it."""
    planted = json.dumps(Verified(False, "openpgp", problem=problem).to_json())
    with closing(sqlite3.connect(server.path / "stepup" / "verified.sqlite")) as db:
        db.execute("UPDATE verified SET result = ?", (planted,))
        db.commit()


def test_the_same_commits_pushed_to_another_branch_of_the_rule_are_vetted(
        people: People, server: Server, clone: Clone) -> None:
    root, tip = _setup(people, server, clone)
    first = clone.push("HEAD:refs/heads/release")
    assert first.ok, first
    assert server.audit_records()[-1]["rules"][0]["reason"] == f"{WORK} new commit(s) signed by policy keys"
    again = clone.push("HEAD:main")  # release, under the same rule, carries them: nothing new to judge
    assert again.ok, again
    record = server.audit_records()[-1]
    assert (record["action"], record["old"], record["new"]) == ("update", root, tip)
    assert record["rules"][0]["reason"] == "0 new commit(s) signed by policy keys"


def test_the_same_range_pushed_again_reads_its_verifications_from_the_cache(
        people: People, server: Server, clone: Clone) -> None:
    root, tip = _setup(people, server, clone)
    first = clone.push("HEAD:main")
    assert first.ok, first
    assert clone.push("--force", f"{root}:main").ok
    again = clone.push("HEAD:main")
    assert again.ok, again
    record = server.audit_records()[-1]
    assert (record["action"], record["old"], record["new"]) == ("update", root, tip)
    assert record["rules"][0]["reason"] == f"{WORK} new commit(s) signed by policy keys"
    assert record["rules"][0]["proofs"][0]["owner"] == "alice"
    # what the third push read came from the cache: planted verdicts show in the fourth
    _plant(server, "verdict read from the cache")
    assert clone.push("--force", f"{root}:main").ok
    planted = clone.push("HEAD:main")
    assert not planted.ok
    assert "    found:    verdict read from the cache" in planted.remote


def test_a_key_that_stopped_counting_fails_though_its_verifications_are_cached(
        people: People, server: Server, clone: Clone) -> None:
    root, tip = _setup(people, server, clone)
    code, out = _check(clone, server, root, tip, "refs/heads/main")
    assert code == 0, out
    code, out = _check(clone, server, root, tip, "refs/heads/main")
    assert (code, out[-1]) == (0, f"  pass  signed: {WORK} new commit(s) signed by policy keys")
    code, out = _check(clone, server, root, tip, "refs/heads/main", "--now", "2030-01-02T00:00:00Z")
    assert code == 1, out
    assert out[0] == "stepup-git: would be rejected: 1 of 1 update(s) fail the policy"
    assert out[1].startswith('refs/heads/main: rule "signed" failed for commit ')
    assert "the policy stopped honouring the key after 2029-12-31" in unwrap(out)[3]
    assert out[-1] == f"  FAIL  signed: {WORK} of {WORK} new commit(s) not signed as required"


def test_a_re_push_never_makes_the_way_back_or_a_rewrite_an_update(
        people: People, server: Server, clone: Clone) -> None:
    root, tip = _setup(people, server, clone)
    assert clone.push("HEAD:refs/heads/release").ok
    assert clone.push("HEAD:main").ok  # root -> tip: a fast-forward
    clone.git("reset", "--hard", root)
    back = clone.push("HEAD:main", force=True)
    assert back.ok, back
    record = server.audit_records()[-1]
    assert (record["action"], record["old"], record["new"]) == ("force-push", tip, root)
    clone.write("other.txt", "rewritten\n")
    rewritten = clone.commit("rewritten history", sign=people.alice)
    assert clone.push("HEAD:main", force=True).ok
    assert clone.push(f"{tip}:main", force=True).ok
    record = server.audit_records()[-1]
    assert (record["action"], record["old"], record["new"]) == ("force-push", rewritten, tip)


# -- ancestry that a long walk learnt ------------------------------------------------------------------

LONG = LEARN_MIN + 44  # commits on the topic branch: a walk long enough to be remembered


def _ancestry_policy(people: People) -> str:
    return (f'version = 1\n{key_toml(people.alice, "alice", "maintainer")}'
            '[[rules]]\nname = "migrations"\nrefs = ["refs/heads/**"]\npaths = ["db/migrations/**"]\n'
            'require = "step-up"\ntier = "maintainer"\n'
            '[[rules]]\nname = "main-no-rewrite"\nrefs = ["refs/heads/main"]\non = ["force-push"]\n'
            'require = "deny"\n')


def _chain(clone: Clone, base: str, count: int, branch: str) -> str:
    """``count`` unsigned commits on ``base`` (none touching a migration), as ``branch``; its tip."""
    script = []
    for n in range(count):
        message, content = f"topic {n}", f"{n}\n"
        script += [f"commit refs/heads/{branch}", f"committer T <t@example.com> {1700000000 + n} +0000",
                   f"data {len(message)}", message, *([f"from {base}"] if n == 0 else []),
                   f"M 100644 inline src/topic{n % 7}.txt", f"data {len(content)}", content]
    run(["git", "fast-import", "--quiet"], cwd=clone.path, input="\n".join(script) + "\n")
    return clone.rev(f"refs/heads/{branch}")


def _learned(server: Server) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(server.path / "stepup" / "verified.sqlite")) as db:
        return sorted(db.execute("SELECT descendant, ancestor FROM ancestry"))


def _topic_pushed(people: People, server: Server, clone: Clone, count: int = LONG) -> tuple[str, str]:
    """main at a root, then ``count`` commits on it pushed as a new branch topic: (root, topic's tip)."""
    server.write_policy(_ancestry_policy(people), {"alice.asc": people.alice.export()})
    server.install()
    root = clone.commit("root")
    assert clone.push("HEAD:main").ok
    tip = _chain(clone, root, count, "topic")
    first = clone.push("topic:refs/heads/topic")
    assert first.ok, first
    return root, tip


def _main_moves_on(clone: Clone) -> str:
    """A commit on main that topic does not hold, pushed: main now stands where topic never was."""
    clone.write("elsewhere.txt", "another line of history\n")
    other = clone.commit("main moves on")
    assert clone.push("HEAD:main").ok
    return other


def test_a_fast_forward_to_a_tip_a_long_branch_brought_is_known_without_a_walk(
        people: People, server: Server, clone: Clone) -> None:
    root, tip = _topic_pushed(people, server, clone)
    assert _learned(server) == [(tip, root)]  # the walk of topic reached main's tip as a parent
    again = clone.push("topic:main")
    assert again.ok, again
    record = server.audit_records()[-1]
    assert (record["action"], record["old"], record["new"], record["decision"]) == ("update", root, tip, "accept")


def test_what_a_long_branch_taught_never_makes_a_rewrite_of_another_line_a_fast_forward(
        people: People, server: Server, clone: Clone) -> None:
    root, tip = _topic_pushed(people, server, clone)
    assert _learned(server) == [(tip, root)]
    other = _main_moves_on(clone)
    rewrite = clone.push("topic:main", force=True)
    assert not rewrite.ok, rewrite
    assert server.ref("refs/heads/main") == other
    record = server.audit_records()[-1]
    assert (record["action"], record["old"], record["new"], record["decision"]) == ("force-push", other, tip, "reject")
    assert 'refs/heads/main: rule "main-no-rewrite" failed' in "\n".join(rewrite.remote)


def test_a_short_walk_is_not_remembered(people: People, server: Server, clone: Clone) -> None:
    _topic_pushed(people, server, clone, LEARN_MIN - 1)
    assert not (server.path / "stepup" / "verified.sqlite").exists() or _learned(server) == []


def test_the_fast_forward_check_reads_what_earlier_pushes_learnt(
        people: People, server: Server, clone: Clone) -> None:
    """A pair in the cache is taken as it is (the cache is the repository's own file, as trusted as
    its refs): planting one for a rewrite shows that the check asked the cache and did not walk."""
    root, tip = _topic_pushed(people, server, clone)
    assert _learned(server) == [(tip, root)]
    other = _main_moves_on(clone)
    with closing(sqlite3.connect(server.path / "stepup" / "verified.sqlite")) as db:
        db.execute("UPDATE ancestry SET ancestor = ?", (other,))
        db.commit()
    planted = clone.push("topic:main", force=True)
    assert planted.ok, planted
    assert server.audit_records()[-1]["action"] == "update"
