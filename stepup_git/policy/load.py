"""Load a TOML policy (README.md, "The policy") once into frozen, typed values.

Every problem is reported as ``PATH:LINE: message``; a policy with any error never half-loads.
Patterns, tiers, durations and fingerprints are checked and compiled here so that judging cannot fail
on them later. The settings, tiers and rules are read here, the key tables in :mod:`.key_tables`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import PolicyError
from ..patterns import PathPatterns, RefPattern
from . import snapshot as snapshots
from .key_tables import read_authorities, read_keys
from .lint import policy_warnings
from .model import (
    ACTIONS,
    DEFAULT_PUSHER_ENV,
    DEFAULT_TIERS,
    MODES,
    PROOF_KINDS,
    REQUIRES,
    Policy,
    Rule,
    Settings,
    parse_duration,
)
from .reader import Reader


def configured_policy_path(git_dir: Path, configured_value: str | None) -> Path | None:
    """The policy file that ``git config stepup.policy`` names, relative to the git directory unless
    absolute; None when nothing is configured (each caller says so in its own words)."""
    if not configured_value:
        return None
    path = Path(configured_value)
    return path if path.is_absolute() else git_dir / path


def load(path: str | Path, *, cache_dir: Path | None = None) -> Policy:
    """Read and validate a policy file; raise :class:`PolicyError` listing every problem.

    With ``cache_dir``, the validated policy is kept there as a snapshot per policy content and path,
    and later loads of the same policy read the snapshot: the hook's start-up path then needs neither
    the TOML parser nor pathspec (see bench/README.md)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError([f"{path}: cannot read the policy: {exc.strerror or exc}"]) from None
    snapshot = None
    if cache_dir is not None:
        snapshot = snapshots.snapshot_file(cache_dir, path, raw)
        if (policy := snapshots.thaw(snapshot, path, hashlib.sha256(raw).hexdigest())) is not None:
            return policy
    policy, problems, _ = _load_bytes(path, raw)
    if policy is None:
        raise PolicyError(problems)
    if snapshot is not None:
        snapshots.write(snapshot, policy)
    return policy


def load_with_warnings(path: str | Path) -> tuple[Policy | None, list[str], list[str]]:
    """(the policy or None, its problems, its warnings), from the file itself."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [f"{path}: cannot read the policy: {exc.strerror or exc}"], []
    return _load_bytes(path, raw)


def _load_bytes(path: Path, raw: bytes) -> tuple[Policy | None, list[str], list[str]]:
    import tomllib

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [f"{path}:{line}: the policy is not valid UTF-8"], []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(m.group(1)) if m else max(1, len(text.splitlines()))
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        return None, [f"{path}:{line}: TOML syntax error: {message}"], []
    reader = Reader(path, text)
    policy = _build(reader, path, hashlib.sha256(raw).hexdigest(), data)
    if reader.problems:
        return None, sorted(reader.problems, key=_line_of), reader.warnings
    return policy, [], reader.warnings


def _line_of(problem: str) -> int:
    m = re.search(r":(\d+): ", problem)
    return int(m.group(1)) if m else 0


def _build(ld: Reader, path: Path, digest: str, data: dict[str, Any]) -> Policy:
    ld.unknown_keys(data, {"version", "settings", "tiers", "authorities", "keys", "rules"}, "")
    version = ld.take(data, "version", int, "", default=1)
    if version != 1:
        ld.error(ld.lines.of("", 0, "version"),
                 f"unsupported policy version {version}: this stepup-git reads version 1")

    tiers_table = ld.take(data, "tiers", dict, "", default={})
    ld.unknown_keys(tiers_table, {"order"}, "tiers")
    tiers = tuple(ld.string_list(tiers_table, "order", "tiers", 0) or DEFAULT_TIERS)
    if len(set(tiers)) != len(tiers) or not all(tiers):
        ld.error(ld.lines.of("tiers", 0, "order"), "tier names must be unique and non-empty")

    settings = _settings(ld, path, tiers, ld.take(data, "settings", dict, "", default={}))
    authority_entries = ld.take(data, "authorities", list, "", default=[])
    authorities = read_authorities(ld, tiers, authority_entries)
    named = {e["name"] for e in authority_entries if isinstance(e, dict) and isinstance(e.get("name"), str)}
    keys = read_keys(ld, tiers, ld.take(data, "keys", list, "", default=[]), named)
    rules = _rules(ld, tiers, settings, ld.take(data, "rules", list, "", default=[]))
    policy = Policy(path=path, digest=digest, settings=settings, tiers=tiers, keys=keys, rules=rules,
                    authorities=authorities)
    for line, message in policy_warnings(policy, open_ends=not ld.problems):
        ld.warn(line, message)
    return policy


def _settings(ld: Reader, path: Path, tiers: tuple[str, ...], table: dict[str, Any]) -> Settings:
    allowed = {"mode", "fresh_within", "clock_skew", "keyring", "audit_log", "pusher_env", "timeout", "break_glass",
               "syslog", "allow_sha1", "state", "repository", "ssh_revoked"}
    ld.unknown_keys(table, allowed, "settings")
    mode = ld.take(table, "mode", str, "settings", default="enforce")
    if mode not in MODES:
        ld.error(ld.lines.of("settings", 0, "mode"), f"mode must be \"enforce\" or \"audit\", not {mode!r}")
    fresh = ld.take(table, "fresh_within", str, "settings", default=timedelta(minutes=15), convert=parse_duration)
    if fresh <= timedelta(0):
        ld.error(ld.lines.of("settings", 0, "fresh_within"), "fresh_within must be longer than 0s")
    skew = ld.take(table, "clock_skew", str, "settings", default=timedelta(minutes=5), convert=parse_duration)
    timeout = ld.take(table, "timeout", str, "settings", default=timedelta(minutes=2), convert=parse_duration)
    if timeout <= timedelta(0):
        ld.error(ld.lines.of("settings", 0, "timeout"), "timeout must be longer than 0s")
    keyring = path.parent / ld.take(table, "keyring", str, "settings", default="keys")
    audit_log = ld.take(table, "audit_log", str, "settings")
    pusher_env = ld.string_list(table, "pusher_env", "settings", 0)
    break_glass = ld.take(table, "break_glass", str, "settings")
    if break_glass is not None and break_glass not in tiers:
        ld.error(ld.lines.of("settings", 0, "break_glass"),
                 f"unknown tier {break_glass!r} for break_glass; the tiers are {', '.join(tiers)}")
    syslog = ld.take(table, "syslog", bool, "settings", default=False)
    allow_sha1 = ld.take(table, "allow_sha1", bool, "settings", default=False)
    state = ld.take(table, "state", str, "settings")
    if state is not None:
        from ..state import setting_problem  # reads the connection string with libpq, only when one is given

        if problem := setting_problem(state):
            ld.error(ld.lines.of("settings", 0, "state"), problem)
    repository = ld.take(table, "repository", str, "settings")
    if repository is not None and not repository.strip():
        ld.error(ld.lines.of("settings", 0, "repository"), "repository must not be empty (leave it out to use "
                 "the repository's path)")
    ssh_revoked = ld.take(table, "ssh_revoked", str, "settings")
    return Settings(
        mode=mode,
        fresh_within=fresh,
        clock_skew=skew,
        keyring=keyring,
        audit_log=(path.parent / audit_log) if audit_log else None,
        pusher_env=tuple(pusher_env) if pusher_env else DEFAULT_PUSHER_ENV,
        timeout=timeout,
        break_glass=break_glass,
        syslog=syslog,
        allow_sha1=allow_sha1,
        state=state,
        repository=repository.strip() if repository else None,
        ssh_revoked=(path.parent / ssh_revoked) if ssh_revoked else None,
    )


def _rules(ld: Reader, tiers: tuple[str, ...], settings: Settings, entries: list[Any]) -> tuple[Rule, ...]:
    allowed = {"name", "refs", "on", "paths", "require", "tier", "fresh_within", "proofs", "signers", "bind_pusher"}
    rules: list[Rule] = []
    names: dict[str, int] = {}
    for i, entry in enumerate(entries):
        head = ld.lines.of("rules", i)
        if not isinstance(entry, dict):
            ld.error(head, "each [[rules]] entry must be a table")
            continue
        before = len(ld.problems)
        ld.unknown_keys(entry, allowed, "rules", i)
        name = ld.take(entry, "name", str, "rules", i, required=True)
        if name is not None:
            if not name.strip():
                ld.error(ld.lines.of("rules", i, "name"), "rule name must not be empty")
            elif name in names:
                ld.error(ld.lines.of("rules", i, "name"), f"duplicate rule name {name!r} (first at line {names[name]})")
            names.setdefault(name, head)
        require = ld.take(entry, "require", str, "rules", i, required=True)
        if require is not None and require not in REQUIRES:
            ld.error(ld.lines.of("rules", i, "require"),
                     f"require must be one of {', '.join(REQUIRES)}, not {require!r}")
        tier = ld.take(entry, "tier", str, "rules", i)
        if tier is None and require in ("signed", "step-up", "signed-tag"):
            ld.error(head, f"rule {name!r} needs a 'tier' (require = {require!r})")
        elif tier is not None and tier not in tiers:
            ld.error(ld.lines.of("rules", i, "tier"), f"unknown tier {tier!r}; the tiers are {', '.join(tiers)}")

        refs: list[RefPattern] = []
        for text in ld.string_list(entry, "refs", "rules", i) or ["**"]:
            try:
                refs.append(RefPattern.compile(text))
            except ValueError as exc:
                ld.error(ld.lines.of("rules", i, "refs"), str(exc))
        on = ld.string_list(entry, "on", "rules", i) or list(ACTIONS)
        for action in on:
            if action not in ACTIONS:
                ld.error(ld.lines.of("rules", i, "on"), f"unknown action {action!r}; actions are {', '.join(ACTIONS)}")
        paths = None
        if (path_texts := ld.string_list(entry, "paths", "rules", i)) is not None:
            try:
                paths = PathPatterns.compile(path_texts)
            except ValueError as exc:
                ld.error(ld.lines.of("rules", i, "paths"), str(exc))
        fresh = ld.take(entry, "fresh_within", str, "rules", i, default=settings.fresh_within, convert=parse_duration)
        if fresh <= timedelta(0):
            ld.error(ld.lines.of("rules", i, "fresh_within"), "fresh_within must be longer than 0s")
        proofs = ld.string_list(entry, "proofs", "rules", i) or list(PROOF_KINDS)
        for proof in proofs:
            if proof not in PROOF_KINDS:
                ld.error(ld.lines.of("rules", i, "proofs"),
                         f"unknown proof {proof!r}; proofs are {', '.join(PROOF_KINDS)}")
        signers = ld.take(entry, "signers", int, "rules", i, default=1)
        if signers < 1:
            ld.error(ld.lines.of("rules", i, "signers"), f"signers must be 1 or more, not {signers}")
        bind = ld.take(entry, "bind_pusher", bool, "rules", i, default=False)
        if len(ld.problems) > before or name is None or require is None:
            continue
        rules.append(Rule(name=name, refs=tuple(refs), on=frozenset(on), paths=paths, require=require, tier=tier,
                          fresh_within=fresh, proofs=tuple(dict.fromkeys(proofs)), signers=signers,
                          bind_pusher=bind, line=head, fresh_explicit="fresh_within" in entry))
    return tuple(rules)
