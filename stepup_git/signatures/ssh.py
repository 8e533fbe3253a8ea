"""SSH signatures (``gpg.format=ssh``): read the SSHSIG blob, then verify it with ``ssh-keygen -Y verify``
against the policy's ``ssh`` keys, namespace ``git`` (SPEC §5.1)."""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import process
from ..errors import SignatureError
from ..policy import Policy, parse_ssh_key
from .keyring import Keyring, ssh_principal
from .verified import Verified

SSH_MARK = b"-----BEGIN SSH SIGNATURE-----"
SSH_DIGESTS = ("sha256", "sha512")  # the hashes SSHSIG defines
SSH_RSA_SHA1 = "ssh-rsa"  # an RSA signature algorithm name that means SHA-1


class SshVerifier:
    """Verifies SSH signatures against the policy's SSH keys, through an allowed-signers file."""

    def __init__(self, policy: Policy, keyring: Keyring, state_dir: Path, *, timeout: float) -> None:
        self.policy = policy
        self.keyring = keyring
        self.state_dir = state_dir
        self.timeout = timeout
        self._allowed: Path | None = None

    def verify(self, signature: bytes, payload: bytes) -> Verified:
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
