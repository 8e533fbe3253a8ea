"""``stepup-git state migrate``: move a repository's local audit log and replay store into the database
its policy names (docs/servers.md); and, for the other commands, where a repository's shared state is."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..audit import default_log, git_dir_of
from ..errors import UsageError

if TYPE_CHECKING:
    from ..policy import Settings
    from ..state.database import Database


@dataclass(frozen=True, slots=True)
class SharedState:
    """A repository whose policy names a state database: the database, the name the repository has
    there (as the hook names it), its git dir and the policy's settings."""

    db: Database
    name: str
    git_dir: Path
    settings: Settings


def shared_state(repo: Path) -> SharedState | None:
    """The state database of the repository ``repo`` (a bare repository or a working tree), or None
    when its policy keeps local files (or it has none). ``PolicyError`` when its policy cannot load."""
    from ..git import Repo
    from ..policy import configured_policy_path, load
    from ..state import names_database, repository_name

    opened = Repo(str(git_dir_of(repo)), env=os.environ)
    try:
        git_dir = Path(opened.path)  # as the hook sees it: the path resolved
        policy_file = configured_policy_path(git_dir, opened.config("stepup.policy"))
    finally:
        opened.close()
    if policy_file is None:
        return None
    settings = load(policy_file).settings
    if not names_database(settings.state):
        return None
    from ..state.database import Database

    assert settings.state is not None
    db = Database(settings.state, deadline=time.monotonic() + settings.timeout.total_seconds())
    return SharedState(db, repository_name(settings.repository, git_dir), git_dir, settings)


def _migrate(args: argparse.Namespace) -> int:
    from ..state.migrate import migrate

    state = shared_state(Path(args.repo))
    if state is None:
        raise UsageError(f"the policy of {args.repo} names no state database (settings.state); "
                         "there is nowhere to move its state")
    log_path = state.settings.audit_log or default_log(state.git_dir)
    replay_path = state.git_dir / "stepup" / "push-certs.sqlite"
    with state.db:
        moved = migrate(state.db, state.name, log_path=log_path, replay_path=replay_path)
    print(f"moved the state of {state.name} into the state database {state.db.target}")
    ending = f"; the chain ends in {moved.head[:12]}…" if moved.head else ""
    print(f"  audit log {log_path}: {moved.copied} of {moved.records} record(s) copied{ending}")
    print(f"  replay store {replay_path}: {moved.certificates} push certificate(s) copied")
    print("  the local files are left as they were; the hook now reads and writes the database")
    return 0


def register(sub: Any) -> None:
    state = sub.add_parser("state", help="the state several servers share (settings.state)")
    commands = state.add_subparsers(dest="state_command", required=True, metavar="{migrate}")
    migrate = commands.add_parser("migrate", help="move a repository's local audit log and replay store into "
                                                  "the database its policy names")
    migrate.add_argument("--repo", required=True, metavar="R", help="the repository")
    migrate.set_defaults(func=_migrate)
