"""Fixtures for end-to-end tests with real git, gpg and ssh-keygen (see tests/support)."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import support
from support.keys import Gpg, People, make_people
from support.repos import Clone, MakeClone, Server

pytest_plugins = ["support.postgres"]  # one PostgreSQL server for the whole session: postgres_server, state_db


@pytest.fixture(autouse=True, scope="session")
def isolated_environment() -> Iterator[dict[str, str]]:
    """Run the whole session (and every subprocess, hooks included) in the isolated env."""
    env = support.isolated_env()
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name not in env:
                mp.delenv(name)
        for name, value in env.items():
            if os.environ.get(name) != value:
                mp.setenv(name, value)
        yield env
    support.cleanup()


@pytest.fixture(scope="session")
def people(isolated_environment: dict[str, str]) -> Iterator[People]:
    """Pre-made keys shared by the session: do not revoke them in `people.gpg`."""
    ssh_dir = Path(tempfile.mkdtemp(prefix="sgssh", dir="/tmp"))
    with Gpg() as gpg:
        yield make_people(gpg, ssh_dir)
    shutil.rmtree(ssh_dir, ignore_errors=True)


@pytest.fixture
def gpg(isolated_environment: dict[str, str]) -> Iterator[Gpg]:
    """A fresh, empty GnuPG home for this test (free to revoke keys in)."""
    with Gpg() as home:
        yield home


@pytest.fixture
def server(tmp_path: Path) -> Server:
    """A fresh bare repository; call `write_policy` and `install` to protect it."""
    return Server(tmp_path / "server")


@pytest.fixture
def make_clone(tmp_path: Path) -> MakeClone:
    """Factory: `make_clone(server)` returns a new working clone (dev1, dev2, ...)."""
    counter = itertools.count(1)

    def make(server: Server) -> Clone:
        return Clone(server, tmp_path / f"dev{next(counter)}")

    return make


@pytest.fixture
def clone(server: Server, make_clone: MakeClone) -> Clone:
    """A working clone of `server`."""
    return make_clone(server)
