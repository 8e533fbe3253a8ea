"""Whether a verified signature counts under the policy (docs/semantics.md), decided once for every verifier.

Verification (:mod:`.verifier`) says whether a signature verifies over the exact bytes, by which key,
made when; this module says whether that counts: the key is the policy's, its digest is strong enough,
the key and the signature are neither expired nor revoked in OpenPGP terms, and the policy still honours
the key. Gpg and Sequoia give the same :class:`~.verified.Verified`, so they give the same verdict. A
signature by a key certified by a policy authority (docs/semantics.md) counts for the certificate's principal.
"""

from __future__ import annotations

from datetime import datetime

from ..policy import Key, Policy
from .keyring import Keyring
from .openpgp import RESIGN_SHA512, WEAK_DIGESTS
from .verified import Assessment, Verified


def assess(verified: Verified | None, policy: Policy, keyring: Keyring, now: datetime, *,
           pusher: str | None = None) -> Assessment:
    """Decide whether a verified signature counts (docs/semantics.md), the same way for every verifier;
    ``pusher`` chooses the owner of a certificate naming several principals (docs/semantics.md)."""
    # Step 1: there is a signature at all.
    if verified is None:
        return Assessment(False, None, None, "no signature")
    # Step 2: it verifies over the exact signed payload (bad signature, unknown key, a signature on
    # another object, a malformed or unsupported block: the verifier said which).
    if not verified.ok:
        return Assessment(False, None, verified.created, verified.problem or "a signature that does not verify")
    # Step 3: the key is one the policy lists, or one a policy authority certified.
    if verified.certificate is not None:
        return _certified(verified, policy, pusher)
    key = policy.key(verified.key_id or "")
    if key is None:
        return Assessment(False, None, verified.created,
                          f"signed by key {verified.key_id}, which the policy does not list")
    who = f"{key.owner} ({key.tier}, key {key.short})"
    if verified.kind == "openpgp":
        # Step 4: the digest, read from the signature packet: SHA-1 and RIPEMD-160 only when the policy
        # allows them (settings.allow_sha1); the verifiers refuse MD5 and unknown algorithms outright.
        if verified.digest in WEAK_DIGESTS and not policy.settings.allow_sha1:
            return Assessment(False, key, verified.created,
                              f"signed by {who} with a {verified.digest} digest, which can be forged "
                              f"(accepted only with settings.allow_sha1 = true); {RESIGN_SHA512}")
        # Step 5: the key is in the policy keyring, neither it nor its signing subkey expired or
        # revoked as of now, in OpenPGP terms.
        info = keyring.keys.get(key.id)
        if info is None:
            return Assessment(False, key, verified.created,
                              f"signed by {who}, but the key is not in the keyring folder")
        if problem := info.problem(now, verified.signing_key):
            return Assessment(False, key, verified.created, f"signed by {who}, but {problem}")
        # Step 6: the signature itself has not expired.
        if verified.expires is not None and verified.expires <= now:
            return Assessment(False, key, verified.created,
                              f"signed by {who}, but the signature expired on {verified.expires:%Y-%m-%d}")
    # Step 7: the policy still honours the key (its own ``expires``).
    if not key.honoured_on(now.date()):
        return Assessment(False, key, verified.created,
                          f"signed by {who}, but the policy stopped honouring the key after {key.expires}")
    return Assessment(True, key, verified.created, f"signed by {who}")


def _certified(verified: Verified, policy: Policy, pusher: str | None) -> Assessment:
    """Step 3 for a certified key (docs/semantics.md): the verifier has checked the authority, the certificate's
    type, validity and revocation at the time judged; here its principal becomes the owner, and the
    authority (or a ``[[keys]]`` entry for that authority and owner) gives the tier."""
    cert = verified.certificate
    assert cert is not None and cert.authority is not None
    authority = next(a for a in policy.authorities if a.name == cert.authority)
    # Step 3a: exactly one principal, or the pusher among several.
    if len(cert.principals) == 1:
        owner = cert.principals[0]
    elif pusher is not None and pusher in cert.principals:
        owner = pusher
    else:
        who = "the pusher is unknown" if pusher is None else f"the pusher {pusher} is not among them"
        fix = f" for principal {pusher}" if pusher else ""
        return Assessment(False, None, None, f"signed with {cert.describe()} from {authority.name}, which names "
                          f"the principals {', '.join(cert.principals)} and {who}; get a certificate from "
                          f"{authority.name}{fix} naming one principal", certificate=cert)
    # Step 3b: the tier: the authority's, unless the policy gives this person's certificates their own.
    entry = policy.certified(authority, owner)
    tier = entry.tier if entry is not None else authority.tier
    key = Key(id=cert.key_fingerprint, owner=owner, tier=tier, line=entry.line if entry else authority.line,
              ssh=cert.key, authority=authority.name)
    return Assessment(True, key, None, f"signed by {owner} ({tier}, {cert.describe()} from {authority.name})",
                      certificate=cert)
