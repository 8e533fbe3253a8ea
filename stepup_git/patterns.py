"""Ref patterns (``*`` within one component, ``**`` across) and gitignore-style path patterns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RefPattern:
    text: str
    regex: re.Pattern[str] = field(compare=False)

    @classmethod
    def compile(cls, text: str) -> RefPattern:
        if not text or text != text.strip() or any(c.isspace() or ord(c) < 32 for c in text):
            raise ValueError(f"bad ref pattern {text!r}: no spaces or control characters")
        if "***" in text or "//" in text:
            raise ValueError(f"bad ref pattern {text!r}: use * within a component and ** across components")
        out = []
        for part in re.split(r"(\*\*|\*)", text):
            if part == "**":
                out.append(".*")
            elif part == "*":
                out.append("[^/]*")
            else:
                out.append(re.escape(part))
        return cls(text, re.compile("".join(out)))

    def matches(self, ref: str) -> bool:
        return self.regex.fullmatch(ref) is not None


@dataclass(frozen=True)
class PathPatterns:
    """gitignore-style patterns; exact-case, byte-exact after UTF-8 decoding."""

    texts: tuple[str, ...]
    spec: Any = field(compare=False)

    @classmethod
    def compile(cls, texts: Iterable[str]) -> PathPatterns:
        import pathspec

        texts = tuple(texts)
        for text in texts:
            if not text.strip():
                raise ValueError("bad path pattern '': patterns must not be empty")
            if text.startswith("#"):
                raise ValueError(
                    f"bad path pattern {text!r}: a leading # makes it a comment; write \\# for a literal #")
            if "\n" in text or "\r" in text:
                raise ValueError(f"bad path pattern {text!r}: no line breaks")
        try:
            spec = pathspec.GitIgnoreSpec.from_lines(texts)
        except ValueError as exc:
            raise ValueError(f"bad path pattern: {exc}") from None
        return cls(texts, spec)

    def first_match(self, paths: Iterable[str]) -> str | None:
        for path in paths:
            if self.spec.match_file(path):
                return path
        return None
