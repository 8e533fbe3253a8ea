"""The policy's values (README.md, "The policy"): frozen dataclasses, the words a policy may use, and the pure parsers.

Nothing here reads a file; ``load`` builds these values from the TOML and checks them first.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from ..patterns import PathPatterns, RefPattern

ACTIONS = ("create", "update", "force-push", "delete")
REQUIRES = ("signed", "step-up", "signed-tag", "deny")
PROOF_KINDS = ("push-certificate", "tip-signature")
MODES = ("enforce", "audit")
DEFAULT_TIERS = ("contributor", "maintainer", "release")
DEFAULT_PUSHER_ENV = (
    "STEPUP_PUSHER",
    "GL_USERNAME",
    "GITEA_PUSHER_NAME",
    "GL_USER",
    "GITHUB_USER_LOGIN",
    "REMOTE_USER",
)
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)

_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")


@dataclass(frozen=True, slots=True)
class Key:
    """A policy key: an OpenPGP primary fingerprint or an SSH public key, with its owner and tier."""

    id: str  # the OpenPGP fingerprint, or the SSH key's ``SHA256:...`` fingerprint
    owner: str
    tier: str
    line: int
    fingerprint: str | None = None
    ssh: str | None = None  # "type base64", without the comment
    expires: date | None = None
    authority: str | None = None  # the [[authorities]] name whose certificates this is (docs/semantics.md)

    @property
    def kind(self) -> str:
        if self.authority:
            return "ssh-certificate"
        return "ssh" if self.ssh else "openpgp"

    @property
    def short(self) -> str:
        return self.id[-16:] if self.fingerprint else self.id[:20]

    def honoured_on(self, day: date) -> bool:
        """The policy honours the key up to and including its ``expires`` day (UTC)."""
        return self.expires is None or day <= self.expires


@dataclass(frozen=True, slots=True)
class Authority:
    """An SSH certificate authority (docs/semantics.md): whose user certificates count, at which tier, how long."""

    name: str
    ssh: str  # the CA's public key, "type base64", without the comment
    id: str  # its ``SHA256:...`` fingerprint, as a certificate names its signer
    tier: str
    max_validity: timedelta  # a certificate valid for longer is no short-lived proof
    line: int


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    refs: tuple[RefPattern, ...]
    on: frozenset[str]
    paths: PathPatterns | None
    require: str
    tier: str | None
    fresh_within: timedelta
    proofs: tuple[str, ...]
    signers: int
    bind_pusher: bool
    line: int
    fresh_explicit: bool = False  # the rule sets its own fresh_within (signed-tag then checks it)

    def matches_ref(self, ref: str) -> bool:
        return any(p.matches(ref) for p in self.refs)


@dataclass(frozen=True, slots=True)
class Settings:
    mode: str
    fresh_within: timedelta
    clock_skew: timedelta
    keyring: Path
    audit_log: Path | None
    pusher_env: tuple[str, ...]
    timeout: timedelta
    break_glass: str | None = None  # the tier whose signed push may override failing rules
    syslog: bool = False  # also send a summary of each audit record to syslog
    allow_sha1: bool = False  # let signatures over SHA-1 (or RIPEMD-160) digests count (docs/semantics.md)
    state: str | None = None  # the shared state database (docs/servers.md): a libpq connection string or service
    repository: str | None = None  # the name every replica knows the repository by (default: its git dir)
    ssh_revoked: Path | None = None  # an OpenSSH KRL or a file of public keys: revoked certified keys


@dataclass(frozen=True, slots=True)
class Policy:
    path: Path
    digest: str
    settings: Settings
    tiers: tuple[str, ...]
    keys: tuple[Key, ...]
    rules: tuple[Rule, ...]
    authorities: tuple[Authority, ...] = ()

    def rank(self, tier: str) -> int:
        return self.tiers.index(tier)

    def satisfies(self, key: Key, tier: str) -> bool:
        """A key satisfies a requirement of its own tier or any lower one."""
        return self.rank(key.tier) >= self.rank(tier)

    def key(self, key_id: str) -> Key | None:
        for k in self.keys:
            if k.id == key_id and k.authority is None:
                return k
        return None

    def authority_of(self, ca_id: str) -> Authority | None:
        """The policy authority whose CA key has the fingerprint ``ca_id``."""
        return next((a for a in self.authorities if a.id == ca_id), None)

    def certified(self, authority: Authority, owner: str) -> Key | None:
        """The ``[[keys]]`` entry giving ``owner``'s certificates from ``authority`` their own tier."""
        return next((k for k in self.keys if k.authority == authority.name and k.owner == owner), None)


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"``: one or more whole numbers with a unit."""
    if not isinstance(text, str) or not text or _DURATION.sub("", text) != "":
        raise ValueError(f"bad duration {text!r}: use whole numbers with s, m, h or d, e.g. \"15m\"")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text)))


def normalize_fingerprint(text: str) -> str:
    fpr = text.replace(" ", "").upper()
    if not _FINGERPRINT.fullmatch(fpr):
        raise ValueError(
            f"malformed fingerprint {text!r}: expected the full primary key fingerprint "
            "(40 or 64 hex digits; spaces allowed)"
        )
    return fpr


def parse_ssh_key(text: str) -> tuple[str, str]:
    """Return ("type base64", "SHA256:...") for an SSH public key line, or raise ValueError."""
    parts = text.split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise ValueError(f"malformed SSH public key {text[:40]!r}: expected \"ssh-ed25519 AAAA... [comment]\"")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValueError("malformed SSH public key: the key data is not base64") from None
    n = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if blob[4 : 4 + n] != parts[0].encode():
        raise ValueError(f"malformed SSH public key: the key data is not a {parts[0]} key")
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"{parts[0]} {parts[1]}", f"SHA256:{digest}"
