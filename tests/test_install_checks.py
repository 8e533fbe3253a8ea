"""What docs/servers.md tells a server's administrator, checked: install as root into a repository another
user owns (Git's ownership refusal named with its fixes, the hook's state handed to the owner, a warning
when the owner cannot run the hook's Python), the launcher shown, and the SSH recipes under git-shell."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import run
from support.keys import People, signed_policy
from support.repos import Server
from support.servers import find_program, free_port, make_ssh_key

from stepup_git.install import launcher_text

OWNER = "nobody"
SYSTEM_PYTHON = Path("/usr/bin/python3")

as_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None,
                             reason="acts as root for another user (needs root and runuser)")


@pytest.fixture
def public() -> Iterator[Path]:
    """A folder everyone may enter (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="sgpublic", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def venv_with_stepup(folder: Path, mode: int) -> Path:
    """A virtual environment of the system Python in ``folder`` (chmod ``mode``) that imports this
    checkout's stepup-git and its dependencies from the test virtual environment; its python."""
    probe = run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], check=False)
    if probe.returncode != 0 or probe.stdout.strip() != str(sys.version_info[:2]):
        pytest.skip(f"needs {SYSTEM_PYTHON} of Python {sys.version_info[0]}.{sys.version_info[1]}")
    folder.mkdir()
    folder.chmod(mode)
    venv = folder / "venv"
    run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", venv])
    site = next((venv / "lib").glob("python3*/site-packages"))
    here = sysconfig.get_paths()["purelib"]
    (site / "stepup-test.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    return venv / "bin" / "python"


def foreign_repository(public: Path) -> Path:
    """A bare repository under a folder everyone may enter, owned by OWNER."""
    try:
        who = pwd.getpwnam(OWNER)
    except KeyError:
        pytest.skip(f"no user {OWNER}")
    srv = public / "srv"
    srv.mkdir()
    repo = srv / "app.git"
    run(["git", "init", "-q", "--bare", "-b", "main", repo])
    for item in [repo, *repo.rglob("*")]:
        os.chown(item, who.pw_uid, who.pw_gid, follow_symlinks=False)
    return repo


@as_root
def test_install_as_root_names_git_ownership_refusal_then_works_once_trusted(
        people: People, server: Server, tmp_path: Path, public: Path) -> None:
    """Without safe.directory Git (and libgit2) refuse nobody's repository: install names the cause and
    both fixes instead of "not a Git repository". Trusted, install works, gives stepup/ to nobody, and
    says nothing more when nobody can run the hook's Python."""
    server.write_policy(signed_policy(people.alice), {"alice.asc": people.alice.export()})
    repo = foreign_repository(public)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig")}
    python = venv_with_stepup(public / "opt", 0o755)

    refused = run([python, "-m", "stepup_git", "install", repo, "--policy", server.policy_path], env=env,
                  cwd=tmp_path, check=False)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.splitlines() == [
        f"stepup-git: {repo}: {repo} belongs to nobody, not to root, and Git refuses another user's repository "
        f"(dubious ownership); install as its owner: sudo -u nobody stepup-git install {repo} --policy "
        f"{server.policy_path} (or trust it: git config --global --add safe.directory {repo})"]
    assert not (repo / "hooks" / "pre-receive").exists()
    status = run([python, "-m", "stepup_git", "status", repo], env=env, cwd=tmp_path, check=False)
    assert (status.returncode, status.stderr.splitlines()) == (2, [
        f"stepup-git: {repo} belongs to nobody, not to root, and Git refuses another user's repository "
        f"(dubious ownership); run this as its owner (sudo -u nobody stepup-git ...) or trust it: "
        f"git config --global --add safe.directory {repo}"])

    run(["git", "config", "--global", "--add", "safe.directory", repo], env=env)
    done = run([python, "-m", "stepup_git", "install", repo, "--policy", server.policy_path], env=env,
               cwd=tmp_path, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"installed stepup-git in {repo} (policy {server.policy_path}, mode enforce)",
        f"  owner: gave {repo / 'stepup'} to nobody, the repository's owner, for the hook's state",
    ]
    nobody = pwd.getpwnam(OWNER).pw_uid
    assert [p.stat().st_uid for p in (repo / "stepup", repo / "stepup" / "baseline")] == [nobody, nobody]
    assert f"STEPUP_PYTHON='{python}'" in (repo / "hooks" / "pre-receive").read_text()
    # nobody really runs that launcher's Python: the hook starts and answers for itself
    ran = run(["runuser", "-u", OWNER, "--", python, "-I", "-m", "stepup_git", "--version"], cwd="/",
              check=False)
    assert ran.returncode == 0, ran.stderr


@as_root
def test_install_warns_when_the_owner_cannot_run_the_hooks_python(people: People, server: Server,
                                                                  tmp_path: Path, public: Path) -> None:
    """stepup-git installed in a virtual environment under a folder only root may enter (like /root): the
    install goes through, with a warning naming the owner, the interpreter and the fix; the launcher
    as nobody then fails as the warning said."""
    server.write_policy(signed_policy(people.alice), {"alice.asc": people.alice.export()})
    repo = foreign_repository(public)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig")}
    run(["git", "config", "--global", "--add", "safe.directory", repo], env=env)
    python = venv_with_stepup(public / "private", 0o700)

    done = run([python, "-m", "stepup_git", "install", repo, "--policy", server.policy_path], env=env,
               cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"installed stepup-git in {repo} (policy {server.policy_path}, mode enforce)"
    assert done.stderr.splitlines() == [
        f"stepup-git: {repo}: warning: nobody, who owns {repo} and whom Git runs the hook as, cannot run the "
        f"hook's Python {python} with stepup-git: every push would be rejected; install stepup-git where nobody "
        "can read it, e.g. STEPUP_VENV=/opt/stepup-git/venv ./install.sh, then run "
        f"/opt/stepup-git/venv/bin/stepup-git install {repo} again"]
    hook = run(["runuser", "-u", OWNER, "--", repo / "hooks" / "pre-receive"], cwd="/", check=False)
    assert hook.returncode == 1
    assert hook.stderr.splitlines() == [
        f"stepup-git: the hook's Python interpreter {python} is missing or not executable; reinstall "
        "stepup-git, then run stepup-git install again for this repository"]


def doc_block(after: str, fence: str = "sh") -> str:
    """The first fenced block of docs/servers.md after the line ``after``."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "servers.md").read_text()
    rest = text[text.index(after + "\n"):]
    start = rest.index(f"```{fence}\n") + len(f"```{fence}\n")
    return rest[start:rest.index("```\n", start)]


def test_servers_doc_shows_the_launcher_install_writes(server: Server) -> None:
    """docs/servers.md's launcher is what install writes for /opt/stepup-git/venv, byte for byte."""
    assert doc_block("### The launcher") == launcher_text("/opt/stepup-git/venv/bin/python")
    server.write_policy("version = 1\n")
    server.install()
    written = (server.path / "hooks" / "pre-receive").read_text()
    assert written == launcher_text(sys.executable)
    assert doc_block("### The launcher").replace("/opt/stepup-git/venv/bin/python", sys.executable) == written


SSH_USER = "sgitshell"
SSH_CLIENT = ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
              "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes"]
PUSHER_HOOK = '#!/bin/sh\ncat >/dev/null\necho "pusher=${STEPUP_PUSHER-unset}" >&2\nexit 1\n'


@pytest.fixture
def git_shell_user(public: Path) -> Iterator[Path]:
    """A system user whose login shell is git-shell, with its home in ``public``; its home."""
    tools = [find_program(name) for name in ("useradd", "userdel", "sshd", "git-shell")]
    if os.geteuid() != 0 or None in tools:
        pytest.skip("needs root, useradd, userdel, sshd and git-shell")
    home = public / "home"
    run(["userdel", SSH_USER], check=False)  # left over by an interrupted run
    run(["useradd", "-r", "-M", "-p", "*", "-d", home, "-s", tools[3], SSH_USER])
    try:
        yield home
    finally:
        run(["userdel", SSH_USER], check=False)


def test_servers_doc_ssh_recipes_work_with_git_shell_as_login_shell(git_shell_user: Path, public: Path) -> None:
    """The wrapper docs/servers.md prints, kept in ~/git-shell-commands, and environment= without a
    command: real sshd, real git-shell as the Git user's shell; the hook sees the pusher of the key's
    line whatever the client sends, and an absolute command= path fails as the page says."""
    home = git_shell_user
    (home / "git-shell-commands").mkdir(parents=True)
    wrapper = home / "git-shell-commands" / "git-as"
    wrapper.write_text(doc_block("### SSH: one key per person"))
    wrapper.chmod(0o755)
    outside = public / "git-as"
    outside.write_text(wrapper.read_text())
    outside.chmod(0o755)
    repo = home / "app.git"
    run(["git", "init", "-q", "--bare", repo])
    (repo / "hooks" / "pre-receive").write_text(PUSHER_HOOK)
    (repo / "hooks" / "pre-receive").chmod(0o755)
    run(["chown", "-R", SSH_USER, home])
    keys = {name: make_ssh_key(public / "keys", name) for name in ("alice", "bob", "carol")}
    line = {name: Path(f"{path}.pub").read_text().strip() for name, path in keys.items()}
    state = public / "sshd"
    state.mkdir()
    (state / "authorized_keys").write_text(
        f'command="git-as alice",restrict {line["alice"]}\n'
        f'environment="STEPUP_PUSHER=bob",restrict {line["bob"]}\n'
        f'command="{outside} carol",restrict {line["carol"]}\n')
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", state / "host"])
    port = free_port()
    (state / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {state / 'host'}\nPidFile {state / 'pid'}\n"
        f"AuthorizedKeysFile {state / 'authorized_keys'}\nAllowUsers {SSH_USER}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitUserEnvironment STEPUP_PUSHER\n")
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    sshd = subprocess.Popen([find_program("sshd") or "sshd", "-D", "-e", "-f", state / "sshd_config"],
                            stderr=subprocess.DEVNULL, env={"PATH": os.defpath})
    try:
        deadline = time.monotonic() + 20
        while not port_open(port):
            assert sshd.poll() is None and time.monotonic() < deadline, "sshd did not start"
            time.sleep(0.05)
        clone = public / "clone"
        run(["git", "init", "-q", clone])
        run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=clone)
        url = f"ssh://{SSH_USER}@127.0.0.1:{port}{repo}"

        def push(name: str, *ssh_options: str, env: dict[str, str] | None = None) -> list[str]:
            command = shlex.join([*SSH_CLIENT, "-p", str(port), "-i", str(keys[name]), *ssh_options])
            proc = run(["git", "push", "-q", url, "HEAD:main"], cwd=clone, check=False,
                       env={"GIT_SSH_COMMAND": command, **(env or {})})
            assert proc.returncode != 0  # the hook above always refuses
            return [ln.removeprefix("remote: ").strip() for ln in proc.stderr.splitlines()
                    if ln.startswith(("remote: pusher", "fatal: unrecognized"))]

        assert push("alice") == ["pusher=alice"]
        assert push("bob") == ["pusher=bob"]
        assert push("bob", "-o", "SendEnv=STEPUP_PUSHER", env={"STEPUP_PUSHER": "mallory"}) == ["pusher=bob"]
        assert push("carol") == [f"fatal: unrecognized command '{outside} carol'"]
        for name in ("alice", "bob"):  # neither key lets the client name the pusher
            forged = run([*SSH_CLIENT, "-p", str(port), "-i", keys[name], f"{SSH_USER}@127.0.0.1", "git-as mallory"],
                         check=False)
            assert forged.returncode != 0
            assert forged.stderr.splitlines()[-1].startswith("git-as: not a Git command: "), forged.stderr
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
