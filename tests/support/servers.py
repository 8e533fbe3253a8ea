"""Real Git servers on 127.0.0.1 for end-to-end tests.

* `git_daemon`: `git daemon` with receive-pack enabled (no authentication at all).
* `http_server`: smart HTTP, `git http-backend` behind nginx + fcgiwrap with basic auth, so the
  hook sees `REMOTE_USER`.
* `ssh_server`: OpenSSH `sshd`, public keys only; each key runs a forced command that sets
  `STEPUP_PUSHER=<name>` before `git-receive-pack` / `git-upload-pack`.

Every server picks a free loopback port, keeps all its state in a short temporary directory,
and is stopped (with its whole process group) when the context exits.

The hook environment is built from an allow-list (`PASS_THROUGH_ENV`) of the test process's
variables plus the `env` given to the server; `GNUPGHOME`, `STEPUP_*`, `GIT_*` identity and
pusher variables of the test process never leak into the server. For HTTP and SSH the extra
environment can be changed while the server runs (`set_env` / `unset_env`): it is read on every
request.
"""

from __future__ import annotations

import functools
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

HOST = "127.0.0.1"
"""The only address these servers listen on."""

START_TIMEOUT = 10.0
"""Seconds a server may take to accept connections before the start counts as failed."""

PASS_THROUGH_ENV = (
    "PATH",
    "HOME",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "PYTHONDONTWRITEBYTECODE",
    "VIRTUAL_ENV",
    "COVERAGE_PROCESS_START",
    "COVERAGE_FILE",
    "COVERAGE_RCFILE",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_GLOBAL",
)
"""Variables of the test process that reach the server (and so the hook), when set."""

Transport = Literal["daemon", "http", "ssh"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SAFE_NAME = re.compile(r"[A-Za-z0-9._@+-]+\Z")


class ServerUnavailable(RuntimeError):
    """This server cannot run here (missing program or sandbox limit): skip, don't fail."""


# --------------------------------------------------------------------------- helpers


def find_program(name: str) -> str | None:
    """`shutil.which`, also looking in the sbin directories a non-login PATH may lack."""
    extra = os.pathsep.join(["/usr/sbin", "/sbin", "/usr/local/sbin"])
    path = os.environ.get("PATH", "")
    return shutil.which(name, path=f"{path}{os.pathsep}{extra}" if path else extra)


def http_backend_program() -> str | None:
    """Path of `git http-backend`, or None."""
    git = shutil.which("git")
    if git is None:
        return None
    proc = subprocess.run([git, "--exec-path"], capture_output=True, text=True, check=False)
    candidate = Path(proc.stdout.strip()) / "git-http-backend"
    return str(candidate) if proc.returncode == 0 and os.access(candidate, os.X_OK) else None


_NEEDS: dict[Transport, tuple[tuple[str, str], ...]] = {
    "daemon": (("git", "git"),),
    "http": (("git", "git"), ("nginx", "nginx"), ("fcgiwrap", "fcgiwrap")),
    "ssh": (
        ("git", "git"),
        ("sshd", "openssh-server"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
    ),
}


def unavailable(transport: Transport) -> str | None:
    """Why `transport`'s server cannot run here (for `pytest.skip`), or None when it can."""
    missing = [
        f"{prog} (Debian: {pkg})" for prog, pkg in _NEEDS[transport] if not find_program(prog)
    ]
    if transport == "http" and not missing and http_backend_program() is None:
        missing.append("git-http-backend (Debian: git)")
    if missing:
        return f"{transport} server needs missing programs: {', '.join(missing)}"
    return None


def _require(transport: Transport) -> None:
    reason = unavailable(transport)
    if reason:
        raise ServerUnavailable(reason)


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a server (and its hook) runs with: the allow-list plus `extra`."""
    env = {name: os.environ[name] for name in PASS_THROUGH_ENV if name in os.environ}
    env.setdefault("PATH", os.defpath)
    for name, value in (extra or {}).items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"bad environment variable name: {name!r}")
        env[name] = value
    return env


def _write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """Write `env` as shell assignments (sourced under `set -a`), atomically."""
    lines = [f"{name}={shlex.quote(value)}\n" for name, value in sorted(env.items())]
    tmp = path.with_name(path.name + ".new")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def state_dir(prefix: str) -> Iterator[Path]:
    """A short private temporary directory (unix socket paths must stay short); removed after."""
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


def _port_ready(port: int, banner: bytes | None) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            if banner is None:
                return True
            sock.settimeout(2.0)
            return sock.recv(len(banner)).startswith(banner)
    except OSError:
        return False


def _wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.01
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} at start:\n{_log_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what} did not become ready in {START_TIMEOUT}s:\n{_log_tail(log)}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process we started (it leads its own session) and everything in its group."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def _process(
    argv: list[str], log: Path, env: Mapping[str, str], stop_signal: int = signal.SIGTERM
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv` in its own session with output appended to `log`; stop it on exit."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        _stop(proc, stop_signal)


def _listen(
    stack: ExitStack,
    make_argv: Callable[[int], list[str]],
    *,
    what: str,
    log: Path,
    env: Mapping[str, str],
    banner: bytes | None = None,
    stop_signal: int = signal.SIGTERM,
    attempts: int = 3,
) -> int:
    """Start a server on a free port (retrying when the port was taken meanwhile); its port."""
    for attempt in range(attempts):
        port = free_port()
        proc = stack.enter_context(_process(make_argv(port), log, env, stop_signal))
        try:
            _wait_until(functools.partial(_port_ready, port, banner), proc, what, log)
            return port
        except RuntimeError:
            _stop(proc, stop_signal)
            if attempt == attempts - 1 or "in use" not in _log_tail(log):
                raise
    raise AssertionError("unreachable")


def _nginx_str(value: str | Path) -> str:
    text = str(value)
    if any(c in text for c in '"\\$;{}\n'):
        raise ValueError(f"path unusable in an nginx config: {text!r}")
    return f'"{text}"'


# --------------------------------------------------------------------------- git daemon


@contextmanager
def git_daemon(base_path: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`git daemon` exporting every repository under `base_path`, push enabled.

    Yields the URL prefix `git://127.0.0.1:<port>/`; append a path relative to `base_path`.
    The hook environment (`server_env(env)`) is fixed for the daemon's lifetime.
    """
    _require("daemon")
    base = Path(base_path).resolve()
    git = shutil.which("git") or "git"
    with ExitStack() as stack:
        state = stack.enter_context(state_dir("sgd"))
        port = _listen(
            stack,
            lambda port: [
                git,
                "daemon",
                "--reuseaddr",
                f"--listen={HOST}",
                f"--port={port}",
                f"--base-path={base}",
                "--export-all",
                "--enable=receive-pack",
                "--informative-errors",
                "--log-destination=stderr",
                str(base),
            ],
            what="git daemon",
            log=state / "daemon.log",
            env=server_env(env),
        )
        yield f"git://{HOST}:{port}/"


class _HookEnvironment:
    """The extra environment a server gives the hooks it runs, kept in `<state_dir>/hook.env`; a change
    takes effect from the server's next request or connection."""

    state_dir: Path
    _env: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        """A copy of the extra hook environment (on top of `PASS_THROUGH_ENV`)."""
        return dict(self._env)

    def set_env(self, **values: str) -> None:
        """Add or change hook environment variables."""
        self._env.update(values)
        _write_env_file(self.state_dir / "hook.env", server_env(self._env))

    def unset_env(self, *names: str) -> None:
        """Remove hook environment variables set with `env=` or `set_env`."""
        for name in names:
            self._env.pop(name, None)
        _write_env_file(self.state_dir / "hook.env", server_env(self._env))


# --------------------------------------------------------------------------- smart HTTP


@dataclass
class HttpServer(_HookEnvironment):
    """A running smart-HTTP Git server (nginx, fcgiwrap, git http-backend, basic auth)."""

    port: int
    base_path: Path
    state_dir: Path
    users: dict[str, str]
    _env: dict[str, str] = field(repr=False)
    host: str = HOST

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>/` (no credentials)."""
        return f"http://{self.host}:{self.port}/"

    def url(
        self, repo_name: str | Path, user: str | None = None, password: str | None = None
    ) -> str:
        """`http://user:pw@127.0.0.1:<port>/<repo_name>`; `repo_name` is relative to the base."""
        return http_url(self.host, self.port, self.base_path, repo_name, user, password)

    def error_log(self) -> str:
        """nginx's error log (includes http-backend's and a non-side-band hook's stderr)."""
        return _log_tail(self.state_dir / "error.log", 100_000)


def http_url(
    host: str, port: int, base: Path, repo_name: str | Path, user: str | None, password: str | None
) -> str:
    """`http://user:pw@host:port/<repo_name relative to base>` (credentials percent-encoded)."""
    name = Path(repo_name)
    if name.is_absolute():
        name = name.resolve().relative_to(base.resolve())
    cred = ""
    if user is not None:
        cred = quote(user, safe="")
        if password is not None:
            cred += ":" + quote(password, safe="")
        cred += "@"
    return f"http://{cred}{host}:{port}/{name.as_posix().lstrip('/')}"


_NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {pid};
error_log {error_log} info;
{user_line}
events {{ worker_connections 128; }}
http {{
    access_log {access_log};
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 0;
    server {{
        listen {host}:{port};
        server_name localhost;
        auth_basic "stepup-git test";
        auth_basic_user_file {htpasswd};
        location / {{
            fastcgi_pass unix:{socket};
            fastcgi_read_timeout 300s;
            fastcgi_param SCRIPT_FILENAME {cgi};
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE nginx;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param SERVER_NAME $server_name;
            fastcgi_param SERVER_ADDR $server_addr;
            fastcgi_param SERVER_PORT $server_port;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param REMOTE_PORT $remote_port;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param PATH_INFO $uri;
            fastcgi_param AUTH_TYPE Basic;
            fastcgi_param REMOTE_USER $remote_user;
            fastcgi_param HTTP_AUTHORIZATION "";
            fastcgi_param GIT_PROJECT_ROOT {base};
            fastcgi_param GIT_HTTP_EXPORT_ALL 1;
        }}
    }}
}}
"""

_CGI_WRAPPER = """\
#!/bin/sh
# fcgiwrap gives us only the FastCGI parameters; add the hook environment, read per request.
set -a
. {env_file}
set +a
exec {backend}
"""

_MOUNTED_BACKEND = """\
#!/bin/sh
# Run inside `unshare --mount`: this server's own view of the file system, then the backend.
{mounts}
exec {backend}
"""


def _check_users(users: Mapping[str, str]) -> None:
    for user, password in users.items():
        if not user or ":" in user or "\n" in user or "\n" in password:
            raise ValueError(f"bad basic-auth user: {user!r}")


@contextmanager
def http_server(
    base_path: Path,
    users: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    mounts: Mapping[Path, Path] | None = None,
) -> Iterator[HttpServer]:
    """Smart HTTP for every repository under `base_path`, basic auth (`users`: name -> password).

    `REMOTE_USER` reaches the hook as the authenticated user (which also enables receive-pack
    in http-backend); `env` adds hook variables (e.g. `STEPUP_*`), changeable with `set_env`.
    `mounts` (source -> target folder) gives the backend, and so the hook, a file system of its own:
    each request runs under `unshare --mount` with each source bind-mounted on its target, so that
    several servers serve their own copies of a repository at one path (root only).
    """
    _require("http")
    _check_users(users)
    base = Path(base_path).resolve()
    nginx = find_program("nginx") or "nginx"
    fcgiwrap = find_program("fcgiwrap") or "fcgiwrap"
    backend = http_backend_program() or "git-http-backend"
    with ExitStack() as stack:
        state = stack.enter_context(state_dir("sgh"))
        server = HttpServer(0, base, state, dict(users), dict(env or {}))
        server.set_env()  # writes hook.env
        (state / "htpasswd").write_text(
            "".join(f"{user}:{{PLAIN}}{pw}\n" for user, pw in users.items()), encoding="utf-8"
        )
        if mounts:
            unshare = find_program("unshare")
            if unshare is None or os.geteuid() != 0:
                raise ServerUnavailable("bind mounts need root and unshare (Debian: util-linux)")
            inner = state / "mounted-backend.sh"
            inner.write_text(
                _MOUNTED_BACKEND.format(
                    mounts="\n".join(
                        f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(target))} || exit 1"
                        for source, target in mounts.items()
                    ),
                    backend=shlex.quote(backend),
                )
            )
            inner.chmod(0o755)
            backend = f"{shlex.quote(unshare)} --mount -- {shlex.quote(str(inner))}"
        cgi = state / "git-http-backend.sh"
        cgi.write_text(
            _CGI_WRAPPER.format(
                env_file=shlex.quote(str(state / "hook.env")),
                backend=backend if mounts else shlex.quote(backend),
            )
        )
        cgi.chmod(0o755)
        (state / "tmp").mkdir()

        sock = state / "fcgi.sock"
        fcgi_log = state / "fcgiwrap.log"
        fcgi = stack.enter_context(
            _process([fcgiwrap, "-c", "4", "-s", f"unix:{sock}"], fcgi_log, {"PATH": os.defpath})
        )
        _wait_until(lambda: _unix_ready(sock), fcgi, "fcgiwrap", fcgi_log)

        def nginx_argv(port: int) -> list[str]:
            conf = state / "nginx.conf"
            conf.write_text(
                _NGINX_CONF.format(
                    pid=_nginx_str(state / "nginx.pid"),
                    error_log=_nginx_str(state / "error.log"),
                    access_log=_nginx_str(state / "access.log"),
                    user_line="user root root;" if os.geteuid() == 0 else "",
                    tmp=state / "tmp",
                    host=HOST,
                    port=port,
                    htpasswd=_nginx_str(state / "htpasswd"),
                    socket=sock,
                    cgi=_nginx_str(cgi),
                    base=_nginx_str(base),
                )
            )
            return [nginx, "-p", str(state), "-e", str(state / "error.log"), "-c", str(conf)]

        server.port = _listen(
            stack, nginx_argv, what="nginx", log=state / "nginx.out", env={"PATH": os.defpath}
        )
        yield server


def _unix_ready(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(str(path))
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- SSH


@dataclass
class SshServer(_HookEnvironment):
    """A running sshd for Git over SSH; each authorized key is one pusher (`STEPUP_PUSHER`)."""

    port: int
    base_path: Path
    state_dir: Path
    user: str
    pushers: dict[str, str]
    """pusher name -> public key line"""
    _env: dict[str, str] = field(repr=False)
    host: str = HOST

    def git_ssh_command(self, private_key_path: str | Path) -> str:
        """The `GIT_SSH_COMMAND` value that logs in with `private_key_path` (mode 0600)."""
        args = [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.port),
            "-i",
            str(private_key_path),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ]
        return shlex.join(args)

    def url(self, repo_path: str | Path) -> str:
        """`ssh://<user>@127.0.0.1:<port>/<absolute path>`; a relative path is under the base."""
        path = Path(repo_path)
        if not path.is_absolute():
            path = self.base_path / path
        return f"ssh://{self.user}@{self.host}:{self.port}{path.resolve().as_posix()}"

    def log(self) -> str:
        """sshd's log (`-e`: it logs to stderr)."""
        return _log_tail(self.state_dir / "sshd.log", 100_000)


_SSH_SHELL = """\
#!/bin/sh
# Forced command of every authorized key: run only Git's pack services, as pusher "$1",
# in a clean environment (sshd's session env is dropped) plus the hook environment file.
case "$SSH_ORIGINAL_COMMAND" in
    "git-receive-pack "*|"git-upload-pack "*|"git receive-pack "*|"git upload-pack "*) ;;
    *) echo "stepup-git test sshd: command not allowed: $SSH_ORIGINAL_COMMAND" >&2; exit 1 ;;
esac
exec env -i USER="$USER" LOGNAME="$LOGNAME" SSH_CONNECTION="$SSH_CONNECTION" \\
    SSH_ORIGINAL_COMMAND="$SSH_ORIGINAL_COMMAND" ${{GIT_PROTOCOL:+GIT_PROTOCOL="$GIT_PROTOCOL"}} \\
    /bin/sh -c 'set -a; . "$1"; set +a; STEPUP_PUSHER="$2"; export STEPUP_PUSHER
        eval "exec $SSH_ORIGINAL_COMMAND"' sh {env_file} "$1"
"""

_SSHD_CONFIG = """\
Port {port}
ListenAddress {host}
AddressFamily inet
HostKey {host_key}
# The default post-quantum hybrid kex costs ~0.1 s a connection; speed matters more here.
KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org
PidFile {pid}
AuthorizedKeysFile {authorized_keys}
AuthorizedKeysCommand none
AuthorizedPrincipalsFile none
AllowUsers {user}
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitEmptyPasswords no
PermitUserEnvironment no
# bash started by sshd sources ~/.bashrc unless it is a nested shell (SHLVL >= 2): skip it.
SetEnv SHLVL=1
AcceptEnv GIT_PROTOCOL
AllowAgentForwarding no
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
PrintLastLog no
UseDNS no
LoginGraceTime 30
MaxStartups 64
LogLevel VERBOSE
"""


def _public_key_line(key: str | Path) -> str:
    """A public key line from its text or the path of a `.pub` file."""
    text = str(key).strip()
    if not text.startswith(("ssh-", "ecdsa-", "sk-")) and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8").strip()
    if "\n" in text or not text.startswith(("ssh-", "ecdsa-", "sk-")):
        raise ValueError(f"not a single OpenSSH public key line: {text[:60]!r}")
    return text


@contextmanager
def ssh_server(
    base_path: Path, authorized: Mapping[str, str], env: Mapping[str, str] | None = None
) -> Iterator[SshServer]:
    """sshd on a free loopback port for `base_path`; `authorized`: pusher name -> public key.

    The public key is its line (`ssh-ed25519 AAAA... comment`) or the path of its `.pub` file.
    Log in as the current user; the forced command exports `STEPUP_PUSHER=<name>`.
    """
    _require("ssh")
    sshd = find_program("sshd") or "/usr/sbin/sshd"
    ssh_keygen = find_program("ssh-keygen") or "ssh-keygen"
    base = Path(base_path).resolve()
    user = pwd.getpwuid(os.getuid()).pw_name
    pushers = {name: _public_key_line(key) for name, key in authorized.items()}
    for name in pushers:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"pusher name must match {_SAFE_NAME.pattern}: {name!r}")
    if os.geteuid() == 0:
        # sshd insists on its privilege separation directory, even with -f.
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    with ExitStack() as stack:
        state = stack.enter_context(state_dir("sgs"))
        server = SshServer(0, base, state, user, pushers, dict(env or {}))
        server.set_env()
        host_key = state / "host_ed25519"
        keygen = subprocess.run(
            [
                ssh_keygen,
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "stepup-test-host",
                "-f",
                str(host_key),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if keygen.returncode != 0:
            raise RuntimeError(f"ssh-keygen failed: {keygen.stderr}")
        shell = state / "git-shell.sh"
        shell.write_text(_SSH_SHELL.format(env_file=shlex.quote(str(state / "hook.env"))))
        shell.chmod(0o755)
        restrict = f'restrict,command="{shell} {{name}}"'
        (state / "authorized_keys").write_text(
            "".join(f"{restrict.format(name=name)} {line}\n" for name, line in pushers.items())
        )

        def sshd_argv(port: int) -> list[str]:
            conf = state / "sshd_config"
            conf.write_text(
                _SSHD_CONFIG.format(
                    port=port,
                    host=HOST,
                    host_key=host_key,
                    pid=state / "sshd.pid",
                    authorized_keys=state / "authorized_keys",
                    user=user,
                )
            )
            test = subprocess.run(
                [sshd, "-t", "-f", str(conf)], capture_output=True, text=True, check=False
            )
            if test.returncode != 0:
                raise ServerUnavailable(f"sshd rejects its test config: {test.stderr.strip()}")
            return [sshd, "-D", "-e", "-f", str(conf)]

        server.port = _listen(
            stack,
            sshd_argv,
            what="sshd",
            log=state / "sshd.log",
            env={"PATH": os.defpath},
            banner=b"SSH-",
        )
        yield server


def make_ssh_key(directory: Path, name: str) -> Path:
    """Generate an ed25519 key pair `<directory>/id_<name>` (no passphrase); the private path.

    The public key is the same path with `.pub` appended.
    """
    if not _SAFE_NAME.match(name):
        raise ValueError(f"bad key name: {name!r}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"id_{name}"
    subprocess.run(
        [
            find_program("ssh-keygen") or "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            name,
            "-f",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    path.chmod(0o600)
    return path


__all__ = [
    "HOST",
    "PASS_THROUGH_ENV",
    "HttpServer",
    "ServerUnavailable",
    "SshServer",
    "free_port",
    "git_daemon",
    "http_server",
    "http_url",
    "make_ssh_key",
    "server_env",
    "ssh_server",
    "unavailable",
]
