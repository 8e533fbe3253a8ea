"""Start the git processes of a push with ``os.posix_spawn``.

The ``subprocess`` module imports ``threading``, ``locale`` and ``selectors``, about 5 ms of the hook's
start-up on every push (bench/README.md); the hook needs only pipes, a wait and a kill. Commands that
are not on the hook's path (gpg, ssh-keygen, a chained hook) still use ``subprocess``.
"""

from __future__ import annotations

import os
import select
import signal

from .errors import GitError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import BinaryIO


class Child:
    """A started process. ``stdin``/``stdout``/``stderr`` are pipes to it when asked for, else None: then
    its standard input and output are this process's, and its error output goes to /dev/null."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], *, stdin: bool = False, stdout: bool = True,
                 stderr: bool = True, new_session: bool = False) -> None:
        actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = []
        ours: list[int] = []  # the parent's ends
        theirs: list[int] = []  # the child's ends, closed here once it has started
        self.stdin: BinaryIO | None = None
        self.stdout: BinaryIO | None = None
        self.stderr: BinaryIO | None = None
        try:
            for fd, wanted in ((0, stdin), (1, stdout), (2, stderr)):
                if not wanted:
                    if fd == 2:
                        actions.append((os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0))
                    continue
                read_end, write_end = os.pipe()  # both close on exec; dup2 gives the child an open copy
                child_end, parent_end = (read_end, write_end) if fd == 0 else (write_end, read_end)
                ours.append(parent_end)
                theirs.append(child_end)
                actions.append((os.POSIX_SPAWN_DUP2, child_end, fd))
            # as subprocess does: the child gets the default SIGPIPE and SIGXFSZ that Python ignores
            self.pid = os.posix_spawnp(argv[0], list(argv), dict(env), file_actions=actions, setsid=new_session,
                                       setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
        except OSError as exc:
            for fd in ours:
                os.close(fd)
            raise GitError(f"cannot run {argv[0]}: {exc.strerror}") from None
        finally:
            for fd in theirs:
                os.close(fd)
        streams = iter(ours)
        if stdin:
            self.stdin = open(next(streams), "wb")  # noqa: SIM115 (closed by close())
        if stdout:
            self.stdout = open(next(streams), "rb")  # noqa: SIM115
        if stderr:
            self.stderr = open(next(streams), "rb")  # noqa: SIM115
        self.returncode: int | None = None

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self, group: bool = False) -> None:
        """Kill the process if it still runs; with ``group``, every process of the session it leads (a
        pipeline whose first process may have ended while the others run)."""
        try:
            if group:
                os.killpg(self.pid, signal.SIGKILL)
            elif self.poll() is None:
                os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # gone already
            pass

    def close(self) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def run(argv: Sequence[str], env: Mapping[str, str], input: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Run a command to its end, with ``input`` on its standard input: (exit code, its output, its error
    output). Input is written and output read as the pipes allow, so no pipe can fill and stop either
    side; an exception on the way (the hook's deadline) kills the command."""
    return collect(Child(argv, env, stdin=input is not None), input)


def collect(child: Child, input: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Feed a started child ``input``, read its output and error output to their ends, and wait for it
    (see ``run``)."""
    assert child.stdout is not None and child.stderr is not None
    out, err = child.stdout.fileno(), child.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out: [], err: []}
    try:
        poller = select.poll()
        for fd in chunks:
            poller.register(fd, select.POLLIN)
        open_fds = len(chunks)
        todo = memoryview(input or b"")
        feed = child.stdin.fileno() if child.stdin is not None else -1
        if child.stdin is not None:
            if todo:
                os.set_blocking(feed, False)
                poller.register(feed, select.POLLOUT)
                open_fds += 1
            else:
                child.stdin.close()
        while open_fds:
            for fd, _ in poller.poll():
                if fd == feed:
                    try:
                        todo = todo[os.write(fd, todo[:65536]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # it stopped reading: its exit code tells why
                        todo = todo[:0]
                    if not todo:
                        poller.unregister(fd)
                        assert child.stdin is not None
                        child.stdin.close()
                        open_fds -= 1
                    continue
                data = os.read(fd, 65536)
                if data:
                    chunks[fd].append(data)
                else:
                    poller.unregister(fd)
                    open_fds -= 1
        code = child.wait()
    finally:
        child.kill()
        child.wait()
        child.close()
    return code, b"".join(chunks[out]), b"".join(chunks[err])
