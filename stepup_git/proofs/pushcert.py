"""Signed push certificates as step-up proofs (docs/semantics.md, "Push certificates").

Git accepts a push whatever its certificate says when the hook exits 0, and its GIT_PUSH_CERT_STATUS
comes from the server user's own GnuPG home, so none of that is trusted. The certificate blob is read
and checked here: (1) parsed strictly; (2) its signature verified against the policy keyring and
assessed like any other; (3) the nonce status Git computed is OK, or SLOP within the rule's window, and
the nonce's own time stamp is within the window; (4) it lists this update's exact ``old new ref``;
(5) it was never used before (a replay store, since over stateless HTTP a captured certificate
replays with status OK inside the slop window). A certificate is identified by what it signs
(:attr:`Certificate.identity`), never by its blob's bytes: armour headers, line wrapping, line endings
and packet encoding change the blob, not what the signature means.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StepupError
from ..evaluate import Session
from ..git import split_tag
from ..model import Update, Verdict
from ..signatures import Assessment, assess
from ..text import age
from .freshness import Freshness
from .replay import ReplayStore

if TYPE_CHECKING:
    from ..protocols import ReplayClaims

_UPDATE = re.compile(r"([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) (refs/\S+)")
_HEADERS = ("pusher", "pushee", "nonce", "push-option")


@dataclass(frozen=True, slots=True)
class Certificate:
    version: str
    pusher: str
    pushee: str | None
    nonce: str
    options: tuple[str, ...]
    updates: tuple[str, ...]
    payload: bytes
    signature: bytes

    @property
    def identity(self) -> str:
        """The SHA-256 of what the certificate signs: its fields (version, pusher, pushee, nonce,
        options, update lines) written out in Git's order. Header order and whitespace ending a line
        are left out too: a text-mode signature verifies whatever whitespace ends its lines."""
        lines = [f"certificate version {self.version}", f"pusher {self.pusher}"]
        if self.pushee is not None:
            lines.append(f"pushee {self.pushee}")
        lines += [f"nonce {self.nonce}", *(f"push-option {option}" for option in self.options), "", *self.updates]
        canonical = "".join(line.rstrip(" \t\r") + "\n" for line in lines)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse(raw: bytes) -> Certificate:
    """Parse a push certificate strictly; raise ValueError saying what is wrong."""
    signature, payload = split_tag(raw)
    if signature is None:
        raise ValueError("it carries no signature")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    head, sep, body = text.partition("\n\n")
    if not sep:
        raise ValueError("no blank line between its header and its update lines")
    lines = head.split("\n")
    if lines[0] != "certificate version 0.1":
        raise ValueError(f"unknown first line {lines[0][:40]!r} (expected 'certificate version 0.1')")
    fields: dict[str, list[str]] = {name: [] for name in _HEADERS}
    for line in lines[1:]:
        name, _, value = line.partition(" ")
        if name not in fields or not value:
            raise ValueError(f"unknown header line {line[:40]!r}")
        fields[name].append(value)
    for name in ("pusher", "nonce"):
        if len(fields[name]) != 1:
            raise ValueError(f"it must have exactly one {name} line")
    if len(fields["pushee"]) > 1:
        raise ValueError("it has more than one pushee line")
    updates = tuple(line for line in body.split("\n") if line)
    if not updates:
        raise ValueError("it lists no updates")
    for line in updates:
        if not _UPDATE.fullmatch(line):
            raise ValueError(f"malformed update line {line[:60]!r}")
    pushee = fields["pushee"][0] if fields["pushee"] else None
    return Certificate("0.1", fields["pusher"][0], pushee, fields["nonce"][0],
                       tuple(fields["push-option"]), updates, payload, signature)


def nonce_stamp(nonce: str) -> int | None:
    """The issue time Git writes at the start of its nonces (``<seconds>-<hmac>``), if present."""
    m = re.fullmatch(r"(\d{9,11})-[0-9a-f]+", nonce)
    return int(m.group(1)) if m else None


class PushCertificate:
    """The push's certificate as a proof source for the judge."""

    def __init__(self, blob_id: str, raw: bytes, session: Session, *, nonce_status: str | None,
                 nonce_slop: str | None, expected_nonce: str | None, replay: ReplayClaims | None) -> None:
        self.blob_id = blob_id
        self.raw = raw
        self.session = session
        self.nonce_status = nonce_status
        self.nonce_slop = nonce_slop
        self.expected_nonce = expected_nonce
        self.replay = replay  # None: a dry run, where nonce and replay cannot be judged
        self.claimed = False
        self.error: str | None = None
        self.cert: Certificate | None = None
        self._assessment: Assessment | None = None
        try:
            self.cert = parse(raw)
        except ValueError as exc:
            self.error = f"malformed ({blob_id[:10]}: {exc})"

    def signer(self, now: datetime, pusher: str | None = None) -> Assessment:
        if self._assessment is None:
            assert self.cert is not None
            s = self.session
            verified = s.signatures.verifier.verify(self.cert.signature, self.cert.payload)
            self._assessment = assess(verified, s.policy, s.keyring, now, pusher=pusher)
        return self._assessment

    def prove(self, update: Update, window: timedelta, now: datetime,
              pusher: str | None = None) -> tuple[Assessment | None, str]:
        # Step 1: parsed strictly.
        if self.cert is None:
            return None, self.error or "malformed"
        cert = self.cert
        # Step 2: the signature, verified against the policy keyring, not Git's GPG status.
        a = self.signer(now, pusher)
        if not a.valid:
            return None, a.found
        # Step 2b: signed with an SSH certificate, it stands for a login within the window (docs/semantics.md).
        if a.certificate is not None:
            recent, text = Freshness(now, window, self.session.policy.settings.clock_skew).describe(
                a.found, None, a.certificate)
            if not recent:
                return None, text
        # Step 3: the nonce Git issued for this push, and how old it is.
        if self.replay is not None:
            status = self.nonce_status or "MISSING"
            # With OK, Git reports the certificate's own nonce; with SLOP it reports the one it has just
            # issued (having checked the certificate's HMAC: otherwise the status is BAD).
            if status == "OK" and self.expected_nonce and cert.nonce != self.expected_nonce:
                return None, "nonce does not match the nonce Git reports for this push"
            if status == "SLOP":
                try:
                    slop = abs(int(self.nonce_slop or ""))
                except ValueError:
                    return None, "nonce status SLOP without a slop value"
                if slop > window.total_seconds():
                    return None, f"nonce is {age(timedelta(seconds=slop))} old, older than {age(window)}"
            elif status != "OK":
                return None, f"nonce status is {status} (not issued by this server for this push)"
            fresh = Freshness(now, window, self.session.policy.settings.clock_skew)
            if (stamp := nonce_stamp(cert.nonce)) is not None and fresh.problem(datetime.fromtimestamp(stamp, UTC)):
                issued = now.timestamp() - stamp
                return None, f"nonce was issued {age(timedelta(seconds=issued))} ago, outside {age(window)}"
        # Step 4: the exact update.
        if update.line not in cert.updates:
            return None, f"{a.found} does not list this update ({update.line})"
        # Step 5: never used before, by what it signs: a re-encoded certificate is the same certificate.
        if self.replay is not None and not self.claimed:
            first = self.replay.claim(cert.identity, self.blob_id, cert.nonce, self._keep(), now)
            if first is not None:
                when = datetime.fromtimestamp(first).astimezone(now.tzinfo)
                return None, (f"{self.blob_id[:10]} was already used at {when:%Y-%m-%d %H:%M:%S} "
                              "(a replayed certificate)")
            self.claimed = True
        note = "" if self.replay is not None else " (nonce and replay not judged outside a push)"
        return a, f"{a.found}, nonce {self.nonce_status or 'n/a'}{note}"

    def _keep(self) -> timedelta:
        p = self.session.policy
        windows = [p.settings.fresh_within, *(r.fresh_within for r in p.rules)]
        return max(windows) + p.settings.clock_skew + timedelta(minutes=1)

    def commit_use(self, verdicts: Sequence[Verdict], accepted: bool) -> None:
        """Keep the certificate when the push goes through; free its claim when it does not."""
        if self.replay is None or not self.claimed:
            return
        if not accepted:
            assert self.cert is not None
            self.replay.release(self.cert.identity, self.blob_id)
            return
        certs = self.session.state_dir / "certs"
        try:
            certs.mkdir(parents=True, exist_ok=True)
            (certs / f"{self.blob_id}.txt").write_bytes(self.raw)
        except OSError as exc:
            raise StepupError(f"cannot keep the push certificate in {certs}: {exc.strerror}") from None


def from_environment(env: Mapping[str, str], session: Session, now: datetime,
                     replay: ReplayClaims | None = None) -> PushCertificate | None:
    """The certificate of the push being received, if the client signed it. ``replay``: the shared
    store (docs/servers.md); by default the repository's own, ``<git dir>/stepup/push-certs.sqlite``."""
    blob = env.get("GIT_PUSH_CERT", "").strip()
    if not blob:
        return None
    raw = session.repo.read_blob(blob)
    if raw is None:
        raise StepupError(f"the push certificate {blob[:10]} is not in the repository")
    if replay is None:
        replay = ReplayStore(session.state_dir / "push-certs.sqlite")
    return PushCertificate(blob, raw, session,
                           nonce_status=env.get("GIT_PUSH_CERT_NONCE_STATUS"),
                           nonce_slop=env.get("GIT_PUSH_CERT_NONCE_SLOP"),
                           expected_nonce=env.get("GIT_PUSH_CERT_NONCE"), replay=replay)


def from_file(path: Path, session: Session) -> PushCertificate:
    """A certificate for a dry run (``stepup-git check --push-cert FILE``)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StepupError(f"cannot read the push certificate {path}: {exc.strerror}") from None
    blob_id = hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()
    return PushCertificate(blob_id, raw, session, nonce_status=None, nonce_slop=None, expected_nonce=None, replay=None)
