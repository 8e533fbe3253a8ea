"""The floor (bench/README.md): the least any in-process hook must spend on a push of N signed commits.

Two parts, timed separately in the interpreter of the stepup-git install (the same pygit2 and
pysequoia the hook uses):

- **walk**: open the source repository with pygit2, walk the N commits from its ``main`` and take
  each commit's signature and signed payload (``Commit.gpg_signature``, libgit2's own split);
- **verify**: verify each of those signatures over its payload with pysequoia against the bench key,
  one after another in one process, and check that every one verifies.

Run as ``python bench/floor.py REPO N KEYFILE [REPEAT]``; prints one JSON line
``{"walk": s, "verify": s, "commits": n}`` with the median of each part over REPEAT runs.
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def walk(repo_path: str, n: int) -> tuple[float, list[tuple[bytes, bytes]]]:
    """Seconds to open ``repo_path`` and read the signature and payload of ``n`` commits from main."""
    import pygit2
    from pygit2.enums import SortMode

    began = time.perf_counter()
    repo = pygit2.Repository(repo_path)
    pairs: list[tuple[bytes, bytes]] = []
    for commit in repo.walk(repo.references["refs/heads/main"].target, SortMode.NONE):
        signature, payload = commit.gpg_signature
        if signature is None:
            raise SystemExit(f"commit {commit.id} is not signed")
        pairs.append((signature, payload))
        if len(pairs) == n:
            break
    seconds = time.perf_counter() - began
    repo.free()
    if len(pairs) != n:
        raise SystemExit(f"{repo_path}: {len(pairs)} commits on main, expected {n}")
    return seconds, pairs


def verify(pairs: list[tuple[bytes, bytes]], key_file: str) -> float:
    """Seconds to verify every (signature, payload) with pysequoia against the certificate in ``key_file``."""
    import pysequoia

    began = time.perf_counter()
    cert = pysequoia.Cert.from_file(key_file)
    fingerprint = cert.fingerprint.upper()
    for signature, payload in pairs:
        sig = pysequoia.Sig.from_bytes(signature)
        result = pysequoia.verify(bytes=payload, store=lambda _ids: [cert], signature=sig)
        if not any(str(valid.certificate).upper() == fingerprint for valid in result.valid_sigs):
            raise SystemExit("a bench signature did not verify")
    return time.perf_counter() - began


def main(argv: list[str]) -> int:
    repo_path, n, key_file = argv[0], int(argv[1]), argv[2]
    repeat = int(argv[3]) if len(argv) > 3 else 1
    walks, verifies = [], []
    for _ in range(repeat):
        seconds, pairs = walk(repo_path, n)
        walks.append(seconds)
        verifies.append(verify(pairs, key_file))
    print(json.dumps({"walk": statistics.median(walks), "verify": statistics.median(verifies), "commits": n}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
