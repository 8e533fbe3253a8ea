"""``stepup-git install``: put the hook in front of repositories, idempotently.

Sets ``stepup.policy`` (and ``stepup.mode`` with ``--mode``), a random per-repository
``receive.certNonceSeed`` (a shared seed lets a nonce from one repository pass in another; the
replicas of one repository share theirs, from ``--nonce-seed-file``), a
``receive.certNonceSlop`` no larger than the default freshness window, and
``receive.advertisePushOptions``. A foreign pre-receive hook is never replaced silently: with
``--chain`` it is kept beside ours and run first with the same input.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import sys
from importlib import resources
from pathlib import Path

from . import layouts
from .chained import CHAINED
from .errors import GitError, PolicyError, StepupError, UsageError
from .git import BASELINE, ForeignRepository, Repo, UnsupportedRepository
from .policy import load
from .policy.check import check_policy

MARKER = "stepup-git hook launcher"
MAX_SLOP = 300  # seconds: the HTTP round trip between issuing a nonce and receiving the push
MIN_SEED = 32  # bytes of a nonce seed given in a file: as many as the random one install makes has
OWNER_CHECK_TIMEOUT = 30  # seconds for starting the hook's Python as the repository's owner



def read_nonce_seed(path: Path) -> str:
    """The nonce seed kept in ``path`` (its content, the final newline left out), which the replicas of a
    repository share (docs/servers.md). The file must be private to its owner and the seed at least
    ``MIN_SEED`` bytes; ``UsageError`` otherwise."""
    try:
        info = path.stat()
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the nonce seed file {path}: {exc.strerror or exc}") from None
    if info.st_mode & 0o077:
        raise UsageError(f"the nonce seed file {path} has mode {info.st_mode & 0o777:04o}, which lets others "
                         f"than its owner read or change it; make it private: chmod 600 {path}")
    seed = raw.removesuffix(b"\n").removesuffix(b"\r")
    if b"\n" in seed or b"\0" in seed:
        raise UsageError(f"the nonce seed file {path} holds more than one line; put the seed on one line")
    try:
        text = seed.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"the nonce seed file {path} is not text; write the seed as text, e.g. "
                         "openssl rand -hex 32") from None
    if len(seed) < MIN_SEED:
        raise UsageError(f"the nonce seed in {path} is {len(seed)} byte(s); use at least {MIN_SEED}, "
                         "e.g. openssl rand -hex 32")
    return text


def launcher_text(python: str, hook_type: str = "pre-receive") -> str:
    template = resources.files("stepup_git").joinpath("launcher.sh").read_text()
    return template.replace("'@PYTHON@'", _shell_quote(python)).replace("@HOOK@", hook_type)


def install(repo_path: Path, *, policy: Path | None = None, mode: str | None = None, chain: bool = False,
            layout: str = "plain", nonce_seed: str | None = None) -> tuple[str, list[str]]:
    """Install the hook into one repository; (what was done, warnings)."""
    try:
        repo = open_repository(repo_path)
    except ForeignRepository as exc:
        again = f" --policy {policy}" if policy is not None else ""
        raise StepupError(f"{exc.git_dir} belongs to {exc.owner}, not to {user_name(os.geteuid())}, and Git "
                          "refuses another user's repository (dubious ownership); install as its owner: "
                          f"sudo -u {exc.owner} stepup-git install {exc.git_dir}{again} (or trust it: git config "
                          f"--global --add safe.directory {exc.git_dir})") from None
    git_dir = Path(repo.path).resolve()

    if policy is not None:
        policy_file = policy.resolve()
        problems, _ = check_policy(policy_file)
        if problems:
            raise PolicyError(["the policy has errors; nothing was installed", *problems])
    elif (configured := repo.config("stepup.policy")) is not None:
        policy_file = Path(configured)
    else:
        raise UsageError("no --policy given and none is configured (stepup.policy)")
    loaded = load(policy_file)

    hook = layouts.hook_file_for(layout, git_dir, hooks_path=repo.config("core.hooksPath"), workdir=repo.workdir())
    hooks_dir = hook.parent
    hooks_dir.mkdir(parents=True, exist_ok=True)
    chained = hooks_dir / CHAINED
    if hook.exists() and MARKER not in _read(hook):
        if not chain:
            raise UsageError(f"{hook} is another pre-receive hook; rerun with --chain to keep it and run it "
                             "before stepup-git, or remove it")
        if chained.exists():
            raise UsageError(f"{chained} already exists; remove it or the current pre-receive hook first")
        os.replace(hook, chained)
    if chained.exists():
        repo.set_config("stepup.chain", str(chained))
    _write_launcher(hook)

    repo.set_config("stepup.policy", str(policy_file))
    if mode is not None:
        repo.set_config("stepup.mode", mode)
    if nonce_seed is not None:  # the seed this repository's replicas share
        repo.set_config("receive.certNonceSeed", nonce_seed)
    elif not repo.local_config("receive.certNonceSeed"):  # a seed shared by repositories lets nonces cross over
        repo.set_config("receive.certNonceSeed", secrets.token_hex(32))
    slop = min(MAX_SLOP, int(loaded.settings.fresh_within.total_seconds()))
    current = repo.config("receive.certNonceSlop")
    if current is None or not current.isdigit() or int(current) > slop or int(current) == 0:
        repo.set_config("receive.certNonceSlop", str(slop))
    repo.set_config("receive.advertisePushOptions", "true")
    baseline = None
    if not (git_dir / "stepup" / BASELINE).exists():  # the first install: the history as it stands is trusted
        baseline = repo.record_baseline()
    if layout == "gitolite":
        layouts.gitolite_link_hooks()
    given = give_to_owner(git_dir)
    effective = mode or repo.config("stepup.mode") or loaded.settings.mode
    note = f", chained: {chained.name}" if chained.exists() else ""
    lines = [f"installed stepup-git in {git_dir} (policy {policy_file}, mode {effective}{note})"]
    if baseline:
        lines.append(f"  baseline: {baseline} commit(s) recorded; their history is vetted")
    if layout != "plain":
        lines.append(f"  hook: {hook}")
    if given:
        lines.append(f"  owner: {given}")
    lines += [f"  next: {step}" for step in layouts.next_steps(layout, hook)]
    warning = owner_cannot_run(sys.executable, git_dir)
    return "\n".join(lines), [warning] if warning else []


def install_client(repo_path: Path, *, policy: Path | None, strict: bool = False) -> str:
    """Install the pre-push hook that predicts the server's verdict (advisory unless ``strict``)."""
    repo = open_repository(repo_path)
    git_dir = Path(repo.path).resolve()
    if policy is None:
        raise UsageError("--client needs --policy FILE (the policy the server uses)")
    policy_file = policy.resolve()
    load(policy_file)
    hooks_dir = layouts.hooks_dir_for("plain", git_dir, hooks_path=repo.config("core.hooksPath"),
                                      workdir=repo.workdir())
    hooks_dir.mkdir(parents=True, exist_ok=True)
    hook = hooks_dir / "pre-push"
    if hook.exists() and MARKER not in _read(hook):
        raise UsageError(f"{hook} is another pre-push hook; remove it or call stepup-git from it")
    _write_launcher(hook, "pre-push")
    repo.set_config("stepup.policy", str(policy_file))
    repo.set_config("stepup.clientStrict", "true" if strict else "false")
    return f"installed the stepup-git pre-push check in {git_dir} (policy {policy_file}, " \
           f"{'strict' if strict else 'advisory'})"


def _write_launcher(hook: Path, hook_type: str = "pre-receive") -> None:
    tmp = hook.with_name(f".{hook.name}.{os.getpid()}")
    tmp.write_text(launcher_text(sys.executable, hook_type))
    tmp.chmod(0o755)
    os.replace(tmp, hook)


def open_repository(path: Path) -> Repo:
    try:
        return Repo(str(path), env=os.environ)
    except (UnsupportedRepository, ForeignRepository):
        raise
    except GitError:
        raise StepupError(f"not a Git repository: {path}") from None


def give_to_owner(git_dir: Path) -> str | None:
    """Run as root in another user's repository (trusted through ``safe.directory``), hand ``stepup/``,
    which install made, to the repository's owner, whom Git runs the hook as, so that the hook can write
    its state there; what was given, or None."""
    info, state = git_dir.stat(), git_dir / "stepup"
    if os.geteuid() != 0 or info.st_uid == 0 or not state.is_dir():
        return None
    mine = [item for item in [state, *state.rglob("*")] if item.lstat().st_uid == 0]
    for item in mine:
        os.chown(item, info.st_uid, info.st_gid, follow_symlinks=False)
    return f"gave {state} to {user_name(info.st_uid)}, the repository's owner, for the hook's state" if mine else None


def owner_cannot_run(python: str, git_dir: Path) -> str | None:
    """The warning when the repository's owner, whom Git normally runs the hook as, cannot run the hook's
    Python with the package (e.g. a virtual environment under ``/root``). Checked by running it as that
    user, so only when install runs as root in another user's repository; None when it runs."""
    info = git_dir.stat()
    if os.geteuid() != 0 or info.st_uid == 0:
        return None
    owner = user_name(info.st_uid)
    try:
        groups = os.getgrouplist(owner, info.st_gid)
    except OSError:
        groups = [info.st_gid]
    try:
        done = subprocess.run([python, "-I", "-c", "import stepup_git"], user=info.st_uid, group=info.st_gid,
                              extra_groups=groups, cwd="/", env={"PATH": os.defpath, "LC_ALL": "C"},
                              capture_output=True, timeout=OWNER_CHECK_TIMEOUT, check=False)
        if done.returncode == 0:
            return None
    except subprocess.TimeoutExpired:
        return None
    except OSError:
        pass
    return (f"{owner}, who owns {git_dir} and whom Git runs the hook as, cannot run the hook's Python {python} "
            f"with stepup-git: every push would be rejected; install stepup-git where {owner} can read it, e.g. "
            "STEPUP_VENV=/opt/stepup-git/venv ./install.sh, then run /opt/stepup-git/venv/bin/stepup-git "
            f"install {git_dir} again")


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
