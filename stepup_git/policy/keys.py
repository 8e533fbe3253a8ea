"""The policy's keys (README.md): list them with what GnuPG and the keyring folder say, add one, remove some.

These are the operations behind ``stepup-git keys list|add|remove``; they return what was done and
the warnings, and raise :class:`StepupError`. An edit keeps the policy's text and is proven before it
replaces the file (see ``edit``).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..errors import StepupError, UsageError
from ..signatures.keyring import KeyInfo, Keyring
from .edit import replace_checked, with_key, without_keys
from .keyfiles import (
    dispose,
    files_holding,
    neighbours,
    openpgp_file_name,
    place,
    read_openpgp,
    read_ssh_file,
    ssh_file_name,
    ssh_files,
    ssh_ids_in,
)
from .lint import certified_at, holders
from .load import load
from .model import Key, Policy, normalize_fingerprint, parse_ssh_key

_KIND = {"openpgp": "OpenPGP key", "ssh": "SSH key", "ssh-certificate": "SSH certificates"}


@dataclass(frozen=True, slots=True)
class Listed:
    """One ``[[keys]]`` entry with what the policy, GnuPG and the keyring folder say of it."""

    key: Key
    policy_expired: bool
    openpgp: KeyInfo | None  # None for an SSH key, or an OpenPGP key missing from the folder
    problem: str | None  # why GnuPG would not accept its signatures now
    file: str | None  # the file in the keyring folder holding it

    @property
    def status(self) -> str:
        if self.key.ssh:
            return "n/a (SSH)"
        if self.openpgp is None:
            return "NOT IN KEYRING"
        if self.openpgp.revoked:
            return "REVOKED"
        expires = self.openpgp.expires
        if expires is not None:
            return f"{'EXPIRED' if self.problem else 'valid until'} {expires:%Y-%m-%d}"
        return "valid" if self.problem is None else self.problem

    def to_json(self) -> dict[str, object]:
        info = self.openpgp
        return {
            "id": self.key.id,
            "kind": self.key.kind,
            "ssh": self.key.ssh,
            "owner": self.key.owner,
            "tier": self.key.tier,
            "line": self.key.line,
            "policy_expires": self.key.expires.isoformat() if self.key.expires else None,
            "policy_expired": self.policy_expired,
            "openpgp": None if info is None else {
                "expires": info.expires.isoformat().replace("+00:00", "Z") if info.expires else None,
                "revoked": info.revoked,
                "problem": self.problem,
                "uids": list(info.uids),
            },
            "in_keyring": self.openpgp is not None if self.key.fingerprint else None,
            "file": self.file,
        }


def list_keys(policy_path: Path, *, now: datetime | None = None) -> tuple[Policy, list[Listed]]:
    """Every ``[[keys]]`` entry of the policy, in file order, with its OpenPGP and file state."""
    policy = load(policy_path)
    now = now or datetime.now(UTC)
    state = Path(tempfile.mkdtemp(prefix="sgkeys"))
    try:
        keyring = Keyring.open(policy, state)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    ssh_file = {i: p.name for p in ssh_files(policy.settings.keyring) for i in ssh_ids_in(p)}
    listed = []
    for key in policy.keys:
        expired = not key.honoured_on(now.date())
        if key.fingerprint:
            info = keyring.keys.get(key.fingerprint)
            problem = info.problem(now) if info else "the key is not in the keyring folder"
            listed.append(Listed(key, expired, info, problem, info.file if info else None))
        else:
            listed.append(Listed(key, expired, None, None, ssh_file.get(key.id)))
    return policy, listed


def render_table(listed: list[Listed]) -> list[str]:
    rows = [("KEY", "OWNER", "TIER", "POLICY EXPIRES", "OPENPGP", "FILE")]
    for item in listed:
        expires = str(item.key.expires) if item.key.expires else "-"
        if item.policy_expired:
            expires += " (past)"
        missing = "MISSING" if item.key.fingerprint else "-"
        rows.append((item.key.id, item.key.owner, item.key.tier, expires, item.status, item.file or missing))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
            for row in rows]


def add_key(policy_path: Path, *, owner: str, tier: str, key_file: Path | None = None,
            ssh: str | None = None, ssh_file: Path | None = None, expires: date | None = None,
            now: datetime | None = None) -> tuple[str, list[str]]:
    """Add one key to the policy and its keyring folder; return (what was done, warnings)."""
    if [key_file, ssh, ssh_file].count(None) != 2:
        raise UsageError("give exactly one of --key, --ssh or --ssh-file")
    now = now or datetime.now(UTC)
    policy = load(policy_path)
    owner = owner.strip()
    if not owner:
        raise UsageError("--owner must not be empty")
    if tier not in policy.tiers:
        raise StepupError(f"unknown tier {tier!r}; the tiers of {policy_path} are {', '.join(policy.tiers)}")
    warnings: list[str] = []
    if expires is not None and expires < now.date():
        warnings.append(f"the policy expiry {expires} is in the past: the policy will not honour this key")

    entry: dict[str, Any]
    if key_file is not None:
        shown, data = read_openpgp(key_file)
        key_id, comment = shown.fingerprint, _printable(shown.uids[0]) if shown.uids else None
        entry = {"fingerprint": key_id}
        file_name = openpgp_file_name(owner, key_id, data)
        if shown.revoked:
            warnings.append(f"key {key_id} is revoked: its signatures will not count")
        elif shown.expires is not None and shown.expires <= now:
            warnings.append(f"key {key_id} expired on {shown.expires:%Y-%m-%d}: its signatures will not count")
    else:
        line = ssh if ssh is not None else read_ssh_file(ssh_file)  # type: ignore[arg-type]
        try:
            _, key_id = parse_ssh_key(line)
        except ValueError as exc:
            raise StepupError(str(exc)) from None
        line, comment = " ".join(line.split()), None
        entry = {"ssh": line}
        data = (line + "\n").encode()
        file_name = ssh_file_name(owner, key_id)
    if (listed := policy.key(key_id)) is not None:
        raise StepupError(f"key {key_id} is already listed in {policy_path} (line {listed.line}, "
                          f"owner {listed.owner}, tier {listed.tier})")
    entry.update(owner=owner, tier=tier)
    if expires is not None:
        entry["expires"] = expires

    real = policy_path.resolve()
    original = real.read_bytes()
    new_text = with_key(original.decode("utf-8"), policy, entry, comment)

    folder = policy.settings.keyring
    target = folder / file_name
    made_folder = not folder.exists()
    made_file = place(target, data)
    try:
        replace_checked(policy_path, real, original, new_text)
    except BaseException:
        if made_file:
            target.unlink(missing_ok=True)
        if made_folder:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    until = f", policy expiry {expires}" if expires else ""
    stored = f"{target} (new)" if made_file else f"{target} (already there)"
    kind = _KIND["openpgp" if key_file is not None else "ssh"]
    return f"added {kind} {key_id} for {owner} (tier {tier}{until}) to {policy_path}; key file {stored}", warnings


def remove_keys(policy_path: Path, *, key: str | None = None, owner: str | None = None,
                all_of_owner: bool = False, keep_file: bool = False) -> tuple[list[str], list[str]]:
    """Remove matching keys from the policy and their files; return (what was done, warnings).

    A key file is deleted only when it holds nothing but removed keys and no other policy sharing the
    keyring folder (``keyfiles.neighbours``) lists them; ``keep_file`` keeps every file."""
    if (key is None) == (owner is None):
        raise UsageError("give a FINGERPRINT or SSH-ID, or --owner NAME")
    policy = load(policy_path)
    if key is not None:
        wanted = _key_id(key)
        chosen = [k for k in policy.keys if k.id == wanted]
        if not chosen:
            raise StepupError(f"no key {key} is listed in {policy_path} "
                              f"(see: stepup-git keys list --policy {policy_path})")
    else:
        chosen = [k for k in policy.keys if k.owner == owner]
        if not chosen:
            raise StepupError(f"no key of owner {owner!r} is listed in {policy_path}")
        if len(chosen) > 1 and not all_of_owner:
            raise StepupError(f"owner {owner!r} has {len(chosen)} keys ({', '.join(k.id for k in chosen)}); "
                              "give one key, or --all to remove them all")
    gone = {k.id for k in chosen}
    remaining = [k for k in policy.keys if k.id not in gone]

    real = policy_path.resolve()
    original = real.read_bytes()
    new_text = without_keys(original.decode("utf-8"), policy, gone)

    folder = policy.settings.keyring
    held = files_holding(folder, gone, openpgp=any(k.fingerprint for k in chosen))
    others = neighbours(policy_path, folder)
    replace_checked(policy_path, real, original, new_text)
    done = [f"removed {_KIND[k.kind]} {k.id} ({k.owner}, tier {k.tier}) from {policy_path}" for k in chosen]
    done += dispose(held, gone, others, keep_file=keep_file)
    found = {i for _, ids in held for i in ids}
    done += [f"no key file in {folder} holds {k.id}; nothing to delete"
             for k in chosen if k.authority is None and k.id not in found]
    return done, _shortfalls(policy, remaining)


def _key_id(text: str) -> str:
    text = text.strip()
    if text.startswith("SHA256:"):
        return text
    if text.split()[:1] and text.split()[0].startswith(("ssh-", "ecdsa-", "sk-")):
        try:
            return parse_ssh_key(text)[1]
        except ValueError as exc:
            raise StepupError(str(exc)) from None
    try:
        return normalize_fingerprint(text)
    except ValueError as exc:
        raise StepupError(f"{exc}, or an SSH key id (SHA256:...)") from None


def _shortfalls(policy: Policy, remaining: list[Key]) -> list[str]:
    """Rules that now have fewer keys of their tier than they need."""
    warnings = []
    for rule in policy.rules:
        if rule.tier is None or certified_at(policy, rule.tier):
            continue
        need = rule.signers if rule.require == "step-up" else 1
        before = len(holders(policy, rule.tier))
        after = len(holders(policy, rule.tier, remaining))
        if after < need and after < before:
            warnings.append(f"rule {rule.name!r} needs {need} signer(s) of tier {rule.tier} or higher, but "
                            f"now {after} person(s) hold such keys: it can never pass")
    return warnings


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:120]
