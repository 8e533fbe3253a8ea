"""`require = "signed-tag"` (docs/semantics.md, "Rules"): release tags are annotated and signed by a release key."""

from __future__ import annotations

from typing import Any

from support import ago
from support.keys import Key, People, key_toml
from support.lines import unwrap
from support.repos import Clone, PushResult, Server, signing_config

RULE = "release-tags"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"
REQUIRED = "an annotated tag signed by a policy key of tier release or higher"


def protect(server: Server, people: People, *, fresh_within: str | None = None) -> None:
    """carol release, alice maintainer; tags v* need a release signature."""
    rule = f'[[rules]]\nname = "{RULE}"\nrefs = ["refs/tags/v*"]\nrequire = "signed-tag"\n'
    rule += 'tier = "release"\n'
    if fresh_within is not None:
        rule += f'fresh_within = "{fresh_within}"\n'
    text = (
        'version = 1\n\n[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'
        + key_toml(people.carol, "carol", "release")
        + key_toml(people.alice, "alice", "maintainer")
        + "\n"
        + rule
    )
    keys = {"carol.asc": people.carol.export(), "alice.asc": people.alice.export()}
    server.write_policy(text, keys)
    server.install()


def who(key: Key, owner: str, tier: str) -> str:
    return f"signed by {owner} ({tier}, key {key.fingerprint[-16:]})"


def sign_fix(name: str, target: str) -> str:
    """The fix of a tag that is not signed as required: sign what it stands for, then push it."""
    return (
        f"git tag -s -f {name} {target[:10]} (with a key of tier release or higher), "
        f"then git push origin refs/tags/{name}"
    )


def finding(name: str, label: str, found: str, fix: str, required: str = REQUIRED) -> list[str]:
    """A finding's lines as :func:`unwrap` joins them."""
    return [
        f'refs/tags/{name}: rule "{RULE}" failed for {label}',
        f"    required: {required}",
        f"    found:    {found}",
        f"    fix:      {fix}",
    ]


def tag_label(name: str, oid: str) -> str:
    return f"tag {name} ({oid[:10]})"


def assert_rejected(
    server: Server, result: PushResult, ref: str, lines: list[str], old: str | None = None
) -> None:
    assert not result.ok, result
    assert unwrap(result.remote) == [REJECTED, *lines]
    assert all(len(line) <= 72 for line in result.remote[1:]), result.remote
    assert server.ref(ref) == old
    record = server.audit_records()[-1]
    assert (record["ref"], record["decision"]) == (ref, "reject")
    assert [(r["name"], r["result"]) for r in record["rules"]] == [(RULE, "fail")]


def assert_accepted(server: Server, result: PushResult, ref: str, oid: str) -> dict[str, Any]:
    assert result.ok, result
    assert result.remote == [ACCEPTED]
    assert server.ref(ref) == oid
    record = server.audit_records()[-1]
    assert (record["ref"], record["new"], record["decision"]) == (ref, oid, "accept")
    assert [(r["name"], r["result"]) for r in record["rules"]] == [(RULE, "pass")]
    (proof,) = record["rules"][0]["proofs"]
    assert proof["kind"] == "tag-signature"
    assert proof["object"] == oid
    result_proof: dict[str, Any] = proof
    return result_proof


# --- refused -----------------------------------------------------------------------------------


def test_lightweight_tag_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """A lightweight release tag signs nothing; the fix is to replace it with `git tag -s`."""
    protect(server, people)
    commit = clone.commit("release me")
    assert clone.tag("v1.0", message=None) == commit
    result = clone.push("refs/tags/v1.0")
    found = "a lightweight tag (points at a commit; nothing is signed)"
    fix = sign_fix("v1.0", commit)
    assert_rejected(
        server, result, "refs/tags/v1.0", finding("v1.0", f"commit {commit[:10]}", found, fix)
    )


def test_the_fix_for_a_lightweight_tag_works_when_followed(people: People, server: Server, clone: Clone) -> None:
    """The printed fix names the commit the tag stands for; run as printed (with carol's key), it is accepted."""
    protect(server, people)
    commit = clone.commit("release me")
    clone.tag("v1.0", message=None)
    result = clone.push("refs/tags/v1.0")
    assert not result.ok
    fix = unwrap(result.remote)[-1].removeprefix("    fix:      ")
    tag_command, push_command = fix.split(" (with a key of tier release or higher), then ")
    assert tag_command == f"git tag -s -f v1.0 {commit[:10]}"
    clone.git(*signing_config(people.carol), *tag_command.split()[1:], "-u", people.carol.fingerprint, "-m", "v1.0")
    assert push_command == "git push origin refs/tags/v1.0"
    oid = clone.rev("refs/tags/v1.0")
    assert_accepted(server, clone.push("refs/tags/v1.0"), "refs/tags/v1.0", oid)


def test_unsigned_annotated_tag_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """An annotated tag without a signature does not satisfy the rule."""
    protect(server, people)
    commit = clone.commit("release me")
    oid = clone.tag("v1.0")
    result = clone.push("refs/tags/v1.0")
    lines = finding("v1.0", tag_label("v1.0", oid), "an unsigned annotated tag", sign_fix("v1.0", commit))
    assert_rejected(server, result, "refs/tags/v1.0", lines)


def test_tag_signed_below_release_tier_is_rejected(
    people: People, server: Server, clone: Clone
) -> None:
    """A maintainer's (alice's) signature is below the release tier."""
    protect(server, people)
    commit = clone.commit("release me")
    oid = clone.tag("v1.0", sign=people.alice)
    result = clone.push("refs/tags/v1.0")
    found = f"{who(people.alice, 'alice', 'maintainer')}: tier maintainer is below release"
    lines = finding("v1.0", tag_label("v1.0", oid), found, sign_fix("v1.0", commit))
    assert_rejected(server, result, "refs/tags/v1.0", lines)
    assert result.remote == [
        REJECTED,
        f'refs/tags/v1.0: rule "{RULE}" failed for {tag_label("v1.0", oid)}',
        "    required: an annotated tag signed by a policy key of tier release or",
        "              higher",
        f"    found:    signed by alice (maintainer, key {people.alice.fingerprint[-16:]}): tier",
        "              maintainer is below release",
        f"    fix:      git tag -s -f v1.0 {commit[:10]} (with a key of tier release",
        "              or higher), then git push origin refs/tags/v1.0",
    ]


def test_tag_signed_by_unknown_key_is_rejected(
    people: People, server: Server, clone: Clone
) -> None:
    """A tag signed by a key outside the policy (mallory) is refused, naming that key."""
    protect(server, people)
    commit = clone.commit("release me")
    oid = clone.tag("v1.0", sign=people.mallory)
    result = clone.push("refs/tags/v1.0")
    assert not result.ok, result
    assert server.ref("refs/tags/v1.0") is None
    lines = unwrap(result.remote)
    assert lines[:3] == [
        REJECTED,
        f'refs/tags/v1.0: rule "{RULE}" failed for {tag_label("v1.0", oid)}',
        f"    required: {REQUIRED}",
    ]
    assert lines[3].startswith("    found:    signed by unknown key ")
    assert people.mallory.fingerprint[-16:] in lines[3]
    assert lines[4:] == [f"    fix:      {sign_fix('v1.0', commit)}"]
    assert server.audit_records()[-1]["decision"] == "reject"


def test_stale_tag_is_rejected_under_fresh_within(
    people: People, server: Server, clone: Clone
) -> None:
    """With `fresh_within = "10m"`, a carol tag signed in 2021 is too old; a fresh one passes."""
    protect(server, people, fresh_within="10m")
    commit = clone.commit("release me")
    old = clone.tag("v1.0", sign=people.carol, at="2021-03-01T00:00:00Z")
    result = clone.push("refs/tags/v1.0")
    assert not result.ok, result
    assert server.ref("refs/tags/v1.0") is None
    lines = unwrap(result.remote)
    assert lines[:3] == [
        REJECTED,
        f'refs/tags/v1.0: rule "{RULE}" failed for {tag_label("v1.0", old)}',
        f"    required: {REQUIRED}, signed within 10m",
    ]
    found = lines[3]
    assert found.startswith(f"    found:    {who(people.carol, 'carol', 'release')} ")
    assert found.endswith(" ago, older than 10m")
    assert lines[4:] == [f"    fix:      {sign_fix('v1.0', commit)}"]

    fresh = clone.tag("v1.0", sign=people.carol, force=True)
    proof = assert_accepted(server, clone.push("refs/tags/v1.0"), "refs/tags/v1.0", fresh)
    assert (proof["owner"], proof["tier"]) == ("carol", "release")


def test_future_dated_tag_is_not_fresh(people: People, server: Server, clone: Clone) -> None:
    """A tag signed a day ahead is beyond the clock skew, so it is no fresh proof (docs/semantics.md, "Rules")."""
    protect(server, people, fresh_within="10m")
    clone.commit("release me")
    oid = clone.tag("v1.0", sign=people.carol, at=ago(days=-1))
    result = clone.push("refs/tags/v1.0")
    assert not result.ok, result
    assert server.ref("refs/tags/v1.0") is None
    assert result.remote[:2] == [
        REJECTED,
        f'refs/tags/v1.0: rule "{RULE}" failed for {tag_label("v1.0", oid)}',
    ]
    found = unwrap(result.remote)[3]
    assert found.startswith(f"    found:    {who(people.carol, 'carol', 'release')}")
    assert "future" in found


def test_deleting_release_tag_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """A release tag, once published, cannot be deleted under the rule (`on` = every action)."""
    protect(server, people)
    clone.commit("release me")
    oid = clone.tag("v1.0", sign=people.carol)
    assert clone.push("refs/tags/v1.0").ok
    result = clone.push(":refs/tags/v1.0")
    fix = f'deleting refs/tags/v1.0 is not allowed by rule "{RULE}"; ask a repository administrator'
    lines = finding(
        "v1.0",
        "the delete of refs/tags/v1.0",
        "a delete (a deleted tag cannot be signed)",
        fix,
    )
    assert_rejected(server, result, "refs/tags/v1.0", lines, old=oid)
    assert server.audit_records()[-1]["action"] == "delete"


def test_lightweight_tag_at_a_blob_is_rejected(
    people: People, server: Server, clone: Clone
) -> None:
    """A lightweight tag pointing straight at a blob is no signed release either."""
    protect(server, people)
    clone.write("notes.txt", "release notes\n")
    clone.commit("notes")
    blob = clone.rev("HEAD:notes.txt")
    clone.git("tag", "vblob", blob)
    result = clone.push("refs/tags/vblob")
    found = "a lightweight tag (points at a blob; nothing is signed)"
    fix = sign_fix("vblob", blob)
    lines = finding("vblob", f"blob {blob[:10]}", found, fix)
    assert_rejected(server, result, "refs/tags/vblob", lines)


# --- accepted ----------------------------------------------------------------------------------


def test_tag_signed_by_release_key_is_accepted(
    people: People, server: Server, clone: Clone
) -> None:
    """carol's (release) signed tag is published; the server ref holds the tag object."""
    protect(server, people)
    commit = clone.commit("release me")
    oid = clone.tag("v1.0", sign=people.carol)
    assert oid != commit
    proof = assert_accepted(server, clone.push("refs/tags/v1.0"), "refs/tags/v1.0", oid)
    assert (proof["fingerprint"], proof["owner"], proof["tier"]) == (
        people.carol.fingerprint,
        "carol",
        "release",
    )
    assert server.git("cat-file", "-t", "refs/tags/v1.0") == "tag"
    assert server.audit_records()[-1]["rules"][0]["reason"] == (
        f"tag {who(people.carol, 'carol', 'release')}"
    )


def test_signed_tag_of_a_tree_is_accepted(people: People, server: Server, clone: Clone) -> None:
    """A signed annotated tag may point at a tree; carol's signature is what counts."""
    protect(server, people)
    clone.write("dist/app.bin", "binary\n")
    clone.commit("build")
    tree = clone.rev("HEAD^{tree}")
    config = signing_config(people.carol)
    clone.git(*config, "tag", "-s", "-u", people.carol.fingerprint, "-m", "tree", "vtree", tree)
    oid = clone.rev("refs/tags/vtree")
    assert clone.git("cat-file", "-p", oid).startswith(f"object {tree}\ntype tree\n")
    proof = assert_accepted(server, clone.push("refs/tags/vtree"), "refs/tags/vtree", oid)
    assert proof["owner"] == "carol"


def test_tag_outside_rule_is_accepted_unsigned(
    people: People, server: Server, clone: Clone
) -> None:
    """A tag the rule does not match (refs/tags/nightly) needs no signature, and is audited."""
    protect(server, people)
    commit = clone.commit("nightly build")
    clone.tag("nightly", message=None)
    result = clone.push("refs/tags/nightly")
    assert result.ok, result
    assert result.remote == [
        "stepup-git: push accepted (1 update(s), 0 rule check(s) passed)",
        "stepup-git: note: refs/tags/nightly: no rule applies",
    ]
    assert server.ref("refs/tags/nightly") == commit
    (record,) = server.audit_records()
    assert (record["ref"], record["decision"], record["rules"]) == (
        "refs/tags/nightly",
        "accept",
        [],
    )


def test_signed_tag_republished_under_another_name_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """carol's signed v0.1 pushed as refs/tags/v9.9 would publish an old release as a new one."""
    protect(server, people)
    clone.commit("release me")
    oid = clone.tag("v0.1", sign=people.carol)
    result = clone.push("refs/tags/v0.1:refs/tags/v9.9")
    assert not result.ok, result
    assert server.ref("refs/tags/v9.9") is None
    lines = unwrap(result.remote)
    assert lines[1] == f'refs/tags/v9.9: rule "{RULE}" failed for {tag_label("v0.1", oid)}'
    assert lines[3] == ("    found:    a tag object named v0.1 pushed as refs/tags/v9.9 "
                        "(a signed tag cannot be republished under another name)")
    assert clone.push("refs/tags/v0.1").ok, "under its own name the same tag is accepted"
