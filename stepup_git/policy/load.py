"""Load a TOML policy (SPEC §3) once into frozen, typed values.

Every problem is reported as ``PATH:LINE: message``; a policy with any error never half-loads.
Patterns, tiers, durations and fingerprints are checked and compiled here so that judging cannot fail
on them later.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import PolicyError
from ..files import replace_file
from ..patterns import PathPatterns, RefPattern

ACTIONS = ("create", "update", "force-push", "delete")
REQUIRES = ("signed", "step-up", "signed-tag", "deny")
PROOF_KINDS = ("push-certificate", "tip-signature")
MODES = ("enforce", "audit")
DEFAULT_TIERS = ("contributor", "maintainer", "release")
DEFAULT_PUSHER_ENV = (
    "STEPUP_PUSHER",
    "GL_USERNAME",
    "GITEA_PUSHER_NAME",
    "GL_USER",
    "GITHUB_USER_LOGIN",
    "REMOTE_USER",
)
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)

_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")


@dataclass(frozen=True, slots=True)
class Key:
    """A policy key: an OpenPGP primary fingerprint or an SSH public key, with its owner and tier."""

    id: str  # the OpenPGP fingerprint, or the SSH key's ``SHA256:...`` fingerprint
    owner: str
    tier: str
    line: int
    fingerprint: str | None = None
    ssh: str | None = None  # "type base64", without the comment
    expires: date | None = None

    @property
    def kind(self) -> str:
        return "ssh" if self.ssh else "openpgp"

    @property
    def short(self) -> str:
        return self.id[-16:] if self.fingerprint else self.id[:20]

    def honoured_on(self, day: date) -> bool:
        """The policy honours the key up to and including its ``expires`` day (UTC)."""
        return self.expires is None or day <= self.expires


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    refs: tuple[RefPattern, ...]
    on: frozenset[str]
    paths: PathPatterns | None
    require: str
    tier: str | None
    fresh_within: timedelta
    proofs: tuple[str, ...]
    signers: int
    bind_pusher: bool
    line: int
    fresh_explicit: bool = False  # the rule sets its own fresh_within (signed-tag then checks it)

    def matches_ref(self, ref: str) -> bool:
        return any(p.matches(ref) for p in self.refs)


@dataclass(frozen=True, slots=True)
class Settings:
    mode: str
    fresh_within: timedelta
    clock_skew: timedelta
    keyring: Path
    audit_log: Path | None
    pusher_env: tuple[str, ...]
    timeout: timedelta
    break_glass: str | None = None  # the tier whose signed push may override failing rules
    syslog: bool = False  # also send a summary of each audit record to syslog
    allow_sha1: bool = False  # let signatures over SHA-1 (or RIPEMD-160) digests count (SPEC §5.1)


@dataclass(frozen=True, slots=True)
class Policy:
    path: Path
    digest: str
    settings: Settings
    tiers: tuple[str, ...]
    keys: tuple[Key, ...]
    rules: tuple[Rule, ...]

    def rank(self, tier: str) -> int:
        return self.tiers.index(tier)

    def satisfies(self, key: Key, tier: str) -> bool:
        """A key satisfies a requirement of its own tier or any lower one."""
        return self.rank(key.tier) >= self.rank(tier)

    def key(self, key_id: str) -> Key | None:
        for k in self.keys:
            if k.id == key_id:
                return k
        return None


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"``: one or more whole numbers with a unit."""
    if not isinstance(text, str) or not text or _DURATION.sub("", text) != "":
        raise ValueError(f"bad duration {text!r}: use whole numbers with s, m, h or d, e.g. \"15m\"")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text)))


def normalize_fingerprint(text: str) -> str:
    fpr = text.replace(" ", "").upper()
    if not _FINGERPRINT.fullmatch(fpr):
        raise ValueError(
            f"malformed fingerprint {text!r}: expected the full primary key fingerprint "
            "(40 or 64 hex digits; spaces allowed)"
        )
    return fpr


def parse_ssh_key(text: str) -> tuple[str, str]:
    """Return ("type base64", "SHA256:...") for an SSH public key line, or raise ValueError."""
    parts = text.split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise ValueError(f"malformed SSH public key {text[:40]!r}: expected \"ssh-ed25519 AAAA... [comment]\"")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValueError("malformed SSH public key: the key data is not base64") from None
    n = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if blob[4 : 4 + n] != parts[0].encode():
        raise ValueError(f"malformed SSH public key: the key data is not a {parts[0]} key")
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"{parts[0]} {parts[1]}", f"SHA256:{digest}"


class _Lines:
    """Finds the line of a key in the TOML text, by table, array index and key name."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")
    _INLINE_KEY = re.compile(r"[{,]\s*([A-Za-z0-9_-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.where: dict[tuple[str, int, str | None], int] = {}
        table, index, counts = "", 0, {}  # type: tuple[str, int, dict[str, int]]
        inline: str | None = None  # inside `keys = [ {...}, ... ]` or `rules = [ ... ]`
        for lineno, line in enumerate(text.splitlines(), start=1):
            if inline is not None and line.lstrip().startswith("{"):
                n = counts[inline] = counts.get(inline, -1) + 1
                self.where.setdefault((inline, n, None), lineno)
                for key in self._INLINE_KEY.findall(line):
                    self.where.setdefault((inline, n, key), lineno)
                continue
            if inline is not None and line.strip().startswith("]"):
                inline = None
                continue
            if m := self._HEADER.match(line):
                table = m.group(2)
                if m.group(1) == "[[":
                    index = counts[table] = counts.get(table, -1) + 1
                else:
                    index = 0
                self.where.setdefault((table, index, None), lineno)
            elif m := self._KEY.match(line):
                name = m.group(1).strip('"')
                self.where.setdefault((table, index, name), lineno)
                if table == "" and name in ("keys", "rules") and line.rstrip().endswith("["):
                    inline = name

    def of(self, table: str, index: int = 0, key: str | None = None) -> int:
        return (self.where.get((table, index, key)) or self.where.get((table, index, None))
                or self.where.get(("", 0, table)) or 1)  # inline tables: the line of their key


class _Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = _Lines(text)
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def error(self, line: int, message: str) -> None:
        self.problems.append(f"{self.path}:{line}: {message}")

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(f"{self.path}:{line}: warning: {message}")

    def unknown_keys(self, table: Mapping[str, Any], allowed: set[str], where: str, index: int = 0) -> None:
        for name in table:
            if name not in allowed:
                line = self.lines.of(where, index, name)
                self.error(line, f"unknown key {name!r} in {_label(where, index)}; "
                           f"allowed: {', '.join(sorted(allowed))}")

    def take(
        self,
        table: Mapping[str, Any],
        name: str,
        kind: type | tuple[type, ...],
        where: str,
        index: int = 0,
        *,
        default: Any = None,
        required: bool = False,
        convert: Callable[[Any], Any] | None = None,
    ) -> Any:
        line = self.lines.of(where, index, name)
        if name not in table:
            if required:
                self.error(self.lines.of(where, index), f"{_label(where, index)} needs {name!r}")
            return default
        value = table[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.error(line, f"{name!r} must be {_kind_name(kind)}, not {_kind_name(type(value))}")
            return default
        if convert is not None:
            try:
                return convert(value)
            except ValueError as exc:
                self.error(line, f"{name!r}: {exc}")
                return default
        return value

    def string_list(self, table: Mapping[str, Any], name: str, where: str, index: int) -> list[str] | None:
        value = table.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(self.lines.of(where, index, name), f"{name!r} must be a list of strings")
            return None
        if not value:
            self.error(self.lines.of(where, index, name), f"{name!r} must not be empty")
            return None
        return value


def _label(where: str, index: int) -> str:
    return f"[[{where}]] #{index + 1}" if where in ("keys", "rules") else (f"[{where}]" if where else "the top level")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table",
             date: "a date (e.g. 2027-06-30)", float: "a number", datetime: "a date and time"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


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
        key = f"{__version__}\0".encode() + raw + b"\0" + os.fsencode(path.absolute())
        name = hashlib.sha256(key).hexdigest()[:32]
        snapshot = cache_dir / f"policy-{name}.json"
        if (policy := _thaw(snapshot, path, hashlib.sha256(raw).hexdigest())) is not None:
            return policy
    policy, problems, _ = _load_bytes(path, raw)
    if policy is None:
        raise PolicyError(problems)
    if snapshot is not None:
        _write_snapshot(snapshot, policy)
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
    loader = _Loader(path, text)
    policy = _build(loader, path, hashlib.sha256(raw).hexdigest(), data)
    if loader.problems:
        return None, sorted(loader.problems, key=_line_of), loader.warnings
    return policy, [], loader.warnings


# -- snapshots: a validated policy as plain JSON ---------------------------------------------------

SNAPSHOT_FORMAT = 2


def _freeze(policy: Policy) -> dict[str, Any]:
    s = policy.settings
    return {
        "format": SNAPSHOT_FORMAT,
        "path": str(policy.path),
        "digest": policy.digest,
        "tiers": list(policy.tiers),
        "settings": [s.mode, s.fresh_within.total_seconds(), s.clock_skew.total_seconds(), str(s.keyring),
                     str(s.audit_log) if s.audit_log else None, list(s.pusher_env), s.timeout.total_seconds(),
                     s.break_glass, s.syslog, s.allow_sha1],
        "keys": [[k.id, k.owner, k.tier, k.line, k.fingerprint, k.ssh, k.expires.isoformat() if k.expires else None]
                 for k in policy.keys],
        "rules": [[r.name, [[p.text, p.regex.pattern] for p in r.refs], sorted(r.on),
                   [list(r.paths.texts), r.paths.to_cache()] if r.paths else None, r.require, r.tier,
                   r.fresh_within.total_seconds(), list(r.proofs), r.signers, r.bind_pusher, r.line,
                   r.fresh_explicit] for r in policy.rules],
    }


def _thaw(snapshot: Path, path: Path, digest: str) -> Policy | None:
    """The policy a snapshot holds, or None when there is none for exactly this content and path (or
    it cannot be read: the policy is then loaded from its file)."""
    try:
        data = json.loads(snapshot.read_bytes())
        if data["format"] != SNAPSHOT_FORMAT or data["digest"] != digest or data["path"] != str(path):
            return None
        mode, fresh, skew, keyring, audit_log, pusher_env, timeout, break_glass, syslog, allow_sha1 = data["settings"]
        settings = Settings(mode=mode, fresh_within=timedelta(seconds=fresh), clock_skew=timedelta(seconds=skew),
                            keyring=Path(keyring), audit_log=Path(audit_log) if audit_log else None,
                            pusher_env=tuple(pusher_env), timeout=timedelta(seconds=timeout),
                            break_glass=break_glass, syslog=syslog, allow_sha1=bool(allow_sha1))
        keys = tuple(Key(id=kid, owner=owner, tier=tier, line=line, fingerprint=fpr, ssh=ssh,
                         expires=date.fromisoformat(expires) if expires else None)
                     for kid, owner, tier, line, fpr, ssh, expires in data["keys"])
        rules = tuple(
            Rule(name=name, refs=tuple(RefPattern(text, re.compile(regex)) for text, regex in refs), on=frozenset(on),
                 paths=PathPatterns.compile(paths[0], paths[1]) if paths else None, require=require, tier=tier,
                 fresh_within=timedelta(seconds=fresh_within), proofs=tuple(proofs), signers=signers,
                 bind_pusher=bind, line=line, fresh_explicit=explicit)
            for name, refs, on, paths, require, tier, fresh_within, proofs, signers, bind, line, explicit
            in data["rules"])
        return Policy(path=path, digest=digest, settings=settings, tiers=tuple(data["tiers"]), keys=keys,
                      rules=rules)
    except (OSError, ValueError, KeyError, TypeError, re.error):
        return None


def _write_snapshot(snapshot: Path, policy: Policy) -> None:
    """Best effort: a snapshot that cannot be written only costs the next push a full load."""
    with contextlib.suppress(OSError):
        replace_file(snapshot, json.dumps(_freeze(policy)).encode())


def _line_of(problem: str) -> int:
    m = re.search(r":(\d+): ", problem)
    return int(m.group(1)) if m else 0


def _build(ld: _Loader, path: Path, digest: str, data: dict[str, Any]) -> Policy:
    ld.unknown_keys(data, {"version", "settings", "tiers", "keys", "rules"}, "")
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
    keys = _keys(ld, tiers, ld.take(data, "keys", list, "", default=[]))
    rules = _rules(ld, tiers, settings, keys, ld.take(data, "rules", list, "", default=[]))
    return Policy(path=path, digest=digest, settings=settings, tiers=tiers, keys=keys, rules=rules)


def _settings(ld: _Loader, path: Path, tiers: tuple[str, ...], table: dict[str, Any]) -> Settings:
    allowed = {"mode", "fresh_within", "clock_skew", "keyring", "audit_log", "pusher_env", "timeout", "break_glass",
               "syslog", "allow_sha1"}
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
    )


def _keys(ld: _Loader, tiers: tuple[str, ...], entries: list[Any]) -> tuple[Key, ...]:
    keys: list[Key] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        head = ld.lines.of("keys", i)
        if not isinstance(entry, dict):
            ld.error(head, "each [[keys]] entry must be a table")
            continue
        ld.unknown_keys(entry, {"fingerprint", "ssh", "owner", "tier", "expires"}, "keys", i)
        owner = ld.take(entry, "owner", str, "keys", i, required=True)
        tier = ld.take(entry, "tier", str, "keys", i, required=True)
        if tier is not None and tier not in tiers:
            ld.error(ld.lines.of("keys", i, "tier"), f"unknown tier {tier!r}; the tiers are {', '.join(tiers)}")
        if owner is not None and not owner.strip():
            ld.error(ld.lines.of("keys", i, "owner"), "owner must not be empty")
        expires = ld.take(entry, "expires", date, "keys", i)
        if isinstance(expires, datetime):
            expires = expires.astimezone(UTC).date() if expires.tzinfo else expires.date()
        fpr = ld.take(entry, "fingerprint", str, "keys", i, convert=normalize_fingerprint)
        ssh = ld.take(entry, "ssh", str, "keys", i, convert=parse_ssh_key)
        if ("fingerprint" in entry) == ("ssh" in entry):
            ld.error(head, "each [[keys]] entry needs exactly one of 'fingerprint' (OpenPGP) or 'ssh'")
            continue
        key_id = fpr if fpr else (ssh[1] if ssh else None)
        if key_id is None or owner is None or tier is None or tier not in tiers:
            continue
        if key_id in seen:
            ld.error(head, f"key {key_id} is listed twice (first at line {seen[key_id]})")
            continue
        seen[key_id] = head
        keys.append(Key(id=key_id, owner=owner, tier=tier, line=head, fingerprint=fpr,
                        ssh=ssh[0] if ssh else None, expires=expires))
    return tuple(keys)


def _rules(
    ld: _Loader, tiers: tuple[str, ...], settings: Settings, keys: tuple[Key, ...], entries: list[Any]
) -> tuple[Rule, ...]:
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
        rule = Rule(name=name, refs=tuple(refs), on=frozenset(on), paths=paths, require=require, tier=tier,
                    fresh_within=fresh, proofs=tuple(dict.fromkeys(proofs)), signers=signers,
                    bind_pusher=bind, line=head, fresh_explicit="fresh_within" in entry)
        if require == "step-up" and signers > len(rule.proofs):
            ld.warn(head, f"rule {name!r} needs {signers} signers but accepts {len(rule.proofs)} kind(s) of proof "
                    "(a push certificate and a tip signature give one signer each): it can never pass")
        if tier is not None and require == "step-up":
            # signers counts people, not keys (SPEC §4.3)
            people = sorted({k.owner for k in keys if tiers.index(k.tier) >= tiers.index(tier)})
            if len(people) < signers:
                held = f" ({', '.join(people)})" if people else ""
                ld.warn(head, f"rule {name!r} needs {signers} signer(s) of tier {tier} or higher, "
                        f"but only {len(people)} person(s) hold such keys{held} and signers counts people: "
                        "it can never pass")
        rules.append(rule)
    if not ld.problems:
        _guard_warnings(ld, tuple(rules))
    return tuple(rules)


def _sample_ref(pattern: RefPattern) -> str:
    """A ref name the pattern matches, with its wildcards filled in."""
    return pattern.text.replace("**", "stepup/sample").replace("*", "sample")


def _guards_deletion(rule: Rule) -> bool:
    """A delete has no changed paths and no added commits: only these rules can refuse one."""
    return "delete" in rule.on and rule.paths is None and rule.require in ("step-up", "deny", "signed-tag")


def _guard_warnings(ld: _Loader, rules: tuple[Rule, ...]) -> None:
    """Warnings for what a policy leaves open around what it guards (SPEC §2)."""
    for rule in rules:
        if (rule.paths is None and rule.require != "step-up") or not rule.on - {"delete"}:
            continue
        open_refs = [p.text for p in rule.refs
                     if not any(_guards_deletion(d) and d.matches_ref(_sample_ref(p)) for d in rules)]
        if open_refs:
            ld.warn(rule.line, f"rule {rule.name!r} guards {', '.join(open_refs)} but not their deletion: deleting "
                    "such a ref and creating it again at an old commit rolls it back unchecked; add a rule with "
                    "on = [\"delete\"] and require = \"step-up\" (or \"deny\") for these refs")
    replace_ref = "refs/replace/" + "0" * 40
    if not any(r.require in ("deny", "step-up") and r.paths is None and "create" in r.on and r.matches_ref(replace_ref)
               for r in rules):
        ld.warn(1, REPLACE_WARNING)


REPLACE_WARNING = ("no rule guards refs/replace/*: stepup-git judges objects as they are, but other tools reading "
                   "the repository through git would see a pushed replacement instead of the real object; add a rule "
                   "with refs = [\"refs/replace/**\"] and require = \"deny\"")
