"""The hook launcher: it names the hook type it runs, and says in one line what is wrong when the
interpreter it was written with is gone."""

from __future__ import annotations

from pathlib import Path

from support import run
from support.repos import Clone, Server

from stepup_git.install import launcher_text

ROOT = Path(__file__).resolve().parent.parent


def test_the_checkout_launchers_name_their_hook_type() -> None:
    for hook_type in ("pre-receive", "pre-push"):
        text = (ROOT / "hooks" / hook_type).read_text()
        template = (ROOT / "stepup_git" / "launcher.sh").read_text()
        assert text == template.replace("@HOOK@", hook_type)
        assert f"-m stepup_git hook --hook-type {hook_type} " in text


def test_a_missing_interpreter_refuses_the_push_with_one_line(server: Server, clone: Clone,
                                                               tmp_path: Path) -> None:
    server.write_policy('version = 1\n')
    server.install()
    hook = server.path / "hooks" / "pre-receive"
    gone = tmp_path / "venv-that-was-removed" / "bin" / "python"
    hook.write_text(launcher_text(str(gone)))
    clone.write("a.txt", "a\n")
    clone.commit("a")
    result = clone.push("HEAD:main")
    assert not result.ok
    assert result.remote == [f"stepup-git: the hook's Python interpreter {gone} is missing or not executable; "
                             "reinstall stepup-git, then run stepup-git install again for this repository"]
    assert server.ref("refs/heads/main") is None


def test_an_unknown_hook_type_is_refused_with_one_line(server: Server) -> None:
    server.write_policy('version = 1\n')
    server.install()
    hook = server.path / "hooks" / "pre-receive"
    hook.write_text(hook.read_text().replace("--hook-type pre-receive", "--hook-type post-receive"))
    proc = run([str(hook)], cwd=server.path, check=False, input="")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.splitlines() == ["stepup-git: the hook launcher names an unknown hook type; expected one of "
                                        "pre-receive, pre-push"]
