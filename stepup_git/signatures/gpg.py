"""gpg, the reference OpenPGP verifier, through python-gnupg (the only module that imports it).

Gpg verifies in the keyring's private GnuPG home, and every gpg it starts is killed once the policy's
``timeout`` has passed: python-gnupg itself waits for gpg without limit. It is loaded only when a
signature goes to gpg (one the in-process verifier does not accept).
"""

from __future__ import annotations

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
from .openpgp import validsig_digest
from .verified import Verified


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
            if validsig_digest(str(getattr(result, "stderr", "") or "")) != digest:
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
