"""State shared by several servers of one repository (docs/servers.md): the push certificate replay store
(:mod:`.replay`) and the audit chain (:mod:`.chain`) in PostgreSQL, over the connection of :mod:`.database`,
and moving a repository's local state there (:mod:`.migrate`). Local files stay the default: importing
this package does not import psycopg, and nothing here is imported unless ``settings.state`` names a
database.
"""

from __future__ import annotations

from pathlib import Path


def names_database(setting: str | None) -> bool:
    """Whether a ``state`` setting names a database (an empty or missing one keeps local files)."""
    return bool(setting and setting.strip())


def setting_problem(setting: str) -> str | None:
    """What is wrong with a policy's ``state`` setting (for ``PATH:LINE: message``), or None."""
    if not names_database(setting):
        return "state must name a database (a libpq connection string, postgresql:// URI or service name); " \
               "leave it out to keep the state in local files"
    from .database import setting_problem as libpq_problem

    return libpq_problem(setting)


def repository_name(configured: str | None, git_dir: Path) -> str:
    """The name a repository's state has in the database: ``settings.repository``, else its git dir's
    path, the same on every replica that serves it at the same path (never an inode or a made-up id)."""
    return configured or str(git_dir)
