"""The RazorpayX (upi rail) source, `POST /providers/razorpayx/events`, on fakes: the signature is checked before
anything reads the body; unsigned, forged and malformed deliveries are refused and store nothing; the event id is
`X-Razorpay-Event-Id`, so a replay is a duplicate; the payout's own status is what is published. With `confirm`, the
payout is fetched back from RazorpayX (`GET /v1/payouts/{id}`) first: one it does not hold, or holds as another, is
refused, validly signed or not; its current status is the one published."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, cast

import httpx
import pytest
from litestar.types import Receive, Scope, Send
from webhooks_fakes import NOW, FakePayoutFetcher, FakeWriter, metric, metrics

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails.reading import ProviderUnavailableError
from prizeflow_contracts.upi import razorpay_signature
from prizeflow_webhooks.adapters.config import ConfirmConfig, ProvidersConfigError, parse_config
from prizeflow_webhooks.adapters.razorpayx_api import RazorpayxPayoutFetcher
from prizeflow_webhooks.application.receive import ReceiveWebhook, WebhookRefusedError
from prizeflow_webhooks.domain.deliveries import DeliveryOutcome, IngressProvider, RefusalReason
from prizeflow_webhooks.entrypoints.ingress import WebhookIngress

SECRET = "razorpayx-webhook-secret-0123456789"
RAZORPAYX = IngressProvider("razorpayx", ProviderType.UPI, "razorpay_signature", (SECRET,))


async def behind(scope: Any, receive: Any, send: Any) -> None:
    """The Litestar app behind the ingress: never reached by a provider's route."""
    raise AssertionError(scope["path"])


async def call(
    app: WebhookIngress, path: str, body: bytes, headers: Sequence[tuple[bytes, bytes]]
) -> tuple[int, dict[str, str], Any]:
    scope = {"type": "http", "method": "POST", "path": path, "headers": list(headers)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(cast("Scope", scope), cast("Receive", receive), cast("Send", send))
    start, answer = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(answer["body"])


def setup() -> tuple[ReceiveWebhook, FakeWriter, Any]:
    writer = FakeWriter()
    m = metrics(("razorpayx",))
    uc = ReceiveWebhook(
        providers={"razorpayx": RAZORPAYX}, writer=writer, metrics=m, source="/prizeflow/webhooks", clock=lambda: NOW
    )
    return uc, writer, m


def event(
    kind: str = "payout.processed", status: str = "processed", *, reference: str = "po-abc", **payout: Any
) -> bytes:
    entity = {
        "id": "pout_1",
        "entity": "payout",
        "fund_account_id": "fa_1",
        "amount": 50000,
        "currency": "INR",
        "notes": {"prizeflow_key": "claim-key-1"},
        "fees": 590,
        "tax": 90,
        "status": status,
        "mode": "UPI",
        "reference_id": reference,
        "status_details": None,
        "created_at": 1_750_000_000,
        **payout,
    }
    doc = {
        "entity": "event",
        "account_id": "acc_1",
        "event": kind,
        "contains": ["payout"],
        "payload": {"payout": {"entity": entity}},
        "created_at": 1_750_000_001,
    }
    return json.dumps(doc).encode()


async def test_a_signed_event_is_published_with_the_payouts_own_status() -> None:
    uc, writer, m = setup()
    body = event()
    receipt = await uc(RAZORPAYX, razorpay_signature(SECRET, body), body, headers={"x-razorpay-event-id": "evt_1"})
    assert receipt.outcome is DeliveryOutcome.ACCEPTED
    [staged] = writer.outbox
    ev = decode(staged.payload).data
    assert isinstance(ev, ProviderEventReceived)
    assert (ev.provider, ev.provider_event_id, ev.provider_payout_ref) == (ProviderType.UPI, "evt_1", "pout_1")
    assert ev.idempotency_key == "claim-key-1"
    assert ev.status is ProviderPayoutStatus.PAID
    assert metric(m, "deliveries", provider="razorpayx", outcome="accepted") == 1


async def test_a_processed_payout_is_published_with_the_fee_razorpayx_charged_for_it() -> None:
    """Issue 56: the fee (`fees`, GST included) travels with `processed`, so a payout paid by its webhook records
    what its status would; any other status carries none, and a fee that is not whole paise is refused."""
    uc, writer, _ = setup()
    paid = event(fees=590, tax=90)
    await uc(RAZORPAYX, razorpay_signature(SECRET, paid), paid, headers={"x-razorpay-event-id": "evt_fee"})
    failed = event("payout.failed", "failed", fees=590)
    await uc(RAZORPAYX, razorpay_signature(SECRET, failed), failed, headers={"x-razorpay-event-id": "evt_nofee"})
    events = [decode(staged.payload).data for staged in writer.outbox]
    assert all(isinstance(e, ProviderEventReceived) for e in events)
    assert [(e.status, e.fee) for e in events if isinstance(e, ProviderEventReceived)] == [
        (ProviderPayoutStatus.PAID, Money(asset="INR", amount=590)),
        (ProviderPayoutStatus.FAILED, None),
    ]
    for bad in (5.9, "590", -1, True):
        body = event(fees=bad)
        with pytest.raises(WebhookRefusedError):
            await uc(
                RAZORPAYX, razorpay_signature(SECRET, body), body, headers={"x-razorpay-event-id": f"evt_bad_{bad}"}
            )
    assert len(writer.outbox) == 2


async def test_a_reversal_is_a_failure_with_its_reason() -> None:
    uc, writer, _ = setup()
    details = {"reason": "beneficiary_bank_rejected", "source": "beneficiary_bank", "description": "x"}
    body = event("payout.reversed", "reversed", status_details=details)
    await uc(RAZORPAYX, razorpay_signature(SECRET, body), body, headers={"x-razorpay-event-id": "evt_2"})
    ev = decode(writer.outbox[0].payload).data
    assert isinstance(ev, ProviderEventReceived)
    assert ev.status is ProviderPayoutStatus.FAILED
    assert ev.error_code is PayoutErrorCode.DESTINATION_BLOCKED


async def test_a_replayed_delivery_is_a_duplicate_and_publishes_nothing_new() -> None:
    uc, writer, m = setup()
    body = event()
    signature = razorpay_signature(SECRET, body)
    first = await uc(RAZORPAYX, signature, body, headers={"x-razorpay-event-id": "evt_1"})
    again = await uc(RAZORPAYX, signature, body, headers={"x-razorpay-event-id": "evt_1"})
    assert (first.outcome, again.outcome) == (DeliveryOutcome.ACCEPTED, DeliveryOutcome.DUPLICATE)
    assert len(writer.outbox) == 1
    assert metric(m, "deliveries", provider="razorpayx", outcome="duplicate") == 1


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, RefusalReason.SIGNATURE_MISSING),
        ("", RefusalReason.SIGNATURE_MISSING),
        ("not-hex", RefusalReason.SIGNATURE_MALFORMED),
        (razorpay_signature("another-secret-0123456789", event()), RefusalReason.SIGNATURE_MISMATCH),
    ],
)
async def test_unsigned_or_forged_deliveries_are_refused_and_store_nothing(
    signature: str | None, reason: RefusalReason
) -> None:
    uc, writer, m = setup()
    with pytest.raises(WebhookRefusedError) as err:
        await uc(RAZORPAYX, signature, event(), headers={"x-razorpay-event-id": "evt_1"})
    assert err.value.reason is reason
    assert writer.deliveries == {}
    assert writer.outbox == []
    assert metric(m, "refused", provider="razorpayx", reason=reason.value) == 1


async def test_a_body_changed_after_signing_is_refused() -> None:
    uc, writer, _ = setup()
    signature = razorpay_signature(SECRET, event())
    with pytest.raises(WebhookRefusedError) as err:
        await uc(RAZORPAYX, signature, event(amount=99_999_999), headers={"x-razorpay-event-id": "evt_1"})
    assert err.value.reason is RefusalReason.SIGNATURE_MISMATCH
    assert writer.deliveries == {}


async def test_a_delivery_without_its_event_id_is_refused() -> None:
    uc, writer, _ = setup()
    body = event()
    with pytest.raises(WebhookRefusedError) as err:
        await uc(RAZORPAYX, razorpay_signature(SECRET, body), body)
    assert err.value.reason is RefusalReason.INVALID_PAYLOAD
    assert writer.deliveries == {}


async def test_a_payout_not_ours_and_other_kinds_are_stored_and_ignored() -> None:
    uc, writer, _ = setup()
    body = event(reference="someone-elses")
    other = json.dumps({"entity": "event", "event": "fund_account.validation.completed", "payload": {}}).encode()
    for eid, b in (("evt_1", body), ("evt_2", other)):
        assert (
            await uc(RAZORPAYX, razorpay_signature(SECRET, b), b, headers={"x-razorpay-event-id": eid})
        ).outcome is DeliveryOutcome.IGNORED
    assert writer.outbox == []


async def test_a_body_whose_kind_and_status_disagree_moves_nothing() -> None:
    uc, writer, _ = setup()
    body = event("payout.processed", "processing")
    await uc(RAZORPAYX, razorpay_signature(SECRET, body), body, headers={"x-razorpay-event-id": "evt_1"})
    ev = decode(writer.outbox[0].payload).data
    assert isinstance(ev, ProviderEventReceived)
    assert ev.status is None


async def test_the_route_reads_both_headers_and_refuses_a_forgery_with_problem_details() -> None:
    uc, writer, _ = setup()
    app = WebhookIngress(behind, uc)
    body = event()
    path = "/providers/razorpayx/events"
    good = [
        (b"content-type", b"application/json"),
        (b"x-razorpay-signature", razorpay_signature(SECRET, body).encode()),
        (b"x-razorpay-event-id", b"evt_9"),
    ]
    status, _, answer = await call(app, path, body, good)
    assert (status, answer["outcome"], answer["provider_event_id"]) == (200, "accepted", "evt_9")
    forged = [*good[:1], (b"x-razorpay-signature", b"0" * 64), good[2]]
    status, headers, problem = await call(app, path, body, forged)
    assert (status, problem["code"]) == (400, "signature_mismatch")
    assert headers["content-type"].startswith("application/problem+json")
    twice = [*good, (b"x-razorpay-event-id", b"evt_10")]
    status, _, problem = await call(app, path, body, twice)
    assert (status, problem["code"]) == (400, "signature_malformed")
    assert len(writer.outbox) == 1


def test_config_pairs_the_upi_type_with_the_razorpay_scheme() -> None:
    env = {"UPI_WEBHOOK_SECRET": SECRET}
    ok = {
        "providers": [
            {"name": "razorpayx", "type": "upi", "scheme": "razorpay_signature", "secrets": ["UPI_WEBHOOK_SECRET"]}
        ]
    }
    assert parse_config(ok, dev=True, env=env).providers["razorpayx"].scheme == "razorpay_signature"
    # The event id, the dedup key, is an unsigned header: a captured body replayed under a new id is a new delivery.
    # Outside the dev profile the payout is fetched back, so a replay publishes only the status RazorpayX holds now.
    with pytest.raises(ProvidersConfigError, match="must be confirmed with the provider outside the dev profile"):
        parse_config(ok, dev=False, env=env)
    bad = {
        "providers": [
            {"name": "razorpayx", "type": "upi", "scheme": "prizeflow_signature", "secrets": ["UPI_WEBHOOK_SECRET"]}
        ]
    }
    with pytest.raises(ProvidersConfigError):
        parse_config(bad, dev=False, env=env)


# -- confirmed by fetching the payout back (`confirm`): a valid signature is not enough ------------------------------
CONFIRMING = IngressProvider("razorpayx", ProviderType.UPI, "razorpay_signature", (SECRET,), confirms=True)


def confirming(fetcher: FakePayoutFetcher) -> tuple[ReceiveWebhook, FakeWriter, Any]:
    writer = FakeWriter()
    m = metrics(("razorpayx",))
    uc = ReceiveWebhook(
        providers={"razorpayx": CONFIRMING},
        writer=writer,
        metrics=m,
        source="/prizeflow/webhooks",
        apis={"razorpayx": fetcher},
        clock=lambda: NOW,
    )
    return uc, writer, m


def payout_at_razorpayx(body: bytes, **changes: Any) -> dict[str, Any]:
    entity: dict[str, Any] = json.loads(body)["payload"]["payout"]["entity"]
    return {**entity, **changes}


def test_a_confirming_provider_without_its_fetcher_refuses_start_up() -> None:
    with pytest.raises(ValueError, match="no confirmer"):
        ReceiveWebhook(
            providers={"razorpayx": CONFIRMING}, writer=FakeWriter(), metrics=metrics(("razorpayx",)), source="/x"
        )


async def test_a_confirmed_event_publishes_the_payout_as_razorpayx_holds_it_now() -> None:
    body = event("payout.processed", "processed")
    # Out of order: by the time this delivery arrives the bank has returned the payout.
    fetcher = FakePayoutFetcher({"pout_1": payout_at_razorpayx(body, status="reversed")})
    uc, writer, m = confirming(fetcher)
    receipt = await uc(CONFIRMING, razorpay_signature(SECRET, body), body, headers={"x-razorpay-event-id": "evt_1"})
    assert receipt.outcome is DeliveryOutcome.ACCEPTED
    assert fetcher.asked == ["pout_1"]
    ev = decode(writer.outbox[0].payload).data
    assert isinstance(ev, ProviderEventReceived)
    assert ev.status is ProviderPayoutStatus.FAILED  # the provider's word, not the body's
    assert metric(m, "confirmations", provider="razorpayx", outcome="confirmed") == 1


@pytest.mark.parametrize(
    ("held", "why"),
    [
        ({}, "not_found"),  # RazorpayX has no such payout: forged with a leaked secret, or another account's
        ({"pout_1": {"reference_id": "po-other"}}, "mismatch"),  # a payout of ours passed off as another
    ],
)
async def test_a_validly_signed_event_razorpayx_does_not_confirm_is_refused_and_stores_nothing(
    held: dict[str, dict[str, Any]], why: str
) -> None:
    body = event("payout.processed", "processed")
    payouts = {k: payout_at_razorpayx(body, **v) for k, v in held.items()}
    uc, writer, m = confirming(FakePayoutFetcher(payouts))
    with pytest.raises(WebhookRefusedError) as refused:
        await uc(CONFIRMING, razorpay_signature(SECRET, body), body, headers={"x-razorpay-event-id": "evt_1"})
    assert refused.value.reason is RefusalReason.EVENT_NOT_CONFIRMED
    assert writer.outbox == []
    assert writer.deliveries == {}
    assert metric(m, "confirmations", provider="razorpayx", outcome=why) == 1
    assert metric(m, "refused", provider="razorpayx", reason="event_not_confirmed") == 1


async def test_razorpayx_unreachable_is_a_retry_later_never_a_publish() -> None:
    body = event()
    uc, writer, _ = confirming(FakePayoutFetcher(down=True))
    with pytest.raises(WebhookRefusedError) as refused:
        await uc(CONFIRMING, razorpay_signature(SECRET, body), body, headers={"x-razorpay-event-id": "evt_1"})
    assert refused.value.reason is RefusalReason.PROVIDER_UNAVAILABLE
    assert writer.outbox == []


async def test_a_replay_of_a_confirmed_event_is_a_duplicate_without_asking_again() -> None:
    body = event()
    fetcher = FakePayoutFetcher({"pout_1": payout_at_razorpayx(body)})
    uc, writer, _ = confirming(fetcher)
    signature = razorpay_signature(SECRET, body)
    await uc(CONFIRMING, signature, body, headers={"x-razorpay-event-id": "evt_1"})
    again = await uc(CONFIRMING, signature, body, headers={"x-razorpay-event-id": "evt_1"})
    assert again.outcome is DeliveryOutcome.DUPLICATE
    assert fetcher.asked == ["pout_1"]
    assert len(writer.outbox) == 1


# -- the adapter: GET /v1/payouts/{id} with the key id and secret ----------------------------------------------------
def fetcher_answering(resp: httpx.Response | Exception, seen: list[httpx.Request]) -> RazorpayxPayoutFetcher:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(resp, Exception):
            raise resp
        return resp

    config = ConfirmConfig(
        api_base="http://razorpayx.test", api_key="key-secret-0123456789", timeout_s=1.0, api_key_id="rzp_test_a"
    )
    return RazorpayxPayoutFetcher(config, transport=httpx.MockTransport(handler))


async def test_the_fetcher_reads_the_payout_with_basic_auth() -> None:
    seen: list[httpx.Request] = []
    fetcher = fetcher_answering(httpx.Response(200, json={"id": "pout_1", "entity": "payout"}), seen)
    assert await fetcher.fetch_payout("pout_1") == {"id": "pout_1", "entity": "payout"}
    [request] = seen
    assert (request.method, request.url.path) == ("GET", "/v1/payouts/pout_1")
    assert request.headers["Authorization"].startswith("Basic ")
    assert await fetcher.fetch_payout("../admin") is None  # never a path of our making
    assert len(seen) == 1


@pytest.mark.parametrize(
    "resp",
    [
        httpx.Response(404, json={}),
        httpx.Response(
            400, json={"error": {"code": "BAD_REQUEST_ERROR", "description": "The id provided does not exist"}}
        ),
    ],
)
async def test_the_fetcher_reads_an_unknown_payout_as_none(resp: httpx.Response) -> None:
    assert await fetcher_answering(resp, []).fetch_payout("pout_9") is None


@pytest.mark.parametrize(
    "resp",
    [
        httpx.Response(401, json={"error": {"code": "BAD_REQUEST_ERROR", "description": "auth"}}),
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(200, json={"entity": "collection"}),
        httpx.ConnectError("refused"),
    ],
)
async def test_the_fetcher_raises_unavailable_when_razorpayx_cannot_answer(resp: httpx.Response | Exception) -> None:
    with pytest.raises(ProviderUnavailableError):
        await fetcher_answering(resp, []).fetch_payout("pout_1")


def test_a_confirming_razorpayx_entry_needs_its_key_id() -> None:
    env = {"UPI_WEBHOOK_SECRET": SECRET, "UPI_KEY_ID": "rzp_test_abc", "UPI_KEY_SECRET": "key-secret-0123456789"}
    entry = {
        "name": "razorpayx",
        "type": "upi",
        "scheme": "razorpay_signature",
        "secrets": ["UPI_WEBHOOK_SECRET"],
        "confirm": {"api_base": "https://api.razorpay.com", "api_key": "UPI_KEY_SECRET", "api_key_id": "UPI_KEY_ID"},
    }
    config = parse_config({"providers": [entry]}, dev=False, env=env)
    assert config.providers["razorpayx"].confirms
    assert config.confirm["razorpayx"].api_key_id == "rzp_test_abc"
    with pytest.raises(ValueError, match="api_key_id"):
        RazorpayxPayoutFetcher(dataclasses.replace(config.confirm["razorpayx"], api_key_id=None))
