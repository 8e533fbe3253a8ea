"""How values are written for people: times, ages, short ids, and text safe for one terminal line."""

from __future__ import annotations

from datetime import datetime, timedelta


def iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def age(delta: timedelta) -> str:
    """A short human duration: 45s, 12m, 3h 5m, 2d 4h."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h" if hours else f"{sign}{days}d"
    if hours:
        return f"{sign}{hours}h {minutes}m" if minutes else f"{sign}{hours}h"
    if minutes:
        return f"{sign}{minutes}m"
    return f"{sign}{secs}s"


def visible(text: str) -> str:
    """``text`` safe to show on one line of a terminal: a byte that was not UTF-8 (kept as a lone
    surrogate by ``surrogateescape``) shows as ``\\xff``, any other unprintable character (a line or
    paragraph separator, a control character) as its ``\\x``/``\\u`` escape."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        code = ord(c)
        if c.isprintable():
            out.append(c)
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(c.encode("unicode_escape").decode("ascii") if code > 0xFF else f"\\x{code:02x}")
    return "".join(out)


def short(oid: str | None) -> str:
    return oid[:10] if oid else "(none)"
