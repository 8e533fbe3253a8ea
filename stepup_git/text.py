"""How values are written for people: times, ages, short ids, text safe for one terminal line, and
text wrapped to fit a terminal."""

from __future__ import annotations

import re
import textwrap
from datetime import datetime, timedelta

COLUMNS = 72  # what an 80-column terminal leaves after the "remote: " Git puts before each line
# A command to copy: a program, then its words up to what ends it (",", ";", ": ", a parenthesis), a
# quoted argument one word whatever it holds; or a push option given on its own (-o name="value").
_COMMAND = re.compile(r"(?<![\w.-])(?:git|stepup-git|ssh-keygen) (?:'[^']*'|\"[^\"]*\"|:(?! )|[^,;:()'\"])+"
                      r"|(?<!\S)-o [\w.-]+=(?:\"[^\"]*\"|'[^']*'|\S+)")
_GLUE = "\xa0"  # holds a command's words together; visible() escapes any in the text itself


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


def wrap(text: str, first: str, rest: str, width: int = COLUMNS, *, keep: str = "") -> list[str]:
    """``first`` then ``text``, as lines of at most ``width`` columns continued after ``rest``: broken
    between words, never inside a command to copy (``git ...`` up to the punctuation that ends it), nor
    inside ``keep`` (e.g. "commit 1a2b3c4d5e") when it fits a line, nor at a hyphen; a command or a word
    (a long ref or path) longer than a line stands alone on its line. ``text`` is written :func:`visible`
    first, so the lines are printable and none is forged."""

    def glue(m: re.Match[str]) -> str:
        command = m.group(0).rstrip()
        return command.replace(" ", _GLUE) + m.group(0)[len(command):]

    glued = _COMMAND.sub(glue, visible(text))
    if keep and len(visible(keep)) <= width - len(rest):
        glued = glued.replace(visible(keep), visible(keep).replace(" ", _GLUE))
    lines = textwrap.wrap(glued, width, initial_indent=first, subsequent_indent=rest, break_long_words=False,
                          break_on_hyphens=False)
    return [line.replace(_GLUE, " ") for line in lines] or [first.rstrip()]

