"""The git adapter: the only package that imports pygit2 (:mod:`.repository`, its :mod:`.objects` and
:mod:`.refs`), the hook's input (:mod:`.updates`) and what a Git signature signs (:mod:`.payloads`)."""

from .payloads import split_commit, split_tag
from .refs import BASELINE
from .refusals import ForeignRepository, UnsupportedRepository, sha256_refusal
from .repository import Repo
from .updates import parse_updates

__all__ = ["BASELINE", "ForeignRepository", "Repo", "UnsupportedRepository", "parse_updates", "sha256_refusal",
           "split_commit", "split_tag"]
