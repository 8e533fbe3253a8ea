"""Wire a policy, a repository and the signature machinery together to judge updates.

Shared by the hook, ``stepup-git check`` and ``stepup-git verify``; it reads no environment itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .cache import LazyStore
from .errors import PolicyError
from .git import Repo
from .judge import Context, Judge
from .model import SignedObject, Update, Verdict
from .policy import Policy
from .protocols import CertificateProof, VerificationStore
from .signatures import Keyring, Verified, Verifier, keyring_problems
from .text import iso

MEMO_LIMIT = 4096
# Misses in a batch before the persistent store is asked: below this, verifying in process is sooner than
# opening the store (bench/README.md).
STORE_MIN = 16


class Signatures:
    """Verifications of objects' signatures: a bounded memo, then the store, then the verifier."""

    def __init__(self, verifier: Verifier, store: VerificationStore | None = None) -> None:
        self.verifier = verifier
        self.store = store
        self._memo: OrderedDict[str, Verified] = OrderedDict()

    def verified(self, obj: SignedObject) -> Verified | None:
        return self.verified_many([obj.oid], lambda oids: [obj])[0]

    def verified_many(self, oids: Sequence[str],
                      load: Callable[[Sequence[str]], list[SignedObject | None]]) -> list[Verified | None]:
        """Verifications of the objects ``oids`` (None: unsigned); ``load`` reads objects, and is
        called only for those that neither the memo nor the store knows."""
        results: list[Verified | None] = [None] * len(oids)
        misses: list[int] = []
        for i, oid in enumerate(oids):
            if (hit := self._memo.get(oid)) is not None:
                self._memo.move_to_end(oid)
                results[i] = hit
            else:
                misses.append(i)
        # the store only for a batch big enough to pay for opening it
        store = self.store if len(misses) >= STORE_MIN else None
        if misses and store is not None:
            stored = store.get_many([oids[i] for i in misses])
            for i in misses:
                results[i] = stored.get(oids[i])
            misses = [i for i in misses if results[i] is None]
        todo: list[tuple[int, SignedObject]] = []
        loaded = load([oids[i] for i in misses]) if misses else []
        for i, obj in zip(misses, loaded, strict=True):
            if obj is not None and obj.signature is not None:
                todo.append((i, obj))
        if todo:
            pairs = [(obj.signature or b"", obj.payload) for _, obj in todo]
            for (i, obj), verified in zip(todo, self.verifier.verify_many(pairs), strict=True):
                results[i] = verified
                # a certificate's verdict holds at the time it was judged at only (docs/semantics.md)
                if store is not None and verified.certificate is None:
                    store.put(obj.oid, verified)
        for oid, result in zip(oids, results, strict=True):
            if result is not None:
                self._memo[oid] = result
        while len(self._memo) > MEMO_LIMIT:
            self._memo.popitem(last=False)
        return results


class Session:
    """Everything needed to judge updates in one repository under one policy."""

    def __init__(self, policy: Policy, repo: Repo, keyring: Keyring, signatures: Signatures,
                 state_dir: Path, store: LazyStore | None = None) -> None:
        self.policy = policy
        self.repo = repo
        self.keyring = keyring
        self.signatures = signatures
        self.state_dir = state_dir
        self.store = store  # verifications (through ``signatures``) and the ancestry long walks learn

    @classmethod
    def open(cls, policy: Policy, repo: Repo, state_dir: Path, *, now: datetime, cache: bool = True,
             shared_dir: Path | None = None) -> Session:
        """``state_dir``: the repository's own state (verification cache, replay store); ``shared_dir``:
        where keyrings are built, once per keyring content, for every repository (default: state_dir);
        ``now``: the time the keys are judged at."""
        keyring = Keyring.open(policy, shared_dir or state_dir)
        errors, _ = keyring_problems(policy, keyring, now)
        if errors:
            raise PolicyError(errors)  # a policy with an error never half-loads
        verifier = Verifier(policy, keyring, shared_dir or state_dir, timeout=policy.settings.timeout.total_seconds(),
                            now=now)
        store = None
        if cache:
            store = LazyStore(state_dir, keyring.digest, policy.digest)
            repo.recall_ancestry(store.descends)
        return cls(policy, repo, keyring, Signatures(verifier, store), state_dir, store)

    def judge(self, updates: Sequence[Update], *, now: datetime, pusher: str | None,
              push_cert: CertificateProof | None = None) -> list[Verdict]:
        judge = Judge(self.policy, self.repo, self.keyring, self.signatures, Context(now, pusher, push_cert))
        try:
            return judge.judge(updates)
        finally:
            if self.store is not None:
                self.store.remember(self.repo.learned_ancestry())
            if self.signatures.store is not None:
                self.signatures.store.close()
            self.signatures.verifier.close()
            self.repo.close()


def audit_record(verdict: Verdict, *, now: datetime, repo: str, pusher: str | None, mode: str,
                 nonce_status: str | None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The docs/semantics.md record of one judged update (``prev``/``hash`` are added by the audit log)."""
    if verdict.allowed:
        decision = "accept"
    elif verdict.break_glass is not None:
        decision = "break-glass"
    else:
        decision = "warn" if mode == "audit" else "reject"
    record: dict[str, Any] = {
        "time": iso(now),
        "repo": repo,
        "pusher": pusher,
        "ref": verdict.update.ref,
        "old": verdict.update.old_id,
        "new": verdict.update.new_id,
        "action": verdict.action,
        "decision": decision,
        "rules": [r.to_json() for r in verdict.results],
        "push_cert_nonce_status": nonce_status,
        "mode": mode,
    }
    if verdict.error is not None:
        record["error"] = verdict.error
    if verdict.break_glass is not None:
        record["break_glass"] = verdict.break_glass.to_json()
    if extra:
        record.update(extra)
    return record
