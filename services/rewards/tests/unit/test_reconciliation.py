"""Reconciliation adjustments on in-memory ports: one transfer treasury → the rail's external account per adjustment
id, a replay moves nothing, another body for the id is refused and names its event, and a poll that mixes them
with claim outcomes takes all its accounts in one lock. The rules, not the SQL (tests/integration has those)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from rewards_fakes import Fakes

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.payouts import AdjustmentKind, PayoutPaid, ReconciliationAdjusted
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_rewards.application.claims import ClaimPolicy, SettlePayout, SubmitClaim
from prizeflow_rewards.application.reconciliation import (
    ADJUSTMENT_KINDS,
    PostReconciliationAdjustments,
    adjustment_transfer,
)
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import AccountKind, AccountRef, Transfer, TransferKind, transfer_id
from prizeflow_rewards.entrypoints.kafka import PayoutEventsHandler
from prizeflow_runtime.auth import Principal, Role
from prizeflow_testkit.events import AT, example_payload


def adjusted(
    adjustment_id: str = "adj-1",
    *,
    kind: str = "write_off",
    provider: str = "stripe",
    amount: int = 700,
    asset: str = "USDC",
    exception_id: int = 41,
    correlation_id: str = "recon-41",
) -> Envelope[EventPayload]:
    payload = ReconciliationAdjusted.model_validate(
        {
            "adjustment_id": adjustment_id,
            "exception_id": exception_id,
            "kind": kind,
            "provider": provider,
            "provider_name": f"{provider}-main",
            "amount": {"asset": asset, "amount": amount},
            "payout_id": None,
            "approved_by": ["ops-1", "approver-1"],
            "reason": "the provider's statement shows it, nothing of ours does",
            "adjusted_at": AT,
        }
    )
    return new_event(payload, source="/prizeflow/payouts", correlation_id=correlation_id)


def sums_per_asset(f: Fakes) -> dict[str, tuple[int, int]]:
    """(posted, pending) net of every account, per asset: zero in a double-entry ledger."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for account_id, b in f.ledger.balance.items():
        asset = f.ledger.accounts[account_id].asset
        out[asset][0] += b.credits_posted - b.debits_posted
        out[asset][1] += b.credits_pending - b.debits_pending
    return {a: (p, q) for a, (p, q) in out.items()}


def adjustments(f: Fakes) -> list[Transfer]:
    kinds = set(ADJUSTMENT_KINDS.values())
    return [t for t in f.ledger.transfers.values() if t.kind in kinds]


async def poll(f: Fakes, post: PostReconciliationAdjustments, envs: list[Envelope[EventPayload]]) -> None:
    """What the payouts consumer does with a poll of adjustments alone: declare, then post."""
    await f.ledger.declare(post.accounts(envs))
    await post.post_many(f.books, envs)


async def test_a_write_off_posts_one_transfer_from_an_empty_treasury_to_the_rails_external_account() -> None:
    f = Fakes()
    post = PostReconciliationAdjustments()
    await poll(f, post, [adjusted()])
    [t] = adjustments(f)
    assert (t.debit, t.credit, t.amount, t.kind) == (
        accounts.treasury("USDC"),
        accounts.external("stripe", "USDC"),  # the provider TYPE, as PayoutPaid credits it
        700,
        TransferKind.RECONCILIATION_WRITE_OFF,
    )
    assert t.id == transfer_id("reconciliation_adjustment|adj-1")
    assert t.correlation_id == "recon-41"
    # The treasury held nothing: a loss is a loss, it posts and the treasury goes below zero.
    assert f.ledger.of(accounts.treasury("USDC")).posted == -700
    assert f.ledger.of(accounts.external("stripe", "USDC")).posted == 700
    assert sums_per_asset(f) == {"USDC": (0, 0)}


async def test_a_fee_is_its_own_transfer_kind_and_every_adjustment_kind_has_one() -> None:
    assert set(ADJUSTMENT_KINDS) == set(AdjustmentKind)
    assert len(set(ADJUSTMENT_KINDS.values())) == len(AdjustmentKind)
    fee = adjusted("adj-fee", kind="fee", provider="stellar", amount=3, asset="XLM")
    assert isinstance(fee.data, ReconciliationAdjusted)
    t = adjustment_transfer(fee.data, correlation_id=fee.correlationid)
    assert (t.kind, t.debit.kind, t.credit) == (
        TransferKind.RECONCILIATION_FEE,
        AccountKind.TREASURY,
        accounts.external("stellar", "XLM"),
    )


async def test_an_adjustment_delivered_again_moves_nothing_more() -> None:
    f = Fakes()
    post = PostReconciliationAdjustments()
    first = adjusted()
    again = adjusted()  # the same adjustment re-emitted under a new event id
    assert first.id != again.id
    await poll(f, post, [first])
    await poll(f, post, [again, first])  # and twice within one poll
    assert len(adjustments(f)) == 1
    assert f.ledger.of(accounts.external("stripe", "USDC")).posted == 700
    assert sums_per_asset(f) == {"USDC": (0, 0)}


@pytest.mark.parametrize(
    "changed",
    [{"amount": 701}, {"kind": "fee"}, {"provider": "stellar"}, {"asset": "XLM"}],
    ids=["amount", "kind", "provider", "asset"],
)
async def test_the_same_adjustment_id_with_other_money_is_refused_and_names_its_event(changed: dict[str, Any]) -> None:
    f = Fakes()
    post = PostReconciliationAdjustments()
    await poll(f, post, [adjusted()])
    other = adjusted(**changed)
    neighbour = adjusted("adj-2", amount=5)
    with pytest.raises(EventRefusal) as refused:
        await poll(f, post, [neighbour, other])
    assert (refused.value.reason, refused.value.event_id) == ("conflicting_event", other.id)
    assert "adj-1" in refused.value.detail
    # The first posting stands (the consumer rolls the poll back and applies the neighbour without the refused one).
    assert f.ledger.transfers[transfer_id("reconciliation_adjustment|adj-1")].amount == 700


async def test_two_bodies_of_one_adjustment_in_one_poll_refuse_the_later_one() -> None:
    f = Fakes()
    post = PostReconciliationAdjustments()
    first, second = adjusted(amount=700), adjusted(amount=900)
    with pytest.raises(EventRefusal) as refused:
        await poll(f, post, [first, second])
    assert (refused.value.reason, refused.value.event_id) == ("conflicting_event", second.id)


async def test_a_poll_of_claim_outcomes_and_adjustments_takes_all_its_accounts_in_one_lock() -> None:
    """The ledger refuses an account taken after a transaction's first lock (strict mode, PostgreSQL): the payouts
    handler declares the adjustments' accounts with the claims' own, once, and settles both."""
    f = Fakes()
    f.routes.routes = {("USDC", "stellar_account", "stellar")}
    player = "p-1"
    await f.ledger.apply(
        [
            Transfer.of(
                accounts.external("stripe", "USDC"), accounts.wallet(player, "USDC"), 5_000, TransferKind.TOP_UP, "t"
            )
        ],
    )
    submit = SubmitClaim(
        ClaimPolicy({"USDC": 1}, {"USDC": 10**9}, {"USDC": 10**9}, new_destination_cooldown_s=0), "/test"
    )
    dest = PayoutDestination(
        type=DestinationType.STELLAR_ACCOUNT, address="GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
    )
    claim, _ = await submit(
        f.books,
        Principal(player, frozenset({Role.PLAYER})),
        player_id=player,
        asset="USDC",
        amount=1_000,
        destination=dest,
    )
    paid = example_payload(
        PayoutPaid,
        payout_id="po-1",
        payout_request_id=claim.payout_request_id,
        claim_id=claim.id,
        player_id=player,
        amount={"asset": "USDC", "amount": 1_000},
        provider="stellar",
        idempotency_key=f"{claim.id}:payout",
        paid_at=AT,
    )
    f.ledger.declared.clear()
    handler = PayoutEventsHandler(SettlePayout())
    await handler(f.books, [new_event(paid, source="/payouts", correlation_id=claim.id), adjusted(provider="stellar")])
    assert f.ledger.declared == [
        {
            accounts.wallet(player, "USDC"),
            accounts.clearing("USDC"),
            accounts.external("stellar", "USDC"),
            accounts.treasury("USDC"),
        }
    ]
    assert f.ledger.of(accounts.external("stellar", "USDC")).posted == 1_000 + 700
    assert len(adjustments(f)) == 1
    assert sums_per_asset(f) == {"USDC": (0, 0)}


async def test_a_poll_without_adjustments_locks_what_it_locked_before() -> None:
    f = Fakes()
    handler = PayoutEventsHandler(SettlePayout())
    assert handler.adjust is None  # wired by default on the settlement's metrics and source
    await handler(f.books, [])
    assert f.ledger.declared == []


def test_accounts_are_only_the_adjustments_own() -> None:
    envs = [adjusted(provider="stripe"), adjusted("adj-2", provider="stripe", asset="XLM")]
    expected: set[AccountRef] = {
        accounts.treasury("USDC"),
        accounts.external("stripe", "USDC"),
        accounts.treasury("XLM"),
        accounts.external("stripe", "XLM"),
    }
    assert PostReconciliationAdjustments.accounts(envs) == expected
