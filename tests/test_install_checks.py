"""install as root into a repository another user owns: Git's ownership refusal named with its fixes,
the hook's state handed to the owner, and a warning when the owner cannot run the hook's Python."""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import run
from support.keys import People, signed_policy
from support.repos import Server

OWNER = "nobody"
SYSTEM_PYTHON = Path("/usr/bin/python3")

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="installs as root into another user's repository"),
              pytest.mark.skipif(shutil.which("runuser") is None, reason="needs runuser (Debian: util-linux)")]


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
