"""OpenSSH certificates (``PROTOCOL.certkeys``): what a certified key's signature carries (docs/semantics.md).

An SSHSIG blob made with a ``-cert.pub`` key holds the whole certificate where a plain signature holds
the public key. This module reads it: the certified key, serial, type (user or host), key id, principals,
validity window and the CA that signed it. Whether the CA's signature over the certificate holds is
``ssh-keygen``'s to say (:mod:`.ssh`); whether the certificate counts is :mod:`.assess`'s.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CERT_SUFFIX = "-cert-v01@openssh.com"
USER, HOST = 1, 2
LATEST = 253402300799  # 9999-12-31T23:59:59Z: a later "valid before" (e.g. 2**64 - 1, "forever") never expires
# The key-specific fields of each certificate type, after its nonce (PROTOCOL.certkeys).
_KEY_FIELDS = {
    "ssh-ed25519": 1,  # pk
    "ssh-rsa": 2,  # e, n
    "ecdsa-sha2-nistp256": 2,  # curve, public key
    "ecdsa-sha2-nistp384": 2,
    "ecdsa-sha2-nistp521": 2,
    "sk-ssh-ed25519@openssh.com": 2,  # pk, application
    "sk-ecdsa-sha2-nistp256@openssh.com": 3,  # curve, public key, application
}


@dataclass(frozen=True, slots=True)
class SshCertificate:
    """The fields of an OpenSSH certificate that the policy judges."""

    key: str  # the certified public key, "type base64" (the plain key, not the certificate)
    key_fingerprint: str  # its "SHA256:..." fingerprint, as ssh-keygen -L prints it
    serial: int
    cert_type: int  # USER or HOST
    key_id: str  # the CA's name for the certificate, e.g. "alice@idp"
    principals: tuple[str, ...]
    valid_after: datetime
    valid_before: datetime | None  # None: never expires
    ca: str  # the signing CA's public key, "type base64"
    ca_fingerprint: str
    authority: str | None = None  # the policy authority whose CA key signed it, once the verifier knows

    @property
    def kind(self) -> str:
        return {USER: "user", HOST: "host"}.get(self.cert_type, f"type-{self.cert_type}")

    def describe(self) -> str:
        """``SSH certificate "alice@idp" (serial 7)``."""
        return f"SSH certificate \"{self.key_id}\" (serial {self.serial})"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "key_fingerprint": self.key_fingerprint, "serial": self.serial,
                "cert_type": self.cert_type, "key_id": self.key_id, "principals": list(self.principals),
                "valid_after": self.valid_after.timestamp(),
                "valid_before": self.valid_before.timestamp() if self.valid_before else None,
                "ca": self.ca, "ca_fingerprint": self.ca_fingerprint, "authority": self.authority}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SshCertificate:
        before = d.get("valid_before")
        return cls(key=str(d["key"]), key_fingerprint=str(d["key_fingerprint"]), serial=int(d["serial"]),
                   cert_type=int(d["cert_type"]), key_id=str(d["key_id"]),
                   principals=tuple(str(p) for p in d["principals"]),
                   valid_after=datetime.fromtimestamp(d["valid_after"], UTC),
                   valid_before=datetime.fromtimestamp(before, UTC) if before is not None else None,
                   ca=str(d["ca"]), ca_fingerprint=str(d["ca_fingerprint"]), authority=d.get("authority"))


def is_certificate(key_type: str) -> bool:
    return key_type.endswith(CERT_SUFFIX)


def fingerprint(blob: bytes) -> str:
    """The ``SHA256:...`` fingerprint of a public key blob, as OpenSSH writes it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


class _Wire:
    """Reads SSH wire-format values (RFC 4251) from a blob; ValueError when it runs short."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.blob):
            raise ValueError("truncated certificate")
        out = self.blob[self.at : self.at + n]
        self.at += n
        return out

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def string(self) -> bytes:
        return self.take(self.uint(4))

    def raw_string(self) -> bytes:
        """A string with its length prefix, as it goes into a key blob."""
        start = self.at
        self.string()
        return self.blob[start : self.at]


def parse_certificate(blob: bytes) -> SshCertificate:
    """Read an OpenSSH certificate blob; raise ValueError when it is not one stepup-git reads."""
    wire = _Wire(blob)
    cert_type_name = wire.string().decode("ascii", errors="replace")
    if not is_certificate(cert_type_name):
        raise ValueError(f"{cert_type_name!r} is not a certificate type")
    plain = cert_type_name.removesuffix(CERT_SUFFIX)
    if plain.startswith("sk-"):  # sk-ssh-ed25519-cert-v01@openssh.com names the key sk-ssh-ed25519@openssh.com
        plain += "@openssh.com"
    if plain not in _KEY_FIELDS:
        raise ValueError(f"unsupported certificate type {cert_type_name!r}")
    wire.string()  # nonce
    key_blob = _string_blob(plain.encode()) + b"".join(wire.raw_string() for _ in range(_KEY_FIELDS[plain]))
    serial = wire.uint(8)
    cert_type = wire.uint(4)
    key_id = wire.string().decode("utf-8", errors="replace")
    names = _Wire(wire.string())
    principals = []
    while names.at < len(names.blob):
        principals.append(names.string().decode("utf-8", errors="replace"))
    after, before = wire.uint(8), wire.uint(8)
    wire.string()  # critical options: judged by no one at signing time (ssh-keygen refuses unknown ones)
    wire.string()  # extensions
    wire.string()  # reserved
    ca_blob = wire.string()
    wire.string()  # the CA's signature: ssh-keygen verifies it
    if wire.at != len(blob):
        raise ValueError("trailing data after the certificate")
    ca_type = _Wire(ca_blob).string().decode("ascii", errors="replace")
    return SshCertificate(
        key=f"{plain} {base64.b64encode(key_blob).decode('ascii')}", key_fingerprint=fingerprint(key_blob),
        serial=serial, cert_type=cert_type, key_id=key_id, principals=tuple(principals),
        valid_after=datetime.fromtimestamp(min(after, LATEST), UTC),
        valid_before=None if before >= LATEST else datetime.fromtimestamp(before, UTC),
        ca=f"{ca_type} {base64.b64encode(ca_blob).decode('ascii')}", ca_fingerprint=fingerprint(ca_blob))


def _string_blob(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data
