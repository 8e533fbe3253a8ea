"""`require = "signed"` (docs/semantics.md): every added commit signed by a policy key of the tier."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from support import run
from support.keys import Gpg, Key, People, SshKey, key_toml
from support.lines import unwrap
from support.repos import Clone, PushResult, Server, signing_config

RULE = "main-signed"
MAIN = "refs/heads/main"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"
SIGN_HOW = "sign with a policy key of tier {tier} or higher (git config user.signingkey <key id>)"


def policy_text(
    people: People,
    *,
    rule_tier: str = "contributor",
    extra_keys: str = "",
    bob_expires: str | None = None,
) -> str:
    """The shared policy: alice maintainer, bob/dave(SSH)/subkeyed/old contributor; main signed."""
    return (
        'version = 1\n\n[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'
        + key_toml(people.alice, "alice", "maintainer")
        + key_toml(people.bob, "bob", "contributor", expires=bob_expires)
        + key_toml(people.alice_ssh, "dave", "contributor")
        + key_toml(people.subkeyed, "subkeyed", "contributor")
        + key_toml(people.expired, "old", "contributor")
        + extra_keys
        + f'\n[[rules]]\nname = "{RULE}"\nrefs = ["{MAIN}"]\nrequire = "signed"\n'
        + f'tier = "{rule_tier}"\n'
    )


def keyring(people: People, **extra: str) -> dict[str, str]:
    files = {
        "alice.asc": people.alice.export(),
        "bob.asc": people.bob.export(),
        "subkeyed.asc": people.subkeyed.export(),
        "old.asc": people.expired.export(),
    }
    files.update({f"{name}.asc": text for name, text in extra.items()})
    return files


def protect(server: Server, people: People, **options: Any) -> None:
    extra_files = options.pop("extra_files", {})
    server.write_policy(policy_text(people, **options), keyring(people, **extra_files))
    server.install()


def who(key: Key, owner: str, tier: str) -> str:
    return f"signed by {owner} ({tier}, key {key.fingerprint[-16:]})"


def finding(oid: str, found: str, fix: str, tier: str = "contributor") -> list[str]:
    """A finding's lines as :func:`unwrap` joins them."""
    return [
        f'{MAIN}: rule "{RULE}" failed for commit {oid[:10]}',
        f"    required: every new commit signed by a policy key of tier {tier} or higher",
        f"    found:    {found}",
        f"    fix:      {fix}",
    ]


def tip_fix(tier: str = "contributor") -> str:
    return SIGN_HOW.format(tier=tier) + ": git commit --amend --no-edit -S, then push again"


def rebase_fix(onto: str, tier: str = "contributor") -> str:
    return (
        SIGN_HOW.format(tier=tier)
        + f": git rebase --rebase-merges --exec 'git commit --amend --no-edit -S' {onto}, "
        "then push again"
    )


def assert_rejected(server: Server, result: PushResult, lines: list[str], old: str | None) -> None:
    assert not result.ok, result
    assert unwrap(result.remote) == [REJECTED, *lines]
    assert server.ref(MAIN) == old
    record = server.audit_records()[-1]
    assert (record["ref"], record["decision"]) == (MAIN, "reject")
    assert [(r["name"], r["result"]) for r in record["rules"]] == [(RULE, "fail")]


def assert_accepted(server: Server, result: PushResult, oid: str) -> dict[str, Any]:
    assert result.ok, result
    assert result.remote == [ACCEPTED]
    assert server.ref(MAIN) == oid
    record = server.audit_records()[-1]
    assert (record["ref"], record["new"], record["decision"]) == (MAIN, oid, "accept")
    assert [(r["name"], r["result"]) for r in record["rules"]] == [(RULE, "pass")]
    rule: dict[str, Any] = record["rules"][0]
    return rule


def ssh_fingerprint(key: SshKey) -> str:
    """The `SHA256:...` fingerprint ssh-keygen prints for the key."""
    return run(["ssh-keygen", "-l", "-f", key.public_path]).stdout.split()[1]


def expiry_day(people: People) -> str:
    """The UTC day GnuPG lists as the expiry of the `expired` key."""
    listing = people.gpg.gpg("--with-colons", "--list-keys", people.expired.fingerprint).decode()
    pub = next(line.split(":") for line in listing.splitlines() if line.startswith("pub:"))
    return datetime.fromtimestamp(int(pub[6]), UTC).strftime("%Y-%m-%d")


def ssh_sign_commit(clone: Clone, key: SshKey, namespace: str) -> str:
    """Commit, then sign it by hand with `ssh-keygen -Y sign -n <namespace>`; the signed id."""
    oid = clone.commit(f"signed in namespace {namespace}")
    raw = run(["git", "cat-file", "commit", oid], cwd=clone.path).stdout
    signature = run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", key.private_path, "-n", namespace], input=raw
    ).stdout
    headers, _, body = raw.partition("\n\n")
    gpgsig = "gpgsig " + "\n ".join(signature.rstrip("\n").splitlines())
    signed = run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=clone.path,
        input=f"{headers}\n{gpgsig}\n\n{body}",
    ).stdout.strip()
    clone.git("reset", "-q", "--hard", signed)
    return signed


def tamper(clone: Clone, old: bytes, new: bytes) -> str:
    """Rewrite HEAD's raw commit (its signature header kept), point `main` at it; the new id."""
    raw = run(["git", "cat-file", "commit", "HEAD"], cwd=clone.path).stdout.encode()
    assert raw.count(old) == 1
    forged = run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=clone.path,
        input=raw.replace(old, new).decode(),
    ).stdout.strip()
    clone.git("reset", "-q", "--hard", forged)
    return forged


# --- refused -----------------------------------------------------------------------------------


def test_unsigned_commit_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """An unsigned commit on main is refused, and the fix is to amend it with -S."""
    protect(server, people)
    clone.write("app.py", "print('hi')\n")
    oid = clone.commit("unsigned")
    result = clone.push("main")
    assert_rejected(server, result, finding(oid, "no signature", tip_fix()), None)
    assert server.audit_records()[-1]["rules"][0]["reason"] == (
        "1 of 1 new commit(s) not signed as required"
    )


def test_signature_by_unknown_key_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """A valid signature by a key the keyring does not hold (mallory) does not count."""
    protect(server, people)
    oid = clone.commit("by mallory", sign=people.mallory)
    result = clone.push("main")
    assert not result.ok, result
    assert server.ref(MAIN) is None
    lines = unwrap(result.remote)
    assert lines[:2] == [REJECTED, f'{MAIN}: rule "{RULE}" failed for commit {oid[:10]}']
    found = lines[3]
    assert found.startswith("    found:    signed by unknown key ")
    assert people.mallory.fingerprint[-16:] in found
    assert lines[4] == f"    fix:      {tip_fix()}"


def test_key_in_keyring_folder_but_not_in_policy_is_rejected(
    people: People, server: Server, clone: Clone
) -> None:
    """A public key dropped into the keyring folder gives no trust unless `[[keys]]` lists it."""
    protect(server, people, extra_files={"mallory": people.mallory.export()})
    oid = clone.commit("by mallory", sign=people.mallory)
    result = clone.push("main")
    found = f"signed by key {people.mallory.fingerprint}, which the policy does not list"
    assert_rejected(server, result, finding(oid, found, tip_fix()), None)


def test_expired_key_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """A signature made in 2020 while the key was valid fails once the key has expired."""
    protect(server, people)
    oid = clone.commit("old work", sign=people.expired, at="2020-06-01T00:00:00Z")
    result = clone.push("main")
    found = f"{who(people.expired, 'old', 'contributor')}, but the key expired on {expiry_day(people)}"
    assert_rejected(server, result, finding(oid, found, tip_fix()), None)


def test_revoked_key_is_rejected(people: People, gpg: Gpg, server: Server, clone: Clone) -> None:
    """A key whose published export carries its revocation no longer signs for the policy."""
    revoked = gpg.gen_key("Rev Oked", "revoked@example.com")
    protect(
        server,
        people,
        extra_keys=key_toml(revoked, "rev", "contributor"),
        extra_files={"rev": revoked.export(revoked=True)},
    )
    oid = clone.commit("by a revoked key", sign=revoked)
    result = clone.push("main")
    found = f"{who(revoked, 'rev', 'contributor')}, but the key is revoked"
    assert_rejected(server, result, finding(oid, found, tip_fix()), None)


def test_key_past_policy_expiry_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """A key listed with `expires = 2020-01-01` is no longer honoured, however good the signature."""
    protect(server, people, bob_expires="2020-01-01")
    oid = clone.commit("by bob", sign=people.bob)
    result = clone.push("main")
    found = (
        f"{who(people.bob, 'bob', 'contributor')}, "
        "but the policy stopped honouring the key after 2020-01-01"
    )
    assert_rejected(server, result, finding(oid, found, tip_fix()), None)


@pytest.mark.parametrize("part", ["message", "tree"])
@pytest.mark.parametrize("signer", ["bob", "bob_ssh"])
def test_tampered_commit_is_rejected(
    people: People, server: Server, clone: Clone, part: str, signer: str
) -> None:
    """A commit edited after signing (its signature header kept) fails verification."""
    protect(server, people, extra_keys=key_toml(people.bob_ssh, "bob", "contributor"))
    clone.write("a.txt", "harmless\n")
    harmless_tree = clone.git("write-tree")
    clone.write("a.txt", "evil\n")
    clone.commit("pay alice 10\n", sign=getattr(people, signer))
    if part == "message":
        forged = tamper(clone, b"pay alice 10\n", b"pay mallory 9999\n")
    else:
        tree = clone.git("rev-parse", "HEAD^{tree}")
        forged = tamper(clone, f"tree {tree}".encode(), f"tree {harmless_tree}".encode())
    assert "SIGNATURE-----" in clone.git("cat-file", "commit", forged)
    result = clone.push("main")
    what = "bad SSH signature" if signer == "bob_ssh" else "bad signature"
    found = f"{what} (the signed content was changed)"
    assert_rejected(server, result, finding(forged, found, tip_fix()), None)


def test_unsigned_commit_in_the_middle_is_named(
    people: People, server: Server, clone: Clone
) -> None:
    """With three new commits, only the unsigned middle one is reported, with a rebase fix."""
    protect(server, people)
    base = clone.commit("base", sign=people.bob)
    assert clone.push("main").ok
    clone.commit("one", sign=people.bob)
    middle = clone.commit("two")
    clone.commit("three", sign=people.alice)
    result = clone.push("main")
    assert_rejected(server, result, finding(middle, "no signature", rebase_fix(base[:10])), base)
    assert server.audit_records()[-1]["rules"][0]["reason"] == (
        "1 of 3 new commit(s) not signed as required"
    )
    # the rebase command is copied whole: it stands on its own line, longer than the others
    assert result.remote == [
        REJECTED,
        f'{MAIN}: rule "{RULE}" failed for commit {middle[:10]}',
        "    required: every new commit signed by a policy key of tier",
        "              contributor or higher",
        "    found:    no signature",
        "    fix:      sign with a policy key of tier contributor or higher",
        "              (git config user.signingkey <key id>):",
        f"              git rebase --rebase-merges --exec 'git commit --amend --no-edit -S' {base[:10]},",
        "              then push again",
    ]


def test_unsigned_commit_under_signed_merge_is_rejected(
    people: People, server: Server, clone: Clone
) -> None:
    """A signed merge does not vouch for the unsigned commits it brings in."""
    protect(server, people)
    base = clone.commit("base", sign=people.bob)
    assert clone.push("main").ok
    clone.git("checkout", "-q", "-b", "feature")
    clone.write("feature.txt", "x\n")
    sneaked = clone.commit("unsigned feature work")
    clone.git("checkout", "-q", "main")
    clone.commit("signed main work", sign=people.bob)
    clone.git(*signing_config(people.alice), "merge", "-q", "--no-ff", "-S", "-m", "merge", "feature")
    merge = clone.rev()
    assert clone.git("rev-list", "--parents", "-n", "1", merge).count(" ") == 2
    result = clone.push("main")
    assert_rejected(server, result, finding(sneaked, "no signature", rebase_fix(base[:10])), base)
    assert server.audit_records()[-1]["rules"][0]["reason"] == (
        "1 of 3 new commit(s) not signed as required"
    )


def test_ssh_key_not_in_policy_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """An SSH signature by a key the policy does not list does not count."""
    protect(server, people)
    oid = clone.commit("by mallory over ssh", sign=people.mallory_ssh)
    result = clone.push("main")
    found = f"signed by SSH key {ssh_fingerprint(people.mallory_ssh)}, which the policy does not list"
    assert_rejected(server, result, finding(oid, found, tip_fix()), None)


def test_ssh_signature_outside_git_namespace_is_rejected(
    people: People, server: Server, clone: Clone
) -> None:
    """An SSH signature by a policy key counts only when made in namespace `git`."""
    protect(server, people)
    base = clone.commit("base", sign=people.bob)
    assert clone.push("main").ok
    oid = ssh_sign_commit(clone, people.alice_ssh, "file")
    result = clone.push("main")
    found = "bad SSH signature (the signed content was changed)"
    assert_rejected(server, result, finding(oid, found, tip_fix()), base)

    clone.git("reset", "-q", "--hard", base)
    good = ssh_sign_commit(clone, people.alice_ssh, "git")
    assert clone.git("cat-file", "commit", good).count("BEGIN SSH SIGNATURE") == 1
    rule = assert_accepted(server, clone.push("main"), good)
    assert [p["owner"] for p in rule["proofs"]] == ["dave"]


def test_tier_below_the_rule_is_rejected(people: People, server: Server, clone: Clone) -> None:
    """Under a maintainer rule, bob's (contributor) signature is refused and alice's accepted."""
    protect(server, people, rule_tier="maintainer")
    oid = clone.commit("by bob", sign=people.bob)
    result = clone.push("main")
    found = f"{who(people.bob, 'bob', 'contributor')}: tier contributor is below maintainer"
    assert_rejected(server, result, finding(oid, found, tip_fix("maintainer"), "maintainer"), None)

    clone.git(*signing_config(people.alice), "commit", "-q", "--amend", "--allow-empty", "--no-edit", "-S")
    assert clone.rev() != oid
    rule = assert_accepted(server, clone.push("main"), clone.rev())
    assert [(p["owner"], p["tier"]) for p in rule["proofs"]] == [("alice", "maintainer")]


# --- accepted ----------------------------------------------------------------------------------


def test_good_signature_is_accepted(people: People, server: Server, clone: Clone) -> None:
    """A commit signed by bob (contributor) moves main; the audit record names the proof."""
    protect(server, people)
    oid = clone.commit("by bob", sign=people.bob)
    rule = assert_accepted(server, clone.push("main", pusher="bob"), oid)
    assert rule["reason"] == "1 new commit(s) signed by policy keys"
    (proof,) = rule["proofs"]
    assert proof["kind"] == "commit-signature"
    assert (proof["fingerprint"], proof["owner"], proof["tier"]) == (
        people.bob.fingerprint,
        "bob",
        "contributor",
    )
    assert proof["object"] == oid
    assert server.audit_records()[-1]["pusher"] == "bob"


def test_subkey_signature_counts_for_its_primary(
    people: People, server: Server, clone: Clone
) -> None:
    """A signature made by a signing subkey counts for the listed primary key."""
    protect(server, people)
    oid = clone.commit("by subkey", sign=people.subkeyed)
    rule = assert_accepted(server, clone.push("main"), oid)
    (proof,) = rule["proofs"]
    assert proof["fingerprint"] == people.subkeyed.fingerprint
    assert proof["fingerprint"] != people.subkeyed.signing_fingerprint
    assert proof["owner"] == "subkeyed"


def test_ssh_signature_by_policy_key_is_accepted(
    people: People, server: Server, clone: Clone
) -> None:
    """An SSH-signed commit by a policy `ssh` key counts for that key's owner."""
    protect(server, people)
    oid = clone.commit("by dave over ssh", sign=people.alice_ssh)
    rule = assert_accepted(server, clone.push("main"), oid)
    (proof,) = rule["proofs"]
    assert (proof["owner"], proof["tier"], proof["signed_at"]) == ("dave", "contributor", None)
    assert proof["fingerprint"] == ssh_fingerprint(people.alice_ssh)


def test_branch_without_rule_accepts_unsigned(
    people: People, server: Server, clone: Clone
) -> None:
    """A branch no rule matches takes unsigned commits, and the push is still audited."""
    protect(server, people)
    clone.git("checkout", "-q", "-b", "feature")
    oid = clone.commit("unsigned feature work")
    result = clone.push("feature")
    assert result.ok, result
    assert result.remote == [
        "stepup-git: push accepted (1 update(s), 0 rule check(s) passed)",
        "stepup-git: note: refs/heads/feature: no rule applies",
    ]
    assert server.ref("refs/heads/feature") == oid
    (record,) = server.audit_records()
    assert (record["ref"], record["action"], record["decision"]) == (
        "refs/heads/feature",
        "create",
        "accept",
    )
    assert (record["new"], record["rules"]) == (oid, [])
