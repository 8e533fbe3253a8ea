"""Frozen value classes that cost next to nothing to define.

The hook starts on every push. ``dataclasses`` (with the ``inspect``, ``ast`` and ``copy`` it imports)
and the seven methods it compiles per class took about 35 ms of the 100 ms a one-commit push may add
(bench/README.md), so the value classes use ``@record`` instead. It gives a class what this code used
of ``@dataclass(frozen=True)``: an ``__init__`` over the annotated fields in order (a field with a class
default may be left out), equality and hashing over the fields, a ``repr``, and no assignment after
construction. ``replace`` copies a record with some fields changed. Type checkers see a frozen dataclass.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a few milliseconds at start-up; only the type checker needs it
if TYPE_CHECKING:
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**kwargs):
        return lambda decorated: decorated


class FrozenError(AttributeError):
    pass


@dataclass_transform(frozen_default=True)
def record(cls: type[T]) -> type[T]:
    fields = tuple(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063 (inspect is slow to import)
    defaults = {name: cls.__dict__[name] for name in fields if name in cls.__dict__}
    params = ", ".join(f"{name}=_defaults[{name!r}]" if name in defaults else name for name in fields)
    body = "".join(f"    _set(self, {name!r}, {name})\n" for name in fields) or "    pass\n"
    scope: dict[str, Any] = {"_set": object.__setattr__, "_defaults": defaults}
    exec(f"def __init__(self, {params}):\n{body}", scope)  # one small function per class, as dataclass does
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"

    def values(self: Any) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in fields])

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return values(self) == values(other)

    def __hash__(self: Any) -> int:
        return hash(values(self))

    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in fields)
        return f"{cls.__qualname__}({shown})"

    def __setattr__(self: Any, name: str, value: Any) -> None:
        raise FrozenError(f"cannot assign to field {name!r} of a {cls.__name__}")

    def __delattr__(self: Any, name: str) -> None:
        raise FrozenError(f"cannot delete field {name!r} of a {cls.__name__}")

    for method in (init, __eq__, __hash__, __repr__, __setattr__, __delattr__):
        setattr(cls, method.__name__, method)
    cls.__record_fields__ = fields  # type: ignore[attr-defined]
    return cls


def replace(obj: T, **changes: Any) -> T:
    """A copy of the record ``obj`` with the given fields changed."""
    fields: tuple[str, ...] = obj.__record_fields__  # type: ignore[attr-defined]
    unknown = changes.keys() - set(fields)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    return type(obj)(**{name: changes[name] if name in changes else getattr(obj, name) for name in fields})
