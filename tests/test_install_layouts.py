"""install --layout, a chained hook beside a shared launcher, and the CI gate's zero id."""

from __future__ import annotations

import sys
from pathlib import Path

from support import run
from support.keys import People, key_toml, signed_policy
from support.lines import unwrap
from support.repos import Clone, Server

from stepup_git.chained import CHAINED
from stepup_git.policy import load_with_warnings


def stepup(*args: object, check: bool = False) -> tuple[int, str, str]:
    proc = run([sys.executable, "-m", "stepup_git", *map(str, args)], check=False)
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def _signed_policy(people: People, server: Server) -> None:
    server.write_policy(signed_policy(people.alice), {"alice.asc": people.alice.export()})


def test_gitea_and_gitlab_layouts_write_into_pre_receive_d(people: People, server: Server, clone: Clone) -> None:
    _signed_policy(people, server)
    code, out, _ = stepup("install", server.path, "--policy", server.policy_path, "--layout", "gitea")
    assert code == 0
    hook = server.path / "hooks" / "pre-receive.d" / "stepup-git"
    assert f"  hook: {hook.resolve()}" in out.splitlines()
    assert hook.stat().st_mode & 0o111 and "stepup-git hook launcher" in hook.read_text()
    code, out, _ = stepup("install", server.path, "--policy", server.policy_path, "--layout", "gitlab")
    assert code == 0
    assert (server.path / "custom_hooks" / "pre-receive.d" / "stepup-git").is_file()
    # a Gitea-style dispatcher runs the launcher from pre-receive.d: the push is judged
    dispatcher = server.path / "hooks" / "pre-receive"
    dispatcher.write_text('#!/bin/sh\ndata=$(cat)\nfor h in "$(dirname "$0")"/pre-receive.d/*; do\n'
                          '  printf "%s\\n" "$data" | "$h" || exit 1\ndone\n')
    dispatcher.chmod(0o755)
    clone.write("a.txt", "a\n")
    clone.commit("unsigned")
    result = clone.push("HEAD:main")
    assert not result.ok and result.remote[0].startswith("stepup-git: push rejected:"), result
    assert server.ref("refs/heads/main") is None


def test_chain_is_refused_with_a_pre_receive_d_layout(server: Server) -> None:
    server.write_policy('version = 1\n')
    code, _, err = stepup("install", server.path, "--policy", server.policy_path, "--layout", "gitea", "--chain")
    assert code == 2
    assert err.strip() == ("stepup-git: --chain is not needed with --layout gitea: the server runs every hook in "
                           "pre-receive.d")


def test_chained_hook_beside_a_shared_launcher_runs(people: People, server: Server, clone: Clone,
                                                    tmp_path: Path) -> None:
    """Repositories sharing a hooks folder run the chained hook kept there, even without stepup.chain."""
    _signed_policy(people, server)
    shared = tmp_path / "shared-hooks"
    server.git("config", "core.hooksPath", str(shared))
    shared.mkdir()
    foreign = shared / "pre-receive"
    foreign.write_text("#!/bin/sh\necho 'legacy hook says no' >&2\nexit 1\n")
    foreign.chmod(0o755)
    code, _, err = stepup("install", server.path, "--policy", server.policy_path, "--chain")
    assert code == 0, err
    assert (shared / CHAINED).is_file()
    server.git("config", "--unset", "stepup.chain")  # as for a repository that only inherits the folder
    clone.write("a.txt", "a\n")
    clone.commit("signed", sign=people.alice)
    result = clone.push("HEAD:main")
    assert not result.ok
    assert "legacy hook says no" in result.remote
    assert f"stepup-git: push rejected: the chained pre-receive hook {shared / CHAINED} exited 1" in result.remote
    assert server.ref("refs/heads/main") is None


def test_verify_takes_the_zero_id_for_a_new_branch(people: People, server: Server, clone: Clone) -> None:
    """CI systems report 40 zeros as the previous commit of a new branch."""
    _signed_policy(people, server)
    clone.write("a.txt", "a\n")
    clone.commit("signed", sign=people.alice)
    zero = "0" * 40
    code, out, err = stepup("verify", "--repo", clone.path, "--policy", server.policy_path,
                            "--range", f"{zero}..HEAD", "--ref", "refs/heads/main")
    assert code == 0, out + err
    assert out.splitlines()[0] == "stepup-git: would be accepted (1 update(s), 1 rule check(s) passed)"
    clone.write("b.txt", "b\n")
    clone.commit("unsigned")
    code, out, _ = stepup("verify", "--repo", clone.path, "--policy", server.policy_path,
                          "--range", f"{zero}..HEAD", "--ref", "refs/heads/main")
    assert code == 1
    assert out.splitlines()[0] == "stepup-git: would be rejected: 1 of 1 update(s) fail the policy"


def test_tip_only_rule_fix_does_not_suggest_a_signed_push(people: People, server: Server, clone: Clone) -> None:
    server.write_policy(f"""
version = 1
{key_toml(people.alice, "alice", "maintainer")}
[[rules]]
name = "tip-only"
refs = ["refs/heads/main"]
require = "step-up"
tier = "maintainer"
proofs = ["tip-signature"]
fresh_within = "10m"
""", {"alice.asc": people.alice.export()})
    server.install()
    clone.write("a.txt", "a\n")
    clone.commit("unsigned")
    result = clone.push("HEAD:main", signed=people.alice)
    assert not result.ok, "a push certificate is not a proof this rule accepts"
    assert unwrap(result.remote)[-1] == (
        "    fix:      re-sign the tip with a key of tier maintainer or higher (git config user.signingkey <key id>): "
        "git commit --amend --no-edit -S, then push within 10m")


def test_step_up_needing_more_signers_than_proof_kinds_warns(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('version = 1\n[[rules]]\nname = "two"\nrequire = "step-up"\ntier = "maintainer"\n'
                    'proofs = ["tip-signature"]\nsigners = 2\n')
    policy, problems, warnings = load_with_warnings(path)
    assert policy is not None and problems == []
    assert f"{path}:2: warning: rule 'two' needs 2 signers but accepts 1 kind(s) of proof (a push certificate " \
           "and a tip signature give one signer each): it can never pass" in warnings


def test_verify_of_a_new_branch_in_a_detached_checkout_checks_every_commit(people: People, server: Server,
                                                                           clone: Clone) -> None:
    """A CI checkout is often a detached HEAD at the commit being verified: that is no base."""
    _signed_policy(people, server)
    clone.write("a.txt", "a\n")
    clone.commit("unsigned")
    clone.write("b.txt", "b\n")
    clone.commit("signed", sign=people.alice)
    clone.git("checkout", "-q", "--detach", "HEAD")
    code, out, _ = stepup("verify", "--repo", clone.path, "--policy", server.policy_path,
                          "--range", f"{'0' * 40}..HEAD", "--ref", "refs/heads/main")
    assert code == 1
    assert out.splitlines()[0] == "stepup-git: would be rejected: 1 of 1 update(s) fail the policy"
