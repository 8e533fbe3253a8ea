"""SSH signatures (``gpg.format=ssh``): read the SSHSIG blob, then verify it with ``ssh-keygen -Y verify``
against the policy's ``ssh`` keys, namespace ``git`` (docs/semantics.md), or, for a key certified by a policy
SSH certificate authority, against that authority at the time given (docs/semantics.md)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from .. import process
from ..errors import SignatureError
from ..files import replace_file
from ..policy import Policy, parse_ssh_key
from ..policy.model import Authority
from ..text import age, iso
from .keyring import Keyring, ssh_principal
from .sshcert import USER, SshCertificate, is_certificate, parse_certificate
from .verified import Verified

SSH_DIGESTS = ("sha256", "sha512")  # the hashes SSHSIG defines
SSH_RSA_SHA1 = "ssh-rsa"  # an RSA signature algorithm name that means SHA-1
KRL_MAGIC = b"SSHKRL\n\0"  # an OpenSSH key revocation list; anything else is read as a file of public keys
# principals written into an allowed-signers line as they are (no pattern, list or quoting characters)
_PRINCIPAL = re.compile(r"[A-Za-z0-9._@+~-]+")


class SshVerifier:
    """Verifies SSH signatures against the policy's SSH keys, through an allowed-signers file."""

    def __init__(self, policy: Policy, keyring: Keyring, state_dir: Path, *, timeout: float,
                 now: datetime | None = None) -> None:
        self.policy = policy
        self.keyring = keyring
        self.state_dir = state_dir
        self.timeout = timeout
        self.now = now  # the time certificates are judged at (never a commit's date); None: none count
        self._allowed: Path | None = None

    def verify(self, signature: bytes, payload: bytes) -> Verified:
        try:
            fields = ssh_signature_fields(signature)
            if is_certificate(fields.key.split()[0]):
                cert = parse_certificate(base64.b64decode(fields.key.split()[1]))
                key_id = cert.key_fingerprint
            else:
                _, key_id = parse_ssh_key(fields.key)
        except ValueError as exc:
            return Verified(False, "ssh", problem=f"malformed SSH signature: {exc}")
        # SSHSIG hashes the message with sha256 or sha512; an RSA signature named "ssh-rsa" uses SHA-1.
        if fields.hash not in SSH_DIGESTS or fields.algorithm == SSH_RSA_SHA1:
            weak = fields.hash if fields.hash not in SSH_DIGESTS else f"{SSH_RSA_SHA1} (SHA-1)"
            return Verified(False, "ssh", key_id=key_id,
                            problem=f"the SSH signature uses the {weak} hash; only sha256 and sha512 are accepted "
                            "(sign with ssh-keygen -Y sign, which uses sha512)")
        if is_certificate(fields.key.split()[0]):
            return self._certified(cert, fields.key, signature, payload)
        key = self.policy.key(key_id)
        if key is None:
            return Verified(False, "ssh", key_id=key_id,
                            problem=f"signed by SSH key {key_id}, which the policy does not list")
        if self._allowed is None:
            self._allowed = self.keyring.allowed_signers(self.policy, self.state_dir)
        if self._keygen_verify(self._allowed, ssh_principal(key_id), signature, payload):
            return Verified(True, "ssh", key_id=key_id)
        return Verified(False, "ssh", key_id=key_id, problem="bad SSH signature (the signed content was changed)")

    def _keygen_verify(self, allowed: Path, principal: str, signature: bytes, payload: bytes,
                       extra: tuple[str, ...] = ()) -> bool:
        fd, sig_path = tempfile.mkstemp(prefix="stepup-sshsig-")
        try:
            os.write(fd, signature)
            os.close(fd)
            # any exit status but 0 means the signature does not verify
            proc = process.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal, "-n", "git",
                                "-s", sig_path, *extra], input=payload, timeout=self.timeout, ok=None,
                               error=SignatureError, install_hint="install openssh-client")
        finally:
            os.unlink(sig_path)
        return proc.returncode == 0

    def _certified(self, cert: SshCertificate, line: str, signature: bytes, payload: bytes) -> Verified:
        """A signature by a certified key (docs/semantics.md), each step named as it fails; ``line`` is the
        certificate as ``type base64``."""
        def refuse(problem: str) -> Verified:
            return Verified(False, "ssh", key_id=cert.key_fingerprint, certificate=cert, problem=problem)

        what = cert.describe()
        # Step C1: the certificate was signed by a policy authority.
        authority = self.policy.authority_of(cert.ca_fingerprint)
        if authority is None:
            known = ", ".join(a.name for a in self.policy.authorities)
            trusted = f"get a certificate from {known}" if known else "the policy trusts no SSH certificate authority"
            return refuse(f"signed with {what} from an unknown CA {cert.ca_fingerprint}, which is no policy "
                          f"authority; {trusted}")
        cert = replace(cert, authority=authority.name)
        what = f"{what} from {authority.name}"
        # Step C2: a user certificate (a host certificate names machines, not people).
        if cert.cert_type != USER:
            return refuse(f"signed with {what}, a {cert.kind} certificate, not a user certificate; "
                          f"{_get(authority, cert, 'a user certificate')}")
        # Step C3: short-lived: valid for no longer than the authority's max_validity.
        span = None if cert.valid_before is None else cert.valid_before - cert.valid_after
        if span is None or span > authority.max_validity:
            valid = "forever" if span is None else f"for {age(span)}"
            return refuse(f"signed with {what}, valid {valid}, longer than {authority.name}'s max_validity of "
                          f"{age(authority.max_validity)} (valid too long: no short-lived proof); "
                          f"{_get(authority, cert, f'a certificate valid for at most {age(authority.max_validity)}')}")
        # Step C4: valid now, as the caller's clock says (not at the commit's date, which the pusher chooses);
        # a certificate starting within the clock skew counts from its start.
        now = self.now
        if now is None:
            return refuse(f"signed with {what}, which cannot be judged without the time of the push")
        skew = self.policy.settings.clock_skew
        if cert.valid_after > now + skew:
            return refuse(f"signed with {what}, not valid until {iso(cert.valid_after)} "
                          f"({age(cert.valid_after - now)} from now, beyond the clock skew)")
        assert cert.valid_before is not None
        if now >= cert.valid_before:
            return refuse(f"signed with {what}, which expired {age(now - cert.valid_before)} ago "
                          f"(at {iso(cert.valid_before)}); {_get(authority, cert)}")
        # Step C5: it names principals that can be written into an allowed-signers line as they are.
        if not cert.principals:
            return refuse(f"signed with {what}, which names no principal; {_get(authority, cert)}")
        if odd := [p for p in cert.principals if not _PRINCIPAL.fullmatch(p)]:
            return refuse(f"signed with {what}, naming the principal {odd[0]!r}, which stepup-git cannot check "
                          "(letters, digits and . _ @ + ~ - only)")
        # Step C6: neither the key nor the certificate is revoked (settings.ssh_revoked).
        revoked = self.policy.settings.ssh_revoked
        extra: tuple[str, ...] = ()
        if revoked is not None:
            if problem := self._revoked(cert, line, revoked):
                return refuse(f"signed with {what}, {problem}; {_get(authority, cert, 'a new certificate')}")
            if _is_krl(revoked):
                extra = ("-r", str(revoked))
        # Step C7: ssh-keygen agrees: the CA signed this certificate for this principal, valid at the
        # time judged, and the certified key made the signature over these exact bytes.
        at = max(now, cert.valid_after).astimezone(UTC)
        allowed = self._authority_signers(authority, cert.principals[0])
        if not self._keygen_verify(allowed, cert.principals[0], signature, payload,
                                   (f"-Overify-time={at:%Y%m%d%H%M%S}Z", *extra)):
            return refuse(f"bad SSH signature by a key with {what} (the signed content was changed, or "
                          f"{authority.name} did not sign the certificate)")
        return Verified(True, "ssh", key_id=cert.key_fingerprint, certificate=cert)

    def _authority_signers(self, authority: Authority, principal: str) -> Path:
        """An allowed-signers file trusting ``authority`` for ``principal`` alone, kept by content."""
        content = f'{principal} cert-authority,namespaces="git" {authority.ssh}\n'
        name = hashlib.sha256(content.encode()).hexdigest()[:20]
        path = self.state_dir / "keyring" / f"allowed_ca-{name}"
        if not path.is_file():
            replace_file(path, content.encode())
        return path

    def _revoked(self, cert: SshCertificate, line: str, revoked: Path) -> str | None:
        """Why the certificate or its key is revoked (settings.ssh_revoked), or None. A list that cannot
        be read revokes everything: nothing passes by default that should not."""
        try:
            data = revoked.read_bytes()
        except OSError as exc:
            return f"but the revocation list {revoked} cannot be read ({exc.strerror or exc})"
        if not data.startswith(KRL_MAGIC):
            listed = {entry.split()[1] for entry in data.decode("ascii", errors="replace").splitlines()
                      if len(entry.split()) >= 2 and not entry.lstrip().startswith("#")}
            for blob, whose in ((line.split()[1], "the certificate"), (cert.key.split()[1], "its key"),
                                (cert.ca.split()[1], "its CA's key")):
                if blob in listed:
                    return f"but {whose} is revoked (listed in {revoked})"
            return None
        fd, cert_path = tempfile.mkstemp(prefix="stepup-sshcert-")
        try:
            os.write(fd, f"{line}\n".encode())
            os.close(fd)
            in_krl = self._query_krl(revoked, cert_path)
        finally:
            os.unlink(cert_path)
        return f"but the certificate or its key is revoked (in the KRL {revoked})" if in_krl else None

    def _query_krl(self, krl: Path, key_path: str) -> bool:
        proc = process.run(["ssh-keygen", "-Q", "-f", str(krl), key_path], timeout=self.timeout, ok=None,
                           error=SignatureError, install_hint="install openssh-client")
        if proc.returncode not in (0, 1):
            raise SignatureError(f"cannot read the KRL {krl}: "
                                 f"{proc.stderr.decode('utf-8', errors='replace').strip()[:200]}")
        return proc.returncode == 1


def _get(authority: Authority, cert: SshCertificate, what: str = "a fresh certificate") -> str:
    """What to do: the site's own command is its business, so the message names the CA and principal."""
    for_whom = f"principal {cert.principals[0]}" if len(cert.principals) == 1 else "your principal"
    return f"get {what} from {authority.name} for {for_whom}"


def _is_krl(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(KRL_MAGIC)) == KRL_MAGIC
    except OSError:
        return False


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
