"""Signatures (docs/semantics.md, "Valid signatures"): verify them, and decide whether they count under the policy.

One module per concern: :mod:`.verified` (the values), :mod:`.verifier` (which path verifies a
signature), :mod:`.openpgp` (OpenPGP packets and gpg, through python-gnupg), :mod:`.sequoia` (the
in-process fast path, pysequoia), :mod:`.ssh` (``ssh-keygen -Y verify``), :mod:`.keyring` (the policy's
private GnuPG home) and :mod:`.assess` (whether a verified signature counts).
"""

from __future__ import annotations

from .assess import assess
from .keyring import KeyInfo, Keyring, keyring_files, keyring_problems, run_gpg
from .verified import Assessment, Verified
from .verifier import Verifier

__all__ = ["Assessment", "KeyInfo", "Keyring", "Verified", "Verifier", "assess", "keyring_files",
           "keyring_problems", "run_gpg"]
