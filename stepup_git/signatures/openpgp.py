"""OpenPGP signatures as bytes: their packets and digests, read directly.

The digest of a signature is read from its packet here, so that neither gpg's nor Sequoia's own
policy on digests decides; :func:`~.assess.assess` judges it. The verifiers are :mod:`.sequoia` (in
process) and :mod:`.gpg` (the reference).
"""

from __future__ import annotations

import base64

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


def validsig_digest(status: str) -> str | None:
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
