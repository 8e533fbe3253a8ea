"""Warnings about a valid policy: rules that can never pass, and what a policy leaves open (docs/semantics.md).

A warning never stops a policy from loading; ``policy check`` and ``load_with_warnings`` show them as
``PATH:LINE: warning: message``. Here they are (line, message) pairs, in the order of the rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from ..patterns import RefPattern
from ..text import age
from .model import Key, Policy, Rule

REPLACE_WARNING = ("no rule guards refs/replace/*: stepup-git judges objects as they are, but other tools reading "
                   "the repository through git would see a pushed replacement instead of the real object; add a rule "
                   "with refs = [\"refs/replace/**\"] and require = \"deny\"")


def holders(policy: Policy, tier: str, keys: Iterable[Key] | None = None) -> list[str]:
    """The people (key owners) holding a key of ``tier`` or higher, sorted: ``signers`` counts people,
    not keys (docs/semantics.md, "Rules"). ``keys`` defaults to the policy's own."""
    return sorted({k.owner for k in (policy.keys if keys is None else keys) if policy.satisfies(k, tier)})


def certified_at(policy: Policy, tier: str) -> bool:
    """An authority certifies people of ``tier`` or higher: people the policy does not list by name."""
    return any(policy.rank(a.tier) >= policy.rank(tier) for a in policy.authorities)


def policy_warnings(policy: Policy, *, open_ends: bool = True) -> list[tuple[int, str]]:
    """Every warning for the policy: each rule's, then (with ``open_ends``) what the rules leave open."""
    found = [w for a in policy.authorities if a.max_validity > LONG_VALIDITY for w in [(a.line, (
        f"authority {a.name!r} accepts certificates valid for up to {age(a.max_validity)}: such a certificate is "
        "no short-lived proof of a recent login; issue certificates for minutes or hours and lower max_validity "
        "to match"))]]
    found += [w for rule in policy.rules for w in rule_warnings(policy, rule)]
    if open_ends:
        found += open_end_warnings(policy.rules)
    return found


def rule_warnings(policy: Policy, rule: Rule) -> list[tuple[int, str]]:
    """A step-up rule that asks for more signers than it can ever get."""
    found = []
    if rule.require == "step-up" and rule.signers > len(rule.proofs):
        found.append((rule.line, f"rule {rule.name!r} needs {rule.signers} signers but accepts {len(rule.proofs)} "
                      "kind(s) of proof (a push certificate and a tip signature give one signer each): "
                      "it can never pass"))
    # an authority of the tier certifies people the policy does not list: their number is open
    if rule.tier is not None and rule.require == "step-up" and not certified_at(policy, rule.tier):
        people = holders(policy, rule.tier)
        if len(people) < rule.signers:
            held = f" ({', '.join(people)})" if people else ""
            found.append((rule.line, f"rule {rule.name!r} needs {rule.signers} signer(s) of tier {rule.tier} or "
                          f"higher, but only {len(people)} person(s) hold such keys{held} and signers counts "
                          "people: it can never pass"))
    return found


LONG_VALIDITY = timedelta(days=1)


def open_end_warnings(rules: tuple[Rule, ...]) -> list[tuple[int, str]]:
    """Guarded refs whose deletion no rule guards, and a policy that leaves ``refs/replace/`` open."""
    found = []
    for rule in rules:
        if (rule.paths is None and rule.require != "step-up") or not rule.on - {"delete"}:
            continue
        open_refs = [p.text for p in rule.refs
                     if not any(_guards_deletion(d) and d.matches_ref(_sample_ref(p)) for d in rules)]
        if open_refs:
            found.append((rule.line, f"rule {rule.name!r} guards {', '.join(open_refs)} but not their deletion: "
                          "deleting such a ref and creating it again at an old commit rolls it back unchecked; add "
                          "a rule with on = [\"delete\"] and require = \"step-up\" (or \"deny\") for these refs"))
    replace_ref = "refs/replace/" + "0" * 40
    if not any(r.require in ("deny", "step-up") and r.paths is None and "create" in r.on and r.matches_ref(replace_ref)
               for r in rules):
        found.append((1, REPLACE_WARNING))
    return found


def _sample_ref(pattern: RefPattern) -> str:
    """A ref name the pattern matches, with its wildcards filled in."""
    return pattern.text.replace("**", "stepup/sample").replace("*", "sample")


def _guards_deletion(rule: Rule) -> bool:
    """A delete has no changed paths and no added commits: only these rules can refuse one."""
    return "delete" in rule.on and rule.paths is None and rule.require in ("step-up", "deny", "signed-tag")
