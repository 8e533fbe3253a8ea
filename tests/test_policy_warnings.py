"""`stepup-git policy check` warns about policies that leave a way around their own rules (docs/semantics.md).

A warning never makes a policy invalid: the check still exits 0. Warnings are the lines of the
check's output that contain `warning:`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from support.cli import stepup
from support.keys import Key, People, key_toml
from support.owners import second_key

EXAMPLE = Path(__file__).resolve().parents[1] / "policies" / "example.toml"
TIERS = '[tiers]\norder = ["contributor", "maintainer", "release"]\n'
DENY_REPLACE = '[[rules]]\nname = "no-replace-refs"\nrefs = ["refs/replace/**"]\nrequire = "deny"\n'
INFRA_STEP_UP = (
    '[[rules]]\nname = "infra-step-up"\nrefs = ["refs/heads/**"]\npaths = ["infra/**"]\n'
    'require = "step-up"\ntier = "maintainer"\n'
)
MAIN_SIGNED = '[[rules]]\nname = "main-signed"\nrefs = ["refs/heads/main"]\nrequire = "signed"\ntier = "contributor"\n'


def delete_rule(require: str) -> str:
    """Deleting any branch needs a maintainer's step-up (or is denied)."""
    text = f'[[rules]]\nname = "branch-delete"\nrefs = ["refs/heads/**"]\non = ["delete"]\nrequire = "{require}"\n'
    return text + ('tier = "maintainer"\n' if require != "deny" else "")


def two_person(signers: int = 2) -> str:
    return (
        '[[rules]]\nname = "two-person"\nrefs = ["refs/heads/main"]\nrequire = "step-up"\n'
        f'tier = "maintainer"\nsigners = {signers}\n'
    )


@pytest.fixture
def alice_second(people: People) -> Key:
    """A second maintainer key of alice's."""
    return second_key(people, "alice")


def write_policy(directory: Path, keys: Iterable[tuple[Key, str, str]], *rules: str) -> Path:
    """`policy.toml` with the keys (key, owner, tier) and rules, and its `keys/` folder; its path."""
    keys = list(keys)
    (directory / "keys").mkdir()
    text = "version = 1\n\n" + TIERS + "\n"
    text += "".join(key_toml(key, owner, tier) + "\n" for key, owner, tier in keys)
    text += "\n".join(rules)
    for key, _, _ in keys:
        (directory / "keys" / f"{key.fingerprint}.asc").write_text(key.export(), encoding="utf-8")
    path = directory / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def warnings(path: Path) -> list[str]:
    """The warning lines of `stepup-git policy check PATH`, which must pass (exit 0)."""
    proc = stepup("policy", "check", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in (proc.stdout + proc.stderr).splitlines() if "warning:" in line]


def mentioning(lines: Sequence[str], *words: str) -> list[str]:
    return [line for line in lines if all(word in line for word in words)]


# --- delete and re-create ----------------------------------------------------------------------


def test_step_up_path_rule_without_delete_rule_warns_about_deletion(people: People, tmp_path: Path) -> None:
    """Deleting a branch has no changed paths: without a delete rule, delete and re-create rolls back
    what `infra-step-up` guards."""
    path = write_policy(tmp_path, [(people.alice, "alice", "maintainer")], INFRA_STEP_UP, DENY_REPLACE)
    found = warnings(path)
    assert len(mentioning(found, "deletion", "infra-step-up")) == 1, found


@pytest.mark.parametrize("require", ["step-up", "deny"])
def test_delete_rule_over_the_same_refs_gives_no_deletion_warning(
    people: People, tmp_path: Path, require: str
) -> None:
    path = write_policy(tmp_path, [(people.alice, "alice", "maintainer")], INFRA_STEP_UP, delete_rule(require),
                        DENY_REPLACE)
    found = warnings(path)
    assert mentioning(found, "deletion") == [], found


# --- replace refs ------------------------------------------------------------------------------


def test_unguarded_replace_refs_warn(people: People, tmp_path: Path) -> None:
    """No `deny` rule matches refs/replace/<id>: the policy check says so."""
    path = write_policy(tmp_path, [(people.alice, "alice", "maintainer")], MAIN_SIGNED)
    found = warnings(path)
    assert len(mentioning(found, "refs/replace/")) == 1, found


def test_denied_replace_refs_give_no_replace_warning(people: People, tmp_path: Path) -> None:
    path = write_policy(tmp_path, [(people.alice, "alice", "maintainer")], MAIN_SIGNED, DENY_REPLACE)
    found = warnings(path)
    assert mentioning(found, "refs/replace/") == [], found


# --- two-person rules --------------------------------------------------------------------------


def test_two_person_rule_with_one_eligible_owner_warns(
    people: People, alice_second: Key, tmp_path: Path
) -> None:
    """alice holds both maintainer keys and bob is only a contributor: one person never counts twice,
    so `signers = 2` can never be met."""
    keys = [(people.alice, "alice", "maintainer"), (alice_second, "alice", "maintainer"),
            (people.bob, "bob", "contributor")]
    path = write_policy(tmp_path, keys, two_person(), delete_rule("deny"), DENY_REPLACE)
    found = warnings(path)
    assert len(mentioning(found, "two-person", "signers")) == 1, found


def test_two_person_rule_with_two_eligible_owners_gives_no_signers_warning(
    people: People, alice_second: Key, tmp_path: Path
) -> None:
    keys = [(people.alice, "alice", "maintainer"), (alice_second, "alice", "maintainer"),
            (people.carol, "carol", "release")]
    path = write_policy(tmp_path, keys, two_person(), delete_rule("deny"), DENY_REPLACE)
    found = warnings(path)
    assert mentioning(found, "signers") == [], found


# --- the shipped example -----------------------------------------------------------------------


def test_example_policy_guards_deletions_replace_refs_and_signers() -> None:
    """policies/example.toml gives none of these warnings."""
    found = warnings(EXAMPLE)
    assert mentioning(found, "deletion") == [], found
    assert mentioning(found, "refs/replace/") == [], found
    assert mentioning(found, "signers") == [], found
