"""Progress while a long push is judged: one counted line on stderr, rewritten in place as Git's own
remote progress is, then `, done.`; nothing for a push judged quickly (docs/semantics.md, "The hook")."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime

from support import run
from support.keys import People, key_toml
from support.repos import Clone, Server

from stepup_git import hook
from stepup_git.progress import LEAST, Progress

MANY = 600  # commits in the long push: more than two of the walk's progress steps of 256


class Clock:
    """The time a test says it is (the progress line reads a clock, as the hook reads one at its edge)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_shown_before_judging_has_taken_a_second() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, clock=clock)
    clock.now = 0.9
    progress.tick(256)
    progress.done()
    assert out.getvalue() == ""


def test_the_line_is_rewritten_in_place_and_ends_with_done() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, clock=clock)
    clock.now = 1.0
    progress.tick(256)
    clock.now = 1.1
    progress.tick(256)  # a quarter of a second has not passed: the line stays as it is
    clock.now = 1.4
    progress.tick(88)
    progress.done()
    progress.done()
    assert out.getvalue() == ("stepup-git: checking commits: 256\r"
                              "stepup-git: checking commits: 600\r"
                              "stepup-git: checking commits: 600, done.\n")


def _long_push(people: People, server: Server, clone: Clone, count: int = MANY) -> tuple[str, str]:
    """A server whose main holds a root, and MANY unsigned commits parked on a side branch that
    no rule vets, so that judging them as main's update walks them all."""
    server.write_policy(f'version = 1\n{key_toml(people.alice, "alice", "maintainer")}'
                        '[[rules]]\nname = "signed"\nrefs = ["refs/heads/main"]\nrequire = "signed"\n'
                        'tier = "maintainer"\n', {"alice.asc": people.alice.export()})
    root = clone.commit("root")
    assert clone.push("HEAD:main").ok  # before the hook: the root is the baseline
    server.install()
    script = []
    for n in range(count):
        message, content = f"work {n}", f"{n}\n"
        script += ["commit refs/heads/side", f"committer T <t@example.com> {1700000000 + n} +0000",
                   f"data {len(message)}", message, *([f"from {root}"] if n == 0 else []),
                   f"M 100644 inline f{n % 5}.txt", f"data {len(content)}", content]
    run(["git", "fast-import", "--quiet"], cwd=clone.path, input="\n".join(script) + "\n")
    assert clone.push("side:refs/heads/side").ok  # no rule covers side: accepted, and vets nothing for main
    return root, clone.rev("side")


def test_a_long_push_shows_its_progress_before_its_verdict(people: People, server: Server, clone: Clone) -> None:
    root, tip = _long_push(people, server, clone)
    out = io.StringIO()
    code = hook.main(f"{root} {tip} refs/heads/main\n".encode(), {**os.environ, "GIT_DIR": str(server.path)},
                     datetime.now(UTC), out=out, progress_after=0.0)
    assert code == 1
    progress, *verdict = out.getvalue().split("\n")
    assert progress.startswith("stepup-git: checking commits: 256\r")
    assert progress.endswith(f"\rstepup-git: checking commits: {MANY}, done.")
    assert verdict[0] == "stepup-git: push rejected: 1 of 1 update(s) fail the policy"


def test_a_push_of_few_commits_shows_no_progress_however_long_it_takes(
        people: People, server: Server, clone: Clone) -> None:
    root, tip = _long_push(people, server, clone, LEAST - 1)
    out = io.StringIO()
    code = hook.main(f"{root} {tip} refs/heads/main\n".encode(), {**os.environ, "GIT_DIR": str(server.path)},
                     datetime.now(UTC), out=out, progress_after=0.0)
    assert code == 1
    assert out.getvalue().split("\n")[0] == "stepup-git: push rejected: 1 of 1 update(s) fail the policy"


def test_a_small_push_that_waits_shows_no_progress() -> None:
    """A push of a few commits that waits (for a lock, a slow disk) is not a long push: no line."""
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, clock=clock)
    clock.now = 5.0
    progress.tick(1)
    progress.done()
    assert out.getvalue() == ""
