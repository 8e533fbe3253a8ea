"""Who proves a step-up rule (docs/semantics.md, "Rules"): the proofs offered for an update, counted once
per person whatever keys they hold, bound to the pusher when the rule says so; and what was found, a part
per proof under its label, each said once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..model import Certified, Found, Proof
from ..policy import Policy, Rule
from ..signatures import Assessment

NO_CERTIFICATE = "none (the push was not made with git push --signed)"


@dataclass(frozen=True, slots=True)
class Offered:
    """A proof offered for a rule: its kind, its label ("push certificate", "tip commit 1a2b3c4d5e"),
    what was found about it, and, when it proves the update, its signer and the object it signed."""

    kind: str  # "push-certificate", "tip-signature"
    label: str
    text: str
    assessment: Assessment | None = None
    object: str | None = None


@dataclass(frozen=True, slots=True)
class Count:
    """The proofs that counted, one per person; what was found; whether the rule is met."""

    proofs: tuple[Proof, ...]
    found: tuple[Found, ...]
    met: bool


def count(offered: Sequence[Offered], rule: Rule, policy: Policy, pusher: str | None) -> Count:
    """Count ``offered`` for ``rule``: a proof counts when its key has the rule's tier and its owner has
    not counted already; with ``bind_pusher`` the pusher must be one of those counted."""
    assert rule.tier is not None
    counted: dict[str, Proof] = {}
    found: list[Found] = []
    for o in offered:
        text = o.text
        if o.assessment is not None:
            key = o.assessment.key
            assert key is not None  # a proof's signer is a policy key
            if not policy.satisfies(key, rule.tier):
                text += f"; tier {key.tier} is below {rule.tier}"
            elif key.owner in counted:
                text += f"; {key.owner} is counted once already (one person counts once, whatever keys they hold)"
            else:
                counted[key.owner] = proof_of(o.kind, o.assessment, o.object)
        found.append(Found(text, o.label, o.kind))
    proofs = tuple(counted.values())
    if counted and rule.signers > 1:
        found.append(Found(f"{len(counted)} of {rule.signers} counted ({', '.join(counted)})", "signers"))
    bound = True
    if rule.bind_pusher and counted:
        whose = _owners(list(counted))
        if pusher is None:
            bound = False
            found.append(Found(f"unknown, so {whose} proof cannot be bound to the pusher", "pusher"))
        elif pusher not in counted:
            bound = False
            found.append(Found(f"{pusher}, but the {'proof is' if len(counted) == 1 else 'proofs are'} {whose}"
                               + _principal_hint(proofs, pusher), "pusher"))
    return Count(proofs, tuple(found), len(counted) >= rule.signers and bound)


def proof_of(kind: str, a: Assessment, obj: str | None) -> Proof:
    """The proof a valid signature of a policy key gives, by an SSH certificate when it was made with one."""
    key = a.key
    assert key is not None
    cert = a.certificate
    if cert is None:
        return Proof(kind, key.id, key.owner, key.tier, a.signed_at, obj)
    assert cert.authority is not None and cert.valid_before is not None  # the verifier refuses others
    certified = Certified(cert.authority, cert.key_id, cert.serial, key.owner, cert.valid_after, cert.valid_before)
    return Proof("ssh-certificate", key.id, key.owner, key.tier, a.signed_at, obj, via=kind, certificate=certified)


def _owners(owners: list[str]) -> str:
    names = [f"{owner}'s" for owner in owners]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _principal_hint(proofs: tuple[Proof, ...], pusher: str) -> str:
    """For proofs by SSH certificates: whose principal they name, and where the pusher gets their own."""
    certified = [p.certificate for p in proofs if p.certificate is not None]
    if not certified:
        return ""
    names = ", ".join(f"{c.principal} is the principal of SSH certificate \"{c.key_id}\" from {c.authority}"
                      for c in certified)
    return f" ({names}); get a fresh certificate from {certified[0].authority} for principal {pusher}"
