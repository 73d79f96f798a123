"""The KYC vendor's (Sumsub-shaped) webhooks on fakes, with bodies and digests made by the KYC emulator's own
books and signer (an independent implementation): the digest before anything is read, stored or deduplicated;
who and what kind published, never the review answer or a person's data; duplicates say nothing new."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date
from typing import Any, cast

import pytest
from litestar.types import Receive, Scope, Send
from webhooks_fakes import NOW, FakeWriter, metric, metrics

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.webhooks import VerificationEventReceived
from prizeflow_contracts.kyc import VerificationVendor
from prizeflow_contracts.rails.reading import IgnoredReason
from prizeflow_kyc_emulator.signing import payload_digest
from prizeflow_kyc_emulator.state import AutoReview, Event, Info, Store
from prizeflow_webhooks.adapters.config import ProvidersConfigError, parse_config
from prizeflow_webhooks.application.receive import ReceiveWebhook, WebhookRefusedError
from prizeflow_webhooks.domain.deliveries import DeliveryOutcome, IngressProvider, RefusalReason
from prizeflow_webhooks.entrypoints.ingress import WebhookIngress

SECRET = "sumsub-webhook-secret-0123456789"
SUMSUB = IngressProvider("sumsub", VerificationVendor.SUMSUB, "sumsub_digest", (SECRET,))


def setup() -> tuple[ReceiveWebhook, FakeWriter, Any]:
    writer = FakeWriter()
    m = metrics(("sumsub",))
    uc = ReceiveWebhook(
        providers={"sumsub": SUMSUB}, writer=writer, metrics=m, source="/prizeflow/webhooks", clock=lambda: NOW
    )
    return uc, writer, m


def reviewed(player: str = "player-7", *, answer: str = "GREEN") -> tuple[Store, Event]:
    """The emulator's books with one applicant submitted and reviewed: its `applicantReviewed` event."""
    events: list[Event] = []
    store = Store(levels=("basic",), auto_review=AutoReview.NONE, review_delay_ms=0, listener=events.append)
    applicant = store.create("basic", player)
    store.submit(applicant.id, Info("Ann", "Lee", date(1990, 1, 2), "DEU", "X123"))
    store.complete(applicant.id, answer, reject_type="FINAL" if answer == "RED" else None)
    return store, events[-1]


def body_of(event: Event) -> bytes:
    return json.dumps(event.to_json()).encode()


async def test_a_reviewed_applicant_is_published_without_its_answer() -> None:
    uc, writer, m = setup()
    _, event = reviewed(answer="RED")
    body = body_of(event)
    receipt = await uc(SUMSUB, payload_digest(SECRET, body), body, headers={"x-payload-digest-alg": "HMAC_SHA256_HEX"})
    assert receipt.outcome is DeliveryOutcome.ACCEPTED
    [staged] = writer.outbox
    ev = decode(staged.payload).data
    assert isinstance(ev, VerificationEventReceived)
    assert (ev.provider, ev.provider_name, ev.applicant_ref, ev.player_id, ev.kind) == (
        VerificationVendor.SUMSUB,
        "sumsub",
        event.applicant.id,
        "player-7",
        "applicantReviewed",
    )
    assert ev.provider_event_id == receipt.provider_event_id
    assert ev.provider_event_id.startswith(f"{event.applicant.id}:applicantReviewed:")
    assert ev.payload_digest == hashlib.sha256(body).hexdigest()
    published = staged.payload.decode()
    for absent in ("RED", "GREEN", "reviewAnswer", "Ann", "Lee", "1990", "DEU", "X123"):
        assert absent not in published
    stored = writer.deliveries[("sumsub", receipt.provider_event_id)]
    assert stored.provider_type == "sumsub"
    assert not stored.confirmed
    assert metric(m, "deliveries", provider="sumsub", outcome="accepted") == 1


async def test_a_redelivery_is_a_duplicate() -> None:
    uc, writer, _ = setup()
    _, event = reviewed()
    body = body_of(event)
    await uc(SUMSUB, payload_digest(SECRET, body), body)
    again = await uc(SUMSUB, payload_digest(SECRET, body), body, headers={"x-payload-digest-alg": "HMAC_SHA256_HEX"})
    assert again.outcome is DeliveryOutcome.DUPLICATE
    assert len(writer.outbox) == 1


async def test_sha512_digests_are_accepted() -> None:
    uc, _, _ = setup()
    _, event = reviewed()
    body = body_of(event)
    digest = hmac.new(SECRET.encode(), body, hashlib.sha512).hexdigest()
    receipt = await uc(SUMSUB, digest, body, headers={"x-payload-digest-alg": "HMAC_SHA512_HEX"})
    assert receipt.outcome is DeliveryOutcome.ACCEPTED


@pytest.mark.parametrize(
    ("digest", "alg", "reason"),
    [
        (None, None, RefusalReason.SIGNATURE_MISSING),
        ("", "HMAC_SHA256_HEX", RefusalReason.SIGNATURE_MISSING),
        ("ab" * 32, "HMAC_SHA256_HEX", RefusalReason.SIGNATURE_MISMATCH),
        ("wrong-secret", "HMAC_SHA256_HEX", RefusalReason.SIGNATURE_MISMATCH),
        ("sha1", "HMAC_SHA1_HEX", RefusalReason.SIGNATURE_MALFORMED),  # not in Sumsub's current documentation
        ("ab" * 31, "HMAC_SHA256_HEX", RefusalReason.SIGNATURE_MALFORMED),
        ("AB" * 32, "HMAC_SHA256_HEX", RefusalReason.SIGNATURE_MALFORMED),
        ("good", "MD5", RefusalReason.SIGNATURE_MALFORMED),
    ],
)
async def test_unsigned_or_mismatched_deliveries_are_refused_and_nothing_is_stored(
    digest: str | None, alg: str | None, reason: RefusalReason
) -> None:
    uc, writer, m = setup()
    _, event = reviewed()
    body = body_of(event)
    value = {
        "wrong-secret": payload_digest("another-secret-0123456789", body),
        "sha1": hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest(),
        "good": payload_digest(SECRET, body),
    }.get(digest or "", digest)
    with pytest.raises(WebhookRefusedError) as err:
        await uc(SUMSUB, value, body, headers={"x-payload-digest-alg": alg} if alg is not None else None)
    assert err.value.reason is reason
    assert not writer.deliveries
    assert not writer.outbox
    assert metric(m, "refused", provider="sumsub", reason=reason.value) == 1


async def test_a_tampered_body_is_refused() -> None:
    uc, writer, _ = setup()
    _, event = reviewed()
    body = body_of(event)
    digest = payload_digest(SECRET, body)
    with pytest.raises(WebhookRefusedError) as err:
        await uc(SUMSUB, digest, body.replace(b"player-7", b"player-8"))
    assert err.value.reason is RefusalReason.SIGNATURE_MISMATCH
    assert not writer.deliveries


async def test_kinds_not_about_verification_and_foreign_applicants_are_stored_and_ignored() -> None:
    uc, writer, _ = setup()
    _, event = reviewed()
    tags = {**event.to_json(), "type": "applicantTagsChanged"}
    body = json.dumps(tags).encode()
    receipt = await uc(SUMSUB, payload_digest(SECRET, body), body)
    assert receipt.outcome is DeliveryOutcome.IGNORED
    assert writer.deliveries[("sumsub", receipt.provider_event_id)].ignored_reason == IgnoredReason.KIND_NOT_HANDLED
    foreign = {**event.to_json(), "externalUserId": "level-a b c@sumsub"}  # made in the dashboard: no player id
    body = json.dumps(foreign).encode()
    receipt = await uc(SUMSUB, payload_digest(SECRET, body), body)
    assert receipt.outcome is DeliveryOutcome.IGNORED
    assert writer.deliveries[("sumsub", receipt.provider_event_id)].ignored_reason == IgnoredReason.NOT_A_PLAYER
    assert not writer.outbox


@pytest.mark.parametrize("missing", ["applicantId", "type", "createdAtMs"])
async def test_a_signed_body_that_is_no_applicant_webhook_is_refused(missing: str) -> None:
    uc, writer, _ = setup()
    _, event = reviewed()
    doc = event.to_json()
    del doc[missing]
    body = json.dumps(doc).encode()
    with pytest.raises(WebhookRefusedError) as err:
        await uc(SUMSUB, payload_digest(SECRET, body), body)
    assert err.value.reason is RefusalReason.INVALID_PAYLOAD
    assert not writer.deliveries


def test_the_config_pairs_sumsub_with_its_digest_scheme_and_no_confirmation() -> None:
    env = {"SUMSUB_WEBHOOK_SECRET": SECRET}
    entry = {"name": "sumsub", "type": "sumsub", "scheme": "sumsub_digest", "secrets": ["SUMSUB_WEBHOOK_SECRET"]}
    config = parse_config({"providers": [entry]}, dev=False, env=env)
    assert config.providers["sumsub"] == SUMSUB
    for bad in (
        {**entry, "scheme": "prizeflow_signature"},
        {**entry, "type": "sandbox"},
        {**entry, "confirm": {"api_base": "https://api.sumsub.com", "api_key": "SUMSUB_WEBHOOK_SECRET"}},
    ):
        with pytest.raises(ProvidersConfigError):
            parse_config({"providers": [bad]}, dev=False, env=env)


async def test_the_ingress_reads_the_digest_and_its_algorithm_headers() -> None:
    uc, writer, _ = setup()
    _, event = reviewed()
    body = body_of(event)
    digest = hmac.new(SECRET.encode(), body, hashlib.sha512).hexdigest()

    async def behind(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never reached
        raise AssertionError("the ingress answers provider callbacks itself")

    app = WebhookIngress(behind, uc)
    sent: list[dict[str, Any]] = []
    headers = [
        (b"content-type", b"application/json"),
        (b"x-payload-digest", digest.encode()),
        (b"x-payload-digest-alg", b"HMAC_SHA512_HEX"),
    ]
    scope = {"type": "http", "method": "POST", "path": "/providers/sumsub/events", "headers": headers}
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(cast("Scope", scope), cast("Receive", receive), cast("Send", send))
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"])["outcome"] == "accepted"
    assert len(writer.outbox) == 1


async def test_the_stored_delivery_keeps_no_free_text_of_the_vendor() -> None:
    """A vendor's moderators write free text into a review (`moderationComment`, `clientComment`): a name read off
    a document, a date of birth. The delivery keeps what identifies the event (who, what kind, when, the answer's
    codes), never that text; its sha256 stays the received body's."""
    uc, writer, _ = setup()
    _, event = reviewed(answer="RED")
    doc = event.to_json()
    doc["reviewResult"] = {
        "reviewAnswer": "RED",
        "reviewRejectType": "RETRY",
        "rejectLabels": ["DOCUMENT_PAGE_MISSING"],
        "moderationComment": "The name on the passport (ANN LEE, born 02.01.1990) does not match",
        "clientComment": "Ann Lee X123",
    }
    doc["info"] = {"firstName": "Ann", "lastName": "Lee"}
    body = json.dumps(doc).encode()
    receipt = await uc(SUMSUB, payload_digest(SECRET, body), body, headers={"x-payload-digest-alg": "HMAC_SHA256_HEX"})
    assert receipt.outcome is DeliveryOutcome.ACCEPTED
    stored = writer.deliveries[("sumsub", receipt.provider_event_id)]
    kept = stored.body.decode()
    for absent in ("Ann", "ANN", "Lee", "LEE", "1990", "X123"):
        assert absent not in kept
    assert json.loads(kept)["applicantId"] == event.applicant.id
    assert json.loads(kept)["reviewResult"]["rejectLabels"] == ["DOCUMENT_PAGE_MISSING"]
    assert stored.body_sha256 == hashlib.sha256(body).hexdigest()
