"""The policy's keyring: a private GnuPG home owned by stepup-git, and an SSH allowed-signers file.

The home is built from the keyring folder once per content digest and then only read. It is built in a
temporary folder and renamed into place, so two pushes arriving at once never see a half-built home.
The server user's own ``~/.gnupg`` is never consulted: the policy, not the web of trust, decides trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import process
from ..errors import PolicyError, SignatureError
from ..files import replace_file
from ..policy import Policy

KEY_SUFFIXES = (".asc", ".gpg", ".pgp")
GPG_CONF = "trust-model always\nno-autostart\nno-auto-key-retrieve\n"
_FORMAT = "3"  # bump when the cached listing changes shape, or when verifications cached under the keyring's
# digest may no longer hold (2: digests are read from signature packets; SHA-256 repositories; 3: signatures
# by SSH certificates, earlier refused as malformed)


@dataclass(frozen=True, slots=True)
class SubKey:
    fingerprint: str
    expires: datetime | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What GnuPG says of one primary key in the keyring."""

    fingerprint: str
    uids: tuple[str, ...]
    expires: datetime | None
    revoked: bool
    subkeys: tuple[SubKey, ...]
    file: str

    def problem(self, now: datetime, signing_key: str | None = None) -> str | None:
        """Why the key cannot sign at ``now`` in OpenPGP terms, or None."""
        if self.revoked:
            return "the key is revoked"
        if self.expires is not None and self.expires <= now:
            return f"the key expired on {self.expires:%Y-%m-%d}"
        for sub in self.subkeys:
            if sub.fingerprint == signing_key:
                if sub.revoked:
                    return f"the signing subkey {sub.fingerprint[-16:]} is revoked"
                if sub.expires is not None and sub.expires <= now:
                    return f"the signing subkey {sub.fingerprint[-16:]} expired on {sub.expires:%Y-%m-%d}"
        return None


class Keyring:
    """The GnuPG home and key listing for one keyring folder content."""

    def __init__(self, home: Path, digest: str, keys: dict[str, KeyInfo], folder: Path) -> None:
        self.home = home
        self.digest = digest
        self.keys = keys
        self.folder = folder
        self._primary = {sub.fingerprint: k.fingerprint for k in keys.values() for sub in k.subkeys}
        self._primary.update({k: k for k in keys})

    def primary_of(self, fingerprint: str) -> str | None:
        """The primary fingerprint for a primary or subkey fingerprint."""
        return self._primary.get(fingerprint.upper())

    def certificate_files(self) -> list[Path]:
        return keyring_files(self.folder)

    @classmethod
    def open(cls, policy: Policy, state_dir: Path) -> Keyring:
        """Return the keyring for ``policy``, building its GnuPG home under ``state_dir`` if needed."""
        folder = policy.settings.keyring
        files = keyring_files(folder)
        digest = folder_digest(files)
        base = state_dir / "keyring"
        home = base / digest[:20]
        listing = home / "listing.json"
        if not listing.is_file():
            _build(home, files, digest)
        try:
            data = json.loads(listing.read_text())
        except (OSError, ValueError) as exc:
            raise SignatureError(f"cannot read the keyring listing {listing}: {exc}") from None
        keys = {fpr: _info_from_json(v) for fpr, v in data["keys"].items()}
        return cls(home, digest, keys, folder)

    def allowed_signers(self, policy: Policy, state_dir: Path) -> Path:
        """An allowed-signers file for the policy's SSH keys (principal = a name derived from the key)."""
        lines = [f'{ssh_principal(k.id)} namespaces="git" {k.ssh}\n' for k in policy.keys if k.ssh]
        content = "".join(lines)
        path = state_dir / "keyring" / f"allowed_signers-{hashlib.sha256(content.encode()).hexdigest()[:20]}"
        if not path.is_file():
            replace_file(path, content.encode())
        return path


def ssh_principal(key_id: str) -> str:
    return "key-" + hashlib.sha256(key_id.encode()).hexdigest()[:32]


def keyring_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix in KEY_SUFFIXES and p.is_file())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PolicyError([f"{folder}: cannot read the keyring folder: {exc.strerror}"]) from None


def folder_digest(files: list[Path]) -> str:
    h = hashlib.sha256(_FORMAT.encode())
    for path in files:
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def run_gpg(home: Path, args: list[str], *, timeout: float = 30, stdin: bytes | None = None) -> str:
    """gpg's output for ``args`` in the GnuPG home ``home``; exit status 2 (some keys could not be
    imported or listed) is left for the caller to find in that output."""
    proc = process.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", *args], input=stdin,
                       timeout=timeout, ok=(0, 2), error=SignatureError, install_hint="install gnupg")
    return proc.stdout.decode("utf-8", errors="replace")


def _build(home: Path, files: list[Path], digest: str) -> None:
    import tempfile  # only when a keyring's home is built, once per keyring content

    home.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=home.parent))
    try:
        tmp.chmod(0o700)
        (tmp / "gpg.conf").write_text(GPG_CONF)
        keys: dict[str, dict[str, object]] = {}
        for path in files:
            before = set(_list(tmp))
            run_gpg(tmp, ["--import", "--import-options", "import-clean", str(path)])
            for fpr, info in _list(tmp).items():
                if fpr not in before:
                    info["file"] = path.name
                    keys[fpr] = info
        for fpr, info in _list(tmp).items():  # refresh: a later file may revoke or extend a key
            keys[fpr] = {**info, "file": keys.get(fpr, {}).get("file", "")}
        (tmp / "listing.json").write_text(json.dumps({"digest": digest, "keys": keys}, sort_keys=True))
        try:
            os.rename(tmp, home)
        except OSError:
            if not (home / "listing.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(home.parent, keep=home)


def _prune(base: Path, keep: Path) -> None:
    """Remove homes of earlier keyring contents unused for a day (a running push may still use one)."""
    cutoff = time.time() - 86400
    for entry in base.iterdir():
        if entry != keep and entry.is_dir() and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True)


def _list(home: Path) -> dict[str, dict[str, object]]:
    out = run_gpg(home, ["--with-colons", "--fixed-list-mode", "--with-fingerprint",
                         "--with-subkey-fingerprint", "--list-keys"])
    keys: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    pending: str | None = None  # "pub" or "sub": the record a following fpr line belongs to
    sub: dict[str, object] = {}
    for line in out.splitlines():
        f = line.split(":")
        if f[0] == "pub":
            current = {"uids": [], "subkeys": [], "revoked": f[1] == "r", "expires": _ts(f[6])}
            pending = "pub"
        elif f[0] == "sub" and current is not None:
            sub = {"revoked": f[1] == "r", "expires": _ts(f[6])}
            pending = "sub"
        elif f[0] == "fpr" and current is not None and pending:
            if pending == "pub":
                current["fingerprint"] = f[9]
                keys[f[9]] = current
            else:
                sub["fingerprint"] = f[9]
                current["subkeys"].append(dict(sub))  # type: ignore[attr-defined]
            pending = None
        elif f[0] == "uid" and current is not None:
            current["uids"].append(f[9])  # type: ignore[attr-defined]
    return keys


def _ts(field: str) -> int | None:
    return int(field) if field.isdigit() else None


def _dt(value: object) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None


def _info_from_json(v: dict[str, object]) -> KeyInfo:
    subs = v.get("subkeys", [])
    assert isinstance(subs, list)
    return KeyInfo(
        fingerprint=str(v["fingerprint"]),
        uids=tuple(str(u) for u in v.get("uids", [])),  # type: ignore[attr-defined]
        expires=_dt(v.get("expires")),
        revoked=bool(v.get("revoked")),
        subkeys=tuple(SubKey(str(s["fingerprint"]), _dt(s.get("expires")), bool(s.get("revoked"))) for s in subs),
        file=str(v.get("file", "")),
    )


def keyring_problems(policy: Policy, keyring: Keyring, now: datetime) -> tuple[list[str], list[str]]:
    """Errors (a listed OpenPGP key missing from the keyring folder) and warnings (expired, revoked)."""
    errors: list[str] = []
    warnings: list[str] = []
    folder = policy.settings.keyring
    for key in policy.keys:
        if key.fingerprint is None:
            continue
        where = f"{policy.path}:{key.line}"
        info = keyring.keys.get(key.fingerprint)
        if info is None:
            errors.append(f"{where}: key {key.fingerprint} ({key.owner}) is not in the keyring folder {folder}; "
                          f"add its public key as {folder}/{key.owner}.asc")
        elif problem := info.problem(now):
            warnings.append(f"{where}: warning: key {key.fingerprint} ({key.owner}): {problem}; "
                            "its signatures will not count")
        if key.expires is not None and not key.honoured_on(now.date()):
            warnings.append(f"{where}: warning: key {key.id} ({key.owner}) is past its policy expiry {key.expires}")
    return errors, warnings
