"""Reconciliation's published interface: all another payouts context may import of it (docs/adr/0011).

What a rail registers: a `StatementReader` (its provider's listing of what it did with our money, page by page, as
`StatementLine`s), whether its payout lines already hold their fees, and, for a rail whose unknown outcomes a person
settles, its `SettlesUnknownOutcome`. The composition root registers one `RailStatement` per configured provider in
`Statements`; reconciliation reads that, never the provider object (no `isinstance` on a rail).

What the payout lifecycle hands reconciliation: what the ledger booked on the rails' accounts (`LedgerPostings`,
written in the payout-requests consumer's transaction); and what reconciliation asks of the lifecycle: a payout
returned by two people's decision (`PayoutReturns`, in reconciliation's transaction, so the exception and the
payout change commit together). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from prizeflow_contracts.events.payouts import LedgerPosted
from prizeflow_contracts.providers import ProviderType, StatementLine, StatementLineKind, StatementPage
from prizeflow_runtime.errors import UseCaseError


class ReconError(UseCaseError):
    """A reconciliation request refused (a rail's settler raises it too): problem details at the HTTP edge."""


class StatementReader(Protocol):
    """What the provider did with our money, from its own listing API.

    `statement` returns the lines whose `occurred_at` is in [since, until), one page at a time: pass the previous
    page's `next_cursor` to get the next. The same window and cursor give the same lines (a run is resumable); a
    provider error raises `PayoutProviderError` (retryable kinds for outages)."""

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage: ...


class SettlesUnknownOutcome(Protocol):
    """A rail whose unknown outcomes a person settles (the exchange): record what the provider's history shows
    (`found_ref`: the provider's id of the payment found; None: it was never made). Refuses with `ReconError`."""

    async def settle_unknown_outcome(self, payout_id: str, found_ref: str | None, actor: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RailStatement:
    """One configured provider as reconciliation knows it. `reader` None: it lists nothing (its runs are refused
    `no_statement`); `fees_inside`: its payout lines hold their fees (the exchange's gross withdrawals);
    `lists_within`: how late its statement may list a movement (a window is run once that long has passed too)."""

    provider: str  # the provider's configured name
    provider_type: ProviderType
    reader: StatementReader | None = None
    fees_inside: bool = False
    settler: SettlesUnknownOutcome | None = None
    lists_within: timedelta = timedelta(0)


class Statements:
    """Every configured provider's `RailStatement`, by name, in the order they were registered."""

    def __init__(self, rails: Iterable[RailStatement] = ()) -> None:
        self._rails: dict[str, RailStatement] = {}
        for rail in rails:
            self.register(rail)

    def register(self, rail: RailStatement) -> None:
        if rail.provider in self._rails:
            raise ValueError(f"provider {rail.provider!r} registered its statement twice")
        self._rails[rail.provider] = rail

    def get(self, provider: str) -> RailStatement:
        """Raises `LookupError` for a provider nobody registered."""
        try:
            return self._rails[provider]
        except KeyError:
            raise LookupError(provider) from None

    def listed(self) -> list[str]:
        """The providers with a statement: what the schedule reconciles."""
        return [name for name, rail in self._rails.items() if rail.reader is not None]

    def __iter__(self) -> Iterator[RailStatement]:
        return iter(self._rails.values())


class LedgerPostings(Protocol):
    """What the ledger booked on the rails' accounts (`LedgerPosted`), kept once per ledger transfer, in the
    transaction of the consumer that read them."""

    async def record(self, postings: Sequence[LedgerPosted]) -> None: ...


@dataclass(frozen=True, slots=True)
class HeldPayout:
    """A payout as the lifecycle holds it, locked for the rest of the transaction."""

    payout_id: str
    state: str
    amount: int


class ReturnOutcome(StrEnum):
    RETURNED = "returned"  # paid → returned, `PayoutReturned` staged (rewards credits the wallet back)
    NOT_RETURNABLE = "not_returnable"  # the lifecycle's transitions refuse it
    CHANGED = "concurrent_change"  # the payout changed meanwhile


class PayoutReturns(Protocol):
    """The payout lifecycle's side of what reconciliation decides, bound to reconciliation's transaction: a
    `mark_returned` resolution, and the fees a statement was the first to carry. The lifecycle writes its own
    tables; reconciliation never names them (tests/architecture/test_context_data.py)."""

    async def locked(self, payout_id: str) -> HeldPayout | None:
        """The payout, locked for update; None: no such payout."""
        ...

    async def mark_returned(self, payout_id: str, *, actor: str, at: datetime) -> ReturnOutcome:
        """paid → returned, as for a provider's own return (its events staged in this transaction)."""
        ...

    async def record_fees(
        self, provider: str, learned: Sequence[tuple[str, str, int]], *, run_id: str, at: datetime
    ) -> int:
        """Record on each payout of `provider` (id, asset, amount) the fee its statement was the first answer to
        carry, only where none is recorded yet (a fee once recorded is never rewritten), on record in its history
        (run `run_id`); how many."""
        ...


__all__ = [
    "HeldPayout",
    "LedgerPostings",
    "PayoutReturns",
    "RailStatement",
    "ReconError",
    "ReturnOutcome",
    "SettlesUnknownOutcome",
    "StatementLine",
    "StatementLineKind",
    "StatementPage",
    "StatementReader",
    "Statements",
]
