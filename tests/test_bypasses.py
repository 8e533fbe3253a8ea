"""Ways around the rules (docs/semantics.md), each refused, each with its legitimate twin accepted.

Every attack is built with real git and gpg and pushed through the installed hook: substituted objects
(replace refs, the verification cache), creates at commits parked on unguarded refs, a two-person rule
met by one person with two keys, a submodule (gitlink) at a guarded directory, and an unproven delete.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest
from support.cli import stepup
from support.keys import Key, People, key_toml
from support.lines import unwrap
from support.owners import second_key
from support.repos import Clone, PushResult, Server, signing_config

from stepup_git.evaluate import STORE_MIN

ZERO = "0" * 40
MAIN = "refs/heads/main"
RELEASE = "refs/heads/release/1"
TIERS = '[tiers]\norder = ["contributor", "maintainer", "release"]\n'

Owner = tuple[Key, str, str]
"""A policy key: (key, owner, tier)."""


# --- policies ----------------------------------------------------------------------------------


def rule(name: str, require: str, *, refs: Sequence[str] = ("refs/heads/**",), tier: str = "maintainer",
         on: Sequence[str] = (), paths: Sequence[str] = (), signers: int = 1, bind_pusher: bool = False) -> str:
    """One `[[rules]]` table; a step-up rule asks for a proof made within 10 minutes."""
    lines = ["[[rules]]", f'name = "{name}"', f"refs = {json.dumps(list(refs))}", f'require = "{require}"']
    if require != "deny":
        lines.append(f'tier = "{tier}"')
    if on:
        lines.append(f"on = {json.dumps(list(on))}")
    if paths:
        lines.append(f"paths = {json.dumps(list(paths))}")
    if require == "step-up":
        lines.append('fresh_within = "10m"')
    if signers != 1:
        lines.append(f"signers = {signers}")
    if bind_pusher:
        lines.append("bind_pusher = true")
    return "\n".join(lines) + "\n"


_exports: dict[str, str] = {}


def protect(server: Server, keys: Iterable[Owner], *rules: str) -> None:
    """Write the policy (the given keys, then the rules) and its keyring, and install the hook."""
    keys = list(keys)
    text = "version = 1\n\n" + TIERS + "\n"
    text += "".join(key_toml(key, owner, tier) + "\n" for key, owner, tier in keys)
    text += "\n".join(rules)
    files = {}
    for key, _, _ in keys:
        if key.fingerprint not in _exports:
            _exports[key.fingerprint] = key.export()
        files[f"{key.fingerprint}.asc"] = _exports[key.fingerprint]
    server.write_policy(text, files)
    server.install()


def seed(clone: Clone, *refspecs: str) -> str:
    """An unsigned first commit, pushed to main (or `refspecs`) before the hook exists; its id."""
    clone.write("README.md", "app\n")
    oid = clone.commit("seed")
    pushed = clone.push(*(refspecs or ("HEAD:refs/heads/main",)))
    assert pushed.ok, pushed
    return oid


# --- commits -----------------------------------------------------------------------------------


def side_commit(clone: Clone, files: Mapping[str, str], message: str, *, sign: Key | None = None) -> str:
    """Commit `files` on top of HEAD, then put HEAD back: the commit is only in the clone's objects."""
    head = clone.rev()
    for path, text in files.items():
        clone.write(path, text)
    oid = clone.commit(message, sign=sign)
    clone.git("reset", "-q", "--hard", head)
    return oid


def commit_tree(clone: Clone, tree: str, parents: Sequence[str], message: str, *, sign: Key | None = None) -> str:
    """A commit made with `git commit-tree` (signed now by `sign`, if given); no ref moves."""
    config = signing_config(sign) if sign is not None else []
    parent_args = [arg for parent in parents for arg in ("-p", parent)]
    flag = "-S" if sign is not None else "--no-gpg-sign"
    return clone.git(*config, "commit-tree", *parent_args, flag, "-m", message, tree)


def orphan_commit(clone: Clone, message: str) -> str:
    """An unsigned root commit (a history unrelated to main) with HEAD's tree."""
    return commit_tree(clone, clone.rev("HEAD^{tree}"), [], message)


def commit_gitlink(clone: Clone, path: str, target: str, *, sign: Key | None = None) -> str:
    """Point a gitlink (mode 160000) at `path` to `target` and commit the index alone (no submodule
    repository is needed, and the working tree is not staged); the new commit's id."""
    clone.git("update-index", "--add", "--cacheinfo", f"160000,{target},{path}")
    config = signing_config(sign) if sign is not None else []
    flag = "-S" if sign is not None else "--no-gpg-sign"
    clone.git(*config, "commit", "-q", flag, "-m", f"{path} at {target[:7]}")
    return clone.rev()


# --- outcomes ----------------------------------------------------------------------------------


def last_record(server: Server, ref: str) -> dict[str, Any]:
    records = [r for r in server.audit_records() if r["ref"] == ref]
    assert records, f"no audit record for {ref}"
    return records[-1]


def assert_refused(server: Server, result: PushResult, ref: str, rule_name: str, old: str | None) -> None:
    """The push failed, `ref` did not move, and a finding names `rule_name` for `ref`."""
    assert not result.ok, result
    assert result.remote and result.remote[0].startswith("stepup-git: push rejected: "), result
    assert any(line.startswith(f'{ref}: rule "{rule_name}" failed') for line in unwrap(result.remote)), result.remote
    assert server.ref(ref) == old
    record = last_record(server, ref)
    assert record["decision"] == "reject"
    assert (rule_name, "fail") in [(r["name"], r["result"]) for r in record["rules"]]


def assert_accepted(server: Server, result: PushResult, ref: str, new: str | None) -> None:
    """The push succeeded and `ref` now holds `new` (None: deleted)."""
    assert result.ok, result
    assert any(line.startswith("stepup-git: push accepted") for line in result.remote), result.remote
    assert server.ref(ref) == new
    assert last_record(server, ref)["decision"] == "accept"


# =========================================================================== 1. replace refs

INFRA_STEP_UP = rule("infra-step-up", "step-up", paths=["infra/**"])
MAIN_SIGNED = rule("main-signed", "signed", refs=[MAIN], tier="contributor")


def plant_replacement(clone: Clone, victim: str, replacement: str) -> None:
    """Push `refs/replace/<victim>` -> `replacement` (no rule covers refs/replace/), then drop the clone's
    own replace ref so that the clone itself sends and names the real objects."""
    clone.git("replace", victim, replacement)
    planted = clone.push(f"refs/replace/{victim}")
    assert planted.ok, planted
    clone.git("replace", "-d", victim)


def test_replace_ref_does_not_make_an_unsigned_commit_signed(people: People, server: Server, clone: Clone) -> None:
    """refs/replace/X points at alice's signed S; the unsigned X pushed to main is judged as itself."""
    base = seed(clone)
    protect(server, [(people.alice, "alice", "maintainer")], MAIN_SIGNED)
    signed = side_commit(clone, {"good.txt": "reviewed\n"}, "reviewed change", sign=people.alice)
    unsigned = side_commit(clone, {"evil.txt": "backdoor\n"}, "unreviewed change")
    plant_replacement(clone, unsigned, signed)
    result = clone.push(f"{unsigned}:{MAIN}")
    assert_refused(server, result, MAIN, "main-signed", old=base)
    assert f'{MAIN}: rule "main-signed" failed for commit {unsigned[:10]}' in unwrap(result.remote)


def test_signed_commit_is_accepted_while_a_replace_ref_exists(
    people: People, server: Server, clone: Clone
) -> None:
    """Twin: the genuinely signed S itself goes to main, replace ref or not."""
    seed(clone)
    protect(server, [(people.alice, "alice", "maintainer")], MAIN_SIGNED)
    signed = side_commit(clone, {"good.txt": "reviewed\n"}, "reviewed change", sign=people.alice)
    unsigned = side_commit(clone, {"evil.txt": "backdoor\n"}, "unreviewed change")
    plant_replacement(clone, unsigned, signed)
    assert_accepted(server, clone.push(f"{signed}:{MAIN}"), MAIN, signed)


def test_replace_ref_does_not_hide_a_guarded_path(people: People, server: Server, clone: Clone) -> None:
    """X changes infra/a.tf, its replacement does not: the step-up path rule still applies to X."""
    seed(clone)
    protect(server, [(people.alice, "alice", "maintainer")], MAIN_SIGNED, INFRA_STEP_UP)
    harmless = side_commit(clone, {"docs.md": "typo fixed\n"}, "docs", sign=people.alice)
    infra = side_commit(clone, {"infra/a.tf": 'resource "x" {}\n'}, "open the firewall")
    plant_replacement(clone, infra, harmless)
    result = clone.push(f"{infra}:refs/heads/feature")
    assert_refused(server, result, "refs/heads/feature", "infra-step-up", old=None)


def test_guarded_path_with_fresh_proof_is_accepted_while_a_replace_ref_exists(
    people: People, server: Server, clone: Clone
) -> None:
    """Twin: the same infra change, its tip signed by alice just now, passes the step-up."""
    seed(clone)
    protect(server, [(people.alice, "alice", "maintainer")], MAIN_SIGNED, INFRA_STEP_UP)
    harmless = side_commit(clone, {"docs.md": "typo fixed\n"}, "docs", sign=people.alice)
    infra = side_commit(clone, {"infra/a.tf": 'resource "x" {}\n'}, "open the firewall")
    plant_replacement(clone, infra, harmless)
    proven = side_commit(clone, {"infra/a.tf": 'resource "x" {}\n'}, "open the firewall", sign=people.alice)
    assert_accepted(server, clone.push(f"{proven}:refs/heads/feature", pusher="alice"), "refs/heads/feature",
                    proven)


CACHED = STORE_MIN + 4
"""Commits in one push: enough for the persistent verification cache (stepup/verified.sqlite) to be used."""
WIP_SIGNED = rule("wip-signed", "signed", refs=["refs/heads/wip"], tier="contributor")


def test_verification_cache_does_not_keep_what_a_replace_ref_substituted(
    people: People, server: Server, clone: Clone
) -> None:
    """Unsigned X1..Xn, each replaced by a signed copy, are pushed to wip (judged, and cached, by a hook
    that follows replace refs); every replace ref is then deleted, and the same commits pushed to main
    must be judged as what they are."""
    base = seed(clone)
    protect(server, [(people.alice, "alice", "maintainer")], MAIN_SIGNED, WIP_SIGNED)
    tree = clone.rev("HEAD^{tree}")
    parent, unsigned = base, []
    for i in range(CACHED):
        x = commit_tree(clone, tree, [parent], f"change {i}")
        clone.git("replace", x, commit_tree(clone, tree, [parent], f"change {i}", sign=people.alice))
        unsigned.append(x)
        parent = x
    planted = clone.push(*(f"refs/replace/{x}" for x in unsigned))
    assert planted.ok, planted
    clone.git("replace", "-d", *unsigned)
    clone.push(f"{unsigned[-1]}:refs/heads/wip")  # refused by a hook that judges X as itself: either way
    removed = clone.push(*(f":refs/replace/{x}" for x in unsigned))
    assert removed.ok, removed
    assert server.git("for-each-ref", "refs/replace/") == ""
    result = clone.push(f"{unsigned[-1]}:{MAIN}")
    assert_refused(server, result, MAIN, "main-signed", old=base)


def test_commits_verified_on_another_branch_are_accepted_from_the_cache(
    people: People, server: Server, clone: Clone
) -> None:
    """Twin: genuinely signed commits, verified and cached on wip, are accepted on main."""
    base = seed(clone)
    protect(server, [(people.alice, "alice", "maintainer")], MAIN_SIGNED, WIP_SIGNED)
    tree = clone.rev("HEAD^{tree}")
    tip = base
    for i in range(CACHED):
        tip = commit_tree(clone, tree, [tip], f"change {i}", sign=people.alice)
    assert_accepted(server, clone.push(f"{tip}:refs/heads/wip"), "refs/heads/wip", tip)
    assert (server.path / "stepup" / "verified.sqlite").is_file()
    assert_accepted(server, clone.push(f"{tip}:{MAIN}"), MAIN, tip)


def test_policy_can_deny_replace_refs(people: People, server: Server, clone: Clone) -> None:
    """A `deny` rule on refs/replace/** refuses the replace ref itself; main still takes signed work."""
    seed(clone)
    protect(server, [(people.alice, "alice", "maintainer")], MAIN_SIGNED,
            rule("no-replace-refs", "deny", refs=["refs/replace/**"]))
    signed = side_commit(clone, {"good.txt": "reviewed\n"}, "reviewed change", sign=people.alice)
    unsigned = side_commit(clone, {"evil.txt": "backdoor\n"}, "unreviewed change")
    clone.git("replace", unsigned, signed)
    replace_ref = f"refs/replace/{unsigned}"
    assert_refused(server, clone.push(replace_ref), replace_ref, "no-replace-refs", old=None)
    assert_accepted(server, clone.push(f"{signed}:{MAIN}"), MAIN, signed)


# =========================================================================== 2. creates at parked commits

HISTORY_SIGNED = rule("main-history-signed", "signed", refs=[MAIN, "refs/heads/release/*"], tier="contributor")


def guarded(server: Server, clone: Clone, people: People) -> str:
    """Seed main, then protect main and release/* with `main-history-signed`; the seed's id."""
    base = seed(clone)
    protect(server, [(people.alice, "alice", "maintainer")], HISTORY_SIGNED)
    return base


def park(clone: Clone, commit: str, ref: str) -> None:
    """Push `commit` to a ref that no rule covers (accepted: nothing guards it)."""
    parked = clone.push(f"{commit}:{ref}")
    assert parked.ok, parked


@pytest.mark.parametrize("history", ["on-main", "unrelated"])
def test_create_at_commit_parked_on_unguarded_branch_is_refused(
    people: People, server: Server, clone: Clone, history: str
) -> None:
    """An unsigned X parked on wip is not vetted for release/*: creating release/1 at X judges X."""
    guarded(server, clone, people)
    if history == "on-main":
        x = side_commit(clone, {"evil.txt": "backdoor\n"}, "parked")
    else:
        x = orphan_commit(clone, "parked")
    park(clone, x, "refs/heads/wip")
    result = clone.push(f"{x}:{RELEASE}")
    assert_refused(server, result, RELEASE, "main-history-signed", old=None)
    assert f'{RELEASE}: rule "main-history-signed" failed for commit {x[:10]}' in unwrap(result.remote)


def test_create_at_commit_parked_on_the_default_branch_is_refused(
    people: People, server: Server, clone: Clone
) -> None:
    """The bare server's HEAD names master (git's default), which no rule covers: an unsigned X pushed
    there is not vetted for release/* either."""
    guarded(server, clone, people)
    server.git("symbolic-ref", "HEAD", "refs/heads/master")
    x = side_commit(clone, {"evil.txt": "backdoor\n"}, "parked")
    park(clone, x, "refs/heads/master")
    result = clone.push(f"{x}:{RELEASE}")
    assert_refused(server, result, RELEASE, "main-history-signed", old=None)


def test_create_at_main_tip_is_accepted(people: People, server: Server, clone: Clone) -> None:
    """Twin: main's signed commits are vetted for release/* (the same rule covers main)."""
    guarded(server, clone, people)
    clone.write("app.py", "print('v2')\n")
    tip = clone.commit("v2", sign=people.alice)
    assert_accepted(server, clone.push(f"{tip}:{MAIN}"), MAIN, tip)
    assert_accepted(server, clone.push(f"{tip}:{RELEASE}"), RELEASE, tip)


def test_create_at_signed_commit_parked_on_unguarded_branch_is_accepted(
    people: People, server: Server, clone: Clone
) -> None:
    """Twin: a signed commit parked on wip is judged for release/1, and passes."""
    guarded(server, clone, people)
    x = side_commit(clone, {"feature.py": "ok\n"}, "parked", sign=people.alice)
    park(clone, x, "refs/heads/wip")
    assert_accepted(server, clone.push(f"{x}:{RELEASE}"), RELEASE, x)


def legacy(server: Server, clone: Clone, people: People) -> str:
    """Unsigned history on main and on legacy (one commit past main), pushed before the hook is
    installed; the legacy tip's id."""
    seed(clone)
    clone.write("legacy.txt", "old work\n")
    old = clone.commit("legacy work")
    pushed = clone.push(f"{old}:refs/heads/legacy")
    assert pushed.ok, pushed
    protect(server, [(people.alice, "alice", "maintainer")], HISTORY_SIGNED)
    return old


def test_create_at_history_from_before_install_is_accepted(people: People, server: Server, clone: Clone) -> None:
    """The baseline install recorded vets the legacy branch's history for release/*."""
    old = legacy(server, clone, people)
    assert_accepted(server, clone.push(f"{old}:{RELEASE}"), RELEASE, old)


def test_create_at_commit_pushed_after_install_is_refused(people: People, server: Server, clone: Clone) -> None:
    """A commit pushed to legacy after install is not in the baseline: release/1 at it is judged."""
    old = legacy(server, clone, people)
    clone.write("legacy.txt", "new work\n")
    new = clone.commit("after install")
    park(clone, new, "refs/heads/legacy")
    result = clone.push(f"{new}:{RELEASE}")
    assert_refused(server, result, RELEASE, "main-history-signed", old=None)
    assert f'{RELEASE}: rule "main-history-signed" failed for commit {new[:10]}' in unwrap(result.remote)
    assert server.ref("refs/heads/legacy") == new != old


def test_baseline_command_records_the_current_history(people: People, server: Server, clone: Clone) -> None:
    """`stepup-git baseline REPO` records the ref tips again: the commit pushed after install is vetted."""
    legacy(server, clone, people)
    clone.write("legacy.txt", "imported\n")
    new = clone.commit("imported history")
    park(clone, new, "refs/heads/legacy")
    proc = stepup("baseline", server.path)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1, proc.stdout
    assert_accepted(server, clone.push(f"{new}:{RELEASE}"), RELEASE, new)


def test_dry_run_check_refuses_create_at_parked_commit(people: People, server: Server, clone: Clone) -> None:
    """`stepup-git check` on the server judges the create of release/1 at a parked X as the hook does."""
    guarded(server, clone, people)
    x = orphan_commit(clone, "parked")
    park(clone, x, "refs/heads/wip")
    proc = stepup("check", "--repo", server.path, ZERO, x, RELEASE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f'{RELEASE}: rule "main-history-signed" failed for commit {x[:10]}' in unwrap(proc.stdout.splitlines())


def test_dry_run_check_allows_create_at_main_tip(people: People, server: Server, clone: Clone) -> None:
    """Twin: the dry run allows release/1 at main's signed tip."""
    guarded(server, clone, people)
    clone.write("app.py", "print('v2')\n")
    tip = clone.commit("v2", sign=people.alice)
    assert_accepted(server, clone.push(f"{tip}:{MAIN}"), MAIN, tip)
    proc = stepup("check", "--repo", server.path, ZERO, tip, RELEASE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# =========================================================================== 3. two-person rule


@pytest.fixture
def alice_second(people: People) -> Key:
    """A second maintainer key of alice's."""
    return second_key(people, "alice")


def two_person(server: Server, clone: Clone, people: People, alice_second: Key, *, bind_pusher: bool = False) -> str:
    """Seed main, then require fresh proofs from 2 maintainers on main; alice holds two keys, bob one."""
    base = seed(clone)
    keys = [(people.alice, "alice", "maintainer"), (alice_second, "alice", "maintainer"),
            (people.bob, "bob", "maintainer")]
    protect(server, keys, rule("two-person", "step-up", refs=[MAIN], signers=2, bind_pusher=bind_pusher))
    return base


def test_two_keys_of_one_person_count_once(
    people: People, server: Server, clone: Clone, alice_second: Key
) -> None:
    """alice signs the tip with one key and the push certificate with the other: one person, one signer."""
    base = two_person(server, clone, people, alice_second)
    clone.write("app.py", "print('v2')\n")
    tip = clone.commit("v2", sign=people.alice)
    result = clone.push(f"{tip}:{MAIN}", signed=alice_second, pusher="alice")
    assert_refused(server, result, MAIN, "two-person", old=base)
    lines = unwrap(result.remote)
    assert lines[-2] == "              signers: 1 of 2 counted (alice)", lines
    assert lines[-3].startswith(f"              tip commit {tip[:10]}: signed by alice "), lines
    assert lines[-3].endswith("; alice is counted once already (one person counts once, whatever keys they hold)")


def test_tip_by_one_person_and_certificate_by_another_is_accepted(
    people: People, server: Server, clone: Clone, alice_second: Key
) -> None:
    """Twin: alice signs the tip, bob pushes it with git push --signed."""
    two_person(server, clone, people, alice_second)
    clone.write("app.py", "print('v2')\n")
    tip = clone.commit("v2", sign=people.alice)
    assert_accepted(server, clone.push(f"{tip}:{MAIN}", signed=people.bob, pusher="bob"), MAIN, tip)
    owners = {proof["owner"] for proof in last_record(server, MAIN)["rules"][0]["proofs"]}
    assert owners == {"alice", "bob"}


def test_bound_two_person_rule_refuses_a_pusher_who_gave_no_proof(
    people: People, server: Server, clone: Clone, alice_second: Key
) -> None:
    """`bind_pusher`: alice and bob both prove, but carol pushes."""
    base = two_person(server, clone, people, alice_second, bind_pusher=True)
    clone.write("app.py", "print('v2')\n")
    tip = clone.commit("v2", sign=people.alice)
    result = clone.push(f"{tip}:{MAIN}", signed=people.bob, pusher="carol")
    assert_refused(server, result, MAIN, "two-person", old=base)


def test_bound_two_person_rule_accepts_a_pusher_who_is_one_of_the_two(
    people: People, server: Server, clone: Clone, alice_second: Key
) -> None:
    """Twin: the pusher bob is one of the two people who prove (alice's tip, bob's certificate)."""
    two_person(server, clone, people, alice_second, bind_pusher=True)
    clone.write("app.py", "print('v2')\n")
    tip = clone.commit("v2", sign=people.alice)
    assert_accepted(server, clone.push(f"{tip}:{MAIN}", signed=people.bob, pusher="bob"), MAIN, tip)


# =========================================================================== 5. gitlinks at guarded paths

GITLINK_A = "1" * 40
GITLINK_B = "2" * 40


def infra_guarded(server: Server, clone: Clone, people: People) -> str:
    base = seed(clone)
    protect(server, [(people.alice, "alice", "maintainer")], INFRA_STEP_UP)
    return base


def test_gitlink_created_at_guarded_directory_unproven_is_refused(
    people: People, server: Server, clone: Clone
) -> None:
    """A gitlink at `infra` is a change at a path `infra/**` matches."""
    base = infra_guarded(server, clone, people)
    tip = commit_gitlink(clone, "infra", GITLINK_A)
    assert_refused(server, clone.push(f"{tip}:{MAIN}"), MAIN, "infra-step-up", old=base)


def test_gitlink_moved_at_guarded_directory_unproven_is_refused(
    people: People, server: Server, clone: Clone
) -> None:
    """The gitlink at `infra`, added with a fresh proof, is then moved without one."""
    infra_guarded(server, clone, people)
    proven = commit_gitlink(clone, "infra", GITLINK_A, sign=people.alice)
    assert_accepted(server, clone.push(f"{proven}:{MAIN}", pusher="alice"), MAIN, proven)
    moved = commit_gitlink(clone, "infra", GITLINK_B)
    assert_refused(server, clone.push(f"{moved}:{MAIN}"), MAIN, "infra-step-up", old=proven)


def test_gitlink_moved_at_unguarded_path_unproven_is_accepted(
    people: People, server: Server, clone: Clone
) -> None:
    """Twin: a gitlink at vendor/lib is not guarded; adding and moving it needs no proof."""
    infra_guarded(server, clone, people)
    added = commit_gitlink(clone, "vendor/lib", GITLINK_A)
    assert_accepted(server, clone.push(f"{added}:{MAIN}"), MAIN, added)
    moved = commit_gitlink(clone, "vendor/lib", GITLINK_B)
    assert_accepted(server, clone.push(f"{moved}:{MAIN}"), MAIN, moved)


def test_gitlink_moved_at_guarded_directory_with_signed_push_is_accepted(
    people: People, server: Server, clone: Clone
) -> None:
    """Twin: alice moves the gitlink at `infra` with git push --signed."""
    infra_guarded(server, clone, people)
    proven = commit_gitlink(clone, "infra", GITLINK_A, sign=people.alice)
    assert_accepted(server, clone.push(f"{proven}:{MAIN}", pusher="alice"), MAIN, proven)
    moved = commit_gitlink(clone, "infra", GITLINK_B)
    assert_accepted(server, clone.push(f"{moved}:{MAIN}", signed=people.alice, pusher="alice"), MAIN, moved)


# =========================================================================== 8. delete and re-create

STAGING = "refs/heads/staging"
DELETE_GUARDED = (
    HISTORY_SIGNED,
    rule("migrations-step-up", "step-up", paths=["db/migrations/**", "infra/**"]),
    rule("branch-delete-step-up", "step-up", on=["delete"]),
)


def test_unproven_branch_delete_is_refused(people: People, server: Server, clone: Clone) -> None:
    """With deletions of branches guarded (as in the example policy), staging cannot be deleted unproven,
    so it cannot be re-created at an old commit either."""
    base = seed(clone, "HEAD:refs/heads/main", f"HEAD:{STAGING}")
    protect(server, [(people.alice, "alice", "maintainer")], *DELETE_GUARDED)
    assert_refused(server, clone.push(f":{STAGING}"), STAGING, "branch-delete-step-up", old=base)


def test_branch_delete_with_signed_push_is_accepted(people: People, server: Server, clone: Clone) -> None:
    """Twin: alice deletes staging with git push --signed."""
    seed(clone, "HEAD:refs/heads/main", f"HEAD:{STAGING}")
    protect(server, [(people.alice, "alice", "maintainer")], *DELETE_GUARDED)
    assert_accepted(server, clone.push(f":{STAGING}", signed=people.alice, pusher="alice"), STAGING, None)
