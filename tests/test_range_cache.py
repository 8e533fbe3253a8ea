"""A range whose every commit verified is judged again from its signatures, never trusted blindly; a
fast-forward proven once is not walked again, and never stands in for another update."""

from __future__ import annotations

import sys
from pathlib import Path

from support import run
from support.keys import People, signed_policy
from support.repos import Clone, Server

from stepup_git.evaluate import STORE_MIN

WORK = STORE_MIN + 4  # commits pushed: enough for the push to keep what it learnt


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


def test_the_same_range_judged_again_is_judged_from_its_signatures(
        people: People, server: Server, clone: Clone) -> None:
    root, tip = _setup(people, server, clone)
    first = clone.push("HEAD:main")
    assert first.ok, first
    assert server.audit_records()[-1]["rules"][0]["reason"] == f"{WORK} new commit(s) signed by policy keys"
    assert clone.push("--force", f"{root}:main").ok
    again = clone.push("HEAD:main")
    assert again.ok, again
    record = server.audit_records()[-1]
    assert (record["action"], record["old"], record["new"]) == ("update", root, tip)
    assert record["rules"][0]["reason"] == f"{WORK} new commit(s) signed by policy keys (verified before)"
    assert record["rules"][0]["proofs"][0]["owner"] == "alice"


def test_a_key_that_stopped_counting_sends_the_range_back_to_commit_by_commit(
        people: People, server: Server, clone: Clone) -> None:
    root, tip = _setup(people, server, clone)
    code, out = _check(clone, server, root, tip, "refs/heads/main")
    assert code == 0, out
    code, out = _check(clone, server, root, tip, "refs/heads/main")
    assert (code, out[-1]) == (0, f"  pass  signed: {WORK} new commit(s) signed by policy keys (verified before)")
    code, out = _check(clone, server, root, tip, "refs/heads/main", "--now", "2030-01-02T00:00:00Z")
    assert code == 1, out
    assert out[0] == "stepup-git: would be rejected: 1 of 1 update(s) fail the policy"
    assert out[1].startswith('refs/heads/main: rule "signed" failed for commit ')
    assert "the policy stopped honouring the key after 2029-12-31" in out[3]
    assert out[-1] == f"  FAIL  signed: {WORK} of {WORK} new commit(s) not signed as required"


def _merge_bases(trace: Path) -> list[str]:
    """The `git merge-base` commands the push ran (the hook's included: a local push runs it in the
    environment of the pushing git)."""
    lines = trace.read_text().splitlines() if trace.exists() else []
    trace.unlink(missing_ok=True)
    return [line for line in lines if "merge-base" in line and "trace: built-in" in line]


def test_a_fast_forward_proven_by_an_earlier_push_is_not_walked_again(
        people: People, server: Server, clone: Clone, tmp_path: Path) -> None:
    root, tip = _setup(people, server, clone)
    trace = tmp_path / "trace"
    assert clone.push("HEAD:main", env={"GIT_TRACE": str(trace)}).ok
    assert any("merge-base" in line for line in _merge_bases(trace))  # root..tip is a fast-forward: walked once
    assert clone.push(f"{root}:refs/heads/other").ok
    _merge_bases(trace)
    again = clone.push("HEAD:other", env={"GIT_TRACE": str(trace)})
    assert again.ok, again
    assert _merge_bases(trace) == []
    record = server.audit_records()[-1]
    assert (record["action"], record["old"], record["new"]) == ("update", root, tip)


def test_a_known_fast_forward_never_makes_the_way_back_or_a_rewrite_an_update(
        people: People, server: Server, clone: Clone) -> None:
    root, tip = _setup(people, server, clone)
    assert clone.push("HEAD:refs/heads/release").ok
    assert clone.push("HEAD:main").ok  # root -> tip: proven, and kept
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
