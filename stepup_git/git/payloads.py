"""What a signature in a Git object signs: a commit or annotated tag split into (signature, signed
payload), exactly as Git splits it to verify it."""

from __future__ import annotations

import re

SIG_MARKERS = (b"-----BEGIN PGP SIGNATURE-----", b"-----BEGIN SSH SIGNATURE-----",
               b"-----BEGIN SIGNED MESSAGE-----")


def split_tag(raw: bytes) -> tuple[bytes | None, bytes]:
    """Split a raw annotated tag object into (signature block, signed payload)."""
    best = -1
    for marker in SIG_MARKERS:
        at = raw.rfind(b"\n" + marker)
        if at > best:
            best = at
    if best < 0:
        return None, raw
    return raw[best + 1 :], raw[: best + 1]


def split_commit(raw: bytes, *, sha256: bool = False) -> tuple[bytes | None, bytes]:
    """Split a raw commit into (signature, signed payload) as Git does (``parse_buffer_signed_by_header``).

    The signature is the header of the repository's own object format: ``gpgsig`` in a SHA-1
    repository, ``gpgsig-sha256`` in a SHA-256 one (``sha256``). The payload is the commit without any
    header whose name starts with ``gpgsig`` (either format's, with its continuation lines). A commit
    carrying only the other format's header is unsigned; two headers of its own format make no
    signature (Git would join them into one block, which is never one valid signature)."""
    own = b"gpgsig-sha256 " if sha256 else b"gpgsig "
    # The header ends at the first empty line (none at all when the first line is empty; without an
    # empty line every line is a header).
    at = raw.find(b"\n\n")
    end = 0 if raw.startswith(b"\n") else len(raw) if at < 0 else at + 1
    header = raw[:end]
    kept: list[bytes] = []
    signatures: list[bytes] = []
    start = 0  # where the header not yet kept begins
    at = 0 if header.startswith(b"gpgsig") else _next_signature_header(header, 0)
    while at >= 0:
        block = _SIGNATURE_HEADER.match(header, at)
        assert block is not None  # the line starts with "gpgsig"
        kept.append(header[start:at])
        if header.startswith(own, at):
            signatures.append(header[at + len(own) : block.end()])
        start = block.end()
        at = _next_signature_header(header, start)
    if not start:
        return None, raw  # no signature header: the payload is the whole commit
    payload = b"".join(kept) + header[start:] + raw[end:]
    if len(signatures) != 1:
        return None, payload
    # a continuation line carries one space more than the line it continues
    signature = signatures[0].replace(b"\n ", b"\n")
    return (signature if signature.endswith(b"\n") else signature + b"\n"), payload


def _next_signature_header(header: bytes, start: int) -> int:
    """Where the next header line from ``start`` (a line's start) whose name starts with "gpgsig"
    begins, or -1."""
    at = header.find(b"\ngpgsig", start - 1) if start else header.find(b"\ngpgsig")
    return at + 1 if at >= 0 else -1


# A header line whose name starts with "gpgsig", with its continuation lines (each starts with a space).
_SIGNATURE_HEADER = re.compile(rb"gpgsig[^\n]*(?:\n|\Z)(?: [^\n]*(?:\n|\Z))*")
