"""The tables of ``audit show``: the records with their rules and proofs (:func:`render_table`), and one
line per approval, "who approved what, with which key, when" (:func:`render_approvals`).

Columns have fixed widths, and a value longer than its column is cut with ``…``, except the last column
of a line (a rule's reason, an error, a break-glass reason, the signing time), which is always whole.
``wide`` cuts nothing: each column is as wide as its longest value, and keys show their full
fingerprint instead of the 16-digit long key id. Text that is not printable (bytes that were not UTF-8,
line separators) shows escaped (see :func:`stepup_git.text.visible`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..text import visible
from .log import Record, short_id
from .show import dicts, rule_paths

PATHS_SHOWN = 3  # matched paths listed under a rule unless wide


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its title, its width, and whether a long value keeps its end (a ref name's tail tells
    refs apart) rather than its start."""

    title: str
    width: int
    keep_end: bool = False


RECORD = (Column("TIME", 20), Column("PUSHER", 12), Column("REF", 26, keep_end=True), Column("ACTION", 10),
          Column("DECISION", 11))
PROOF = (Column("OWNER", 12), Column("TIER", 11), Column("KEY", 20), Column("SIGNED", 20))
APPROVAL = (Column("TIME", 20), Column("REF", 26, keep_end=True), Column("RULE", 24), Column("RESULT", 6),
            Column("DECISION", 11), Column("PUSHER", 12), Column("APPROVED-BY", 12), Column("KEY", 16),
            Column("PROOF", 16), Column("SIGNED", 0))


def text(value: object) -> str:
    """A value as shown: ``-`` for none, else printable."""
    return "-" if value in (None, "") else visible(str(value))


def key_id(fingerprint: object, *, wide: bool) -> str:
    """An OpenPGP fingerprint as its long key id (its last 16 hex digits), in full when ``wide``; an
    SSH key's ``SHA256:`` fingerprint as it is."""
    shown = text(fingerprint)
    if all(c in "0123456789abcdefABCDEF" for c in shown):
        return shown.upper() if wide else shown[-16:].upper()
    return shown


class Layout:
    """Fixed column widths, or with ``wide`` the widths the rows need (never narrower than fixed)."""

    def __init__(self, columns: Sequence[Column], rows: Iterable[Sequence[str]], *, wide: bool) -> None:
        self.columns = columns
        self.wide = wide
        self.widths = [c.width for c in columns]
        if wide:
            for row in rows:
                self.widths = [max(w, len(v)) for w, v in zip(self.widths, row, strict=True)]

    def cell(self, index: int, value: str) -> str:
        """Column ``index`` holding ``value``: padded, cut with ``…`` when too long (never when wide)."""
        width, column = self.widths[index], self.columns[index]
        if len(value) > width and not self.wide:
            value = "…" + value[1 - width:] if column.keep_end else value[:width - 1] + "…"
        return value.ljust(width)

    def line(self, row: Sequence[str], *, last: str = "") -> str:
        """The cells of ``row`` two spaces apart, then ``last`` (whole) after the final fixed column."""
        cells = [self.cell(i, v) for i, v in enumerate(row)]
        return ("  ".join(cells) + ("  " + last if last else "")).rstrip()


def _record_row(r: Record) -> list[str]:
    return [text(r.get(name)) for name in ("time", "pusher", "ref", "action", "decision")]


def _proof_row(p: Record, *, wide: bool) -> list[str]:
    return [text(p.get("owner")), text(p.get("tier")), key_id(p.get("fingerprint"), wide=wide),
            text(p.get("signed_at"))]


def render_table(records: Iterable[Record], *, wide: bool = False) -> str:
    """A line per update; under it the error that stopped its judging; each rule (``!`` marks one that
    did not pass) with its reason, the paths that made it apply and each proof: owner, tier, key id,
    signing time, kind (and for an SSH certificate, a line with its authority, key id, serial, principal
    and validity window); then a break-glass override that let the failing rules pass, with its reason
    and key."""
    records = list(records)
    proofs = [p for r in records for p in _all_proofs(r)]
    rows = Layout(RECORD, map(_record_row, records), wide=wide)
    keys = Layout(PROOF, (_proof_row(p, wide=wide) for p in proofs), wide=wide)
    names = Layout((Column("RULE", 24), Column("RESULT", 5)),
                   ([text(rule.get("name")), text(rule.get("result"))]
                    for r in records for rule in dicts(r.get("rules"))), wide=wide)
    lines = [rows.line([c.title for c in RECORD], last="OLD..NEW")]
    for r in records:
        lines.append(rows.line(_record_row(r), last=f"{short_id(r.get('old'))}..{short_id(r.get('new'))}"))
        if r.get("error") not in (None, ""):
            lines.append(f"    ! error {text(r.get('error'))}")
        for rule in dicts(r.get("rules")):
            mark = " " if rule.get("result") == "pass" else "!"
            lines.append(f"    {mark} rule " + names.line([text(rule.get("name")), text(rule.get("result"))],
                                                          last=text(rule.get("reason"))))
            paths = [visible(p) for p in rule_paths(rule)]
            if paths:
                more = len(paths) - PATHS_SHOWN
                shown = paths if wide or more <= 0 else [*paths[:PATHS_SHOWN], f"and {more} more (--wide shows all)"]
                if rule.get("paths_complete") is False:
                    shown.append("and perhaps more (the push's further changes were not read)")
                lines.append(f"        paths {', '.join(shown)}")
            for p in dicts(rule.get("proofs")):
                lines.extend(_proof_lines(p, keys, wide=wide))
        glass = r.get("break_glass")
        if isinstance(glass, dict):
            lines.append(f"    ! break-glass {text(glass.get('reason'))}")
            lines.extend(_proof_lines(glass, keys, wide=wide))
    if len(lines) == 1:
        lines.append("(no records)")
    return "\n".join(lines) + "\n"


def _all_proofs(r: Record) -> list[Record]:
    glass = r.get("break_glass")
    return [*([glass] if isinstance(glass, dict) else []),
            *(p for rule in dicts(r.get("rules")) for p in dicts(rule.get("proofs")))]


def _proof_lines(p: Record, keys: Layout, *, wide: bool) -> list[str]:
    owner, tier, key, signed = _proof_row(p, wide=wide)
    lines = [("        key " + "  ".join((keys.cell(0, owner), keys.cell(1, tier), keys.cell(2, key)))
              + f"  signed {keys.cell(3, signed)}  via {text(p.get('kind'))}").rstrip()]
    if p.get("kind") == "ssh-certificate":
        lines.append(_certificate_line(p))
    return lines


def _certificate_line(p: Record) -> str:
    """Under an ``ssh-certificate`` proof: the authority, key id, serial, principal and validity window."""
    return (f"            certificate {visible(str(p.get('key_id')))!r} serial {p.get('serial')} from "
            f"{visible(str(p.get('authority')))} for principal {visible(str(p.get('principal')))}, valid "
            f"{p.get('valid_after')} to {p.get('valid_before')}, through {visible(str(p.get('via')))}")


def approvals(r: Record, *, wide: bool) -> list[list[str]]:
    """The approval rows of one record: one per proof of each rule, with the rule's result (a rule
    without a proof: one row with ``-`` for who approved); then one for a break-glass override (rule
    ``break-glass``); one row with rule ``-`` for a record without either (no rule applied, or the update
    could not be judged: decision ``error``)."""
    def row(rule: str, result: str, p: Record) -> list[str]:
        return [text(r.get("time")), text(r.get("ref")), rule, result, text(r.get("decision")),
                text(r.get("pusher")), text(p.get("owner")), key_id(p.get("fingerprint"), wide=wide),
                text(p.get("kind")), text(p.get("signed_at"))]

    rows = [row(text(rule.get("name")), text(rule.get("result")), p)
            for rule in dicts(r.get("rules")) for p in dicts(rule.get("proofs")) or [{}]]
    glass = r.get("break_glass")
    if isinstance(glass, dict):
        rows.append(row("break-glass", "-", glass))
    return rows or [row("-", "-", {})]


def render_approvals(records: Iterable[Record], *, wide: bool = False) -> str:
    """One line per approval (:func:`approvals`): time, ref, rule, its result, the decision, the pusher,
    who approved (the key's owner), the key id, the proof's kind and when it was signed."""
    rows = [row for r in records for row in approvals(r, wide=wide)]
    layout = Layout(APPROVAL[:-1], (row[:-1] for row in rows), wide=wide)
    lines = [layout.line([c.title for c in APPROVAL[:-1]], last=APPROVAL[-1].title)]
    lines.extend(layout.line(row[:-1], last=row[-1]) for row in rows)
    if len(lines) == 1:
        lines.append("(no records)")
    return "\n".join(lines) + "\n"
