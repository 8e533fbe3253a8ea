"""The `stepup-git` command line (README.md, "Commands"), run as a subprocess: install, policy check, check, verify.

Every invocation goes through `stepup()`, which also proves that no error prints a traceback.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import run
from support.keys import People, key_toml
from support.lines import unwrap
from support.repos import Clone, MakeClone, Server

from stepup_git.policy import REPLACE_WARNING

Arg = str | os.PathLike[str]

ROOT = Path(__file__).resolve().parent.parent
ZERO = "0" * 40

TIERS = '[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'

SIGNED_RULES = """
[[rules]]
name = "main-signed"
refs = ["refs/heads/main"]
require = "signed"
tier = "contributor"

[[rules]]
name = "prod-step-up"
refs = ["refs/heads/prod"]
require = "step-up"
tier = "maintainer"
fresh_within = "10m"
bind_pusher = true
"""

CERT_RULE = """
[[rules]]
name = "cert-step-up"
refs = ["refs/heads/**"]
require = "step-up"
tier = "maintainer"
proofs = ["push-certificate"]
bind_pusher = true
"""

KEYLESS_POLICY = 'version = 1\n\n' + TIERS + """[[rules]]
name = "main-signed"
refs = ["refs/heads/main"]
require = "signed"
tier = "contributor"
"""


def stepup(*args: Arg, cwd: Path | None = None,
           env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m stepup_git ARGS`; whatever it does, it never prints a traceback."""
    argv = [sys.executable, "-m", "stepup_git", *(os.fspath(arg) for arg in args)]
    proc = run(argv, cwd=cwd, env=env, check=False)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    return proc


def lines(text: str) -> list[str]:
    return text.splitlines()


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single line a usage error prints (exit 2, nothing on stdout)."""
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    (line,) = lines(proc.stderr)
    assert line.startswith("stepup-git: ")
    return line


def config(server: Server, name: str) -> str | None:
    value = server.git("config", "--get", name, check=False)
    return value or None


def keyed_policy(people: People, rules: str) -> str:
    return ("version = 1\n\n" + TIERS + key_toml(people.alice, "alice", "maintainer")
            + key_toml(people.bob, "bob", "contributor") + key_toml(people.carol, "carol", "release") + rules)


def keys(people: People) -> dict[str, str]:
    return {"alice.asc": people.alice.export(), "bob.asc": people.bob.export(),
            "carol.asc": people.carol.export()}


def short(oid: str) -> str:
    return oid[:10]


def unsigned_finding(ref: str, oid: str) -> list[str]:
    return [
        f'{ref}: rule "main-signed" failed for commit {short(oid)}',
        "    required: every new commit signed by a policy key of tier",
        "              contributor or higher",
        "    found:    no signature",
        "    fix:      sign with a policy key of tier contributor or higher",
        "              (git config user.signingkey <key id>):",
        "              git commit --amend --no-edit -S, then push again",
    ]


REJECTED_ONE = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
WOULD_REJECT_ONE = "stepup-git: would be rejected: 1 of 1 update(s) fail the policy"


# --- install ----------------------------------------------------------------------------------

def test_install_configures_each_repository(server: Server, clone: Clone, tmp_path: Path) -> None:
    """Install sets an absolute policy path, a per-repository seed, a bounded slop, push options and
    an executable launcher bound to this interpreter; the hook then judges real pushes."""
    other = Server(tmp_path / "other")
    server.write_policy(KEYLESS_POLICY)
    policy = server.policy_path.resolve()
    proc = stepup("install", server.path, other.path, "--policy", "policy.toml", cwd=server.root)
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == [
        f"installed stepup-git in {repo.resolve()} (policy {policy}, mode enforce)"
        for repo in (server.path, other.path)
    ]
    seeds = []
    for repo in (server, other):
        assert config(repo, "stepup.policy") == str(policy)
        assert Path(str(config(repo, "stepup.policy"))).is_absolute()
        seed = str(config(repo, "receive.certNonceSeed"))
        assert re.fullmatch(r"[0-9a-f]{64}", seed), seed
        seeds.append(seed)
        slop = int(str(config(repo, "receive.certNonceSlop")))
        assert 0 < slop <= 900
        assert config(repo, "receive.advertisePushOptions") == "true"
        assert config(repo, "stepup.mode") is None
        hook = repo.path / "hooks" / "pre-receive"
        assert hook.stat().st_mode & stat.S_IXUSR
        text = hook.read_text()
        assert text.startswith("#!/bin/sh\n")
        assert f"'{sys.executable}'" in text and "-m stepup_git hook --hook-type pre-receive" in text
    assert seeds[0] != seeds[1]

    oid = clone.commit("unsigned")
    result = clone.push("main")
    assert not result.ok
    assert result.remote == [REJECTED_ONE, *unsigned_finding("refs/heads/main", oid)]
    assert server.ref("refs/heads/main") is None
    (record,) = server.audit_records()
    assert (record["decision"], record["action"], record["new"]) == ("reject", "create", oid)


def test_install_twice_is_idempotent(server: Server) -> None:
    server.write_policy(KEYLESS_POLICY)
    server.install()
    before = server.git("config", "--local", "--list")
    hook = (server.path / "hooks" / "pre-receive").read_text()
    proc = server.install(check=False)
    assert proc.returncode == 0 and proc.stderr == ""
    assert server.git("config", "--local", "--list") == before
    assert (server.path / "hooks" / "pre-receive").read_text() == hook
    assert not (server.path / "hooks" / "pre-receive.stepup-chained").exists()


def test_install_lowers_a_nonce_slop_longer_than_the_freshness_window(server: Server) -> None:
    server.write_policy(KEYLESS_POLICY)
    server.git("config", "receive.certNonceSlop", "3600")
    server.install()
    assert 0 < int(str(config(server, "receive.certNonceSlop"))) <= 900
    server.git("config", "receive.certNonceSlop", "0")
    server.install()
    assert 0 < int(str(config(server, "receive.certNonceSlop"))) <= 900


def test_install_gives_each_repository_its_own_seed_despite_a_shared_one(
        server: Server, tmp_path: Path) -> None:
    home = tmp_path / "admin-home"
    home.mkdir()
    (home / ".gitconfig").write_text("[receive]\n\tcertNonceSeed = one-seed-for-the-whole-server\n")
    env: dict[str, str | None] = {"HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig")}
    other = Server(tmp_path / "other")
    server.write_policy(KEYLESS_POLICY)
    proc = stepup("install", server.path, other.path, "--policy", server.policy_path, env=env)
    assert proc.returncode == 0, proc.stderr
    seeds = [repo.git("config", "--local", "--get", "receive.certNonceSeed", check=False)
             for repo in (server, other)]
    assert all(re.fullmatch(r"[0-9a-f]{64}", seed) for seed in seeds), seeds
    assert seeds[0] != seeds[1]


FOREIGN_HOOK = """#!/bin/sh
cat > "$GIT_DIR/chained-input"
echo "chained hook exits ${CHAIN_EXIT:-0}" >&2
exit "${CHAIN_EXIT:-0}"
"""


def foreign_hook(server: Server) -> Path:
    hook = server.path / "hooks" / "pre-receive"
    hook.write_text(FOREIGN_HOOK)
    hook.chmod(0o755)
    return hook


def test_install_refuses_to_replace_a_foreign_hook(server: Server) -> None:
    server.write_policy(KEYLESS_POLICY)
    hook = foreign_hook(server)
    proc = server.install(check=False)
    line = one_error_line(proc)
    assert line == (f"stepup-git: {server.path}: {hook} is another pre-receive hook; rerun with --chain to "
                    "keep it and run it before stepup-git, or remove it")
    assert hook.read_text() == FOREIGN_HOOK
    assert not (server.path / "hooks" / "pre-receive.stepup-chained").exists()
    assert config(server, "stepup.policy") is None


def chained_server(people: People, server: Server) -> Path:
    server.write_policy(keyed_policy(people, SIGNED_RULES), keys(people))
    foreign_hook(server)
    proc = server.install(extra_args=["--chain"])
    chained = server.path / "hooks" / "pre-receive.stepup-chained"
    assert proc.stdout.rstrip().endswith("mode enforce, chained: pre-receive.stepup-chained)")
    assert chained.read_text() == FOREIGN_HOOK
    assert "-m stepup_git hook" in (server.path / "hooks" / "pre-receive").read_text()
    assert config(server, "stepup.chain") == str(chained.resolve())
    return chained


def test_chained_hook_runs_on_every_push(people: People, server: Server, clone: Clone) -> None:
    """With --chain the foreign hook keeps its say: its rejection stops an otherwise-allowed push,
    its acceptance does not let an unsigned commit through."""
    chained = chained_server(people, server)
    oid = clone.commit("signed", sign=people.alice)

    result = clone.push("main", env={"CHAIN_EXIT": "1"})
    assert not result.ok
    assert result.remote[0] == "chained hook exits 1"
    assert result.remote[-1] == f"stepup-git: push rejected: the chained pre-receive hook {chained.resolve()} exited 1"
    assert server.ref("refs/heads/main") is None
    assert (server.path / "chained-input").read_text() == f"{ZERO} {oid} refs/heads/main\n"
    assert server.audit_records()[-1]["chained_hook_exit"] == 1

    result = clone.push("main", env={"CHAIN_EXIT": "0"})
    assert result.ok, result
    assert result.remote == ["chained hook exits 0",
                             "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"]
    assert server.ref("refs/heads/main") == oid
    assert server.audit_records()[-1]["chained_hook_exit"] == 0

    unsigned = clone.commit("unsigned")
    result = clone.push("main", env={"CHAIN_EXIT": "0"})
    assert not result.ok
    assert result.remote == ["chained hook exits 0", REJECTED_ONE, *unsigned_finding("refs/heads/main", unsigned)]
    assert server.ref("refs/heads/main") == oid
    assert (server.path / "chained-input").read_text() == f"{oid} {unsigned} refs/heads/main\n"


def test_chained_rejection_is_reported_and_audited_as_a_rejection(
        people: People, server: Server, clone: Clone) -> None:
    chained_server(people, server)
    clone.commit("signed", sign=people.alice)
    result = clone.push("main", env={"CHAIN_EXIT": "1"})
    assert not result.ok and server.ref("refs/heads/main") is None
    assert not [line for line in result.remote if "push accepted" in line], result.remote
    assert server.audit_records()[-1]["decision"] == "reject"


def test_install_with_an_invalid_policy_installs_nothing(server: Server) -> None:
    policy = server.write_policy('version = 1\n\n[settings]\nmode = "strict"\n\n[[rules]]\nname = "r"\n'
                                 'require = "signed"\ntier = "boss"\n')
    proc = server.install(check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    prefix = f"stepup-git: {server.path}: "
    assert lines(proc.stderr) == [
        prefix + "the policy has errors; nothing was installed",
        prefix + f"{policy}:4: mode must be \"enforce\" or \"audit\", not 'strict'",
        prefix + f"{policy}:9: unknown tier 'boss'; the tiers are contributor, maintainer, release",
    ]
    assert not (server.path / "hooks" / "pre-receive").exists()
    for name in ("stepup.policy", "receive.certNonceSeed", "receive.certNonceSlop",
                 "receive.advertisePushOptions"):
        assert config(server, name) is None, name


def test_install_on_a_non_repository(server: Server, tmp_path: Path) -> None:
    server.write_policy(KEYLESS_POLICY)
    plain = tmp_path / "plain"
    plain.mkdir()
    missing = tmp_path / "missing.git"
    for target in (plain, missing):
        line = one_error_line(stepup("install", target, "--policy", server.policy_path))
        assert line == f"stepup-git: {target}: not a Git repository: {target}"
    assert list(plain.iterdir()) == [] and not missing.exists()


def test_status_says_what_is_installed_and_how_to_leave_audit_mode(server: Server, clone: Clone) -> None:
    server.write_policy(KEYLESS_POLICY)
    server.install(mode="audit")
    git_dir = server.path.resolve()
    proc = stepup("status", server.path)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert lines(proc.stdout) == [
        f"repository: {git_dir}",
        f"hook:       installed ({git_dir / 'hooks' / 'pre-receive'})",
        f"policy:     {server.policy_path.resolve()} (ok)",
        f"mode:       audit (from git config stepup.mode); to enforce: stepup-git install {git_dir} --mode enforce",
        "baseline:   0 commit(s) recorded",
        f"state:      local, in {git_dir / 'stepup'}",
        f"audit log:  {git_dir / 'stepup' / 'audit.jsonl'}, no records yet",
    ]
    clone.commit("unsigned")
    assert clone.push("main").ok
    out = lines(stepup("status", server.path).stdout)
    assert out[6] == f"audit log:  {git_dir / 'stepup' / 'audit.jsonl'}, 1 record(s); the last 1:"
    assert out[8].split()[2:6] == ["refs/heads/main", "create", "warn", "00000000.." + clone.rev()[:8]]
    (git_dir / "hooks" / "pre-receive").unlink()
    assert lines(stepup("status", server.path).stdout)[1] == (
        f"hook:       NOT installed ({git_dir / 'hooks' / 'pre-receive'}); run: stepup-git install {git_dir} "
        "--policy FILE")


def test_install_mode_audit(server: Server, clone: Clone) -> None:
    server.write_policy(KEYLESS_POLICY)
    proc = server.install(mode="audit")
    assert proc.stdout.rstrip().endswith("mode audit)")
    assert config(server, "stepup.mode") == "audit"
    oid = clone.commit("unsigned")
    result = clone.push("main")
    assert result.ok, result
    assert result.remote == [
        "stepup-git: WARNING (audit mode): 1 of 1 update(s) fail the policy; the",
        "            push is accepted now but will be rejected once the policy is",
        "            enforced",
        *unsigned_finding("refs/heads/main", oid),
    ]
    assert server.ref("refs/heads/main") == oid
    assert [(r["decision"], r["mode"]) for r in server.audit_records()] == [("warn", "audit")]
    server.install(mode="enforce")
    assert config(server, "stepup.mode") == "enforce"


# --- policy check -----------------------------------------------------------------------------

def test_policy_check_example_is_ok() -> None:
    proc = stepup("policy", "check", "policies/example.toml", cwd=ROOT)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "policies/example.toml: ok\n", "")


def test_policy_check_reports_every_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('version = 1\n\n[[rules]]\nname = "r"\nrequire = "sign"\n\n[settings]\n'
                    'fresh_within = "ten"\n')
    proc = stepup("policy", "check", path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert lines(proc.stderr) == [
        f"{path}:5: require must be one of signed, step-up, signed-tag, deny, not 'sign'",
        f"{path}:8: 'fresh_within': bad duration 'ten': use whole numbers with s, m, h or d, e.g. \"15m\"",
        f"{path}: 2 error(s)",
    ]


def test_policy_check_key_missing_from_keyring(people: People, server: Server) -> None:
    policy = server.write_policy(keyed_policy(people, ""), {"alice.asc": people.alice.export(),
                                                           "carol.asc": people.carol.export()})
    proc = stepup("policy", "check", policy)
    assert proc.returncode == 1 and proc.stdout == ""
    text = policy.read_text().splitlines()
    bob_line = text.index(f'fingerprint = "{people.bob.fingerprint}"')  # 1-based: the [[keys]] line
    assert text[bob_line - 1] == "[[keys]]"
    folder = server.keys_dir
    assert lines(proc.stderr) == [
        f"{policy}:1: warning: {REPLACE_WARNING}",
        f"{policy}:{bob_line}: key {people.bob.fingerprint} (bob) is not in the keyring folder {folder}; "
        f"add its public key as {folder}/bob.asc",
        f"{policy}: 1 error(s)",
    ]


def test_policy_check_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    line = one_error_line(stepup("policy", "check", missing))
    assert line == f"stepup-git: cannot read the policy {missing}: no such file"


def test_policy_check_warns_of_expired_and_revoked_keys(people: People, server: Server) -> None:
    text = ("version = 1\n\n" + TIERS + key_toml(people.expired, "old", "maintainer")
            + key_toml(people.carol, "carol", "release")
            + key_toml(people.alice, "alice", "maintainer", expires="2021-06-30"))
    policy = server.write_policy(text, {"old.asc": people.expired.export(),
                                        "carol.asc": people.carol.export(revoked=True),
                                        "alice.asc": people.alice.export()})
    proc = stepup("policy", "check", policy)
    assert proc.returncode == 0
    assert proc.stdout == f"{policy}: ok\n"
    warnings = lines(proc.stderr)
    assert warnings.pop(0) == f"{policy}:1: warning: {REPLACE_WARNING}"
    assert len(warnings) == 3, warnings
    old, carol, alice = [n for n, line in enumerate(text.splitlines(), start=1) if line == "[[keys]]"]
    assert re.fullmatch(
        rf"{re.escape(str(policy))}:{old}: warning: key {people.expired.fingerprint} \(old\): the key expired on "
        r"202[01]-\d\d-\d\d; its signatures will not count", warnings[0]), warnings[0]
    assert warnings[1] == (f"{policy}:{carol}: warning: key {people.carol.fingerprint} (carol): the key is revoked; "
                           "its signatures will not count")
    assert warnings[2] == (f"{policy}:{alice}: warning: key {people.alice.fingerprint} (alice) is past its policy "
                           "expiry 2021-06-30")


# --- check ------------------------------------------------------------------------------------

@pytest.fixture
def signed_repo(people: People, server: Server) -> Path:
    """The server's policy.toml with alice (maintainer), bob (contributor), carol (release)."""
    return server.write_policy(keyed_policy(people, SIGNED_RULES), keys(people))


def test_check_signed_rule(people: People, signed_repo: Path, clone: Clone) -> None:
    a = clone.commit("a", sign=people.alice)
    b = clone.commit("unsigned")
    args: list[Arg] = ["check", "--repo", clone.path, "--policy", signed_repo]

    proc = stepup(*args, a, b, "refs/heads/main")
    assert proc.returncode == 1 and proc.stderr == ""
    assert lines(proc.stdout) == [
        WOULD_REJECT_ONE, *unsigned_finding("refs/heads/main", b),
        "  FAIL  main-signed: 1 of 1 new commit(s) not signed as required",
    ]

    clone.git("reset", "-q", "--hard", a)
    c = clone.commit("by bob", sign=people.bob)
    proc = stepup(*args, a, c, "refs/heads/main")
    assert proc.returncode == 0, proc.stdout
    assert lines(proc.stdout) == ["stepup-git: would be accepted (1 update(s), 1 rule check(s) passed)",
                                  "  pass  main-signed: 1 new commit(s) signed by policy keys"]

    m = clone.commit("by mallory", sign=people.mallory)
    proc = stepup(*args, a, m, "refs/heads/main")
    assert proc.returncode == 1
    assert f'refs/heads/main: rule "main-signed" failed for commit {short(m)}' in lines(proc.stdout)
    assert "  FAIL  main-signed: 1 of 2 new commit(s) not signed as required" in lines(proc.stdout)
    found = next(line for line in unwrap(lines(proc.stdout)) if line.startswith("    found:"))
    assert "signed by unknown key" in found or "which the policy does not list" in found, found


def test_check_json(people: People, signed_repo: Path, clone: Clone) -> None:
    a = clone.commit("a", sign=people.alice)
    b = clone.commit("unsigned")
    proc = stepup("check", "--repo", clone.path, "--policy", signed_repo, "--json", a, b, "refs/heads/main")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["allowed"] is False
    (update,) = out["updates"]
    assert (update["ref"], update["old"], update["new"], update["action"], update["allowed"]) == (
        "refs/heads/main", a, b, "update", False)
    assert update["findings"] == [{
        "ref": "refs/heads/main", "rule": "main-signed", "object": f"commit {short(b)}",
        "required": "every new commit signed by a policy key of tier contributor or higher",
        "found": [{"label": None, "proof": None, "text": "no signature"}],
        "fix": "sign with a policy key of tier contributor or higher (git config user.signingkey <key id>): "
               "git commit --amend --no-edit -S, then push again",
    }]
    assert [(r["name"], r["result"]) for r in update["rules"]] == [("main-signed", "fail")]

    clone.git("reset", "-q", "--hard", a)
    c = clone.commit("c", sign=people.alice)
    proc = stepup("check", "--repo", clone.path, "--policy", signed_repo, "--json",
                  "--now", "2030-05-06T07:08:09Z", a, c, "refs/heads/main")
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["allowed"] is True and out["now"] == "2030-05-06T07:08:09Z"
    (rule,) = out["updates"][0]["rules"]
    assert rule["result"] == "pass"
    assert [(p["kind"], p["owner"], p["fingerprint"]) for p in rule["proofs"]] == [
        ("commit-signature", "alice", people.alice.fingerprint)]


def test_check_now_changes_freshness(people: People, signed_repo: Path, clone: Clone) -> None:
    """A tip signed at 2020-12-31T23:58Z is a fresh step-up proof only as of a time within 10 minutes."""
    base = clone.commit("base", sign=people.alice)
    tip = clone.commit("prod change", sign=people.alice, at="2020-12-31T23:58:00Z")
    args: list[Arg] = ["check", "--repo", clone.path, "--policy", signed_repo, "--pusher", "alice"]

    proc = stepup(*args, base, tip, "refs/heads/prod")
    assert proc.returncode == 1
    found = next(line for line in unwrap(lines(proc.stdout)) if line.startswith("              tip commit"))
    assert re.search(r"tip commit \w{10}: signed by alice \(maintainer, key \w{16}\) \d+d( \d+h)? ago, "
                     r"older than 10m$", found), found

    proc = stepup(*args, "--now", "2021-01-01T00:00:00Z", base, tip, "refs/heads/prod")
    assert proc.returncode == 0, proc.stdout
    assert lines(proc.stdout) == [
        "stepup-git: would be accepted (1 update(s), 1 rule check(s) passed)",
        "  pass  prod-step-up: step-up proven by alice (tip-signature): update of refs/heads/prod",
    ]

    proc = stepup(*args, "--now", "2021-01-01T00:20:00Z", base, tip, "refs/heads/prod")
    assert proc.returncode == 1
    assert f"tip commit {short(tip)}: signed by alice" in proc.stdout
    assert "22m ago, older than 10m" in "\n".join(unwrap(lines(proc.stdout)))

    proc = stepup(*args, "--now", "2020-12-31T23:50:00+00:00", base, tip, "refs/heads/prod")
    assert proc.returncode == 1
    assert "8m in the future, beyond the clock skew" in "\n".join(unwrap(lines(proc.stdout)))


def test_check_pusher_binds_the_proof(people: People, signed_repo: Path, clone: Clone) -> None:
    base = clone.commit("base", sign=people.alice)
    tip = clone.commit("prod change", sign=people.alice, at="2020-12-31T23:58:00Z")
    args: list[Arg] = ["check", "--repo", clone.path, "--policy", signed_repo, "--now", "2021-01-01T00:00:00Z"]

    assert stepup(*args, "--pusher", "alice", base, tip, "refs/heads/prod").returncode == 0
    for pusher, why in ((["--pusher", "bob"], "bob, but the proof is alice's"),
                        ([], "unknown, so alice's proof cannot be bound to the pusher")):
        proc = stepup(*args, *pusher, base, tip, "refs/heads/prod")
        assert proc.returncode == 1
        out = unwrap(lines(proc.stdout))
        assert out[:2] == [WOULD_REJECT_ONE, f'refs/heads/prod: rule "prod-step-up" failed for commit {short(tip)}']
        assert out[2] == ("    required: a fresh proof of tier maintainer or higher owned by the pusher: a signed "
                          "push certificate for this update (git push --signed) or a signature on the pushed "
                          "tip made within the last 10m (update of refs/heads/prod)")
        assert out[3] == "    found:    push certificate: none (the push was not made with git push --signed)"
        assert re.fullmatch(rf"              tip commit {short(tip)}: signed by alice \(maintainer, key \w{{16}}\) "
                            "2m ago", out[4]), out[4]
        assert out[5] == f"              pusher: {why}"


CERT_DUMP_HOOK = """#!/bin/sh
git cat-file blob "$GIT_PUSH_CERT" > "$GIT_DIR/../push-cert.txt"
exit 0
"""


def test_check_with_a_push_certificate_file(people: People, server: Server, clone: Clone) -> None:
    """A certificate captured from a real `git push --signed` proves alice's own update, and nothing else."""
    policy = server.write_policy(keyed_policy(people, CERT_RULE), keys(people))
    server.install()
    hook = server.path / "hooks" / "pre-receive"
    hook.write_text(CERT_DUMP_HOOK)
    oid = clone.commit("change")
    assert clone.push("main", signed=people.alice).ok
    assert server.ref("refs/heads/main") == oid
    cert = server.root / "push-cert.txt"
    assert f"{ZERO} {oid} refs/heads/main" in cert.read_text()
    args: list[Arg] = ["check", "--repo", server.path, "--policy", policy, "--push-cert", cert]

    proc = stepup(*args, "--pusher", "alice", ZERO, oid, "refs/heads/main")
    assert proc.returncode == 0, proc.stdout
    assert lines(proc.stdout) == [
        "stepup-git: would be accepted (1 update(s), 1 rule check(s) passed)",
        "  pass  cert-step-up: step-up proven by alice (push-certificate): create of refs/heads/main",
        "note: the push certificate's nonce and replay can only be judged during a real push",
    ]

    proc = stepup(*args, "--pusher", "alice", ZERO, oid, "refs/heads/other")
    assert proc.returncode == 1
    assert (f"    found:    push certificate: signed by alice (maintainer, key {people.alice.fingerprint[-16:]}) "
            f"does not list this update ({ZERO} {oid} refs/heads/other)") in unwrap(lines(proc.stdout))

    proc = stepup(*args, "--pusher", "bob", ZERO, oid, "refs/heads/main")
    assert proc.returncode == 1
    assert "              pusher: bob, but the proof is alice's" in lines(proc.stdout)

    forged = server.root / "forged.txt"
    forged.write_text(cert.read_text().replace(f"{oid} refs/heads/main", f"{oid} refs/heads/prod"))
    proc = stepup("check", "--repo", server.path, "--policy", policy, "--push-cert", forged,
                  "--pusher", "alice", ZERO, oid, "refs/heads/prod")
    assert proc.returncode == 1
    assert "    found:    push certificate: bad signature (the signed content was changed)" in unwrap(
        lines(proc.stdout))

    proc = stepup("check", "--repo", server.path, "--policy", policy, "--pusher", "alice", ZERO, oid,
                  "refs/heads/main")
    assert proc.returncode == 1
    assert ("    found:    push certificate: none (the push was not made with git push --signed)"
            in unwrap(lines(proc.stdout)))
    assert "nonce and replay" not in proc.stdout


def test_check_bad_input_is_one_line(signed_repo: Path, clone: Clone, tmp_path: Path) -> None:
    a = clone.commit("a")
    base: list[Arg] = ["check", "--repo", clone.path, "--policy", signed_repo]
    assert one_error_line(stepup(*base, "--now", "yesterday", ZERO, a, "refs/heads/main")) == (
        "stepup-git: --now must be an ISO-8601 time such as 2026-11-24T10:00:00Z, not 'yesterday'")
    assert "unrecognized arguments: --frobnicate" in one_error_line(
        stepup(*base, "--frobnicate", ZERO, a, "refs/heads/main"))
    assert "the following arguments are required: OLD, NEW, REF" in one_error_line(stepup(*base))
    assert "cannot open the repository" in one_error_line(
        stepup("check", "--repo", tmp_path / "nowhere", "--policy", signed_repo, ZERO, a, "refs/heads/main"))
    assert "cannot read the push certificate" in one_error_line(
        stepup(*base, "--push-cert", tmp_path / "none.txt", ZERO, a, "refs/heads/main"))
    assert "no --policy given and the repository has no stepup.policy configured" in one_error_line(
        stepup("check", "--repo", clone.path, ZERO, a, "refs/heads/main"))


def test_check_with_an_invalid_policy(clone: Clone, tmp_path: Path) -> None:
    a = clone.commit("a")
    policy = tmp_path / "bad.toml"
    policy.write_text('version = 1\nrules = 3\n')
    proc = stepup("check", "--repo", clone.path, "--policy", policy, ZERO, a, "refs/heads/main")
    assert proc.returncode == 2 and proc.stdout == ""
    assert lines(proc.stderr) == [f"stepup-git: {policy}:2: 'rules' must be a list, not an integer"]


def test_short_ref_names_are_not_judged_as_allowed(signed_repo: Path, clone: Clone) -> None:
    a = clone.commit("a")
    b = clone.commit("unsigned")
    runs = [stepup("check", "--repo", clone.path, "--policy", signed_repo, a, b, "main"),
            stepup("verify", "--repo", clone.path, "--policy", signed_repo, "--range", f"{a}..{b}", "--ref", "main")]
    for proc in runs:
        assert proc.returncode in (1, 2), proc.stdout
        assert "push accepted" not in proc.stdout


def test_check_and_verify_take_a_short_ref_name_as_audit_show_does(people: People, signed_repo: Path,
                                                                   clone: Clone) -> None:
    a = clone.commit("a", sign=people.alice)
    b = clone.commit("unsigned")
    base: list[Arg] = ["check", "--repo", clone.path, "--policy", signed_repo]
    full = stepup(*base, a, b, "refs/heads/main")
    assert full.returncode == 1
    short_name = stepup(*base, a, b, "main")
    assert (short_name.returncode, short_name.stdout, short_name.stderr) == (1, full.stdout, "")
    assert lines(short_name.stdout)[:8] == [WOULD_REJECT_ONE, *unsigned_finding("refs/heads/main", b)]
    proc = stepup("verify", "--repo", clone.path, "--policy", signed_repo, "--range", f"{a}..{b}", "--ref", "main")
    assert (proc.returncode, proc.stdout) == (1, full.stdout)

    clone.tag("v1.2", message=None, target=a)
    proc = stepup(*base, ZERO, a, "v1.2")
    assert proc.returncode == 0, proc.stdout
    assert lines(proc.stdout) == ["stepup-git: would be accepted (1 update(s), 0 rule check(s) passed)",
                                  "stepup-git: note: refs/tags/v1.2: no rule applies"]

    clone.tag("main", message=None, target=a)
    assert one_error_line(stepup(*base, a, b, "main")) == (
        "stepup-git: 'main' is both refs/heads/main and refs/tags/main; give the full ref name")
    assert one_error_line(stepup(*base, a, b, "nowhere")) == (
        f"stepup-git: no branch or tag 'nowhere' in {clone.path / '.git'}; give the full ref name, e.g. "
        "refs/heads/nowhere")
    assert one_error_line(stepup(*base, a, b, "ma in")) == "stepup-git: 'ma in' is not a ref name"
    assert one_error_line(stepup(*base, a, b, "refs/heads/a..b")) == "stepup-git: 'refs/heads/a..b' is not a ref name"


def _help_entries(text: str) -> dict[str, str]:
    """Each argument and option of an argparse ``--help`` and its help text (empty when it has none)."""
    entries: dict[str, str] = {}
    current = None
    section = False
    for line in text.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            section, current = line in ("positional arguments:", "options:"), None
        elif section and re.match(r"  \S", line):
            name, _, rest = line.strip().partition("  ")
            current = name
            entries[current] = rest.strip()
        elif section and current is not None and line.startswith("    "):
            entries[current] = (entries[current] + " " + line.strip()).strip()
    return entries


@pytest.mark.parametrize(("command", "expected"), [
    ("check", {"OLD", "NEW", "REF", "-h, --help", "--repo R", "--policy FILE", "--pusher NAME", "--now ISO",
               "--json", "--push-cert FILE"}),
    ("verify", {"-h, --help", "--range A..B", "--ref REF", "--repo R", "--policy FILE", "--pusher NAME",
                "--now ISO", "--json"}),
])
def test_every_argument_of_check_and_verify_has_help(command: str, expected: set[str]) -> None:
    proc = stepup(command, "--help")
    assert proc.returncode == 0
    entries = _help_entries(proc.stdout)
    assert set(entries) == expected
    assert [name for name, text in entries.items() if not text] == []


# --- verify -----------------------------------------------------------------------------------

def test_verify_range(people: People, signed_repo: Path, clone: Clone) -> None:
    a = clone.commit("a", sign=people.alice)
    b = clone.commit("b", sign=people.bob)
    c = clone.commit("c")
    args: list[Arg] = ["verify", "--repo", clone.path, "--ref", "refs/heads/main", "--policy", signed_repo]

    proc = stepup(*args, "--range", f"{a}..{b}")
    assert proc.returncode == 0, proc.stdout
    assert lines(proc.stdout) == ["stepup-git: would be accepted (1 update(s), 1 rule check(s) passed)",
                                  "  pass  main-signed: 1 new commit(s) signed by policy keys"]

    proc = stepup(*args, "--range", f"{a}..{c}")
    assert proc.returncode == 1
    assert lines(proc.stdout) == [WOULD_REJECT_ONE, *unsigned_finding("refs/heads/main", c),
                                  "  FAIL  main-signed: 1 of 2 new commit(s) not signed as required"]

    proc = stepup(*args, "--range", "HEAD~2..HEAD~1")
    assert proc.returncode == 0
    proc = stepup(*args, "--range", "main~1..main")
    assert proc.returncode == 1


def test_verify_uses_the_installed_policy(people: People, signed_repo: Path, server: Server,
                                          clone: Clone) -> None:
    a = clone.commit("a", sign=people.alice)
    b = clone.commit("b", sign=people.bob)
    c = clone.commit("c")
    assert clone.push("main").ok
    line = one_error_line(stepup("verify", "--repo", server.path, "--range", f"{a}..{c}"))
    assert line == "stepup-git: no --policy given and the repository has no stepup.policy configured"
    server.install()

    proc = stepup("verify", "--repo", server.path, "--range", f"{a}..{b}")
    assert proc.returncode == 0, proc.stdout
    # install recorded the history as it stood (the baseline): the hook would not judge c again, nor does verify
    proc = stepup("verify", "--repo", server.path, "--range", f"{a}..{c}")
    assert proc.returncode == 0, proc.stdout
    assert lines(proc.stdout) == ["stepup-git: would be accepted (1 update(s), 1 rule check(s) passed)",
                                  "  pass  main-signed: 0 new commit(s) signed by policy keys"]
    (server.path / "stepup" / "baseline").unlink()
    proc = stepup("verify", "--repo", server.path, "--range", f"{a}..{c}")
    assert proc.returncode == 1
    assert lines(proc.stdout)[:8] == [WOULD_REJECT_ONE, *unsigned_finding("refs/heads/main", c)]


def test_verify_defaults_to_heads_branch(people: People, signed_repo: Path, clone: Clone) -> None:
    a = clone.commit("a", sign=people.alice)
    c = clone.commit("c")
    args: list[Arg] = ["verify", "--repo", clone.path, "--policy", signed_repo, "--range", f"{a}..{c}"]

    proc = stepup(*args)
    assert proc.returncode == 1
    assert lines(proc.stdout)[1] == f'refs/heads/main: rule "main-signed" failed for commit {short(c)}'

    clone.git("checkout", "-q", "-b", "feature")
    proc = stepup(*args)
    assert proc.returncode == 0
    assert lines(proc.stdout) == ["stepup-git: would be accepted (1 update(s), 0 rule check(s) passed)",
                                  "stepup-git: note: refs/heads/feature: no rule applies"]

    clone.git("checkout", "-q", "--detach")
    assert one_error_line(stepup(*args)) == "stepup-git: HEAD does not name a branch; give --ref"
    assert stepup(*args, "--ref", "refs/heads/main").returncode == 1


def test_verify_bad_range(signed_repo: Path, clone: Clone) -> None:
    clone.commit("a")
    args: list[Arg] = ["verify", "--repo", clone.path, "--policy", signed_repo]
    assert one_error_line(stepup(*args, "--range", "nonsense")) == (
        "stepup-git: --range must be A..B, not 'nonsense'")
    assert one_error_line(stepup(*args, "--range", "HEAD..")) == "stepup-git: --range must be A..B, not 'HEAD..'"
    assert one_error_line(stepup(*args, "--range", "HEAD..nowhere")) == (
        "stepup-git: unknown revision 'nowhere'")
    assert "the following arguments are required: --range" in one_error_line(stepup(*args))


# --- no tracebacks ----------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["policy"],
    ["policy", "check"],
    ["policy", "check", "/"],
    ["install"],
    ["install", "/nonexistent/repo.git", "--policy", "/nonexistent/policy.toml"],
    ["install", "/nonexistent/repo.git", "--mode", "lenient"],
    ["check", "--repo", "/nonexistent", ZERO, "1" * 40, "refs/heads/main"],
    ["verify", "--repo", "/nonexistent", "--range", "a..b"],
])
def test_usage_errors_exit_2_without_traceback(argv: list[str]) -> None:
    proc = stepup(*argv)
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert proc.stderr.strip()


def test_policy_check_of_a_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"version = 1\n# caf\xe9\n")
    proc = stepup("policy", "check", path)
    assert proc.returncode == 1
    assert lines(proc.stderr) == [f"{path}:2: the policy is not valid UTF-8", f"{path}: 1 error(s)"]


def test_check_in_a_repository_missing_the_objects(signed_repo: Path, make_clone: MakeClone,
                                                   server: Server) -> None:
    clone = make_clone(server)
    clone.commit("a")
    proc = stepup("check", "--repo", clone.path, "--policy", signed_repo, ZERO, "1" * 40, "refs/heads/main")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == f"stepup-git: unknown revision '{'1' * 40}'\n"
