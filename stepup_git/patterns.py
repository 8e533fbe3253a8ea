"""Ref patterns (``*`` within one component, ``**`` across) and gitignore-style path patterns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


class _Compiled:
    """A pattern equal to another when their texts are; the compiled form is derived from the text."""

    __slots__ = ()

    def _key(self) -> object:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Compiled) and other.__class__ is self.__class__ and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._key()!r})"


class RefPattern(_Compiled):
    __slots__ = ("regex", "text")

    def __init__(self, text: str, regex: re.Pattern[str]) -> None:
        self.text = text
        self.regex = regex

    def _key(self) -> object:
        return self.text

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


GITLINK_PROBE = "\x00"  # a name no real path has: it matches only what matches any name below a directory
DIR_MARK = "ps_d"  # the group pathspec's gitignore regexes use to mark a directory match


class PathPatterns(_Compiled):
    """gitignore-style patterns; exact-case, byte-exact after UTF-8 decoding.

    pathspec turns each pattern into a regular expression once; those are kept (``compiled``), and a
    loader may cache them per policy (see ``policy.load``), so a push need not import pathspec again.
    Matching follows pathspec's ``GitIgnoreSpec``: the last pattern that matches the path itself
    decides; when only directory patterns match (their ``ps_d`` group), the last of those decides.
    """

    __slots__ = ("compiled", "texts")

    def __init__(self, texts: tuple[str, ...], compiled: tuple[tuple[re.Pattern[str], bool], ...]) -> None:
        self.texts = texts
        self.compiled = compiled

    def _key(self) -> object:
        return self.texts

    @classmethod
    def compile(cls, texts: Iterable[str], cached: list[list[Any]] | None = None) -> PathPatterns:
        texts = tuple(texts)
        if cached is not None:
            return cls(texts, tuple((re.compile(regex), bool(include)) for regex, include in cached))
        import pathspec

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
        compiled = tuple((p.regex, bool(p.include)) for p in spec.patterns
                         if p.include is not None and p.regex is not None)
        return cls(texts, compiled)

    def to_cache(self) -> list[list[Any]]:
        return [[regex.pattern, include] for regex, include in self.compiled]

    def matches(self, path: str) -> bool:
        included, priority = False, 0
        for regex, include in reversed(self.compiled):
            m = regex.match(path)
            if m is None:
                continue
            this = 1 if m.groupdict().get(DIR_MARK) else 2
            if this > priority:
                included, priority = include, this
            if this == 2:
                break
        return included

    def matches_changed(self, path: str, *, gitlink: bool = False) -> bool:
        """A changed path (docs/semantics.md). A gitlink (submodule) at ``path`` stands for everything below it,
        so a pattern that matches anything below that directory (``infra/**``, ``infra/*``,
        ``infra/``) matches the gitlink at ``infra`` too."""
        return self.matches(path) or (gitlink and self.matches(f"{path}/{GITLINK_PROBE}"))

    def first_match(self, paths: Iterable[str]) -> str | None:
        for path in paths:
            if self.matches(path):
                return path
        return None
