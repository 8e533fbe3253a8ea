"""The values verification gives: what a signature verifies as (:class:`Verified`), and whether it
counts under the policy (:class:`Assessment`, made by :func:`stepup_git.signatures.assess.assess`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..policy import Key

if TYPE_CHECKING:  # read only with an SSH signature
    from .sshcert import SshCertificate

SSH_MARK = b"-----BEGIN SSH SIGNATURE-----"  # how an SSH signature begins (an OpenPGP one: openpgp.PGP_MARK)


@dataclass(frozen=True, slots=True)
class Verified:
    """The cryptographic outcome of one signature over one payload."""

    ok: bool
    kind: str  # "openpgp", "ssh" or "unknown"
    key_id: str | None = None  # primary fingerprint, or SSH "SHA256:..." id
    signing_key: str | None = None  # the (sub)key fingerprint that made it
    created: datetime | None = None
    expires: datetime | None = None  # the signature's own expiry
    problem: str | None = None
    digest: str | None = None  # an OpenPGP signature's hash algorithm, read from its packet (DIGESTS)
    # the OpenSSH certificate an SSH signature was made with (docs/semantics.md); judged as of the time verified at
    certificate: SshCertificate | None = None

    def to_json(self) -> dict[str, Any]:
        out = {**asdict(self), "created": self.created.timestamp() if self.created else None,
               "expires": self.expires.timestamp() if self.expires else None}
        del out["certificate"]
        if self.certificate is not None:  # never cached (docs/semantics.md), but kept whole when written
            out["certificate"] = self.certificate.to_json()
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Verified:
        from .sshcert import SshCertificate

        ts = {k: datetime.fromtimestamp(d[k], UTC) if d.get(k) is not None else None for k in ("created", "expires")}
        return cls(ok=bool(d["ok"]), kind=str(d["kind"]), key_id=d.get("key_id"), signing_key=d.get("signing_key"),
                   created=ts["created"], expires=ts["expires"], problem=d.get("problem"), digest=d.get("digest"),
                   certificate=SshCertificate.from_json(d["certificate"]) if d.get("certificate") else None)


@dataclass(frozen=True, slots=True)
class Assessment:
    """Whether a signature counts under the policy, and how to describe what was found."""

    valid: bool
    key: Key | None
    signed_at: datetime | None
    found: str  # e.g. "signed by alice (maintainer, key 0123456789ABCDEF)" or "unsigned"
    certificate: SshCertificate | None = None  # the certificate that made ``key`` (owner: its principal)
