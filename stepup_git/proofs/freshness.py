"""Freshness (docs/semantics.md, "Rules"): a time ``t`` is fresh when ``now - window <= t <= now + clock_skew``.

Written once, for the times that must be fresh: a tip signature's (a step-up proof), a signed tag's
when its rule sets its own ``fresh_within``, the time stamp of a push certificate's nonce, and the start
of the SSH certificate a signature was made with (the login it stands for, docs/semantics.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from ..text import age

if TYPE_CHECKING:
    from ..signatures.sshcert import SshCertificate

NO_TIME = "SSH signatures carry no time, so they cannot prove freshness"


@dataclass(frozen=True, slots=True)
class Freshness:
    """The window a time must fall in, as of ``now``: back ``window``, ahead ``skew`` (the policy's clock skew)."""

    now: datetime
    window: timedelta
    skew: timedelta

    def problem(self, t: datetime) -> Literal["too old", "in the future"] | None:
        """Why ``t`` is not fresh ("too old", "in the future"), or None when it is."""
        if t < self.now - self.window:
            return "too old"
        if t > self.now + self.skew:
            return "in the future"
        return None

    def describe(self, found: str, signed_at: datetime | None,
                 certificate: SshCertificate | None = None) -> tuple[bool, str]:
        """Whether a signature ``found`` ("signed by alice (...)"), made at ``signed_at`` (None: an SSH
        signature, which carries no time), is fresh, and what to say of it: when it was made, and why
        that is not fresh. A signature made with an SSH ``certificate`` (valid now: the verifier saw to
        that) is fresh when the certificate became valid within the window."""
        if certificate is not None:
            return self._certified(found, certificate)
        if signed_at is None:
            return False, f"{found}, but {NO_TIME}"
        problem = self.problem(signed_at)
        if problem == "too old":
            return False, f"{found} {age(self.now - signed_at)} ago, older than {age(self.window)}"
        if problem == "in the future":
            return False, f"{found} {age(signed_at - self.now)} in the future, beyond the clock skew"
        return True, f"{found} {age(self.now - signed_at)} ago"

    def _certified(self, found: str, cert: SshCertificate) -> tuple[bool, str]:
        start = cert.valid_after
        problem = self.problem(start)
        if problem == "too old":
            whom = f"principal {cert.principals[0]}" if len(cert.principals) == 1 else "your principal"
            return False, (f"{found}, but the certificate became valid {age(self.now - start)} ago, longer ago "
                           f"than {age(self.window)} (not fresh: no recent login); get a fresh certificate from "
                           f"{cert.authority} for {whom}")
        if problem == "in the future":
            return False, f"{found}, but the certificate starts {age(start - self.now)} in the future"
        issued = f"{age(self.now - start)} ago" if start <= self.now else f"{age(start - self.now)} from now"
        return True, f"{found}, certificate valid since {issued}"
