"""The hook's process starter: pipes that cannot stall, default signals in the child, kills that reach a
whole pipeline, and no process left behind when the hook's deadline interrupts it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from stepup_git.errors import GitError
from stepup_git.spawn import Child, run

ENV = dict(os.environ)


class _Deadline(Exception):
    pass


@pytest.fixture
def deadline() -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise _Deadline()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_run_reads_large_output_and_error_output_together() -> None:
    script = "head -c 300000 /dev/zero | tr '\\0' e >&2; head -c 300000 /dev/zero | tr '\\0' o; exit 3"
    code, out, err = run(["sh", "-c", script], ENV)
    assert (code, len(out), len(err)) == (3, 300000, 300000)
    assert set(out) == {ord("o")} and set(err) == {ord("e")}


def test_run_passes_the_environment_given() -> None:
    code, out, _ = run(["sh", "-c", 'printf %s "$PROBE"'], {**ENV, "PROBE": "x y"})
    assert (code, out) == (0, b"x y")


def test_a_missing_command_is_a_one_line_error() -> None:
    with pytest.raises(GitError) as caught:
        run(["stepup-no-such-command"], ENV)
    assert str(caught.value) == "cannot run stepup-no-such-command: No such file or directory"


def test_the_child_dies_of_sigpipe_as_it_would_from_a_shell() -> None:
    """Python ignores SIGPIPE; a child must not inherit that, or a pipeline would not stop when its
    reader does."""
    child = Child(["yes"], ENV, stderr=False)
    assert child.stdout is not None
    child.stdout.read(10)
    child.stdout.close()
    assert child.wait() == -signal.SIGPIPE


def test_a_group_kill_stops_every_process_of_a_pipeline() -> None:
    child = Child(["sh", "-c", "sleep 30 | sleep 30 & echo $!; wait"], ENV, stdin=True, new_session=True)
    assert child.stdout is not None
    inner = int(child.stdout.readline())
    assert _alive(inner)
    child.kill(group=True)
    assert child.wait() == -signal.SIGKILL
    for _ in range(100):
        if not _alive(inner):
            break
        time.sleep(0.02)
    assert not _alive(inner)
    child.close()


def test_a_deadline_during_run_kills_and_reaps_the_child(deadline: None) -> None:
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    with pytest.raises(_Deadline):
        run(["sleep", "30"], ENV)
    assert time.monotonic() - started < 10
    assert _children("sleep") == []  # neither running nor a zombie: killed and waited for


def _children(command: str) -> list[tuple[int, str]]:
    """(pid, state) of this process's children running ``command``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if comm == command and int(ppid) == os.getpid():
            found.append((int(stat.parent.name), state))
    return found


def test_children_are_seen_while_they_run() -> None:
    """The check above can see a child: one started here is listed until it is waited for."""
    child = Child(["sleep", "30"], ENV, stdout=False, stderr=False)
    assert [pid for pid, _ in _children("sleep")] == [child.pid]
    child.kill()
    child.wait()
    assert _children("sleep") == []


def test_run_feeds_large_input_while_reading_large_output() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB: far more than a pipe holds, in both directions
    code, out, err = run(["cat"], ENV, data)
    assert (code, out == data, err) == (0, True, b"")


def test_run_survives_a_command_that_does_not_read_its_input() -> None:
    code, out, _ = run(["sh", "-c", "echo done"], ENV, b"x" * 1_000_000)
    assert (code, out) == (0, b"done\n")
