"""The client ``pre-push`` hook: predict the server's verdict before the push leaves.

Installed with ``stepup-git install --client [REPO] --policy FILE [--strict]``. It judges each pushed
update in the local clone with the same policy the server uses. The prediction can differ from the
server's: the clone may not know the server's default branch, and whether this push will carry a push
certificate (``git push --signed``) is not visible to a pre-push hook, so such proofs are assumed
absent and said so. By default it only prints; with ``stepup.clientStrict`` it stops a push that would
be rejected (``git push --no-verify`` skips it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TextIO

from . import policy as policy_mod
from .environment import shared_cache_dir
from .errors import StepupError
from .evaluate import Session
from .git import Repo
from .model import Update
from .render import render


def main(argv: list[str], stdin: str, env: Mapping[str, str], now: datetime, out: TextIO) -> int:
    """``argv``: the remote's name and address, as Git passes them; ``stdin``, ``env`` and ``now`` as
    read at the hook's edge."""
    text = stdin
    strict = False
    try:
        repo = Repo(env.get("GIT_DIR") or ".", env=env, remote=argv[0] if argv else None)
        git_dir = Path(repo.path)
        strict = (repo.config("stepup.clientStrict") or "").lower() in ("true", "yes", "on", "1")
        policy_file = policy_mod.configured_policy_path(git_dir, repo.config("stepup.policy"))
        if policy_file is None:
            raise StepupError("no stepup.policy configured in this clone")
        policy = policy_mod.load(policy_file)
        updates = []
        for line in text.split("\n"):
            parts = line.split()
            if len(parts) != 4:
                continue
            _, local, remote_ref, remote = parts
            updates.append(Update.from_ids(remote, local, remote_ref))
        if not updates:
            return 0
        pusher = env.get("STEPUP_PUSHER") or repo.config("stepup.pusher")
        session = Session.open(policy, repo, git_dir / "stepup", now=now, shared_dir=shared_cache_dir(env))
        verdicts = session.judge(updates, now=now, pusher=pusher)
    except StepupError as exc:
        print(f"stepup-git (pre-push): cannot predict the server's verdict: {exc}", file=out)
        return 1 if strict else 0
    if all(v.allowed for v in verdicts):
        return 0
    lines = render(verdicts, mode="enforce", style="pre-push")
    for line in lines:
        print(line, file=out)
    print("stepup-git (pre-push): a push certificate (git push --signed) is not visible here; if you pushed with "
          "--signed, the server may accept what is predicted to fail above", file=out)
    if strict:
        print("stepup-git (pre-push): push stopped (stepup.clientStrict); git push --no-verify skips this check",
              file=out)
        return 1
    return 0
