"""Round money on in-memory ports: a pool that cannot cover a round holds it whole until it is released, and a
voided round refunds each fee it charged exactly once. The rules, not the SQL."""

from __future__ import annotations

from typing import Any

import pytest
from rewards_fakes import Fakes

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.rewards import PoolExhausted, RefundIssued, RewardAllocated
from prizeflow_contracts.events.settlement import EntryAccepted, RoundSettled, RoundVoided
from prizeflow_rewards.application.campaigns import CampaignError, ChangeCampaignStatus, CreateCampaign, FundCampaign
from prizeflow_rewards.application.held_rounds import ReleaseHeldRounds
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import CampaignStatus
from prizeflow_rewards.domain.ledger import LedgerError, Transfer, TransferKind
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_testkit.events import AT, example_payload

ADMIN = Principal("admin-1", frozenset({Role.ADMIN}))


class World:
    def __init__(self) -> None:
        self.f = Fakes()
        uow = self.f.uow
        self.rounds = RoundMoney("/test")
        self.release_held = ReleaseHeldRounds(uow, self.rounds)
        self.create = CreateCampaign(uow, "/test")
        self.fund_campaign = FundCampaign(uow, "/test")
        self.status = ChangeCampaignStatus(uow, "/test")

    async def campaign(self, funded: int, campaign_id: str = "camp-1") -> None:
        await self.create(
            ADMIN, campaign_id=campaign_id, name=campaign_id, asset="USDC", low_threshold=None, correlation_id="c"
        )
        await self.fund(funded, "wire-0", campaign_id)

    async def fund(self, amount: int, reference: str, campaign_id: str = "camp-1") -> None:
        await self.fund_campaign(ADMIN, campaign_id=campaign_id, amount=amount, reference=reference, correlation_id="c")

    async def apply(self, *envs: Envelope[EventPayload]) -> None:
        """One consumer poll, as the round events handler runs it: every lock first, then the events in order."""
        await self.rounds.prepare(self.f.books, envs)
        for env in envs:
            await self.rounds.handle(self.f.books, env)

    async def release(self, campaign_id: str = "camp-1") -> dict[str, Any]:
        return await self.release_held(ADMIN, campaign_id=campaign_id, correlation_id="c")

    def posted(self, player: str) -> int:
        return self.f.ledger.of(accounts.wallet(player, "USDC")).posted

    def pool(self, campaign_id: str = "camp-1") -> int:
        return self.f.ledger.of(accounts.pool(campaign_id, "USDC")).available


def settled(round_id: str, shares: dict[str, int], campaign_id: str = "camp-1") -> Envelope[EventPayload]:
    payload = example_payload(
        RoundSettled,
        round_id=round_id,
        competition_id="comp-1",
        asset="USDC",
        prize_source="sponsored",
        campaign_id=campaign_id,
        distributable=sum(shares.values()),
        allocations=[
            {"player_id": p, "rank": i + 1, "amount": a, "source": "pool"} for i, (p, a) in enumerate(shares.items())
        ],
        remainder=0,
        fees=[],
    )
    return new_event(payload, source="/settlement", correlation_id=round_id)


async def test_a_round_the_pool_cannot_cover_is_held_whole_and_paid_once_released() -> None:
    w = World()
    await w.campaign(1_000)
    await w.apply(settled("r-1", {"p-1": 600, "p-2": 600}))
    assert (w.posted("p-1"), w.posted("p-2"), w.pool()) == (0, 0, 1_000)  # never paid in part
    [exhausted] = w.f.outbox.of(PoolExhausted)
    assert (exhausted.round_id, exhausted.remaining, exhausted.requested) == ("r-1", 1_000, 1_200)
    assert w.f.allocations.held["r-1"].reason == "pool_exhausted"
    await w.apply(settled("r-1", {"p-1": 600, "p-2": 600}))  # a replay of a held round changes nothing
    assert len(w.f.outbox.of(PoolExhausted)) == 1

    assert await w.release() == {"campaign_id": "camp-1", "released": [], "still_held": 1}  # still short
    await w.fund(500, "wire-1")
    assert await w.release() == {"campaign_id": "camp-1", "released": ["r-1"], "still_held": 0}
    assert (w.posted("p-1"), w.posted("p-2"), w.pool()) == (600, 600, 300)
    assert sorted(a.player_id for a in w.f.outbox.of(RewardAllocated)) == ["p-1", "p-2"]
    assert w.f.allocations.released == {"r-1": "admin-1"}
    assert [a.action for a in w.f.outbox.of(AdminActionRecorded)][-1] == "campaign.release_held"
    assert await w.release() == {"campaign_id": "camp-1", "released": [], "still_held": 0}
    assert w.pool() == 300  # paid once


async def test_release_pays_held_rounds_oldest_first_while_the_pool_covers_them() -> None:
    w = World()
    await w.campaign(100)
    for i in (1, 2, 3):
        await w.apply(settled(f"r-{i}", {f"p-{i}": 400}))
    assert list(w.f.allocations.held) == ["r-1", "r-2", "r-3"]
    await w.fund(800, "wire-1")  # 900: two rounds
    assert await w.release() == {"campaign_id": "camp-1", "released": ["r-1", "r-2"], "still_held": 1}
    assert (w.posted("p-1"), w.posted("p-2"), w.posted("p-3"), w.pool()) == (400, 400, 0, 100)


async def test_a_round_of_a_paused_campaign_is_held_and_released_only_when_active() -> None:
    w = World()
    await w.campaign(1_000)
    await w.status(ADMIN, campaign_id="camp-1", target=CampaignStatus.PAUSED, correlation_id="c")
    await w.apply(settled("r-1", {"p-1": 100}))
    assert w.f.allocations.held["r-1"].reason == "campaign_paused"
    with pytest.raises(CampaignError) as err:
        await w.release()
    assert (err.value.kind, err.value.code) == (ErrorKind.CONFLICT, "campaign_not_active")
    await w.status(ADMIN, campaign_id="camp-1", target=CampaignStatus.ACTIVE, correlation_id="c")
    assert (await w.release())["released"] == ["r-1"]
    assert w.posted("p-1") == 100
    with pytest.raises(CampaignError) as err:
        await w.release("camp-none")
    assert (err.value.status, err.value.code) == (404, "campaign_not_found")


async def test_a_covered_round_is_paid_once_whatever_the_replays() -> None:
    w = World()
    await w.campaign(1_000)
    env = settled("r-1", {"p-1": 300, "p-2": 200})
    await w.apply(env, new_event(env.data, source="/settlement", correlation_id="r-1"))
    await w.apply(env)
    assert (w.posted("p-1"), w.posted("p-2"), w.pool()) == (300, 200, 500)
    assert len(w.f.outbox.of(RewardAllocated)) == 2
    assert w.f.allocations.held == {}


def entry(entry_id: str, player: str, amount: int, paid_via: str = "wallet") -> Envelope[EventPayload]:
    payload = EntryAccepted(
        round_id="r-9",
        entry_id=entry_id,
        player_id=player,
        fee={"asset": "USDC", "amount": amount},
        paid_via=paid_via,
        accepted_at=AT,
    )
    return new_event(payload, source="/settlement", correlation_id="r-9")


def voided(*refunds: tuple[str, str, int, str]) -> Envelope[EventPayload]:
    payload = RoundVoided(
        round_id="r-9",
        reason="server crashed",
        refunds=[
            {"player_id": p, "entry_id": e, "amount": {"asset": "USDC", "amount": a}, "paid_via": via}
            for e, p, a, via in refunds
        ],
        voided_at=AT,
    )
    return new_event(payload, source="/settlement", correlation_id="r-9")


async def test_a_voided_round_refunds_each_fee_it_charged_once_and_takes_no_more() -> None:
    w = World()
    await w.f.ledger.apply(
        [
            Transfer.of(
                accounts.external("stripe", "USDC"), accounts.wallet("p-1", "USDC"), 500, TransferKind.TOP_UP, "s", 1
            )
        ],
    )
    await w.apply(entry("e-1", "p-1", 300), entry("e-2", "p-2", 200, paid_via="external"))
    with pytest.raises(EventRefusal) as refused:  # p-3's wallet cannot pay: the entry is never charged
        await w.apply(entry("e-3", "p-3", 100))
    assert refused.value.reason == "insufficient_funds"
    assert (w.posted("p-1"), w.f.ledger.of(accounts.escrow("r-9", "USDC")).posted) == (200, 500)

    refunds = [("e-1", "p-1", 300, "wallet"), ("e-2", "p-2", 200, "external"), ("e-3", "p-3", 100, "wallet")]
    await w.apply(voided(*refunds))
    await w.apply(voided(*refunds))  # a replay, under a new event id: nothing twice
    assert w.posted("p-1") == 500
    assert w.posted("p-3") == 0  # never charged, nothing back
    assert w.f.ledger.of(accounts.external(accounts.EXTERNAL, "USDC")).credits_posted == 200
    assert w.f.ledger.of(accounts.escrow("r-9", "USDC")).posted == 0
    assert sorted(r.entry_id for r in w.f.outbox.of(RefundIssued)) == ["e-1", "e-2"]

    with pytest.raises(EventRefusal) as late:  # a redriven entry after the refunds would never come back
        await w.apply(entry("e-4", "p-1", 100))
    assert late.value.reason == "illegal_transition"
    assert w.posted("p-1") == 500


async def test_a_release_the_ledger_refuses_is_a_409_refusal_never_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    await w.campaign(100)
    await w.apply(settled("r-1", {"p-1": 400}))
    await w.fund(800, "wire-1")

    async def refuse(transfers: object) -> None:
        raise LedgerError("transfer_conflict", "a prize of r-1 exists with a different body")

    monkeypatch.setattr(w.f.ledger, "apply", refuse)
    with pytest.raises(UseCaseError) as err:
        await w.release()
    assert (err.value.kind, err.value.code) == (ErrorKind.CONFLICT, "conflicting_event")
    assert "r-1" in w.f.allocations.held  # still held: nothing of the release is kept
