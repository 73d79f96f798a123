"""Adversarial provider events (issue 16 review): a verified event whose object is not the payout's.

A player's Stripe connected account is theirs: with API access to it (a Standard account) they can create a payout
on it whose metadata carries the idempotency key of their own Prizeflow payout (keys are predictable:
`claim-<id>:payout:<n>`), and make it fail. Stripe then really sends `payout.failed`, the ingress confirms it and
publishes it with the key. Matched by the key alone, it turns a payout that was paid (its own `po_...`, recorded)
into a return: the wallet is credited back while the bank kept the money.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.errors import EventRefusal, PayoutErrorCode
from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_contracts.events.webhooks import PaymentEventReceived, PaymentEventStatus, ProviderEventReceived
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import DestinationType, ProviderPayoutStatus, ProviderType
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.rail import Rail, RailTerms, StableErrors
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.application.webhooks import ApplyProviderEvents
from prizeflow_payouts.domain.payout import Change, Payout
from prizeflow_payouts.domain.state import PayoutState

S = PayoutState
P = ProviderPayoutStatus
NOW = datetime(2030, 1, 1, tzinfo=UTC)


class StripeLike:
    """Only what ApplyProviderEvents reads of a provider: a Stripe rail with webhooks and returns."""

    provider_type = ProviderType.STRIPE


# Its terms: webhooks, returns, and a failure settled on sync (Stripe `transfer_and_payout`).
STRIPE_LIKE_TERMS = RailTerms(
    cancels=True, quotes=True, webhooks=True, confirms_later=True, returns=True, settles_failures_on_sync=True
)


@dataclass
class Repo:
    payouts: dict[str, Payout]
    recorded: set[tuple[str, str]] = field(default_factory=set)
    events: list[Any] = field(default_factory=list)

    async def find_for_provider_event(
        self, provider_type: str, provider_ref: str | None, key: str | None
    ) -> Payout | None:
        for p in self.payouts.values():
            if p.provider_type == provider_type and (
                (key is not None and p.idempotency_key == key)
                or (provider_ref is not None and p.provider_ref == provider_ref)
            ):
                return p
        return None

    async def record_provider_event(
        self, provider: str, event_id: str, *, payout_id: str | None, status: str | None, outcome: str
    ) -> bool:
        if (provider, event_id) in self.recorded:
            return False
        self.recorded.add((provider, event_id))
        return True

    async def apply(self, changes: Sequence[Change], *, at: datetime) -> list[Change]:
        for c in changes:
            p = self.payouts[c.record.id]
            assert p.state is c.expected
            self.payouts[p.id] = replace(p, state=c.to, provider_ref=c.provider_ref or p.provider_ref)
            self.events.extend(c.events)
        return list(changes)


@dataclass(frozen=True)
class _Books:
    payouts: Repo


def on(repo: Repo) -> Books:
    """The repository as the books' payouts store (the only store these events touch)."""
    return cast("Books", _Books(repo))


def payout(pid: str, key: str, state: PayoutState, ref: str | None) -> Payout:
    return Payout(
        id=pid, payout_request_id=f"req-{pid}", idempotency_key=key, request_hash="h", claim_id=f"claim-{pid}",
        player_id="p-1", requested_by="rewards", asset="USD", amount=10_000, destination_type="stripe_account",
        destination_address="acct_1Player", destination_memo=None, provider_type="stripe", provider_name="stripe",
        state=state, approval_policy=ApprovalPolicy.AUTO, correlation_id="corr-1", cause_event_id=None, attempts=1,
        max_attempts=5, sync_first=False, sync_polls=0, provider_ref=ref, tx_hash=None, last_error_code=None,
        created_at=NOW,
    )  # fmt: skip


def webhook(
    event_id: str, kind: str, status: P | None, *, ref: str | None, key: str | None, account: str | None = None
) -> Envelope[Any]:
    data = ProviderEventReceived(
        provider=ProviderType.STRIPE,
        provider_event_id=event_id,
        provider_payout_ref=ref,
        idempotency_key=key,
        provider_account=account,
        kind=kind,
        received_at=NOW,
        verified=True,
        status=status,
        error_code=PayoutErrorCode.ACCOUNT_CLOSED if status is P.FAILED else None,
        payload_digest="ab" * 32,
    )
    return new_event(data, source="/prizeflow/webhooks", correlation_id="c-1", subject=event_id, event_id=uuid.uuid4())


def use_case() -> ApplyProviderEvents:
    rail = Rail(payouts=StripeLike(), terms=STRIPE_LIKE_TERMS, errors=StableErrors("stripe"))  # type: ignore[arg-type]
    registry = ProviderRegistry([ProviderEntry("stripe", rail, ("USD",), (DestinationType.STRIPE_ACCOUNT,))])
    return ApplyProviderEvents(
        registry=registry, builder=ChangeBuilder(source="/prizeflow/payouts", policy=RetryPolicy())
    )


async def test_a_failure_of_another_stripe_payout_carrying_our_key_is_not_a_return_of_ours() -> None:
    repo = Repo({"pay-1": payout("pay-1", "claim-1:payout:1", S.PAID, "po_real")})
    attack = webhook("evt_evil", "payout.failed", P.FAILED, ref="po_theirs", key="claim-1:payout:1")
    with pytest.raises(EventRefusal) as refused:
        await use_case().execute(on(repo), [attack])
    assert refused.value.reason == "conflicting_event"
    assert repo.payouts["pay-1"].state is S.PAID
    assert repo.events == []
    assert repo.recorded == set()  # the event takes no dedup key


async def test_an_event_naming_one_payouts_key_and_anothers_object_moves_neither() -> None:
    repo = Repo({
        "pay-1": payout("pay-1", "claim-1:payout:1", S.SUBMITTED, "po_1"),
        "pay-2": payout("pay-2", "claim-2:payout:1", S.SUBMITTED, "po_2"),
    })  # fmt: skip
    with pytest.raises(EventRefusal):
        await use_case().execute(
            on(repo), [webhook("evt_x", "payout.paid", P.PAID, ref="po_2", key="claim-1:payout:1")]
        )
    assert {p.state for p in repo.payouts.values()} == {S.SUBMITTED}


async def test_the_payouts_own_object_still_moves_it() -> None:
    repo = Repo({"pay-1": payout("pay-1", "claim-1:payout:1", S.PAID, "po_real")})
    out = await use_case().execute(
        on(repo),
        [webhook("evt_ok", "payout.failed", P.FAILED, ref="po_real", key="claim-1:payout:1")],
    )
    assert out == ["applied"]
    assert repo.payouts["pay-1"].state is S.RETURNED


async def test_an_informational_event_about_another_object_changes_nothing_and_is_not_refused() -> None:
    """transfer_and_payout: `transfer.created` names the transfer while the payout records its `po_...`."""
    repo = Repo({"pay-1": payout("pay-1", "claim-1:payout:1", S.SUBMITTED, "po_1")})
    out = await use_case().execute(
        on(repo),
        [webhook("evt_t", "transfer.created", None, ref="tr_1", key="claim-1:payout:1")],
    )
    assert out == ["no_status"]
    assert repo.payouts["pay-1"].state is S.SUBMITTED


@pytest.mark.parametrize("state", [S.APPROVED, S.SUBMITTING, S.SUBMITTED])
async def test_a_payout_on_another_connected_account_never_settles_ours_even_before_ours_has_an_object(
    state: PayoutState,
) -> None:
    """Another player's own account pays out with our key in its metadata before our payout recorded its `po_`:
    matched by key alone it would mark our payout paid with nothing paid."""
    repo = Repo({"pay-1": payout("pay-1", "claim-1:payout:1", state, None)})
    attack = webhook("evt_evil", "payout.paid", P.PAID, ref="po_theirs", key="claim-1:payout:1", account="acct_1Evil")
    with pytest.raises(EventRefusal) as refused:
        await use_case().execute(on(repo), [attack])
    assert refused.value.reason == "conflicting_event"
    assert repo.payouts["pay-1"].state is state
    assert repo.recorded == set()


async def test_a_payout_on_the_destination_account_settles_ours() -> None:
    repo = Repo({"pay-1": payout("pay-1", "claim-1:payout:1", S.SUBMITTED, "po_1")})
    ok = webhook("evt_ok", "payout.paid", P.PAID, ref="po_1", key="claim-1:payout:1", account="acct_1Player")
    assert await use_case().execute(on(repo), [ok]) == ["applied"]
    assert repo.payouts["pay-1"].state is S.PAID


async def test_a_top_up_payment_event_on_the_shared_topic_is_ignored_not_dead_lettered() -> None:
    """Rewards' `PaymentEventReceived` shares the webhooks topic: payouts sees it, does nothing and refuses
    nothing (a refusal would dead-letter every top-up and keep the DLQ alert firing)."""
    repo = Repo({"pay-1": payout("pay-1", "claim-1:payout:1", S.SUBMITTED, "po_1")})
    paid = PaymentEventReceived(
        provider=ProviderType.STRIPE,
        provider_event_id="evt_topup",
        kind="checkout.session.completed",
        received_at=NOW,
        verified=True,
        status=PaymentEventStatus.PAID,
        session_ref="cs_1",
        amount=Money(asset="USD", amount=500),
        payload_digest="cd" * 32,
    )
    env = new_event(paid, source="/prizeflow/webhooks", correlation_id="c-2", subject="evt_topup")
    assert await use_case().execute(on(repo), [env]) == ["ignored"]
    assert repo.recorded == set()
    assert repo.events == []
    assert repo.payouts["pay-1"].state is S.SUBMITTED
