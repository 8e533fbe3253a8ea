"""`stepup-git install --client`: a pre-push hook that predicts the server's verdict."""

from __future__ import annotations

import subprocess
import sys

from support.keys import People, signed_policy
from support.repos import Clone, Server


def _policy(people: People) -> str:
    return signed_policy(people.alice, name="main-history-signed")


def _install_client(clone: Clone, server: Server, *extra: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "stepup_git", "install", "--client", str(clone.path),
                           "--policy", str(server.policy_path), *extra], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _setup(people: People, server: Server, clone: Clone) -> None:
    server.write_policy(_policy(people), {"alice.asc": people.alice.export()})
    server.install()


def test_advisory_client_hook_predicts_and_lets_the_push_go(people: People, server: Server, clone: Clone) -> None:
    _setup(people, server, clone)
    assert "advisory" in _install_client(clone, server)
    clone.write("a.txt", "a\n")
    tip = clone.commit("Unsigned")
    result = clone.push("HEAD:main")
    assert not result.ok
    predicted = "stepup-git (pre-push): the server will likely reject: 1 of 1 update(s) fail the policy"
    assert any(line.startswith(predicted) for line in result.stderr.splitlines()), result
    assert f'refs/heads/main: rule "main-history-signed" failed for commit {tip[:10]}' in result.stderr
    assert result.remote[0].startswith("stepup-git: push rejected:"), "the push still reached the server"
    assert server.ref("refs/heads/main") is None


def test_strict_client_hook_stops_the_push_before_it_leaves(people: People, server: Server, clone: Clone) -> None:
    _setup(people, server, clone)
    assert "strict" in _install_client(clone, server, "--strict")
    clone.write("a.txt", "a\n")
    clone.commit("Unsigned")
    result = clone.push("HEAD:main")
    assert not result.ok
    assert "push stopped (stepup.clientStrict); git push --no-verify skips this check" in result.stderr
    assert result.remote == [], "nothing reached the server"
    assert server.audit_records() == []


def test_client_hook_is_silent_for_a_compliant_push(people: People, server: Server, clone: Clone) -> None:
    _setup(people, server, clone)
    _install_client(clone, server, "--strict")
    clone.write("a.txt", "a\n")
    tip = clone.commit("Signed", sign=people.alice)
    result = clone.push("HEAD:main")
    assert result.ok, result
    assert "pre-push" not in result.stderr
    assert server.ref("refs/heads/main") == tip


def test_strict_needs_client(server: Server) -> None:
    proc = subprocess.run([sys.executable, "-m", "stepup_git", "install", str(server.path), "--strict"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "stepup-git: --strict goes with --client"
    assert "Traceback" not in proc.stderr
