"""Stand-ins for standard modules that are slow to import on the hook's start-up path.

``hashlib`` loads OpenSSL (about 3 ms) and ``base64`` pulls in ``re`` and ``struct``; the hook needs only
SHA-256 and strict base64, which the small built-in modules give directly.
"""

from __future__ import annotations

import binascii

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import sha256
else:
    try:  # the interpreter's own SHA-256 module: _sha256 up to Python 3.11, _sha2 from 3.12
        from _sha256 import sha256
    except ImportError:
        try:
            from _sha2 import sha256
        except ImportError:
            from hashlib import sha256


def b64decode(data: str | bytes) -> bytes:
    """Strict base64 (``base64.b64decode(data, validate=True)``): raises binascii.Error or ValueError."""
    return binascii.a2b_base64(data, strict_mode=True)


def b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


__all__ = ["b64decode", "b64encode", "sha256"]
