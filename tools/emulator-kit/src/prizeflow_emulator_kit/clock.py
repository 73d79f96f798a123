"""The emulated provider's clock: wall time plus an offset tests move forward (`advance`), or stopped (`freeze`).

A provider's slow facts — a bank return three hours after a payout was processed, an FX rate published every hour and
then no more — are tested by moving this clock, never by waiting. Time only moves forward: `advance` refuses a
negative step, so what an emulator scheduled "at t" is never undone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Clock:
    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self.offset_s = 0.0
        self._frozen_at: float | None = None

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def now(self) -> float:
        """The emulated time, in Unix seconds."""
        return self._frozen_at if self._frozen_at is not None else self._source() + self.offset_s

    def advance(self, seconds: float) -> float:
        """Move the clock `seconds` forward (also while frozen); the new time."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0: the clock only moves forward")
        if self._frozen_at is not None:
            self._frozen_at += seconds
        else:
            self.offset_s += seconds
        return self.now()

    def freeze(self, *, frozen: bool) -> None:
        """Stop the clock where it is, or let it run again from there."""
        if frozen and self._frozen_at is None:
            self._frozen_at = self.now()
        elif not frozen and self._frozen_at is not None:
            self.offset_s = self._frozen_at - self._source()
            self._frozen_at = None

    def reset(self) -> None:
        self.offset_s, self._frozen_at = 0.0, None

    def to_json(self) -> dict[str, Any]:
        return {"now": self.now(), "offset_s": self.offset_s, "frozen": self.frozen}


__all__ = ["Clock"]
