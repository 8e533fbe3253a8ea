"""Fixtures for the push benchmark: the bench key, GnuPG homes and the signed-commit chain.

The chain is one linear history of signed commits, built once and cached in the work dir.
Commit ``i`` (0-based) writes ``src/file<i % 50>.txt``; every 500th commit (``i = 0`` included)
also adds ``db/migrations/NNNN.sql``.  Trees come from one ``git fast-import`` run of unsigned
commits; each commit object is then rewritten with its real parent, signed with
``gpg --detach-sign`` and written as a loose object.  The chain grows on demand, so a later run
that needs more commits only signs the missing ones.  A source repository for size N is a bare
repository whose ``main`` is the chain's commit ``N - 1``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tomlkit

IDENT = "Bench <bench@example.org>"
BASE_TIME = 1_700_000_000  # author/committer time of commit 0; commit i is i seconds later
FILES = 50
MIGRATION_EVERY = 500
CHAIN_FORMAT = 1  # bump when the content of the chain changes
EXAMPLE = Path(__file__).resolve().parent.parent / "policies" / "example.toml"
LONG_WINDOW = "3650d"  # freshness window of the bench policy: cached signatures stay fresh
PUSHER = "bench"  # owner of the bench key, given to the hook as STEPUP_PUSHER


def run(
    args: list[str], *, cwd: Path | None = None, input: bytes | None = None, env: dict[str, str] | None = None
) -> bytes:
    """Run a command, return its stdout, raise with its stderr on failure."""
    proc = subprocess.run(args, cwd=cwd, input=input, env=env, capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{' '.join(args[:4])}... failed ({proc.returncode}): {err}")
    return proc.stdout


def git_env(work: Path) -> dict[str, str]:
    """An environment that ignores the user's and the system's Git configuration."""
    config = work / "gitconfig"
    if not config.exists():
        config.write_text(
            "[user]\n\tname = Bench\n\temail = bench@example.org\n"
            "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        )
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("GIT_"):
            del env[name]
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=str(config), GIT_TERMINAL_PROMPT="0")
    return env


# --------------------------------------------------------------------------- key and homes


@dataclass(frozen=True)
class BenchKey:
    fingerprint: str
    public_armor: str  # ASCII-armored public key
    secret_file: Path  # ASCII-armored secret key (no passphrase)


def gpg(home: Path, *args: str, input: bytes | None = None) -> bytes:
    return run(["gpg", "--homedir", str(home), "--batch", "--no-tty", "--quiet", *args], input=input)


def new_gnupg_home(scratch: Path, name: str) -> Path:
    """A GnuPG home under the short scratch dir (the agent's socket path has a length limit)."""
    home = scratch / name
    home.mkdir(mode=0o700)
    return home


def kill_agent(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)


def ensure_key(work: Path, scratch: Path) -> BenchKey:
    """The bench signing key, generated once and kept (exported) in ``work/key``."""
    key_dir = work / "key"
    meta = key_dir / "key.json"
    if meta.exists():
        data = json.loads(meta.read_text())
        return BenchKey(data["fingerprint"], (key_dir / "public.asc").read_text(), key_dir / "secret.asc")
    home = new_gnupg_home(scratch, "gen")
    try:
        gpg(home, "--passphrase", "", "--quick-gen-key", IDENT, "ed25519", "sign", "never")
        listing = gpg(home, "--with-colons", "--list-secret-keys").decode()
        fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        public = gpg(home, "--armor", "--export", fpr).decode()
        secret = gpg(home, "--pinentry-mode", "loopback", "--passphrase", "", "--armor", "--export-secret-keys", fpr)
    finally:
        kill_agent(home)
    key_dir.mkdir(parents=True, exist_ok=True)
    (key_dir / "public.asc").write_text(public)
    (key_dir / "secret.asc").write_bytes(secret)
    os.chmod(key_dir / "secret.asc", 0o600)
    meta.write_text(json.dumps({"fingerprint": fpr}) + "\n")
    return BenchKey(fpr, public, key_dir / "secret.asc")


def signing_home(key: BenchKey, scratch: Path) -> Path:
    home = new_gnupg_home(scratch, "sign")
    gpg(home, "--import", str(key.secret_file))
    return home


def verifying_home(key: BenchKey, scratch: Path) -> Path:
    """What an admin sets up for the classic hook: the public key, trusted ultimately."""
    home = new_gnupg_home(scratch, "verify")
    gpg(home, "--import", input=key.public_armor.encode())
    gpg(home, "--import-ownertrust", input=f"{key.fingerprint}:6:\n".encode())
    return home


# --------------------------------------------------------------------------- the chain


def commit_changes(i: int) -> list[tuple[str, bytes]]:
    """The (path, content) pairs commit ``i`` writes."""
    name = f"src/file{i % FILES}.txt"
    changes = [(name, f"file {i % FILES}, last written by commit {i}\n".encode())]
    if i % MIGRATION_EVERY == 0:
        n = i // MIGRATION_EVERY
        changes.append((f"db/migrations/{n:04d}.sql", f"-- migration {n}\nSELECT {n};\n".encode()))
    return changes


def fast_import_stream(start: int, stop: int, parent: str | None) -> Iterator[bytes]:
    for i in range(start, stop):
        message = f"bench commit {i}\n".encode()
        stamp = f"{IDENT} {BASE_TIME + i} +0000"
        yield f"commit refs/heads/unsigned\ncommitter {stamp}\ndata {len(message)}\n".encode()
        yield message
        if i == start and parent is not None:
            yield f"from {parent}\n".encode()
        for path, content in commit_changes(i):
            yield f"M 100644 inline {path}\ndata {len(content)}\n".encode() + content + b"\n"
        yield b"\n"


def unsigned_trees(repo: Path, env: dict[str, str], start: int, stop: int, parent: str | None) -> list[str]:
    """Tree ids of commits ``start..stop-1``, made by fast-import on top of ``parent``."""
    stream = b"".join(fast_import_stream(start, stop, parent))
    run(["git", "-C", str(repo), "fast-import", "--quiet", "--force"], input=stream, env=env)
    out = run(
        ["git", "-C", str(repo), "log", "--format=%T", "--reverse", "-n", str(stop - start), "refs/heads/unsigned"],
        env=env,
    )
    run(["git", "-C", str(repo), "update-ref", "-d", "refs/heads/unsigned"], env=env)
    trees = out.decode().split()
    assert len(trees) == stop - start, (len(trees), stop - start)
    return trees


def sign(home: Path, fingerprint: str, payload: bytes) -> bytes:
    return gpg(
        home,
        "--no-auto-check-trustdb",
        "--trust-model",
        "always",
        "--local-user",
        fingerprint,
        "--detach-sign",
        "--armor",
        input=payload,
    )


def signed_commit(payload: bytes, signature: bytes) -> bytes:
    """Insert the ``gpgsig`` header after the committer line, as ``git commit -S`` does."""
    header, _, message = payload.partition(b"\n\n")
    lines = signature.rstrip(b"\n").split(b"\n")
    gpgsig = b"gpgsig " + b"\n ".join(lines)
    return header + b"\n" + gpgsig + b"\n\n" + message


def write_loose(repo: Path, kind: bytes, body: bytes) -> str:
    """Write a loose object the way ``git hash-object -w`` does; return its id."""
    raw = kind + b" " + str(len(body)).encode() + b"\0" + body
    oid = hashlib.sha1(raw).hexdigest()
    path = repo / "objects" / oid[:2] / oid[2:]
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        tmp = path.parent / f"tmp_{oid[2:]}"
        tmp.write_bytes(zlib.compress(raw, 1))
        tmp.replace(path)
    return oid


@dataclass
class Chain:
    """The cached signed history: ``repo`` (bare) and ``commits`` in order, root first."""

    repo: Path
    commits: list[str]

    @property
    def ids_file(self) -> Path:
        return self.repo / "bench-commits.txt"


def load_chain(work: Path, key: BenchKey, env: dict[str, str]) -> Chain:
    repo = work / "chain.git"
    meta = {"format": CHAIN_FORMAT, "fingerprint": key.fingerprint}
    meta_file = repo / "bench-chain.json"
    if repo.exists() and (not meta_file.exists() or json.loads(meta_file.read_text()) != meta):
        shutil.rmtree(repo)  # built with another key or another layout
    if not repo.exists():
        run(["git", "init", "--quiet", "--bare", "-b", "main", str(repo)], env=env)
        meta_file.write_text(json.dumps(meta) + "\n")
    chain = Chain(repo, [])
    if chain.ids_file.exists():
        ids = chain.ids_file.read_text().split()
        chain.commits = [oid for oid in ids if len(oid) == 40]
    return chain


def extend_chain(
    chain: Chain, length: int, key: BenchKey, scratch: Path, env: dict[str, str], progress: bool = True
) -> float:
    """Sign commits until the chain has ``length`` of them; return the seconds it took."""
    start = len(chain.commits)
    if start >= length:
        return 0.0
    began = time.perf_counter()
    home = signing_home(key, scratch)
    try:
        parent = chain.commits[-1] if chain.commits else None
        trees = unsigned_trees(chain.repo, env, start, length, parent)
        with chain.ids_file.open("a") as ids:
            for i, tree in enumerate(trees, start):
                stamp = f"{IDENT} {BASE_TIME + i} +0000"
                lines = [f"tree {tree}"] + ([f"parent {parent}"] if parent else [])
                lines += [f"author {stamp}", f"committer {stamp}", "", f"bench commit {i}", ""]
                payload = "\n".join(lines).encode()
                body = signed_commit(payload, sign(home, key.fingerprint, payload))
                parent = write_loose(chain.repo, b"commit", body)
                chain.commits.append(parent)
                ids.write(parent + "\n")
                if i % 500 == 499:
                    ids.flush()
                    if progress:
                        rate = (i + 1 - start) / (time.perf_counter() - began)
                        print(f"  signed {i + 1}/{length} commits ({rate:.0f}/s)", flush=True)
    finally:
        kill_agent(home)
        shutil.rmtree(home, ignore_errors=True)
    assert parent is not None
    run(["git", "-C", str(chain.repo), "update-ref", "refs/heads/main", parent], env=env)
    run(["git", "-C", str(chain.repo), "repack", "-a", "-d", "-q"], env=env)
    run(["git", "-C", str(chain.repo), "prune", "--expire=now"], env=env)
    seconds = time.perf_counter() - began
    with (chain.repo / "bench-builds.jsonl").open("a") as log:
        log.write(json.dumps({"from": start, "to": length, "seconds": round(seconds, 1)}) + "\n")
    return seconds


def build_history(chain: Chain) -> list[dict[str, float]]:
    """Past chain builds: commits ``from``..``to`` and the seconds each took."""
    log = chain.repo / "bench-builds.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def source_repo(work: Path, chain: Chain, n: int, env: dict[str, str]) -> Path:
    """A bare repository whose ``main`` holds the first ``n`` commits of the chain (cached)."""
    tip = chain.commits[n - 1]
    repo = work / "src" / f"n{n}.git"
    done = repo / "bench-tip"
    if done.exists() and done.read_text().strip() == tip:
        return repo
    if repo.exists():
        shutil.rmtree(repo)
    repo.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "--quiet", "--bare", "-b", "main", str(repo)], env=env)
    run(["git", "-C", str(chain.repo), "push", "--quiet", str(repo), f"{tip}:refs/heads/main"], env=env)
    done.write_text(tip + "\n")
    return repo


def check_source(repo: Path, n: int, verify_home: Path, env: dict[str, str]) -> None:
    """Sanity check: ``n`` commits on main, and Git accepts the tip's signature."""
    count = int(run(["git", "-C", str(repo), "rev-list", "--count", "main"], env=env))
    if count != n:
        raise RuntimeError(f"{repo}: {count} commits on main, expected {n}")
    verify_env = {**env, "GNUPGHOME": str(verify_home)}
    run(["git", "-C", str(repo), "verify-commit", "main"], env=verify_env)


def scratch_dir() -> Path:
    """A short private directory for GnuPG homes (sockets live there)."""
    return Path(tempfile.mkdtemp(prefix="sgbench-", dir="/tmp"))


# --------------------------------------------------------------------------- the policy


FALLBACK_POLICY = """\
version = 1

[settings]
mode = "enforce"
fresh_within = "15m"
clock_skew = "5m"
keyring = "keys"

[tiers]
order = ["contributor", "maintainer", "release"]

[[keys]]
fingerprint = "0000000000000000000000000000000000000000"
owner = "nobody"
tier = "contributor"

[[rules]]
name = "main-history-signed"
refs = ["refs/heads/main", "refs/heads/release/*"]
require = "signed"
tier = "contributor"

[[rules]]
name = "migrations-step-up"
refs = ["refs/heads/**"]
paths = ["db/migrations/**", "infra/**"]
require = "step-up"
tier = "maintainer"
fresh_within = "10m"
proofs = ["push-certificate", "tip-signature"]
signers = 1
bind_pusher = true

[[rules]]
name = "main-no-rewrite"
refs = ["refs/heads/main"]
on = ["force-push", "delete"]
require = "step-up"
tier = "release"

[[rules]]
name = "release-tags"
refs = ["refs/tags/v*"]
require = "signed-tag"
tier = "release"

[[rules]]
name = "no-direct-prod"
refs = ["refs/heads/prod"]
on = ["delete"]
require = "deny"
"""


def write_policy(folder: Path, key: BenchKey, example: Path = EXAMPLE) -> tuple[Path, str]:
    """``policies/example.toml`` with the bench key as its only key (or a built-in copy of it).

    Returns the policy written and a description of where it came from.

    Changes: the keys, a keyring holding the bench key, freshness windows long enough that
    the (cached) tip signatures count as fresh, and the audit log in each repository.
    """
    if example.exists():
        text, source = example.read_text(), f"policies/{example.name} with the bench key"
    else:
        text, source = FALLBACK_POLICY, f"the built-in example policy ({example.name} missing) with the bench key"

    doc = tomlkit.parse(text)
    tiers = doc["tiers"]["order"]
    tier = "release" if "release" in tiers else str(tiers[-1])
    entry = tomlkit.table()
    entry.update({"fingerprint": key.fingerprint, "owner": PUSHER, "tier": tier})
    entry.add(tomlkit.nl())
    keys = tomlkit.aot()
    keys.append(entry)
    doc["keys"] = keys
    settings = doc.setdefault("settings", tomlkit.table())
    settings.update({"mode": "enforce", "keyring": "keys", "fresh_within": LONG_WINDOW})
    for name in ("audit_log", "pusher_env"):
        settings.pop(name, None)
    for rule in doc.get("rules", []):
        if "fresh_within" in rule:
            rule["fresh_within"] = LONG_WINDOW
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    for old in (folder / "keys").glob("*"):
        old.unlink()
    (folder / "keys" / "bench.asc").write_text(key.public_armor)
    policy = folder / "policy.toml"
    policy.write_text(tomlkit.dumps(doc))
    return policy, source
