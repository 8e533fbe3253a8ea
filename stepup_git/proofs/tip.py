"""The tip-signature proof of a step-up rule (docs/semantics.md, "Rules"): a valid signature on the pushed tip
(a commit, or an annotated tag pushed under its own name), made within the rule's window."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..model import Update
from ..policy import Policy
from ..protocols import Repository, SignatureSource
from ..signatures import Assessment, Keyring, assess
from .freshness import Freshness


def prove(update: Update, *, repo: Repository, signatures: SignatureSource, policy: Policy,
          keyring: Keyring, window: timedelta, now: datetime,
          pusher: str | None = None) -> tuple[Assessment | None, str]:
    """(the signer's assessment when the tip of ``update`` proves it, else None; what was found, to be
    shown under the tip's label)."""
    assert update.new is not None
    # Step 1: the tip can carry a signature (a commit or a tag object, not a tree or a blob).
    obj = repo.signed_object(update.new)
    if obj is None:
        return None, "cannot carry a signature"
    # Step 2: a tag object is pushed under the name it was signed with.
    if obj.kind == "tag" and update.ref.startswith("refs/tags/"):
        tag_name = repo.tag_info(update.new)[0]
        if tag_name != update.ref.removeprefix("refs/tags/"):
            return None, f"a tag object named {tag_name}, pushed as {update.ref}"
    # Step 3: the signature is valid (docs/semantics.md, "Valid signatures").
    a = assess(signatures.verified(obj), policy, keyring, now, pusher=pusher)
    if not a.valid:
        return None, a.found
    # Step 4: it was made within the window, or its SSH certificate became valid within it (docs/semantics.md, "Rules").
    fresh, text = Freshness(now, window, policy.settings.clock_skew).describe(a.found, a.signed_at, a.certificate)
    return (a if fresh else None), text
