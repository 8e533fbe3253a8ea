"""The key tables of a policy (README.md; docs/semantics.md): ``[[authorities]]`` and ``[[keys]]``, read into frozen
values with every problem reported through the :class:`~.reader.Reader` as ``PATH:LINE: message``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from .model import Authority, Key, normalize_fingerprint, parse_duration, parse_ssh_key
from .reader import Reader


def read_authorities(ld: Reader, tiers: tuple[str, ...], entries: list[Any]) -> tuple[Authority, ...]:
    """The ``[[authorities]]``, SSH certificate authorities (docs/semantics.md): a name, the CA's public key, a tier,
    a longest validity."""
    found: list[Authority] = []
    names: dict[str, int] = {}
    cas: dict[str, int] = {}
    for i, entry in enumerate(entries):
        head = ld.lines.of("authorities", i)
        if not isinstance(entry, dict):
            ld.error(head, "each [[authorities]] entry must be a table")
            continue
        before = len(ld.problems)
        ld.unknown_keys(entry, {"name", "ssh", "tier", "max_validity"}, "authorities", i)
        name = ld.take(entry, "name", str, "authorities", i, required=True)
        if name is not None and not name.strip():
            ld.error(ld.lines.of("authorities", i, "name"), "authority name must not be empty")
        elif name is not None and name in names:
            ld.error(ld.lines.of("authorities", i, "name"),
                     f"duplicate authority name {name!r} (first at line {names[name]})")
        if name is not None:
            names.setdefault(name, head)
        ca = ld.take(entry, "ssh", str, "authorities", i, required=True, convert=_ca_key)
        if ca is not None and ca[1] in cas:
            ld.error(ld.lines.of("authorities", i, "ssh"),
                     f"CA key {ca[1]} is listed twice (first at line {cas[ca[1]]})")
        tier = ld.take(entry, "tier", str, "authorities", i, required=True)
        if tier is not None and tier not in tiers:
            ld.error(ld.lines.of("authorities", i, "tier"), f"unknown tier {tier!r}; the tiers are {', '.join(tiers)}")
        longest = ld.take(entry, "max_validity", str, "authorities", i, default=timedelta(hours=1),
                          convert=parse_duration)
        if longest <= timedelta(0):
            ld.error(ld.lines.of("authorities", i, "max_validity"), "max_validity must be longer than 0s")
        if len(ld.problems) > before or name is None or ca is None or tier is None:
            continue
        cas.setdefault(ca[1], head)
        found.append(Authority(name=name, ssh=ca[0], id=ca[1], tier=tier, max_validity=longest, line=head))
    return tuple(found)


def _ca_key(text: str) -> tuple[str, str]:
    if text.split()[:1] and text.split()[0].endswith("-cert-v01@openssh.com"):
        raise ValueError("not an SSH public key but a certificate; give the CA's own public key (its ca.pub)")
    try:
        return parse_ssh_key(text)
    except ValueError as exc:
        raise ValueError(f"not an SSH public key (the CA's, e.g. the ca.pub that signs certificates): {exc}") from None


def read_keys(ld: Reader, tiers: tuple[str, ...], entries: list[Any],
              authorities: set[str] | None = None) -> tuple[Key, ...]:
    """The ``[[keys]]``: an OpenPGP fingerprint or an SSH public key with its owner, tier and expiry, or
    one person's certificates from one of ``authorities`` (their names) with a tier of their own."""
    keys: list[Key] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        head = ld.lines.of("keys", i)
        if not isinstance(entry, dict):
            ld.error(head, "each [[keys]] entry must be a table")
            continue
        if "authority" in entry:
            ld.unknown_keys(entry, {"authority", "owner", "tier"}, "keys", i)
        else:
            ld.unknown_keys(entry, {"fingerprint", "ssh", "owner", "tier", "expires"}, "keys", i)
        owner = ld.take(entry, "owner", str, "keys", i, required=True)
        tier = ld.take(entry, "tier", str, "keys", i, required=True)
        if tier is not None and tier not in tiers:
            ld.error(ld.lines.of("keys", i, "tier"), f"unknown tier {tier!r}; the tiers are {', '.join(tiers)}")
        if owner is not None and not owner.strip():
            ld.error(ld.lines.of("keys", i, "owner"), "owner must not be empty")
        expires = ld.take(entry, "expires", date, "keys", i)
        if isinstance(expires, datetime):
            expires = expires.astimezone(UTC).date() if expires.tzinfo else expires.date()
        if "authority" in entry:
            if (key := _certified_key(ld, i, entry, owner, tier, authorities or set(), head)) is not None:
                if key.id in seen:
                    ld.error(head, f"{owner}'s certificates from {key.authority} are listed twice "
                             f"(first at line {seen[key.id]})")
                elif tier in tiers:
                    seen[key.id] = head
                    keys.append(key)
            continue
        fpr = ld.take(entry, "fingerprint", str, "keys", i, convert=normalize_fingerprint)
        ssh = ld.take(entry, "ssh", str, "keys", i, convert=parse_ssh_key)
        if ("fingerprint" in entry) == ("ssh" in entry):
            ld.error(head, "each [[keys]] entry needs exactly one of 'fingerprint' (OpenPGP) or 'ssh'")
            continue
        key_id = fpr if fpr else (ssh[1] if ssh else None)
        if key_id is None or owner is None or tier is None or tier not in tiers:
            continue
        if key_id in seen:
            ld.error(head, f"key {key_id} is listed twice (first at line {seen[key_id]})")
            continue
        seen[key_id] = head
        keys.append(Key(id=key_id, owner=owner, tier=tier, line=head, fingerprint=fpr,
                        ssh=ssh[0] if ssh else None, expires=expires))
    return tuple(keys)


def _certified_key(ld: Reader, i: int, entry: dict[str, Any], owner: str | None, tier: str | None,
                   authorities: set[str], head: int) -> Key | None:
    """A ``[[keys]]`` entry giving one person's certificates from an authority their own tier (docs/semantics.md)."""
    name = ld.take(entry, "authority", str, "keys", i)
    if name is None or owner is None or tier is None:
        return None
    if name not in authorities:
        known = ", ".join(sorted(authorities)) or "none are defined"
        ld.error(ld.lines.of("keys", i, "authority"),
                 f"unknown authority {name!r}; the [[authorities]] are: {known}")
        return None
    return Key(id=f"{name}:{owner}", owner=owner, tier=tier, line=head, authority=name)
