"""Findings to the lines a pusher reads (Git prefixes each with ``remote:``), for the hook, the dry
runs and the client ``pre-push`` check alike."""

from __future__ import annotations

from collections.abc import Sequence

from .model import Verdict
from .text import visible

HEADINGS = {
    # style: (accepted, rejected) headings; the rest of the lines are the same for every style
    "hook": ("stepup-git: push accepted", "stepup-git: push rejected: {n} of {total} update(s) fail the policy "
             "(nothing was updated)"),
    "dry-run": ("stepup-git: would be accepted", "stepup-git: would be rejected: {n} of {total} update(s) fail the "
                "policy"),
    "pre-push": ("stepup-git (pre-push): the server will likely accept",
                 "stepup-git (pre-push): the server will likely reject: {n} of {total} update(s) fail the policy "
                 "(nothing was updated)"),
}


def render(verdicts: Sequence[Verdict], *, mode: str, style: str = "hook") -> list[str]:
    """The lines a pusher sees; ``style`` words the heading for the hook, a dry run (``check``,
    ``verify``) or the client's ``pre-push`` prediction (see ``HEADINGS``). Each is one printable line
    (see :func:`visible`): a ref or path that is not UTF-8, or holds a line separator, can neither fail
    the output nor forge a line."""
    accepted_heading, rejected_heading = HEADINGS[style]
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
        lines.append(f"{accepted_heading} ({len(verdicts)} update(s), {applied} rule check(s) passed)")
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
    else:
        lines.append(rejected_heading.format(n=len(refused), total=len(verdicts)))
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
