"""Progress on stderr while a long push is judged, the way Git shows its own remote progress: one
counted line, rewritten in place (``\\r``), that ends with ``, done.`` Shown only once judging has
taken ``after`` seconds and read ``least`` commits: a small push prints nothing but its verdict, even
when it waits (for a lock, a slow disk)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

TITLE = "stepup-git: checking commits"
AFTER = 1.0  # seconds of judging before progress is shown
EVERY = 0.25  # seconds between two updates of the line
LEAST = 256  # commits read before a line is worth showing


class Progress:
    def __init__(self, out: TextIO, *, after: float = AFTER, least: int = LEAST,
                 clock: Callable[[], float] = time.monotonic, title: str = TITLE) -> None:
        self.out = out
        self.after = after
        self.least = least
        self.clock = clock
        self.title = title
        self.count = 0
        self._start = clock()
        self._shown_at: float | None = None  # when the line was last written; None: not shown yet
        self._ended = False

    def tick(self, n: int = 1) -> None:
        """``n`` more commits were read."""
        self.count += n
        now = self.clock()
        if self._ended or now - self._start < self.after or self.count < self.least:
            return
        if self._shown_at is None or now - self._shown_at >= EVERY:
            self._shown_at = now
            self.out.write(f"{self.title}: {self.count}\r")
            self.out.flush()

    def done(self) -> None:
        """End the line (only if it was shown): ``..., done.``"""
        if self._shown_at is not None and not self._ended:
            self.out.write(f"{self.title}: {self.count}, done.\n")
            self.out.flush()
        self._ended = True
