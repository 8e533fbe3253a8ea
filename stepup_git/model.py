"""The values that judging works with and produces, frozen and free of I/O: an update of the hook's
input, a signed object, and the verdict with its rule results, findings and proofs. The hook, ``check``,
``--json`` and the audit log all render the same values (:mod:`.render`, :mod:`.audit`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from .text import iso

MAX_SHOWN = 5  # findings printed per rule; the rest are counted


def is_zero_id(text: str) -> bool:
    """Git's zero id, of either object format: "no object" in the hook's input."""
    return len(text) in (40, 64) and text == "0" * len(text)


def short_ref_names(name: str) -> list[str]:
    """The full refs a short name stands for, the branch first: ``main`` is ``refs/heads/main`` or
    ``refs/tags/main`` (``check``, ``verify``, ``explain`` and ``audit show --ref`` read it so)."""
    return [f"refs/heads/{name}", f"refs/tags/{name}"]


@dataclass(frozen=True, slots=True)
class Update:
    """One line of the hook's input: ``<old> <new> <ref>``; ``None`` stands for the zero id."""

    old: str | None
    new: str | None
    ref: str

    @classmethod
    def from_ids(cls, old: str, new: str, ref: str) -> Update:
        """An update from ids as Git writes them, the zero id for "none"."""
        return cls(None if is_zero_id(old) else old, None if is_zero_id(new) else new, ref)

    @property
    def zero(self) -> str:
        return "0" * len(self.old or self.new or "0" * 40)

    @property
    def old_id(self) -> str:
        return self.old or self.zero

    @property
    def new_id(self) -> str:
        return self.new or self.zero

    @property
    def line(self) -> str:
        return f"{self.old_id} {self.new_id} {self.ref}"


@dataclass(frozen=True, slots=True)
class SignedObject:
    """An object's signature and the exact bytes it signs (``signature`` is None when unsigned)."""

    oid: str
    kind: str  # "commit" or "tag"
    signature: bytes | None
    payload: bytes


@dataclass(frozen=True, slots=True)
class Certified:
    """The SSH certificate a proof's signature was made with (docs/semantics.md): which authority issued it to whom,
    under which key id and serial, valid when."""

    authority: str
    key_id: str
    serial: int
    principal: str
    valid_after: datetime
    valid_before: datetime

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "valid_after": iso(self.valid_after), "valid_before": iso(self.valid_before)}


@dataclass(frozen=True, slots=True)
class Proof:
    """A proof that counted (or was offered) for a rule: who, with which key, made when."""

    kind: str  # "push-certificate", "tip-signature", "commit-signature", "tag-signature", "ssh-certificate"
    fingerprint: str
    owner: str
    tier: str
    signed_at: datetime | None
    object: str | None = None  # the object or certificate blob id
    via: str | None = None  # for an "ssh-certificate": the proof it was given through ("tip-signature", ...)
    certificate: Certified | None = None

    @property
    def label(self) -> str:
        """``tip-signature``, or ``tip-signature, ssh-certificate from corp-ssh-ca``."""
        if self.certificate is None:
            return self.kind
        return f"{self.via}, {self.kind} from {self.certificate.authority}"

    def to_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, "fingerprint": self.fingerprint, "owner": self.owner, "tier": self.tier,
               "signed_at": iso(self.signed_at), "object": self.object}
        if self.certificate is not None:
            out |= {"via": self.via, **self.certificate.to_json()}
        return out


@dataclass(frozen=True, slots=True)
class Found:
    """One part of what a finding found. ``label`` names what it is about: a proof ("push certificate",
    "tip commit 1a2b3c4d5e", with ``proof`` its kind as in a rule's ``proofs``) or the rule's count
    ("signers", "pusher"); None for the finding's object itself (a commit's or a tag's signature)."""

    text: str
    label: str | None = None
    proof: str | None = None  # "push-certificate", "tip-signature"

    def to_json(self) -> dict[str, str | None]:
        return {"label": self.label, "proof": self.proof, "text": self.text}


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a rule failed for one object: what was required, what was found (a part per proof), and the fix."""

    ref: str
    rule: str
    object: str  # "commit 1a2b3c4", "tag v1.2 (1a2b3c4)", "the delete of refs/heads/prod"
    required: str
    found: tuple[Found, ...]
    fix: str

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "rule": self.rule, "object": self.object, "required": self.required,
                "found": [part.to_json() for part in self.found], "fix": self.fix}


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str
    passed: bool
    reason: str
    proofs: tuple[Proof, ...] = ()
    findings: tuple[Finding, ...] = ()
    failed_count: int = 0  # objects that failed, when more than the findings kept
    path: str | None = None  # the changed path that made a path rule apply
    paths: tuple[str, ...] = ()  # the changed paths the path rule matches, ``path`` first
    paths_complete: bool = True  # False: a long push had more changes than were read for ``paths``

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.rule, "result": "pass" if self.passed else "fail",
                               "reason": self.reason, "proofs": [p.to_json() for p in self.proofs]}
        if self.path is not None:
            out["path"] = self.path
        if self.paths:
            out["paths"] = list(self.paths)
            if not self.paths_complete:
                out["paths_complete"] = False
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
