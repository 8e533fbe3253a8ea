"""`stepup-git policy init`: a commented starter policy with the given keys (README.md, "Commands")."""

from __future__ import annotations

import tomllib
from pathlib import Path

from support import run
from support.cli import stepup
from support.keys import People
from support.lines import unwrap
from support.repos import Clone, Server

WARNED = ("stepup-git: WARNING (audit mode): 1 of 1 update(s) fail the policy; the push is accepted now but will "
          "be rejected once the policy is enforced")


def _key_files(people: People, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    alice = folder / "alice.asc"
    alice.write_text(people.alice.export())
    return alice, people.bob_ssh.public_path


def test_init_writes_a_policy_with_its_keys_that_checks_without_warnings(people: People, tmp_path: Path) -> None:
    alice, bob = _key_files(people, tmp_path / "given")
    policy = tmp_path / "repo" / "policy.toml"
    policy.parent.mkdir()
    proc = stepup("policy", "init", "--key", alice, "--key", bob, "--output", policy)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    keyring = policy.parent / "keys"
    alice_file = keyring / f"alice-{people.alice.fingerprint[-16:]}.asc"
    (bob_file,) = keyring.glob("bob-ssh-*.pub")
    assert proc.stdout.splitlines() == [
        f"stepup-git: wrote a starter policy to {policy} (mode audit: failing pushes are warned of, not rejected; "
        f"2 key(s), keyring folder {keyring})",
        f"  alice: OpenPGP key {people.alice.fingerprint}, tier maintainer, file {alice_file}",
        f"  bob: SSH key {bob_id(people)}, tier maintainer, file {bob_file}",
        f"  next: check each owner, then stepup-git policy check {policy} and stepup-git install REPO --policy "
        f"{policy}",
    ]
    assert alice_file.read_text() == alice.read_text()
    data = tomllib.loads(policy.read_text())
    assert data["settings"] == {"mode": "audit", "fresh_within": "15m", "keyring": "keys"}
    assert data["keys"] == [
        {"fingerprint": people.alice.fingerprint, "owner": "alice", "tier": "maintainer"},
        {"ssh": people.bob_ssh.public_line, "owner": "bob", "tier": "maintainer"},
    ]
    assert [r["name"] for r in data["rules"]] == ["main-signed", "main-force-push-step-up", "branch-delete-step-up",
                                                  "no-replace-refs"]
    assert f"# Check it with:   stepup-git policy check {policy.name}" in policy.read_text()
    check = stepup("policy", "check", policy)
    assert (check.returncode, check.stdout, check.stderr) == (0, f"{policy}: ok\n", "")


def bob_id(people: People) -> str:
    """The key's SHA256: id, as ssh-keygen tells it."""
    return run(["ssh-keygen", "-lf", people.bob_ssh.public_path]).stdout.split()[1]


def test_a_repository_installed_with_it_behaves_as_its_comments_say(people: People, server: Server,
                                                                    clone: Clone, tmp_path: Path) -> None:
    alice, _ = _key_files(people, tmp_path / "given")
    assert stepup("policy", "init", "--key", alice, "--output", server.policy_path).returncode == 0
    server.install()

    # audit mode: an unsigned commit on main is accepted with a warning, and recorded as such
    clone.write("a.txt", "a\n")
    unsigned = clone.commit("Unsigned")
    result = clone.push("main")
    assert result.ok, result
    assert unwrap(result.remote)[0] == WARNED
    assert f'refs/heads/main: rule "main-signed" failed for commit {unsigned[:10]}' in unwrap(result.remote)
    assert server.audit_records()[-1]["decision"] == "warn"

    # enforce: the same kind of push is rejected; a signed commit passes; a force-push needs a signed push
    server.install(mode="enforce")
    clone.write("b.txt", "b\n")
    clone.commit("Unsigned again")
    result = clone.push("main")
    assert not result.ok
    assert result.remote[0] == "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
    clone.git("reset", "-q", "--hard", unsigned)
    signed = clone.commit("Signed", sign=people.alice)
    assert clone.push("main").ok
    clone.git("reset", "-q", "--hard", unsigned)
    rewritten = clone.commit("Rewritten", sign=people.alice, at="2024-01-01T00:00:00Z")
    result = clone.push("main", force=True)
    assert not result.ok
    head = f'refs/heads/main: rule "main-force-push-step-up" failed for commit {rewritten[:10]}'
    assert head in unwrap(result.remote)
    result = clone.push("main", force=True, signed=people.alice)
    assert result.ok, result
    assert server.ref("refs/heads/main") == rewritten != signed

    # deleting a branch needs the same proof; replace refs are refused outright
    assert not clone.push(":main").ok
    result = clone.push(f"{signed}:refs/replace/{rewritten}")
    assert not result.ok
    assert f'refs/replace/{rewritten}: rule "no-replace-refs" failed for the create of refs/replace/{rewritten}' \
        in unwrap(result.remote)


def test_init_prints_a_policy_of_ssh_keys(people: People, tmp_path: Path) -> None:
    proc = stepup("policy", "init", "--key", people.bob_ssh.public_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("# stepup-git starter policy, written by `stepup-git policy init`.\n")
    assert tomllib.loads(proc.stdout)["keys"] == [{"ssh": people.bob_ssh.public_line, "owner": "bob",
                                                   "tier": "maintainer"}]
    policy = tmp_path / "policy.toml"
    policy.write_text(proc.stdout)
    check = stepup("policy", "check", policy)
    assert (check.returncode, check.stderr) == (0, "")


def test_init_without_keys_says_what_is_missing(tmp_path: Path) -> None:
    proc = stepup("policy", "init")
    assert proc.returncode == 0
    assert "keys" not in tomllib.loads(proc.stdout)
    assert proc.stderr.splitlines() == [
        "policy.toml:38: warning: rule 'main-force-push-step-up' needs 1 signer(s) of tier maintainer or higher, but "
        "only 0 person(s) hold such keys and signers counts people: it can never pass",
        "policy.toml:46: warning: rule 'branch-delete-step-up' needs 1 signer(s) of tier maintainer or higher, but "
        "only 0 person(s) hold such keys and signers counts people: it can never pass",
        "stepup-git: no --key given: add keys with stepup-git keys add before installing the policy",
    ]


def test_init_refuses_what_it_cannot_do(people: People, tmp_path: Path) -> None:
    alice, _ = _key_files(people, tmp_path / "given")
    policy = tmp_path / "policy.toml"
    policy.write_text("# mine\n")

    def error(*args: str | Path) -> str:
        proc = stepup("policy", "init", *args)
        assert (proc.returncode, proc.stdout) == (2, ""), proc
        (line,) = proc.stderr.splitlines()
        return line

    assert error("--output", policy) == f"stepup-git: {policy} already exists; give --force to replace it"
    assert policy.read_text() == "# mine\n"
    assert error("--key", alice) == ("stepup-git: an OpenPGP --key needs --output FILE: its key file goes to the "
                                     "keyring folder keys/ beside the policy")
    missing = tmp_path / "missing.asc"
    assert error("--key", missing, "--output", tmp_path / "new.toml").startswith(
        f"stepup-git: cannot read the key file {missing}: ")
    assert not (tmp_path / "new.toml").exists()
    secret = tmp_path / "secret.pub"
    secret.write_text(people.bob_ssh.private_path.read_text())
    assert error("--key", secret) == f"stepup-git: {secret} is a private SSH key; give the .pub file"

    proc = stepup("policy", "init", "--key", alice, "--output", policy, "--force")
    assert proc.returncode == 0, proc.stderr
    assert tomllib.loads(policy.read_text())["keys"][0]["owner"] == "alice"
