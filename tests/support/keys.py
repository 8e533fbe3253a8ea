"""Real OpenPGP (GnuPG) and SSH keys for the test developers."""

from __future__ import annotations

import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import Moment, gpg_time, run, run_bytes

GPG = shutil.which("gpg") or "gpg"


@dataclass(frozen=True)
class Key:
    """An OpenPGP key whose secret part lives in `gpg`."""

    name: str
    email: str
    fingerprint: str
    """Primary key fingerprint, 40 upper-case hex digits."""
    signing_fingerprint: str
    """The key that makes signatures: the signing subkey, or the primary itself."""
    gpg: Gpg = field(repr=False, compare=False)

    @property
    def uid(self) -> str:
        return f"{self.name} <{self.email}>"

    def export(self, *, revoked: bool = False) -> str:
        """The armored public key (see `Gpg.export`)."""
        return self.gpg.export(self, revoked=revoked)


@dataclass(frozen=True)
class SshKey:
    """An ed25519 SSH key pair on disk (no passphrase)."""

    private_path: Path
    public_line: str
    """`ssh-ed25519 AAAA... comment`, as written to the `.pub` file."""

    @property
    def public_path(self) -> Path:
        return self.private_path.with_name(self.private_path.name + ".pub")

    def allowed_signer(self, principal: str) -> str:
        """A line of an `ssh-keygen -Y verify` allowed-signers file for namespace `git`."""
        return f'{principal} namespaces="git" {self.public_line}'


def make_ssh_key(directory: Path, comment: str) -> SshKey:
    """Generate `<directory>/<comment>` (sanitised) with `ssh-keygen -t ed25519`."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = "".join(c if c.isalnum() else "_" for c in comment)
    path = directory / f"id_{stem}"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
    return SshKey(path, path.with_name(path.name + ".pub").read_text().strip())


class Gpg:
    """One GnuPG home (in a short /tmp path) holding the secret keys of test developers."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="sg", dir="/tmp"))
        self.home.chmod(0o700)
        (self.home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
        self._programs: dict[str | None, Path] = {}

    def __enter__(self) -> Gpg:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop this home's agent and delete the home."""
        run(["gpgconf", "--homedir", self.home, "--kill", "all"], check=False)
        shutil.rmtree(self.home, ignore_errors=True)

    def gpg(self, *args: str, at: Moment | None = None, input: bytes | None = None) -> bytes:
        """Run gpg in batch mode on this home, optionally at a faked time; stdout."""
        return run_bytes([GPG, *self._base_args(at), *args], input=input).stdout

    def _base_args(self, at: Moment | None) -> list[str]:
        args = ["--homedir", str(self.home), "--batch", "--no-tty"]
        args += ["--pinentry-mode", "loopback", "--passphrase", ""]
        if at is not None:
            args += ["--faked-system-time", gpg_time(at)]
        return args

    def gen_key(
        self,
        name: str,
        email: str,
        *,
        expire: str | None = None,
        signing_subkey: bool = False,
        created: Moment | None = None,
    ) -> Key:
        """A new ed25519 key; with `signing_subkey` the primary only certifies."""
        usage = "cert" if signing_subkey else "sign"
        status = self.gpg(
            "--status-fd",
            "1",
            "--quick-gen-key",
            f"{name} <{email}>",
            "ed25519",
            usage,
            expire or "never",
            at=created,
        ).decode()
        fpr = _status_field(status, "KEY_CREATED", 2)
        signer = fpr
        if signing_subkey:
            status = self.gpg(
                "--status-fd",
                "1",
                "--quick-add-key",
                fpr,
                "ed25519",
                "sign",
                expire or "never",
                at=created,
            ).decode()
            signer = _status_field(status, "KEY_CREATED", 2)
        return Key(name, email, fpr, signer, self)

    def import_key(self, armored: str) -> None:
        """Import public (or secret) key material into this home."""
        self.gpg("--import", input=armored.encode())

    def export(self, key: Key, *, revoked: bool = False) -> str:
        """The armored public key; `revoked` adds the revocation without revoking it here."""
        armored = self.gpg("--armor", "--export", key.fingerprint).decode()
        if not revoked:
            return armored
        with Gpg() as scratch:
            scratch.import_key(armored)
            scratch.import_key(self.revocation(key))
            return scratch.export(key)

    def revocation(self, key: Key) -> str:
        """The revocation certificate GnuPG made with the key, ready to import."""
        text = (self.home / "openpgp-revocs.d" / f"{key.fingerprint}.rev").read_text()
        return text.replace(":-----BEGIN PGP", "-----BEGIN PGP")

    def revoke(self, key: Key) -> None:
        """Revoke the key in this home (it can no longer sign here; exports carry it)."""
        self.import_key(self.revocation(key))

    def sign_detached(self, key: Key, data: bytes, *, at: Moment | None = None) -> bytes:
        """An armored detached signature over `data`, made at `at` (default: now)."""
        return self.gpg(
            "--armor", "--detach-sign", "--local-user", key.fingerprint, at=at, input=data
        )

    def verify_detached(self, data: bytes, signature: bytes) -> list[str]:
        """`[GNUPG:]` status lines of verifying `signature` over `data` (never raises)."""
        with tempfile.NamedTemporaryFile(dir=self.home, suffix=".sig") as sig:
            sig.write(signature)
            sig.flush()
            proc = run_bytes(
                [GPG, *self._base_args(None), "--status-fd", "1", "--verify", sig.name, "-"],
                input=data,
                check=False,
            )
        return [
            line.removeprefix("[GNUPG:] ")
            for line in proc.stdout.decode().splitlines()
            if line.startswith("[GNUPG:] ")
        ]

    def gpg_program(self, at: Moment | None = None) -> str:
        """An executable usable as Git's `gpg.program` that signs with this home at `at`."""
        key = None if at is None else gpg_time(at)
        if key not in self._programs:
            bin_dir = self.home / "bin"
            bin_dir.mkdir(exist_ok=True)
            path = bin_dir / f"gpg-{len(self._programs)}"
            args = " ".join(shlex.quote(arg) for arg in [GPG, *self._base_args(at)])
            path.write_text(f'#!/bin/sh\nexec {args} "$@"\n')
            path.chmod(0o755)
            self._programs[key] = path
        return str(self._programs[key])


def digest_program(key: Key, digest: str, at: Moment | None = None) -> str:
    """Like `Gpg.gpg_program`, but every signature it makes uses `digest` (gpg `--digest-algo`,
    e.g. "SHA1" or "SHA512") whatever gpg would choose."""
    home = key.gpg
    stamp = "now" if at is None else gpg_time(at).rstrip("!")
    path = home.home / "bin" / f"gpg-digest-{digest}-{stamp}"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        args = " ".join(shlex.quote(arg) for arg in [GPG, *home._base_args(at), "--digest-algo", digest])
        path.write_text(f'#!/bin/sh\nexec {args} "$@"\n')
        path.chmod(0o755)
    return str(path)


def _status_field(status: str, keyword: str, index: int) -> str:
    for line in status.splitlines():
        parts = line.split()
        if len(parts) > index + 1 and parts[:2] == ["[GNUPG:]", keyword]:
            return parts[index + 1]
    raise AssertionError(f"no {keyword} in gpg status:\n{status}")


def key_toml(key: Key | SshKey, owner: str, tier: str, *, expires: str | None = None) -> str:
    """A `[[keys]]` table for a policy (README.md, "The policy")."""
    ident = (
        f'fingerprint = "{key.fingerprint}"'
        if isinstance(key, Key)
        else f'ssh = "{key.public_line}"'
    )
    lines = ["[[keys]]", ident, f'owner = "{owner}"', f'tier = "{tier}"']
    if expires is not None:
        lines.append(f"expires = {expires}")
    return "\n".join(lines) + "\n"


def signed_policy(key: Key, *, owner: str = "alice", tier: str = "maintainer", name: str = "signed",
                  refs: str = "refs/heads/main", paths: str | None = None, settings: str = "",
                  expires: str | None = None) -> str:
    """The policy many tests start from: one key, and one rule that every new commit on ``refs`` be
    signed by a key of ``tier`` or higher (``paths``: only pushes that change those)."""
    lines = ["version = 1"]
    if settings:
        lines += ["[settings]", settings.strip()]
    lines += [key_toml(key, owner, tier, expires=expires), "[[rules]]", f'name = "{name}"', f'refs = ["{refs}"]']
    if paths is not None:
        lines.append(f'paths = ["{paths}"]')
    lines += ['require = "signed"', f'tier = "{tier}"']
    return "\n".join(lines) + "\n"


PAST = "2020-01-01T00:00:00Z"
"""Creation time of the shared test keys, so that back-dated (stale) signatures stay valid."""


@dataclass(frozen=True)
class People:
    """The shared test developers. Tiers are given by each test's own policy."""

    gpg: Gpg
    alice: Key
    bob: Key
    carol: Key
    mallory: Key
    """Never listed in any policy."""
    expired: Key
    """Created 2020-01-01, expired 2021; can sign only `at` a time in 2020."""
    subkeyed: Key
    """Certify-only primary; signatures are made by its signing subkey."""
    alice_ssh: SshKey
    bob_ssh: SshKey
    mallory_ssh: SshKey


def make_people(gpg: Gpg, ssh_dir: Path) -> People:
    """Generate the shared developers' keys in `gpg` (all created at `PAST`)."""
    return People(
        gpg=gpg,
        alice=gpg.gen_key("Alice", "alice@example.com", created=PAST),
        bob=gpg.gen_key("Bob", "bob@example.com", created=PAST),
        carol=gpg.gen_key("Carol", "carol@example.com", created=PAST),
        mallory=gpg.gen_key("Mallory", "mallory@example.com", created=PAST),
        expired=gpg.gen_key("Old Timer", "expired@example.com", expire="1y", created=PAST),
        subkeyed=gpg.gen_key(
            "Sub Keyed", "subkeyed@example.com", signing_subkey=True, created=PAST
        ),
        alice_ssh=make_ssh_key(ssh_dir, "alice@laptop"),
        bob_ssh=make_ssh_key(ssh_dir, "bob@laptop"),
        mallory_ssh=make_ssh_key(ssh_dir, "mallory@laptop"),
    )
