"""Kafka handlers: decode → use case. Each runs on the consumer's `books`: its transaction, inbox rows claimed.

A poll is one transaction that applies event after event, each touching other accounts: so every handler
first takes every lock the whole poll needs (claims, then all ledger accounts, each set in its one global
order), and only then applies the events in poll order. No poll can deadlock with another poll, a claim,
a hold decision or an admin action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from prizeflow_contracts.envelope import Envelope, EventPayload
from prizeflow_contracts.errors import refusing
from prizeflow_contracts.events.game import PaidVia, PrizeSource
from prizeflow_contracts.events.settlement import EntryAccepted, RoundSettled
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.claims import ApplyComplianceEvents, SettlePayout, Waiting
from prizeflow_rewards.application.reconciliation import PostReconciliationAdjustments
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_rewards.application.topups import ApplyPaymentEvents
from prizeflow_runtime.logging import log_context


@dataclass
class RoundEventsHandler:
    """prizeflow.settlement.rounds.v1: EntryAccepted, RoundSettled, RoundVoided (settlement's decisions only)."""

    rounds: RoundMoney

    async def __call__(self, books: Books, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        """RoundSettled of sponsored rounds are gathered and paid together (`RoundMoney.settle_sponsored_many`),
        consecutive EntryAccepted are charged together (`RoundMoney.entries_many`); other events run one by one as
        they come. A gathered round is paid before any later event of the same
        round, and before a later wallet-paid entry that debits a wallet it credits, so no event sees the ledger
        differently than in poll order. Reordering across unrelated rounds is harmless: those events touch
        no account the gathered rounds debit with a balance rule (their pools) nor wallets they credit."""
        await self.rounds.prepare(books, envelopes)
        pending: list[Envelope[EventPayload]] = []
        rounds: set[str] = set()
        wallets: set[tuple[str, str]] = set()
        entries: list[Envelope[EventPayload]] = []  # consecutive EntryAccepted: their fees go in one ledger batch

        async def flush() -> None:
            if pending:
                await self.rounds.settle_sponsored_many(books, list(pending))
                pending.clear()
                rounds.clear()
                wallets.clear()

        async def charge() -> None:
            if len(entries) > 1 and await self.rounds.entries_many(books, entries):
                entries.clear()
            for entry in entries:
                await self._one(books, entry)
            entries.clear()

        for env in envelopes:
            data = env.data
            if isinstance(data, EntryAccepted):
                if pending and _depends(data, rounds, wallets):
                    await charge()
                    await flush()
                entries.append(env)
                continue
            await charge()  # every entry before this event is charged before it, as in poll order
            if isinstance(data, RoundSettled) and data.prize_source is PrizeSource.SPONSORED:
                if data.round_id in rounds:  # a replay of a gathered round: pay the first before looking again
                    await flush()
                pending.append(env)
                rounds.add(data.round_id)
                wallets.update((a.player_id, data.asset) for a in data.allocations)
                continue
            if pending and _depends(data, rounds, wallets):
                await flush()
            await self._one(books, env)
        await charge()
        await flush()

    async def _one(self, books: Books, env: Envelope[EventPayload]) -> None:
        with log_context(correlation_id=env.correlationid, event_id=str(env.id)), refusing(env.id):
            await self.rounds.handle(books, env)


def _depends(data: EventPayload, rounds: set[str], wallets: set[tuple[str, str]]) -> bool:
    round_id = getattr(data, "round_id", None)
    if round_id is None or round_id in rounds:
        return True
    if isinstance(data, EntryAccepted) and data.paid_via is PaidVia.WALLET:
        return (data.player_id, data.fee.asset) in wallets
    return False


@dataclass
class PayoutEventsHandler:
    """prizeflow.payouts.events.v1: post or void claim reservations; post reconciliation adjustments.

    One lock for the whole poll (`SettlePayout` takes its claims, then every account of its claims' outcomes and
    of its adjustments in one ordered lock); the claim outcomes in poll order, then the adjustments, which touch
    no account with a balance rule (`PostReconciliationAdjustments`). What both wrote on the rails' external
    accounts goes to payouts as `LedgerPosted`, in one outbox write for the poll. `adjust` defaults to one on the
    settlement's metrics and source. `compliance` (the risk policy, the players' verification): its players'
    locks first, the claims waiting for them locked with the poll's, decided after the outcomes."""

    settle: SettlePayout
    adjust: PostReconciliationAdjustments | None = None
    compliance: ApplyComplianceEvents | None = None
    _adjust: PostReconciliationAdjustments = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._adjust = self.adjust or PostReconciliationAdjustments(self.settle.metrics, source=self.settle.source)

    @property
    def acts_on(self) -> frozenset[str]:
        """The event types a poll's use cases do anything with: the consumer skips the others (PayoutApproved,
        PayoutSubmitted: a third of a payout's events) before decoding them and before the inbox."""
        compliance = self.compliance.ACTS_ON if self.compliance is not None else frozenset()
        return self.settle.ACTS_ON | self._adjust.ACTS_ON | compliance

    async def __call__(self, books: Books, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        waiting = await self.compliance.prepare(books, envelopes) if self.compliance is not None else Waiting()
        postings = await self.settle.settle_poll(
            books,
            envelopes,
            also={*self._adjust.accounts(envelopes), *waiting.accounts},
            claims=waiting.claim_ids,
        )
        postings += await self._adjust.post_many(books, envelopes)
        if self.compliance is not None:
            await self.compliance.apply(books, envelopes, waiting)
        await self.settle.stage_postings(books, postings)


@dataclass
class PaymentEventsHandler:
    """prizeflow.webhooks.provider-events.v1: top-up payments, refunds and disputes (payouts' events ignored)."""

    apply: ApplyPaymentEvents

    async def __call__(self, books: Books, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        await self.apply.prepare(books, envelopes)
        for env in envelopes:
            with log_context(correlation_id=env.correlationid, event_id=str(env.id)), refusing(env.id):
                await self.apply.handle(books, env)
