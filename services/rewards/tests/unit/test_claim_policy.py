"""The operators' risk policy before a claim reserves money, and the claims that wait for the player's verification,
on in-memory ports: what is refused, held and approved, what a verification change does to the claims waiting
for it, and what a player is shown (never a threshold, window or count)."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rewards_fakes import Fakes

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.payouts import PayoutRequested, PlayerVerificationChanged, RiskPolicyActivated
from prizeflow_contracts.events.rewards import ClaimApproved, ClaimHeld, ClaimRejected
from prizeflow_contracts.policy import (
    PLAYER_MESSAGE,
    AmountInWindow,
    CountInWindow,
    Finding,
    PolicyRule,
    PolicyScope,
    RiskPolicy,
    VerificationStatus,
)
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_rewards.application.claims import (
    ApplyComplianceEvents,
    Claim,
    ClaimError,
    ClaimPolicy,
    ReviewHold,
    SubmitClaim,
)
from prizeflow_rewards.application.claims.submit import ClaimRequest
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.claims import (
    HOLD_NEXT_STEP,
    REJECTION_NEXT_STEP,
    REVIEWED,
    STATUS_NEXT_STEP,
    ClaimStatus,
)
from prizeflow_rewards.domain.ledger import Transfer, TransferKind
from prizeflow_runtime.auth import Principal, Role

KEYS = [
    "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7",
    "GBRPYHIL2CI3FNQ4BXLFMNDLFJUNPU2HY3ZMFSHONUCEOASW7QC7OX2H",
]
DEST = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=KEYS[0])
OTHER_DEST = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=KEYS[1])
DAY = 86_400
PAYOUTS = "/prizeflow/payouts"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def policy(version: int = 1, **rule: Any) -> RiskPolicy:
    return RiskPolicy(version=version, rules=[PolicyRule(**rule)])


class World:
    """Players with funded wallets, the settings' limits lifted (the policy decides), the use cases on fakes."""

    def __init__(self, rules: RiskPolicy | None = None, **limits: Any) -> None:
        self.f = Fakes()
        self.f.routes.routes = {("USDC", "stellar_account", "stellar")}
        self.clock = Clock()
        lifted: dict[str, Any] = {
            "min_claim": {"USDC": 1},
            "daily_limit": {},
            "review_threshold": {},
            "velocity_max_claims": 1_000_000,
            "new_destination_cooldown_s": 0,
            **limits,
        }
        self.submit = SubmitClaim(ClaimPolicy(**lifted), "/test", clock=self.clock)
        self.compliance = ApplyComplianceEvents("/test", clock=self.clock)
        if rules is not None:
            self.f.compliance.policy = rules
        self.sequence = 0

    async def fund(self, amount: int, player: str = "p-1") -> None:
        t = Transfer.of(
            accounts.external("stripe", "USDC"),
            accounts.wallet(player, "USDC"),
            amount,
            TransferKind.TOP_UP,
            "stripe",
            f"ref-{len(self.f.ledger.transfers)}",
        )
        await self.f.ledger.apply([t])

    async def claim(self, amount: int, player: str = "p-1", dest: PayoutDestination = DEST) -> Claim:
        who = Principal(player, frozenset({Role.PLAYER}))
        claim, _ = await self.submit(self.f.books, who, player_id=player, asset="USDC", amount=amount, destination=dest)
        return claim

    def available(self, player: str = "p-1") -> int:
        return self.f.ledger.of(accounts.wallet(player, "USDC")).available

    def verification(
        self, status: VerificationStatus, player: str = "p-1", sequence: int | None = None, source: str = PAYOUTS
    ) -> Envelope[Any]:
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        data = PlayerVerificationChanged(
            player_id=player, reference=f"ver-{player}", status=status, sequence=sequence, changed_at=self.clock.now
        )
        return new_event(data, source=source, correlation_id=f"ver-{player}")

    async def deliver(self, *envs: Envelope[Any]) -> None:
        waiting = await self.compliance.prepare(self.f.books, envs)
        await self.compliance.apply(self.f.books, envs, waiting)

    def stored(self, claim: Claim) -> Claim:
        return self.f.claims.rows[claim.id].claim


# -- the policy at claim time --------------------------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(
    threshold=st.integers(1, 5_000),
    amounts=st.lists(st.integers(1, 2_000), min_size=1, max_size=12),
    batched=st.booleans(),
)
def test_a_claim_that_takes_an_unverified_player_over_the_threshold_is_never_approved(
    threshold: int, amounts: list[int], batched: bool
) -> None:
    asyncio.run(_over_threshold(threshold, amounts, batched))


async def _over_threshold(threshold: int, amounts: list[int], batched: bool) -> None:
    w = World(policy(kyc_above=AmountInWindow(amount=threshold, window_s=DAY)))
    await w.fund(100_000)
    who = Principal("p-1", frozenset({Role.PLAYER}))
    if batched:  # one intake batch: each request sees the ones before it
        requests = [ClaimRequest(who, "p-1", "USDC", a, DEST) for a in amounts]
        claims = [o[0] for o in await w.submit.decide(w.f.books, requests) if isinstance(o, tuple)]
    else:
        claims = [await w.claim(a) for a in amounts]
    total = 0
    for claim in claims:
        total += claim.amount
        if total > threshold:
            assert claim.status is ClaimStatus.HELD
            assert claim.hold_code == "kyc_required"
        else:
            assert claim.status is ClaimStatus.APPROVED
        assert claim.policy_version == 1
    approved = sum(c.amount for c in claims if c.status is ClaimStatus.APPROVED)
    assert approved <= threshold
    assert w.available() == 100_000 - sum(amounts)  # held claims reserve their amount too


async def test_a_verified_player_is_not_held_for_verification() -> None:
    w = World(policy(kyc_above=AmountInWindow(amount=100, window_s=DAY)))
    w.f.compliance.verifications["p-1"] = (VerificationStatus.VERIFIED, 1)
    await w.fund(10_000)
    assert (await w.claim(5_000)).status is ClaimStatus.APPROVED


async def test_a_failed_verification_refuses_a_claim_over_the_threshold_and_writes_nothing() -> None:
    w = World(policy(kyc_above=AmountInWindow(amount=100, window_s=DAY)))
    w.f.compliance.verifications["p-1"] = (VerificationStatus.FAILED, 1)
    await w.fund(10_000)
    assert (await w.claim(100)).status is ClaimStatus.APPROVED  # at the threshold: not over it
    with pytest.raises(ClaimError) as err:
        await w.claim(1)
    assert err.value.code == "kyc_failed"
    assert err.value.detail == PLAYER_MESSAGE[Finding.KYC_FAILED]
    assert len(w.f.claims.rows) == 1
    assert w.available() == 9_900


@settings(max_examples=80, deadline=None)
@given(limit=st.integers(1, 5_000), amounts=st.lists(st.integers(1, 2_000), min_size=1, max_size=10))
def test_the_player_limit_refuses_what_would_exceed_it_and_names_no_number(limit: int, amounts: list[int]) -> None:
    asyncio.run(_player_limit(limit, amounts))


async def _player_limit(limit: int, amounts: list[int]) -> None:
    w = World(policy(player_limit=AmountInWindow(amount=limit, window_s=DAY)))
    await w.fund(100_000)
    taken = 0
    for amount in amounts:
        if taken + amount > limit:
            with pytest.raises(ClaimError) as err:
                await w.claim(amount)
            assert err.value.code == "player_limit_exceeded"
            assert not re.search(r"\d", err.value.detail)
        else:
            assert (await w.claim(amount)).status is ClaimStatus.APPROVED
            taken += amount
    assert w.available() == 100_000 - taken


async def test_the_destination_limit_counts_every_players_claims_to_it() -> None:
    w = World(policy(destination_limit=AmountInWindow(amount=1_000, window_s=DAY)))
    for p in ("p-1", "p-2"):
        await w.fund(10_000, p)
    assert (await w.claim(600, "p-1")).status is ClaimStatus.APPROVED
    with pytest.raises(ClaimError) as err:
        await w.claim(600, "p-2")
    assert err.value.code == "destination_limit_exceeded"
    assert (await w.claim(600, "p-2", OTHER_DEST)).status is ClaimStatus.APPROVED
    w.clock.now += timedelta(seconds=DAY + 1)  # the window has passed
    assert (await w.claim(600, "p-2")).status is ClaimStatus.APPROVED


async def test_a_rejected_claim_no_longer_counts_toward_the_window() -> None:
    w = World(policy(player_limit=AmountInWindow(amount=1_000, window_s=DAY)))
    await w.fund(10_000)
    first = await w.claim(1_000)
    row = w.f.claims.rows[first.id]
    row.claim = replace(first, status=ClaimStatus.VOIDED)  # its payout failed: the reservation went back
    assert (await w.claim(1_000)).status is ClaimStatus.APPROVED


async def test_velocity_and_a_new_destination_hold_for_a_person() -> None:
    w = World(policy(velocity=CountInWindow(count=2, window_s=3_600)))
    await w.fund(10_000)
    assert [(await w.claim(10)).status for _ in range(2)] == [ClaimStatus.APPROVED] * 2
    held = await w.claim(10)
    assert (held.status, held.hold_code) == (ClaimStatus.HELD, "velocity")
    assert "3600" in (held.hold_detail or "")  # staff see the rule's numbers

    w = World(policy(new_destination_cooldown_s=DAY))
    await w.fund(10_000)
    held = await w.claim(10)
    assert (held.status, held.hold_code) == (ClaimStatus.HELD, "new_destination")
    w.clock.now += timedelta(seconds=DAY)
    assert (await w.claim(10)).status is ClaimStatus.APPROVED


async def test_a_rule_scoped_to_another_asset_or_a_rail_does_not_stop_the_claim() -> None:
    w = World(
        RiskPolicy(
            version=3,
            rules=[
                PolicyRule(scope=PolicyScope(asset="XLM"), player_limit=AmountInWindow(amount=1, window_s=DAY)),
                PolicyRule(allowed_rails=["stripe"]),  # the claim knows no rail: the payout gate decides
            ],
        )
    )
    await w.fund(10_000)
    claim = await w.claim(5_000)
    assert (claim.status, claim.policy_version) == (ClaimStatus.APPROVED, 3)


async def test_the_settings_limits_stay_a_floor_under_the_policy() -> None:
    w = World(policy(player_limit=AmountInWindow(amount=10_000, window_s=DAY)), daily_limit={"USDC": 500})
    await w.fund(10_000)
    with pytest.raises(ClaimError) as err:
        await w.claim(600)
    assert err.value.code == "daily_limit_exceeded"
    assert "500" not in err.value.detail  # the player is not told the limit


async def test_the_existing_holds_come_before_the_policys() -> None:
    w = World(policy(kyc_above=AmountInWindow(amount=100, window_s=DAY)), review_threshold={"USDC": 1_000})
    await w.fund(10_000)
    held = await w.claim(2_000)
    assert held.hold_code == "amount_over_threshold"


# -- what a player sees --------------------------------------------------------------------------------------------

_PLAYER_SAFE = ("claim_id", "payout_request_id", "amount", "destination", "created_at", "player_id")


@settings(max_examples=80, deadline=None)
@given(
    threshold=st.integers(1, 999),
    window=st.integers(60, 10 * DAY),
    count=st.integers(1, 3),
    cooldown=st.integers(1, DAY),
)
def test_a_player_never_sees_a_number_of_the_policy(threshold: int, window: int, count: int, cooldown: int) -> None:
    asyncio.run(_player_view(threshold, window, count, cooldown))


async def _player_view(threshold: int, window: int, count: int, cooldown: int) -> None:
    w = World(
        RiskPolicy(
            version=7,
            rules=[
                PolicyRule(kyc_above=AmountInWindow(amount=threshold, window_s=window)),
                PolicyRule(velocity=CountInWindow(count=count, window_s=window)),
                PolicyRule(new_destination_cooldown_s=cooldown),
            ],
        )
    )
    await w.fund(100_000)
    for _ in range(count + 1):
        claim = await w.claim(1_000)
        assert claim.status is ClaimStatus.HELD
        view = claim.player_view()
        assert "hold_detail" not in view
        assert "policy_version" not in view
        said = json.dumps({k: v for k, v in view.items() if k not in _PLAYER_SAFE})
        assert not re.search(r"\d", said), said
        assert view["next_step"] in set(PLAYER_MESSAGE.values())
        assert claim.view()["hold_detail"]  # staff keep the reasons


def test_every_player_message_is_free_of_numbers() -> None:
    for said in [REVIEWED, *HOLD_NEXT_STEP.values(), *REJECTION_NEXT_STEP.values(), *STATUS_NEXT_STEP.values()]:
        assert not re.search(r"\d", said)


# -- claims waiting for the player's verification ------------------------------------------------------------------


async def held_for_verification(w: World, *amounts: int) -> list[Claim]:
    await w.fund(10_000)
    claims = [await w.claim(a) for a in amounts]
    assert all(c.hold_code == "kyc_required" for c in claims)
    return claims


async def test_verified_releases_the_waiting_claims_once_even_when_replayed() -> None:
    w = World(policy(kyc_above=AmountInWindow(amount=100, window_s=DAY)))
    first, second = await held_for_verification(w, 500, 700)
    verified = w.verification(VerificationStatus.VERIFIED)
    await w.deliver(verified)
    assert [w.stored(c).status for c in (first, second)] == [ClaimStatus.APPROVED] * 2
    await w.deliver(verified)  # a replay (the inbox stops it too): the sequence is not newer
    requested = w.f.outbox.of(PayoutRequested)
    assert sorted(r.claim_id for r in requested) == sorted([first.id, second.id])
    assert {a.approved_by for a in w.f.outbox.of(ClaimApproved) if a.claim_id == first.id} == {"system:verification"}
    audits = [a for a in w.f.outbox.of(AdminActionRecorded) if a.action == "claim.release"]
    assert {a.actor_user_id for a in audits} == {"system:verification"}
    assert w.available() == 10_000 - 1_200  # still reserved, now for the payouts


async def test_a_verified_player_still_held_for_something_else_stays_held_with_the_new_reason() -> None:
    rules = RiskPolicy(
        version=2,
        rules=[
            PolicyRule(kyc_above=AmountInWindow(amount=100, window_s=DAY)),
            PolicyRule(velocity=CountInWindow(count=1, window_s=3_600)),
        ],
    )
    w = World(rules)
    await w.fund(10_000)
    first = await w.claim(50)
    assert first.status is ClaimStatus.APPROVED
    second = await w.claim(500)  # over the threshold, and a second claim within the hour
    assert second.hold_code == "kyc_required"  # the player's verification first
    await w.deliver(w.verification(VerificationStatus.VERIFIED))
    again = w.stored(second)
    assert (again.status, again.hold_code) == (ClaimStatus.HELD, "velocity")
    assert w.f.outbox.of(PayoutRequested) == [r for r in w.f.outbox.of(PayoutRequested) if r.claim_id == first.id]


async def test_failed_rejects_the_waiting_claims_and_gives_their_amounts_back() -> None:
    w = World(policy(kyc_above=AmountInWindow(amount=100, window_s=DAY)))
    claims = await held_for_verification(w, 500, 700)
    await w.deliver(w.verification(VerificationStatus.FAILED))
    assert [(w.stored(c).status, w.stored(c).rejection_code) for c in claims] == [
        (ClaimStatus.REJECTED, "kyc_failed")
    ] * 2
    assert w.available() == 10_000
    assert sorted(r.claim_id for r in w.f.outbox.of(ClaimRejected)) == sorted(c.id for c in claims)
    assert not w.f.outbox.of(PayoutRequested)


async def test_an_older_or_undecided_verification_changes_nothing() -> None:
    w = World(policy(kyc_above=AmountInWindow(amount=100, window_s=DAY)))
    [claim] = await held_for_verification(w, 500)
    await w.deliver(w.verification(VerificationStatus.PENDING, sequence=5))
    await w.deliver(w.verification(VerificationStatus.VERIFIED, sequence=4))  # late: older than pending
    assert w.stored(claim).status is ClaimStatus.HELD
    await w.deliver(w.verification(VerificationStatus.RETRY, sequence=6))
    assert w.stored(claim).status is ClaimStatus.HELD
    await w.deliver(w.verification(VerificationStatus.VERIFIED, sequence=7))
    assert w.stored(claim).status is ClaimStatus.APPROVED
    await w.deliver(w.verification(VerificationStatus.FAILED, sequence=8))  # decided claims are left alone
    assert w.stored(claim).status is ClaimStatus.APPROVED


async def test_a_claim_released_by_a_person_meanwhile_is_left_alone() -> None:
    w = World(policy(kyc_above=AmountInWindow(amount=100, window_s=DAY)))
    [claim] = await held_for_verification(w, 500)
    review = ReviewHold(w.f.uow, "/test", clock=w.clock)
    await review.release(Principal("ops-1", frozenset({Role.OPS})), claim.id, reason="checked by hand")
    await w.deliver(w.verification(VerificationStatus.VERIFIED))
    assert len(w.f.outbox.of(PayoutRequested)) == 1


async def test_only_payouts_says_who_may_be_paid() -> None:
    w = World(policy(kyc_above=AmountInWindow(amount=100, window_s=DAY)))
    [claim] = await held_for_verification(w, 500)
    with pytest.raises(EventRefusal) as refusal:
        await w.deliver(w.verification(VerificationStatus.VERIFIED, source="/prizeflow/game"))
    assert refusal.value.reason == "invalid_envelope"
    assert w.stored(claim).status is ClaimStatus.HELD


async def test_a_newer_policy_applies_to_the_next_claim_and_an_older_one_changes_nothing() -> None:
    w = World()
    await w.fund(10_000)
    assert (await w.claim(500)).policy_version == 0

    def activated(version: int, limit: int) -> Envelope[Any]:
        event = RiskPolicyActivated(
            policy=policy(version, player_limit=AmountInWindow(amount=limit, window_s=DAY)),
            proposed_by="admin-1",
            approved_by="admin-2",
            activated_at=w.clock.now,
        )
        return new_event(event, source=PAYOUTS, correlation_id=f"policy-{version}")

    await w.deliver(activated(2, 600))
    with pytest.raises(ClaimError):
        await w.claim(200)  # 500 + 200 > 600
    await w.deliver(activated(1, 100_000))  # late and older: ignored
    assert w.f.compliance.policy.version == 2
    assert (await w.claim(100)).policy_version == 2
    assert not w.f.outbox.of(ClaimHeld)


async def test_a_claim_assessed_again_is_not_counted_twice_and_a_tighter_policy_sends_it_to_a_person() -> None:
    rules = RiskPolicy(
        version=1,
        rules=[
            PolicyRule(
                kyc_above=AmountInWindow(amount=100, window_s=DAY),
                player_limit=AmountInWindow(amount=1_000, window_s=DAY),
            )
        ],
    )
    w = World(rules)
    [fits, tightened] = await held_for_verification(w, 600, 300)  # 900 in all: within the limit
    await w.deliver(w.verification(VerificationStatus.VERIFIED))
    assert [w.stored(c).status for c in (fits, tightened)] == [ClaimStatus.APPROVED] * 2

    w = World(rules)
    [claim] = await held_for_verification(w, 600)
    w.f.compliance.policy = policy(2, player_limit=AmountInWindow(amount=500, window_s=DAY))  # tightened since
    await w.deliver(w.verification(VerificationStatus.VERIFIED))
    again = w.stored(claim)
    assert (again.status, again.hold_code, again.policy_version) == (ClaimStatus.HELD, "manual_review", 2)
    assert "500" in (again.hold_detail or "")
    assert again.player_view()["next_step"] == REVIEWED
    assert not w.f.outbox.of(PayoutRequested)
