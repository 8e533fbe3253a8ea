"""The key files of a keyring folder (README.md, "Commands"): what an OpenPGP or SSH key file holds, read
safely, and which of them another policy sharing the folder still lists.

OpenPGP files are read with ``gpg --show-keys`` in a scratch GnuPG home that is thrown away, so
looking at a file never imports it anywhere.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import StepupError, UsageError
from ..files import replace_file
from ..signatures.keyring import keyring_files, run_gpg
from .model import normalize_fingerprint, parse_ssh_key

_SECRET_ARMOR = b"PRIVATE KEY"
# Not the keyring's "trust-model always": with it, listing an expired key wants a trustdb that
# --show-keys never creates, and gpg stops with nothing listed.
_SCRATCH_CONF = "no-autostart\nno-auto-key-retrieve\n"


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
def scratch_home() -> Iterator[Path]:
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


def ssh_ids_in(path: Path) -> set[str]:
    """The ``SHA256:...`` ids of the SSH public keys in a ``.pub`` file; lines that are none are skipped."""
    ids: set[str] = set()
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                with contextlib.suppress(ValueError):
                    ids.add(parse_ssh_key(line)[1])
    return ids


def ssh_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".pub" and p.is_file())
    except OSError:
        return []


def read_openpgp(path: Path) -> tuple[ShownKey, bytes]:
    """The one OpenPGP public key a file holds, and the file's bytes; refuses secret keys, several
    keys, and a key GnuPG would not import."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    with scratch_home() as home:
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


def read_ssh_file(path: Path) -> str:
    """The one SSH public key line of a ``.pub`` file; refuses private keys and several keys."""
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


def openpgp_file_name(owner: str, fingerprint: str, data: bytes) -> str:
    """The name a new OpenPGP key file gets: the owner, the key's long id, ``.asc`` when armored."""
    suffix = ".asc" if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in data else ".gpg"
    return f"{_safe(owner)}-{fingerprint[-16:]}{suffix}"


def ssh_file_name(owner: str, key_id: str) -> str:
    """The name a new SSH key file gets: the owner and the start of the key's ``SHA256:`` id."""
    short = key_id.removeprefix("SHA256:")[:8].replace("/", "_").replace("+", "-")
    return f"{_safe(owner)}-ssh-{short}.pub"


def place(target: Path, data: bytes) -> bool:
    """Write a key file unless the same content is already there; True when it was created."""
    if target.exists():
        if target.read_bytes() == data:
            return False
        raise StepupError(f"{target} already exists with other content; remove or rename it first")
    replace_file(target, data)
    return True


def files_holding(folder: Path, gone: set[str], *, openpgp: bool) -> list[tuple[Path, set[str]]]:
    """The key files of ``folder`` that hold keys of ``gone``, each with every key id it holds.
    OpenPGP files are read only when ``openpgp`` (some of ``gone`` are OpenPGP keys)."""
    held: list[tuple[Path, set[str]]] = [(p, ssh_ids_in(p)) for p in ssh_files(folder)]
    if openpgp:
        with scratch_home() as home:
            held += [(p, {k.fingerprint for k in show_keys(p, home)}) for p in keyring_files(folder)]
    return [(path, ids) for path, ids in held if ids & gone]


@dataclass(frozen=True, slots=True)
class Neighbour:
    """Another policy file whose keyring folder is the same as the edited policy's."""

    path: Path
    ids: frozenset[str]  # the key ids its [[keys]] list
    error: str | None = None  # why it could not be read: then it may list any key


def neighbours(policy_path: Path, folder: Path) -> list[Neighbour]:
    """The other ``*.toml`` files in the policy's own folder and in the keyring folder's parent whose
    ``settings.keyring`` (relative to that file, default ``keys``) is ``folder``, and the files there that
    cannot be read as TOML. Read leniently: a neighbour with errors still counts with what it lists."""
    me, target = policy_path.resolve(), folder.resolve()
    seen = {me}
    found: list[Neighbour] = []
    for directory in dict.fromkeys([policy_path.parent, folder.parent]):
        try:
            candidates = sorted(p for p in directory.glob("*.toml") if p.is_file())
        except OSError:
            continue
        for path in candidates:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            if (neighbour := _neighbour(path, target)) is not None:
                found.append(neighbour)
    return found


def _neighbour(path: Path, target: Path) -> Neighbour | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return Neighbour(path, frozenset(), f"cannot be read ({exc.strerror or exc})")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return Neighbour(path, frozenset(), f"is not valid TOML ({exc})")
    settings = data.get("settings")
    keyring = settings.get("keyring", "keys") if isinstance(settings, dict) else "keys"
    if not isinstance(keyring, str) or (path.parent / keyring).resolve() != target:
        return None
    ids: set[str] = set()
    entries = data.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        with contextlib.suppress(ValueError):
            if isinstance(fpr := entry.get("fingerprint"), str):
                ids.add(normalize_fingerprint(fpr))
            if isinstance(line := entry.get("ssh"), str):
                ids.add(parse_ssh_key(line)[1])
    return Neighbour(path, frozenset(ids), None)


def dispose(held: list[tuple[Path, set[str]]], gone: set[str], others: list[Neighbour], *,
            keep_file: bool) -> list[str]:
    """Delete the key files that hold nothing but keys of ``gone`` and that no other policy sharing
    the keyring folder (``others``) lists; keep the rest. One line per file saying what was done and why."""
    done: list[str] = []
    for path, ids in held:
        if not ids <= gone:
            done.append(f"kept key file {path}: it also holds {', '.join(sorted(ids - gone))}")
        elif keep_file:
            done.append(f"kept key file {path} (--keep-file)")
        elif users := [n for n in others if n.error is None and ids & n.ids]:
            reasons = "; ".join(f"{n.path} still lists key {', '.join(sorted(ids & n.ids))}" for n in users)
            done.append(f"kept key file {path}: {reasons}")
        elif unread := [n for n in others if n.error is not None]:
            reasons = "; ".join(f"{n.path} {n.error}" for n in unread)
            done.append(f"kept key file {path}: {reasons}, so it may still list the key; "
                        "delete the file by hand once no policy uses it")
        else:
            path.unlink(missing_ok=True)
            done.append(f"deleted key file {path}")
    return done


def _safe(owner: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.@-]", "_", owner).lstrip(".")
    return name[:64] or "key"
