"""Prize distribution: fees, then place shares with ties, split exactly by the largest-remainder method.

Pure integer arithmetic on minor units; nothing here rounds through a float.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import NamedTuple, Protocol

from prizeflow_contracts.money import BPS_WHOLE, apply_bps, largest_remainder


class Ranked(Protocol):
    """Anything with a player and a rank: a `Finisher`, or a reported `Placement` as it is."""

    @property
    def player_id(self) -> str: ...

    @property
    def rank(self) -> int: ...


class Finisher(NamedTuple):
    player_id: str
    rank: int


class Award(NamedTuple):
    player_id: str
    rank: int
    amount: int


@dataclass(frozen=True, slots=True)
class Split:
    """`awards` (positive amounts only, best rank first) + `remainder` == `distributable`, always."""

    distributable: int
    awards: tuple[Award, ...]
    remainder: int


@dataclass(frozen=True, slots=True)
class Fees:
    platform: int
    organizer: int

    @property
    def total(self) -> int:
        return self.platform + self.organizer


def fees_on(amount: int, platform_bps: int, organizer_bps: int) -> Fees:
    """Each fee is the floor of its share; the sub-unit rounding stays with whoever holds `amount`."""
    if platform_bps + organizer_bps > BPS_WHOLE:
        raise ValueError("fees above 100% of the amount")
    return Fees(platform=apply_bps(amount, platform_bps), organizer=apply_bps(amount, organizer_bps))


def is_non_increasing(shares_bps: Sequence[int]) -> bool:
    return all(a >= b for a, b in itertools.pairwise(shares_bps))


_BY_RANK_THEN_PLAYER = attrgetter("rank", "player_id")


def distribute(distributable: int, shares_bps: Sequence[int], finishers: Sequence[Ranked]) -> Split:
    """Split `distributable` by place.

    Rules (README "Distribution"): finishers tied at rank r occupy places r..r+k-1 and share those places'
    basis points equally; places nobody occupies (fewer finishers than paid places) are unpaid and their
    share is the `remainder`, which stays in its source. Every player's exact (fractional) quota is computed
    with a common denominator and `largest_remainder` hands out the units left after flooring: largest
    fraction first, ties to the better rank, then to the smaller player id, the unpaid share last. So the
    parts sum exactly to the whole, tied players differ by at most one minor unit and, for non-increasing
    shares, a better rank never gets less than a worse one.
    """
    if distributable < 0:
        raise ValueError("cannot distribute a negative amount")
    if not shares_bps or sum(shares_bps) != BPS_WHOLE or min(shares_bps) < 0:
        raise ValueError(f"place shares must be non-negative and sum to {BPS_WHOLE}")
    ordered = sorted(finishers, key=_BY_RANK_THEN_PLAYER)
    # Tie groups in rank order: [first index, size].
    groups: list[list[int]] = []
    previous_rank = None
    for i, f in enumerate(ordered):
        if f.rank == previous_rank:
            groups[-1][1] += 1
        else:
            groups.append([i, 1])
            previous_rank = f.rank
    # Common denominator so each tied player's share of its group's bps is an integer weight.
    lcm = math.lcm(*(size for _, size in groups)) if groups else 1
    weights: list[int] = []
    paid_bps = 0
    for first, size in groups:
        place = ordered[first].rank - 1
        group_bps = sum(shares_bps[place : place + size])
        paid_bps += group_bps
        weights += [group_bps * (lcm // size)] * size
    weights.append((BPS_WHOLE - paid_bps) * lcm)  # the unpaid places
    parts = largest_remainder(distributable, weights)
    awards = tuple(Award(f.player_id, f.rank, amount) for f, amount in zip(ordered, parts, strict=False) if amount > 0)
    return Split(distributable=distributable, awards=awards, remainder=parts[-1])


__all__ = ["Award", "Fees", "Finisher", "Ranked", "Split", "distribute", "fees_on", "is_non_increasing"]
