"""`stepup-git explain`: which rules apply to a push to a ref touching some paths, and what each needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import run
from support.keys import People, key_toml
from support.lines import unwrap
from support.repos import Clone, Server

POLICY_RULES = """
[[rules]]
name = "main-signed"
refs = ["refs/heads/main"]
require = "signed"
tier = "contributor"

[[rules]]
name = "migrations-step-up"
refs = ["refs/heads/**"]
paths = ["db/migrations/**"]
require = "step-up"
tier = "maintainer"
fresh_within = "10m"
bind_pusher = true

[[rules]]
name = "two-person-force-push"
refs = ["refs/heads/main"]
on = ["force-push", "delete"]
require = "step-up"
tier = "maintainer"
signers = 2

[[rules]]
name = "release-tags"
refs = ["refs/tags/v*"]
require = "signed-tag"
tier = "maintainer"
"""

STEP_UP_MIGRATIONS = ("a fresh proof of tier maintainer or higher owned by the pusher: a signed push certificate for "
                      "this update (git push --signed) or a signature on the pushed tip made within the last 10m")


def _policy(people: People, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "policy.toml"
    path.write_text("version = 1\n" + key_toml(people.alice_ssh, "alice", "maintainer")
                    + key_toml(people.bob_ssh, "bob", "contributor") + POLICY_RULES)
    return path


def explain(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = run([sys.executable, "-m", "stepup_git", "explain", *args], cwd=cwd, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_explain_names_the_rules_that_apply_and_what_each_needs(people: People, tmp_path: Path) -> None:
    policy = _policy(people, tmp_path)
    proc = explain("--policy", policy, "refs/heads/main", "db/migrations/0042.sql", "README.md")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.splitlines() == [
        f"stepup-git: a push to refs/heads/main changing db/migrations/0042.sql, README.md: 3 of 4 rule(s) of {policy} "
        "apply",
        'rule "main-signed" applies: on create, update, force-push, delete of refs/heads/main (refs refs/heads/main)',
        "    required (create, update, force-push): every new commit signed by a policy key of tier contributor or "
        "higher",
        "    required (delete): nothing: a delete adds no commits",
        "    keys:     alice, bob hold keys of tier contributor or higher",
        'rule "migrations-step-up" applies: on create, update, force-push of refs/heads/main (refs refs/heads/**): '
        "db/migrations/0042.sql matches db/migrations/**",
        f"    required (create, update, force-push): {STEP_UP_MIGRATIONS}",
        "    keys:     alice holds keys of tier maintainer or higher",
        'rule "two-person-force-push" applies: on force-push, delete of refs/heads/main (refs refs/heads/main)',
        "    required (force-push): fresh proofs from 2 different people of tier maintainer or higher: a signed push "
        "certificate for this update (git push --signed) or a signature on the pushed tip made within the last 15m",
        "    required (delete): fresh proofs from 2 different people of tier maintainer or higher: a signed push "
        "certificate for this update (git push --signed)",
        "    keys:     alice holds keys of tier maintainer or higher",
        'rule "release-tags" does not apply: refs/heads/main matches none of its refs (refs/tags/v*)',
    ]

    proc = explain("--policy", policy, "refs/heads/feature", "README.md")
    assert proc.stdout.splitlines() == [
        f"stepup-git: a push to refs/heads/feature changing README.md: 0 of 4 rule(s) of {policy} apply",
        'rule "main-signed" does not apply: refs/heads/feature matches none of its refs (refs/heads/main)',
        'rule "migrations-step-up" does not apply: none of the paths given matches db/migrations/**',
        'rule "two-person-force-push" does not apply: refs/heads/feature matches none of its refs (refs/heads/main)',
        'rule "release-tags" does not apply: refs/heads/feature matches none of its refs (refs/tags/v*)',
        "stepup-git: no rule applies: such a push is allowed (and audited)",
    ]

    proc = explain("--policy", policy, "refs/heads/feature")
    assert proc.stdout.splitlines()[2] == (
        'rule "migrations-step-up" applies: on create, update, force-push of refs/heads/feature (refs refs/heads/**) '
        "when a changed path matches db/migrations/**")


def test_explain_json(people: People, tmp_path: Path) -> None:
    policy = _policy(people, tmp_path)
    proc = explain("--policy", policy, "--json", "refs/heads/feature", "db/migrations/1.sql")
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert (data["policy"], data["ref"], data["paths"]) == (str(policy), "refs/heads/feature", ["db/migrations/1.sql"])
    assert [(r["name"], r["applies"]) for r in data["rules"]] == [
        ("main-signed", "no"), ("migrations-step-up", "yes"), ("two-person-force-push", "no"), ("release-tags", "no")]
    step_up = data["rules"][1]
    assert step_up == {
        "name": "migrations-step-up", "line": step_up["line"], "applies": "yes",
        "why": "on create, update, force-push of refs/heads/feature (refs refs/heads/**): db/migrations/1.sql matches "
               "db/migrations/**",
        "refs": ["refs/heads/**"], "on": ["create", "update", "force-push", "delete"],
        "paths": ["db/migrations/**"], "matched": ["db/migrations/1.sql"], "require": "step-up",
        "tier": "maintainer", "signers": 1, "fresh_within": "10m", "proofs": ["push-certificate", "tip-signature"],
        "bind_pusher": True, "required": [{"actions": ["create", "update", "force-push"], "text": STEP_UP_MIGRATIONS}],
        "holders": ["alice"],
    }


def test_explain_takes_short_ref_names_as_check_does(people: People, tmp_path: Path, clone: Clone) -> None:
    policy = _policy(people, tmp_path / "p")
    clone.commit("a")
    clone.tag("v1.2")
    for name, full in (("main", "refs/heads/main"), ("v1.2", "refs/tags/v1.2")):
        proc = explain("--policy", policy, name, cwd=clone.path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0].startswith(f"stepup-git: a push to {full}: ")
        proc = explain("--policy", policy, "--repo", clone.path, name)
        assert proc.stdout.splitlines()[0].startswith(f"stepup-git: a push to {full}: ")
    proc = explain("--policy", policy, "v1.2", cwd=clone.path)
    assert 'rule "release-tags" applies: on create, update, force-push, delete of refs/tags/v1.2' in proc.stdout


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert (proc.returncode, proc.stdout) == (2, ""), proc
    (line,) = proc.stderr.splitlines()
    return line


def test_explain_bad_input_is_one_line(people: People, tmp_path: Path, clone: Clone) -> None:
    policy = _policy(people, tmp_path / "p")
    outside = tmp_path / "nowhere"
    outside.mkdir()
    assert _one_line(explain("--policy", policy, "ma in", cwd=clone.path)) == "stepup-git: 'ma in' is not a ref name"
    assert _one_line(explain("--policy", policy, "main", cwd=outside)) == (
        "stepup-git: 'main' is not a full ref name and there is no repository to look it up in; give refs/heads/main "
        "or refs/tags/main")
    assert _one_line(explain("--policy", policy, "nope", cwd=clone.path)) == (
        f"stepup-git: no branch or tag 'nope' in {clone.path / '.git'}; give the full ref name, e.g. refs/heads/nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\nrules = 3\n")
    assert _one_line(explain("--policy", bad, "refs/heads/main", cwd=outside)) == (
        f"stepup-git: {bad}:2: 'rules' must be a list, not an integer")
    assert _one_line(explain("refs/heads/main", cwd=outside)) == (
        "stepup-git: no --policy given and no repository here has stepup.policy configured")


@pytest.mark.parametrize("signed", [False, True])
def test_explain_says_what_the_hook_requires(people: People, server: Server, clone: Clone, signed: bool) -> None:
    server.write_policy("version = 1\n" + key_toml(people.alice_ssh, "alice", "maintainer")
                        + key_toml(people.bob_ssh, "bob", "contributor") + POLICY_RULES)
    server.install()
    clone.write("db/migrations/1.sql", "create table t;\n")
    clone.commit("Migration", sign=people.bob_ssh if signed else None)
    result = clone.push("main", pusher="bob")
    assert not result.ok
    hook_says = [line.removeprefix("    required: ") for line in unwrap(result.remote)
                 if line.startswith("    required: ")]
    proc = explain("--policy", server.policy_path, "refs/heads/main", "db/migrations/1.sql")
    explained = [line.partition("): ")[2] for line in proc.stdout.splitlines()
                 if line.startswith("    required (create, ")]
    # the hook adds why the rule applies, in parentheses
    expected = [text for text in explained if signed is False or "every new commit" not in text]
    assert len(hook_says) == len(expected) == (1 if signed else 2)
    for said, text in zip(hook_says, expected, strict=True):
        assert said == text or said.startswith(f"{text} (create of refs/heads/main"), (said, text)
