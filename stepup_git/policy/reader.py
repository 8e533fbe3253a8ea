"""Reading the parsed TOML of a policy file: typed values out of its tables, each problem at its line.

``tomllib`` gives values without their lines, so :class:`Lines` finds them again in the text, by table,
array index and key name, for messages of the form ``PATH:LINE: message``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any


class Lines:
    """Finds the line of a key in the TOML text, by table, array index and key name."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")
    _INLINE_KEY = re.compile(r"[{,]\s*([A-Za-z0-9_-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.where: dict[tuple[str, int, str | None], int] = {}
        table, index, counts = "", 0, {}  # type: tuple[str, int, dict[str, int]]
        inline: str | None = None  # inside `keys = [ {...}, ... ]` or `rules = [ ... ]`
        for lineno, line in enumerate(text.splitlines(), start=1):
            if inline is not None and line.lstrip().startswith("{"):
                n = counts[inline] = counts.get(inline, -1) + 1
                self.where.setdefault((inline, n, None), lineno)
                for key in self._INLINE_KEY.findall(line):
                    self.where.setdefault((inline, n, key), lineno)
                continue
            if inline is not None and line.strip().startswith("]"):
                inline = None
                continue
            if m := self._HEADER.match(line):
                table = m.group(2)
                if m.group(1) == "[[":
                    index = counts[table] = counts.get(table, -1) + 1
                else:
                    index = 0
                self.where.setdefault((table, index, None), lineno)
            elif m := self._KEY.match(line):
                name = m.group(1).strip('"')
                self.where.setdefault((table, index, name), lineno)
                if table == "" and name in ("keys", "rules") and line.rstrip().endswith("["):
                    inline = name

    def of(self, table: str, index: int = 0, key: str | None = None) -> int:
        """The line of ``key`` in the ``index``-th ``table`` (the top level is ""); a top-level name that
        is a table of its own (``[[rule]]``, a typo) is found at its header."""
        header = self.where.get((key, 0, None)) if table == "" and key else None
        return (self.where.get((table, index, key)) or header or self.where.get((table, index, None))
                or self.where.get(("", 0, table)) or 1)  # inline tables: the line of their key


class Reader:
    """Takes typed values out of the parsed TOML tables of one policy file, and collects each problem
    and warning as ``PATH:LINE: message``."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = Lines(text)
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def error(self, line: int, message: str) -> None:
        self.problems.append(f"{self.path}:{line}: {message}")

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(f"{self.path}:{line}: warning: {message}")

    def unknown_keys(self, table: Mapping[str, Any], allowed: set[str], where: str, index: int = 0) -> None:
        for name in table:
            if name not in allowed:
                line = self.lines.of(where, index, name)
                self.error(line, f"unknown key {name!r} in {_label(where, index)}; "
                           f"allowed: {', '.join(sorted(allowed))}")

    def take(
        self,
        table: Mapping[str, Any],
        name: str,
        kind: type | tuple[type, ...],
        where: str,
        index: int = 0,
        *,
        default: Any = None,
        required: bool = False,
        convert: Callable[[Any], Any] | None = None,
    ) -> Any:
        line = self.lines.of(where, index, name)
        if name not in table:
            if required:
                self.error(self.lines.of(where, index), f"{_label(where, index)} needs {name!r}")
            return default
        value = table[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.error(line, f"{name!r} must be {_kind_name(kind)}, not {_kind_name(type(value))}")
            return default
        if convert is not None:
            try:
                return convert(value)
            except ValueError as exc:
                self.error(line, f"{name!r}: {exc}")
                return default
        return value

    def string_list(self, table: Mapping[str, Any], name: str, where: str, index: int) -> list[str] | None:
        value = table.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(self.lines.of(where, index, name), f"{name!r} must be a list of strings")
            return None
        if not value:
            self.error(self.lines.of(where, index, name), f"{name!r} must not be empty")
            return None
        return value


def _label(where: str, index: int) -> str:
    if where in ("authorities", "keys", "rules"):
        return f"[[{where}]] #{index + 1}"
    return f"[{where}]" if where else "the top level"


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table",
             date: "a date (e.g. 2027-06-30)", float: "a number", datetime: "a date and time"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)
