"""The Stellar rail's batch rules, pure (no I/O): which queued payouts share an envelope, what a build failure
does to them, the envelope's time bound and the fee offered. `lanes.py` applies them inside the leader's
transaction; a payout is a batch of one when it must go alone.

Like `domain/compliance/gate.py`'s `decide`: plain inputs, one answer each, unit-tested without the books or the
network.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol, TypeVar


class Queued(Protocol):
    @property
    def isolate(self) -> bool: ...


Q = TypeVar("Q", bound=Queued)


def batch(queued: Sequence[Q]) -> list[Q]:
    """The payouts of the next envelope (`queued` in queue order, at most an envelope's operations): all of them,
    unless the first must go alone (`isolate`: a build of its batch failed, so each is built by itself)."""
    if queued and queued[0].isolate:
        return [queued[0]]
    return list(queued)


class BuildFailure(StrEnum):
    FAIL = "fail"  # the payout itself cannot be built: it fails
    ISOLATE = "isolate"  # one of several cannot be built: each goes again alone, to find which


def on_build_error(payouts: int) -> BuildFailure:
    """What a build error (a bad address, amount or asset) does to the envelope's payouts."""
    return BuildFailure.FAIL if payouts == 1 else BuildFailure.ISOLATE


def valid_until(now: float, network_time: int, validity_s: int) -> int:
    """The envelope's upper time bound: `validity_s` after the later of our clock and the network's (its latest
    ledger close), so a node whose clock runs ahead cannot make it expire before it is sent."""
    return max(int(now), network_time) + validity_s


class FeeLevel:
    """The per-operation fee offered: doubled after `tx_insufficient_fee` (never past the most an envelope of
    that many operations may cost), halved back towards the base after each success."""

    def __init__(self, base: int, most: int) -> None:
        self._base = base
        self._max = most
        self.current = base

    def raise_for(self, operations: int) -> None:
        ops = max(1, operations)
        self.current = min(self.current * 2, max(self._base, self._max // (ops + 1)))

    def relax(self) -> None:
        if self.current > self._base:
            self.current = max(self._base, self.current // 2)


__all__ = ["BuildFailure", "FeeLevel", "batch", "on_build_error", "valid_until"]
