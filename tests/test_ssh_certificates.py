"""Step-up through the identity provider (docs/semantics.md): short-lived SSH user certificates from a
policy `[[authorities]]` CA as fresh proofs, through real pushes.

`ssh-keygen -s` is the CA; Git signs commits and push certificates with the `-cert.pub` (`gpg.format =
ssh`), which embeds the certificate in the signature. The hook judges the certificate at the time of the
push, never at the commit's date: `git verify-commit` would accept a commit whose date lies inside the
certificate's window long after the certificate expired. Each refusal has its legitimate twin.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from support import ago, run
from support.cli import stepup
from support.keys import People, key_toml
from support.lines import unwrap
from support.repos import Clone, PushResult, Server
from support.sshca import Authority, CertifiedKey, make_authority

RULE = "migrations-step-up"
MAIN = "refs/heads/main"
MIGRATION = "db/migrations/0001.sql"
WHY = f"update of {MAIN} changes {MIGRATION} (db/migrations/**)"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"
NO_CERT = "push certificate: none (the push was not made with git push --signed)"
AGE = r"\d+[smhd](?: \d+[hm])?"
CA = "corp-ssh-ca"


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return make_authority(tmp_path / "ca")


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "user-keys"


def policy(ca: Authority, *, tier: str = "maintainer", max_validity: str | None = None, signers: int = 1,
           bind: bool = False, keys: str = "", settings: str = "") -> str:
    """One authority (corp-ssh-ca, maintainer); db/migrations/** needs a fresh proof within 10m."""
    text = 'version = 1\n\n[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'
    if settings:
        text += f"[settings]\n{settings}\n\n"
    text += f'[[authorities]]\nname = "{CA}"\nssh = "{ca.public_line}"\ntier = "maintainer"\n'
    if max_validity is not None:
        text += f'max_validity = "{max_validity}"\n'
    text += "\n" + keys
    text += (f'\n[[rules]]\nname = "{RULE}"\npaths = ["db/migrations/**"]\nrequire = "step-up"\n'
             f'tier = "{tier}"\nfresh_within = "10m"\nsigners = {signers}\n')
    if bind:
        text += "bind_pusher = true\n"
    return text


def protect(server: Server, clone: Clone, text: str, keys: dict[str, str] | None = None) -> str:
    """Push an ordinary first commit before the hook exists, then install it with the policy ``text``."""
    clone.write("README.md", "app\n")
    base = clone.commit("base")
    assert clone.push("main").ok
    server.write_policy(text, keys)
    server.install()
    return base


def add_migration(clone: Clone, sign: CertifiedKey | None = None, at: Any = None) -> str:
    clone.write(MIGRATION, "CREATE TABLE users (id integer);\n")
    return clone.commit("add users table", sign=sign, at=at)


def found_parts(result: PushResult) -> list[str]:
    """The `found:` parts of a push refused for one rule on the tip commit, a line each as
    :func:`unwrap` joins them (the wrapping depends on ages and paths)."""
    assert not result.ok, result
    lines = unwrap(result.remote)
    assert lines[0] == REJECTED, result
    assert lines[1].startswith(f'{MAIN}: rule "{RULE}" failed for commit '), result
    assert lines[3].startswith("    found:    "), result
    assert lines[-1].startswith("    fix:      "), result
    assert all(line.startswith(" " * 14) for line in lines[4:-1]), result
    return [line[14:] for line in lines[3:-1]]


def assert_refused(server: Server, result: PushResult, base: str, found: list[str]) -> None:
    """Refused, the server's main unmoved, and the `found:` parts matching ``found`` ({AGE}: any age)."""
    parts = found_parts(result)
    assert len(parts) == len(found), parts
    for text, want in zip(parts, found, strict=True):
        assert re.fullmatch(re.escape(want).replace(re.escape("{AGE}"), AGE), text), text
    assert server.ref(MAIN) == base
    assert server.audit_records()[-1]["decision"] == "reject"


def accepted_proofs(server: Server, result: PushResult, oid: str) -> list[dict[str, Any]]:
    assert result.ok, result
    assert result.remote == [ACCEPTED], result
    assert server.ref(MAIN) == oid
    record = server.audit_records()[-1]
    assert record["decision"] == "accept"
    (rule,) = record["rules"]
    assert rule["result"] == "pass"
    proofs: list[dict[str, Any]] = rule["proofs"]
    return proofs


def cert_text(cert: CertifiedKey, key_id: str = "alice@idp", serial: int = 7) -> str:
    return f'SSH certificate "{key_id}" (serial {serial}) from {CA}'


# --- accepted: a fresh certificate ---------------------------------------------------------------


def test_a_fresh_ten_minute_certificate_on_the_tip_is_a_step_up(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path) -> None:
    """Re-login, then push within ten minutes: the certificate's start is the time the signature lacks.
    The audit record names the authority, key id, serial, principal and validity window."""
    protect(server, clone, policy(ca))
    cert = ca.certify(keys_dir, validity="-1m:+10m")
    oid = add_migration(clone, sign=cert)
    proofs = accepted_proofs(server, clone.push("main", pusher="alice"), oid)
    record = server.audit_records()[-1]
    assert record["rules"][0]["reason"] == f"step-up proven by alice (tip-signature, ssh-certificate from {CA}): {WHY}"
    after, before = cert.window()
    assert proofs == [{"kind": "ssh-certificate", "via": "tip-signature", "fingerprint": cert.key_fingerprint,
                       "owner": "alice", "tier": "maintainer", "signed_at": None, "object": oid,
                       "authority": CA, "key_id": "alice@idp", "serial": 7, "principal": "alice",
                       "valid_after": after, "valid_before": before}]
    shown = stepup("audit", "show", "--repo", server.path)
    assert shown.returncode == 0, shown
    lines = shown.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "via ssh-certificate" in line)
    assert lines[at].split()[:2] == ["key", "alice"]
    assert lines[at + 1] == (f"            certificate 'alice@idp' serial 7 from {CA} for principal alice, "
                             f"valid {after} to {before}, through tip-signature")


def test_an_ssh_signed_push_certificate_with_a_fresh_certificate_is_a_step_up(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path) -> None:
    """The push certificate, signed with the certified key, proves an unsigned tip."""
    protect(server, clone, policy(ca))
    cert = ca.certify(keys_dir)
    oid = add_migration(clone)
    (proof,) = accepted_proofs(server, clone.push("main", signed=cert, pusher="alice"), oid)
    assert (proof["kind"], proof["via"], proof["owner"], proof["authority"], proof["serial"]) == (
        "ssh-certificate", "push-certificate", "alice", CA, 7)


def test_a_push_certificate_signed_with_an_old_login_is_no_step_up(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path) -> None:
    """The nonce makes the signature fresh, not the login: a certificate issued two hours ago is no
    step-up through a push certificate either (twin of the test above)."""
    base = protect(server, clone, policy(ca, max_validity="3h"))
    cert = ca.certify(keys_dir, validity="-2h:+30m")
    add_migration(clone)
    result = clone.push("main", signed=cert, pusher="alice")
    oid = clone.rev()
    assert_refused(server, result, base,
                   [f"push certificate: signed by alice (maintainer, {cert_text(cert)}), but the certificate "
                    f"became valid {{AGE}} ago, longer ago than 10m (not fresh: no recent login); get a fresh "
                    f"certificate from {CA} for principal alice", f"tip commit {oid[:10]}: no signature"])


# --- refused: what makes a certificate no proof ----------------------------------------------------


def test_a_certificate_valid_for_a_week_is_refused(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path) -> None:
    base = protect(server, clone, policy(ca))
    cert = ca.certify(keys_dir, validity="-1m:+1w")
    oid = add_migration(clone, sign=cert)
    assert_refused(server, clone.push("main", pusher="alice"), base,
                   [NO_CERT, f"tip commit {oid[:10]}: signed with {cert_text(cert)}, valid for 7d, longer than "
                   f"{CA}'s max_validity of 1h (valid too long: no short-lived proof); get a certificate valid "
                   f"for at most 1h from {CA} for principal alice"])


def test_a_certificate_issued_two_hours_ago_and_still_valid_is_not_fresh(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path) -> None:
    base = protect(server, clone, policy(ca, max_validity="3h"))
    cert = ca.certify(keys_dir, validity="-2h:+30m")
    oid = add_migration(clone, sign=cert)
    assert_refused(server, clone.push("main", pusher="alice"), base,
                   [NO_CERT, f"tip commit {oid[:10]}: signed by alice (maintainer, {cert_text(cert)}), but the "
                   f"certificate became valid 2h ago, longer ago than 10m (not fresh: no recent login); get a "
                   f"fresh certificate from {CA} for principal alice"])


@pytest.mark.parametrize("committed", ["now", "inside the window"])
def test_an_expired_certificate_is_refused_whatever_the_commit_date(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path, committed: str) -> None:
    """The certificate expired five minutes ago. Dated inside its window, the commit passes
    `git verify-commit` (which checks at the committer date, chosen by the pusher); the hook checks
    at the time of the push."""
    base = protect(server, clone, policy(ca))
    cert = ca.certify(keys_dir, validity="-15m:-5m")
    oid = add_migration(clone, sign=cert, at=ago(minutes=10) if committed != "now" else None)
    if committed != "now":
        allowed = keys_dir / "allowed_signers"
        allowed.write_text(f'alice cert-authority,namespaces="git" {ca.public_line}\n')
        check = run(["git", "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", oid], cwd=clone.path,
                    check=False)
        assert check.returncode == 0, check.stderr
    _, before = cert.window()
    assert_refused(server, clone.push("main", pusher="alice"), base,
                   [NO_CERT, f"tip commit {oid[:10]}: signed with {cert_text(cert)}, which expired {{AGE}} ago "
                   f"(at {before}); get a fresh certificate from {CA} for principal alice"])


def test_a_certificate_from_an_unknown_ca_is_refused(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path, tmp_path: Path) -> None:
    base = protect(server, clone, policy(ca))
    rogue = make_authority(tmp_path / "rogue", "rogue-ca")
    cert = rogue.certify(keys_dir)
    oid = add_migration(clone, sign=cert)
    assert_refused(server, clone.push("main", pusher="alice"), base,
                   [NO_CERT, f'tip commit {oid[:10]}: signed with SSH certificate "alice@idp" (serial 7) from an '
                    f"unknown CA {rogue.fingerprint}, which is no policy authority; get a certificate from {CA}"])


def test_a_host_certificate_is_refused(server: Server, clone: Clone, ca: Authority, keys_dir: Path) -> None:
    base = protect(server, clone, policy(ca))
    cert = ca.certify(keys_dir, host=True)
    oid = add_migration(clone, sign=cert)
    assert_refused(server, clone.push("main", pusher="alice"), base,
                   [NO_CERT, f"tip commit {oid[:10]}: signed with {cert_text(cert)}, a host certificate, not a "
                   f"user certificate; get a user certificate from {CA} for principal alice"])


@pytest.mark.parametrize("pusher", ["alice", "bob"])
def test_bind_pusher_compares_the_principal_with_the_pusher(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path, pusher: str) -> None:
    """bob's certificate proves bob's push, not alice's."""
    base = protect(server, clone, policy(ca, bind=True))
    cert = ca.certify(keys_dir, principals="bob", key_id="bob@idp")
    oid = add_migration(clone, sign=cert)
    result = clone.push("main", pusher=pusher)
    if pusher == "bob":
        (proof,) = accepted_proofs(server, result, oid)
        assert (proof["owner"], proof["principal"]) == ("bob", "bob")
        return
    assert_refused(server, result, base,
                   [NO_CERT, f"tip commit {oid[:10]}: signed by bob (maintainer, {cert_text(cert, 'bob@idp')}), "
                   "certificate valid since {AGE} ago",
                   f'pusher: alice, but the proof is bob\'s (bob is the principal of SSH certificate "bob@idp" '
                   f"from {CA}); get a fresh certificate from {CA} for principal alice"])


@pytest.mark.parametrize("pusher", ["alice", "carol"])
def test_a_certificate_naming_several_principals_counts_for_the_pusher_among_them(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path, pusher: str) -> None:
    base = protect(server, clone, policy(ca))
    cert = ca.certify(keys_dir, principals="alice,bob", key_id="team@idp")
    oid = add_migration(clone, sign=cert)
    result = clone.push("main", pusher=pusher)
    if pusher == "alice":
        (proof,) = accepted_proofs(server, result, oid)
        assert (proof["owner"], proof["principal"]) == ("alice", "alice")
        return
    assert_refused(server, result, base,
                   [NO_CERT, f"tip commit {oid[:10]}: signed with {cert_text(cert, 'team@idp')}, which names the "
                   f"principals alice, bob and the pusher carol is not among them; get a certificate from {CA} "
                   "for principal carol naming one principal"])


@pytest.mark.parametrize("serial", [7, 8])
def test_a_certificate_revoked_in_the_krl_is_refused(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path, serial: int) -> None:
    """settings.ssh_revoked names an OpenSSH KRL revoking serial 7; serial 8 is not revoked."""
    krl = server.root / "revoked.krl"
    ca.revoke(krl, serial=7)
    base = protect(server, clone, policy(ca, settings='ssh_revoked = "revoked.krl"'))
    cert = ca.certify(keys_dir, serial=serial)
    oid = add_migration(clone, sign=cert)
    result = clone.push("main", pusher="alice")
    if serial == 8:
        (proof,) = accepted_proofs(server, result, oid)
        assert proof["serial"] == 8
        return
    assert_refused(server, result, base,
                   [NO_CERT, f"tip commit {oid[:10]}: signed with {cert_text(cert)}, but the certificate or its "
                   f"key is revoked (in the KRL {krl}); get a new certificate from {CA} for principal alice"])


def test_a_certified_key_listed_in_a_file_of_revoked_keys_is_refused(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path) -> None:
    cert = ca.certify(keys_dir)
    revoked = server.root / "revoked-keys"
    revoked.write_text(f"# lost laptop\n{cert.public_line}\n")
    base = protect(server, clone, policy(ca, settings='ssh_revoked = "revoked-keys"'))
    oid = add_migration(clone, sign=cert)
    assert_refused(server, clone.push("main", pusher="alice"), base,
                   [NO_CERT, f"tip commit {oid[:10]}: signed with {cert_text(cert)}, but its key is revoked "
                   f"(listed in {revoked}); get a new certificate from {CA} for principal alice"])


# --- tiers and people --------------------------------------------------------------------------------


@pytest.mark.parametrize("principal", ["alice", "rel"])
def test_a_keys_entry_gives_one_persons_certificates_another_tier(
        server: Server, clone: Clone, ca: Authority, keys_dir: Path, principal: str) -> None:
    """The authority's certificates are maintainer; [[keys]] makes rel's release."""
    entry = f'[[keys]]\nauthority = "{CA}"\nowner = "rel"\ntier = "release"\n'
    base = protect(server, clone, policy(ca, tier="release", keys=entry))
    cert = ca.certify(keys_dir, principals=principal, key_id=f"{principal}@idp")
    oid = add_migration(clone, sign=cert)
    result = clone.push("main", pusher=principal)
    if principal == "rel":
        (proof,) = accepted_proofs(server, result, oid)
        assert (proof["owner"], proof["tier"]) == ("rel", "release")
        return
    assert_refused(server, result, base,
                   [NO_CERT, f"tip commit {oid[:10]}: signed by alice (maintainer, "
                   f"{cert_text(cert, 'alice@idp')}), certificate valid since {{AGE}} ago; tier maintainer is "
                   "below release"])


@pytest.mark.parametrize("openpgp_owner", ["bob", "alice"])
def test_two_people_one_with_a_certificate_one_with_an_openpgp_key(
        people: People, server: Server, clone: Clone, ca: Authority, keys_dir: Path, openpgp_owner: str) -> None:
    """signers = 2: bob signs the tip with OpenPGP, alice signs the push with her certificate. The same
    person with both (alice's OpenPGP key and alice's certificate) still counts once."""
    key = people.bob if openpgp_owner == "bob" else people.alice
    base = protect(server, clone, policy(ca, signers=2, keys=key_toml(key, openpgp_owner, "maintainer")),
                   {f"{openpgp_owner}.asc": key.export()})
    cert = ca.certify(keys_dir)
    oid = add_migration(clone, sign=key)  # type: ignore[arg-type]
    result = clone.push("main", signed=cert, pusher="alice")
    if openpgp_owner == "bob":
        proofs = accepted_proofs(server, result, oid)
        assert [(p["kind"], p.get("via"), p["owner"]) for p in proofs] == [
            ("ssh-certificate", "push-certificate", "alice"), ("tip-signature", None, "bob")]
        return
    cert_part, tip_part, count = found_parts(result)
    assert cert_part.startswith("push certificate: signed by alice (maintainer, "), cert_part
    assert tip_part.endswith("; alice is counted once already (one person counts once, whatever keys they hold)")
    assert count == "signers: 1 of 2 counted (alice)"
    assert server.ref(MAIN) == base


# --- the policy ------------------------------------------------------------------------------------------


def test_policy_errors_name_their_lines(tmp_path: Path, ca: Authority) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        "version = 1\n"                                   # 1
        "[[authorities]]\n"                               # 2
        'name = "corp"\n'                                 # 3
        'ssh = "ssh-ed25519 not-base64!"\n'               # 4
        'tier = "maintainer"\n'                           # 5
        "[[authorities]]\n"                               # 6
        'name = "corp"\n'                                 # 7
        f'ssh = "{ca.public_line}"\n'                     # 8
        'tier = "maintainer"\n'                           # 9
        'max_validity = "ten minutes"\n'                  # 10
        "[[keys]]\n"                                      # 11
        'authority = "nobody"\n'                          # 12
        'owner = "rel"\n'                                 # 13
        'tier = "release"\n'                              # 14
    )
    result = stepup("policy", "check", path)
    assert result.returncode == 1, result
    assert result.stderr.splitlines()[:4] == [
        f"{path}:4: 'ssh': not an SSH public key (the CA's, e.g. the ca.pub that signs certificates): malformed "
        "SSH public key: the key data is not base64",
        f"{path}:7: duplicate authority name 'corp' (first at line 2)",
        f"{path}:10: 'max_validity': bad duration 'ten minutes': use whole numbers with s, m, h or d, e.g. \"15m\"",
        f"{path}:12: unknown authority 'nobody'; the [[authorities]] are: corp",
    ], result.stderr


def test_policy_check_warns_about_an_authority_trusting_day_long_certificates(tmp_path: Path, ca: Authority) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(policy(ca, max_validity="2d"))
    (tmp_path / "keys").mkdir()
    result = stepup("policy", "check", path)
    assert result.returncode == 0, result
    line = next(i for i, text in enumerate(path.read_text().splitlines(), start=1) if text == "[[authorities]]")
    assert f"{path}:{line}: warning: authority '{CA}' accepts certificates valid for up to 2d: such a certificate " \
           "is no short-lived proof of a recent login; issue certificates for minutes or hours and lower " \
           "max_validity to match" in result.stdout + result.stderr, result


def test_a_certificate_is_not_a_keys_entry(tmp_path: Path, ca: Authority, keys_dir: Path) -> None:
    """A CA key must be a plain public key: a certificate line is refused where the CA's key goes."""
    cert = ca.certify(keys_dir)
    path = tmp_path / "policy.toml"
    path.write_text(policy(ca).replace(ca.public_line, cert.cert_path.read_text().strip()))
    result = stepup("policy", "check", path)
    assert result.returncode == 1, result
    assert f"{path}:8: 'ssh': not an SSH public key but a certificate; give the CA's own public key (its ca.pub)" \
        in result.stderr.splitlines(), result.stderr


def test_parsed_certificates_agree_with_ssh_keygen(ca: Authority, keys_dir: Path, tmp_path: Path) -> None:
    """The fields stepup-git reads from a certificate are those `ssh-keygen -L` lists, for each key type."""
    import base64

    from stepup_git.signatures.sshcert import parse_certificate

    for kind in ("ed25519", "ecdsa", "rsa"):
        user = tmp_path / f"id_{kind}"
        run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", user])
        run(["ssh-keygen", "-q", "-s", ca.key.private_path, "-I", f"{kind}@idp", "-n", "alice,bob",
             "-V", "20300101000000:20300101001000", "-z", "42", f"{user}.pub"])
        line = Path(f"{user}-cert.pub").read_text().split()
        cert = parse_certificate(base64.b64decode(line[1]))
        listing = run(["ssh-keygen", "-L", "-f", f"{user}-cert.pub"]).stdout
        fingerprint = run(["ssh-keygen", "-l", "-f", f"{user}.pub"]).stdout.split()[1]
        assert (cert.key_id, cert.serial, cert.principals, cert.kind) == (f"{kind}@idp", 42, ("alice", "bob"), "user")
        assert f"Key ID: \"{kind}@idp\"" in listing and fingerprint in listing
        assert cert.key_fingerprint == fingerprint
        assert cert.ca_fingerprint == ca.fingerprint
        assert (cert.valid_after.isoformat(), cert.valid_before and cert.valid_before.isoformat()) == (
            "2030-01-01T00:00:00+00:00", "2030-01-01T00:10:00+00:00")
        assert cert.key == Path(f"{user}.pub").read_text().split()[0] + " " + Path(f"{user}.pub").read_text().split()[1]


def test_a_policy_snapshot_keeps_authorities_and_the_revocation_list(tmp_path: Path, ca: Authority) -> None:
    from stepup_git.policy import load

    path = tmp_path / "policy.toml"
    entry = f'[[keys]]\nauthority = "{CA}"\nowner = "rel"\ntier = "release"\n'
    path.write_text(policy(ca, max_validity="30m", keys=entry, settings='ssh_revoked = "revoked.krl"'))
    fresh = load(path, cache_dir=tmp_path / "cache")
    thawed = load(path, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir())
    assert thawed == fresh
    (authority,) = thawed.authorities
    assert (authority.name, authority.tier, authority.max_validity.total_seconds()) == (CA, "maintainer", 1800)
    assert thawed.settings.ssh_revoked == tmp_path / "revoked.krl"
    assert thawed.certified(authority, "rel") == fresh.keys[0]
    assert thawed.key(fresh.keys[0].id) is None  # an authority's entry is no key of its own
