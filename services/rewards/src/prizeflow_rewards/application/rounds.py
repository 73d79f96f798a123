"""Money from rounds: entry fees, prizes (one linked batch per round), fee revenue, refunds of voided rounds.

Every movement follows settlement's decision (its topic), never the game feed: an entry fee is charged on
EntryAccepted, into the round's own escrow account, which the ledger never lets pay out more than it took
in. Transfer ids come from round/entry/player keys (`domain/rounds.py`), so a RoundSettled delivered twice (or
re-emitted by settlement with a new event id) credits each player once. A sponsored round whose pool cannot pay
all of it is not paid in part: its allocations are held until an admin tops the pool up and releases them
(`held_rounds.ReleaseHeldRounds`).

Every account an event (or a whole consumer poll, `prepare`) may touch is declared to the ledger before the
first transfer, in one ordered lock: the ledger takes accounts in one global order per transaction. The poll's
`books` are the consumer's transaction's, with its inbox rows claimed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prizeflow_contracts.envelope import Envelope, EventPayload, event_id_for, follow
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.game import PrizeSource
from prizeflow_contracts.events.rewards import PoolExhausted, PoolLow, RefundIssued, RewardAllocated
from prizeflow_contracts.events.settlement import EntryAccepted, RoundSettled, RoundVoided
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.common import Clock, count_transfers, utcnow
from prizeflow_rewards.application.ports import HeldRound
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import Campaign, CampaignStatus, PoolFigures, low_threshold
from prizeflow_rewards.domain.ledger import AccountRef, Balance, BatchResult, LedgerError, Transfer
from prizeflow_rewards.domain.rounds import (
    allocation_id,
    entry_fee,
    entry_fee_id,
    fee_transfers,
    prizes,
    refund,
    round_accounts,
)
from prizeflow_rewards.metrics import RewardsMetrics

Env = Envelope[Any]


@dataclass
class _Group:
    """Sponsored rounds of one campaign, paid together: their prizes, and what each still owes."""

    campaign: Campaign
    envs: list[Env]
    pool: AccountRef
    prizes: list[list[Transfer]]
    before: Balance | None = None
    owed: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, campaign: Campaign, envs: list[Env]) -> _Group:
        pool = accounts.pool(campaign.id, campaign.asset)
        return cls(campaign, envs, pool, [prizes(e, pool) for e in envs])


@dataclass
class RoundMoney:
    source: str
    pool_low_bps: int = 1_000
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def prepare(self, books: Books, envs: Sequence[Env]) -> None:
        """Lock every account these events may touch, in one ordered lock, before any of them is applied."""
        refs = {ref for env in envs for ref in round_accounts(env)}
        if refs:
            await books.ledger.declare(refs)

    async def handle(self, books: Books, env: Envelope[EventPayload]) -> None:
        data = env.data
        if isinstance(data, RoundSettled):
            await self.settle(books, env)
        elif isinstance(data, RoundVoided):
            await self.void(books, env)
        elif isinstance(data, EntryAccepted):
            await self.entry(books, env)
        # Other round events (state changes, disputes) move no money.

    async def entry(self, books: Books, env: Env) -> None:
        """Settlement accepted a paid entry: its fee goes to the round's escrow, from the wallet (wallet-paid)
        or recorded as arrived externally. A wallet that cannot cover it refuses the event (a dead letter an
        operator redrives once the player can pay); the round's escrow then holds less than its pot, and the
        ledger refuses to let the round pay out the difference."""
        e: EntryAccepted = env.data
        if await books.allocations.voided(e.round_id):
            # Its refunds are done: a fee charged now (a late redrive) would never come back.
            raise EventRefusal("illegal_transition", f"entry {e.entry_id}: round {e.round_id} was voided")
        t = entry_fee(e, env.correlationid)
        try:
            result = await books.ledger.apply([t])
        except LedgerError as err:
            reason = "insufficient_funds" if err.code == "exceeds_credits" else "conflicting_event"
            raise EventRefusal(reason, f"entry {e.entry_id} of round {e.round_id}: {err.detail}") from err
        count_transfers(self.metrics, result)

    async def entries_many(self, books: Books, envs: Sequence[Env]) -> bool:
        """EntryAccepted, several at once: every fee in one linked ledger batch (one statement per table), with the
        outcome of `entry` on each in order. False, having done nothing: a round among them was voided, or two of
        them charge the same entry, so the caller applies them one by one (each refused alone, as before). A fee
        the ledger refuses refuses the whole batch, naming no event: the consumer runtime then settles the poll in
        halves, so the one poisoned entry is refused alone and every other one is charged."""
        fees = [entry_fee(env.data, env.correlationid) for env in envs]
        if len({t.id for t in fees}) < len(fees):
            return False
        if await books.allocations.voided_among(sorted({env.data.round_id for env in envs})):
            return False
        try:
            result = await books.ledger.apply(fees)
        except LedgerError as err:
            reason = "insufficient_funds" if err.code == "exceeds_credits" else "conflicting_event"
            raise EventRefusal(reason, f"{len(fees)} entry fees together: {err.detail}") from err
        count_transfers(self.metrics, result)
        return True

    async def settle(self, books: Books, env: Env) -> None:
        s: RoundSettled = env.data
        await self.prepare(books, [env])  # fees, then the pool's check, then prizes: all declared first
        await books.allocations.record_outcomes([(s.round_id, "settled")])
        fees = fee_transfers(env)
        if s.prize_source is PrizeSource.ENTRY_POT:
            won = prizes(env, accounts.escrow(s.round_id, s.asset))
            await self._apply_round(books, env, [*fees, *won], won)
            return
        assert s.campaign_id is not None  # the contract requires it for sponsored rounds
        campaign = await books.campaigns.get(s.campaign_id)
        if campaign is None:
            raise EventRefusal("unknown_aggregate", f"round {s.round_id}: no campaign {s.campaign_id}")
        if campaign.asset != s.asset:
            raise EventRefusal(
                "conflicting_event", f"round {s.round_id} pays {s.asset}; campaign {campaign.id} holds {campaign.asset}"
            )
        if fees:  # revenue does not wait for the pool
            count_transfers(self.metrics, await _apply_or_refuse(books, fees, s.round_id))
        if not s.allocations:
            return
        if await books.allocations.is_held(s.round_id):
            return
        if campaign.status is not CampaignStatus.ACTIVE:
            await _hold(books, env, reason=f"campaign_{campaign.status.value}")
            return
        await self.pay_from_pool(books, env, hold_if_short=True)

    async def settle_sponsored_many(self, books: Books, envs: Sequence[Env]) -> None:
        """RoundSettled of sponsored rounds (distinct rounds), several at once: the same outcome as `settle`
        on each in order, in a handful of statements.

        For each campaign whose pool covers every round of `envs` paying from it, all prizes and fees go in
        one linked batch. A campaign that is unknown, not active, has a held round here, or whose pool is
        short is left to `settle`, round by round, which holds (or refuses) exactly as it always did.
        """
        await self.prepare(books, envs)
        by_campaign: dict[str, list[Env]] = {}
        for env in envs:
            assert env.data.prize_source is PrizeSource.SPONSORED
            assert env.data.campaign_id is not None
            by_campaign.setdefault(env.data.campaign_id, []).append(env)
        campaigns, slow = await _not_batchable(books, by_campaign)
        fast = [_Group.of(campaigns[c], g) for c, g in by_campaign.items() if c not in slow]
        locked = await books.ledger.lock([g.pool for g in fast]) if fast else {}
        paid = await _recorded(books, [t for g in fast for ps in g.prizes for t in ps])
        for g in fast:
            g.before = locked[g.pool]
            g.owed = [sum(t.amount for t in ps if t.id not in paid) for ps in g.prizes]
            if sum(g.owed) > g.before.available:
                slow.add(g.campaign.id)
        fast = [g for g in fast if g.campaign.id not in slow]
        if fast:
            await books.allocations.record_outcomes([(e.data.round_id, "settled") for g in fast for e in g.envs])
            await self._pay_groups(books, fast)
        for env in envs:  # in order: a short pool holds the rounds that do not fit, as before
            if env.data.campaign_id in slow:
                await self.settle(books, env)

    async def _pay_groups(self, books: Books, groups: Sequence[_Group]) -> None:
        batch = [
            t for g in groups for env, ps in zip(g.envs, g.prizes, strict=True) for t in (*fee_transfers(env), *ps)
        ]
        try:
            result = await books.ledger.apply(batch)
        except LedgerError as err:
            raise EventRefusal("conflicting_event", f"{len(batch)} round transfers: {err.detail}") from err
        count_transfers(self.metrics, result)
        new = result.applied_ids
        now = self.clock()
        await books.outbox.stage(
            [
                ev
                for g in groups
                for env, ps in zip(g.envs, g.prizes, strict=True)
                for ev in self._allocated(env, ps, new, now)
            ],
        )
        for g in groups:
            assert g.before is not None
            final = result.balances.get(g.pool.id, g.before)
            threshold = low_threshold(g.campaign, final.credits_posted, self.pool_low_bps)
            running = g.before
            for env, owed in zip(g.envs, g.owed, strict=True):
                after = replace(running, debits_posted=running.debits_posted + owed)
                if after.available <= threshold < running.available:
                    await self._pool_low(books, env, g.campaign.id, remaining=after.available, threshold=threshold)
                running = after
            self._pool_metrics(g.campaign.id, g.campaign.asset, final)

    async def pay_from_pool(self, books: Books, env: Env, *, hold_if_short: bool) -> bool:
        """Pay all allocations of a sponsored round from its pool, or none. False: the pool is short."""
        s: RoundSettled = env.data
        assert s.campaign_id is not None
        campaign = await books.campaigns.get(s.campaign_id)
        assert campaign is not None
        pool = accounts.pool(campaign.id, s.asset)
        won = prizes(env, pool)
        before = (await books.ledger.lock([pool]))[pool]
        # Prizes of this round already in the ledger (a replay after a partial release cannot happen, but a
        # replay of a paid round must not look short).
        owed = sum(t.amount for t in won) - sum((await _recorded(books, won)).values())
        if owed > before.available:
            if hold_if_short:
                await self._exhausted(books, env, campaign, before, owed)
            return False
        result = await self._apply_round(books, env, won, won)
        after = result.get(pool.id, before)
        threshold = low_threshold(campaign, after.credits_posted, self.pool_low_bps)
        if after.available <= threshold < before.available:
            await self._pool_low(books, env, campaign.id, remaining=after.available, threshold=threshold)
        self._pool_metrics(campaign.id, s.asset, after)
        return True

    async def _exhausted(self, books: Books, env: Env, campaign: Campaign, before: Balance, owed: int) -> None:
        """The pool cannot pay the round: it is held, and `PoolExhausted` says how short the pool is."""
        s: RoundSettled = env.data
        await _hold(books, env, reason="pool_exhausted")
        exhausted = PoolExhausted(
            campaign_id=campaign.id,
            asset=s.asset,
            remaining=max(0, before.available),
            requested=owed,
            round_id=s.round_id,
        )
        event_id = event_id_for("PoolExhausted", campaign.id, s.round_id)
        await books.outbox.stage([follow(env, exhausted, source=self.source, subject=campaign.id, event_id=event_id)])
        if self.metrics is not None:
            self.metrics.pool_exhausted.labels(campaign.id).inc()

    async def _apply_round(
        self, books: Books, env: Env, batch: Sequence[Transfer], won: Sequence[Transfer]
    ) -> dict[uuid.UUID, Balance]:
        s: RoundSettled = env.data
        result = await _apply_or_refuse(books, batch, s.round_id)
        count_transfers(self.metrics, result)
        await books.outbox.stage(self._allocated(env, won, result.applied_ids, self.clock()))
        return dict(result.balances)

    def _allocated(self, env: Env, won: Sequence[Transfer], new: set[Any], now: Any) -> list[Envelope[RewardAllocated]]:
        s: RoundSettled = env.data
        return [
            follow(
                env,
                RewardAllocated(
                    allocation_id=allocation_id(s.round_id, a.player_id),
                    round_id=s.round_id,
                    competition_id=s.competition_id,
                    player_id=a.player_id,
                    rank=a.rank,
                    amount={"asset": s.asset, "amount": a.amount},
                    source=a.source,
                    campaign_id=s.campaign_id,
                    transfer_id=str(t.id),
                    allocated_at=now,
                ),
                source=self.source,
                subject=s.round_id,
                event_id=event_id_for("RewardAllocated", s.round_id, a.player_id),
            )
            for a, t in zip(s.allocations, won, strict=True)
            if t.id in new
        ]

    async def _pool_low(self, books: Books, env: Env, campaign_id: str, *, remaining: int, threshold: int) -> None:
        low = PoolLow(campaign_id=campaign_id, asset=env.data.asset, remaining=remaining, threshold=threshold)
        event_id = event_id_for("PoolLow", campaign_id, env.id)
        await books.outbox.stage([follow(env, low, source=self.source, subject=campaign_id, event_id=event_id)])

    def _pool_metrics(self, campaign_id: str, asset: str, after: Balance) -> None:
        if self.metrics is not None:
            f = PoolFigures.of(after)
            self.metrics.pool_remaining.labels(campaign_id, asset).set(f.remaining)
            self.metrics.pool_paid.labels(campaign_id, asset).set(f.paid)

    async def void(self, books: Books, env: Env) -> None:
        """Refund each entry once (keyed by entry id) that was charged: to the wallet, or recorded as owed
        externally. An entry whose fee was never charged (the wallet could not cover it) gets nothing back."""
        v: RoundVoided = env.data
        await books.allocations.record_outcomes([(v.round_id, "voided")])
        charged = await _charged(books, v)
        refunded = [(r, refund(v, i, env.correlationid)) for i, r in enumerate(v.refunds) if r.entry_id in charged]
        result = await _apply_or_refuse(books, [t for _, t in refunded], v.round_id)
        count_transfers(self.metrics, result)
        new = result.applied_ids
        now = self.clock()
        await books.outbox.stage(
            [
                follow(
                    env,
                    RefundIssued(
                        refund_id=f"{v.round_id}:{r.entry_id}",
                        round_id=v.round_id,
                        entry_id=r.entry_id,
                        player_id=r.player_id,
                        amount=r.amount,
                        paid_via=r.paid_via,
                        transfer_id=str(t.id),
                        issued_at=now,
                    ),
                    source=self.source,
                    subject=v.round_id,
                    event_id=event_id_for("RefundIssued", v.round_id, r.entry_id),
                )
                for r, t in refunded
                if t.id in new
            ],
        )


async def _not_batchable(books: Books, by_campaign: dict[str, list[Env]]) -> tuple[dict[str, Campaign], set[str]]:
    """The campaigns found, and those whose rounds must go through `settle` one by one (a refusal, a hold, or a
    round already held)."""
    round_ids = [e.data.round_id for group in by_campaign.values() for e in group if e.data.allocations]
    held = await books.allocations.held_among(round_ids) if round_ids else set()
    found: dict[str, Campaign] = {}
    slow: set[str] = set()
    for cid, group in by_campaign.items():
        campaign = await books.campaigns.get(cid)
        if campaign is not None:
            found[cid] = campaign
        if (
            campaign is None
            or campaign.status is not CampaignStatus.ACTIVE
            or any(e.data.asset != campaign.asset or e.data.round_id in held for e in group)
        ):
            slow.add(cid)
    return found, slow


async def _recorded(books: Books, transfers: Sequence[Transfer]) -> dict[uuid.UUID, int]:
    """Those of these transfers the ledger holds already (id → amount)."""
    if not transfers:
        return {}
    return await books.ledger.recorded([t.id for t in transfers])


async def _apply_or_refuse(books: Books, batch: Sequence[Transfer], round_id: str) -> BatchResult:
    try:
        return await books.ledger.apply(batch)
    except LedgerError as err:
        raise EventRefusal("conflicting_event", f"round {round_id}: {err.detail}") from err


async def _hold(books: Books, env: Env, *, reason: str) -> None:
    s: RoundSettled = env.data
    assert s.campaign_id is not None
    total = sum(a.amount for a in s.allocations)
    await books.allocations.hold(HeldRound(s.round_id, s.campaign_id, s.asset, total, reason, env))


async def _charged(books: Books, v: RoundVoided) -> set[str]:
    """The entries of a voided round whose fee the ledger holds."""
    fees = {entry_fee_id(v.round_id, r.entry_id): r.entry_id for r in v.refunds}
    if not fees:
        return set()
    return {fees[transfer_id] for transfer_id in await books.ledger.recorded(list(fees))}


__all__ = ["RoundMoney", "allocation_id", "entry_fee", "entry_fee_id", "round_accounts"]
