"""Ports of the payouts use cases, next to them (STYLE: ports are Protocols beside the use cases).

`PayoutRepository`, `Disagreements` and `PayoutGauges` are stores of one transaction (SQL in production, in memory
in unit tests), reached through the unit of work's `Books` (`application/books.py`). `RewardPayoutProvider` itself
lives in the contracts; a rail's optional parts are the ports of `application/rail.py`, named when the rail registers
(`Rail`), never discovered at run time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutProviderError
from prizeflow_contracts.providers import ProviderPayoutResult, ProviderPayoutStatus
from prizeflow_payouts.domain.disagreement import Conclusion, Disagreement
from prizeflow_payouts.domain.payout import Change, HistoryEntry, Payout, RequestRefusal
from prizeflow_runtime.errors import ErrorKind, UseCaseError

CreateOutcome = ProviderPayoutResult | PayoutProviderError
# What `PayoutRepository.stuck` counts (the `kind` of `prizeflow_payouts_stuck`).
STUCK_KINDS: Final = ("stale_leases", "unconfirmed", "unknown_outcome")


class PayoutRepository(Protocol):
    """One transaction's view of the payouts: everything read, written and staged here commits together.

    Batch-shaped on purpose: a worker pass or a consumer poll handles many payouts in one call each.
    """

    async def find_existing(
        self, keys: Sequence[str], request_ids: Sequence[str], claim_ids: Sequence[str] = ()
    ) -> list[Payout]:
        """Payouts named by any of these idempotency keys, request ids or claims."""
        ...

    async def insert_new(self, payouts: Sequence[Payout]) -> set[str]:
        """Insert payouts; one whose idempotency key, request id or claim exists is skipped. Returns inserted ids."""
        ...

    async def find_refusals(self, claim_ids: Sequence[str]) -> dict[str, RequestRefusal]:
        """Refused requests by claim id."""
        ...

    async def insert_refusals(self, refusals: Sequence[RequestRefusal]) -> set[str]:
        """Store refusals; returns the claim ids stored now (the others were refused before)."""
        ...

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        """Stage events in the outbox of this transaction."""
        ...

    async def end_leases(self, leases: Sequence[tuple[str, uuid.UUID]]) -> int:
        """End these `submitting` payouts' leases now (each only while it still carries that lease token): a worker
        stopping with payouts it never sent. How many were ended."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back). It runs inside the commit:
        it must not block or raise (hand something over, wake a job)."""
        ...

    async def get(self, payout_id: str, *, for_update: bool = False) -> Payout | None: ...

    async def find_for_provider_event(
        self, provider_type: str, provider_ref: str | None, key: str | None
    ) -> Payout | None:
        """The payout of this provider type a provider event names (by idempotency key, or provider ref), locked."""
        ...

    async def claim_for_submit(self, *, owner: str, limit: int, lease_s: float) -> list[Payout]:
        """Due payouts moved to `submitting` under a fresh lease (each knows its `previous_state`)."""
        ...

    async def claim_for_sync(self, *, owner: str, providers: Sequence[str], limit: int, lease_s: float) -> list[Payout]:
        """Submitted payouts due for a status sync, leased to `owner`."""
        ...

    async def next_due_in(self, *, providers: Sequence[str]) -> float | None:
        """Seconds until the worker's next claim finds something (an approved payout available, a retry, a lease
        ending, a status sync of `providers`): 0 or less if one is due now, None if nothing waits for a pass."""
        ...

    async def apply(self, changes: Sequence[Change], *, at: datetime) -> list[Change]:
        """Apply guarded changes (still in `expected`, and still leased by `token` when set); stage history,
        attempts and events of those that applied. Returns them."""
        ...

    async def stage(self, changes: Sequence[Change], *, at: datetime) -> None:
        """History, attempts and events of changes already written (or that change no row)."""
        ...

    async def add_history(self, entries: Sequence[tuple[str, HistoryEntry]], *, at: datetime) -> None:
        """History rows by payout id."""
        ...

    async def approvers(self, payout_id: str) -> list[str]:
        """Who approved this payout so far, in order."""
        ...

    async def add_approval(
        self, payout_id: str, approver: str, *, reason: str | None, correlation_id: str, at: datetime
    ) -> bool:
        """False when this approver already approved."""
        ...

    async def record_provider_event(
        self, provider: str, event_id: str, *, payout_id: str | None, status: str | None, outcome: str
    ) -> bool:
        """False for a provider event seen before (however it was delivered)."""
        ...

    async def payouts_for_update(self, payout_ids: Sequence[str]) -> dict[str, Payout]:
        """These payouts as they are now, locked until the transaction ends."""
        ...

    async def next_route_announcement(self, digest: str, at: datetime) -> int | None:
        """The sequence number for announcing routes with `digest`, or None if they were the last announced."""
        ...

    async def record_statement_fees(
        self, provider: str, learned: Sequence[tuple[str, str, int]], *, run_id: str, at: datetime
    ) -> int:
        """Record on each payout of `provider` (id, asset, amount) the fee a statement was the first answer to carry,
        only where none is recorded yet, with a history entry naming reconciliation's run; how many."""
        ...


class DirectSends(Protocol):
    """The worker of this process, taking auto-approved payouts straight from the transaction that created them
    (`CreatePayouts`): they are stored `submitting` under its lease, so no worker pass has to find, lock and claim
    them, and handed to it once that transaction commits. Those it never sends (the process dies first, or they waited
    longer than a send may take of their lease) are claimed again when the lease ends, asking their provider first."""

    @property
    def owner(self) -> str: ...

    @property
    def lease_s(self) -> float: ...

    def room(self) -> int:
        """How many more payouts it takes now (it holds at most a few batches: the rest are claimed as before)."""
        ...

    def accept(self, payouts: Sequence[Payout]) -> None:
        """Payouts claimed for it by a transaction that has committed: sent in its next pass."""
        ...


class Disagreements(Protocol):
    """Providers' reports that contradict where a payout is: checked again, concluded, or left to a person."""

    async def add_disagreement(
        self, payout: Payout, *, provider: str, reported: ProviderPayoutStatus, source_ref: str | None, at: datetime
    ) -> bool:
        """Record a provider's report that contradicts where `payout` is, to be checked now; False if the payout
        already has an open disagreement (checking, or waiting for a person)."""
        ...

    async def claim_disagreements(self, *, limit: int, lease_s: float) -> list[Disagreement]:
        """Disagreements whose check is due, each leased for `lease_s` (counted as one more check)."""
        ...

    async def conclude_disagreements(self, conclusions: Sequence[Conclusion], *, at: datetime) -> list[Conclusion]:
        """Write each conclusion if its disagreement is still at the check it was claimed for; returns those."""
        ...

    async def acknowledge_disagreement(
        self, disagreement_id: int, *, by: str, reason: str, at: datetime
    ) -> dict[str, Any] | None:
        """A contradiction a person has decided on; None if there is no such contradiction waiting."""
        ...

    async def open_contradictions(self) -> list[tuple[str, int]]:
        """(provider name, count) of contradictions waiting for a person."""
        ...


class PayoutGauges(Protocol):
    """What the payout gauges count (one read each)."""

    async def counts(self) -> list[tuple[str, str, int]]:
        """(state, provider name, count) for the gauges."""
        ...

    async def queue_length(self) -> int: ...

    async def stuck(
        self, *, submitted_older_s: float, operator_after_s: Mapping[str, float], default_operator_after_s: float
    ) -> list[tuple[str, str, int]]:
        """(kind, provider name, count) of the payouts waiting on recovery or on an operator, kinds `STUCK_KINDS`:
        `stale_leases` (claimed, the lease ran out: its worker died or a pass outlasted it), `unconfirmed`
        (submitted over `submitted_older_s` ago), `unknown_outcome` (may be at the provider, which could not say,
        for longer than the provider's operator threshold: `operator_after_s` by provider name, else the default).
        A provider with nothing in flight nor in doubt may be left out."""
        ...


@dataclass(frozen=True, slots=True)
class ListFilter:
    state: str | None = None
    provider: str | None = None
    asset: str | None = None
    player_id: str | None = None
    older_than_s: int | None = None
    newer_than_s: int | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class PayoutTrail:
    """A payout's milestones, for a flow's timeline (never its destination's address or memo)."""

    payout_id: str
    claim_id: str
    asset: str
    amount: int
    provider: str
    destination_type: str
    created_at: datetime
    history: list[dict[str, Any]]  # from_state, to_state, at, actor, reason, error_code, attempt
    attempts: list[dict[str, Any]]  # attempt, kind, finished_at, outcome, error_code
    approvals: list[dict[str, Any]]  # approver_id, decided_at
    provider_events: list[dict[str, Any]]  # status, outcome, received_at


@dataclass(frozen=True, slots=True)
class RefusalTrail:
    claim_id: str
    code: str
    refused_at: datetime


class PayoutTimelineQueries(Protocol):
    async def payouts_of(self, correlation_id: str, *, limit: int) -> list[PayoutTrail]:
        """The payouts of one flow (a correlation id), each with its history, attempts, approvals and provider
        events in order."""
        ...

    async def refusals_of(self, correlation_id: str, *, limit: int) -> list[RefusalTrail]:
        """Payout requests of the flow that were refused before any payout existed."""
        ...


class PayoutQueries(PayoutTimelineQueries, Protocol):
    """Read side for the admin API (rows as the API shows them), the flows' timeline included."""

    async def list_payouts(self, f: ListFilter) -> list[dict[str, Any]]: ...

    async def get_payout(self, payout_id: str) -> dict[str, Any] | None:
        """The payout row with its `history`, `attempts` and `approvals`."""
        ...

    async def provider_name(self, payout_id: str) -> str | None: ...

    async def list_disagreements(self, *, status: str | None, limit: int) -> list[dict[str, Any]]:
        """Provider reports that disagreed with a payout's state, newest first."""
        ...

    async def get_disagreement(self, disagreement_id: int) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class SourceProgress:
    """One source account of a rail, named by its configured role (`funding`, `channel-<n>`), never its key."""

    account: str
    sequence: int  # the last sequence number a transaction that landed consumed (0: none yet)
    advanced_at: float  # unix time that transaction landed (0: never)


@dataclass(frozen=True, slots=True)
class RailProgress:
    """How far a rail that sends from its own source accounts got: what the "sequence stuck" alert reads."""

    sources: tuple[SourceProgress, ...]
    oldest_waiting_s: float  # age of the oldest payout it holds that has not landed (0: none waiting)


@dataclass(frozen=True, slots=True)
class ProviderBalance:
    """A rail's balance in its account at the provider, in one currency, in integer minor units (paise for INR),
    and the operator's low-balance threshold for it (None: none set, no alert)."""

    currency: str
    available: int
    low_below: int | None = None


class SignerResults(Protocol):
    """TransactionSigned / SignatureRefused, applied in the consumer's transaction by the rails that sign through
    the signer service."""

    async def record(self, envelopes: Sequence[Envelope[Any]]) -> None: ...


class ExternalSigningError(UseCaseError):
    """An externally signed envelope was refused; `code` is stable."""

    def __init__(self, kind: ErrorKind, code: str, detail: str) -> None:
        super().__init__(kind, code, detail)


__all__ = [
    "STUCK_KINDS",
    "CreateOutcome",
    "Disagreements",
    "ExternalSigningError",
    "ListFilter",
    "PayoutGauges",
    "PayoutQueries",
    "PayoutRepository",
    "PayoutTimelineQueries",
    "PayoutTrail",
    "ProviderBalance",
    "RailProgress",
    "RefusalTrail",
    "SignerResults",
    "SourceProgress",
]
