"""OpenPGP signatures: their packets read directly, and gpg, the reference verifier (python-gnupg).

The digest of a signature is read from its packet here, so that neither gpg's nor Sequoia's own
policy on digests decides; :func:`~.assess.assess` judges it. Gpg verifies in the keyring's private
GnuPG home, and every gpg it starts is killed once the policy's ``timeout`` has passed: python-gnupg
itself waits for gpg without limit.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import gnupg

from ..errors import SignatureError
from .keyring import Keyring
from .verified import Verified

PGP_MARK = b"-----BEGIN PGP SIGNATURE-----"

# OpenPGP hash algorithm ids (RFC 9580 §9.5). A signature is only as strong as its digest: one over a
# SHA-1 digest can be forged for chosen data, so SHA-1 and RIPEMD-160 (its 160-bit contemporary) count
# only when the policy sets ``settings.allow_sha1``; MD5 and unknown ids never do.
DIGESTS = {1: "MD5", 2: "SHA-1", 3: "RIPEMD-160", 8: "SHA-256", 9: "SHA-384", 10: "SHA-512", 11: "SHA-224",
           12: "SHA3-256", 14: "SHA3-512"}
STRONG_DIGESTS = frozenset({"SHA-256", "SHA-384", "SHA-512", "SHA-224", "SHA3-256", "SHA3-512"})
WEAK_DIGESTS = frozenset({"SHA-1", "RIPEMD-160"})
RESIGN_SHA512 = ("sign with SHA-512: echo 'personal-digest-preferences SHA512' >> ~/.gnupg/gpg.conf "
                 "(or gpg --digest-algo SHA512), then sign again")


class GpgVerifier:
    """The reference verifier: the system gpg, through python-gnupg, in the keyring's GnuPG home."""

    def __init__(self, keyring: Keyring, *, timeout: float) -> None:
        self.keyring = keyring
        self.timeout = timeout
        self._gpg: _BoundedGPG | None = None

    def verify(self, signature: bytes, payload: bytes, digest: str) -> Verified:
        """What gpg says of one signature packet whose digest, read from the packet, is ``digest``."""
        if self._gpg is None:
            if shutil.which("gpg") is None:
                raise SignatureError("gpg is not installed on the server (install gnupg)")
            self._gpg = _BoundedGPG(self.timeout, gnupghome=str(self.keyring.home), options=["--no-autostart"])
        with tempfile.NamedTemporaryFile(prefix="stepup-sig-", suffix=".asc") as f:
            f.write(signature)
            f.flush()
            result = self._gpg.bounded(self._gpg.verify_data, f.name, payload)
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


class _BoundedGPG(gnupg.GPG):  # type: ignore[misc]  # python-gnupg has no type information
    """python-gnupg's ``GPG``, except that each gpg it starts is killed after ``timeout`` seconds, and
    the call that waited for it (:meth:`bounded`, and the construction, which runs ``gpg --list-config``)
    raises a one-line :class:`SignatureError` instead of hanging with it."""

    def __init__(self, timeout: float, **kwargs: Any) -> None:
        self.timeout = timeout
        self._timers: dict[int, threading.Timer] = {}
        self._killed = False
        self.bounded(super().__init__, **kwargs)

    def bounded(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)``; a SignatureError if a gpg it started had to be killed."""
        self._killed = False
        try:
            result = call(*args, **kwargs)
        except Exception:  # what python-gnupg makes of a killed gpg (a broken pipe, a failed start)
            if self._killed:
                raise SignatureError(f"gpg did not answer within {self.timeout:g}s") from None
            raise
        if self._killed:
            raise SignatureError(f"gpg did not answer within {self.timeout:g}s")
        return result

    def _open_subprocess(self, args: Any, passphrase: bool = False) -> Any:
        proc = super()._open_subprocess(args, passphrase)
        timer = threading.Timer(self.timeout, self._kill, (proc,))
        timer.daemon = True
        self._timers[proc.pid] = timer
        timer.start()
        return proc

    def _collect_output(self, process: Any, result: Any, writer: Any = None, stdin: Any = None) -> Any:
        try:
            return super()._collect_output(process, result, writer, stdin)
        finally:
            if (timer := self._timers.pop(process.pid, None)) is not None:
                timer.cancel()
            if process.poll() is None:  # left early (the hook's deadline): no gpg outlives its caller
                process.kill()
                process.wait()

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            self._killed = True
            proc.kill()


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
