"""The paths that differ between two trees, with gitlinks marked and names kept as bytes."""

from __future__ import annotations

from collections.abc import Iterator

import pygit2
from pygit2.enums import DiffOption, FileMode

_DIFF_FLAGS = DiffOption.SKIP_BINARY_CHECK  # only which entries differ is asked, never their content


def tree_changes(old: pygit2.Tree | None, new: pygit2.Tree | None) -> Iterator[tuple[str, bool]]:
    """(path, is a gitlink on either side) of each entry that differs between two trees (None: the
    empty tree). A name that is not UTF-8 keeps its bytes as surrogate escapes."""
    if old is None and new is None:
        return
    if old is None:
        assert new is not None
        diff = new.diff_to_tree(flags=_DIFF_FLAGS, swap=True)
    elif new is None:
        diff = old.diff_to_tree(flags=_DIFF_FLAGS)
    else:
        diff = old.diff_to_tree(new, flags=_DIFF_FLAGS)
    for delta in diff.deltas:
        gitlink = FileMode.COMMIT in (delta.old_file.mode, delta.new_file.mode)
        names = dict.fromkeys([delta.old_file.raw_path, delta.new_file.raw_path])
        for name in names:
            if name:
                yield name.decode("utf-8", errors="surrogateescape"), gitlink
