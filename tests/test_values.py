"""The value classes are frozen dataclasses: fields, asdict and replace work on them, and their JSON
forms (the audit log's and the verification cache's) keep their keys and order."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stepup_git.model import BreakGlass, Finding, Found, Proof, RuleResult, Update, Verdict
from stepup_git.policy import Policy, load
from stepup_git.signatures import Verified

EXAMPLE = Path(__file__).resolve().parent.parent / "policies" / "example.toml"
WHEN = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
PROOF = Proof("push-certificate", "D5DEAA84AC21D1DD5F6779E7307414120810B0A0", "alice", "maintainer", WHEN, "1a2b3c")
FINDING = Finding("refs/heads/main", "main-history-signed", "commit 1a2b3c4d5e", "a signature by a contributor key",
                  (Found("unsigned"),), "git commit --amend --no-edit -S, then push")


def verdict() -> Verdict:
    result = RuleResult("main-history-signed", False, "1 commit unsigned", (PROOF,), (FINDING,), 1)
    return Verdict(Update("1" * 40, "2" * 40, "refs/heads/main"), "update", (result,),
                   break_glass=BreakGlass(PROOF, "prod is down"))


def test_a_loaded_policy_is_a_frozen_dataclass() -> None:
    policy = load(EXAMPLE)
    as_dict = dataclasses.asdict(policy)
    assert [f.name for f in dataclasses.fields(Policy)] == list(as_dict)
    assert as_dict["rules"][0]["name"] == policy.rules[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.tiers = ()  # type: ignore[misc]
    copy = dataclasses.replace(policy, tiers=("a", "b"))
    assert copy.tiers == ("a", "b") and copy.rules == policy.rules and copy != policy
    assert hash(dataclasses.replace(policy)) == hash(policy)


def test_a_verdict_and_its_findings_convert_with_asdict() -> None:
    as_dict = dataclasses.asdict(verdict())
    assert as_dict["results"][0]["findings"][0] == dataclasses.asdict(FINDING)
    assert as_dict["break_glass"]["proof"]["owner"] == "alice"


def test_json_forms_keep_their_keys_and_order() -> None:
    assert PROOF.to_json() == {"kind": "push-certificate", "fingerprint": PROOF.fingerprint, "owner": "alice",
                               "tier": "maintainer", "signed_at": "2026-11-24T10:00:00Z", "object": "1a2b3c"}
    assert list(PROOF.to_json()) == ["kind", "fingerprint", "owner", "tier", "signed_at", "object"]
    assert list(FINDING.to_json()) == ["ref", "rule", "object", "required", "found", "fix"]
    assert FINDING.to_json()["found"] == [{"label": None, "proof": None, "text": "unsigned"}]
    assert list(verdict().break_glass.to_json()) == ["reason", *PROOF.to_json()]  # type: ignore[union-attr]
    verified = Verified(True, "openpgp", key_id="A" * 40, signing_key="B" * 40, created=WHEN, digest="SHA-512")
    assert verified.to_json() == {"ok": True, "kind": "openpgp", "key_id": "A" * 40, "signing_key": "B" * 40,
                                  "created": WHEN.timestamp(), "expires": None, "problem": None, "digest": "SHA-512"}
    assert Verified.from_json(verified.to_json()) == verified


def test_a_verification_by_an_ssh_certificate_round_trips() -> None:
    from stepup_git.signatures.sshcert import SshCertificate

    cert = SshCertificate(key="ssh-ed25519 AAAA", key_fingerprint="SHA256:k", serial=7, cert_type=1, key_id="alice@idp",
                          principals=("alice",), valid_after=WHEN, valid_before=WHEN, ca="ssh-ed25519 BBBB",
                          ca_fingerprint="SHA256:c", authority="corp-ssh-ca")
    verified = Verified(True, "ssh", key_id="SHA256:k", certificate=cert)
    assert verified.to_json()["certificate"]["principals"] == ["alice"]
    assert Verified.from_json(verified.to_json()) == verified
