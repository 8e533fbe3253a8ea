"""The ``fix:`` line of a finding: the command that, followed, makes the same push pass."""

from __future__ import annotations

from .model import Update
from .policy import Policy, Rule
from .policy.lint import certified_at, holders
from .text import age, short


def resign_fix(only_tip: bool, base: str | None, tier: str) -> str:
    how = f"sign with a policy key of tier {tier} or higher (git config user.signingkey <key id>)"
    if only_tip:
        return f"{how}: git commit --amend --no-edit -S, then push again"
    onto = short(base) if base else "--root"
    return (f"{how}: git rebase --rebase-merges --exec 'git commit --amend --no-edit -S' {onto}, "
            "then push again")


def step_up_fix(rule: Rule, update: Update, action: str) -> str:
    assert rule.tier is not None
    key = f"a key of tier {rule.tier} or higher" + (" that is yours" if rule.bind_pusher else "")
    branch = update.ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    if action == "delete" or rule.proofs == ("push-certificate",):
        target = f":{branch}" if action == "delete" else branch
        cmd = f"git push --signed{' --force' if action == 'force-push' else ''} origin {target}"
        return f"sign the push with {key}: git config user.signingkey <key id>, then {cmd}"
    force = " --force" if action == "force-push" else ""
    if "push-certificate" not in rule.proofs:
        fix = (f"re-sign the tip with {key} (git config user.signingkey <key id>): "
               f"git commit --amend --no-edit -S, then {'git push --force' if force else 'push'} within "
               f"{age(rule.fresh_within)}")
        if rule.signers > 1:
            fix += f"; {rule.signers} different people must each prove"
        return fix
    fix = (f"sign the push with {key}: git config user.signingkey <key id>, then git push --signed{force}; "
           f"or re-sign the tip now: git commit --amend --no-edit -S, then {'git push --force' if force else 'push'}")
    if rule.signers > 1:
        fix += (f"; {rule.signers} different people must each prove: e.g. one signs the tip commit "
                "(git commit --amend --no-edit -S) and another pushes it with git push --signed")
    return fix


def sign_tag_fix(name: str, target: str | None, tier: str, *, replace: bool) -> str:
    """Tag what the pushed tag stands for again, signed (``-f`` replaces the local tag of that name),
    and push it; ``replace``: the server holds the tag already, so the push must force it."""
    what = short(target) if target else "<commit>"
    push = f"git push{' --force' if replace else ''} origin refs/tags/{name}"
    return f"git tag -s -f {name} {what} (with a key of tier {tier} or higher), then {push}"


def unknown_pusher_fix(pusher_env: tuple[str, ...]) -> str:
    """A rule bound to the pusher, on a server that did not say who pushes: nothing the developer
    signs can help; the server's set-up must name the authenticated user."""
    return (f"the server did not say who pushes (none of {', '.join(pusher_env)} is set for the hook), so no "
            "proof can be bound to the pusher; a repository administrator must have the server pass the "
            "authenticated user in one of them, or name the variable it sets in settings.pusher_env "
            "(docs/servers.md)")


def someone_else_fix(pusher: str, tier: str, people: list[str], *, bound: bool) -> str:
    """The pusher holds no key of the tier: signing or amending cannot help; someone who holds one
    must prove (and, bound to the pusher, push it themselves)."""
    who = ", ".join(people) if people else "nobody in the policy yet"
    fix = (f"{pusher} holds no key of tier {tier} or higher, so no signature of theirs can prove this; "
           f"someone who does ({who}) must sign it")
    if bound:
        return fix + " and push it themselves: git push --signed"
    return fix + ": with git push --signed, or by signing the tip (git commit --amend --no-edit -S)"


def ssh_tip_fix(update: Update, action: str) -> str:
    """An SSH signature carries no time, so no re-signing of the tip can be fresh; a push certificate can."""
    branch = update.ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    force = " --force" if action == "force-push" else ""
    return (f"an SSH signature carries no time, so the tip cannot prove freshness: sign the push instead (with "
            f"gpg.format = ssh your SSH key signs it): git push --signed{force} origin {branch}")


def fix_for(rule: Rule, update: Update, action: str, policy: Policy, pusher: str | None, *,
            untimed_tip: bool = False) -> str:
    """The step-up fix that works for this pusher: the server's set-up when it did not say who pushes,
    someone else's proof when the pusher holds no key of the tier, a signed push when the tip's SSH
    signature cannot be fresh (``untimed_tip``), else the pusher's own proof."""
    assert rule.tier is not None
    if pusher is None and rule.bind_pusher:
        return unknown_pusher_fix(policy.settings.pusher_env)
    people = holders(policy, rule.tier)
    if pusher is not None and rule.signers == 1 and pusher not in people and not certified_at(policy, rule.tier):
        return someone_else_fix(pusher, rule.tier, people, bound=rule.bind_pusher)
    if untimed_tip and "push-certificate" in rule.proofs and rule.signers == 1:
        return ssh_tip_fix(update, action)
    return step_up_fix(rule, update, action)
