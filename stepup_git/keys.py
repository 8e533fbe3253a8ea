"""``stepup-git keys list|add|remove``: a policy's ``[[keys]]`` and its keyring folder (SPEC §7).

An edit keeps the policy's text: a new ``[[keys]]`` table is rendered with tomlkit and spliced in after
the last listed key, and a removed table is cut out by its lines, so every comment, blank line and
ordering outside the changed table stays byte for byte. (tomlkit's own array-of-tables editing would
hand the comment above the next section to the wrong table, or drop it with a removed key.) Each edit
is then proven before the policy file is replaced atomically:

1. the new text parses to exactly the old data with that one change (else the layout is refused);
2. ``policy check`` of the new text, beside the original, reports no error that the original lacked;
3. the policy file has not changed since it was read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import tomlkit

from .errors import PolicyError, StepupError, UsageError
from .files import replace_file
from .policy import Key, Policy, load, normalize_fingerprint, parse_ssh_key
from .policycheck import check_policy
from .signatures import KeyInfo, Keyring, keyring_files, run_gpg

_KEYS_HEADER = re.compile(r"""[ \t]*\[\[[ \t]*(keys|"keys"|'keys')[ \t]*\]\][ \t]*(#.*)?\s*\Z""")
_RULES_HEADER = re.compile(r"""[ \t]*\[\[[ \t]*(rules|"rules"|'rules')[ \t]*\]\]""")
_ANY_HEADER = re.compile(r"[ \t]*\[")
_SECRET_ARMOR = b"PRIVATE KEY"
# Not the keyring's "trust-model always": with it, listing an expired key wants a trustdb that
# --show-keys never creates, and gpg stops with nothing listed.
_SCRATCH_CONF = "no-autostart\nno-auto-key-retrieve\n"
_KIND = {"openpgp": "OpenPGP key", "ssh": "SSH key"}


# --- what a key file holds ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ShownKey:
    """One primary key of a key file, as ``gpg --show-keys`` describes it."""

    fingerprint: str
    uids: tuple[str, ...]
    expires: datetime | None
    revoked: bool
    secret: bool
    invalid: bool  # GnuPG would not import it (no user ID with a valid self-signature)


@contextlib.contextmanager
def _scratch_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="sgkeys"))
    try:
        (home / "gpg.conf").write_text(_SCRATCH_CONF)
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def show_keys(path: Path, home: Path) -> list[ShownKey]:
    """The primary keys in an OpenPGP key file (armored or binary); none when it holds no key."""
    out = run_gpg(home, ["--with-colons", "--fixed-list-mode", "--with-fingerprint", "--show-keys",
                         str(path)])
    keys: list[ShownKey] = []
    record: list[str] | None = None
    uids: list[str] = []
    fpr = ""
    for line in [*out.splitlines(), "pub:end"]:
        f = line.split(":")
        if f[0] in ("pub", "sec"):
            if record is not None and fpr:
                keys.append(ShownKey(fpr, tuple(uids), _when(record[6]), record[1] == "r",
                                     record[0] == "sec", record[1] == "i"))
            record, uids, fpr = f, [], ""
        elif f[0] == "fpr" and record is not None and not fpr and len(f) > 9:
            fpr = f[9].upper()
        elif f[0] == "uid" and record is not None and len(f) > 9:
            uids.append(f[9].replace("\\x3a", ":"))
    return keys


def _when(field: str) -> datetime | None:
    return datetime.fromtimestamp(int(field), UTC) if field.isdigit() else None


def _ssh_ids_in(path: Path) -> set[str]:
    ids: set[str] = set()
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                with contextlib.suppress(ValueError):
                    ids.add(parse_ssh_key(line)[1])
    return ids


def _ssh_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".pub" and p.is_file())
    except OSError:
        return []


# --- keys list ----------------------------------------------------------------------------------

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
    ssh_file = {i: p.name for p in _ssh_files(policy.settings.keyring) for i in _ssh_ids_in(p)}
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


# --- keys add -----------------------------------------------------------------------------------

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
        shown, data = _read_openpgp(key_file)
        key_id, comment = shown.fingerprint, _printable(shown.uids[0]) if shown.uids else None
        entry = {"fingerprint": key_id}
        suffix = ".asc" if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in data else ".gpg"
        file_name = f"{_safe(owner)}-{key_id[-16:]}{suffix}"
        if shown.revoked:
            warnings.append(f"key {key_id} is revoked: its signatures will not count")
        elif shown.expires is not None and shown.expires <= now:
            warnings.append(f"key {key_id} expired on {shown.expires:%Y-%m-%d}: its signatures will not count")
    else:
        line = ssh if ssh is not None else _read_ssh_file(ssh_file)  # type: ignore[arg-type]
        try:
            _, key_id = parse_ssh_key(line)
        except ValueError as exc:
            raise StepupError(str(exc)) from None
        line, comment = " ".join(line.split()), None
        entry = {"ssh": line}
        data = (line + "\n").encode()
        short = key_id.removeprefix("SHA256:")[:8].replace("/", "_").replace("+", "-")
        file_name = f"{_safe(owner)}-ssh-{short}.pub"
    if (listed := policy.key(key_id)) is not None:
        raise StepupError(f"key {key_id} is already listed in {policy_path} (line {listed.line}, "
                          f"owner {listed.owner}, tier {listed.tier})")
    entry.update(owner=owner, tier=tier)
    if expires is not None:
        entry["expires"] = expires

    real = policy_path.resolve()
    original = real.read_bytes()
    text = original.decode("utf-8")
    expected = tomllib.loads(text)
    expected.setdefault("keys", []).append(dict(entry))
    new_text = _insert(text, _render(entry, comment, _newline(text)), _spans(text, policy))
    _prove(new_text, expected, policy_path)

    folder = policy.settings.keyring
    target = folder / file_name
    made_folder = not folder.exists()
    made_file = _place(target, data)
    try:
        _replace_checked(policy_path, real, original, new_text)
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


def _read_openpgp(path: Path) -> tuple[ShownKey, bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    with _scratch_home() as home:
        shown = show_keys(path, home)
    if _SECRET_ARMOR in data or any(k.secret for k in shown):
        raise StepupError(f"{path} holds a secret key; give the public key only (gpg --armor --export FPR)")
    if len(shown) != 1:
        found = "no OpenPGP public key" if not shown else f"{len(shown)} primary keys"
        raise StepupError(f"{path} holds {found}; give a file with exactly one public key")
    if shown[0].invalid:
        raise StepupError(f"{path}: GnuPG would not import key {shown[0].fingerprint} "
                          "(it has no user ID with a valid self-signature)")
    return shown[0], data


def _read_ssh_file(path: Path) -> str:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the SSH public key file {path}: {exc}") from None
    if "PRIVATE KEY" in text:
        raise StepupError(f"{path} is a private SSH key; give the .pub file")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) != 1:
        raise StepupError(f"{path} holds {len(lines)} SSH keys; give a file with exactly one")
    return lines[0]


def _place(target: Path, data: bytes) -> bool:
    """Write a key file unless the same content is already there; True when it was created."""
    if target.exists():
        if target.read_bytes() == data:
            return False
        raise StepupError(f"{target} already exists with other content; remove or rename it first")
    replace_file(target, data)
    return True


def _render(entry: dict[str, Any], comment: str | None, newline: str) -> str:
    table = tomlkit.table()
    for name, value in entry.items():
        table.add(name, value)
    if comment:
        table[next(iter(entry))].comment(comment)
    aot = tomlkit.aot()
    aot.append(table)
    doc = tomlkit.document()
    doc.append("keys", aot)
    return doc.as_string().replace("\n", newline)


def _insert(text: str, table: str, spans: list[tuple[int, int]]) -> str:
    """The text with ``table`` after the last ``[[keys]]`` (or before the first ``[[rules]]``)."""
    newline = _newline(text)
    lines = text.splitlines(keepends=True)
    if spans:
        at = spans[-1][1]
    else:
        first_rule = next((i for i, line in enumerate(lines) if _RULES_HEADER.match(line)), None)
        if first_rule is not None:
            at = first_rule
            while at > 0 and lines[at - 1].lstrip().startswith("#"):
                at -= 1
            before = "".join(lines[:at])
            sep = newline if before and lines[at - 1].strip() else ""
            return before + sep + table + newline + "".join(lines[at:])
        at = len(lines)
    head, tail = lines[:at], lines[at:]
    if head and not head[-1].endswith("\n"):
        head[-1] += newline
    return "".join(head) + (newline if head else "") + table + "".join(tail)


# --- keys remove --------------------------------------------------------------------------------

def remove_keys(policy_path: Path, *, key: str | None = None, owner: str | None = None,
                all_of_owner: bool = False, keep_file: bool = False) -> tuple[list[str], list[str]]:
    """Remove matching keys from the policy and their files; return (what was done, warnings)."""
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
    text = original.decode("utf-8")
    expected = tomllib.loads(text)
    expected["keys"] = [e for e, k in zip(expected["keys"], policy.keys, strict=True) if k.id not in gone]
    if not expected["keys"]:
        del expected["keys"]
    spans = _spans(text, policy)
    lines = text.splitlines(keepends=True)
    for index in sorted((i for i, k in enumerate(policy.keys) if k.id in gone), reverse=True):
        _cut(lines, spans[index])
    new_text = "".join(lines)
    _prove(new_text, expected, policy_path)

    doomed, kept = _files_of(policy, gone)
    _replace_checked(policy_path, real, original, new_text)
    done = [f"removed {_KIND[k.kind]} {k.id} ({k.owner}, tier {k.tier}) from {policy_path}" for k in chosen]
    for path in doomed:
        if keep_file:
            done.append(f"kept key file {path} (--keep-file)")
        else:
            path.unlink(missing_ok=True)
            done.append(f"deleted key file {path}")
    done += [f"kept key file {path}: it also holds {others}" for path, others in kept]
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


def _files_of(policy: Policy, gone: set[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Key files that hold removed keys: those holding nothing else, and the others with what else."""
    folder = policy.settings.keyring
    doomed: list[Path] = []
    kept: list[tuple[Path, str]] = []
    held: list[tuple[Path, set[str]]] = [(p, _ssh_ids_in(p)) for p in _ssh_files(folder)]
    if any(k.fingerprint for k in policy.keys if k.id in gone):
        with _scratch_home() as home:
            held += [(p, {k.fingerprint for k in show_keys(p, home)}) for p in keyring_files(folder)]
    for path, ids in held:
        if ids & gone:
            if ids <= gone:
                doomed.append(path)
            else:
                kept.append((path, ", ".join(sorted(ids - gone))))
    return doomed, kept


def _cut(lines: list[str], span: tuple[int, int]) -> None:
    start, end = span
    if start > 0 and not lines[start - 1].strip():
        start -= 1
    elif end < len(lines) and not lines[end].strip():
        end += 1
    del lines[start:end]


def _shortfalls(policy: Policy, remaining: list[Key]) -> list[str]:
    """Rules that now have fewer keys of their tier than they need."""
    warnings = []
    for rule in policy.rules:
        if rule.tier is None:
            continue
        need = rule.signers if rule.require == "step-up" else 1
        before = len({k.owner for k in policy.keys if policy.satisfies(k, rule.tier)})
        after = len({k.owner for k in remaining if policy.satisfies(k, rule.tier)})
        if after < need and after < before:
            warnings.append(f"rule {rule.name!r} needs {need} signer(s) of tier {rule.tier} or higher, but "
                            f"now {after} person(s) hold such keys: it can never pass")
    return warnings


# --- editing the policy text --------------------------------------------------------------------

def _spans(text: str, policy: Policy) -> list[tuple[int, int]]:
    """Per ``[[keys]]`` table, in order: (header line index, index after its last key/value line)."""
    lines = text.splitlines(keepends=True)
    spans = []
    for i, line in enumerate(lines):
        if _KEYS_HEADER.match(line):
            end = i + 1
            for j in range(i + 1, len(lines)):
                if _ANY_HEADER.match(lines[j]):
                    break
                if lines[j].strip() and not lines[j].lstrip().startswith("#"):
                    end = j + 1
            spans.append((i, end))
    if len(spans) != len(policy.keys):
        raise StepupError(f"{policy.path}: cannot find each key as a [[keys]] table in the text "
                          f"({len(spans)} tables for {len(policy.keys)} keys); edit the file by hand")
    return spans


def _prove(new_text: str, expected: dict[str, Any], path: Path) -> None:
    """Step 1: the edited text means exactly the intended data."""
    try:
        got = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError:
        got = None
    if got != expected:
        raise StepupError(f"{path}: the [[keys]] tables are laid out in a way this command cannot edit "
                          "safely; nothing was changed, edit the file by hand")


def _replace_checked(shown: Path, real: Path, original: bytes, new_text: str) -> None:
    """Steps 2 and 3: check the new text beside the original, then replace the original atomically."""
    before = {_message(p, real) for p in check_policy(real)[0]}
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(new_text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        shutil.copymode(real, tmp)
        errors = [p.replace(str(tmp), str(shown)) for p in check_policy(tmp)[0]
                  if _message(p, tmp) not in before]
        if errors:
            raise PolicyError([f"{shown}: nothing was changed: the edit would make the policy invalid", *errors])
        if real.read_bytes() != original:
            raise StepupError(f"{shown} changed while it was being edited; nothing was changed, try again")
        os.replace(tmp, real)
    finally:
        tmp.unlink(missing_ok=True)


def _message(problem: str, path: Path) -> str:
    """A problem without its ``PATH:LINE:`` prefix, to compare problems across two files."""
    rest = problem.removeprefix(f"{path}:")
    return re.sub(r"^\d+: ", "", rest)


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _safe(owner: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.@-]", "_", owner).lstrip(".")
    return name[:64] or "key"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:120]


# --- command line -------------------------------------------------------------------------------

def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD, not {text!r}") from None


def register(subparsers: Any) -> None:
    """Add ``keys list``, ``keys add`` and ``keys remove``; each sets ``func(args) -> exit code``."""
    keys = subparsers.add_parser("keys", help="list, add or remove the policy's keys")
    commands = keys.add_subparsers(dest="keys_command", required=True, metavar="{list,add,remove}")

    show = commands.add_parser("list", help="every [[keys]] entry with its expiry, revocation and file")
    show.add_argument("--policy", type=Path, required=True, metavar="FILE")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_list)

    add = commands.add_parser("add", help="add a key to the policy and its keyring folder")
    add.add_argument("--policy", type=Path, required=True, metavar="FILE")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--key", type=Path, metavar="ARMORED_FILE", help="an OpenPGP public key file")
    what.add_argument("--ssh", metavar='"ssh-ed25519 AAAA... comment"', help="an SSH public key line")
    what.add_argument("--ssh-file", type=Path, metavar="PUBFILE", help="an SSH public key file (.pub)")
    add.add_argument("--owner", required=True, help="the pusher name the key belongs to")
    add.add_argument("--tier", required=True, help="one of the policy's [tiers].order")
    add.add_argument("--expires", type=_day, metavar="YYYY-MM-DD",
                     help="the policy stops honouring the key after this day (UTC)")
    add.set_defaults(func=cmd_add)

    rm = commands.add_parser("remove", help="remove keys from the policy and their unused key files")
    rm.add_argument("--policy", type=Path, required=True, metavar="FILE")
    rm.add_argument("key", nargs="?", metavar="FINGERPRINT|SSH-ID")
    rm.add_argument("--owner", help="remove the key of this owner")
    rm.add_argument("--all", action="store_true", help="with --owner: remove every key of the owner")
    rm.add_argument("--keep-file", action="store_true", help="keep the key files in the keyring folder")
    rm.set_defaults(func=cmd_remove)


def cmd_list(args: argparse.Namespace) -> int:
    policy, listed = list_keys(args.policy)
    if args.json:
        print(json.dumps({"policy": str(args.policy), "keyring": str(policy.settings.keyring),
                          "keys": [item.to_json() for item in listed]}, indent=2))
        return 0
    for line in render_table(listed):
        print(line)
    print(f"{len(listed)} key(s) in {args.policy}; keyring folder {policy.settings.keyring}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    done, warnings = add_key(args.policy, owner=args.owner, tier=args.tier, key_file=args.key,
                             ssh=args.ssh, ssh_file=args.ssh_file, expires=args.expires)
    for line in warnings:
        print(f"stepup-git: warning: {line}", file=sys.stderr)
    print(done)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    if args.all and args.owner is None:
        raise UsageError("--all needs --owner")
    done, warnings = remove_keys(args.policy, key=args.key, owner=args.owner, all_of_owner=args.all,
                                 keep_file=args.keep_file)
    for line in done:
        print(line)
    for line in warnings:
        print(f"stepup-git: warning: {line}", file=sys.stderr)
    return 0
