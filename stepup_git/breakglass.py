"""Break-glass: an explicit, loud, audited override for emergencies.

A push whose signed push certificate carries the push option ``stepup.break-glass=<reason>`` and is
signed by a key of at least the policy's ``settings.break_glass`` tier is accepted even though rules
fail: ``git push --signed -o stepup.break-glass="prod is down, hotfix"``. The certificate must be a
valid proof for each overridden update (signature, nonce, exact update line, never replayed). ``deny``
rules are never overridden. Every such update is recorded with decision ``break-glass`` and printed as a
warning on the push.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from .model import BreakGlass, Proof, Verdict
from .policy import Policy
from .proofs.pushcert import PushCertificate

OPTION = "stepup.break-glass"


def requested_reason(options: Sequence[str]) -> str | None:
    """The reason given with the break-glass push option ('' when the option has none)."""
    for option in options:
        if option == OPTION:
            return ""
        if option.startswith(OPTION + "="):
            return option[len(OPTION) + 1 :].strip()
    return None


def apply(verdicts: Sequence[Verdict], certificate: PushCertificate | None, policy: Policy,
          now: datetime) -> list[Verdict]:
    """Mark the failing updates that a valid break-glass certificate overrides."""
    tier = policy.settings.break_glass
    if certificate is None or certificate.cert is None:
        return list(verdicts)
    reason = requested_reason(certificate.cert.options)
    if reason is None or all(v.allowed for v in verdicts):
        return list(verdicts)
    denying = {r.name for r in policy.rules if r.require == "deny"}
    out: list[Verdict] = []
    for v in verdicts:
        if v.allowed:
            out.append(v)
            continue
        why = _refusal(v, certificate, policy, tier, reason, denying, now)
        if isinstance(why, str):
            out.append(replace(v, notes=(*v.notes, f"break-glass not honoured: {why}")))
        else:
            out.append(replace(v, break_glass=BreakGlass(why, reason)))
    return out


def _refusal(v: Verdict, certificate: PushCertificate, policy: Policy, tier: str | None, reason: str,
             denying: set[str], now: datetime) -> str | Proof:
    if tier is None:
        return "the policy sets no break_glass tier"
    if not reason:
        return f'give a reason: -o {OPTION}="why this cannot wait"'
    if v.error is not None:
        return "the update could not be judged"
    if denied := [r.rule for r in v.results if not r.passed and r.rule in denying]:
        return f"rule \"{denied[0]}\" denies this update and cannot be overridden"
    a, text = certificate.prove(v.update, policy.settings.fresh_within, now)
    if a is None or a.key is None:
        return f"push certificate {text}"
    if not policy.satisfies(a.key, tier):
        return f"{a.found}: tier {a.key.tier} is below the break-glass tier {tier}"
    return Proof("push-certificate", a.key.id, a.key.owner, a.key.tier, a.signed_at, certificate.blob_id)
