"""`stepup-git install --client`: a pre-push hook that predicts the server's verdict."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import run
from support.keys import People, signed_policy
from support.lines import unwrap
from support.repos import Clone, Server, signing_config

from stepup_git.proofs.predicted import Signing, push_signing


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
    predicted = "stepup-git (pre-push): the server will likely reject 1 of 1 update(s)"
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
    assert _hook_says(result.stderr)[-1] == STOPPED
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


# --- signed pushes: the prediction knows that git push --signed carries a certificate ---------------

STEP_UP = """version = 1

[[keys]]
fingerprint = "{fingerprint}"
owner = "alice"
tier = "maintainer"

[[rules]]
name = "main-step-up"
refs = ["refs/heads/main"]
require = "step-up"
tier = "maintainer"
"""


def _step_up_setup(people: People, server: Server, clone: Clone) -> None:
    server.write_policy(STEP_UP.format(fingerprint=people.alice.fingerprint), {"alice.asc": people.alice.export()})
    server.install()
    _install_client(clone, server, "--strict")


def _hook_lines(stderr: str) -> list[str]:
    """What the pre-push hook printed: git's own lines (To ..., error: ..., hints) left out."""
    return [line for line in stderr.splitlines()
            if line.startswith(("stepup-git (pre-push)", "refs/", "    "))]


NOTE_CONTINUED = " " * len("stepup-git (pre-push): ")


def _said(lines: list[str]) -> list[str]:
    """The pre-push hook's lines, each wrapped line joined back (findings, and its own notes)."""
    joined: list[str] = []
    for line in unwrap(lines):
        if joined and joined[-1].startswith("stepup-git (pre-push): ") and line.startswith(NOTE_CONTINUED):
            joined[-1] += " " + line.strip()
        else:
            joined.append(line)
    return joined


def _hook_says(stderr: str) -> list[str]:
    """What the pre-push hook printed, wrapped lines joined back: git's own lines (error: ..., To ...) left out."""
    return _said([line for line in stderr.splitlines() if line.startswith(("stepup-git (pre-push)", "refs/", "    "))])


def _step_up_finding(tip: str, found: list[str], fix: str) -> list[str]:
    return [
        "stepup-git (pre-push): the server will likely reject 1 of 1 update(s)",
        f'refs/heads/main: rule "main-step-up" failed for commit {tip[:10]}',
        "    required: a fresh proof of tier maintainer or higher: a signed push certificate for this update "
        "(git push --signed) or a signature on the pushed tip made within the last 15m (create of refs/heads/main)",
        f"    found:    {found[0]}",
        *(f"              {part}" for part in found[1:]),
        f"    fix:      {fix}",
    ]


NO_CERTIFICATE = "push certificate: none (the push was not made with git push --signed)"
UNSIGNED_TIP = [NO_CERTIFICATE, "tip commit {tip}: no signature"]
SIGN_FIX = ("sign the push with a key of tier maintainer or higher: git config user.signingkey <key id>, then git push "
            "--signed; or re-sign the tip now: git commit --amend --no-edit -S, then push")
STOPPED = "stepup-git (pre-push): push stopped (stepup.clientStrict); git push --no-verify skips this check"
NOT_STOPPED = "stepup-git (pre-push): not stopped (stepup.clientStrict): the server may accept this push; it decides"


def test_strict_client_hook_lets_a_signed_push_through_to_the_server(people: People, server: Server,
                                                                       clone: Clone) -> None:
    _step_up_setup(people, server, clone)
    clone.write("a.txt", "a\n")
    tip = clone.commit("Unsigned")
    result = clone.push("main", signed=people.alice)
    assert result.ok, result
    assert _hook_says(result.stderr) == [], "the client hook predicted the certificate's proof"
    assert result.remote == ["stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"]
    assert server.ref("refs/heads/main") == tip
    (record,) = server.audit_records()
    (proof,) = record["rules"][0]["proofs"]
    assert (proof["kind"], proof["fingerprint"], proof["owner"]) == ("push-certificate", people.alice.fingerprint,
                                                                    "alice")


def test_strict_client_hook_stops_the_same_push_unsigned(people: People, server: Server, clone: Clone) -> None:
    _step_up_setup(people, server, clone)
    clone.write("a.txt", "a\n")
    tip = clone.commit("Unsigned")
    result = clone.push("main")
    assert not result.ok
    assert _hook_says(result.stderr) == [
        *_step_up_finding(tip, [part.format(tip=tip[:10]) for part in UNSIGNED_TIP], SIGN_FIX),
        "stepup-git (pre-push): predicted without a push certificate: this push is not signed (git push without "
        "--signed, and push.gpgSign is not set)",
        STOPPED,
    ]
    assert result.remote == [], "nothing reached the server"
    assert server.audit_records() == []


@pytest.mark.parametrize("value", ["true", "if-asked"])
def test_push_gpgsign_config_signs_the_push_and_is_allowed(people: People, server: Server, clone: Clone,
                                                            value: str) -> None:
    _step_up_setup(people, server, clone)
    clone.git("config", "push.gpgSign", value)
    clone.write("a.txt", "a\n")
    tip = clone.commit("Unsigned")
    proc = run(["git", *signing_config(people.alice), "push", "origin", "main"], cwd=clone.path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert _hook_says(proc.stderr) == []
    assert server.ref("refs/heads/main") == tip
    assert server.audit_records()[-1]["rules"][0]["proofs"][0]["kind"] == "push-certificate"


def test_a_push_signed_by_a_key_outside_the_policy_is_stopped(people: People, server: Server, clone: Clone) -> None:
    _step_up_setup(people, server, clone)
    clone.write("a.txt", "a\n")
    tip = clone.commit("Unsigned")
    result = clone.push("main", signed=people.mallory)
    assert not result.ok
    mallory = people.mallory.fingerprint
    found = [f"push certificate: signed by key {mallory}, which the policy does not list (predicted: git push "
             "--signed)", f"tip commit {tip[:10]}: no signature"]
    assert _hook_says(result.stderr) == [
        *_step_up_finding(tip, found, SIGN_FIX),
        f"stepup-git (pre-push): predicted with the push certificate this push carries: signed by key {mallory}, "
        "which the policy does not list (git push --signed)",
        STOPPED,
    ]
    assert result.remote == []


def test_a_push_signed_with_an_ssh_key_is_predicted_with_that_key(people: People, server: Server,
                                                                  clone: Clone) -> None:
    policy = STEP_UP.replace('fingerprint = "{fingerprint}"', f'ssh = "{people.alice_ssh.public_line}"')
    server.write_policy(policy)
    server.install()
    _install_client(clone, server, "--strict")
    clone.write("a.txt", "a\n")
    tip = clone.commit("Unsigned")
    result = clone.push("main", signed=people.alice_ssh)
    assert result.ok, result
    assert _hook_says(result.stderr) == []
    assert server.ref("refs/heads/main") == tip


def _run_hook(clone: Clone, server: Server, tip: str) -> subprocess.CompletedProcess[str]:
    """The installed pre-push hook run by hand, not by git push: whether the push is signed cannot be told."""
    return run([clone.path / ".git" / "hooks" / "pre-push", "origin", str(server.path)], cwd=clone.path,
               input=f"refs/heads/main {tip} refs/heads/main {'0' * 40}\n", check=False)


UNKNOWN = ("stepup-git (pre-push): whether this push is signed cannot be told here (the git push that runs this hook "
           "cannot be found or its command line read)")


def test_strict_hook_that_cannot_tell_does_not_stop_what_a_signed_push_would_pass(
        people: People, server: Server, clone: Clone) -> None:
    _step_up_setup(people, server, clone)
    clone.write("a.txt", "a\n")
    tip = clone.commit("Unsigned")
    clone.git("config", "user.signingkey", people.alice.fingerprint)
    proc = _run_hook(clone, server, tip)
    assert proc.returncode == 0, proc.stderr
    assert _said(proc.stderr.splitlines()) == [
        *_step_up_finding(tip, [part.format(tip=tip[:10]) for part in UNSIGNED_TIP], SIGN_FIX),
        f"{UNKNOWN}; signed (git push --signed), with a push certificate signed by alice (maintainer, key "
        f"{people.alice.fingerprint[-16:]}), the server would accept it",
        NOT_STOPPED,
    ]


def test_strict_hook_that_cannot_tell_still_stops_what_no_signed_push_would_pass(
        people: People, server: Server, clone: Clone) -> None:
    _step_up_setup(people, server, clone)
    clone.write("a.txt", "a\n")
    tip = clone.commit("Unsigned")
    clone.git("config", "user.signingkey", people.mallory.fingerprint)
    proc = _run_hook(clone, server, tip)
    assert proc.returncode == 1
    mallory = people.mallory.fingerprint
    found = [f"push certificate: signed by key {mallory}, which the policy does not list (predicted: assumed git "
             "push --signed)", f"tip commit {tip[:10]}: no signature"]
    assert _said(proc.stderr.splitlines()) == [
        *_step_up_finding(tip, found, SIGN_FIX),
        f"{UNKNOWN}; predicted with a push certificate signed by key {mallory}, which the policy does not list all the "
        "same, and the server would still reject it",
        STOPPED,
    ]


def test_strict_hook_that_cannot_tell_the_key_does_not_stop(people: People, server: Server, clone: Clone) -> None:
    _step_up_setup(people, server, clone)
    clone.write("a.txt", "a\n")
    tip = clone.commit("Unsigned")
    clone.git("config", "push.gpgSign", "true")
    clone.git("config", "user.signingkey", "Nobody Known")
    proc = _run_hook(clone, server, tip)
    assert proc.returncode == 0, proc.stderr
    assert _said(proc.stderr.splitlines())[-2:] == [
        "stepup-git (pre-push): this push is signed (push.gpgSign = true), but which key signs it cannot be told here "
        "(no key of the policy keyring has a user ID matching Nobody Known); predicted without its certificate, so "
        "the server may accept what is predicted to fail above",
        NOT_STOPPED,
    ]
    # the hook's own notes wrap as its findings do, continued under their text
    assert proc.stderr.splitlines()[-2:] == [
        "stepup-git (pre-push): not stopped (stepup.clientStrict): the server may",
        "                       accept this push; it decides",
    ]


@pytest.mark.parametrize(("command", "config", "expected"), [
    (["git", "push", "--signed", "origin", "main"], {}, Signing(True, "git push --signed")),
    (["/usr/lib/git-core/git", "-c", "a.b=c", "-C", "x", "push", "--sign", "origin"], {},
     Signing(True, "git push --signed")),
    (["git", "push", "--signed=if-asked"], {},
     Signing(True, "git push --signed=if-asked, and a stepup-git server asks")),
    (["git", "push", "--signed=no"], {"push.gpgSign": "true"}, Signing(False, "git push --signed=no")),
    (["git", "push", "--signed", "--no-signed"], {}, Signing(False, "git push --no-signed")),
    (["git", "push", "-o", "--signed", "origin"], {}, Signing(False, "git push without --signed, and push.gpgSign "
                                                             "is not set")),
    (["git", "push", "--push-option", "--signed", "origin"], {},
     Signing(False, "git push without --signed, and push.gpgSign is not set")),
    (["git", "push", "origin", "--", "--signed"], {},
     Signing(False, "git push without --signed, and push.gpgSign is not set")),
    (["git", "push", "origin"], {"push.gpgSign": "if-asked"},
     Signing(True, "push.gpgSign = if-asked, and a stepup-git server asks")),
    (["git", "push", "origin"], {"push.gpgSign": "false"}, Signing(False, "push.gpgSign = false")),
    (["git", "fetch"], {"push.gpgSign": "true"},
     Signing(None, "the hook was not run by git push but by 'git fetch'")),
    (None, {"push.gpgSign": "true"}, Signing(True, "push.gpgSign = true")),
    (None, {"push.gpgSign": "false"},
     Signing(None, "the git push that runs this hook cannot be found or its command line read")),
])
def test_what_tells_whether_a_push_is_signed(command: list[str] | None, config: dict[str, str],
                                             expected: Signing) -> None:
    assert push_signing(command, config.get) == expected
