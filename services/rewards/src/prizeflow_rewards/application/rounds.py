"""Money from rounds: entry fees, prizes (one linked batch per round), fee revenue, refunds of voided rounds.

Every movement follows settlement's decision (its topic), never the game feed: an entry fee is charged on
EntryAccepted, into the round's own escrow account, which the ledger never lets pay out more than it took
in. Transfer ids come from round/entry/player keys, so a RoundSettled delivered twice (or re-emitted by
settlement with a new event id) credits each player once. A sponsored round whose pool cannot pay all of
it is not paid in part: its allocations are held until an admin tops the pool up and releases them.

Every account an event (or a whole consumer poll, `prepare`) may touch is declared to the ledger before the
first transfer, in one ordered lock: the ledger takes accounts in one global order per transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prizeflow_contracts.envelope import Envelope, EventPayload, event_id_for, follow
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.game import PaidVia, PrizeSource
from prizeflow_contracts.events.rewards import PoolExhausted, PoolLow, RefundIssued, RewardAllocated
from prizeflow_contracts.events.settlement import EntryAccepted, FeeParty, RoundSettled, RoundVoided
from prizeflow_rewards.application.campaigns import CampaignError, campaign_not_found
from prizeflow_rewards.application.common import Clock, audit, count_transfers, ledger_refusals, utcnow
from prizeflow_rewards.application.ports import HeldRound, Ledger, Stores, Tx
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import Campaign, CampaignStatus, PoolFigures, low_threshold
from prizeflow_rewards.domain.ledger import (
    AccountRef,
    Balance,
    BatchResult,
    LedgerError,
    Transfer,
    TransferKind,
    transfer_id,
)
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.principal import Principal

Env = Envelope[Any]


def allocation_id(round_id: str, player_id: str) -> str:
    return f"{round_id}:{player_id}"


def entry_fee_id(round_id: str, entry_id: str) -> uuid.UUID:
    """The id `entry_fee` gives the charge of one entry (the same business key)."""
    return transfer_id(f"{TransferKind.ENTRY_FEE.value}|{round_id}|{entry_id}")


def entry_fee(e: EntryAccepted, correlation_id: str | None = None) -> Transfer:
    """The fee of an accepted entry into its round's escrow, keyed by (round, entry): charged once."""
    source = (
        accounts.wallet(e.player_id, e.fee.asset)
        if e.paid_via is PaidVia.WALLET
        else accounts.external(accounts.EXTERNAL, e.fee.asset)
    )
    return Transfer.of(
        source,
        accounts.escrow(e.round_id, e.fee.asset),
        e.fee.amount,
        TransferKind.ENTRY_FEE,
        e.round_id,
        e.entry_id,
        correlation_id=correlation_id,
    )


def round_accounts(env: Env) -> set[AccountRef]:
    """Every account `RoundMoney.handle` may move money between for this event (a superset: a refused or
    held round touches fewer). Pure, so a whole poll's accounts are known before any of it is applied."""
    data = env.data
    if isinstance(data, EntryAccepted):
        t = entry_fee(data)
        return {t.debit, t.credit}
    if isinstance(data, RoundVoided):
        return {
            ref
            for r in data.refunds
            for ref in (
                accounts.escrow(data.round_id, r.amount.asset),
                accounts.wallet(r.player_id, r.amount.asset)
                if r.paid_via is PaidVia.WALLET
                else accounts.external(accounts.EXTERNAL, r.amount.asset),
            )
        }
    if not isinstance(data, RoundSettled):
        return set()
    out = {accounts.wallet(a.player_id, data.asset) for a in data.allocations}
    for f in data.fees:
        out.add(accounts.escrow(data.round_id, f.amount.asset))
        out.add(
            accounts.platform_revenue(f.account_id, f.amount.asset)
            if f.party is FeeParty.PLATFORM
            else accounts.organizer_revenue(f.account_id, f.amount.asset)
        )
    if data.prize_source is PrizeSource.ENTRY_POT:
        out.add(accounts.escrow(data.round_id, data.asset))
    elif data.campaign_id is not None:  # paid only from a pool in the round's asset (else refused)
        out.add(accounts.pool(data.campaign_id, data.asset))
    return out


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
        prizes = [
            [
                Transfer.of(
                    pool,
                    accounts.wallet(a.player_id, e.data.asset),
                    a.amount,
                    TransferKind.REWARD,
                    e.data.round_id,
                    a.player_id,
                    correlation_id=e.correlationid,
                )
                for a in e.data.allocations
            ]
            for e in envs
        ]
        return cls(campaign, envs, pool, prizes)


@dataclass
class RoundMoney:
    ledger: Ledger
    source: str
    pool_low_bps: int = 1_000
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow
    stores: Stores = field(kw_only=True)

    async def prepare(self, tx: Tx, envs: Sequence[Env]) -> None:
        """Lock every account these events may touch, in one ordered lock, before any of them is applied."""
        refs = {ref for env in envs for ref in round_accounts(env)}
        if refs:
            await self.ledger.declare(tx, refs)

    async def handle(self, tx: Tx, env: Envelope[EventPayload]) -> None:
        data = env.data
        if isinstance(data, RoundSettled):
            await self.settle(tx, env)
        elif isinstance(data, RoundVoided):
            await self.void(tx, env)
        elif isinstance(data, EntryAccepted):
            await self.entry(tx, env)
        # Other round events (state changes, disputes) move no money.

    async def entry(self, tx: Tx, env: Env) -> None:
        """Settlement accepted a paid entry: its fee goes to the round's escrow, from the wallet (wallet-paid)
        or recorded as arrived externally. A wallet that cannot cover it refuses the event (a dead letter an
        operator redrives once the player can pay); the round's escrow then holds less than its pot, and the
        ledger refuses to let the round pay out the difference."""
        e: EntryAccepted = env.data
        if await self.stores.allocations.voided(tx, e.round_id):
            # Its refunds are done: a fee charged now (a late redrive) would never come back.
            raise EventRefusal("illegal_transition", f"entry {e.entry_id}: round {e.round_id} was voided")
        t = entry_fee(e, env.correlationid)
        try:
            result = await self.ledger.apply(tx, [t])
        except LedgerError as err:
            reason = "insufficient_funds" if err.code == "exceeds_credits" else "conflicting_event"
            raise EventRefusal(reason, f"entry {e.entry_id} of round {e.round_id}: {err.detail}") from err
        count_transfers(self.metrics, result)

    async def _record_outcomes(self, tx: Tx, outcomes: Sequence[tuple[str, str]]) -> None:
        """The rounds whose money settlement decided (settled or voided): a voided round takes no more fees."""
        if outcomes:
            await self.stores.allocations.record_outcomes(tx, outcomes)

    async def settle(self, tx: Tx, env: Env) -> None:
        s: RoundSettled = env.data
        await self.prepare(tx, [env])  # fees, then the pool's check, then prizes: all declared first
        await self._record_outcomes(tx, [(s.round_id, "settled")])
        fees = [self._fee(s, i, env.correlationid) for i in range(len(s.fees))]
        if s.prize_source is PrizeSource.ENTRY_POT:
            prizes = [
                Transfer.of(
                    accounts.escrow(s.round_id, s.asset),
                    accounts.wallet(a.player_id, s.asset),
                    a.amount,
                    TransferKind.REWARD,
                    s.round_id,
                    a.player_id,
                    correlation_id=env.correlationid,
                )
                for a in s.allocations
            ]
            await self._apply_round(tx, env, [*fees, *prizes], prizes)
            return
        assert s.campaign_id is not None  # the contract requires it for sponsored rounds
        campaign = await self.stores.campaigns.get(tx, s.campaign_id)
        if campaign is None:
            raise EventRefusal("unknown_aggregate", f"round {s.round_id}: no campaign {s.campaign_id}")
        if campaign.asset != s.asset:
            raise EventRefusal(
                "conflicting_event", f"round {s.round_id} pays {s.asset}; campaign {campaign.id} holds {campaign.asset}"
            )
        if fees:  # revenue does not wait for the pool
            count_transfers(self.metrics, await self._apply_or_refuse(tx, fees, s.round_id))
        if not s.allocations:
            return
        if await self.stores.allocations.is_held(tx, s.round_id):
            return
        if campaign.status is not CampaignStatus.ACTIVE:
            await self._hold(tx, env, reason=f"campaign_{campaign.status.value}")
            return
        await self._pay_from_pool(tx, env, hold_if_short=True)

    async def settle_sponsored_many(self, tx: Tx, envs: Sequence[Env]) -> None:
        """RoundSettled of sponsored rounds (distinct rounds), several at once: the same outcome as `settle`
        on each in order, in a handful of statements.

        For each campaign whose pool covers every round of `envs` paying from it, all prizes and fees go in
        one linked batch. A campaign that is unknown, not active, has a held round here, or whose pool is
        short is left to `settle`, round by round, which holds (or refuses) exactly as it always did.
        """
        await self.prepare(tx, envs)
        by_campaign: dict[str, list[Env]] = {}
        for env in envs:
            assert env.data.prize_source is PrizeSource.SPONSORED
            assert env.data.campaign_id is not None
            by_campaign.setdefault(env.data.campaign_id, []).append(env)
        campaigns, slow = await self._not_batchable(tx, by_campaign)
        fast = [_Group.of(campaigns[c], g) for c, g in by_campaign.items() if c not in slow]
        locked = await self.ledger.lock(tx, [g.pool for g in fast]) if fast else {}
        paid = await self._recorded(tx, [t for g in fast for ps in g.prizes for t in ps])
        for g in fast:
            g.before = locked[g.pool]
            g.owed = [sum(t.amount for t in ps if t.id not in paid) for ps in g.prizes]
            if sum(g.owed) > g.before.available:
                slow.add(g.campaign.id)
        fast = [g for g in fast if g.campaign.id not in slow]
        if fast:
            await self._record_outcomes(tx, [(e.data.round_id, "settled") for g in fast for e in g.envs])
            await self._pay_groups(tx, fast)
        for env in envs:  # in order: a short pool holds the rounds that do not fit, as before
            if env.data.campaign_id in slow:
                await self.settle(tx, env)

    async def _not_batchable(self, tx: Tx, by_campaign: dict[str, list[Env]]) -> tuple[dict[str, Campaign], set[str]]:
        """The campaigns found, and those whose rounds must go through `settle` one by one (a refusal, a
        hold, or a round already held)."""
        round_ids = [e.data.round_id for group in by_campaign.values() for e in group if e.data.allocations]
        held = await self.stores.allocations.held_among(tx, round_ids) if round_ids else set()
        found: dict[str, Campaign] = {}
        slow: set[str] = set()
        for cid, group in by_campaign.items():
            campaign = await self.stores.campaigns.get(tx, cid)
            if campaign is not None:
                found[cid] = campaign
            if (
                campaign is None
                or campaign.status is not CampaignStatus.ACTIVE
                or any(e.data.asset != campaign.asset or e.data.round_id in held for e in group)
            ):
                slow.add(cid)
        return found, slow

    async def _pay_groups(self, tx: Tx, groups: Sequence[_Group]) -> None:
        batch = [t for g in groups for env, ps in zip(g.envs, g.prizes, strict=True) for t in (*self._fees(env), *ps)]
        try:
            result = await self.ledger.apply(tx, batch)
        except LedgerError as err:
            raise EventRefusal("conflicting_event", f"{len(batch)} round transfers: {err.detail}") from err
        count_transfers(self.metrics, result)
        new = result.applied_ids
        now = self.clock()
        await self.stores.outbox.stage(
            tx,
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
                    await self._pool_low(
                        tx, env, g.campaign.id, g.campaign.asset, remaining=after.available, threshold=threshold
                    )
                running = after
            self._pool_metrics(g.campaign.id, g.campaign.asset, final)

    def _fees(self, env: Env) -> list[Transfer]:
        return [self._fee(env.data, i, env.correlationid) for i in range(len(env.data.fees))]

    async def _recorded(self, tx: Tx, transfers: Sequence[Transfer]) -> dict[uuid.UUID, int]:
        """Those of these transfers the ledger holds already (id → amount)."""
        if not transfers:
            return {}
        return await self.ledger.recorded(tx, [t.id for t in transfers])

    async def _pay_from_pool(self, tx: Tx, env: Env, *, hold_if_short: bool) -> bool:
        """Pay all allocations of a sponsored round from its pool, or none. False: the pool is short."""
        s: RoundSettled = env.data
        assert s.campaign_id is not None
        campaign = await self.stores.campaigns.get(tx, s.campaign_id)
        assert campaign is not None
        pool = accounts.pool(campaign.id, s.asset)
        prizes = [
            Transfer.of(
                pool,
                accounts.wallet(a.player_id, s.asset),
                a.amount,
                TransferKind.REWARD,
                s.round_id,
                a.player_id,
                correlation_id=env.correlationid,
            )
            for a in s.allocations
        ]
        before = (await self.ledger.lock(tx, [pool]))[pool]
        # Prizes of this round already in the ledger (a replay after a partial release cannot happen, but a
        # replay of a paid round must not look short).
        owed = sum(t.amount for t in prizes) - sum((await self._recorded(tx, prizes)).values())
        if owed > before.available:
            if hold_if_short:
                await self._hold(tx, env, reason="pool_exhausted")
                exhausted = PoolExhausted(
                    campaign_id=campaign.id,
                    asset=s.asset,
                    remaining=max(0, before.available),
                    requested=owed,
                    round_id=s.round_id,
                )
                await self.stores.outbox.stage(
                    tx,
                    [
                        follow(
                            env,
                            exhausted,
                            source=self.source,
                            subject=campaign.id,
                            event_id=event_id_for("PoolExhausted", campaign.id, s.round_id),
                        )
                    ],
                )
                if self.metrics is not None:
                    self.metrics.pool_exhausted.labels(campaign.id).inc()
            return False
        result = await self._apply_round(tx, env, prizes, prizes)
        after = result.get(pool.id, before)
        await self._maybe_pool_low(tx, env, campaign, s.asset, before=before, after=after)
        return True

    async def _apply_round(
        self, tx: Tx, env: Env, batch: Sequence[Transfer], prizes: Sequence[Transfer]
    ) -> dict[uuid.UUID, Balance]:
        s: RoundSettled = env.data
        result = await self._apply_or_refuse(tx, batch, s.round_id)
        count_transfers(self.metrics, result)
        await self.stores.outbox.stage(tx, self._allocated(env, prizes, result.applied_ids, self.clock()))
        return dict(result.balances)

    def _allocated(
        self, env: Env, prizes: Sequence[Transfer], new: set[Any], now: Any
    ) -> list[Envelope[RewardAllocated]]:
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
            for a, t in zip(s.allocations, prizes, strict=True)
            if t.id in new
        ]

    async def _apply_or_refuse(self, tx: Tx, batch: Sequence[Transfer], round_id: str) -> BatchResult:
        try:
            return await self.ledger.apply(tx, batch)
        except LedgerError as err:
            raise EventRefusal("conflicting_event", f"round {round_id}: {err.detail}") from err

    async def _hold(self, tx: Tx, env: Env, *, reason: str) -> None:
        s: RoundSettled = env.data
        assert s.campaign_id is not None
        held = HeldRound(
            round_id=s.round_id,
            campaign_id=s.campaign_id,
            asset=s.asset,
            total=sum(a.amount for a in s.allocations),
            reason=reason,
            event=env,
        )
        await self.stores.allocations.hold(tx, held)

    async def _maybe_pool_low(
        self, tx: Tx, env: Env, campaign: Campaign, asset: str, *, before: Balance, after: Balance
    ) -> None:
        threshold = low_threshold(campaign, after.credits_posted, self.pool_low_bps)
        if after.available <= threshold < before.available:
            await self._pool_low(tx, env, campaign.id, asset, remaining=after.available, threshold=threshold)
        self._pool_metrics(campaign.id, asset, after)

    async def _pool_low(
        self, tx: Tx, env: Env, campaign_id: str, asset: str, *, remaining: int, threshold: int
    ) -> None:
        low = PoolLow(campaign_id=campaign_id, asset=asset, remaining=remaining, threshold=threshold)
        await self.stores.outbox.stage(
            tx,
            [
                follow(
                    env,
                    low,
                    source=self.source,
                    subject=campaign_id,
                    event_id=event_id_for("PoolLow", campaign_id, env.id),
                )
            ],
        )

    def _pool_metrics(self, campaign_id: str, asset: str, after: Balance) -> None:
        if self.metrics is not None:
            f = PoolFigures.of(after)
            self.metrics.pool_remaining.labels(campaign_id, asset).set(f.remaining)
            self.metrics.pool_paid.labels(campaign_id, asset).set(f.paid)

    def _fee(self, s: RoundSettled, i: int, correlation_id: str | None = None) -> Transfer:
        f = s.fees[i]
        revenue = (
            accounts.platform_revenue(f.account_id, f.amount.asset)
            if f.party is FeeParty.PLATFORM
            else accounts.organizer_revenue(f.account_id, f.amount.asset)
        )
        return Transfer.of(
            accounts.escrow(s.round_id, f.amount.asset),
            revenue,
            f.amount.amount,
            TransferKind.FEE_REVENUE,
            s.round_id,
            f.party.value,
            f.account_id,
            f.amount.asset,
            correlation_id=correlation_id,
        )

    async def void(self, tx: Tx, env: Env) -> None:
        """Refund each entry once (keyed by entry id) that was charged: to the wallet, or recorded as owed
        externally. An entry whose fee was never charged (the wallet could not cover it) gets nothing back."""
        v: RoundVoided = env.data
        await self._record_outcomes(tx, [(v.round_id, "voided")])
        charged = await self._charged(tx, v)
        refunds = [r for r in v.refunds if r.entry_id in charged]
        transfers = [
            Transfer.of(
                accounts.escrow(v.round_id, r.amount.asset),
                accounts.wallet(r.player_id, r.amount.asset)
                if r.paid_via is PaidVia.WALLET
                else accounts.external(accounts.EXTERNAL, r.amount.asset),
                r.amount.amount,
                TransferKind.REFUND,
                v.round_id,
                r.entry_id,
                correlation_id=env.correlationid,
            )
            for r in refunds
        ]
        result = await self._apply_or_refuse(tx, transfers, v.round_id)
        count_transfers(self.metrics, result)
        new = result.applied_ids
        now = self.clock()
        await self.stores.outbox.stage(
            tx,
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
                for r, t in zip(refunds, transfers, strict=True)
                if t.id in new
            ],
        )

    async def _charged(self, tx: Tx, v: RoundVoided) -> set[str]:
        """The entries of a voided round whose fee the ledger holds."""
        fees = {entry_fee_id(v.round_id, r.entry_id): r.entry_id for r in v.refunds}
        if not fees:
            return set()
        return {fees[transfer_id] for transfer_id in await self.ledger.recorded(tx, list(fees))}

    async def release_held(self, tx: Tx, actor: Principal, *, campaign_id: str, correlation_id: str) -> dict[str, Any]:
        """Pay held rounds of a campaign, oldest first, while the pool covers them; the rest stay held."""
        with ledger_refusals():
            return await self._release_held(tx, actor, campaign_id=campaign_id, correlation_id=correlation_id)

    async def _release_held(self, tx: Tx, actor: Principal, *, campaign_id: str, correlation_id: str) -> dict[str, Any]:
        campaign = await self.stores.campaigns.get(tx, campaign_id, lock=True)
        if campaign is None:
            raise campaign_not_found(campaign_id)
        if campaign.status is not CampaignStatus.ACTIVE:
            raise CampaignError(
                ErrorKind.CONFLICT, "campaign_not_active", f"campaign {campaign_id} is {campaign.status.value}"
            )
        held = await self.stores.allocations.lock_held(tx, campaign_id)
        # The pool and every wallet any of these rounds pays, locked once in order before the first is paid
        # (their fees went to revenue when they were settled).
        await self.ledger.declare(
            tx,
            {
                ref
                for h in held
                for ref in (
                    accounts.pool(campaign.id, h.event.data.asset),
                    *(accounts.wallet(a.player_id, h.event.data.asset) for a in h.event.data.allocations),
                )
            },
        )
        released: list[str] = []
        for h in held:
            if not await self._pay_from_pool(tx, h.event, hold_if_short=False):
                break
            await self.stores.allocations.mark_released(tx, h.round_id, by=actor.user_id)
            released.append(h.round_id)
        still = len(held) - len(released)
        if released:
            await audit(
                self.stores.outbox,
                tx,
                source=self.source,
                actor=actor,
                action="campaign.release_held",
                target_type="campaign",
                target_id=campaign_id,
                correlation_id=correlation_id,
                after={"released_rounds": ",".join(released)[:1000], "still_held": still},
            )
        return {"campaign_id": campaign_id, "released": released, "still_held": still}
