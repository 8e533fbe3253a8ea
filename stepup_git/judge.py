"""Judge ref updates against the policy (docs/semantics.md). Pure of the environment: callers pass plain values.

The steps of §4 are named in the code: (1) match rules by ref, action and changed paths; (2) ``signed``;
(3) ``step-up``, its proofs counted per person by :mod:`stepup_git.proofs.signers`; (4) ``signed-tag``;
(5) ``deny``. The push is all-or-nothing (6) and every finding says what was required, what was found (a
part per proof) and the fix (7); rendering is :mod:`stepup_git.render`'s job.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .errors import StepupError
from .fixes import fix_for, resign_fix, sign_tag_fix
from .model import MAX_SHOWN, Finding, Found, Proof, RuleResult, Update, Verdict
from .policy import Policy, Rule
from .proofs import tip
from .proofs.freshness import NO_TIME, Freshness
from .proofs.signers import NO_CERTIFICATE, Offered, count, proof_of
from .protocols import CertificateProof, Repository, SignatureSource
from .required import required
from .signatures import Keyring, assess
from .text import short


@dataclass(frozen=True, slots=True)
class Context:
    now: datetime
    pusher: str | None
    push_cert: CertificateProof | None = None


class Judge:
    def __init__(self, policy: Policy, repo: Repository, keyring: Keyring, signatures: SignatureSource,
                 context: Context) -> None:
        self.policy = policy
        self.repo = repo
        self.keyring = keyring
        self.signatures = signatures
        self.ctx = context
        self._vetted: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def vetted(self, rule: Rule) -> tuple[str, ...]:
        """docs/semantics.md vetted commits of a rule, as the tips they are reachable from: existing refs that
        the rule's ``refs`` patterns match, and the repository's baseline. A commit reachable only from
        other refs (a feature branch, a note, a replace ref, a tag a pusher parked) is not vetted."""
        key = rule.refs
        if (known := self._vetted.get(key)) is None:
            tips = [commit for name, commit in self.repo.refs() if rule.matches_ref(name)]
            known = self._vetted[key] = tuple(dict.fromkeys([*tips, *self.repo.baseline()]))
        return known

    def added(self, update: Update, rule: Rule) -> Iterator[str]:
        """The update's added commits under ``rule``, streamed (walked again by each rule that needs
        them, so that memory does not grow with the push)."""
        return self.repo.added_commits(update, self.vetted(rule))

    def judge(self, updates: Sequence[Update]) -> list[Verdict]:
        return [self._judge_update(u) for u in updates]

    def _judge_update(self, update: Update) -> Verdict:
        try:
            if update.old is None and update.new is None:
                # A delete whose old id is the zero id: git deletes whatever the ref holds without
                # checking it, so a ref that exists is judged as its delete; one that does not is a no-op.
                current = self.repo.ref_target(update.ref)
                if current is None:
                    return Verdict(update, "delete", notes=("the ref does not exist; deleting it changes nothing",))
                update = Update(current, None, update.ref)
            action = self.repo.action(update)
            # Step 1: rules by ref and action, then by changed paths (which depend on the rule's
            # vetted commits: rules with the same refs share them).
            candidates = [r for r in self.policy.rules if r.matches_ref(update.ref) and action in r.on]
            paths: dict[tuple[Any, ...], _Paths] = {}
            results = []
            for rule in candidates:
                matched = None
                if rule.paths is not None:
                    if rule.refs not in paths:
                        paths[rule.refs] = _Paths(self, update, rule)
                    matched = paths[rule.refs].first_match(rule)
                    if matched is None:
                        continue
                result = self._evaluate(rule, update, action, matched)
                if matched:  # the audit record names every path the rule matches, not just the first
                    listed, complete = paths[rule.refs].all_matches(rule)
                    result = replace(result, path=matched, paths=listed, paths_complete=complete)
                results.append(result)
            notes = () if candidates else ("no rule applies",)
            return Verdict(update, action, tuple(results), notes=notes)
        except StepupError as exc:
            return Verdict(update, "unknown", error=str(exc))

    def _evaluate(self, rule: Rule, update: Update, action: str, path: str | None) -> RuleResult:
        why = f"{action} of {update.ref}"
        if rule.paths and path:
            why += f" changes {path} ({', '.join(rule.paths.texts)})"
        if rule.require == "deny":
            return self._deny(rule, update, action, why)
        if rule.require == "signed":
            return self._signed(rule, update)
        if rule.require == "step-up":
            return self._step_up(rule, update, action, why)
        return self._signed_tag(rule, update, action)

    # Step 5: deny -------------------------------------------------------------------------

    def _deny(self, rule: Rule, update: Update, action: str, why: str) -> RuleResult:
        finding = Finding(update.ref, rule.name, f"the {action} of {update.ref}", required=required(rule, action, why),
                          found=(Found(f"a {action}"),),
                          fix="this change is not allowed by the policy; ask a repository administrator if it "
                          "must happen")
        return RuleResult(rule.name, False, f"denied: {why}", findings=(finding,), failed_count=1)

    # Step 2: signed -----------------------------------------------------------------------

    def _signed(self, rule: Rule, update: Update) -> RuleResult:
        assert rule.tier is not None
        tip = self.repo.peel_commit(update.new)
        old = self.repo.peel_commit(update.old)
        # git lists the newest commits first; the last failures seen are the oldest, shown oldest first
        failures: deque[tuple[str, str]] = deque(maxlen=MAX_SHOWN)
        failed = checked = 0
        oldest_failed: str | None = None
        signers: dict[str, Proof] = {}
        added = self.added(update, rule)
        while chunk := list(itertools.islice(added, CHUNK)):
            for oid, verified in zip(chunk, self.signatures.verified_many(chunk, self.repo.signed_objects),
                                     strict=True):
                checked += 1
                a = assess(verified, self.policy, self.keyring, self.ctx.now, pusher=self.ctx.pusher)
                problem = None
                if not a.valid:
                    problem = a.found
                elif a.key is not None and not self.policy.satisfies(a.key, rule.tier):
                    problem = f"{a.found}: tier {a.key.tier} is below {rule.tier}"
                if problem is None:
                    assert a.key is not None
                    if a.key.id not in signers:
                        signers[a.key.id] = proof_of("commit-signature", a, oid)
                    continue
                failed += 1
                oldest_failed = oid
                failures.append((oid, problem))
        if failed:
            # one fix for all of them: amend when only the tip fails, else re-sign from below the oldest
            fix = resign_fix(failed == 1 and oldest_failed == tip,
                              old or self.repo.first_parent(oldest_failed or ""), rule.tier)
            findings = tuple(Finding(
                update.ref, rule.name, f"commit {short(oid)}",
                required=required(rule, "update"),
                found=(Found(problem),), fix=fix) for oid, problem in reversed(failures))
            return RuleResult(rule.name, False, f"{failed} of {checked} new commit(s) not signed as required",
                              findings=findings, failed_count=failed)
        return RuleResult(rule.name, True, f"{checked} new commit(s) signed by policy keys",
                          proofs=tuple(signers.values()))

    # Step 3: step-up ----------------------------------------------------------------------

    def _step_up(self, rule: Rule, update: Update, action: str, why: str) -> RuleResult:
        assert rule.tier is not None
        window, now = rule.fresh_within, self.ctx.now
        offered: list[Offered] = []
        untimed_tip = False
        if "push-certificate" in rule.proofs:
            cert = self.ctx.push_cert
            if cert is None:
                offered.append(Offered("push-certificate", "push certificate", NO_CERTIFICATE))
            else:
                a, text = cert.prove(update, window, now, self.ctx.pusher)
                offered.append(Offered("push-certificate", "push certificate", text, a, cert.blob_id))
        if "tip-signature" in rule.proofs and action != "delete":
            a, text = tip.prove(update, repo=self.repo, signatures=self.signatures, policy=self.policy,
                                keyring=self.keyring, window=window, now=now, pusher=self.ctx.pusher)
            untimed_tip = a is None and NO_TIME in text  # a valid SSH signature, which carries no time
            offered.append(Offered("tip-signature", f"tip {self._object_label(update, 'update')}", text, a,
                                   update.new))
        # Proofs count per person: one owner never counts twice, whatever keys they hold (docs/semantics.md, "Rules").
        counted = count(offered, rule, self.policy, self.ctx.pusher)
        if counted.met:
            names = ", ".join(f"{p.owner} ({p.label})" for p in counted.proofs)
            return RuleResult(rule.name, True, f"step-up proven by {names}: {why}", proofs=counted.proofs)
        finding = Finding(update.ref, rule.name, self._object_label(update, action),
                          required=required(rule, action, why),
                          found=counted.found or (Found("no proof"),),
                          fix=fix_for(rule, update, action, self.policy, self.ctx.pusher, untimed_tip=untimed_tip))
        return RuleResult(rule.name, False, f"step-up not proven: {why}", proofs=counted.proofs,
                          findings=(finding,), failed_count=1)

    # Step 4: signed-tag -------------------------------------------------------------------

    def _signed_tag(self, rule: Rule, update: Update, action: str) -> RuleResult:
        assert rule.tier is not None
        label = self._object_label(update, action)
        name = update.ref.removeprefix("refs/tags/")
        fix = sign_tag_fix(name, self._tag_target(update), rule.tier, replace=update.old is not None)
        if update.new is None:
            problem = "a delete (a deleted tag cannot be signed)"
            fix = f"deleting {update.ref} is not allowed by rule \"{rule.name}\"; ask a repository administrator"
        elif self.repo.type_of(update.new) != "tag":
            problem = f"a lightweight tag (points at a {self.repo.type_of(update.new)}; nothing is signed)"
        elif (tag_name := self.repo.tag_info(update.new)[0]) != name and update.ref.startswith("refs/tags/"):
            problem = (f"a tag object named {tag_name} pushed as {update.ref} (a signed tag cannot be republished "
                       "under another name)")
        else:
            obj = self.repo.signed_object(update.new)
            assert obj is not None
            a = assess(self.signatures.verified(obj), self.policy, self.keyring, self.ctx.now, pusher=self.ctx.pusher)
            problem = None
            if not a.valid:
                problem = "an unsigned annotated tag" if obj.signature is None else a.found
            elif a.key is not None and not self.policy.satisfies(a.key, rule.tier):
                problem = f"{a.found}: tier {a.key.tier} is below {rule.tier}"
            elif rule.fresh_explicit:
                fresh, text = Freshness(self.ctx.now, rule.fresh_within,
                                        self.policy.settings.clock_skew).describe(a.found, a.signed_at, a.certificate)
                problem = None if fresh else text
            if problem is None:
                assert a.key is not None
                return RuleResult(rule.name, True, f"tag {a.found}", proofs=(proof_of("tag-signature", a, update.new),))
        finding = Finding(update.ref, rule.name, label,
                          required=required(rule, action),
                          found=(Found(problem or "a tag that is not signed as required"),), fix=fix)
        return RuleResult(rule.name, False, f"tag not signed as required: {problem}", findings=(finding,),
                          failed_count=1)

    def _tag_target(self, update: Update) -> str | None:
        """What the pushed tag stands for: a lightweight tag's object, an annotated tag's target."""
        if update.new is None:
            return None
        if self.repo.type_of(update.new) == "tag":
            return self.repo.tag_info(update.new)[1]
        return update.new

    def _object_label(self, update: Update, action: str) -> str:
        if update.new is None:
            return f"the {action} of {update.ref}"
        kind = self.repo.type_of(update.new)
        if kind == "tag":
            name, _, _ = self.repo.tag_info(update.new)
            return f"tag {name} ({short(update.new)})"
        return f"{kind} {short(update.new)}"


CHUNK = 1024  # commits read and verified together
MORE_PATHS = 1000  # changed paths read past what judging needed, to list a path rule's matches


class _Paths:
    """Changed paths of one update under one rule's vetted commits, computed lazily and at most once."""

    def __init__(self, judge: Judge, update: Update, rule: Rule) -> None:
        self._seen: list[tuple[str, bool]] = []
        self._known: set[str] = set()
        self._source: Iterator[tuple[str, bool]] | None = (
            judge.repo.changed_paths(update, judge.vetted(rule)) if update.new is not None else iter(())
        )

    def first_match(self, rule: Rule) -> str | None:
        assert rule.paths is not None
        patterns = rule.paths
        for path, gitlink in self._seen:
            if patterns.matches_changed(path, gitlink=gitlink):
                return path
        while self._source is not None:
            for path, gitlink in self._source:
                if path in self._known:
                    continue
                self._known.add(path)
                self._seen.append((path, gitlink))
                if patterns.matches_changed(path, gitlink=gitlink):
                    return path
            self._source = None
        return None

    def all_matches(self, rule: Rule) -> tuple[tuple[str, ...], bool]:
        """The changed paths ``rule`` matches, in the order found, and whether that is all of them. Past
        what judging read, at most ``MORE_PATHS`` further changes are read for the list: a push of
        thousands of commits costs what its rules need, not a full listing."""
        assert rule.paths is not None
        budget = MORE_PATHS
        while self._source is not None and budget > 0:
            for path, gitlink in self._source:
                if path not in self._known:
                    self._known.add(path)
                    self._seen.append((path, gitlink))
                budget -= 1
                if budget == 0:
                    break
            else:
                self._source = None
        listed = tuple(path for path, gitlink in self._seen if rule.paths.matches_changed(path, gitlink=gitlink))
        return listed, self._source is None

