"""``stepup-git explain``: which rules of a policy apply to a push to a ref touching some paths, and what
each needs, in the words of the hook's ``required:`` lines (:mod:`stepup_git.required`)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import policy as policy_mod
from ..errors import GitError, UsageError
from ..git import Repo
from ..policy import ACTIONS, Policy, Rule
from ..policy.lint import certified_at, holders
from ..required import required
from ..text import age, visible
from .check import SHORT_REF_HELP, full_ref


def register(sub: Any) -> None:
    e = sub.add_parser("explain", help="which rules apply to a push to a ref, and what each needs",
                       description="Explain which rules of the policy apply to a push to REF that changes PATHs, "
                                   "for which actions, and what each needs.")
    e.add_argument("--policy", type=Path, metavar="FILE",
                   help="the policy file (default: the repository's git config stepup.policy)")
    e.add_argument("--repo", type=Path, metavar="R",
                   help="the repository a short REF is looked up in (default: the current directory's)")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.add_argument("ref", metavar="REF", help=f"the ref pushed to: a full name, or {SHORT_REF_HELP}")
    e.add_argument("paths", nargs="*", metavar="PATH", help="paths the push changes (default: any)")
    e.set_defaults(func=cmd_explain)


@dataclass(frozen=True, slots=True)
class Explained:
    """One rule as it stands to the ref and paths: ``applies`` is ``yes``, ``no`` or ``if-paths`` (only
    when a changed path matches its patterns, and no PATH was given)."""

    rule: Rule
    applies: str
    why: str  # the refs, actions and paths that make it apply, or why it does not
    actions: tuple[str, ...]  # the actions it applies to
    matched: tuple[str, ...]  # the PATHs its patterns match


def cmd_explain(args: argparse.Namespace) -> int:
    repo = _repository(args.repo)
    policy_file = args.policy
    if policy_file is None and repo is not None:
        policy_file = policy_mod.configured_policy_path(Path(repo.path), repo.config("stepup.policy"))
    if policy_file is None:
        raise UsageError("no --policy given and no repository here has stepup.policy configured")
    policy = policy_mod.load(policy_file)
    ref = full_ref(repo, args.ref)
    paths = tuple(args.paths)
    explained = [explain(rule, ref, paths) for rule in policy.rules]
    if args.json:
        print(json.dumps({"policy": str(policy_file), "ref": ref, "paths": list(paths),
                          "rules": [_json(policy, e) for e in explained]}, indent=2))
        return 0
    applying = [e for e in explained if e.applies != "no"]
    given = f" changing {', '.join(paths)}" if paths else ""
    print(visible(f"stepup-git: a push to {ref}{given}: {len(applying)} of {len(explained)} rule(s) of {policy_file} "
                  "apply"))
    for e in explained:
        print(visible(f"rule \"{e.rule.name}\" {'does not apply' if e.applies == 'no' else 'applies'}: {e.why}"))
        if e.applies == "no":
            continue
        for actions, text in _requirements(e):
            print(visible(f"    required ({', '.join(actions)}): {text}"))
        if (keys := _keys(policy, e.rule)) is not None:
            print(visible(f"    keys:     {keys}"))
    if not applying:
        print("stepup-git: no rule applies: such a push is allowed (and audited)")
    return 0


def explain(rule: Rule, ref: str, paths: tuple[str, ...]) -> Explained:
    """How ``rule`` stands to a push to ``ref`` changing ``paths`` (none given: any)."""
    refs = ", ".join(p.text for p in rule.refs)
    if not rule.matches_ref(ref):
        return Explained(rule, "no", f"{ref} matches none of its refs ({refs})", (), ())
    actions = tuple(a for a in ACTIONS if a in rule.on and (rule.paths is None or a != "delete"))
    on = f"on {', '.join(actions)}"
    if rule.paths is None:
        return Explained(rule, "yes", f"{on} of {ref} (refs {refs})", actions, ())
    patterns = ", ".join(rule.paths.texts)
    if not actions:  # a delete changes no paths: a path rule never applies to one
        return Explained(rule, "no", f"it guards paths ({patterns}) and applies to deletes only, which change no "
                         "paths", (), ())
    if not paths:
        return Explained(rule, "if-paths", f"{on} of {ref} (refs {refs}) when a changed path matches {patterns}",
                         actions, ())
    matched = tuple(p for p in paths if rule.paths.matches_changed(p))
    if not matched:
        return Explained(rule, "no", f"none of the paths given matches {patterns}", (), ())
    return Explained(rule, "yes", f"{on} of {ref} (refs {refs}): {', '.join(matched)} "
                     f"{'matches' if len(matched) == 1 else 'match'} {patterns}", actions, matched)


def _requirements(e: Explained) -> list[tuple[list[str], str]]:
    """The hook's ``required:`` text per group of actions that share it."""
    groups: dict[str, list[str]] = {}
    for action in e.actions:
        text = required(e.rule, action)
        if e.rule.require == "signed" and action == "delete":
            text = "nothing: a delete adds no commits"
        groups.setdefault(text, []).append(action)
    return [(actions, text) for text, actions in groups.items()]


def _keys(policy: Policy, rule: Rule) -> str | None:
    """Who can meet the rule: the people holding keys of its tier, and the authorities certifying it."""
    if rule.tier is None:
        return None
    people = holders(policy, rule.tier)
    text = (f"{', '.join(people)} {'holds' if len(people) == 1 else 'hold'} keys of tier {rule.tier} or higher"
            if people else f"nobody holds a key of tier {rule.tier} or higher")
    if certified_at(policy, rule.tier):
        names = [a.name for a in policy.authorities if policy.rank(a.tier) >= policy.rank(rule.tier)]
        text += f"; certificates from {', '.join(names)} count too"
    return text


def _json(policy: Policy, e: Explained) -> dict[str, Any]:
    rule = e.rule
    return {
        "name": rule.name, "line": rule.line, "applies": e.applies, "why": e.why,
        "refs": [p.text for p in rule.refs], "on": [a for a in ACTIONS if a in rule.on],
        "paths": list(rule.paths.texts) if rule.paths is not None else None, "matched": list(e.matched),
        "require": rule.require, "tier": rule.tier, "signers": rule.signers,
        "fresh_within": age(rule.fresh_within) if rule.require == "step-up" or rule.fresh_explicit else None,
        "proofs": list(rule.proofs) if rule.require == "step-up" else None, "bind_pusher": rule.bind_pusher,
        "required": [{"actions": actions, "text": text} for actions, text in _requirements(e)],
        "holders": holders(policy, rule.tier) if rule.tier is not None else [],
    }


def _repository(path: Path | None) -> Repo | None:
    """The repository given, else the current directory's, if it is in one."""
    if path is not None:
        return Repo(str(path), env=os.environ)
    try:
        return Repo(".", env=os.environ)
    except GitError:
        return None
