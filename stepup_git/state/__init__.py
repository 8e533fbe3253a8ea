"""State shared by several servers of one repository (SPEC §11): the push certificate replay store and
the audit chain in PostgreSQL (:mod:`.postgres`), and moving a repository's local state there
(:mod:`.migrate`). Local files stay the default: importing this package does not import psycopg, and
nothing here is imported unless ``settings.state`` names a database.
"""

from __future__ import annotations


def names_database(setting: str | None) -> bool:
    """Whether a ``state`` setting names a database (an empty or missing one keeps local files)."""
    return bool(setting and setting.strip())
