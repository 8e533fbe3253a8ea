"""The judge reads its repository through the `Repository` protocol only: the git adapter is one
implementation (checked by the type checker below), and the judge's steps can be read and tried on
another, such as a few commits held in memory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from stepup_git.git import Repo
from stepup_git.judge import Context, Judge
from stepup_git.model import SignedObject, Update
from stepup_git.policy import load
from stepup_git.protocols import Repository
from stepup_git.signatures import Keyring, Verified

POLICY = """version = 1

[tiers]
order = ["contributor"]

[[rules]]
name = "migrations-signed"
paths = ["db/migrations/**"]
require = "signed"
tier = "contributor"

[[rules]]
name = "main-kept"
refs = ["refs/heads/main"]
on = ["delete"]
require = "deny"
"""


def _conforms(repo: Repo) -> Repository:
    return repo  # the type checker proves that the git adapter is a Repository


class Commits:
    """Unsigned commits in memory: id -> (first parent, the paths it changes)."""

    def __init__(self, commits: dict[str, tuple[str | None, tuple[str, ...]]]) -> None:
        self.commits = commits

    def _history(self, oid: str | None) -> Iterator[str]:
        while oid is not None:
            yield oid
            oid = self.commits[oid][0]

    def action(self, update: Update) -> str:
        if update.old is None:
            return "create"
        if update.new is None:
            return "delete"
        return "update" if update.old in self._history(update.new) else "force-push"

    def refs(self) -> list[tuple[str, str]]:
        return []

    def ref_target(self, name: str) -> str | None:
        return None

    def baseline(self) -> list[str]:
        return []

    def added_commits(self, update: Update, vetted: Sequence[str]) -> Iterator[str]:
        stop = {*vetted, *([update.old] if update.old else [])}
        for oid in self._history(update.new):
            if oid in stop:
                return
            yield oid

    def changed_paths(self, update: Update, vetted: Sequence[str]) -> Iterator[tuple[str, bool]]:
        for oid in self.added_commits(update, vetted):
            for path in self.commits[oid][1]:
                yield path, False

    def type_of(self, oid: str) -> str:
        return "commit"

    def peel_commit(self, oid: str | None) -> str | None:
        return oid

    def first_parent(self, oid: str) -> str | None:
        return self.commits[oid][0] if oid in self.commits else None

    def signed_object(self, oid: str) -> SignedObject | None:
        return SignedObject(oid, "commit", None, f"commit {oid}\n".encode())

    def signed_objects(self, oids: Sequence[str]) -> list[SignedObject | None]:
        return [self.signed_object(oid) for oid in oids]

    def tag_info(self, oid: str) -> tuple[str, str, str]:
        raise AssertionError("no tags here")


class Unsigned:
    def verified(self, obj: SignedObject) -> Verified | None:
        return None

    def verified_many(self, oids: Sequence[str], load: object) -> list[Verified | None]:
        return [None] * len(oids)


def test_the_judge_works_on_any_repository(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(POLICY)
    (tmp_path / "keys").mkdir()
    policy = load(tmp_path / "policy.toml")
    repo = Commits({"a" * 40: (None, ("README",)), "b" * 40: ("a" * 40, ("db/migrations/1.sql",)),
                    "c" * 40: ("b" * 40, ("src/app.py",))})
    judge = Judge(policy, repo, Keyring(tmp_path, "0" * 64, {}, tmp_path / "keys"), Unsigned(),
                  Context(datetime(2026, 1, 1, tzinfo=UTC), "alice"))
    touched, untouched, deleted = judge.judge([Update("a" * 40, "c" * 40, "refs/heads/main"),
                                               Update("b" * 40, "c" * 40, "refs/heads/main"),
                                               Update("c" * 40, None, "refs/heads/main")])
    assert (touched.action, touched.allowed) == ("update", False)
    (result,) = touched.results
    assert (result.rule, result.path, result.reason) == (
        "migrations-signed", "db/migrations/1.sql", "2 of 2 new commit(s) not signed as required")
    assert (untouched.allowed, untouched.results, untouched.notes) == (True, (), ())
    assert (deleted.action, deleted.allowed, [r.rule for r in deleted.results]) == ("delete", False, ["main-kept"])
