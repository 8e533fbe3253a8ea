"""The client ``pre-push`` hook: predict the server's verdict before the push leaves.

Installed with ``stepup-git install --client [REPO] --policy FILE [--strict]``. It judges each pushed
update in the local clone with the same policy the server uses. Git does not tell a pre-push hook
whether the push is signed, so the hook reads the command line of the ``git push`` that runs it
(``/proc/<pid>/cmdline`` of the nearest ``git`` process above it) and ``push.gpgSign``; a signed push is
predicted with the certificate ``user.signingkey`` will sign (:mod:`stepup_git.proofs.predicted`).
The prediction can still differ from the server's: the clone may not know the server's default
branch, nor always whether or by which key the push is signed. By default it only prints; with
``stepup.clientStrict`` it stops a push that would be rejected (``git push --no-verify`` skips it), but
never one the server may accept because of a certificate the hook cannot see: it says what it assumed.
When no pusher is configured (``STEPUP_PUSHER``, ``git config stepup.pusher``), the owner of the key
that signs the push is taken for the pusher.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from . import policy as policy_mod
from .environment import shared_cache_dir
from .errors import StepupError
from .evaluate import Session
from .git import Repo
from .model import Update, Verdict
from .policy import Policy
from .proofs.predicted import PredictedCertificate, Signing, push_signing, signing_key
from .render import render
from .text import COLUMNS, wrap

PREFIX = "stepup-git (pre-push)"
STOPPED = f"{PREFIX}: push stopped (stepup.clientStrict); git push --no-verify skips this check"
NOT_STOPPED = f"{PREFIX}: not stopped (stepup.clientStrict): the server may accept this push; it decides"


def main(argv: list[str], stdin: str, env: Mapping[str, str], now: datetime, out: TextIO, *,
         command: Sequence[str] | None = None) -> int:
    """``argv``: the remote's name and address, as Git passes them; ``stdin``, ``env`` and ``now`` as
    read at the hook's edge; ``command``: the ``git push`` command line (default: read here, see
    :func:`git_push_command`)."""
    strict = False
    try:
        repo = _open(argv, env)
        strict = (repo.config("stepup.clientStrict") or "").lower() in ("true", "yes", "on", "1")
        policy_file = policy_mod.configured_policy_path(Path(repo.path), repo.config("stepup.policy"))
        if policy_file is None:
            raise StepupError("no stepup.policy configured in this clone")
        policy = policy_mod.load(policy_file)
        updates = [Update.from_ids(parts[3], parts[1], parts[2])
                   for line in stdin.split("\n") if len(parts := line.split()) == 4]
        if not updates:
            return 0
        signing = push_signing(command if command is not None else git_push_command(os.getppid()), repo.config)
        pusher = env.get("STEPUP_PUSHER") or repo.config("stepup.pusher")
        session = _session(policy, repo, env, now)
        certificate: PredictedCertificate | None = None
        key_unknown = ""
        if signing.signs is not False:
            key = signing_key(repo.config, session.keyring, env, now)
            if isinstance(key, str):
                key_unknown = key
            else:
                said = signing if signing.signs else Signing(True, "assumed git push --signed")
                certificate = PredictedCertificate(key, said, policy, session.keyring, now)
        lines, stop = _predict(updates, signing, certificate, key_unknown, policy, repo, session, argv, env, now,
                               pusher)
    except StepupError as exc:
        _say(f"{PREFIX}: cannot predict the server's verdict: {exc}", out)
        return 1 if strict else 0
    for line in lines:
        _say(line, out)
    if not lines or not strict:
        return 0
    _say(STOPPED if stop else NOT_STOPPED, out)
    return 1 if stop else 0


def _say(line: str, out: TextIO) -> None:
    """Print a line; the hook's own notes wrap as the findings do, continued under their text."""
    if line.startswith(f"{PREFIX}: ") and len(line) > COLUMNS:
        head = f"{PREFIX}: "
        for part in wrap(line[len(head):], head, " " * len(head)):
            print(part, file=out)
    else:
        print(line, file=out)


def _predict(updates: list[Update], signing: Signing, certificate: PredictedCertificate | None, key_unknown: str,
             policy: Policy, repo: Repo, session: Session, argv: list[str], env: Mapping[str, str],
             now: datetime, pusher: str | None) -> tuple[list[str], bool]:
    """The lines to print (none: the server will likely accept) and whether a strict hook stops the push."""
    signer = certificate.owner if certificate is not None else None
    if signing.signs and certificate is not None:
        verdicts = session.judge(updates, now=now, pusher=pusher or signer, push_cert=certificate)
        if _allowed(verdicts):
            return [], False
        return [*_render(verdicts), f"{PREFIX}: predicted with the push certificate this push carries: "
                f"{certificate.assessment.found} ({signing.why})"], True
    verdicts = session.judge(updates, now=now, pusher=pusher)
    if _allowed(verdicts):
        return [], False
    lines = _render(verdicts)
    if signing.signs is False:
        return [*lines, f"{PREFIX}: predicted without a push certificate: this push is not signed "
                f"({signing.why})"], True
    if signing.signs:
        return [*lines, f"{PREFIX}: this push is signed ({signing.why}), but which key signs it cannot be told "
                f"here ({key_unknown}); predicted without its certificate, so the server may accept what is "
                "predicted to fail above"], False
    unknown = f"{PREFIX}: whether this push is signed cannot be told here ({signing.why})"
    if certificate is None:
        return [*lines, f"{unknown}; predicted without a push certificate, so if it is signed the server may "
                "accept what is predicted to fail above"], False
    # It cannot be told whether the push is signed: judged again as signed, the server may accept it.
    signed = _session(policy, _open(argv, env), env, now).judge(updates, now=now, pusher=pusher or signer,
                                                               push_cert=certificate)
    found = certificate.assessment.found
    if _allowed(signed):
        return [*lines, f"{unknown}; signed (git push --signed), with a push certificate {found}, the server "
                "would accept it"], False
    return [*_render(signed), f"{unknown}; predicted with a push certificate {found} all the same, and the "
            "server would still reject it"], True


def _open(argv: list[str], env: Mapping[str, str]) -> Repo:
    return Repo(env.get("GIT_DIR") or ".", env=env, remote=argv[0] if argv else None)


def _session(policy: Policy, repo: Repo, env: Mapping[str, str], now: datetime) -> Session:
    return Session.open(policy, repo, Path(repo.path) / "stepup", now=now, shared_dir=shared_cache_dir(env))


def _allowed(verdicts: list[Verdict]) -> bool:
    return all(v.allowed for v in verdicts)


def _render(verdicts: list[Verdict]) -> list[str]:
    return render(verdicts, mode="enforce", style="pre-push")


def git_push_command(pid: int, *, proc: Path = Path("/proc"), depth: int = 4) -> list[str] | None:
    """The command line of the nearest ``git`` process at or above ``pid`` (the hook's parent: the
    launcher ``exec``s Python, and a hook wrapper may sit between), or None where it cannot be read."""
    for _ in range(depth):
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:
            return None
        command = [word.decode("utf-8", errors="surrogateescape") for word in raw.split(b"\0")[:-1]]
        if command and os.path.basename(command[0]) in ("git", "git-push"):
            return command
        fields = stat.rpartition(")")[2].split()
        if len(fields) < 2 or not fields[1].isdigit() or int(fields[1]) <= 1:
            return None
        pid = int(fields[1])
    return None
