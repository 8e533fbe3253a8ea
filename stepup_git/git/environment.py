"""How libgit2 is set up for one run: the object directories a hook's environment adds (Git's
quarantine and alternates), memory bounds, and the user's configuration found through the given
environment, never the process's."""

from __future__ import annotations

import codecs
import os
from collections.abc import Mapping

import pygit2
from pygit2.enums import ConfigLevel

# Bounded memory whatever the push's size: libgit2 maps pack files in windows of up to 1 GiB (8 GiB
# in all) and caches up to 256 MiB of objects by default; mapped pages count as the hook's memory. Each
# object is read once or twice in a row (walk, then signature), so a small cache hits as often as a big
# one (measured in bench/README.md).
LIMITS = {"mwindow_size": 8 << 20, "mwindow_mapped_limit": 16 << 20, "cache_max_size": 4 << 20}


def quarantine_dirs(env: Mapping[str, str]) -> list[str]:
    """The object directories a hook's environment adds to the repository's: the quarantine and the
    alternates Git passes along (``GIT_ALTERNATE_OBJECT_DIRECTORIES``, colon-separated, an entry in
    double quotes when it holds a colon)."""
    found = [env.get("GIT_OBJECT_DIRECTORY", ""), env.get("GIT_QUARANTINE_PATH", "")]
    rest = env.get("GIT_ALTERNATE_OBJECT_DIRECTORIES", "")
    while rest:
        if rest.startswith('"'):
            end = 1
            while end < len(rest) and (rest[end] != '"' or rest[end - 1] == "\\"):
                end += 1
            quoted, rest = rest[1:end], rest[end + 1 :].removeprefix(":")
            found.append(codecs.escape_decode(quoted.encode("utf-8", errors="surrogateescape"))[0]
                         .decode("utf-8", errors="surrogateescape"))
        else:
            entry, _, rest = rest.partition(":")
            found.append(entry)
    return [os.path.abspath(d) for d in dict.fromkeys(found) if d and os.path.isdir(d)]


def configure_libgit2(env: Mapping[str, str]) -> None:
    """Process-wide libgit2 settings: memory bounds, and the user's global configuration found through
    the given environment, not the process's."""
    settings = pygit2.settings
    settings.mwindow_size = LIMITS["mwindow_size"]
    settings.mwindow_mapped_limit = LIMITS["mwindow_mapped_limit"]
    settings.cache_max_size(LIMITS["cache_max_size"])
    home = env.get("HOME", "")
    xdg = env.get("XDG_CONFIG_HOME") or (os.path.join(home, ".config") if home else "")
    settings.search_path[ConfigLevel.GLOBAL] = home
    settings.search_path[ConfigLevel.XDG] = os.path.join(xdg, "git") if xdg else ""
