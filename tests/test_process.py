"""`stepup_git.process.run`: an outside program that is missing, hangs or fails is one line of the caller's error."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from stepup_git.errors import SignatureError, StepupError, UsageError
from stepup_git.process import run

PY = sys.executable


def test_output_and_exit_status_are_returned() -> None:
    proc = run([PY, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"], input=b"abc", timeout=30)
    assert (proc.returncode, proc.stdout) == (0, b"ABC")


def test_the_environment_is_the_one_given() -> None:
    proc = run([PY, "-c", "import os; print(os.environ.get('ONLY'))"], env={"ONLY": "this"}, timeout=30)
    assert proc.stdout.split() == [b"this"]


def test_a_program_that_does_not_answer_in_time_is_killed_and_one_line() -> None:
    started = time.monotonic()
    with pytest.raises(SignatureError) as caught:
        run([PY, "-c", "import time; time.sleep(60)"], timeout=0.5, error=SignatureError, name="gpg")
    assert time.monotonic() - started < 30
    assert str(caught.value) == "gpg did not answer within 0.5s"


def test_a_missing_program_is_one_line_with_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        run([str(tmp_path / "gitolite"), "query-rc"], timeout=30, error=UsageError, install_hint="Debian: gitolite3",
            name="gitolite query-rc")
    assert str(caught.value) == "gitolite is not installed on the server (Debian: gitolite3)"


def test_a_program_that_cannot_be_started_is_one_line(tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o644)  # not executable
    with pytest.raises(StepupError) as caught:
        run([str(tool)], timeout=30)
    assert str(caught.value) == "cannot run tool: Permission denied"


def test_a_failing_exit_status_is_one_line_quoting_its_error_output() -> None:
    script = "import sys; sys.stderr.write('first\\n  second\\n'); sys.exit(3)"
    with pytest.raises(SignatureError) as caught:
        run([PY, "-c", script], timeout=30, error=SignatureError, name="ssh-keygen")
    assert str(caught.value) == "ssh-keygen failed (exit status 3): first second"


def test_exit_statuses_the_caller_accepts_are_returned() -> None:
    fail = [PY, "-c", "import sys; sys.exit(2)"]
    assert run(fail, timeout=30, ok=(0, 2)).returncode == 2
    assert run(fail, timeout=30, ok=None).returncode == 2
    with pytest.raises(StepupError, match=r"failed \(exit status 2\)$"):
        run(fail, timeout=30)
