"""Many repositories, one hooks folder: `core.hooksPath` pointing bare repositories at one launcher.

The launcher in the shared folder is the same file for every repository; which policy judges a push
is decided per repository by `git config stepup.policy` as the hook reads it (the repository's own
config first, then the server user's `~/.gitconfig`). Also: where `stepup_git.layouts` puts the
launcher for the other server layouts (docs/servers.md).
"""

from __future__ import annotations

import io
import os
import re
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support import run
from support.keys import People, key_toml
from support.repos import Clone, Server
from support.servers import git_daemon, unavailable

from stepup_git import layouts
from stepup_git.errors import UsageError
from stepup_git.install import launcher_text

MAIN = "refs/heads/main"
MIGRATION = "db/migrations/0001_init.sql"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
NO_RULES = ["stepup-git: push accepted (1 update(s), 0 rule check(s) passed)",
            "stepup-git: note: refs/heads/main: no rule applies"]
ONE_RULE = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"

LAUNCHER_COMMAND = (
    "import sys; from stepup_git.install import launcher_text; sys.stdout.write(launcher_text(sys.executable))"
)
"""The command docs/servers.md gives for writing the launcher of a shared hooks folder."""

TIERS = 'version = 1\n\n[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'


def strict_policy(people: People) -> str:
    """Migrations on any branch need a fresh maintainer proof; alice is a maintainer."""
    return (
        TIERS
        + key_toml(people.alice, "alice", "maintainer")
        + '\n[[rules]]\nname = "migrations-step-up"\nrefs = ["refs/heads/**"]\npaths = ["db/migrations/**"]\n'
        'require = "step-up"\ntier = "maintainer"\n'
    )


def open_policy() -> str:
    """No rules: every push is allowed (and audited)."""
    return TIERS


def signed_policy(people: People) -> str:
    """Every commit on main signed by a policy key."""
    return (
        TIERS
        + key_toml(people.alice, "alice", "maintainer")
        + '\n[[rules]]\nname = "main-signed"\nrefs = ["refs/heads/main"]\nrequire = "signed"\ntier = "contributor"\n'
    )


def alice_keys(people: People) -> dict[str, str]:
    return {"alice.asc": people.alice.export()}


def shared_hooks_folder(root: Path) -> Path:
    """A hooks folder holding the launcher, written by the documented one-line command."""
    folder = root / "git-hooks"
    folder.mkdir(parents=True)
    text = subprocess.run([sys.executable, "-c", LAUNCHER_COMMAND], capture_output=True, text=True,
                          check=True).stdout
    hook = folder / "pre-receive"
    hook.write_text(text)
    hook.chmod(0o755)
    return folder


def repository(root: Path, policy: str | None, keys: dict[str, str], hooks: Path) -> Server:
    """A bare repository using the shared `hooks`, with its own policy (if given) and nonce seed."""
    server = Server(root)
    server.git("config", "core.hooksPath", str(hooks))
    server.git("config", "receive.certNonceSeed", secrets.token_hex(32))
    if policy is not None:
        server.write_policy(policy, keys)
        server.git("config", "stepup.policy", str(server.policy_path))
    return server


def migration_commit(clone: Clone) -> str:
    clone.write(MIGRATION, "CREATE TABLE users (id INTEGER PRIMARY KEY);\n")
    return clone.commit("Add the users table")


def finding_head(rule: str, tip: str) -> str:
    return f'{MAIN}: rule "{rule}" failed for commit {tip[:10]}'


def test_shared_launcher_is_the_installed_launcher(tmp_path: Path) -> None:
    """The documented one-liner writes exactly what `stepup-git install` writes, with this venv's python."""
    hooks = shared_hooks_folder(tmp_path)
    text = (hooks / "pre-receive").read_text()
    assert text == launcher_text(sys.executable)
    assert f"STEPUP_PYTHON='{sys.executable}'" in text.splitlines()
    assert "stepup-git hook launcher" in text
    assert os.access(hooks / "pre-receive", os.X_OK)


def test_each_repository_is_judged_by_its_own_policy(people: People, tmp_path: Path) -> None:
    """Three repositories, one launcher: the same unsigned migration is judged by each repo's policy."""
    hooks = shared_hooks_folder(tmp_path)
    app = repository(tmp_path / "app", strict_policy(people), alice_keys(people), hooks)
    sandbox = repository(tmp_path / "sandbox", open_policy(), {}, hooks)
    lib = repository(tmp_path / "lib", signed_policy(people), alice_keys(people), hooks)
    for server in (app, sandbox, lib):
        assert not (server.path / "hooks" / "pre-receive").exists()

    pushes = {}
    for name, server in (("app", app), ("sandbox", sandbox), ("lib", lib)):
        clone = Clone(server, tmp_path / f"{name}-dev")
        tip = migration_commit(clone)
        pushes[name] = (clone, tip, clone.push("HEAD:main"))

    app_clone, app_tip, app_push = pushes["app"]
    assert not app_push.ok
    assert app_push.remote[:2] == [REJECTED, finding_head("migrations-step-up", app_tip)]
    assert app.ref(MAIN) is None

    _, sandbox_tip, sandbox_push = pushes["sandbox"]
    assert sandbox_push.ok, sandbox_push
    assert sandbox_push.remote == NO_RULES
    assert sandbox.ref(MAIN) == sandbox_tip

    _, lib_tip, lib_push = pushes["lib"]
    assert not lib_push.ok
    assert lib_push.remote[:2] == [REJECTED, finding_head("main-signed", lib_tip)]
    assert lib_push.remote[4] == "    found:    no signature"  # under the required, on two lines
    assert lib.ref(MAIN) is None

    proven = app_clone.push("HEAD:main", signed=people.alice)
    assert proven.ok, proven
    assert proven.remote == [ONE_RULE]
    assert app.ref(MAIN) == app_tip

    app_log, sandbox_log, lib_log = app.audit_records(), sandbox.audit_records(), lib.audit_records()
    assert [r["decision"] for r in app_log] == ["reject", "accept"]
    assert [r["decision"] for r in sandbox_log] == ["accept"]
    assert [r["decision"] for r in lib_log] == ["reject"]
    assert {r["repo"] for r in app_log} == {str(app.path.resolve())}
    assert {r["repo"] for r in lib_log} == {str(lib.path.resolve())}
    (proof,) = app_log[-1]["rules"][0]["proofs"]
    assert (proof["kind"], proof["fingerprint"]) == ("push-certificate", people.alice.fingerprint)
    assert sandbox_log[0]["rules"] == []


def test_repository_without_a_policy_is_closed(tmp_path: Path) -> None:
    """A repository pointed at the shared hooks but with no stepup.policy anywhere rejects every push."""
    hooks = shared_hooks_folder(tmp_path)
    orphan = repository(tmp_path / "orphan", None, {}, hooks)
    clone = Clone(orphan, tmp_path / "dev")
    clone.write("README", "hello\n")
    clone.commit("Initial")
    result = clone.push("HEAD:main")
    assert not result.ok
    git_dir = orphan.path.resolve()
    assert result.remote == [
        f"stepup-git: push rejected: no policy configured for {git_dir} "
        f"(run: stepup-git install {git_dir} --policy FILE)"
    ]
    assert orphan.ref(MAIN) is None


def test_install_writes_one_shared_launcher_and_a_seed_per_repository(people: People, tmp_path: Path) -> None:
    """With core.hooksPath in the Git user's ~/.gitconfig, `stepup-git install` over three repositories
    writes the shared launcher once (not into hooks/) and gives each repository its own seed and policy."""
    hooks = tmp_path / "git-hooks"
    hooks.mkdir()
    git_user: dict[str, str | None] = {"HOME": str(tmp_path / "git-user"), "GIT_CONFIG_GLOBAL": None}
    (tmp_path / "git-user").mkdir()
    run(["git", "config", "--file", str(tmp_path / "git-user" / ".gitconfig"), "core.hooksPath", str(hooks)])
    servers = [Server(tmp_path / name) for name in ("one", "two", "three")]
    policy = servers[0].write_policy(strict_policy(people), alice_keys(people))
    install = [sys.executable, "-m", "stepup_git", "install"]
    proc = run([*install, *(str(s.path) for s in servers), "--policy", str(policy)], env=git_user)
    assert proc.stdout.splitlines() == [
        f"installed stepup-git in {s.path.resolve()} (policy {policy.resolve()}, mode enforce)" for s in servers
    ]
    assert sorted(p.name for p in hooks.iterdir()) == ["pre-receive"]
    assert (hooks / "pre-receive").read_text() == launcher_text(sys.executable)
    for server in servers:
        assert not (server.path / "hooks" / "pre-receive").exists()
        assert server.git("config", "--local", "stepup.policy") == str(policy.resolve())
    seeds = [server.git("config", "--local", "receive.certNonceSeed") for server in servers]
    assert all(re.fullmatch(r"[0-9a-f]{64}", seed) for seed in seeds)
    assert len(set(seeds)) == 3

    sandbox_policy = servers[2].write_policy(open_policy())
    run([*install, str(servers[2].path), "--policy", str(sandbox_policy)], env=git_user)
    assert servers[2].git("config", "--local", "stepup.policy") == str(sandbox_policy.resolve())
    assert servers[0].git("config", "--local", "stepup.policy") == str(policy.resolve())
    assert (hooks / "pre-receive").read_text() == launcher_text(sys.executable)
    assert servers[2].git("config", "--local", "receive.certNonceSeed") == seeds[2]


def test_server_user_config_covers_every_repository(people: People, tmp_path: Path) -> None:
    """Over `git daemon`, the server user's ~/.gitconfig sets hooksPath and a default policy for all repos.

    A repository with its own `stepup.policy` overrides the default; one without gets the default.
    """
    reason = unavailable("daemon")
    if reason:
        pytest.skip(reason)
    hooks = shared_hooks_folder(tmp_path)
    base = tmp_path / "srv"
    strict = Server(base / "strict")
    default_policy = strict.write_policy(strict_policy(people), alice_keys(people))
    relaxed = Server(base / "relaxed")
    relaxed.git("config", "stepup.policy", str(relaxed.write_policy(open_policy())))
    for server in (strict, relaxed):
        server.git("config", "receive.certNonceSeed", secrets.token_hex(32))
    server_home = tmp_path / "git-user"
    server_home.mkdir()
    user_config = server_home / ".gitconfig"
    run(["git", "config", "--file", str(user_config), "core.hooksPath", str(hooks)])
    run(["git", "config", "--file", str(user_config), "stepup.policy", str(default_policy)])

    env = {"HOME": str(server_home), "GIT_CONFIG_GLOBAL": str(user_config)}
    with git_daemon(base, env=env) as url:
        results = {}
        for server, name in ((strict, "strict"), (relaxed, "relaxed")):
            clone = Clone(server, tmp_path / f"{name}-dev")
            tip = migration_commit(clone)
            results[name] = (tip, clone.push("HEAD:main", remote=f"{url}{name}/server.git"))

    strict_tip, strict_push = results["strict"]
    assert not strict_push.ok
    assert strict_push.remote[:2] == [REJECTED, finding_head("migrations-step-up", strict_tip)]
    assert strict.ref(MAIN) is None
    relaxed_tip, relaxed_push = results["relaxed"]
    assert relaxed_push.ok, relaxed_push
    assert relaxed_push.remote == NO_RULES
    assert relaxed.ref(MAIN) == relaxed_tip
    assert [r["decision"] for r in strict.audit_records()] == ["reject"]
    assert [r["decision"] for r in relaxed.audit_records()] == ["accept"]


def test_launcher_in_a_pre_receive_d_folder_judges_the_push(people: People, tmp_path: Path) -> None:
    """Named `stepup-git` in `hooks/pre-receive.d/` (gitea layout) and fed by a dispatcher shaped like
    Gitea's `hooks/pre-receive` (stdin captured with `$(cat)`, replayed with `echo`), the launcher
    still judges the push as a pre-receive hook, and the dispatcher's exit code rejects it."""
    server = Server(tmp_path / "gitea-like")
    server.write_policy(strict_policy(people), alice_keys(people))
    server.git("config", "stepup.policy", str(server.policy_path))
    server.git("config", "receive.certNonceSeed", secrets.token_hex(32))
    hook = layouts.hook_file_for("gitea", server.path)
    assert hook == server.path / "hooks" / "pre-receive.d" / "stepup-git"
    hook.parent.mkdir(parents=True)
    hook.write_text(launcher_text(sys.executable))
    hook.chmod(0o755)
    dispatcher = server.path / "hooks" / "pre-receive"
    dispatcher.write_text(
        '#!/bin/sh\ndata=$(cat)\nexitcodes=""\nhookname=$(basename $0)\nGIT_DIR=${GIT_DIR:-$(dirname $0)/..}\n'
        'for hook in ${GIT_DIR}/hooks/${hookname}.d/*; do\n'
        '  test -x "${hook}" && test -f "${hook}" || continue\n'
        '  echo "${data}" | "${hook}"\n  exitcodes="${exitcodes} $?"\ndone\n'
        'for i in ${exitcodes}; do\n  [ ${i} -eq 0 ] || exit ${i}\ndone\n'
    )
    dispatcher.chmod(0o755)
    clone = Clone(server, tmp_path / "dev")
    tip = migration_commit(clone)
    refused = clone.push("HEAD:main", pusher="alice")
    assert not refused.ok
    assert refused.remote[:2] == [REJECTED, finding_head("migrations-step-up", tip)]
    assert server.ref(MAIN) is None
    proven = clone.push("HEAD:main", signed=people.alice, pusher="alice")
    assert proven.ok, proven
    assert proven.remote == [ONE_RULE]
    assert server.ref(MAIN) == tip
    assert [(r["pusher"], r["decision"]) for r in server.audit_records()] == [("alice", "reject"), ("alice", "accept")]


def test_layout_paths(tmp_path: Path) -> None:
    """Where each layout puts the launcher, and which layouts share one file between repositories."""
    git_dir = tmp_path / "app.git"
    assert layouts.hook_file_for("plain", git_dir) == git_dir / "hooks" / "pre-receive"
    assert layouts.hook_file_for("plain", git_dir, hooks_path="/srv/git-hooks") == Path("/srv/git-hooks/pre-receive")
    assert layouts.hooks_dir_for("plain", git_dir, hooks_path="shared-hooks") == git_dir / "shared-hooks"
    assert layouts.hook_file_for("gitea", git_dir) == git_dir / "hooks" / "pre-receive.d" / "stepup-git"
    assert layouts.hook_file_for("gitlab", git_dir) == git_dir / "custom_hooks" / "pre-receive.d" / "stepup-git"
    assert [layout for layout in layouts.LAYOUTS if layouts.uses_dot_d(layout)] == ["gitea", "gitlab"]
    with pytest.raises(UsageError, match=r"^unknown layout 'gerrit'; use one of plain, gitolite, gitea, gitlab$"):
        layouts.hooks_dir_for("gerrit", git_dir)
    with pytest.raises(UsageError, match=r"^no gitolite here: .*/\.gitolite\.rc does not exist"):
        layouts.hooks_dir_for("gitolite", git_dir, env={"HOME": str(tmp_path), "PATH": os.environ["PATH"]})


def test_gitaly_tarball_holds_the_launcher() -> None:
    """The archive for `gitaly hooks set` holds custom_hooks/pre-receive.d/stepup-git, executable."""
    launcher = launcher_text(sys.executable)
    with tarfile.open(fileobj=io.BytesIO(layouts.gitaly_hooks_tarball(launcher))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["custom_hooks", "custom_hooks/pre-receive.d",
                                   "custom_hooks/pre-receive.d/stepup-git"]
        hook = members["custom_hooks/pre-receive.d/stepup-git"]
        assert hook.isfile() and hook.mode == 0o755
        extracted = tar.extractfile(hook)
        assert extracted is not None
        assert extracted.read().decode() == launcher
