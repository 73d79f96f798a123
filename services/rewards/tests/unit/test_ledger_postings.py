"""LedgerPosted on in-memory ports: rewards tells payouts every transfer it writes on a rail's external account (paid,
returned, reconciliation adjustment), once per transfer, with an id and a time that depend on nothing but the
transfer and its outcome, in one outbox write per poll; nothing for outcomes that move no money to a rail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rewards_fakes import Fakes

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, event_id_for, event_types, new_event
from prizeflow_contracts.events.payouts import (
    LedgerPosted,
    LedgerPostingKind,
    PayoutCancelled,
    PayoutCreated,
    PayoutFailed,
    PayoutPaid,
    PayoutRejected,
    PayoutRequestRefused,
    PayoutReturned,
    ReconciliationAdjusted,
)
from prizeflow_contracts.providers import DestinationType, PayoutDestination, ProviderType
from prizeflow_contracts.topics import PAYOUT_EVENTS, PAYOUT_REQUESTS
from prizeflow_rewards.application.claims import ApplyComplianceEvents, Claim, ClaimPolicy, SettlePayout, SubmitClaim
from prizeflow_rewards.application.ledger_postings import Posting
from prizeflow_rewards.application.reconciliation import PostReconciliationAdjustments
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferKind, transfer_id
from prizeflow_rewards.entrypoints.kafka import PayoutEventsHandler
from prizeflow_runtime.auth import Principal, Role
from prizeflow_testkit.events import AT, example_payload

PLAYER = Principal("p-1", frozenset({Role.PLAYER}))
DEST = PayoutDestination(
    type=DestinationType.STELLAR_ACCOUNT, address="GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
)
PAID_AT = AT + timedelta(minutes=5)  # the outcome's own time, no clock's
SOURCE = "/prizeflow/rewards-test"


class World:
    """A player with 10 000 USDC in the wallet, the claim use cases and the payouts consumer on fakes."""

    def __init__(self) -> None:
        self.f = Fakes()
        self.f.routes.routes = {("USDC", "stellar_account", "stellar")}
        self.submit = SubmitClaim(
            ClaimPolicy({"USDC": 1}, {"USDC": 10**9}, {"USDC": 10**9}, new_destination_cooldown_s=0), "/test"
        )
        self.settle = SettlePayout(source=SOURCE)
        self.handler = PayoutEventsHandler(self.settle)

    async def funded(self) -> World:
        top_up = Transfer.of(
            accounts.external("stripe", "USDC"), accounts.wallet("p-1", "USDC"), 10_000, TransferKind.TOP_UP, "t-1"
        )
        await self.f.ledger.apply([top_up])
        return self

    async def claim(self, amount: int = 1_000, key: str = "k-1") -> Claim:
        claim, _ = await self.submit(
            self.f.books, PLAYER, player_id="p-1", asset="USDC", amount=amount, destination=DEST, idempotency_key=key
        )
        return claim

    async def poll(self, *envs: Envelope[EventPayload]) -> list[Envelope[LedgerPosted]]:
        """One poll of the payouts consumer; the LedgerPosted it staged."""
        before = len(self.f.outbox.events)
        await self.handler(self.f.books, list(envs))
        return [e for e in self.f.outbox.events[before:] if isinstance(e.data, LedgerPosted)]


def outcome(cls: type[Any], claim: Claim, *, payout_id: str | None = None, **extra: Any) -> Envelope[EventPayload]:
    payload = example_payload(
        cls,
        payout_id=payout_id or f"po-{claim.id}",
        payout_request_id=claim.payout_request_id,
        claim_id=claim.id,
        player_id=claim.player_id,
        amount={"asset": claim.asset, "amount": claim.amount},
        provider="stellar",
        idempotency_key=f"{claim.id}:payout",
        **extra,
    )
    return new_event(payload, source="/prizeflow/payouts", correlation_id=f"flow-{claim.id}")


def paid(claim: Claim) -> Envelope[EventPayload]:
    return outcome(PayoutPaid, claim, paid_at=PAID_AT)


def returned(claim: Claim, amount: int) -> Envelope[EventPayload]:
    return outcome(
        PayoutReturned,
        claim,
        returned_amount={"asset": "USDC", "amount": amount},
        reason="bounced",
        returned_at=PAID_AT + timedelta(minutes=7),
    )


def adjusted(
    adjustment_id: str = "adj-1", *, payout_id: str | None = "po-9", amount: int = 700
) -> Envelope[EventPayload]:
    payload = example_payload(
        ReconciliationAdjusted,
        adjustment_id=adjustment_id,
        kind="write_off",
        provider="stellar",
        amount={"asset": "USDC", "amount": amount},
        payout_id=payout_id,
        adjusted_at=PAID_AT,
    )
    return new_event(payload, source="/prizeflow/payouts", correlation_id="recon-41")


async def test_a_paid_payout_tells_payouts_its_settle_transfer_on_the_rails_external_account() -> None:
    w = await World().funded()
    claim = await w.claim(1_000)
    cause = paid(claim)
    [event] = await w.poll(cause)
    settle = transfer_id(f"payout_settle|{claim.id}")
    assert settle in w.f.ledger.transfers  # the transfer it names is the ledger's
    assert w.f.ledger.transfers[settle].credit == accounts.external("stellar", "USDC")
    assert event.data == LedgerPosted(
        transfer_id=str(settle),
        kind=LedgerPostingKind.PAYOUT,
        provider=ProviderType.STELLAR,
        amount={"asset": "USDC", "amount": 1_000},
        claim_id=claim.id,
        payout_id=f"po-{claim.id}",
        adjustment_id=None,
        posted_at=PAID_AT,
    )
    assert event.id == event_id_for("ledger-posted", settle)
    assert (event.time, event.correlationid, event.causationid, event.source) == (
        PAID_AT,
        cause.correlationid,
        str(cause.id),
        SOURCE,
    )
    assert event.data.TOPIC is PAYOUT_REQUESTS
    assert event.key == cause.correlationid.encode()


async def test_a_replayed_paid_tells_nothing_more_and_a_rerun_after_a_rollback_stages_the_same_bytes() -> None:
    w = await World().funded()
    claim = await w.claim(1_000)
    cause = paid(claim)
    [first] = await w.settle.settle_poll(w.f.books, [cause])  # the outbox row, as the poll stages it
    assert await w.poll(cause) == []  # redelivered
    assert await w.poll(paid(claim)) == []  # re-emitted by payouts under another event id
    assert await w.poll(cause, cause) == []
    # The same poll run on a ledger without its transfer (the first transaction rolled back): the same row.
    again = await World().funded()
    assert (await again.claim(1_000)).id == claim.id
    [rerun] = await again.settle.settle_poll(again.f.books, [cause])
    assert rerun == first
    assert decode(rerun.payload).time == PAID_AT


async def test_one_paid_twice_in_one_poll_is_told_once() -> None:
    w = await World().funded()
    claim = await w.claim(1_000)
    cause = paid(claim)
    assert len(await w.poll(cause, cause)) == 1


async def test_a_return_tells_a_return_posting_of_the_amount_that_came_back() -> None:
    w = await World().funded()
    claim = await w.claim(1_000)
    await w.poll(paid(claim))
    back = returned(claim, 400)
    [event] = await w.poll(back)
    transfer = w.f.ledger.transfers[transfer_id(f"payout_return|{claim.id}")]
    assert (transfer.debit, transfer.credit) == (accounts.external("stellar", "USDC"), accounts.wallet("p-1", "USDC"))
    assert (event.data.kind, event.data.transfer_id, event.data.amount.amount) == (
        LedgerPostingKind.RETURN,
        str(transfer.id),
        400,
    )
    assert (event.data.claim_id, event.data.payout_id, event.data.posted_at) == (
        claim.id,
        f"po-{claim.id}",
        back.data.returned_at,  # type: ignore[attr-defined]
    )
    assert event.id == event_id_for("ledger-posted", transfer.id)
    assert await w.poll(back) == []


async def test_paid_and_returned_in_one_poll_tell_both_in_poll_order() -> None:
    w = await World().funded()
    claim = await w.claim(1_000)
    events = await w.poll(paid(claim), returned(claim, 1_000))
    assert [e.data.kind for e in events] == [LedgerPostingKind.PAYOUT, LedgerPostingKind.RETURN]


FINAL_FAILURE: dict[str, Any] = {
    "attempt": 1,
    "code": "invalid_destination",
    "retryable": False,
    "final": True,
    "detail": "gone",
}


@pytest.mark.parametrize(
    "voiding",
    [
        lambda c: outcome(PayoutCancelled, c, cancelled_by="ops-1", reason="r", cancelled_at=AT),
        lambda c: outcome(PayoutRejected, c, rejected_by="approver-1", reason="r", rejected_at=AT),
        lambda c: outcome(PayoutFailed, c, **FINAL_FAILURE, next_attempt_at=None, failed_at=AT),
        lambda c: new_event(
            PayoutRequestRefused(
                payout_request_id=c.payout_request_id,
                claim_id=c.id,
                code="no_provider_route",
                detail="nobody pays that",
                refused_at=AT,
            ),
            source="/prizeflow/payouts",
            correlation_id=c.id,
        ),
    ],
    ids=["cancelled", "rejected", "failed-final", "refused"],
)
async def test_an_outcome_that_voids_the_reservation_tells_nothing(voiding: Any) -> None:
    w = await World().funded()
    claim = await w.claim(1_000)
    staged = len(w.f.outbox.events)
    writes = w.f.outbox.writes
    voided = voiding(claim)
    created = outcome(PayoutCreated, claim, destination=DEST, approval_policy="auto", created_at=AT)
    poll = [voided] if isinstance(voided.data, PayoutRequestRefused) else [created, voided]
    assert await w.poll(*poll) == []
    assert w.f.ledger.of(accounts.wallet("p-1", "USDC")).debits_pending == 0  # the reservation went back
    assert (len(w.f.outbox.events), w.f.outbox.writes) == (staged, writes)  # no outbox write at all


async def test_an_adjustment_tells_its_transfer_with_its_adjustment_and_payout() -> None:
    w = World()
    cause = adjusted()
    [event] = await w.poll(cause)
    transfer = w.f.ledger.transfers[transfer_id("reconciliation_adjustment|adj-1")]
    assert (transfer.debit, transfer.credit) == (accounts.treasury("USDC"), accounts.external("stellar", "USDC"))
    assert event.data == LedgerPosted(
        transfer_id=str(transfer.id),
        kind=LedgerPostingKind.ADJUSTMENT,
        provider=ProviderType.STELLAR,
        amount={"asset": "USDC", "amount": 700},
        claim_id=None,
        payout_id="po-9",
        adjustment_id="adj-1",
        posted_at=PAID_AT,
    )
    assert (event.id, event.time, event.correlationid) == (
        event_id_for("ledger-posted", transfer.id),
        PAID_AT,
        "recon-41",
    )
    assert await w.poll(cause) == []
    assert await w.poll(adjusted()) == []  # the same adjustment under another event id


async def test_an_adjustment_without_a_payout_and_one_named_twice_in_a_poll() -> None:
    w = World()
    events = await w.poll(adjusted("adj-2", payout_id=None), adjusted("adj-2", payout_id=None))
    [event] = events
    assert (event.data.adjustment_id, event.data.payout_id) == ("adj-2", None)


async def test_a_poll_of_payouts_returns_and_adjustments_stages_all_its_postings_in_one_outbox_write() -> None:
    w = await World().funded()
    claims = [await w.claim(1_000, key=f"k-{i}") for i in range(3)]
    await w.poll(paid(claims[2]))
    writes = w.f.outbox.writes
    events = await w.poll(paid(claims[0]), paid(claims[1]), returned(claims[2], 1_000), adjusted())
    assert w.f.outbox.writes == writes + 1
    assert [(e.data.kind, e.data.claim_id) for e in events] == [
        (LedgerPostingKind.PAYOUT, claims[0].id),
        (LedgerPostingKind.PAYOUT, claims[1].id),
        (LedgerPostingKind.RETURN, claims[2].id),
        (LedgerPostingKind.ADJUSTMENT, None),
    ]
    assert len({e.id for e in events}) == 4


async def test_settling_alone_stages_its_own_postings_and_posting_adjustments_alone_returns_them() -> None:
    w = await World().funded()
    claim = await w.claim(1_000)
    await w.settle.handle(w.f.books, paid(claim))
    assert [p.kind for p in w.f.outbox.of(LedgerPosted)] == [LedgerPostingKind.PAYOUT]
    post = PostReconciliationAdjustments()
    envs = [adjusted("adj-3")]
    await w.f.ledger.declare(post.accounts(envs))
    [staged] = await post.post_many(w.f.books, envs)
    assert (staged.topic, staged.key, staged.type) == (
        PAYOUT_REQUESTS.name,
        b"recon-41",
        LedgerPosted.event_type(),
    )
    event = decode(staged.payload)
    assert isinstance(event.data, LedgerPosted)
    assert (event.data.adjustment_id, event.source, event.id) == ("adj-3", "/prizeflow/rewards", staged.id)
    assert len(w.f.outbox.of(LedgerPosted)) == 1  # returned for the caller's poll, not staged


def test_a_posting_names_a_transfer_on_a_rails_external_account() -> None:
    wallet_to_clearing = Transfer.of(
        accounts.wallet("p-1", "USDC"), accounts.clearing("USDC"), 5, TransferKind.CLAIM_RESERVE, "c"
    )
    with pytest.raises(ValueError, match="external"):
        Posting(wallet_to_clearing, LedgerPostingKind.PAYOUT, ProviderType.STELLAR, adjusted(), AT, payout_id="po-1")


def _state(f: Fakes) -> str:
    """Everything the payouts consumer could have changed, as text: ledger, claims, routes, players, compliance,
    contradictions, the outbox."""
    stores = (f.ledger, f.claims, f.routes, f.players, f.compliance, f.contradictions, f.outbox)
    return repr([sorted(vars(s).items(), key=lambda kv: kv[0]) for s in stores])


async def test_the_payout_events_the_consumer_skips_are_exactly_those_its_use_cases_do_nothing_with() -> None:
    """`PayoutEventsHandler.acts_on` is what the consumer decodes and inboxes (the rest is skipped unread): every
    other type of the topic, told of a live claim, changes nothing. A type the use cases act on and the set leaves
    out changes something here, and fails."""
    w = await World().funded()
    handler = PayoutEventsHandler(w.settle, compliance=ApplyComplianceEvents(SOURCE))
    on_topic = {t: cls for t, cls in event_types().items() if cls.TOPIC is PAYOUT_EVENTS}
    assert handler.acts_on <= on_topic.keys()  # full CloudEvents types, as the records' headers name them
    assert {PayoutPaid.event_type(), ReconciliationAdjusted.event_type()} <= handler.acts_on
    claim = await w.claim()
    await handler(w.f.books, [outcome(PayoutCreated, claim)])
    skipped = sorted(on_topic.keys() - handler.acts_on)
    assert skipped == ["prizeflow.payouts.PayoutApproved.v1", "prizeflow.payouts.PayoutSubmitted.v1"]
    for name in skipped:
        cls = on_topic[name]
        fields = {
            "payout_id": f"po-{claim.id}",
            "payout_request_id": claim.payout_request_id,
            "claim_id": claim.id,
            "player_id": claim.player_id,
            "amount": {"asset": claim.asset, "amount": claim.amount},
            "provider": "stellar",
            "idempotency_key": f"{claim.id}:payout",
        }
        payload = example_payload(cls, **{k: v for k, v in fields.items() if k in cls.model_fields})
        before = _state(w.f)
        await handler(w.f.books, [new_event(payload, source="/prizeflow/payouts", correlation_id="skip")])
        assert _state(w.f) == before, name
