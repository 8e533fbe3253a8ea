"""The starter policy that ``stepup-git policy init`` writes (README.md, "Commands"): commented, small,
in audit mode, with a ``[[keys]]`` entry for each key file given.

The keys are added as ``stepup-git keys add`` adds them (:func:`~stepup_git.policy.keys.add_key`, with
its checks and key file names), to a copy of the policy in a scratch folder; the caller writes the text
and the keyring files where they belong. Every key gets tier ``maintainer``; its ``owner`` is taken from
the key: an OpenPGP user ID's e-mail (the part before ``@``) or name, an SSH key's comment (the part
before ``@``) or its file name.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import StepupError
from .check import check_policy
from .keyfiles import read_openpgp, read_ssh_file
from .keys import add_key
from .model import parse_ssh_key

TIER = "maintainer"
KEYRING = "keys"

STARTER = """\
# stepup-git starter policy, written by `stepup-git policy init`.
#
# Check it with:   stepup-git policy check @POLICY@
# Install it with: stepup-git install /srv/git/app.git --policy @POLICY@
# Developers predict the server's verdict before pushing with:
#                  stepup-git install --client CLONE --policy @POLICY@
#
# It starts in audit mode: a push that fails a rule below is accepted with a WARNING and recorded
# with decision "warn" in the audit log. Once the warnings are understood, set mode = "enforce"
# (or run `stepup-git install REPO --mode enforce`): the same pushes are then rejected.
# Everything no rule mentions is allowed (and still recorded). A fuller example: policies/example.toml.
version = 1

[settings]
mode = "audit"
# How recent a step-up proof must be: a signed push (git push --signed) or a tip signed this recently.
fresh_within = "15m"
# The folder of public keys, relative to this file: every OpenPGP key below must be in it.
keyring = "keys"

[tiers]
# Lowest first: a key satisfies a requirement of its own tier or any lower one.
order = ["contributor", "maintainer"]

# The people's keys, each of tier maintainer. `owner` must be the name the server gives the pusher
# (STEPUP_PUSHER, GL_USERNAME, GITEA_PUSHER_NAME, GL_USER, GITHUB_USER_LOGIN, REMOTE_USER): it was
# taken from each key's user ID or comment, so check it. Add more with:
#   stepup-git keys add --policy @POLICY@ --key KEY.asc --owner NAME --tier contributor

# Every new commit on main is signed by a key of this policy, of any tier.
[[rules]]
name = "main-signed"
refs = ["refs/heads/main"]
require = "signed"
tier = "contributor"

# Rewriting main's history needs a fresh proof by a maintainer: git push --signed --force.
[[rules]]
name = "main-force-push-step-up"
refs = ["refs/heads/main"]
on = ["force-push"]
require = "step-up"
tier = "maintainer"

# So does deleting a branch: deleting one and creating it again at an old commit rolls it back.
[[rules]]
name = "branch-delete-step-up"
refs = ["refs/heads/**"]
on = ["delete"]
require = "step-up"
tier = "maintainer"

# Replace refs make tools that read through git see one object for another: refuse them.
[[rules]]
name = "no-replace-refs"
refs = ["refs/replace/**"]
require = "deny"

# To guard paths on every branch, e.g. database migrations, with a fresh maintainer proof:
# [[rules]]
# name = "migrations-step-up"
# refs = ["refs/heads/**"]
# paths = ["db/migrations/**"]
# require = "step-up"
# tier = "maintainer"
"""


@dataclass(frozen=True, slots=True)
class StarterKey:
    owner: str
    kind: str  # "openpgp" or "ssh"
    id: str  # the OpenPGP fingerprint or the SSH key's SHA256: id
    file: str  # its file name in the keyring folder


@dataclass(frozen=True, slots=True)
class Starter:
    text: str
    keys: tuple[StarterKey, ...]
    files: dict[str, bytes]  # the keyring folder's files, by name
    warnings: tuple[str, ...]  # what `policy check` would warn of (none once a key is given)


def starter_policy(key_files: Sequence[Path], *, name: str = "policy.toml") -> Starter:
    """The starter policy (``name``: how its comments call the file) with a key of tier maintainer for
    each of ``key_files``: ``.pub`` files are SSH public keys, any other an OpenPGP public key."""
    scratch = Path(tempfile.mkdtemp(prefix="stepup-init-"))
    try:
        policy = scratch / "policy.toml"
        policy.write_text(STARTER.replace("@POLICY@", name), encoding="utf-8")
        before: set[str] = set()
        keys = []
        for path in key_files:
            if path.suffix == ".pub":
                line = read_ssh_file(path)
                try:
                    key_id = parse_ssh_key(line)[1]
                except ValueError as exc:
                    raise StepupError(f"{path}: {exc}") from None
                owner = _owner(line.split()[2] if len(line.split()) > 2 else "", path.stem)
                add_key(policy, owner=owner, tier=TIER, ssh_file=path)
                kind = "ssh"
            else:
                shown, _ = read_openpgp(path)
                key_id = shown.fingerprint
                owner = _owner(shown.uids[0] if shown.uids else "", f"key-{key_id[-8:].lower()}")
                add_key(policy, owner=owner, tier=TIER, key_file=path)
                kind = "openpgp"
            folder = scratch / KEYRING
            (added,) = {p.name for p in folder.iterdir()} - before
            before.add(added)
            keys.append(StarterKey(owner, kind, key_id, added))
        _, warnings = check_policy(policy)
        files = {p.name: p.read_bytes() for p in sorted((scratch / KEYRING).glob("*"))}
        text = policy.read_text(encoding="utf-8")
        return Starter(text, tuple(keys), files,
                       tuple(w.replace(f"{policy}:", f"{name}:") for w in warnings))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _owner(text: str, fallback: str) -> str:
    """The pusher name a user ID (``Alice Liddell <alice@example.com>``) or an SSH key comment
    (``alice@laptop``) suggests: the e-mail's local part, else the name's first word, lower-cased."""
    email = re.search(r"<([^@<>\s]+)@", text) or re.match(r"([^@<>\s]+)@", text.strip())
    if email:
        return email.group(1).lower()
    word = re.match(r"[A-Za-z0-9_.-]+", text.strip())
    return word.group(0).lower() if word else fallback
