"""Direct sends (ADR 0016): a payout claimed for this process's worker by the transaction that creates it, and
handed to the worker once that transaction commits.

`straight_to_worker`, `as_stored`, `record_sends` and `hand_over` are the creating side (`CreatePayouts`); `Handed` is
the worker's side, the `DirectSends` the creating side is given: what waits to be sent, bounded, in batches.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.gate import DecisionRecord, PayoutGate
from prizeflow_payouts.application.ports import DirectSends
from prizeflow_payouts.domain.gate import GateDecision, Stage
from prizeflow_payouts.domain.payout import Payout
from prizeflow_payouts.domain.state import PayoutState

log = logging.getLogger(__name__)


async def straight_to_worker(
    direct: DirectSends,
    gate: PayoutGate | None,
    books: Books,
    payouts: Sequence[Payout],
    decisions: Mapping[str, GateDecision],
) -> dict[str, GateDecision | None]:
    """The auto-approved payouts to store claimed for this process's worker, each with its send-stage allow (None
    without a gate): as many as it has room for of those whose request-time allow already stands at send
    (`PayoutGate.standing_at_once`). The rest stay `approved`, for a worker pass to find."""
    room = direct.room()
    ready = [p for p in payouts if p.state is PayoutState.APPROVED]
    if room <= 0 or not ready:
        return {}
    stands: dict[str, GateDecision] = {}
    if gate is not None:
        stands = await gate.standing_at_once(books, {p.id: decisions[p.id] for p in ready if p.id in decisions})
        ready = [p for p in ready if p.id in stands]
    return {p.id: stands.get(p.id) for p in ready[:room]}


def as_stored(
    direct: DirectSends | None,
    payouts: Sequence[Payout],
    decisions: Mapping[str, GateDecision],
    sends: Mapping[str, GateDecision | None],
    now: datetime,
) -> list[Payout]:
    """Each payout with its request-time allow's stamp, and, sent straight to the worker, the claim a worker pass
    would make (`submitting` under its lease, attempt 1): one copy of each."""
    out = []
    for p in payouts:
        decided = decisions.get(p.id)
        stamp = decided.stamp if decided is not None else None
        if p.id in sends and direct is not None:
            stored = replace(
                p,
                gate_stamp=stamp,
                state=PayoutState.SUBMITTING,
                previous_state=PayoutState.APPROVED,
                attempts=1,
                lease_owner=direct.owner,
                lease_token=uuid.uuid4(),
                lease_until=now + timedelta(seconds=direct.lease_s),
            )
        else:
            stored = replace(p, gate_stamp=stamp) if stamp else p
        out.append(stored)
    return out


async def record_sends(
    gate: PayoutGate, books: Books, created: Sequence[Payout], sends: Mapping[str, GateDecision | None], now: datetime
) -> None:
    """The send-stage allows of the payouts stored claimed for the worker, in their creation's transaction."""
    at_send = [(rec, d) for rec in created if (d := sends.get(rec.id)) is not None]
    if at_send:
        await books.holds.record_decisions(
            [DecisionRecord(rec.id, rec.claim_id, rec.player_id, Stage.SEND, d, now) for rec, d in at_send]
        )
        gate.count(Stage.SEND, [d for _, d in at_send])


def hand_over(direct: DirectSends, books: Books, created: Sequence[Payout]) -> None:
    """The payouts stored claimed for the worker, handed to it once this transaction commits (never on a rollback)."""
    claimed = [rec for rec in created if rec.state is PayoutState.SUBMITTING]
    if claimed:
        books.payouts.after_commit(partial(direct.accept, claimed))


class Handed:
    """The payouts handed to one worker (`DirectSends`), waiting for its next pass."""

    def __init__(
        self, owner: str, lease_s: float, batch_size: int, sends_in_flight: int, provider_timeout_s: float
    ) -> None:
        self._owner, self._lease_s, self._batch_size = owner, lease_s, batch_size
        self._capacity = 2 * sends_in_flight * batch_size
        # What a send may need of a payout's lease: the longer of half the lease and the lease less a provider call.
        self._need_s = max(lease_s / 2, lease_s - provider_timeout_s)
        self._batches: deque[list[Payout]] = deque()
        self._count = 0
        self._closed = False
        self.on_handoff: Callable[[], None] | None = None  # wakes the worker's job (set where it is scheduled)

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def lease_s(self) -> float:
        return self._lease_s

    @property
    def waiting(self) -> bool:
        return bool(self._batches)

    def room(self) -> int:
        """At most as many payouts waiting here as the batches a pass keeps at its providers, twice over: they are
        sent within a pass or two, well inside their lease; past that, new payouts are left `approved` for a pass to
        claim. None once the worker is stopping (`stop_taking`). Read before the creating transaction commits and not
        reserved: concurrent consumer lanes can each fill it, so it is exceeded by at most a poll per lane."""
        return 0 if self._closed else max(0, self._capacity - self._count)

    def accept(self, payouts: Sequence[Payout]) -> None:
        # Runs inside the creating transaction's commit: batches at most `batch_size` long, so that a send of a
        # handed batch takes no longer than a claimed one's.
        for start in range(0, len(payouts), self._batch_size):
            self._batches.append(list(payouts[start : start + self._batch_size]))
        self._count += len(payouts)
        if payouts and self.on_handoff is not None:
            self.on_handoff()

    def take(self) -> list[Payout]:
        """The next batch, without the payouts whose lease has less left than a send may need: left to its end, when
        a pass claims them again, asking their provider first."""
        if not self._batches:
            return []
        batch = self._batches.popleft()
        self._count -= len(batch)
        fresh_until = datetime.now(UTC) + timedelta(seconds=self._need_s)
        keep = [p for p in batch if p.lease_until is not None and p.lease_until > fresh_until]
        if len(keep) < len(batch):
            log.warning(
                "%d payouts handed over waited too long for their lease: claimed again when it ends",
                len(batch) - len(keep),
            )
        return keep

    def stop_taking(self) -> None:
        """No more payouts handed over (the process is stopping): new ones are stored `approved`, for any pass."""
        self._closed = True

    def drain(self) -> list[Payout]:
        """Everything still waiting, taken out."""
        waiting = [p for batch in self._batches for p in batch]
        self._batches.clear()
        self._count = 0
        return waiting


__all__ = ["Handed", "as_stored", "hand_over", "record_sends", "straight_to_worker"]
