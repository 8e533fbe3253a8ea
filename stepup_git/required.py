"""The ``required:`` line of a finding: what a rule asks of an update, in the words the hook, the dry
runs and ``stepup-git explain`` all use."""

from __future__ import annotations

from .policy import Rule
from .text import age

PROOF_TEXT = {
    "push-certificate": "a signed push certificate for this update (git push --signed)",
    "tip-signature": "a signature on the pushed tip made within the last {window}",
}


def required(rule: Rule, action: str, why: str | None = None) -> str:
    """What ``rule`` requires of an update of kind ``action``; ``why`` (``create of refs/heads/main
    changes ...``) is added in parentheses where the hook says why the rule applies."""
    reason = f" ({why})" if why else ""
    if rule.require == "deny":
        return f"nothing: rule \"{rule.name}\" denies this{reason}"
    assert rule.tier is not None
    if rule.require == "signed":
        return f"every new commit signed by a policy key of tier {rule.tier} or higher"
    if rule.require == "signed-tag":
        return (f"an annotated tag signed by a policy key of tier {rule.tier} or higher"
                + (f", signed within {age(rule.fresh_within)}" if rule.fresh_explicit else ""))
    whose = ""
    if rule.bind_pusher:
        whose = " owned by the pusher" if rule.signers == 1 else ", the pusher one of them"
    return (f"{'a fresh proof' if rule.signers == 1 else f'fresh proofs from {rule.signers} different people'} "
            f"of tier {rule.tier} or higher{whose}: "
            + " or ".join(PROOF_TEXT[p].format(window=age(rule.fresh_within)) for p in rule.proofs
                          if action != "delete" or p == "push-certificate")
            + reason)
