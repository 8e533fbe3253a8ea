"""The interfaces the judge works against. Only the type checker imports this module (it needs typing)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from .model import SignedObject, Update
from .signatures import Assessment, Verified


class Repository(Protocol):
    """The repository as the judge reads it (docs/semantics.md, "Updates"): what it holds, never how it is read. The git
    adapter (:class:`stepup_git.git.Repo`) is the one implementation; a test may give another."""

    def action(self, update: Update) -> str:
        """``create``, ``update`` (a fast-forward), ``force-push`` or ``delete``."""
        ...

    def refs(self) -> list[tuple[str, str]]:
        """(name, commit) of each existing ref that leads to a commit."""
        ...

    def ref_target(self, name: str) -> str | None:
        """The object a ref points at now, or None when there is no such ref."""
        ...

    def baseline(self) -> list[str]:
        """The commits the baseline recorded (docs/semantics.md, "Updates")."""
        ...

    def added_commits(self, update: Update, vetted: Sequence[str]) -> Iterator[str]:
        """Commits reachable from ``new``, not from ``old`` nor from ``vetted``; newest first, streamed."""
        ...

    def changed_paths(self, update: Update, vetted: Sequence[str]) -> Iterator[tuple[str, bool]]:
        """(path, is a gitlink) of docs/semantics.md, "Updates" changed paths, lazily."""
        ...

    def type_of(self, oid: str) -> str: ...

    def peel_commit(self, oid: str | None) -> str | None: ...

    def first_parent(self, oid: str) -> str | None: ...

    def signed_object(self, oid: str) -> SignedObject | None: ...

    def signed_objects(self, oids: Sequence[str]) -> list[SignedObject | None]: ...

    def tag_info(self, oid: str) -> tuple[str, str, str]:
        """(tag name, target id, target type) of an annotated tag."""
        ...

class SignatureSource(Protocol):
    """Gives the verification of an object's signature (cached or fresh); None when unsigned."""

    def verified(self, obj: SignedObject) -> Verified | None: ...

    def verified_many(self, oids: Sequence[str],
                      load: Callable[[Sequence[str]], list[SignedObject | None]]) -> list[Verified | None]: ...


class CertificateProof(Protocol):
    """A push certificate as a proof source (docs/semantics.md, "Push certificates")."""

    blob_id: str

    def prove(self, update: Update, window: timedelta, now: datetime,
              pusher: str | None = None) -> tuple[Assessment | None, str]:
        """(the signer's assessment when the certificate proves this update, else None; what was found, to be
        shown under the label "push certificate")."""
        ...


class VerificationStore(Protocol):
    """A persistent cache of verifications, keyed by object id under one keyring and policy."""

    def get_many(self, oids: Sequence[str]) -> dict[str, Verified]: ...

    def put(self, oid: str, verified: Verified) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class ReplayClaims(Protocol):
    """The push certificates already used (docs/semantics.md, "Push certificates"): the local store
    (:class:`stepup_git.proofs.replay.ReplayStore`) or the one every replica shares
    (:class:`stepup_git.state.replay.PostgresReplayStore`)."""

    def claim(self, identity: str, blob: str, nonce: str, keep: timedelta, now: datetime) -> float | None:
        """Record a certificate as used at ``now``; when it was first used if it already was."""
        ...

    def release(self, identity: str, blob: str) -> None:
        """Free a claim: the push was rejected after all."""
        ...
