"""A validated policy kept as plain JSON, so that later pushes need neither the TOML parser nor pathspec.

A snapshot is named for the package version, the policy's bytes and its path: any change to one of
them names another file, and a snapshot that does not hold exactly this policy is never read. See
bench/README.md for what it saves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .. import __version__
from ..files import replace_file
from ..patterns import PathPatterns, RefPattern
from .model import Authority, Key, Policy, Rule, Settings

SNAPSHOT_FORMAT = 3  # 3: SSH certificate authorities, settings.ssh_revoked


def snapshot_file(cache_dir: Path, path: Path, raw: bytes) -> Path:
    """Where the snapshot of the policy file ``path`` holding ``raw`` is kept."""
    key = f"{__version__}\0".encode() + raw + b"\0" + os.fsencode(path.absolute())
    name = hashlib.sha256(key).hexdigest()[:32]
    return cache_dir / f"policy-{name}.json"


def freeze(policy: Policy) -> dict[str, Any]:
    s = policy.settings
    return {
        "format": SNAPSHOT_FORMAT,
        "path": str(policy.path),
        "digest": policy.digest,
        "tiers": list(policy.tiers),
        "settings": [s.mode, s.fresh_within.total_seconds(), s.clock_skew.total_seconds(), str(s.keyring),
                     str(s.audit_log) if s.audit_log else None, list(s.pusher_env), s.timeout.total_seconds(),
                     s.break_glass, s.syslog, s.allow_sha1, s.state, s.repository,
                     str(s.ssh_revoked) if s.ssh_revoked else None],
        "keys": [[k.id, k.owner, k.tier, k.line, k.fingerprint, k.ssh, k.expires.isoformat() if k.expires else None,
                  k.authority] for k in policy.keys],
        "authorities": [[a.name, a.ssh, a.id, a.tier, a.max_validity.total_seconds(), a.line]
                        for a in policy.authorities],
        "rules": [[r.name, [[p.text, p.regex.pattern] for p in r.refs], sorted(r.on),
                   [list(r.paths.texts), r.paths.to_cache()] if r.paths else None, r.require, r.tier,
                   r.fresh_within.total_seconds(), list(r.proofs), r.signers, r.bind_pusher, r.line,
                   r.fresh_explicit] for r in policy.rules],
    }


def thaw(snapshot: Path, path: Path, digest: str) -> Policy | None:
    """The policy a snapshot holds, or None when there is none for exactly this content and path (or
    it cannot be read: the policy is then loaded from its file)."""
    try:
        data = json.loads(snapshot.read_bytes())
        if data["format"] != SNAPSHOT_FORMAT or data["digest"] != digest or data["path"] != str(path):
            return None
        (mode, fresh, skew, keyring, audit_log, pusher_env, timeout, break_glass, syslog, allow_sha1, state,
         repository, ssh_revoked) = data["settings"]
        settings = Settings(mode=mode, fresh_within=timedelta(seconds=fresh), clock_skew=timedelta(seconds=skew),
                            keyring=Path(keyring), audit_log=Path(audit_log) if audit_log else None,
                            pusher_env=tuple(pusher_env), timeout=timedelta(seconds=timeout),
                            break_glass=break_glass, syslog=syslog, allow_sha1=bool(allow_sha1), state=state,
                            repository=repository, ssh_revoked=Path(ssh_revoked) if ssh_revoked else None)
        keys = tuple(Key(id=kid, owner=owner, tier=tier, line=line, fingerprint=fpr, ssh=ssh,
                         expires=date.fromisoformat(expires) if expires else None, authority=authority)
                     for kid, owner, tier, line, fpr, ssh, expires, authority in data["keys"])
        authorities = tuple(Authority(name=name, ssh=ssh, id=ca_id, tier=tier,
                                      max_validity=timedelta(seconds=longest), line=line)
                            for name, ssh, ca_id, tier, longest, line in data["authorities"])
        rules = tuple(
            Rule(name=name, refs=tuple(RefPattern(text, re.compile(regex)) for text, regex in refs), on=frozenset(on),
                 paths=PathPatterns.compile(paths[0], paths[1]) if paths else None, require=require, tier=tier,
                 fresh_within=timedelta(seconds=fresh_within), proofs=tuple(proofs), signers=signers,
                 bind_pusher=bind, line=line, fresh_explicit=explicit)
            for name, refs, on, paths, require, tier, fresh_within, proofs, signers, bind, line, explicit
            in data["rules"])
        return Policy(path=path, digest=digest, settings=settings, tiers=tuple(data["tiers"]), keys=keys,
                      rules=rules, authorities=authorities)
    except (OSError, ValueError, KeyError, TypeError, re.error):
        return None


def write(snapshot: Path, policy: Policy) -> None:
    """Best effort: a snapshot that cannot be written only costs the next push a full load."""
    with contextlib.suppress(OSError):
        replace_file(snapshot, json.dumps(freeze(policy)).encode())
