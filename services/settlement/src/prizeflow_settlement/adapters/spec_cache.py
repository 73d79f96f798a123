"""SpecCache: the round terms of the live rounds, kept in memory so the hot path neither reads nor re-validates them."""

from __future__ import annotations

from collections.abc import Iterable

from prizeflow_contracts.events.game import RoundOpened


class SpecCache:
    """Round terms (the validated RoundOpened) by round id, so the hot path neither reads nor re-validates
    them for every event of a round.

    Sound because a round's terms never change once the round exists: the code never updates them and a
    trigger (migration 0004) refuses any UPDATE that would, and rounds are never deleted. A spec is cached
    only when its row is known to be committed: as read by `lock_rounds` (the first statement of its
    transaction on `rounds`, so it sees committed rows only), or after the commit of the transaction that
    opened the round. A rolled-back RoundOpened never reaches the cache. A round that settled or was voided
    leaves it once that is committed (events of a finished round are late duplicates at most), so it holds the
    live rounds, not the last `capacity` ever opened: ~3 KB each, a full cache of 20,000 was 60 MB that a soak read
    as a leak. Bounded all the same: the oldest entry goes first; a miss costs one extra query for the whole poll.
    Capacity 0 disables it.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._specs: dict[str, RoundOpened] = {}

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, round_id: str) -> RoundOpened | None:
        return self._specs.get(round_id)

    def put(self, round_id: str, spec: RoundOpened) -> None:
        if not self.capacity:
            return
        specs = self._specs
        if round_id not in specs and len(specs) >= self.capacity:
            del specs[next(iter(specs))]
        specs[round_id] = spec

    def put_many(self, specs: Iterable[tuple[str, RoundOpened]]) -> None:
        for round_id, spec in specs:
            self.put(round_id, spec)

    def forget(self, round_ids: Iterable[str]) -> None:
        for round_id in round_ids:
            self._specs.pop(round_id, None)


__all__ = ["SpecCache"]
