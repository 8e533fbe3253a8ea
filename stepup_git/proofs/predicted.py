"""The push certificate a client's ``git push`` is about to send, as the ``pre-push`` hook predicts it
(docs/semantics.md, "Dry runs").

Git tells a pre-push hook nothing about ``--signed``: no variable, no argument. What can be told:

1. **Whether the push is signed.** The command line of the ``git push`` that runs the hook (read by the
   hook's edge, :mod:`stepup_git.prepush`, from ``/proc``) with ``--signed``, ``--signed=VALUE`` or
   ``--no-signed``; else the configuration ``push.gpgSign`` (``true`` or ``if-asked``: a stepup-git
   server asks, since ``install`` gives it a nonce seed). ``-c push.gpgSign=...`` reaches the hook in
   ``GIT_CONFIG_PARAMETERS``, which the configuration read honours. Without a readable command line
   and without ``push.gpgSign``, it cannot be told.
2. **Which key signs it.** ``user.signingkey`` as Git passes it to ``gpg -u`` (a fingerprint, a key id, a
   user ID; unset: the committer's e-mail) looked up in the policy keyring, or, with ``gpg.format =
   ssh``, the public key it names. A key the policy keyring does not hold at all is no policy key; a
   user ID that no policy key carries, several keys matching, an SSH certificate or a key chosen by
   ``gpg.ssh.defaultKeyCommand`` cannot be told.
3. **What the server makes of it.** The key is assessed as the server assesses a verified certificate
   (:func:`~stepup_git.signatures.assess`: the policy's key, its tier, expiry and revocation), made now
   and bound to the server's nonce, so fresh by construction, and listing every update of the push.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ..model import Update
from ..policy import Policy, parse_ssh_key
from ..signatures import Assessment, Keyring, Verified, assess

Config = Callable[[str], str | None]

# git's global options that take the next word as their value (git.c, handle_options)
_GLOBAL_VALUE = {"-c", "-C", "--git-dir", "--work-tree", "--namespace", "--config-env", "--super-prefix"}
# git push's long options (builtin/push.c): an unambiguous prefix names one, as parse-options allows
_PUSH_LONG = ("all", "branches", "mirror", "delete", "tags", "dry-run", "porcelain", "force", "force-with-lease",
              "force-if-includes", "recurse-submodules", "thin", "receive-pack", "exec", "set-upstream",
              "progress", "prune", "verify", "follow-tags", "signed", "atomic", "push-option", "ipv4", "ipv6",
              "quiet", "verbose", "repo")
_PUSH_LONG_VALUE = {"receive-pack", "exec", "repo", "push-option", "recurse-submodules"}
_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off", "")


@dataclass(frozen=True, slots=True)
class Signing:
    """Whether the push carries a push certificate: True, False, or None when it cannot be told; ``why``
    says how it was told (``git push --signed``, ``push.gpgSign = if-asked``) or why it cannot be."""

    signs: bool | None
    why: str


def push_signing(command: Sequence[str] | None, config: Config) -> Signing:
    """Step 1: from the ``git push`` command line (None: unreadable) and the configuration."""
    if command is not None and _push_arguments(command) is None:
        return Signing(None, f"the hook was not run by git push but by {' '.join(command)[:80]!r}")
    option = _signed_option(command) if command is not None else None
    if option is not None:
        return _signed_value(*option)
    value = config("push.gpgSign")
    if value is not None:
        signing = _signed_value(f"push.gpgSign = {value}", value)
        if signing.signs is not False or command is not None:  # unseen, a --no-signed could still undo true
            return signing
    if command is None:
        return Signing(None, "the git push that runs this hook cannot be found or its command line read")
    return Signing(False, "git push without --signed, and push.gpgSign is not set")


def _signed_value(shown: str, value: str | None) -> Signing:
    """``--signed``'s value (None: none given) or ``push.gpgSign``'s, read as Git reads them."""
    word = (value or "").lower()
    number = word.lstrip("-").isdigit()
    if value is None or word in _TRUE or (number and int(word) != 0):
        return Signing(True, shown)
    if word in _FALSE or number:
        return Signing(False, shown)
    if word == "if-asked":
        return Signing(True, f"{shown}, and a stepup-git server asks")
    return Signing(None, f"{shown} is not a value git accepts")


def _push_arguments(command: Sequence[str]) -> list[str] | None:
    """The arguments after ``push`` in a git command line, or None when it is not ``git push``."""
    if not command:
        return None
    name = os.path.basename(command[0])
    if name == "git-push":
        return list(command[1:])
    if name != "git":
        return None
    words = list(command[1:])
    while words:
        word = words.pop(0)
        if word in _GLOBAL_VALUE:
            words = words[1:]
        elif not word.startswith("-"):
            return words if word == "push" else None
    return None


def _signed_option(command: Sequence[str]) -> tuple[str, str | None] | None:
    """The last ``--signed[=VALUE]`` / ``--no-signed`` of a ``git push`` command line as (how it was
    written, its value: None for a bare ``--signed``, "false" for ``--no-signed``), or None."""
    words = _push_arguments(command)
    if words is None:
        return None
    found: tuple[str, str | None] | None = None
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word == "--":
            break
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            negated = name.startswith("no-") and _long_option(name[3:]) is not None
            option = _long_option(name[3:] if negated else name)
            if option == "signed":
                found = ("git push --no-signed", "false") if negated else (
                    f"git push --signed{eq}{value}" if eq else "git push --signed", value if eq else None)
            elif option in _PUSH_LONG_VALUE and not eq and not negated:
                skip = True
        elif word.startswith("-") and len(word) > 1:
            at = word.find("o", 1)  # -o VALUE (or -oVALUE, or -fo VALUE): a push option
            skip = at == len(word) - 1
    return found


def _long_option(name: str) -> str | None:
    """The push option an exact name or an unambiguous prefix names."""
    if name in _PUSH_LONG:
        return name
    matches = [option for option in _PUSH_LONG if option.startswith(name)] if name else []
    return matches[0] if len(matches) == 1 else None


def signing_key(config: Config, keyring: Keyring, env: Mapping[str, str], now: datetime) -> Verified | str:
    """Step 2: the signature the server will verify, as a :class:`Verified` made ``now`` by the key Git
    signs with; a string saying why that key cannot be told."""
    spec = config("user.signingKey")
    form = (config("gpg.format") or "openpgp").lower()
    if form == "ssh":
        return _ssh_key(spec, env, now)
    if form != "openpgp":
        return f"gpg.format = {form}, which this check cannot follow"
    if spec is None:
        email = env.get("GIT_COMMITTER_EMAIL") or config("committer.email") or config("user.email") or env.get("EMAIL")
        if not email:
            return "neither user.signingkey nor user.email is set"
        spec = f"<{email}>"
    return _openpgp_key(spec.strip(), keyring, now)


def _openpgp_key(spec: str, keyring: Keyring, now: datetime) -> Verified | str:
    """As ``gpg -u SPEC`` finds it: a fingerprint or key id by its end, anything else in a user ID."""
    key_id = spec.removesuffix("!").removeprefix("0x").removeprefix("0X").replace(" ", "").upper()
    if re.fullmatch(r"[0-9A-F]{8}|[0-9A-F]{16}|[0-9A-F]{40}|[0-9A-F]{64}", key_id):
        signers = {primary: fpr for primary, info in keyring.keys.items()
                   for fpr in (primary, *(sub.fingerprint for sub in info.subkeys)) if fpr.endswith(key_id)}
        if not signers:  # a key the policy keyring does not hold: no policy key, as the server will find
            return Verified(True, "openpgp", key_id=key_id, signing_key=key_id, created=now)
        if len(signers) > 1:
            return f"user.signingkey {spec} matches {len(signers)} keys of the policy keyring"
        ((primary, signer),) = signers.items()
        return Verified(True, "openpgp", key_id=primary, signing_key=signer, created=now)
    email = re.search(r"<([^<>]+)>", spec)
    needle = (f"<{email.group(1)}>" if email else spec).lower()
    matching = [p for p, info in keyring.keys.items() if any(needle in uid.lower() for uid in info.uids)]
    if len(matching) != 1:
        which = "no key of the policy keyring has" if not matching else f"{len(matching)} policy keys have"
        return f"{which} a user ID matching {spec}"
    return Verified(True, "openpgp", key_id=matching[0], signing_key=matching[0], created=now)


def _ssh_key(spec: str | None, env: Mapping[str, str], now: datetime) -> Verified | str:
    if spec is None:
        return "gpg.format = ssh without user.signingkey (gpg.ssh.defaultKeyCommand chooses the key)"
    line = spec.removeprefix("key::") if spec.startswith(("key::", "ssh-", "ecdsa-", "sk-")) else None
    if line is None:
        path = Path(env["HOME"] + spec[1:] if spec.startswith("~/") and env.get("HOME") else spec)
        candidates = [path] if path.suffix == ".pub" else [path.with_name(path.name + ".pub"), path]
        for candidate in candidates:
            try:
                text = candidate.read_text().strip()
            except (OSError, UnicodeDecodeError):
                continue
            if "PRIVATE KEY" not in text:
                line = text
                break
        if line is None:
            return f"the SSH public key of user.signingkey {spec} cannot be read"
    if line.split()[:1] and line.split()[0].endswith("-cert-v01@openssh.com"):
        return "user.signingkey is an SSH certificate, whose validity the server judges at the time of the push"
    try:
        _, key_id = parse_ssh_key(line)
    except ValueError as exc:
        return f"user.signingkey: {exc}"
    return Verified(True, "ssh", key_id=key_id, created=now)


class PredictedCertificate:
    """Step 3: the certificate as a proof source for the judge (see ``protocols.CertificateProof``)."""

    blob_id = "predicted"

    def __init__(self, verified: Verified, signing: Signing, policy: Policy, keyring: Keyring, now: datetime) -> None:
        self.signing = signing
        self.assessment: Assessment = assess(verified, policy, keyring, now)

    @property
    def owner(self) -> str | None:
        """Whose policy key signs it, when it is one."""
        key = self.assessment.key
        return key.owner if key is not None and self.assessment.valid else None

    def prove(self, update: Update, window: timedelta, now: datetime,
              pusher: str | None = None) -> tuple[Assessment | None, str]:
        a = self.assessment
        text = f"{a.found} (predicted: {self.signing.why})"
        return (a if a.valid else None), text
