"""What the server's environment tells the hook and the command line: who pushes, and where the
server user's private cache is. Both are read at the edge and passed into the core as values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def shared_cache_dir(env: Mapping[str, str]) -> Path | None:
    """The server user's cache folder for what depends only on content (keyring homes, compiled path
    patterns), so a new repository does not build them again; None when there is no private one."""
    base = env.get("XDG_CACHE_HOME") or (str(Path(env["HOME"]) / ".cache") if env.get("HOME") else "")
    if not base or not os.path.isabs(base):
        return None
    path = Path(base) / "stepup-git"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022 or not os.access(path, os.W_OK | os.X_OK):
        return None  # not ours alone: keep everything in the repository's own folder
    return path


def pusher_from(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first set, non-empty variable of ``names`` (docs/semantics.md, "The pusher")."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None
