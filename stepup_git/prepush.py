"""The client ``pre-push`` hook: predict the server's verdict before the push leaves.

Installed with ``stepup-git install --client [REPO] --policy FILE [--strict]``. It judges each pushed
update in the local clone with the same policy the server uses. The prediction can differ from the
server's: the clone may not know the server's default branch, and whether this push will carry a push
certificate (``git push --signed``) is not visible to a pre-push hook, so such proofs are assumed
absent and said so. By default it only prints; with ``stepup.clientStrict`` it stops a push that would
be rejected (``git push --no-verify`` skips it).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from . import policy as policy_mod
from .errors import StepupError
from .evaluate import Session
from .findings import render
from .gitrepo import Repo, Update
from .hook import shared_cache_dir

ZERO = {"0" * 40, "0" * 64}


def main(argv: list[str], stdin: str | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stderr
    text = sys.stdin.read() if stdin is None else stdin
    strict = False
    try:
        repo = Repo(os.environ.get("GIT_DIR") or ".", env=os.environ, remote=argv[0] if argv else None)
        git_dir = Path(repo.path)
        strict = (repo.config("stepup.clientStrict") or "").lower() in ("true", "yes", "on", "1")
        policy_file = policy_mod.configured_policy_path(git_dir, repo.config("stepup.policy"))
        if policy_file is None:
            raise StepupError("no stepup.policy configured in this clone")
        policy = policy_mod.load(policy_file)
        updates = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 4:
                continue
            _, local, remote_ref, remote = parts
            updates.append(Update(None if remote in ZERO else remote, None if local in ZERO else local, remote_ref))
        if not updates:
            return 0
        pusher = os.environ.get("STEPUP_PUSHER") or repo.config("stepup.pusher")
        now = datetime.now(UTC)
        session = Session.open(policy, repo, git_dir / "stepup", now=now, shared_dir=shared_cache_dir(os.environ))
        verdicts = session.judge(updates, now=now, pusher=pusher)
    except StepupError as exc:
        print(f"stepup-git (pre-push): cannot predict the server's verdict: {exc}", file=out)
        return 1 if strict else 0
    if all(v.allowed for v in verdicts):
        return 0
    lines = render(verdicts, mode="enforce")
    lines[0] = lines[0].replace("stepup-git: push rejected:", "stepup-git (pre-push): the server will likely reject:")
    for line in lines:
        print(line, file=out)
    print("stepup-git (pre-push): a push certificate (git push --signed) is not visible here; if you pushed with "
          "--signed, the server may accept what is predicted to fail above", file=out)
    if strict:
        print("stepup-git (pre-push): push stopped (stepup.clientStrict); git push --no-verify skips this check",
              file=out)
        return 1
    return 0
