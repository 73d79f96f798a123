"""PostReconciliationAdjustments: the ledger side of a reconciliation exception two people resolved by moving money.

Payouts emits `ReconciliationAdjusted` when a `write_off` or a `book_fee` is approved; rewards posts ONE transfer
treasury(asset) → provider_external(provider, asset) of its amount, so the rail's external account shows what the
provider's books show. The provider is the rail's TYPE (`stripe`, `stellar`, ...), the owner `PayoutPaid` credits
too, so a rail's external account holds its payouts and its adjustments alike.

Once per adjustment: the transfer id is derived from `adjustment_id` alone (not from its kind), so an adjustment
delivered again under any event id is a no-op, and the same id with other money (another amount, asset, provider
or kind) is a `transfer_conflict` of the ledger, refused as `conflicting_event` (dead-lettered), never absorbed.
The treasury has no balance rule (`KIND_FLAGS`): a loss is a loss and posts whatever the treasury holds.
Each transfer the ledger writes now is told to payouts as a `LedgerPosted` of kind `adjustment`
(`application/ledger_postings.py`), staged with the poll's other events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final

from prizeflow_contracts.envelope import Envelope, EventPayload, StagedEvent
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.payouts import AdjustmentKind, LedgerPostingKind, ReconciliationAdjusted
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.common import count_transfers
from prizeflow_rewards.application.ledger_postings import REWARDS_SOURCE, Posting, posted
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import AccountRef, LedgerError, Transfer, TransferKind, transfer_id
from prizeflow_rewards.metrics import RewardsMetrics

# Fees and write-offs are two flows for finance (an expense, a loss): one transfer kind each. Both share one
# business key per adjustment id, so the kind is part of the transfer's body and cannot be changed by a replay.
ADJUSTMENT_KINDS: Final[Mapping[AdjustmentKind, TransferKind]] = {
    AdjustmentKind.FEE: TransferKind.RECONCILIATION_FEE,
    AdjustmentKind.WRITE_OFF: TransferKind.RECONCILIATION_WRITE_OFF,
}
BUSINESS_KEY: Final = "reconciliation_adjustment"


def adjustment_accounts(data: ReconciliationAdjusted) -> list[AccountRef]:
    """The accounts an adjustment moves money between: treasury → the rail's external account, in its asset."""
    asset = data.amount.asset
    return [accounts.treasury(asset), accounts.external(data.provider.value, asset)]


def adjustment_transfer(data: ReconciliationAdjusted, *, correlation_id: str) -> Transfer:
    """The one transfer of an adjustment, its id `uuid5("reconciliation_adjustment|<adjustment id>")`."""
    debit, credit = adjustment_accounts(data)
    key = f"{BUSINESS_KEY}|{data.adjustment_id}"
    return Transfer(
        transfer_id(key),
        debit,
        credit,
        data.amount.amount,
        ADJUSTMENT_KINDS[data.kind],
        key,
        correlation_id=correlation_id,
    )


@dataclass
class PostReconciliationAdjustments:
    """A poll's `ReconciliationAdjusted` events → their transfers, in one ledger batch.

    The poll declares `accounts(envs)` in its one ordered lock (with its claims' accounts: `SettlePayout`), before
    any of its events is applied; `post_many` then waits for nobody. It runs after the poll's claim outcomes: it
    moves only treasury and external accounts, neither with a balance rule, and no claim outcome reads their
    balance, so the outcome is the one poll order gives."""

    metrics: RewardsMetrics | None = None
    source: str = field(default=REWARDS_SOURCE, kw_only=True)
    ACTS_ON: ClassVar[frozenset[str]] = frozenset({ReconciliationAdjusted.event_type()})

    @staticmethod
    def accounts(envs: Sequence[Envelope[EventPayload]]) -> set[AccountRef]:
        """Every account the poll's adjustments move (none if it has no adjustment)."""
        return {ref for _, data in _adjustments(envs) for ref in adjustment_accounts(data)}

    async def post_many(self, books: Books, envs: Sequence[Envelope[EventPayload]]) -> list[StagedEvent]:
        """The poll's adjustments as one batch (its other events are not this use case's). Should the ledger refuse
        the batch, each is tried alone in poll order (savepoints of the same transaction) to name the event to
        refuse: an id posted before with other money, or a second, different body of an id within the poll.
        Returns the `LedgerPosted` of the transfers written now, for the caller to stage with its poll's."""
        posting = [
            (env, data, adjustment_transfer(data, correlation_id=env.correlationid)) for env, data in _adjustments(envs)
        ]
        if not posting:
            return []
        try:
            result = await books.ledger.apply([t for _, _, t in posting])
        except LedgerError as err:
            for env, data, transfer in posting:
                try:
                    await books.ledger.apply([transfer])
                except LedgerError as alone:
                    raise EventRefusal("conflicting_event", _refused(data, alone), event_id=env.id) from alone
            raise EventRefusal("conflicting_event", f"the poll's reconciliation adjustments: {err.detail}") from err
        count_transfers(self.metrics, result)
        return posted((_posting(env, data, transfer) for env, data, transfer in posting), result, source=self.source)


def _posting(env: Envelope[EventPayload], data: ReconciliationAdjusted, transfer: Transfer) -> Posting:
    return Posting(
        transfer,
        LedgerPostingKind.ADJUSTMENT,
        data.provider,
        env,
        data.adjusted_at,
        payout_id=data.payout_id,
        adjustment_id=data.adjustment_id,
    )


def _adjustments(envs: Iterable[Envelope[EventPayload]]) -> list[tuple[Envelope[EventPayload], ReconciliationAdjusted]]:
    return [(env, env.data) for env in envs if isinstance(env.data, ReconciliationAdjusted)]


def _refused(data: ReconciliationAdjusted, err: LedgerError) -> str:
    return (
        f"reconciliation adjustment {data.adjustment_id} (exception {data.exception_id}: {data.kind.value} of "
        f"{data.amount.amount} {data.amount.asset} at {data.provider.value}): {err.code}: {err.detail}"
    )


__all__ = [
    "ADJUSTMENT_KINDS",
    "PostReconciliationAdjustments",
    "adjustment_accounts",
    "adjustment_transfer",
]
