"""The interfaces the judge works against. Only the type checker imports this module (it needs typing)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from .gitrepo import SignedObject, Update
from .signatures import Assessment, Verified


class Ancestry(Protocol):
    """Which commits are known to be ancestors of which: facts that never change (a commit's id names
    its whole history), kept so that a later push need not walk the history again to prove them."""

    def is_ancestor(self, old: str, new: str) -> bool: ...

    def put_ancestor(self, old: str, new: str) -> None: ...


class SignatureSource(Protocol):
    """Gives the verification of an object's signature (cached or fresh); None when unsigned."""

    def verified(self, obj: SignedObject) -> Verified | None: ...

    def verified_many(self, oids: Sequence[str],
                      load: Callable[[Sequence[str]], list[SignedObject | None]]) -> list[Verified | None]: ...

    def verified_range(self, new: str, base: str) -> list[list[Any]] | None: ...

    def remember_range(self, new: str, base: str, summary: list[list[Any]]) -> None: ...


class CertificateProof(Protocol):
    """A push certificate as a proof source (SPEC §5.2)."""

    blob_id: str

    def prove(self, update: Update, window: timedelta, now: datetime) -> tuple[Assessment | None, str]:
        """(the signer's assessment when the certificate proves this update, else None; a description)."""
        ...



class VerificationStore(Protocol):
    """A persistent cache of verifications, keyed by object id under one keyring and policy."""

    def get_many(self, oids: Sequence[str]) -> dict[str, Verified]: ...

    def put(self, oid: str, verified: Verified) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def get_range(self, new: str, base: str) -> list[list[Any]] | None: ...

    def put_range(self, new: str, base: str, summary: list[list[Any]]) -> None: ...

    def is_ancestor(self, old: str, new: str) -> bool: ...

    def put_ancestor(self, old: str, new: str) -> None: ...
