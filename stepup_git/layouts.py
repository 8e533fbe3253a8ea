"""Where the pre-receive launcher goes on each kind of Git server (``stepup-git install --layout``).

=========  ==========================================================  ==========================
layout     the launcher file                                           who runs it
=========  ==========================================================  ==========================
plain      ``<git dir>/hooks/pre-receive``, or ``<core.hooksPath>/pre-  Git itself
           receive`` (one file shared by every repository pointing
           there)
gitolite   ``$LOCAL_CODE/hooks/common/pre-receive`` (one file for all   Git, through the symlink
           repositories)                                               ``gitolite setup
                                                                       --hooks-only`` makes
gitea      ``<git dir>/hooks/pre-receive.d/stepup-git``                Gitea's ``hooks/pre-
                                                                       receive`` runs every file
                                                                       of ``pre-receive.d``
gitlab     ``<git dir>/custom_hooks/pre-receive.d/stepup-git``         Gitaly runs every file of
                                                                       ``pre-receive.d``
=========  ==========================================================  ==========================

In every layout the policy still comes from ``git config stepup.policy`` as the hook sees it (the
repository's config, the server user's ``~/.gitconfig`` or ``/etc/gitconfig``), and ``stepup-git
install`` still sets the per-repository ``receive.certNonceSeed``. This module only answers *where*;
writing the launcher and the configuration stays in ``install.py``.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path

from . import process
from .errors import UsageError

LAYOUTS = ("plain", "gitolite", "gitea", "gitlab")
"""The values of ``stepup-git install --layout``; ``plain`` is the default."""

DOT_D_NAME = "stepup-git"
"""The launcher's file name inside a ``pre-receive.d`` folder (any name but ``pre-push`` judges pushes)."""

GITOLITE_TIMEOUT = 30.0
GITOLITE_PACKAGE = "Debian: gitolite3"


def hooks_dir_for(layout: str, repo_git_dir: Path, *, hooks_path: str | None = None,
                  workdir: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The folder the launcher goes into for ``layout``.

    ``hooks_path`` is the repository's ``core.hooksPath`` (plain layout only; relative paths are
    taken from ``workdir`` when the repository has one, else from the git dir, as Git does).
    ``env`` is the environment the gitolite user's ``HOME`` is read from (gitolite layout only).
    """
    git_dir = Path(repo_git_dir)
    if layout == "plain":
        if not hooks_path:
            return git_dir / "hooks"
        path = Path(os.path.expanduser(hooks_path))
        return path if path.is_absolute() else (Path(workdir) if workdir else git_dir) / path
    if layout == "gitolite":
        return gitolite_local_code(env) / "hooks" / "common"
    if layout == "gitea":
        return git_dir / "hooks" / "pre-receive.d"
    if layout == "gitlab":
        return git_dir / "custom_hooks" / "pre-receive.d"
    raise UsageError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")


def hook_file_for(layout: str, repo_git_dir: Path, *, hooks_path: str | None = None,
                  workdir: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The launcher file for ``layout`` (see :func:`hooks_dir_for` for the arguments)."""
    folder = hooks_dir_for(layout, repo_git_dir, hooks_path=hooks_path, workdir=workdir, env=env)
    return folder / (DOT_D_NAME if uses_dot_d(layout) else "pre-receive")


def uses_dot_d(layout: str) -> bool:
    """True when the server runs every file of a ``pre-receive.d`` folder: no chaining is needed."""
    return layout in ("gitea", "gitlab")


def gitolite_local_code(env: Mapping[str, str] | None = None) -> Path:
    """``$LOCAL_CODE`` of the gitolite whose ``~/.gitolite.rc`` lives in ``env['HOME']``."""
    env = dict(os.environ if env is None else env)
    home = env.get("HOME", "")
    rc = Path(home) / ".gitolite.rc"
    if not home or not rc.is_file():
        raise UsageError(f"no gitolite here: {rc} does not exist (run stepup-git install --layout gitolite "
                         "as the gitolite user, with its HOME)")
    proc = process.run(["gitolite", "query-rc", "LOCAL_CODE"], env=env, timeout=GITOLITE_TIMEOUT, ok=None,
                       error=UsageError, install_hint=GITOLITE_PACKAGE, name="gitolite query-rc")
    value = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or not value:
        raise UsageError(f"LOCAL_CODE is not set in {rc}; add the line  LOCAL_CODE => \"$ENV{{HOME}}/local\",  "
                         "to its %RC hash, then rerun")
    path = Path(value)
    if not path.is_absolute():
        raise UsageError(f"LOCAL_CODE in {rc} is {value!r}; it must be an absolute path")
    return path


def gitolite_link_hooks(env: Mapping[str, str] | None = None) -> None:
    """Run ``gitolite setup --hooks-only``: link ``$LOCAL_CODE/hooks/common/*`` into every repository."""
    process.run(["gitolite", "setup", "--hooks-only"], env=env, timeout=GITOLITE_TIMEOUT, error=UsageError,
                install_hint=GITOLITE_PACKAGE, name="gitolite setup --hooks-only")


def next_steps(layout: str, hook: Path) -> list[str]:
    """What the administrator still has to do after the launcher was written to ``hook``."""
    if layout == "gitolite":
        return ["every repository must resolve stepup.policy, gitolite-admin included: e.g. in gitolite.conf "
                "'repo @all' / 'config stepup.policy = /etc/stepup/policy.toml' (GIT_CONFIG_KEYS must allow "
                "stepup\\..*), or run this install over each repository"]
    if layout == "gitea":
        return [f"{hook.parent.parent / 'pre-receive'} must be Gitea's dispatcher that runs pre-receive.d/* "
                "(Site Administration: resynchronize the Git hooks of all repositories if it is missing)"]
    if layout == "gitlab":
        return ["GitLab 15.11 and later set repository hooks through Gitaly: pack the hook with "
                "gitaly_hooks_tarball() and pipe it to: gitaly hooks set --storage <storage> "
                "--repository <relative path> --config <gitaly config.toml>"]
    return []


def gitaly_hooks_tarball(launcher: str) -> bytes:
    """A tar archive for ``gitaly hooks set``: ``custom_hooks/pre-receive.d/stepup-git`` (mode 0755)."""
    data = launcher.encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("custom_hooks", "custom_hooks/pre-receive.d"):
            folder = tarfile.TarInfo(name)
            folder.type = tarfile.DIRTYPE
            folder.mode = 0o755
            tar.addfile(folder)
        info = tarfile.TarInfo(f"custom_hooks/pre-receive.d/{DOT_D_NAME}")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
