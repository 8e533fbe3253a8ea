"""Signatures over weak digests (docs/semantics.md): SHA-1 signatures can be forged for chosen data, so a
signature whose digest is SHA-1 (or RIPEMD-160, or MD5) does not count unless the policy sets
`settings.allow_sha1 = true` (which never lets MD5 count).

Real gpg makes the weak signatures: Git signs through a `gpg.program` that adds `--digest-algo SHA1`;
the legitimate twin is the same change signed with SHA-512.
"""

from __future__ import annotations

from pathlib import Path

from support import run
from support.keys import Key, People, key_toml, signed_policy
from support.lines import unwrap
from support.repos import Clone, PushResult, Server, digest_signing_config, remote_lines

from stepup_git import policy as policy_mod

MAIN = "refs/heads/main"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"
RESIGN = (
    "sign with SHA-512: echo 'personal-digest-preferences SHA512' >> ~/.gnupg/gpg.conf "
    "(or gpg --digest-algo SHA512), then sign again"
)
ALLOW = "accepted only with settings.allow_sha1 = true"
STEP_UP = "release-step-up"


def who(key: Key, owner: str = "alice", tier: str = "maintainer") -> str:
    return f"{owner} ({tier}, key {key.fingerprint[-16:]})"


def weak(key: Key, digest: str = "SHA-1") -> str:
    """What a finding says of a policy key's signature over a weak digest."""
    return f"signed by {who(key)} with a {digest} digest, which can be forged ({ALLOW}); {RESIGN}"


def commit_with(clone: Clone, key: Key, digest: str, message: str, *, amend: bool = False) -> str:
    """Commit (or re-sign HEAD with `amend`), signed by `key` over a `digest` digest."""
    clone.git("add", "-A")
    args = ["--allow-empty", *(["--amend", "--no-edit"] if amend else ["-m", message])]
    clone.git(*digest_signing_config(key, digest), "commit", "-q", "-S", *args)
    return clone.rev()


def push_signed_with(clone: Clone, key: Key, digest: str, *refspecs: str) -> PushResult:
    """`git push --signed` whose certificate `key` signs over a `digest` digest."""
    proc = run(["git", *digest_signing_config(key, digest), "push", "--signed", "origin", *refspecs],
               cwd=clone.path, check=False)
    return PushResult(proc.returncode, proc.stdout, proc.stderr, remote_lines(proc.stderr))


def packet_digest(clone: Clone, oid: str) -> int:
    """The hash algorithm id gpg reads from a commit's signature packet."""
    raw = run(["git", "cat-file", "commit", oid], cwd=clone.path).stdout
    header = raw.split("\n\n", 1)[0]
    block = header.split("gpgsig ", 1)[1].replace("\n ", "\n").split("\n-----END PGP SIGNATURE-----")[0]
    armored = block + "\n-----END PGP SIGNATURE-----\n"
    listing = run(["gpg", "--batch", "--list-packets"], input=armored).stdout
    return int(listing.split("digest algo ")[1].split(",")[0])


def install(server: Server, people: People, text: str) -> None:
    server.write_policy(text, {"alice.asc": people.alice.export()})
    server.install()


def signed_finding(oid: str, found: str) -> list[str]:
    """A finding's lines as :func:`unwrap` joins them."""
    return [
        f'{MAIN}: rule "signed" failed for commit {oid[:10]}',
        "    required: every new commit signed by a policy key of tier maintainer or higher",
        f"    found:    {found}",
        "    fix:      sign with a policy key of tier maintainer or higher (git config user.signingkey "
        "<key id>): git commit --amend --no-edit -S, then push again",
    ]


def test_sha1_signed_tip_is_refused_and_its_sha512_twin_accepted(
    people: People, server: Server, clone: Clone
) -> None:
    install(server, people, signed_policy(people.alice))
    clone.write("app.txt", "one\n")
    sha1 = commit_with(clone, people.alice, "SHA1", "Signed with SHA-1")
    assert packet_digest(clone, sha1) == 2
    result = clone.push("HEAD:main")
    assert not result.ok
    assert unwrap(result.remote) == [REJECTED, *signed_finding(sha1, weak(people.alice))]
    assert server.ref(MAIN) is None
    record = server.audit_records()[-1]
    assert (record["new"], record["decision"]) == (sha1, "reject")

    sha512 = commit_with(clone, people.alice, "SHA512", "", amend=True)
    assert packet_digest(clone, sha512) == 10 and sha512 != sha1
    result = clone.push("HEAD:main")
    assert result.ok, result
    assert result.remote == [ACCEPTED]
    assert server.ref(MAIN) == sha512
    (rule,) = server.audit_records()[-1]["rules"]
    assert [(p["kind"], p["owner"]) for p in rule["proofs"]] == [("commit-signature", "alice")]


def test_sha256_signed_commit_is_accepted(people: People, server: Server, clone: Clone) -> None:
    install(server, people, signed_policy(people.alice))
    oid = commit_with(clone, people.alice, "SHA256", "Signed with SHA-256")
    assert packet_digest(clone, oid) == 8
    result = clone.push("HEAD:main")
    assert result.ok, result
    assert server.ref(MAIN) == oid


def test_ripemd160_and_md5_signatures_are_refused(people: People, server: Server, clone: Clone) -> None:
    """RIPEMD-160 counts as weak as SHA-1; MD5 is never accepted (gpg itself rejects it)."""
    install(server, people, signed_policy(people.alice))
    ripemd = commit_with(clone, people.alice, "RIPEMD160", "Signed with RIPEMD-160")
    result = clone.push("HEAD:main")
    assert unwrap(result.remote) == [REJECTED, *signed_finding(ripemd, weak(people.alice, "RIPEMD-160"))]
    assert server.ref(MAIN) is None

    md5 = commit_with(clone, people.alice, "MD5", "", amend=True)
    result = clone.push("HEAD:main")
    assert unwrap(result.remote) == [
        REJECTED,
        *signed_finding(md5, f"the signature uses the MD5 digest, which is never accepted; {RESIGN}"),
    ]
    assert server.ref(MAIN) is None


def test_allow_sha1_lets_the_sha1_signature_count(people: People, server: Server, clone: Clone) -> None:
    """With `settings.allow_sha1 = true` (the policy loaded from its file, then from its snapshot on the
    next push) SHA-1 signatures count; MD5 still does not."""
    install(server, people, signed_policy(people.alice, settings="allow_sha1 = true"))
    first = commit_with(clone, people.alice, "SHA1", "Signed with SHA-1")
    result = clone.push("HEAD:main")
    assert result.ok, result
    assert result.remote == [ACCEPTED]
    assert server.ref(MAIN) == first
    (rule,) = server.audit_records()[-1]["rules"]
    assert [(p["kind"], p["owner"], p["fingerprint"]) for p in rule["proofs"]] == [
        ("commit-signature", "alice", people.alice.fingerprint)
    ]

    second = commit_with(clone, people.alice, "SHA1", "Signed with SHA-1 again")
    result = clone.push("HEAD:main")
    assert result.ok, result
    assert server.ref(MAIN) == second

    md5 = commit_with(clone, people.alice, "MD5", "Signed with MD5")
    result = clone.push("HEAD:main")
    assert unwrap(result.remote) == [
        REJECTED,
        *signed_finding(md5, f"the signature uses the MD5 digest, which is never accepted; {RESIGN}"),
    ]
    assert server.ref(MAIN) == second


def step_up_policy(people: People, settings: str = "") -> str:
    head = "version = 1\n" + (f"[settings]\n{settings}\n" if settings else "")
    return (
        head + key_toml(people.alice, "alice", "maintainer")
        + f'[[rules]]\nname = "{STEP_UP}"\nrefs = ["{MAIN}"]\nrequire = "step-up"\ntier = "maintainer"\n'
    )


def seeded(server: Server, clone: Clone, people: People, policy: str) -> str:
    clone.write("README", "app\n")
    seed = clone.commit("Seed")
    assert clone.push("HEAD:main").ok
    install(server, people, policy)
    return seed


def test_sha1_push_certificate_and_tip_are_refused(people: People, server: Server, clone: Clone) -> None:
    """A push certificate and a tip signature over SHA-1 prove no step-up; over SHA-512 they do."""
    seed = seeded(server, clone, people, step_up_policy(people))
    tip = commit_with(clone, people.alice, "SHA1", "Signed with SHA-1")
    result = push_signed_with(clone, people.alice, "SHA1", "HEAD:main")
    assert not result.ok
    assert server.ref(MAIN) == seed
    aged = [line.replace(weak(people.alice), "WEAK") for line in unwrap(result.remote)]
    assert aged == [
        REJECTED,
        f'{MAIN}: rule "{STEP_UP}" failed for commit {tip[:10]}',
        "    required: a fresh proof of tier maintainer or higher: a signed push certificate for this "
        "update (git push --signed) or a signature on the pushed tip made within the last 15m "
        f"(update of {MAIN})",
        "    found:    push certificate: WEAK",
        f"              tip commit {tip[:10]}: WEAK",
        "    fix:      sign the push with a key of tier maintainer or higher: git config user.signingkey "
        "<key id>, then git push --signed; or re-sign the tip now: git commit --amend --no-edit -S, "
        "then push",
    ]
    record = server.audit_records()[-1]
    assert record["decision"] == "reject"
    assert not (server.path / "stepup" / "certs" / f"{record['push_cert']}.txt").exists()

    result = push_signed_with(clone, people.alice, "SHA512", "HEAD:main")
    assert result.ok, result
    assert result.remote == [ACCEPTED]
    assert server.ref(MAIN) == tip
    (rule,) = server.audit_records()[-1]["rules"]
    assert [(p["kind"], p["owner"]) for p in rule["proofs"]] == [("push-certificate", "alice")]


def test_sha1_push_certificate_counts_with_allow_sha1(people: People, server: Server, clone: Clone) -> None:
    seed = seeded(server, clone, people, step_up_policy(people, "allow_sha1 = true"))
    tip = clone.commit("Unsigned")
    result = push_signed_with(clone, people.alice, "SHA1", "HEAD:main")
    assert result.ok, result
    assert result.remote == [ACCEPTED]
    assert server.ref(MAIN) == tip != seed
    (rule,) = server.audit_records()[-1]["rules"]
    assert [(p["kind"], p["owner"]) for p in rule["proofs"]] == [("push-certificate", "alice")]


def test_sha1_signed_tag_is_refused(people: People, server: Server, clone: Clone) -> None:
    text = (
        "version = 1\n" + key_toml(people.alice, "alice", "maintainer")
        + '[[rules]]\nname = "tags"\nrefs = ["refs/tags/v*"]\nrequire = "signed-tag"\ntier = "maintainer"\n'
    )
    clone.write("README", "app\n")
    clone.commit("Seed")
    assert clone.push("HEAD:main").ok
    install(server, people, text)
    clone.git(*digest_signing_config(people.alice, "SHA1"), "tag", "-s", "-m", "v1", "v1.0")
    tag = clone.rev("refs/tags/v1.0")
    result = clone.push("refs/tags/v1.0")
    assert not result.ok
    assert server.ref("refs/tags/v1.0") is None
    assert unwrap(result.remote)[1:4] == [
        f'refs/tags/v1.0: rule "tags" failed for tag v1.0 ({tag[:10]})',
        "    required: an annotated tag signed by a policy key of tier maintainer or higher",
        f"    found:    {weak(people.alice)}",
    ]

    clone.git(*digest_signing_config(people.alice, "SHA512"), "tag", "-f", "-s", "-m", "v1", "v1.0")
    result = clone.push("refs/tags/v1.0")
    assert result.ok, result
    assert server.ref("refs/tags/v1.0") == clone.rev("refs/tags/v1.0")


def test_allow_sha1_must_be_true_or_false(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('version = 1\n[settings]\nmode = "enforce"\nallow_sha1 = "yes"\n')
    policy, problems, _ = policy_mod.load_with_warnings(path)
    assert policy is None
    assert problems == [f"{path}:4: 'allow_sha1' must be true or false, not a string"]
    path.write_text("version = 1\n")
    default = policy_mod.load(path)
    assert default.settings.allow_sha1 is False
