"""The hook's deadline (``settings.timeout``), on SIGALRM.

It raises :class:`Deadline`, which is not an ``Exception``: no library code's ``except Exception`` (a
fallback from one verifier to another, a retry) can swallow it and go on without a limit. The hook
disarms it once the push is judged, before anything is recorded.
"""

from __future__ import annotations

import signal
from types import FrameType


class Deadline(BaseException):
    """The hook's time is up. Not an ``Exception``: no library's ``except Exception`` (a fallback from
    one verifier to another, a retry) can swallow it and go on without a deadline."""


class Alarm:
    """The deadline, on SIGALRM. Once disarmed it cannot fire, even from a signal already pending."""

    def __init__(self) -> None:
        self.armed = False
        signal.signal(signal.SIGALRM, self._fire)

    def arm(self, seconds: int) -> None:
        self.armed = True
        signal.alarm(max(1, seconds))

    def disarm(self) -> None:
        self.armed = False
        signal.alarm(0)

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self.armed = False
            raise Deadline()
