"""More keys for the shared test developers: one person holding several policy keys."""

from __future__ import annotations

from pathlib import Path

from .keys import PAST, Key, People

_second: dict[tuple[Path, str], Key] = {}


def second_key(people: People, owner: str) -> Key:
    """Another OpenPGP key of `owner`'s (say, a laptop key beside a hardware token), made once per
    session in the shared home (GnuPG refuses a second key with the same user id)."""
    slot = (people.gpg.home, owner)
    if slot not in _second:
        _second[slot] = people.gpg.gen_key(owner.title(), f"{owner}@work.example.com", created=PAST)
    return _second[slot]
