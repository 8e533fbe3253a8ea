"""Verify signatures (SPEC §5.1) and decide whether a verified signature counts under the policy.

Verification answers one question: does this signature verify over these exact bytes, and by which
key, made when? (:class:`Verified`). Whether it counts — the key is in the policy, not revoked or
expired in OpenPGP terms, not past its policy ``expires`` — is decided once, in :func:`assess`, so
every verifier gives the same verdict.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import process, sequoia
from .errors import SignatureError
from .keyring import Keyring, ssh_principal
from .policy import Key, Policy, parse_ssh_key

PGP_MARK = b"-----BEGIN PGP SIGNATURE-----"
SSH_MARK = b"-----BEGIN SSH SIGNATURE-----"

# OpenPGP hash algorithm ids (RFC 9580 §9.5). A signature is only as strong as its digest: one over a
# SHA-1 digest can be forged for chosen data, so SHA-1 and RIPEMD-160 (its 160-bit contemporary) count
# only when the policy sets ``settings.allow_sha1``; MD5 and unknown ids never do.
DIGESTS = {1: "MD5", 2: "SHA-1", 3: "RIPEMD-160", 8: "SHA-256", 9: "SHA-384", 10: "SHA-512", 11: "SHA-224",
           12: "SHA3-256", 14: "SHA3-512"}
STRONG_DIGESTS = frozenset({"SHA-256", "SHA-384", "SHA-512", "SHA-224", "SHA3-256", "SHA3-512"})
WEAK_DIGESTS = frozenset({"SHA-1", "RIPEMD-160"})
SSH_DIGESTS = ("sha256", "sha512")  # the hashes SSHSIG defines
SSH_RSA_SHA1 = "ssh-rsa"  # an RSA signature algorithm name that means SHA-1
RESIGN_SHA512 = ("sign with SHA-512: echo 'personal-digest-preferences SHA512' >> ~/.gnupg/gpg.conf "
                 "(or gpg --digest-algo SHA512), then sign again")


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

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "created": self.created.timestamp() if self.created else None,
                "expires": self.expires.timestamp() if self.expires else None}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Verified:
        ts = {k: datetime.fromtimestamp(d[k], UTC) if d.get(k) is not None else None for k in ("created", "expires")}
        return cls(ok=bool(d["ok"]), kind=str(d["kind"]), key_id=d.get("key_id"), signing_key=d.get("signing_key"),
                   created=ts["created"], expires=ts["expires"], problem=d.get("problem"), digest=d.get("digest"))


@dataclass(frozen=True, slots=True)
class Assessment:
    """Whether a signature counts under the policy, and how to describe what was found."""

    valid: bool
    key: Key | None
    signed_at: datetime | None
    found: str  # e.g. "signed by alice (maintainer, key 0123456789ABCDEF)" or "unsigned"


class Verifier:
    """Verifies OpenPGP signatures against the private keyring and SSH signatures against the policy."""

    def __init__(self, policy: Policy, keyring: Keyring, state_dir: Path, *, timeout: float = 30,
                 fast: bool = True) -> None:
        self.policy = policy
        self.keyring = keyring
        self.state_dir = state_dir
        self.timeout = timeout
        self.fast = fast  # try the in-process Sequoia verifier first (stepup_git.sequoia)
        self._fast: Any = None
        self._gpg: Any = None
        self._allowed: Path | None = None

    def verify_many(self, pairs: list[tuple[bytes, bytes]]) -> list[Verified]:
        """Verify many (signature, payload) pairs; OpenPGP ones in bulk on the fast path."""
        results: list[Verified | None] = [None] * len(pairs)
        digests: dict[int, str] = {}
        for i, (sig, _) in enumerate(pairs):
            if sig.lstrip().startswith(PGP_MARK) and (packets := signature_bodies(sig)) and len(packets) == 1:
                digest = packet_digest(packets[0])
                if digest in STRONG_DIGESTS:  # the others always go to gpg (see _openpgp)
                    digests[i] = digest
        bulk = list(digests)
        if self.fast and len(bulk) > 1 and self._load_fast():
            answers = self._fast.verify_many([pairs[i] for i in bulk])
            for i, answer in zip(bulk, answers, strict=True):
                if answer is not None:
                    results[i] = _from_answer(answer, digests[i])
        return [r if r is not None else self.verify(*pairs[i]) for i, r in enumerate(results)]

    def close(self) -> None:
        if self._fast:
            self._fast.close()

    def _load_fast(self) -> bool:
        if self._fast is None:
            self._fast = sequoia.load(self.keyring) or False
        return bool(self._fast)

    def verify(self, signature: bytes, payload: bytes) -> Verified:
        sig = signature.lstrip()
        if sig.startswith(PGP_MARK):
            return self._openpgp(signature, payload)
        if sig.startswith(SSH_MARK):
            return self._ssh(signature, payload)
        return Verified(False, "unknown", problem="unsupported signature format (only OpenPGP and SSH are accepted)")

    # -- OpenPGP: Sequoia in-process when it can answer, else python-gnupg and the system gpg ----

    def _openpgp(self, signature: bytes, payload: bytes) -> Verified:
        # Step 0: exactly one signature packet. With several, gpg reports a mix of their statuses
        # (one signature's validity with another's key), and Sequoia reads only the first.
        packets = signature_bodies(signature)
        if packets is None or len(packets) != 1:
            what = "is not a well-formed OpenPGP signature" if packets is None else f"holds {len(packets)} signatures"
            return Verified(False, "openpgp", problem=f"the signature block {what}; exactly one signature is accepted")
        # Step 1: the digest, read from the signature packet itself, so that no verifier's own policy on
        # digests decides: assess() judges it. MD5 and unknown algorithms are refused here; SHA-1 and
        # RIPEMD-160 signatures go to gpg, since Sequoia refuses them whatever the policy says.
        digest = packet_digest(packets[0])
        if digest is None:
            return Verified(False, "openpgp", problem="the signature packet is of an unknown version")
        if digest not in STRONG_DIGESTS | WEAK_DIGESTS:
            return Verified(False, "openpgp", digest=digest,
                            problem=f"the signature uses the {digest} digest, which is never accepted; {RESIGN_SHA512}")
        if digest in STRONG_DIGESTS and self.fast and self._load_fast():
            answer = self._fast.verify(signature, payload)
            if answer is not None:
                return _from_answer(answer, digest)
        return self._gnupg(signature, payload, digest)

    def _gnupg(self, signature: bytes, payload: bytes, digest: str) -> Verified:
        if self._gpg is None:
            if shutil.which("gpg") is None:
                raise SignatureError("gpg is not installed on the server (install gnupg)")
            import gnupg  # only for what Sequoia leaves to gpg: most pushes never need it

            self._gpg = gnupg.GPG(gnupghome=str(self.keyring.home), options=["--no-autostart"])
        with tempfile.NamedTemporaryFile(prefix="stepup-sig-", suffix=".asc") as f:
            f.write(signature)
            f.flush()
            result = self._gpg.verify_data(f.name, payload)
        if result.returncode is None:
            raise SignatureError("gpg did not finish verifying a signature")
        # Step 2: VALIDSIG is what gpg says when the signature verifies over these bytes. It is also
        # said for an expired or revoked key (``valid`` is then False); that is judged in assess().
        if result.pubkey_fingerprint and result.sig_timestamp:
            # Its hash algorithm field must name the digest read from the packet.
            if _validsig_digest(str(getattr(result, "stderr", "") or "")) != digest:
                return Verified(False, "openpgp", digest=digest,
                                problem=f"gpg verified the signature with another digest than its packet's {digest}")
            primary = self.keyring.primary_of(result.pubkey_fingerprint) or result.pubkey_fingerprint
            expires = int(result.expire_timestamp) if str(result.expire_timestamp or "0").isdigit() else 0
            return Verified(True, "openpgp", key_id=primary, signing_key=result.fingerprint,
                            created=datetime.fromtimestamp(int(result.sig_timestamp), UTC),
                            expires=datetime.fromtimestamp(expires, UTC) if expires else None, digest=digest)
        # Step 3: everything else is a failure; say which.
        status = result.status or "no signature found"
        key_id = result.fingerprint or result.key_id
        if status == "no public key" or (status == "signature error" and key_id):
            return Verified(False, "openpgp", key_id=key_id, problem=f"signed by unknown key {key_id}")
        if status == "signature bad":
            return Verified(False, "openpgp", key_id=key_id, problem="bad signature (the signed content was changed)")
        return Verified(False, "openpgp", key_id=key_id, problem=f"signature does not verify ({status})")

    # -- SSH, through ssh-keygen -Y verify ------------------------------------------------------

    def _ssh(self, signature: bytes, payload: bytes) -> Verified:
        try:
            fields = ssh_signature_fields(signature)
            _, key_id = parse_ssh_key(fields.key)
        except ValueError as exc:
            return Verified(False, "ssh", problem=f"malformed SSH signature: {exc}")
        # SSHSIG hashes the message with sha256 or sha512; an RSA signature named "ssh-rsa" uses SHA-1.
        if fields.hash not in SSH_DIGESTS or fields.algorithm == SSH_RSA_SHA1:
            weak = fields.hash if fields.hash not in SSH_DIGESTS else f"{SSH_RSA_SHA1} (SHA-1)"
            return Verified(False, "ssh", key_id=key_id,
                            problem=f"the SSH signature uses the {weak} hash; only sha256 and sha512 are accepted "
                            "(sign with ssh-keygen -Y sign, which uses sha512)")
        key = self.policy.key(key_id)
        if key is None:
            return Verified(False, "ssh", key_id=key_id,
                            problem=f"signed by SSH key {key_id}, which the policy does not list")
        if self._allowed is None:
            self._allowed = self.keyring.allowed_signers(self.policy, self.state_dir)
        fd, sig_path = tempfile.mkstemp(prefix="stepup-sshsig-")
        try:
            os.write(fd, signature)
            os.close(fd)
            # any exit status but 0 means the signature does not verify
            proc = process.run(["ssh-keygen", "-Y", "verify", "-f", str(self._allowed), "-I", ssh_principal(key_id),
                                "-n", "git", "-s", sig_path], input=payload, timeout=self.timeout, ok=None,
                               error=SignatureError, install_hint="install openssh-client")
        finally:
            os.unlink(sig_path)
        if proc.returncode == 0:
            return Verified(True, "ssh", key_id=key_id)
        return Verified(False, "ssh", key_id=key_id, problem="bad SSH signature (the signed content was changed)")


def signature_packets(armored: bytes) -> int | None:
    """How many signature packets an armored OpenPGP signature holds (over all its armour blocks);
    None if it holds anything else (other packets, bad base64 or packet framing, stray text)."""
    bodies = signature_bodies(armored)
    return None if bodies is None else len(bodies)


def signature_bodies(armored: bytes) -> list[bytes] | None:
    """The bodies of the signature packets of an armored OpenPGP signature (over all its armour
    blocks); None if it holds anything else (other packets, bad base64 or packet framing, stray text)."""
    text = armored.decode("ascii", errors="replace").strip()
    begin, end = "-----BEGIN PGP SIGNATURE-----", "-----END PGP SIGNATURE-----"
    bodies: list[bytes] = []
    while text:
        if not text.startswith(begin) or end not in text:
            return None
        block, text = text[: text.index(end)], text[text.index(end) + len(end) :].strip()
        found = _packet_bodies(block.splitlines()[1:])
        if found is None:
            return None
        bodies += found
    return bodies


def packet_digest(body: bytes) -> str | None:
    """The hash algorithm of a signature packet (its name in DIGESTS, or ``"algorithm N"``); None when
    the packet is too short or of an unknown version."""
    if len(body) >= 17 and body[0] in (2, 3) and body[1] == 5:  # v3: hashed length 5, then type, time, key id, pk
        algo = body[16]
    elif len(body) >= 4 and body[0] in (4, 5, 6):  # v4-v6: type, public-key algorithm, hash algorithm
        algo = body[3]
    else:
        return None
    return DIGESTS.get(algo, f"algorithm {algo}")


def _validsig_digest(status: str) -> str | None:
    """The digest named by gpg's ``VALIDSIG`` status line (its eighth field)."""
    for line in status.splitlines():
        parts = line.split()
        if parts[:2] == ["[GNUPG:]", "VALIDSIG"] and len(parts) >= 10 and parts[9].isdigit():
            return DIGESTS.get(int(parts[9]), f"algorithm {parts[9]}")
    return None


def _packet_bodies(lines: list[str]) -> list[bytes] | None:
    while lines and ":" in lines[0]:  # armour headers
        lines.pop(0)
    body = [line.strip() for line in lines if line.strip() and not line.startswith("=")]
    try:
        data = base64.b64decode("".join(body), validate=True)
    except ValueError:
        return None
    bodies: list[bytes] = []
    i = 0
    while i < len(data):
        head = data[i]
        if not head & 0x80:
            return None
        if head & 0x40:  # new format: tag in the low six bits, then a one-, two- or five-octet length
            tag, i = head & 0x3F, i + 1
            if i >= len(data):
                return None
            first = data[i]
            if first < 192:
                length, i = first, i + 1
            elif first < 224 and i + 1 < len(data):
                length, i = ((first - 192) << 8) + data[i + 1] + 192, i + 2
            elif first == 255 and i + 4 < len(data):
                length, i = int.from_bytes(data[i + 1 : i + 5], "big"), i + 5
            else:
                return None  # partial lengths never frame a signature packet
        else:  # old format: tag in bits 5-2, length type in bits 1-0
            tag, kind, i = (head >> 2) & 0x0F, head & 0x03, i + 1
            if kind == 3:
                return None
            size = (1, 2, 4)[kind]
            if i + size > len(data):
                return None
            length, i = int.from_bytes(data[i : i + size], "big"), i + size
        if tag != 2 or i + length > len(data):
            return None
        bodies.append(data[i : i + length])
        i += length
    return bodies


def _from_answer(answer: tuple[str, Any], digest: str) -> Verified:
    kind, detail = answer
    if kind == "good":
        primary, signing_key, created, expires = detail
        return Verified(True, "openpgp", key_id=primary, signing_key=signing_key, created=created, expires=expires,
                        digest=digest)
    return Verified(False, "openpgp", key_id=detail, problem=f"signed by unknown key {detail}", digest=digest)


@dataclass(frozen=True, slots=True)
class SshSignature:
    """The fields of an SSHSIG blob that are judged before ``ssh-keygen`` verifies it."""

    key: str  # the signing public key, "type base64"
    hash: str  # the message hash: "sha256" or "sha512"
    algorithm: str  # the signature algorithm, e.g. "ssh-ed25519" or "rsa-sha2-512"


def ssh_signature_fields(signature: bytes) -> SshSignature:
    """Read an armored SSHSIG signature (PROTOCOL.sshsig): magic, version, public key, namespace,
    reserved, hash algorithm, signature; raise ValueError when it is not well formed."""
    lines = signature.decode("ascii", errors="replace").strip().splitlines()
    try:
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError:
        raise ValueError("not base64") from None
    if not blob.startswith(b"SSHSIG") or len(blob) < 10:
        raise ValueError("no SSHSIG magic")
    at = 10  # the magic, then a uint32 version
    fields: list[bytes] = []
    for _ in range(5):  # public key, namespace, reserved, hash algorithm, signature
        if at + 4 > len(blob):
            raise ValueError("truncated")
        n = int.from_bytes(blob[at : at + 4], "big")
        if at + 4 + n > len(blob):
            raise ValueError("truncated")
        fields.append(blob[at + 4 : at + 4 + n])
        at += 4 + n
    key_blob, _, _, hash_name, sig = fields
    key = f"{_ssh_string(key_blob)} {base64.b64encode(key_blob).decode('ascii')}"
    return SshSignature(key=key,
                        hash=hash_name.decode("ascii", errors="replace"), algorithm=_ssh_string(sig))


def _ssh_string(blob: bytes) -> str:
    """The first string of an SSH wire-format blob (a key's type, a signature's algorithm)."""
    n = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 or 4 + n > len(blob):
        raise ValueError("truncated")
    return blob[4 : 4 + n].decode("ascii", errors="replace")


def ssh_signature_key(signature: bytes) -> str:
    """The public key ("type base64") embedded in an armored SSHSIG signature."""
    return ssh_signature_fields(signature).key


def assess(verified: Verified | None, policy: Policy, keyring: Keyring, now: datetime) -> Assessment:
    """Decide whether a verified signature counts (SPEC §5.1), the same way for every verifier."""
    if verified is None:
        return Assessment(False, None, None, "no signature")
    if not verified.ok:
        return Assessment(False, None, verified.created, verified.problem or "a signature that does not verify")
    key = policy.key(verified.key_id or "")
    if key is None:
        return Assessment(False, None, verified.created,
                          f"signed by key {verified.key_id}, which the policy does not list")
    who = f"{key.owner} ({key.tier}, key {key.short})"
    if verified.kind == "openpgp":
        if verified.digest in WEAK_DIGESTS and not policy.settings.allow_sha1:
            return Assessment(False, key, verified.created,
                              f"signed by {who} with a {verified.digest} digest, which can be forged "
                              f"(accepted only with settings.allow_sha1 = true); {RESIGN_SHA512}")
        info = keyring.keys.get(key.id)
        if info is None:
            return Assessment(False, key, verified.created,
                              f"signed by {who}, but the key is not in the keyring folder")
        if problem := info.problem(now, verified.signing_key):
            return Assessment(False, key, verified.created, f"signed by {who}, but {problem}")
        if verified.expires is not None and verified.expires <= now:
            return Assessment(False, key, verified.created,
                              f"signed by {who}, but the signature expired on {verified.expires:%Y-%m-%d}")
    if not key.honoured_on(now.date()):
        return Assessment(False, key, verified.created,
                          f"signed by {who}, but the policy stopped honouring the key after {key.expires}")
    return Assessment(True, key, verified.created, f"signed by {who}")
