"""Prize distribution: fees, then place shares with ties, split exactly by the largest-remainder method.

Pure integer arithmetic on minor units; nothing here rounds through a float.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from prizeflow_contracts.money import BPS_WHOLE, apply_bps, largest_remainder


@dataclass(frozen=True, slots=True)
class Finisher:
    player_id: str
    rank: int


@dataclass(frozen=True, slots=True)
class Award:
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


def distribute(distributable: int, shares_bps: Sequence[int], finishers: Sequence[Finisher]) -> Split:
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
    if not shares_bps or sum(shares_bps) != BPS_WHOLE or any(s < 0 for s in shares_bps):
        raise ValueError(f"place shares must be non-negative and sum to {BPS_WHOLE}")
    ordered = sorted(finishers, key=lambda f: (f.rank, f.player_id))
    groups: dict[int, list[Finisher]] = {}
    for f in ordered:
        groups.setdefault(f.rank, []).append(f)
    # Common denominator so each tied player's share of its group's bps is an integer weight.
    lcm = math.lcm(*(len(g) for g in groups.values())) if groups else 1
    weights: list[int] = []
    paid_bps = 0
    for rank, members in groups.items():
        first = rank - 1
        group_bps = sum(shares_bps[first : first + len(members)])
        paid_bps += group_bps
        weights.extend([group_bps * (lcm // len(members))] * len(members))
    unpaid_weight = (BPS_WHOLE - paid_bps) * lcm
    parts = largest_remainder(distributable, [*weights, unpaid_weight])
    awards = tuple(
        Award(player_id=f.player_id, rank=f.rank, amount=amount)
        for f, amount in zip(ordered, parts, strict=False)
        if amount > 0
    )
    return Split(distributable=distributable, awards=awards, remainder=parts[-1])


__all__ = ["Award", "Fees", "Finisher", "Split", "distribute", "fees_on", "is_non_increasing"]
