"""`require = "step-up"` on guarded paths (docs/semantics.md): fresh proofs for risky changes.

Every push goes through the installed hook with real git and gpg; each test checks whether the server
ref moved, the exact `remote:` lines and, where it matters, the audit record.
"""

from __future__ import annotations

import re
from typing import Any

from support import run
from support.keys import Key, People, SshKey, key_toml
from support.lines import unwrap
from support.repos import Clone, PushResult, Server, signing_config

RULE = "migrations-step-up"
MAIN = "refs/heads/main"
PATTERNS = "(db/migrations/**, infra/**)"
MIGRATION = "db/migrations/0001.sql"
STALE = "2021-06-01T12:00:00Z"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
NO_CERT = "push certificate: none (the push was not made with git push --signed)"
FIX = (
    "sign the push with a key of tier maintainer or higher: git config user.signingkey <key id>, "
    "then git push --signed; or re-sign the tip now: git commit --amend --no-edit -S, then push"
)
AGE = r"\d+[smhd](?: \d+[hm])?"
"""How `age()` renders a duration: `45s`, `12m`, `3h 5m`, `1635d 4h`."""


def accepted(checks: int) -> str:
    return f"stepup-git: push accepted (1 update(s), {checks} rule check(s) passed)"


def policy_text(
    people: People,
    *,
    refs: str | None = None,
    signers: int | None = None,
    ssh: bool = False,
) -> str:
    """alice maintainer, bob contributor, carol release; guarded paths need a maintainer's fresh proof."""
    rule = f'[[rules]]\nname = "{RULE}"\n'
    if refs is not None:
        rule += f'refs = ["{refs}"]\n'
    rule += 'paths = ["db/migrations/**", "infra/**"]\nrequire = "step-up"\ntier = "maintainer"\n'
    rule += 'fresh_within = "10m"\n'
    if signers is not None:
        rule += f"signers = {signers}\n"
    return (
        'version = 1\n\n[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'
        + key_toml(people.alice, "alice", "maintainer")
        + key_toml(people.bob, "bob", "contributor")
        + key_toml(people.carol, "carol", "release")
        + (key_toml(people.alice_ssh, "alice", "maintainer") if ssh else "")
        + "\n"
        + rule
    )


def protect(server: Server, people: People, **options: Any) -> None:
    keys = {
        "alice.asc": people.alice.export(),
        "bob.asc": people.bob.export(),
        "carol.asc": people.carol.export(),
    }
    server.write_policy(policy_text(people, **options), keys)
    server.install()


def seeded(server: Server, clone: Clone, people: People, **options: Any) -> str:
    """Push an ordinary first commit to main (before the hook exists), then protect the server."""
    clone.write("README.md", "app\n")
    clone.write("src/app.py", "print('v1')\n")
    base = clone.commit("base")
    assert clone.push("main").ok
    protect(server, people, **options)
    return base


def who(key: Key, owner: str, tier: str) -> str:
    return f"signed by {owner} ({tier}, key {key.fingerprint[-16:]})"


def why(path: str, action: str = "update", ref: str = MAIN) -> str:
    return f"{action} of {ref} changes {path} {PATTERNS}"


def required(reason: str, signers: int = 1) -> str:
    proofs = "a fresh proof" if signers == 1 else f"fresh proofs from {signers} different people"
    return (
        f"{proofs} of tier maintainer or higher: a signed push certificate for this update "
        f"(git push --signed) or a signature on the pushed tip made within the last 10m ({reason})"
    )


def pattern(text: str) -> str:
    """A regular expression of `text` in which `{AGE}` stands for any rendered duration."""
    return re.escape(text).replace(re.escape("{AGE}"), AGE)


def assert_rejected(
    server: Server,
    result: PushResult,
    *,
    ref: str = MAIN,
    old: str | None,
    oid: str,
    required_text: str,
    found: list[str],
    fix: str = FIX,
) -> dict[str, Any]:
    """The push failed with one finding for the tip commit; `found` has a `pattern()` text per part
    ("label: text"), each on a line of its own. The lines fit 80 columns after `remote: `; how they wrap
    depends on lengths that vary (ages), so they are compared joined again (see test_render.py and
    `test_fresh_signature_below_an_unsigned_tip_proves_nothing` for the exact wrapped lines)."""
    assert not result.ok, result
    lines = unwrap(result.remote)
    assert lines[:3] == [
        REJECTED,
        f'{ref}: rule "{RULE}" failed for commit {oid[:10]}',
        f"    required: {required_text}",
    ], result
    assert len(lines) == 4 + len(found), lines
    for i, part in enumerate(found):
        line = lines[3 + i]
        assert re.fullmatch(pattern(("    found:    " if i == 0 else " " * 14) + part), line), line
    assert lines[-1] == f"    fix:      {fix}"
    assert all(len(line) <= 72 for line in result.remote[1:]), result.remote
    assert server.ref(ref) == old
    record = server.audit_records()[-1]
    assert (record["ref"], record["new"], record["decision"]) == (ref, oid, "reject")
    assert [(r["name"], r["result"]) for r in record["rules"]] == [(RULE, "fail")]
    rule: dict[str, Any] = record["rules"][0]
    return rule


def assert_accepted(
    server: Server, result: PushResult, oid: str, *, ref: str = MAIN, checks: int = 1
) -> dict[str, Any]:
    assert result.ok, result
    assert result.remote == [accepted(checks)]
    assert server.ref(ref) == oid
    record: dict[str, Any] = server.audit_records()[-1]
    assert (record["ref"], record["new"], record["decision"]) == (ref, oid, "accept")
    return record


def passed_rule(record: dict[str, Any]) -> dict[str, Any]:
    (rule,) = record["rules"]
    assert (rule["name"], rule["result"]) == (RULE, "pass")
    result: dict[str, Any] = rule
    return result


def assert_proof(proof: dict[str, Any], kind: str, key: Key, owner: str, tier: str) -> None:
    assert (proof["kind"], proof["fingerprint"], proof["owner"], proof["tier"]) == (
        kind,
        key.fingerprint,
        owner,
        tier,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", proof["signed_at"] or ""), proof


def add_migration(clone: Clone, sign: Key | SshKey | None = None, at: str | None = None) -> str:
    clone.write(MIGRATION, "CREATE TABLE users (id integer);\n")
    return clone.commit("add users table", sign=sign, at=at)


# --- fresh tip signatures -----------------------------------------------------------------------


def test_stale_tip_signature_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """A maintainer's signature made in 2021 is a valid signature but no fresh proof."""
    base = seeded(server, clone, people)
    oid = add_migration(clone, sign=people.alice, at=STALE)
    result = clone.push("main")
    found = f"tip commit {oid[:10]}: {who(people.alice, 'alice', 'maintainer')} {{AGE}} ago, "
    rule = assert_rejected(
        server,
        result,
        old=base,
        oid=oid,
        required_text=required(why(MIGRATION)),
        found=[NO_CERT, found + "older than 10m"],
    )
    assert "git push --signed" in unwrap(result.remote)[-1]
    assert "git commit --amend --no-edit -S" in unwrap(result.remote)[-1]
    assert rule["reason"] == f"step-up not proven: {why(MIGRATION)}"
    assert rule["path"] == MIGRATION
    assert rule["proofs"] == []


def test_fresh_tip_signature_by_maintainer_is_accepted(
    people: People, server: Server, clone: Clone
) -> None:
    """The same change, its tip signed by alice just now, passes; the audit names the proof."""
    seeded(server, clone, people)
    oid = add_migration(clone, sign=people.alice)
    record = assert_accepted(server, clone.push("main"), oid)
    rule = passed_rule(record)
    assert rule["reason"] == f"step-up proven by alice (tip-signature): {why(MIGRATION)}"
    assert rule["path"] == MIGRATION
    (proof,) = rule["proofs"]
    assert_proof(proof, "tip-signature", people.alice, "alice", "maintainer")
    assert record["action"] == "update"


def test_fresh_tip_signature_below_the_tier_is_rejected(
    people: People, server: Server, clone: Clone
) -> None:
    """A fresh signature by a contributor (bob) does not satisfy a maintainer rule."""
    base = seeded(server, clone, people)
    oid = add_migration(clone, sign=people.bob)
    result = clone.push("main")
    bob = who(people.bob, "bob", "contributor")
    assert_rejected(
        server,
        result,
        old=base,
        oid=oid,
        required_text=required(why(MIGRATION)),
        found=[NO_CERT, f"tip commit {oid[:10]}: {bob} {{AGE}} ago; tier contributor is below maintainer"],
    )


def test_ssh_signed_tip_is_no_fresh_proof(people: People, server: Server, clone: Clone) -> None:
    """An SSH signature by a maintainer's SSH key carries no time, so it never proves freshness."""
    base = seeded(server, clone, people, ssh=True)
    oid = add_migration(clone, sign=people.alice_ssh)
    result = clone.push("main")
    ssh_id = run(["ssh-keygen", "-l", "-f", people.alice_ssh.public_path]).stdout.split()[1]
    assert_rejected(
        server,
        result,
        old=base,
        oid=oid,
        required_text=required(why(MIGRATION)),
        found=[NO_CERT, f"tip commit {oid[:10]}: signed by alice (maintainer, key {ssh_id[:20]}), "
               "but SSH signatures carry no time, so they cannot prove freshness"],
        fix="an SSH signature carries no time, so the tip cannot prove freshness: sign the push instead (with "
        "gpg.format = ssh your SSH key signs it): git push --signed origin main",
    )
    # followed: the same commit pushed with an SSH-signed push certificate is accepted
    record = assert_accepted(server, clone.push("main", signed=people.alice_ssh), oid)
    (proof,) = passed_rule(record)["proofs"]
    assert (proof["kind"], proof["owner"]) == ("push-certificate", "alice")


def test_ssh_signed_push_certificate_is_a_fresh_proof(
    people: People, server: Server, clone: Clone
) -> None:
    """The nonce makes an SSH-signed push certificate fresh, unlike an SSH-signed tip (docs/semantics.md, "Rules")."""
    seeded(server, clone, people, ssh=True)
    oid = add_migration(clone)
    record = assert_accepted(server, clone.push("main", signed=people.alice_ssh), oid)
    (proof,) = passed_rule(record)["proofs"]
    assert (proof["kind"], proof["owner"], proof["tier"]) == ("push-certificate", "alice", "maintainer")
    assert proof["fingerprint"].startswith("SHA256:")


def test_fresh_signature_below_an_unsigned_tip_proves_nothing(
    people: People, server: Server, clone: Clone
) -> None:
    """Only the pushed tip carries a tip proof: alice's fresh commit under an unsigned tip is none."""
    base = seeded(server, clone, people)
    add_migration(clone, sign=people.alice)
    clone.write("infra/main.tf", 'resource "x" "y" {}\n')
    oid = clone.commit("unsigned commit on top")
    result = clone.push("main")
    assert_rejected(
        server,
        result,
        old=base,
        oid=oid,
        required_text=required(why(MIGRATION)),
        found=[NO_CERT, f"tip commit {oid[:10]}: no signature"],
    )
    assert result.remote == [
        REJECTED,
        f'{MAIN}: rule "{RULE}" failed for commit {oid[:10]}',
        "    required: a fresh proof of tier maintainer or higher: a signed push",
        "              certificate for this update (git push --signed) or a",
        "              signature on the pushed tip made within the last 10m",
        "              (update of refs/heads/main changes db/migrations/0001.sql",
        "              (db/migrations/**, infra/**))",
        "    found:    push certificate: none (the push was not made with",
        "                git push --signed)",
        f"              tip commit {oid[:10]}: no signature",
        "    fix:      sign the push with a key of tier maintainer or higher:",
        "              git config user.signingkey <key id>, then",
        "              git push --signed; or re-sign the tip now:",
        "              git commit --amend --no-edit -S, then push",
    ]


# --- push certificates --------------------------------------------------------------------------


def test_signed_push_by_maintainer_proves_an_unsigned_tip(
    people: People, server: Server, clone: Clone
) -> None:
    """`git push --signed` by alice proves the update even though no commit is signed."""
    base = seeded(server, clone, people)
    oid = add_migration(clone)
    result = clone.push("main", signed=people.bob)
    bob = who(people.bob, "bob", "contributor")
    assert_rejected(
        server,
        result,
        old=base,
        oid=oid,
        required_text=required(why(MIGRATION)),
        found=[f"push certificate: {bob}, nonce OK; tier contributor is below maintainer",
               f"tip commit {oid[:10]}: no signature"],
    )
    record = assert_accepted(server, clone.push("main", signed=people.alice), oid)
    assert record["push_cert_nonce_status"] == "OK"
    rule = passed_rule(record)
    assert rule["reason"] == f"step-up proven by alice (push-certificate): {why(MIGRATION)}"
    (proof,) = rule["proofs"]
    assert_proof(proof, "push-certificate", people.alice, "alice", "maintainer")


# --- which changes the rule guards --------------------------------------------------------------


def test_change_outside_guarded_paths_needs_no_proof(
    people: People, server: Server, clone: Clone
) -> None:
    """An unsigned change to src/app.py matches no guarded path: the rule does not apply."""
    seeded(server, clone, people)
    clone.write("src/app.py", "print('v2')\n")
    oid = clone.commit("unguarded change")
    record = assert_accepted(server, clone.push("main"), oid, checks=0)
    assert record["rules"] == []


def test_guarded_path_prefix_lookalikes_need_no_proof(
    people: People, server: Server, clone: Clone
) -> None:
    """`db/migrations/**` guards that folder only, not `db/migrations.md` or `src/infra/x`."""
    seeded(server, clone, people)
    clone.write("db/migrations.md", "notes\n")
    clone.write("src/infra/x.py", "x = 1\n")
    clone.write("DB/Migrations/0001.sql", "-- exact case matters\n")
    oid = clone.commit("lookalikes")
    assert assert_accepted(server, clone.push("main"), oid, checks=0)["rules"] == []


def migrated(server: Server, clone: Clone, people: People) -> str:
    """main carries db/migrations/0001.sql, accepted through alice's fresh tip signature."""
    seeded(server, clone, people)
    oid = add_migration(clone, sign=people.alice)
    assert_accepted(server, clone.push("main"), oid)
    return oid


def test_rename_out_of_the_guarded_folder_is_rejected(
    people: People, server: Server, clone: Clone
) -> None:
    """Moving a migration out of db/migrations changes the old path, which the rule guards."""
    before = migrated(server, clone, people)
    (clone.path / "old").mkdir()
    clone.git("mv", MIGRATION, "old/0001.sql")
    oid = clone.commit("move the migration away")
    assert_rejected(
        server,
        clone.push("main"),
        old=before,
        oid=oid,
        required_text=required(why(MIGRATION)),
        found=[NO_CERT, f"tip commit {oid[:10]}: no signature"],
    )


def test_deletion_inside_the_guarded_folder_is_rejected(
    people: People, server: Server, clone: Clone
) -> None:
    """Deleting a migration without a proof is refused like adding one."""
    before = migrated(server, clone, people)
    clone.remove("db")
    oid = clone.commit("drop the migration")
    assert_rejected(
        server,
        clone.push("main"),
        old=before,
        oid=oid,
        required_text=required(why(MIGRATION)),
        found=[NO_CERT, f"tip commit {oid[:10]}: no signature"],
    )


def test_guarded_change_reverted_within_the_push_still_counts(
    people: People, server: Server, clone: Clone
) -> None:
    """A change made and undone inside one push leaves the trees equal, but the commit counts."""
    base = seeded(server, clone, people)
    clone.write("infra/main.tf", 'resource "x" "y" {}\n')
    clone.commit("touch infra")
    clone.remove("infra")
    oid = clone.commit("and undo it")
    assert clone.git("diff", "--name-only", base, oid) == ""
    assert_rejected(
        server,
        clone.push("main"),
        old=base,
        oid=oid,
        required_text=required(why("infra/main.tf")),
        found=[NO_CERT, f"tip commit {oid[:10]}: no signature"],
    )


def test_merge_bringing_a_guarded_change_from_an_unprotected_branch(
    people: People, server: Server, clone: Clone
) -> None:
    """The feature commit that changed infra/ is an added commit of main's merge: it needs a proof."""
    base = seeded(server, clone, people, refs=MAIN)
    clone.git("checkout", "-q", "-b", "feature")
    clone.write("infra/main.tf", 'resource "x" "y" {}\n')
    feature = clone.commit("infra change on a feature branch")
    result = clone.push("feature")
    assert result.ok, result
    assert result.remote == [accepted(0), "stepup-git: note: refs/heads/feature: no rule applies"]
    assert server.ref("refs/heads/feature") == feature

    clone.git("checkout", "-q", "main")
    clone.write("src/app.py", "print('v2')\n")
    clone.commit("main moves on")
    clone.git("merge", "-q", "--no-ff", "--no-edit", "feature")
    merge = clone.rev()
    assert_rejected(
        server,
        clone.push("main"),
        old=base,
        oid=merge,
        required_text=required(why("infra/main.tf")),
        found=[NO_CERT, f"tip commit {merge[:10]}: no signature"],
    )

    clone.git("reset", "-q", "--hard", "HEAD~1")
    clone.git(*signing_config(people.alice), "merge", "-q", "--no-ff", "--no-edit", "-S", "feature")
    signed_merge = clone.rev()
    assert clone.rev("HEAD^2") == feature
    record = assert_accepted(server, clone.push("main"), signed_merge)
    (proof,) = passed_rule(record)["proofs"]
    assert_proof(proof, "tip-signature", people.alice, "alice", "maintainer")


# --- creating a branch --------------------------------------------------------------------------


def test_creating_a_branch_at_commits_a_branch_of_the_rule_carries_changes_nothing(
    people: People, server: Server, clone: Clone
) -> None:
    """docs/semantics.md, "Updates": commits on a ref the rule covers are vetted for it; a create there adds nothing."""
    seeded(server, clone, people, refs="refs/heads/release/*")
    stale = add_migration(clone, sign=people.alice, at=STALE)
    assert_accepted(server, clone.push("main:refs/heads/release/1", signed=people.alice), stale,
                    ref="refs/heads/release/1", checks=1)
    record = assert_accepted(server, clone.push("main:refs/heads/release/2"), stale,
                             ref="refs/heads/release/2", checks=0)
    assert (record["action"], record["rules"]) == ("create", [])


def test_creating_a_branch_at_the_default_branch_tip_is_judged_when_the_rule_does_not_cover_it(
    people: People, server: Server, clone: Clone
) -> None:
    """docs/semantics.md: the default branch vets nothing for a rule that does not cover it: creating release/1
    at main's tip brings main's migration to the release rule for the first time."""
    seeded(server, clone, people, refs="refs/heads/release/*")
    stale = add_migration(clone, sign=people.alice, at=STALE)
    result = clone.push("main")
    assert result.ok, result
    assert result.remote == [accepted(0), "stepup-git: note: refs/heads/main: no rule applies"]
    release = "refs/heads/release/1"
    assert_rejected(
        server,
        clone.push(f"main:{release}"),
        ref=release,
        old=None,
        oid=stale,
        required_text=required(why(MIGRATION, "create", release)),
        found=[NO_CERT, f"tip commit {stale[:10]}: {who(people.alice, 'alice', 'maintainer')} "
               "{AGE} ago, older than 10m"],
    )


def test_creating_a_branch_with_changes_unknown_to_the_default_branch(
    people: People, server: Server, clone: Clone
) -> None:
    """With HEAD on a trunk that lacks the migration, creating release/1 at a commit carrying it
    needs a fresh proof; a stale tip signature is not one, alice's signed push is."""
    base = seeded(server, clone, people, refs="refs/heads/release/*")
    assert clone.push("main:refs/heads/trunk").ok
    server.git("symbolic-ref", "HEAD", "refs/heads/trunk")
    stale = add_migration(clone, sign=people.alice, at=STALE)
    assert clone.push("main").ok
    release = "refs/heads/release/1"
    assert_rejected(
        server,
        clone.push(f"main:{release}"),
        ref=release,
        old=None,
        oid=stale,
        required_text=required(why(MIGRATION, "create", release)),
        found=[NO_CERT, f"tip commit {stale[:10]}: {who(people.alice, 'alice', 'maintainer')} "
               "{AGE} ago, older than 10m"],
    )
    record = assert_accepted(server, clone.push(f"main:{release}", signed=people.alice), stale,
                             ref=release)
    assert record["action"] == "create"
    (proof,) = passed_rule(record)["proofs"]
    assert_proof(proof, "push-certificate", people.alice, "alice", "maintainer")
    assert server.ref("refs/heads/trunk") == base


def test_first_branch_of_an_empty_repository_counts_every_path(
    people: People, server: Server, clone: Clone
) -> None:
    """No default branch exists yet: the base is the empty tree and every path of the tip counts."""
    protect(server, people)
    clone.write("README.md", "app\n")
    clone.commit("base")
    oid = add_migration(clone)
    assert_rejected(
        server,
        clone.push("main"),
        old=None,
        oid=oid,
        required_text=required(why(MIGRATION, "create")),
        found=[NO_CERT, f"tip commit {oid[:10]}: no signature"],
    )
    assert server.git("for-each-ref") == ""


# --- two-person rule ----------------------------------------------------------------------------


def test_two_person_rule(people: People, server: Server, clone: Clone) -> None:
    """`signers = 2`: alice's signed push and carol's fresh tip pass; alice alone never counts twice."""
    base = seeded(server, clone, people, signers=2)
    by_alice = add_migration(clone, sign=people.alice)
    alice = who(people.alice, "alice", "maintainer")
    fix = FIX + (
        "; 2 different people must each prove: e.g. one signs the tip commit "
        "(git commit --amend --no-edit -S) and another pushes it with git push --signed"
    )
    assert_rejected(
        server,
        clone.push("main", signed=people.alice),
        old=base,
        oid=by_alice,
        required_text=required(why(MIGRATION), signers=2),
        found=[f"push certificate: {alice}, nonce OK",
               f"tip commit {by_alice[:10]}: {alice} {{AGE}} ago; alice is counted once already (one person "
               "counts once, whatever keys they hold)",
               "signers: 1 of 2 counted (alice)"],
        fix=fix,
    )

    clone.git("reset", "-q", "--hard", base)
    by_carol = add_migration(clone, sign=people.carol)
    carol = who(people.carol, "carol", "release")
    assert_rejected(
        server,
        clone.push("main"),
        old=base,
        oid=by_carol,
        required_text=required(why(MIGRATION), signers=2),
        found=[NO_CERT, f"tip commit {by_carol[:10]}: {carol} {{AGE}} ago", "signers: 1 of 2 counted (carol)"],
        fix=fix,
    )

    record = assert_accepted(server, clone.push("main", signed=people.alice), by_carol)
    rule = passed_rule(record)
    assert rule["reason"] == (
        f"step-up proven by alice (push-certificate), carol (tip-signature): {why(MIGRATION)}"
    )
    cert, tip = rule["proofs"]
    assert_proof(cert, "push-certificate", people.alice, "alice", "maintainer")
    assert_proof(tip, "tip-signature", people.carol, "carol", "release")
