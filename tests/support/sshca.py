"""A real OpenSSH certificate authority (`ssh-keygen -s`) and the user certificates it issues."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import run
from .keys import SshKey, make_ssh_key

_made = itertools.count(1)


@dataclass(frozen=True)
class CertifiedKey(SshKey):
    """An SSH key with a certificate beside it; Git signs with the `-cert.pub` (docs/semantics.md)."""

    cert_path: Path

    @property
    def public_path(self) -> Path:
        return self.cert_path

    @property
    def key_fingerprint(self) -> str:
        """The certified key's `SHA256:...` fingerprint."""
        return run(["ssh-keygen", "-l", "-f", self.private_path.with_name(self.private_path.name + ".pub")]
                   ).stdout.split()[1]

    def window(self) -> tuple[str, str]:
        """The certificate's validity as `ssh-keygen -L` prints it, in ISO 8601 UTC (the suite runs with TZ=UTC)."""
        listing = run(["ssh-keygen", "-L", "-f", self.cert_path]).stdout
        m = re.search(r"Valid: from (\S+) to (\S+)", listing)
        assert m, listing
        return m.group(1) + "Z", m.group(2) + "Z"


@dataclass(frozen=True)
class Authority:
    """A CA key pair on disk."""

    key: SshKey

    @property
    def public_line(self) -> str:
        return self.key.public_line

    @property
    def fingerprint(self) -> str:
        return run(["ssh-keygen", "-l", "-f", self.key.public_path]).stdout.split()[1]

    def certify(self, directory: Path, *, principals: str = "alice", key_id: str = "alice@idp",
                validity: str = "-1m:+10m", serial: int = 7, host: bool = False) -> CertifiedKey:
        """A new user key under `directory` and its certificate (`ssh-keygen -s ca -I id -n principals -V`)."""
        user = make_ssh_key(directory, f"{key_id}-{next(_made)}")
        run(["ssh-keygen", "-q", "-s", self.key.private_path, "-I", key_id, "-n", principals, "-V", validity,
             "-z", str(serial), *(["-h"] if host else []), user.public_path])
        cert = user.private_path.with_name(user.private_path.name + "-cert.pub")
        return CertifiedKey(user.private_path, user.public_line, cert)

    def revoke(self, krl: Path, *, serial: int) -> None:
        """An OpenSSH KRL revoking this CA's certificate `serial` (`ssh-keygen -k`)."""
        spec = krl.with_suffix(".spec")
        spec.write_text(f"serial: {serial}\n")
        run(["ssh-keygen", "-q", "-k", "-f", krl, "-s", self.key.public_path, spec])


def make_authority(directory: Path, name: str = "corp-ssh-ca") -> Authority:
    return Authority(make_ssh_key(directory, name))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
