"""A bare server repository with stepup-git installed, and developer clones that push to it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import CommandFailed, Moment, git_date, run
from .keys import Key, SshKey, digest_program

Signer = Key | SshKey


def signing_config(signer: Signer, at: Moment | None = None) -> list[str]:
    """`git -c ...` options that make Git sign (commit -S, tag -s, push --signed) with `signer`."""
    if isinstance(signer, SshKey):
        return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={signer.public_path}"]
    return [
        "-c",
        "gpg.format=openpgp",
        "-c",
        f"gpg.program={signer.gpg.gpg_program(at)}",
        "-c",
        f"user.signingkey={signer.fingerprint}",
    ]


def digest_signing_config(key: Key, digest: str, at: Moment | None = None) -> list[str]:
    """Like `signing_config` for an OpenPGP key, but signatures use `digest` (e.g. "SHA1")."""
    return [
        "-c",
        "gpg.format=openpgp",
        "-c",
        f"gpg.program={digest_program(key, digest, at)}",
        "-c",
        f"user.signingkey={key.fingerprint}",
    ]


def _dates(at: Moment | None) -> dict[str, str | None]:
    if at is None:
        return {}
    return {"GIT_AUTHOR_DATE": git_date(at), "GIT_COMMITTER_DATE": git_date(at)}


class Server:
    """A bare repository (`<root>/server.git`) with `policy.toml` and `keys/` beside it."""

    def __init__(self, root: Path, *, object_format: str | None = None) -> None:
        """`object_format="sha256"` makes a SHA-256 repository (default: Git's, SHA-1)."""
        self.root = root
        self.path = root / "server.git"
        self.policy_path = root / "policy.toml"
        self.keys_dir = root / "keys"
        root.mkdir(parents=True, exist_ok=True)
        formats = [f"--object-format={object_format}"] if object_format else []
        run(["git", "init", "-q", "--bare", "-b", "main", *formats, self.path])
        # Let the hook, not Git, decide whether `main` (HEAD's branch) may be deleted.
        self.git("config", "receive.denyDeleteCurrent", "ignore")

    def git(
        self, *args: str, env: Mapping[str, str | None] | None = None, check: bool = True
    ) -> str:
        """Run git in the bare repository; its stdout without the final newline."""
        return run(["git", *args], cwd=self.path, env=env, check=check).stdout.removesuffix("\n")

    def write_policy(self, toml_text: str, keys: Mapping[str, str] | None = None) -> Path:
        """Write `policy.toml` and replace `keys/` with the given files (name -> armored text)."""
        self.policy_path.write_text(toml_text, encoding="utf-8")
        shutil.rmtree(self.keys_dir, ignore_errors=True)
        self.keys_dir.mkdir()
        for name, text in (keys or {}).items():
            (self.keys_dir / name).write_text(text, encoding="utf-8")
        return self.policy_path

    def install(
        self, mode: str | None = None, extra_args: Iterable[str] = (), *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m stepup_git install` on this repository with `policy.toml`."""
        argv = [sys.executable, "-m", "stepup_git", "install", str(self.path)]
        argv += ["--policy", str(self.policy_path)]
        if mode is not None:
            argv += ["--mode", mode]
        argv += list(extra_args)
        proc = run(argv, cwd=self.root, check=False)
        if check and proc.returncode != 0:
            raise CommandFailed(f"install exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def ref(self, name: str) -> str | None:
        """The object id a ref holds on the server, or None when it does not exist."""
        proc = run(["git", "rev-parse", "--verify", "-q", name], cwd=self.path, check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.strip() or None

    @property
    def audit_path(self) -> Path:
        return self.path / "stepup" / "audit.jsonl"

    def audit_records(self, path: Path | None = None) -> list[dict[str, Any]]:
        """The records of the audit log (default location), oldest first; [] if none."""
        log = path or self.audit_path
        if not log.exists():
            return []
        lines = log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class PushResult:
    """What `git push` did; `remote` holds the hook's relayed stderr lines."""

    returncode: int
    stdout: str
    stderr: str
    remote: list[str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def __str__(self) -> str:
        return f"git push exited {self.returncode}\n{self.stdout}{self.stderr}"


def remote_lines(stderr: str) -> list[str]:
    """Lines Git relayed from the server (`remote: ...`), prefix and line-clearing removed."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("remote:"):
            text = line.removeprefix("remote:").removeprefix(" ")
            out.append(text.replace("\x1b[K", "").rstrip())
    return out


class Clone:
    """A developer's working clone of a `Server` (remote `origin`, branch `main`)."""

    def __init__(self, server: Server, path: Path) -> None:
        self.server = server
        self.path = path
        run(["git", "-c", "init.defaultBranch=main", "clone", "-q", server.path, path])
        wanted = server.git("rev-parse", "--show-object-format")
        if self.git("rev-parse", "--show-object-format") != wanted:
            # Git before 2.44 clones an empty SHA-256 repository as SHA-1: start the clone anew.
            shutil.rmtree(path)
            run(["git", "init", "-q", "-b", "main", f"--object-format={wanted}", path])
            self.git("remote", "add", "origin", str(server.path))
        if not self.git("branch", "--show-current"):  # clone of a repository without HEAD
            self.git("checkout", "-q", "-B", "main")

    def git(
        self, *args: str, env: Mapping[str, str | None] | None = None, check: bool = True
    ) -> str:
        """Run git in the clone; its stdout without the final newline."""
        return run(["git", *args], cwd=self.path, env=env, check=check).stdout.removesuffix("\n")

    def rev(self, name: str = "HEAD") -> str:
        return self.git("rev-parse", "--verify", name)

    def write(self, path: str, text: str | bytes) -> None:
        """Write a file (creating folders) in the working tree; `commit` stages it."""
        target = self.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8")

    def remove(self, path: str) -> None:
        """Delete a file or folder from the working tree; `commit` stages the removal."""
        target = self.path / path
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    def commit(self, message: str, *, sign: Signer | None = None, at: Moment | None = None) -> str:
        """Stage everything and commit (empty commits allowed); the new commit id.

        `at` dates the commit and, for an OpenPGP signer, the signature (a stale proof).
        """
        self.git("add", "-A")
        config = signing_config(sign, at) if sign is not None else []
        flags = ["-S"] if sign is not None else ["--no-gpg-sign"]
        self.git(*config, "commit", "-q", "--allow-empty", *flags, "-m", message, env=_dates(at))
        return self.rev()

    def tag(
        self,
        name: str,
        *,
        sign: Signer | None = None,
        message: str | None = "release",
        target: str = "HEAD",
        at: Moment | None = None,
        force: bool = False,
    ) -> str:
        """Make a tag; the id `refs/tags/<name>` holds (the tag object, or `target` if lightweight).

        `message=None` makes a lightweight tag (no `sign` allowed); otherwise an annotated one,
        signed when `sign` is given.
        """
        args = ["tag", *(["-f"] if force else [])]
        config: list[str] = []
        if message is None:
            if sign is not None:
                raise ValueError("a lightweight tag cannot be signed")
        elif sign is None:
            args += ["-a", "--no-sign", "-m", message]
        else:
            config = signing_config(sign, at)
            args += ["-s", "-m", message]
            if isinstance(sign, Key):
                args += ["-u", sign.fingerprint]
        self.git(*config, *args, name, target, env=_dates(at))
        return self.rev(f"refs/tags/{name}")

    def push(
        self,
        *refspecs: str,
        signed: Signer | None = None,
        force: bool = False,
        options: Sequence[str] = (),
        pusher: str | None = None,
        at: Moment | None = None,
        env: Mapping[str, str | None] | None = None,
        remote: str = "origin",
    ) -> PushResult:
        """`git push` to the server (default refspec `HEAD`); never raises on rejection.

        `signed` sends a push certificate signed by that key (made at `at`, default now);
        `pusher` sets `STEPUP_PUSHER` for the hook; `options` are `-o` push options.
        """
        config = signing_config(signed, at) if signed is not None else []
        args = ["push"]
        if signed is not None:
            args.append("--signed")
        if force:
            args.append("--force")
        for option in options:
            args += ["-o", option]
        args += [remote, *(refspecs or ("HEAD",))]
        extra = dict(env or {})
        if pusher is not None:
            extra["STEPUP_PUSHER"] = pusher
        proc = run(["git", *config, *args], cwd=self.path, env=extra, check=False)
        return PushResult(proc.returncode, proc.stdout, proc.stderr, remote_lines(proc.stderr))


MakeClone = Callable[[Server], Clone]
"""The type of the `make_clone` fixture."""
