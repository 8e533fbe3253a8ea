"""Findings to the lines a pusher reads (Git prefixes each with ``remote:``), for the hook, the dry
runs and the client ``pre-push`` check alike."""

from __future__ import annotations

from collections.abc import Sequence

from .model import Finding, Verdict
from .text import visible, wrap

INDENT = "    "  # under a finding's first line
VALUE = INDENT + " " * len("required: ")  # where the values of required, found and fix start
CONTINUED = " " * len("stepup-git: ")

HEADINGS = {
    # style: (accepted, rejected) headings; the rest of the lines are the same for every style
    "hook": ("stepup-git: push accepted", "stepup-git: push rejected: {n} of {total} update(s) fail the policy"),
    "dry-run": ("stepup-git: would be accepted", "stepup-git: would be rejected: {n} of {total} update(s) fail the "
                "policy"),
    "pre-push": ("stepup-git (pre-push): the server will likely accept",
                 "stepup-git (pre-push): the server will likely reject {n} of {total} update(s)"),
}


def render(verdicts: Sequence[Verdict], *, mode: str, style: str = "hook") -> list[str]:
    """The lines a pusher sees; ``style`` words the heading for the hook, a dry run (``check``,
    ``verify``) or the client's ``pre-push`` prediction (see ``HEADINGS``). Each is one printable line
    (see :func:`visible`): a ref or path that is not UTF-8, or holds a line separator, can neither fail
    the output nor forge a line. A finding is wrapped to fit an 80-column terminal after Git's
    ``remote: `` (:func:`wrap`), continued under its value; a command to copy is never broken."""
    accepted_heading, rejected_heading = HEADINGS[style]
    failed = [v for v in verdicts if not v.allowed]
    lines: list[str] = []
    for v in verdicts:
        if v.break_glass is not None:
            bg = v.break_glass
            lines += wrap(f"BREAK-GLASS on {v.update.ref} by {bg.proof.owner} ({bg.proof.tier}, key "
                          f"{bg.proof.fingerprint[-16:]}): \"{bg.reason}\"; the failing rules below are overridden "
                          "and this push is audited as break-glass", "stepup-git: ", CONTINUED)
    if not failed:
        applied = sum(1 for v in verdicts for r in v.results)
        lines.append(visible(f"{accepted_heading} ({len(verdicts)} update(s), {applied} rule check(s) passed)"))
        for v in verdicts:
            for note in v.notes:
                lines.append(visible(f"stepup-git: note: {v.update.ref}: {note}"))
        return lines
    refused = [v for v in failed if v.break_glass is None]
    if not refused:
        lines.append(f"stepup-git: push accepted by break-glass: {len(failed)} update(s) fail the policy")
    elif mode == "audit":
        lines += wrap(f"WARNING (audit mode): {len(failed)} of {len(verdicts)} update(s) fail the policy; "
                      "the push is accepted now but will be rejected once the policy is enforced",
                      "stepup-git: ", CONTINUED)
    else:
        lines.append(rejected_heading.format(n=len(refused), total=len(verdicts)))
    for v in failed:
        if v.error is not None:
            lines += wrap(f"{v.update.ref}: cannot be judged: {v.error}", "", INDENT)
            continue
        for r in v.results:
            if r.passed:
                continue
            for f in r.findings:
                lines += finding_lines(f)
            more = r.failed_count - len(r.findings)
            if more > 0:
                lines += wrap(f"... and {more} more object(s) failing rule \"{r.rule}\" the same way", INDENT,
                              INDENT * 2)
        for note in v.notes:
            lines += wrap(note, f"{INDENT}note: ", INDENT + " " * 6)
    return lines


def finding_lines(f: Finding) -> list[str]:
    """A finding: its ref, rule and object, then what was required, what was found (a line per part,
    labelled by the proof it is about) and the fix, each wrapped under its value."""
    lines = wrap(f"{f.ref}: rule \"{f.rule}\" failed for {f.object}", "", INDENT, keep=f.object)
    lines += wrap(f.required, f"{INDENT}required: ", VALUE)
    for i, part in enumerate(f.found):
        head = f"{INDENT}found:    " if i == 0 else VALUE
        if part.label is None:
            lines += wrap(part.text, head, VALUE)
        else:
            lines += wrap(f"{part.label}: {part.text}", head, VALUE + "  ")
    lines += wrap(f.fix, f"{INDENT}fix:      ", VALUE)
    return lines
