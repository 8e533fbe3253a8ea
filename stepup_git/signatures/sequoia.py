"""In-process OpenPGP verification with Sequoia (pysequoia), the fast path for bulk commits.

It answers only what it can answer the same way as gpg: a signature that verifies (who, when) and a
signature whose issuer is not in the keyring. Anything else (a bad signature, an algorithm Sequoia's
policy refuses, a parse error) returns None and the caller asks gpg, the reference verifier. Whether a
key is expired or revoked, or a digest weak, is not decided here but by
:func:`stepup_git.signatures.assess.assess`, from the same keyring listing and signature packet for both
verifiers; a signature over anything but a strong digest is left to gpg (Sequoia's own policy refuses
SHA-1, and whether SHA-1 counts is the policy's choice, ``settings.allow_sha1``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .keyring import Keyring


def load(keyring: Keyring) -> SequoiaVerifier | None:
    """A verifier over the keyring's certificates, or None when pysequoia is not installed."""
    # A failed verify would otherwise capture a Rust backtrace (slow, and noise) when the server's
    # environment has RUST_BACKTRACE set; the library variable takes precedence for library errors.
    os.environ["RUST_LIB_BACKTRACE"] = "0"
    try:
        import pysequoia
    except ImportError:
        return None
    return SequoiaVerifier(pysequoia, keyring)


Answer = tuple[str, Any] | None  # ("good", details), ("unknown", issuer id), or None: gpg must decide

STRONG_HASHES = frozenset({"SHA224", "SHA256", "SHA384", "SHA512", "SHA3_256", "SHA3_512"})
PARALLEL_MIN = 512  # below this many signatures, forking workers costs more than it saves
PARALLEL_CORES = 3  # on fewer cores, handing signatures to workers costs what the second core gives (bench/)
_ACTIVE: SequoiaVerifier | None = None  # the verifier forked workers inherit


def _work(pair: tuple[bytes, bytes]) -> Answer:
    assert _ACTIVE is not None
    return _ACTIVE.verify(*pair)


class SequoiaVerifier:
    def __init__(self, module: Any, keyring: Keyring) -> None:
        self._pool: Any = None
        self._ps = module
        self.keyring = keyring
        self._certs: dict[str, Any] = {}  # primary fingerprint -> Cert
        self._by_key_id: dict[str, str] = {}  # 16-hex key id of a primary or subkey -> primary
        for path in keyring.certificate_files():
            try:
                certs = module.Cert.split_bytes(path.read_bytes())
            except Exception:  # unreadable by Sequoia: those keys go through gpg
                continue
            for cert in certs:
                primary = cert.fingerprint.upper()
                if primary not in keyring.keys:
                    continue
                self._certs[primary] = cert
        for primary, info in keyring.keys.items():
            for fpr in (primary, *(s.fingerprint for s in info.subkeys)):
                self._by_key_id[fpr[-16:]] = primary

    def issuer(self, sig: Any) -> str | None:
        fpr = getattr(sig, "issuer_fingerprint", None)
        if fpr:
            return self.keyring.primary_of(str(fpr).upper())
        key_id = getattr(sig, "issuer_key_id", None)
        return self._by_key_id.get(str(key_id).upper()) if key_id else None

    def verify(self, signature: bytes, payload: bytes) -> Answer:
        """("good", details) or ("unknown", issuer id), or None when gpg must decide."""
        ps = self._ps
        try:
            sig = ps.Sig.from_bytes(signature)
        except Exception:
            return None
        if str(getattr(sig, "hash_algorithm", "")).rpartition(".")[2].upper() not in STRONG_HASHES:
            return None
        primary = self.issuer(sig)
        if primary is None:
            issuer = getattr(sig, "issuer_fingerprint", None) or getattr(sig, "issuer_key_id", None)
            return ("unknown", str(issuer).upper() if issuer else None)
        cert = self._certs.get(primary)
        if cert is None:
            return None
        try:
            result = ps.verify(bytes=payload, store=lambda _ids: [cert], signature=sig)
        except Exception:
            return None
        for valid in result.valid_sigs:
            if str(valid.certificate).upper() == primary:
                created = sig.created
                expires = sig.expiration
                return ("good", (primary, str(valid.signing_key).upper(), _utc(created), _utc(expires)))
        return None


    def verify_many(self, pairs: Sequence[tuple[bytes, bytes]]) -> list[Answer]:
        """Verify many signatures, on every core when there are enough to pay for the workers."""
        workers = min(os.cpu_count() or 1, 8)
        if len(pairs) < PARALLEL_MIN or workers < PARALLEL_CORES:
            return [self.verify(sig, payload) for sig, payload in pairs]
        if self._pool is None:
            import multiprocessing  # only where workers pay (see PARALLEL_CORES)

            global _ACTIVE
            _ACTIVE = self
            self._pool = multiprocessing.get_context("fork").Pool(workers)
        return list(self._pool.map(_work, pairs, chunksize=max(16, len(pairs) // (workers * 4))))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def _utc(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
