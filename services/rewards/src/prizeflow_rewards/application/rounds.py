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

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import text

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, event_id_for, follow
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.game import PaidVia, PrizeSource
from prizeflow_contracts.events.rewards import PoolExhausted, PoolLow, RefundIssued, RewardAllocated
from prizeflow_contracts.events.settlement import EntryAccepted, FeeParty, RoundSettled, RoundVoided
from prizeflow_rewards.application.campaigns import (
    Campaign,
    CampaignError,
    CampaignStatus,
    PoolFigures,
    get_campaign,
    low_threshold,
)
from prizeflow_rewards.application.common import Clock, audit, count_transfers, utcnow
from prizeflow_rewards.application.ports import Conn, Ledger
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import AccountRef, Balance, LedgerError, Transfer, TransferKind, transfer_id
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.auth import Principal
from prizeflow_runtime.outbox import add_event, add_events

Env = Envelope[Any]


def allocation_id(round_id: str, player_id: str) -> str:
    return f"{round_id}:{player_id}"


def entry_fee_id(round_id: str, entry_id: str) -> uuid.UUID:
    """The id `entry_fee` gives the charge of one entry (the same business key)."""
    return transfer_id(f"{TransferKind.ENTRY_FEE.value}|{round_id}|{entry_id}")


def entry_fee(e: EntryAccepted) -> Transfer:
    """The fee of an accepted entry into its round's escrow, keyed by (round, entry): charged once."""
    source = (
        accounts.wallet(e.player_id, e.fee.asset)
        if e.paid_via is PaidVia.WALLET
        else accounts.external(accounts.EXTERNAL, e.fee.asset)
    )
    return Transfer.of(
        source, accounts.escrow(e.round_id, e.fee.asset), e.fee.amount, TransferKind.ENTRY_FEE, e.round_id, e.entry_id
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

    async def prepare(self, conn: Conn, envs: Sequence[Env]) -> None:
        """Lock every account these events may touch, in one ordered lock, before any of them is applied."""
        refs = {ref for env in envs for ref in round_accounts(env)}
        if refs:
            await self.ledger.declare(conn, refs)

    async def handle(self, conn: Conn, env: Envelope[EventPayload]) -> None:
        data = env.data
        if isinstance(data, RoundSettled):
            await self.settle(conn, env)
        elif isinstance(data, RoundVoided):
            await self.void(conn, env)
        elif isinstance(data, EntryAccepted):
            await self.entry(conn, env)
        # Other round events (state changes, disputes) move no money.

    async def entry(self, conn: Conn, env: Env) -> None:
        """Settlement accepted a paid entry: its fee goes to the round's escrow, from the wallet (wallet-paid)
        or recorded as arrived externally. A wallet that cannot cover it refuses the event (a dead letter an
        operator redrives once the player can pay); the round's escrow then holds less than its pot, and the
        ledger refuses to let the round pay out the difference."""
        e: EntryAccepted = env.data
        if await self._voided(conn, e.round_id):
            # Its refunds are done: a fee charged now (a late redrive) would never come back.
            raise EventRefusal("illegal_transition", f"entry {e.entry_id}: round {e.round_id} was voided")
        t = entry_fee(e)
        try:
            result = await self.ledger.apply(conn, [t])
        except LedgerError as err:
            reason = "insufficient_funds" if err.code == "exceeds_credits" else "conflicting_event"
            raise EventRefusal(reason, f"entry {e.entry_id} of round {e.round_id}: {err.detail}") from err
        count_transfers(self.metrics, result)

    async def _voided(self, conn: Conn, round_id: str) -> bool:
        row = await conn.execute(
            text("SELECT 1 FROM round_outcomes WHERE round_id = :r AND outcome = 'voided'"), {"r": round_id}
        )
        return row.first() is not None

    async def _record_outcomes(self, conn: Conn, outcomes: Sequence[tuple[str, str]]) -> None:
        """The rounds whose money settlement decided (settled or voided): a voided round takes no more fees."""
        if outcomes:
            await conn.execute(
                text(
                    "INSERT INTO round_outcomes (round_id, outcome) "
                    "SELECT * FROM unnest(CAST(:r AS text[]), CAST(:o AS text[])) ON CONFLICT DO NOTHING"
                ),
                {"r": [r for r, _ in outcomes], "o": [o for _, o in outcomes]},
            )

    async def settle(self, conn: Conn, env: Env) -> None:
        s: RoundSettled = env.data
        await self.prepare(conn, [env])  # fees, then the pool's check, then prizes: all declared first
        await self._record_outcomes(conn, [(s.round_id, "settled")])
        fees = [self._fee(s, i) for i in range(len(s.fees))]
        if s.prize_source is PrizeSource.ENTRY_POT:
            prizes = [
                Transfer.of(
                    accounts.escrow(s.round_id, s.asset),
                    accounts.wallet(a.player_id, s.asset),
                    a.amount,
                    TransferKind.REWARD,
                    s.round_id,
                    a.player_id,
                )
                for a in s.allocations
            ]
            await self._apply_round(conn, env, [*fees, *prizes], prizes)
            return
        assert s.campaign_id is not None  # the contract requires it for sponsored rounds
        campaign = await get_campaign(conn, s.campaign_id)
        if campaign is None:
            raise EventRefusal("unknown_aggregate", f"round {s.round_id}: no campaign {s.campaign_id}")
        if campaign.asset != s.asset:
            raise EventRefusal(
                "conflicting_event", f"round {s.round_id} pays {s.asset}; campaign {campaign.id} holds {campaign.asset}"
            )
        if fees:  # revenue does not wait for the pool
            count_transfers(self.metrics, await self._apply_or_refuse(conn, fees, s.round_id))
        if not s.allocations:
            return
        if await self._already_held(conn, s.round_id):
            return
        if campaign.status is not CampaignStatus.ACTIVE:
            await self._hold(conn, env, reason=f"campaign_{campaign.status.value}")
            return
        await self._pay_from_pool(conn, env, hold_if_short=True)

    async def settle_sponsored_many(self, conn: Conn, envs: Sequence[Env]) -> None:
        """RoundSettled of sponsored rounds (distinct rounds), several at once: the same outcome as `settle`
        on each in order, in a handful of statements.

        For each campaign whose pool covers every round of `envs` paying from it, all prizes and fees go in
        one linked batch. A campaign that is unknown, not active, has a held round here, or whose pool is
        short is left to `settle`, round by round, which holds (or refuses) exactly as it always did.
        """
        await self.prepare(conn, envs)
        by_campaign: dict[str, list[Env]] = {}
        for env in envs:
            assert env.data.prize_source is PrizeSource.SPONSORED
            assert env.data.campaign_id is not None
            by_campaign.setdefault(env.data.campaign_id, []).append(env)
        campaigns, slow = await self._not_batchable(conn, by_campaign)
        fast = [_Group.of(campaigns[c], g) for c, g in by_campaign.items() if c not in slow]
        locked = await self.ledger.lock(conn, [g.pool for g in fast]) if fast else {}
        paid = await self._paid_ids(conn, [t for g in fast for ps in g.prizes for t in ps])
        for g in fast:
            g.before = locked[g.pool]
            g.owed = [sum(t.amount for t in ps if t.id not in paid) for ps in g.prizes]
            if sum(g.owed) > g.before.available:
                slow.add(g.campaign.id)
        fast = [g for g in fast if g.campaign.id not in slow]
        if fast:
            await self._record_outcomes(conn, [(e.data.round_id, "settled") for g in fast for e in g.envs])
            await self._pay_groups(conn, fast)
        for env in envs:  # in order: a short pool holds the rounds that do not fit, as before
            if env.data.campaign_id in slow:
                await self.settle(conn, env)

    async def _not_batchable(
        self, conn: Conn, by_campaign: dict[str, list[Env]]
    ) -> tuple[dict[str, Campaign], set[str]]:
        """The campaigns found, and those whose rounds must go through `settle` one by one (a refusal, a
        hold, or a round already held)."""
        held = await self._held_among(
            conn, [e.data.round_id for group in by_campaign.values() for e in group if e.data.allocations]
        )
        found: dict[str, Campaign] = {}
        slow: set[str] = set()
        for cid, group in by_campaign.items():
            campaign = await get_campaign(conn, cid)
            if campaign is not None:
                found[cid] = campaign
            if (
                campaign is None
                or campaign.status is not CampaignStatus.ACTIVE
                or any(e.data.asset != campaign.asset or e.data.round_id in held for e in group)
            ):
                slow.add(cid)
        return found, slow

    async def _pay_groups(self, conn: Conn, groups: Sequence[_Group]) -> None:
        batch = [t for g in groups for env, ps in zip(g.envs, g.prizes, strict=True) for t in (*self._fees(env), *ps)]
        try:
            result = await self.ledger.apply(conn, batch)
        except LedgerError as err:
            raise EventRefusal("conflicting_event", f"{len(batch)} round transfers: {err.detail}") from err
        count_transfers(self.metrics, result)
        new = result.applied_ids
        now = self.clock()
        await add_events(
            conn,
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
                        conn, env, g.campaign.id, g.campaign.asset, remaining=after.available, threshold=threshold
                    )
                running = after
            self._pool_metrics(g.campaign.id, g.campaign.asset, final)

    def _fees(self, env: Env) -> list[Transfer]:
        return [self._fee(env.data, i) for i in range(len(env.data.fees))]

    async def _held_among(self, conn: Conn, round_ids: Sequence[str]) -> set[str]:
        if not round_ids:
            return set()
        rows = await conn.execute(
            text("SELECT round_id FROM held_allocations WHERE round_id = ANY(CAST(:r AS text[]))"), {"r": round_ids}
        )
        return {r[0] for r in rows}

    async def _paid_ids(self, conn: Conn, prizes: Sequence[Transfer]) -> set[Any]:
        """Ids of these transfers already in the ledger."""
        if not prizes:
            return set()
        rows = await conn.execute(
            text("SELECT id FROM ledger_transfers WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": [t.id for t in prizes]},
        )
        return {r[0] for r in rows}

    async def _pay_from_pool(self, conn: Conn, env: Env, *, hold_if_short: bool) -> bool:
        """Pay all allocations of a sponsored round from its pool, or none. False: the pool is short."""
        s: RoundSettled = env.data
        assert s.campaign_id is not None
        campaign = await get_campaign(conn, s.campaign_id)
        assert campaign is not None
        pool = accounts.pool(campaign.id, s.asset)
        prizes = [
            Transfer.of(
                pool, accounts.wallet(a.player_id, s.asset), a.amount, TransferKind.REWARD, s.round_id, a.player_id
            )
            for a in s.allocations
        ]
        before = (await self.ledger.lock(conn, [pool]))[pool]
        owed = sum(t.amount for t in prizes) - await self._already_paid(conn, prizes)
        if owed > before.available:
            if hold_if_short:
                await self._hold(conn, env, reason="pool_exhausted")
                await add_event(
                    conn,
                    follow(
                        env,
                        PoolExhausted(
                            campaign_id=campaign.id,
                            asset=s.asset,
                            remaining=max(0, before.available),
                            requested=owed,
                            round_id=s.round_id,
                        ),
                        source=self.source,
                        subject=campaign.id,
                        event_id=event_id_for("PoolExhausted", campaign.id, s.round_id),
                    ),
                )
                if self.metrics is not None:
                    self.metrics.pool_exhausted.labels(campaign.id).inc()
            return False
        result = await self._apply_round(conn, env, prizes, prizes)
        after = result.get(pool.id, before)
        await self._maybe_pool_low(conn, env, campaign.id, s.asset, before=before, after=after)
        return True

    async def _apply_round(
        self, conn: Conn, env: Env, batch: Sequence[Transfer], prizes: Sequence[Transfer]
    ) -> dict[Any, Balance]:
        s: RoundSettled = env.data
        result = await self._apply_or_refuse(conn, batch, s.round_id)
        count_transfers(self.metrics, result)
        await add_events(conn, self._allocated(env, prizes, result.applied_ids, self.clock()))
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

    async def _apply_or_refuse(self, conn: Conn, batch: Sequence[Transfer], round_id: str) -> Any:
        try:
            return await self.ledger.apply(conn, batch)
        except LedgerError as err:
            raise EventRefusal("conflicting_event", f"round {round_id}: {err.detail}") from err

    async def _already_paid(self, conn: Conn, prizes: Sequence[Transfer]) -> int:
        """Prizes of this round already in the ledger (a replay after a partial release cannot happen, but a
        replay of a paid round must not look short)."""
        rows = await conn.execute(
            text("SELECT coalesce(sum(amount), 0) FROM ledger_transfers WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": [t.id for t in prizes]},
        )
        return int(rows.scalar_one())

    async def _already_held(self, conn: Conn, round_id: str) -> bool:
        row = await conn.execute(text("SELECT 1 FROM held_allocations WHERE round_id = :r"), {"r": round_id})
        return row.first() is not None

    async def _hold(self, conn: Conn, env: Env, *, reason: str) -> None:
        s: RoundSettled = env.data
        await conn.execute(
            text(
                "INSERT INTO held_allocations (round_id, campaign_id, asset, total, reason, event, status) "
                "VALUES (:r, :c, :a, :t, :reason, CAST(:e AS jsonb), 'held') ON CONFLICT (round_id) DO NOTHING"
            ),
            {
                "r": s.round_id,
                "c": s.campaign_id,
                "a": s.asset,
                "t": sum(a.amount for a in s.allocations),
                "reason": reason,
                "e": env.model_dump_json(),
            },
        )

    async def _maybe_pool_low(
        self, conn: Conn, env: Env, campaign_id: str, asset: str, *, before: Balance, after: Balance
    ) -> None:
        campaign = await get_campaign(conn, campaign_id)
        assert campaign is not None
        threshold = low_threshold(campaign, after.credits_posted, self.pool_low_bps)
        if after.available <= threshold < before.available:
            await self._pool_low(conn, env, campaign_id, asset, remaining=after.available, threshold=threshold)
        self._pool_metrics(campaign_id, asset, after)

    async def _pool_low(
        self, conn: Conn, env: Env, campaign_id: str, asset: str, *, remaining: int, threshold: int
    ) -> None:
        await add_event(
            conn,
            follow(
                env,
                PoolLow(campaign_id=campaign_id, asset=asset, remaining=remaining, threshold=threshold),
                source=self.source,
                subject=campaign_id,
                event_id=event_id_for("PoolLow", campaign_id, env.id),
            ),
        )

    def _pool_metrics(self, campaign_id: str, asset: str, after: Balance) -> None:
        if self.metrics is not None:
            f = PoolFigures.of(after)
            self.metrics.pool_remaining.labels(campaign_id, asset).set(f.remaining)
            self.metrics.pool_paid.labels(campaign_id, asset).set(f.paid)

    def _fee(self, s: RoundSettled, i: int) -> Transfer:
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
        )

    async def void(self, conn: Conn, env: Env) -> None:
        """Refund each entry once (keyed by entry id) that was charged: to the wallet, or recorded as owed
        externally. An entry whose fee was never charged (the wallet could not cover it) gets nothing back."""
        v: RoundVoided = env.data
        await self._record_outcomes(conn, [(v.round_id, "voided")])
        charged = await self._charged(conn, v)
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
            )
            for r in refunds
        ]
        result = await self._apply_or_refuse(conn, transfers, v.round_id)
        count_transfers(self.metrics, result)
        new = result.applied_ids
        now = self.clock()
        await add_events(
            conn,
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

    async def _charged(self, conn: Conn, v: RoundVoided) -> set[str]:
        """The entries of a voided round whose fee the ledger holds."""
        fees = {entry_fee_id(v.round_id, r.entry_id): r.entry_id for r in v.refunds}
        if not fees:
            return set()
        rows = await conn.execute(
            text("SELECT id FROM ledger_transfers WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": list(fees)}
        )
        return {fees[row[0]] for row in rows}

    async def release_held(
        self, conn: Conn, actor: Principal, *, campaign_id: str, correlation_id: str
    ) -> dict[str, Any]:
        """Pay held rounds of a campaign, oldest first, while the pool covers them; the rest stay held."""
        campaign = await get_campaign(conn, campaign_id, lock=True)
        if campaign is None:
            raise CampaignError(404, "campaign_not_found", f"no campaign {campaign_id}")
        if campaign.status is not CampaignStatus.ACTIVE:
            raise CampaignError(409, "campaign_not_active", f"campaign {campaign_id} is {campaign.status.value}")
        rows = list(
            await conn.execute(
                text(
                    "SELECT round_id, event FROM held_allocations WHERE campaign_id = :c AND status = 'held' "
                    "ORDER BY held_at, round_id FOR UPDATE"
                ),
                {"c": campaign_id},
            )
        )
        held: list[Env] = [decode(row.event if isinstance(row.event, str) else json.dumps(row.event)) for row in rows]
        # The pool and every wallet any of these rounds pays, locked once in order before the first is paid
        # (their fees went to revenue when they were settled).
        await self.ledger.declare(
            conn,
            {
                ref
                for env in held
                for ref in (
                    accounts.pool(campaign.id, env.data.asset),
                    *(accounts.wallet(a.player_id, env.data.asset) for a in env.data.allocations),
                )
            },
        )
        released: list[str] = []
        for row, env in zip(rows, held, strict=True):
            if not await self._pay_from_pool(conn, env, hold_if_short=False):
                break
            await conn.execute(
                text(
                    "UPDATE held_allocations SET status = 'released', released_at = now(), released_by = :by "
                    "WHERE round_id = :r"
                ),
                {"r": row.round_id, "by": actor.user_id},
            )
            released.append(row.round_id)
        still = len(rows) - len(released)
        if released:
            await audit(
                conn,
                source=self.source,
                actor=actor,
                action="campaign.release_held",
                target_type="campaign",
                target_id=campaign_id,
                correlation_id=correlation_id,
                after={"released_rounds": ",".join(released)[:1000], "still_held": still},
            )
        return {"campaign_id": campaign_id, "released": released, "still_held": still}
