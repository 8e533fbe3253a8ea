"""Gitolite v3 (Debian `gitolite3`) with stepup-git as a global pre-receive hook, pushed to over real SSH.

One gitolite per module, in a temporary HOME: `gitolite setup -pk admin.pub`; the rc file allows
`stepup.*` and `receive.certNonce*` config lines and sets `LOCAL_CODE`; the admin pushes
`gitolite-admin` (users alice and bob, repo `app` with its own nonce seed, `repo @all` with
`config stepup.policy = ...`); then the launcher goes to `$LOCAL_CODE/hooks/common/pre-receive`
(through `stepup_git.layouts`) and `gitolite setup --hooks-only` links it into every repository.
`sshd` on a loopback port uses the `authorized_keys` gitolite writes (`command="gitolite-shell <user>"`),
with `SetEnv HOME=` pointing gitolite-shell at this gitolite. The hook learns the pusher from `GL_USER`.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import run
from support.keys import Key, People, key_toml
from support.lines import unwrap
from support.repos import PushResult, remote_lines, signing_config
from support.servers import HOST, find_program, free_port, make_ssh_key, unavailable

from stepup_git import layouts
from stepup_git.errors import UsageError
from stepup_git.install import launcher_text

RULE = "migrations-step-up"
MIGRATION = "db/migrations/0001_init.sql"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
ACCEPTED = "stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"
NO_RULE_CHECKED = "stepup-git: push accepted (1 update(s), 0 rule check(s) passed)"


def _unavailable() -> str | None:
    if find_program("gitolite") is None:
        return "gitolite is not installed (Debian: gitolite3, listed in tests/system-packages.txt)"
    return unavailable("ssh")


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=_unavailable() or "")

_SSHD_CONFIG = """\
Port {port}
ListenAddress {host}
AddressFamily inet
HostKey {host_key}
KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org
PidFile {state}/sshd.pid
AuthorizedKeysFile {home}/.ssh/authorized_keys
AuthorizedKeysCommand none
AllowUsers {user}
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitUserEnvironment no
# gitolite-shell finds ~/.gitolite.rc and ~/repositories through HOME.
SetEnv HOME={home} SHLVL=1
AcceptEnv GIT_PROTOCOL
AllowAgentForwarding no
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
UseDNS no
LogLevel VERBOSE
"""


@dataclass
class Gitolite:
    """A running gitolite: its HOME, the sshd port, and each gitolite user's SSH private key."""

    home: Path
    user: str
    keys: dict[str, Path]
    policy: Path
    original_rc: str
    port: int = 0
    log: Path = field(default=Path("/dev/null"))

    @property
    def env(self) -> dict[str, str]:
        """The environment of gitolite commands run on the server (its user's HOME)."""
        return {**os.environ, "HOME": str(self.home), "USER": self.user}

    def gitolite(self, *args: str) -> str:
        return run(["gitolite", *args], env={"HOME": str(self.home), "USER": self.user}).stdout

    def repo(self, name: str) -> Path:
        return self.home / "repositories" / f"{name}.git"

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@{HOST}:{self.port}/{name}"

    def ssh_command(self, who: str, *options: str) -> str:
        return " ".join([
            "ssh", "-i", str(self.keys[who]), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            *options,
        ])

    def ref(self, name: str, ref: str) -> str | None:
        proc = run(["git", "--git-dir", str(self.repo(name)), "rev-parse", "--verify", "-q", ref], check=False)
        return proc.stdout.strip() or None

    def audit(self, name: str) -> list[dict[str, Any]]:
        log = self.repo(name) / "stepup" / "audit.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _policy(people: People) -> str:
    """Migrations need a fresh maintainer proof from the pusher's own key (bind_pusher)."""
    return (
        'version = 1\n\n[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'
        + key_toml(people.alice, "alice", "maintainer")
        + key_toml(people.bob, "bob", "maintainer")
        + f'\n[[rules]]\nname = "{RULE}"\nrefs = ["refs/heads/**"]\npaths = ["db/migrations/**"]\n'
        'require = "step-up"\ntier = "maintainer"\nbind_pusher = true\n'
    )


def _write_rc(gl: Gitolite) -> None:
    """The default ~/.gitolite.rc, allowing stepup/receive config lines, with LOCAL_CODE set and
    without the gitweb and git-daemon features (unused here, and slow on every compile)."""
    (gl.home / ".gitolite" / "logs").mkdir(parents=True)
    text = gl.gitolite("print-default-rc")
    new, keys = re.subn(r"GIT_CONFIG_KEYS\s*=>\s*'',", r"GIT_CONFIG_KEYS => 'stepup\\..* receive\\.certNonce.*',",
                        text)
    new, local = re.subn(r'#\s*(LOCAL_CODE\s*=>\s*"\$ENV\{HOME\}/local",)', r"\1", new)
    new, unused = re.subn(r"^(\s*)'(daemon|gitweb)',$", r"\1# '\2',", new, flags=re.MULTILINE)
    assert (keys, local, unused) == (1, 1, 2), "unexpected default .gitolite.rc"
    (gl.home / ".gitolite.rc").write_text(new)
    gl.original_rc = text


def _start_sshd(gl: Gitolite, state: Path) -> subprocess.Popen[bytes]:
    """sshd on a free loopback port (a new port when the last one was taken meanwhile)."""
    sshd = find_program("sshd") or "/usr/sbin/sshd"
    host_key = state / "host_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    gl.log = state / "sshd.log"
    conf = state / "sshd_config"
    for _ in range(3):
        gl.port = free_port()
        conf.write_text(_SSHD_CONFIG.format(port=gl.port, host=HOST, host_key=host_key, state=state,
                                            home=gl.home, user=gl.user))
        with open(gl.log, "ab") as out:
            proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(conf)], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env={"PATH": os.defpath}, start_new_session=True)
        if _banner(gl.port, proc):
            return proc
        _stop(proc)
        if "in use" not in gl.log.read_text():
            break
    pytest.skip(f"sshd did not start for the gitolite test: {gl.log.read_text()[-2000:]}")


def _banner(port: int, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _admin_push(gl: Gitolite, work: Path, seed: str) -> None:
    """Clone gitolite-admin over SSH as admin, add alice, bob and repo `app`, push (before the hook exists)."""
    env = {"GIT_SSH_COMMAND": gl.ssh_command("admin")}
    run(["git", "clone", "-q", gl.url("gitolite-admin"), str(work)], env=env)
    for who in ("alice", "bob"):
        shutil.copy(gl.keys[who].with_name(gl.keys[who].name + ".pub"), work / "keydir" / f"{who}.pub")
    (work / "conf" / "gitolite.conf").write_text(
        "repo gitolite-admin\n    RW+     =   admin\n\n"
        "repo app\n    RW+     =   alice bob\n"
        f"    config receive.certNonceSeed = {seed}\n"
        "    config receive.certNonceSlop = 300\n\n"
        f"repo @all\n    config stepup.policy = {gl.policy}\n"
    )
    run(["git", "add", "-A"], cwd=work)
    run(["git", "commit", "-q", "-m", "Add alice, bob and app"], cwd=work)
    run(["git", "push", "-q", "origin", "HEAD"], cwd=work, env=env)


@pytest.fixture(scope="module")
def gitolite(people: People) -> Iterator[Gitolite]:
    home = Path(tempfile.mkdtemp(prefix="sggl", dir="/tmp"))
    state = Path(tempfile.mkdtemp(prefix="sgglsshd", dir="/tmp"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        keys = {who: make_ssh_key(home / "client-keys", who) for who in ("admin", "alice", "bob")}
        policy_dir = home / "policy"
        (policy_dir / "keys").mkdir(parents=True)
        (policy_dir / "policy.toml").write_text(_policy(people))
        (policy_dir / "keys" / "alice.asc").write_text(people.alice.export())
        (policy_dir / "keys" / "bob.asc").write_text(people.bob.export())
        user = pwd.getpwuid(os.getuid()).pw_name
        gl = Gitolite(home, user, keys, policy_dir / "policy.toml", original_rc="")
        admin_pub = home / "admin.pub"
        shutil.copy(keys["admin"].with_name(keys["admin"].name + ".pub"), admin_pub)
        _write_rc(gl)
        gl.gitolite("setup", "-pk", str(admin_pub))
        proc = _start_sshd(gl, state)
        _admin_push(gl, home / "admin-work", secrets.token_hex(32))

        hook = layouts.hook_file_for("gitolite", gl.repo("app"), env=gl.env)
        hook.parent.mkdir(parents=True, exist_ok=True)
        hook.write_text(launcher_text(sys.executable))
        hook.chmod(0o755)
        layouts.gitolite_link_hooks(gl.env)
        yield gl
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def _work(path: Path) -> Path:
    run(["git", "init", "-q", "-b", "main", str(path)])
    (path / MIGRATION).parent.mkdir(parents=True)
    (path / MIGRATION).write_text("CREATE TABLE users (id INTEGER PRIMARY KEY);\n")
    run(["git", "add", "-A"], cwd=path)
    # each person's own commit: one already on a branch of the server would be vetted there (docs/semantics.md)
    run(["git", "commit", "-q", "--no-gpg-sign", "-m", f"Add the users table ({path.name})"], cwd=path)
    return path


def _push(gl: Gitolite, work: Path, who: str, ref: str, *, signed: Key | None = None,
          ssh_options: tuple[str, ...] = (), env: Mapping[str, str] | None = None) -> PushResult:
    """`git push` over SSH as gitolite user `who`, optionally with a certificate signed by `signed`."""
    config = ["-c", f"core.sshCommand={gl.ssh_command(who, *ssh_options)}"]
    config += signing_config(signed) if signed is not None else []
    args = ["push", *(["--signed"] if signed is not None else []), gl.url("app"), f"HEAD:{ref}"]
    proc = run(["git", *config, *args], cwd=work, env=dict(env or {}), check=False)
    return PushResult(proc.returncode, proc.stdout, proc.stderr, remote_lines(proc.stderr))


def test_hook_is_linked_into_every_repository(gitolite: Gitolite) -> None:
    """`$LOCAL_CODE/hooks/common/pre-receive` is the launcher, symlinked into app and gitolite-admin,
    and the gitolite `config` lines reached each repository's git config."""
    local_code = gitolite.home / "local"
    assert gitolite.gitolite("query-rc", "LOCAL_CODE").strip() == str(local_code)
    assert layouts.hooks_dir_for("gitolite", gitolite.repo("app"), env=gitolite.env) == local_code / "hooks" / "common"
    common = local_code / "hooks" / "common" / "pre-receive"
    assert common.read_text() == launcher_text(sys.executable)
    for name in ("app", "gitolite-admin"):
        linked = gitolite.repo(name) / "hooks" / "pre-receive"
        assert linked.is_symlink() and linked.resolve() == common.resolve()
        assert run(["git", "--git-dir", str(gitolite.repo(name)), "config", "stepup.policy"]).stdout.strip() == str(
            gitolite.policy)
    seed = run(["git", "--git-dir", str(gitolite.repo("app")), "config", "receive.certNonceSeed"]).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", seed)


def test_gitolite_user_is_the_pusher(people: People, gitolite: Gitolite, tmp_path: Path) -> None:
    """Alice, logged in as gitolite user alice, proves her migration with her own signed push."""
    work = _work(tmp_path / "alice")
    tip = run(["git", "rev-parse", "HEAD"], cwd=work).stdout.strip()
    ref = "refs/heads/alice-migration"
    result = _push(gitolite, work, "alice", ref, signed=people.alice)
    assert result.ok, result
    assert result.remote == [ACCEPTED]
    assert gitolite.ref("app", ref) == tip
    record = gitolite.audit("app")[-1]
    assert (record["ref"], record["pusher"], record["decision"]) == (ref, "alice", "accept")
    assert record["push_cert_nonce_status"] == "OK"
    (proof,) = record["rules"][0]["proofs"]
    assert (proof["kind"], proof["owner"], proof["fingerprint"]) == ("push-certificate", "alice",
                                                                     people.alice.fingerprint)


def test_someone_elses_certificate_does_not_bind_to_the_gitolite_user(people: People, gitolite: Gitolite,
                                                                     tmp_path: Path) -> None:
    """Bob's SSH login with a certificate signed by alice's key is refused: the proof is alice's but the
    pusher is bob. His client also sends STEPUP_PUSHER=alice, which sshd does not accept, so GL_USER
    decides. Signed with his own key, the same push passes."""
    work = _work(tmp_path / "bob")
    tip = run(["git", "rev-parse", "HEAD"], cwd=work).stdout.strip()
    ref = "refs/heads/bob-migration"
    forged = _push(gitolite, work, "bob", ref, signed=people.alice, ssh_options=("-o", "SendEnv=STEPUP_PUSHER"),
                   env={"STEPUP_PUSHER": "alice"})
    assert not forged.ok
    assert unwrap(forged.remote) == [
        REJECTED,
        f'{ref}: rule "{RULE}" failed for commit {tip[:10]}',
        "    required: a fresh proof of tier maintainer or higher owned by the pusher: a signed push certificate "
        "for this update (git push --signed) or a signature on the pushed tip made within the last 15m "
        f"(create of {ref} changes {MIGRATION} (db/migrations/**))",
        f"    found:    push certificate: signed by alice (maintainer, key {people.alice.fingerprint[-16:]}), "
        "nonce OK",
        f"              tip commit {tip[:10]}: no signature",
        "              pusher: bob, but the proof is alice's",
        "    fix:      sign the push with a key of tier maintainer or higher that is yours: git config "
        "user.signingkey <key id>, then git push --signed; or re-sign the tip now: git commit --amend --no-edit "
        "-S, then push",
    ]
    assert gitolite.ref("app", ref) is None
    record = gitolite.audit("app")[-1]
    assert (record["ref"], record["pusher"], record["decision"]) == (ref, "bob", "reject")

    own = _push(gitolite, work, "bob", ref, signed=people.bob)
    assert own.ok, own
    assert own.remote == [ACCEPTED]
    assert gitolite.ref("app", ref) == tip
    record = gitolite.audit("app")[-1]
    assert (record["ref"], record["pusher"], record["decision"]) == (ref, "bob", "accept")
    assert record["rules"][0]["proofs"][0]["owner"] == "bob"


def test_admin_repository_is_judged_under_the_same_policy(gitolite: Gitolite, tmp_path: Path) -> None:
    """The common hook also guards gitolite-admin; `repo @all` gave it stepup.policy, so the admin's push
    is judged (no rule applies to it) and audited with pusher admin."""
    work = tmp_path / "admin"
    env = {"GIT_SSH_COMMAND": gitolite.ssh_command("admin")}
    run(["git", "clone", "-q", gitolite.url("gitolite-admin"), str(work)], env=env)
    (work / "README").write_text("Managed by the platform team.\n")
    run(["git", "add", "-A"], cwd=work)
    run(["git", "commit", "-q", "-m", "Add a README"], cwd=work)
    tip = run(["git", "rev-parse", "HEAD"], cwd=work).stdout.strip()
    proc = run(["git", "push", "origin", "HEAD:master"], cwd=work, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert remote_lines(proc.stderr) == [NO_RULE_CHECKED]
    assert gitolite.ref("gitolite-admin", "refs/heads/master") == tip
    record = gitolite.audit("gitolite-admin")[-1]
    assert (record["pusher"], record["decision"], record["rules"]) == ("admin", "accept", [])


def test_layout_needs_local_code(gitolite: Gitolite, tmp_path: Path) -> None:
    """Without LOCAL_CODE in ~/.gitolite.rc the gitolite layout refuses, naming the line to add."""
    (tmp_path / ".gitolite.rc").write_text(gitolite.original_rc)
    env = {**os.environ, "HOME": str(tmp_path)}
    with pytest.raises(UsageError) as exc:
        layouts.hooks_dir_for("gitolite", gitolite.repo("app"), env=env)
    assert str(exc.value) == (f"LOCAL_CODE is not set in {tmp_path / '.gitolite.rc'}; add the line  "
                              'LOCAL_CODE => "$ENV{HOME}/local",  to its %RC hash, then rerun')
