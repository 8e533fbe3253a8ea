"""Verify signatures (docs/semantics.md, "Valid signatures"): choose the path for each, and say what it verifies as.

Verification answers one question: does this signature verify over these exact bytes, and by which
key, made when? (:class:`~.verified.Verified`). OpenPGP signatures go to Sequoia in-process when it can
answer (:mod:`.sequoia`), else to gpg, the reference verifier (:mod:`.gpg`); SSH signatures to
``ssh-keygen`` (:mod:`.ssh`). Whether a signature counts is decided once, in :mod:`.assess`, so every
path gives the same verdict.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..policy import Policy
from . import sequoia
from .keyring import Keyring
from .openpgp import PGP_MARK, RESIGN_SHA512, STRONG_DIGESTS, WEAK_DIGESTS, packet_digest, signature_bodies
from .verified import SSH_MARK, Verified

if TYPE_CHECKING:
    from .gpg import GpgVerifier  # loaded when a signature first needs gpg
    from .ssh import SshVerifier  # loaded for the first SSH signature


class Verifier:
    """Verifies OpenPGP signatures against the private keyring and SSH signatures against the policy."""

    def __init__(self, policy: Policy, keyring: Keyring, state_dir: Path, *, timeout: float = 30,
                 fast: bool = True, now: datetime | None = None) -> None:
        self.policy = policy
        self.keyring = keyring
        self.state_dir = state_dir
        self.timeout = timeout
        self.fast = fast  # try the in-process Sequoia verifier first (stepup_git.signatures.sequoia)
        self._fast: Any = None
        self._gpg: GpgVerifier | None = None  # made when a signature first needs gpg
        self.now = now  # certificates are judged at ``now`` (docs/semantics.md): never kept past the push
        self._ssh: SshVerifier | None = None  # made when a signature first is an SSH one

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
            if self._ssh is None:
                from .ssh import SshVerifier

                self._ssh = SshVerifier(self.policy, self.keyring, self.state_dir, timeout=self.timeout, now=self.now)
            return self._ssh.verify(signature, payload)
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
        # Steps 2 and 3 (gpg's verdict, and what it means) are GpgVerifier.verify's.
        if self._gpg is None:
            from .gpg import GpgVerifier

            self._gpg = GpgVerifier(self.keyring, timeout=self.timeout)
        return self._gpg.verify(signature, payload, digest)


def _from_answer(answer: tuple[str, Any], digest: str) -> Verified:
    kind, detail = answer
    if kind == "good":
        primary, signing_key, created, expires = detail
        return Verified(True, "openpgp", key_id=primary, signing_key=signing_key, created=created, expires=expires,
                        digest=digest)
    return Verified(False, "openpgp", key_id=detail, problem=f"signed by unknown key {detail}", digest=digest)
