"""Findings are values; the hook, ``check``, ``--json`` and the audit log all render the same ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from .gitrepo import Update

MAX_SHOWN = 5  # findings printed per rule; the rest are counted


@dataclass(frozen=True, slots=True)
class Proof:
    """A proof that counted (or was offered) for a rule: who, with which key, made when."""

    kind: str  # "push-certificate", "tip-signature", "commit-signature", "tag-signature"
    fingerprint: str
    owner: str
    tier: str
    signed_at: datetime | None
    object: str | None = None  # the object or certificate blob id

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "signed_at": iso(self.signed_at)}


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a rule failed for one object: what was required, what was found, and the fix."""

    ref: str
    rule: str
    object: str  # "commit 1a2b3c4", "tag v1.2 (1a2b3c4)", "the delete of refs/heads/prod"
    required: str
    found: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str
    passed: bool
    reason: str
    proofs: tuple[Proof, ...] = ()
    findings: tuple[Finding, ...] = ()
    failed_count: int = 0  # objects that failed, when more than the findings kept
    path: str | None = None  # the changed path that made a path rule apply

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.rule, "result": "pass" if self.passed else "fail",
                               "reason": self.reason, "proofs": [p.to_json() for p in self.proofs]}
        if self.path is not None:
            out["path"] = self.path
        return out


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """An emergency override of failing rules by a signed push (see :mod:`stepup_git.breakglass`)."""

    proof: Proof
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, **self.proof.to_json()}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judgement of one update."""

    update: Update
    action: str
    results: tuple[RuleResult, ...] = ()
    error: str | None = None  # the update could not be judged (fails closed)
    notes: tuple[str, ...] = ()
    break_glass: BreakGlass | None = None

    @property
    def allowed(self) -> bool:
        """Every applying rule passed."""
        return self.error is None and all(r.passed for r in self.results)

    @property
    def accepted(self) -> bool:
        """Allowed, or its failures overridden by break-glass."""
        return self.allowed or self.break_glass is not None


def iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def age(delta: timedelta) -> str:
    """A short human duration: 45s, 12m, 3h 5m, 2d 4h."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h" if hours else f"{sign}{days}d"
    if hours:
        return f"{sign}{hours}h {minutes}m" if minutes else f"{sign}{hours}h"
    if minutes:
        return f"{sign}{minutes}m"
    return f"{sign}{secs}s"


def visible(text: str) -> str:
    """``text`` safe to show on one line of a terminal: a byte that was not UTF-8 (kept as a lone
    surrogate by ``surrogateescape``) shows as ``\\xff``, any other unprintable character (a line or
    paragraph separator, a control character) as its ``\\x``/``\\u`` escape."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        code = ord(c)
        if c.isprintable():
            out.append(c)
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(c.encode("unicode_escape").decode("ascii") if code > 0xFF else f"\\x{code:02x}")
    return "".join(out)


def short(oid: str | None) -> str:
    return oid[:10] if oid else "(none)"


def render(verdicts: Sequence[Verdict], *, mode: str, dry_run: bool = False) -> list[str]:
    """The lines a pusher sees (Git prefixes each with ``remote:``); ``dry_run`` words them as a
    prediction (``check``, ``verify``). Each is one printable line (see :func:`visible`): a ref or path
    that is not UTF-8, or holds a line separator, can neither fail the output nor forge a line."""
    failed = [v for v in verdicts if not v.allowed]
    lines: list[str] = []
    for v in verdicts:
        if v.break_glass is not None:
            bg = v.break_glass
            lines.append(f"stepup-git: BREAK-GLASS on {v.update.ref} by {bg.proof.owner} ({bg.proof.tier}, key "
                         f"{bg.proof.fingerprint[-16:]}): \"{bg.reason}\"; the failing rules below are overridden "
                         "and this push is audited as break-glass")
    if not failed:
        applied = sum(1 for v in verdicts for r in v.results)
        verb = "would be accepted" if dry_run else "push accepted"
        lines.append(f"stepup-git: {verb} ({len(verdicts)} update(s), {applied} rule check(s) passed)")
        for v in verdicts:
            for note in v.notes:
                lines.append(f"stepup-git: note: {v.update.ref}: {note}")
        return [visible(line) for line in lines]
    refused = [v for v in failed if v.break_glass is None]
    if not refused:
        lines.append(f"stepup-git: push accepted by break-glass: {len(failed)} update(s) fail the policy")
    elif mode == "audit":
        lines.append(f"stepup-git: WARNING (audit mode): {len(failed)} of {len(verdicts)} update(s) fail the policy; "
                     "the push is accepted now but will be rejected once the policy is enforced")
    elif dry_run:
        lines.append(f"stepup-git: would be rejected: {len(refused)} of {len(verdicts)} update(s) fail the policy")
    else:
        lines.append(f"stepup-git: push rejected: {len(refused)} of {len(verdicts)} update(s) fail the policy "
                     "(nothing was updated)")
    for v in failed:
        if v.error is not None:
            lines.append(f"{v.update.ref}: cannot be judged: {v.error}")
            continue
        for r in v.results:
            if r.passed:
                continue
            for f in r.findings:
                lines += [
                    f"{f.ref}: rule \"{f.rule}\" failed for {f.object}",
                    f"    required: {f.required}",
                    f"    found:    {f.found}",
                    f"    fix:      {f.fix}",
                ]
            more = r.failed_count - len(r.findings)
            if more > 0:
                lines.append(f"    ... and {more} more object(s) failing rule \"{r.rule}\" the same way")
        for note in v.notes:
            lines.append(f"    note: {note}")
    return [visible(line) for line in lines]
