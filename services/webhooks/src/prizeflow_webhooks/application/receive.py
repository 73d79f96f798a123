"""`ReceiveWebhook`: one provider callback, verified, confirmed, stored, then published (ADR 0006).

Order matters and is the point: the signature is checked before anything else reads the body; the event is
fetched back from a provider that offers it before it is believed; only then is it stored, deduplicated by
(provider, provider event id), with its Prizeflow event staged in the outbox in the same transaction; the
caller answers 2xx only once that committed. A refusal stores nothing and publishes nothing, so it never takes
the dedup key a genuine delivery of that event needs.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pydantic_core import from_json

from prizeflow_contracts.envelope import StagedEvent, stage_event
from prizeflow_contracts.giftcard import verify_giftcard_signature
from prizeflow_contracts.kyc import SUMSUB_DIGEST_ALG_HEADER, VerificationVendor, verify_sumsub_digest
from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.upi import RAZORPAY_SIGNATURE_HEADER, verify_razorpay_signature
from prizeflow_contracts.webhook_signatures import SignatureFailure, SignatureRefused, verify
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_webhooks.application.metrics import WebhooksMetrics
from prizeflow_webhooks.application.ports import (
    DeliveryWriter,
    EventConfirmer,
    NewDelivery,
    OrderFetcher,
    PayoutFetcher,
    ProviderUnavailableError,
)
from prizeflow_webhooks.domain import giftcard_events, kyc_events, prizeflow_events, razorpayx_events, stripe_events
from prizeflow_webhooks.domain.deliveries import (
    UNKNOWN_PROVIDER_LABEL,
    DeliveryOutcome,
    IngressProvider,
    NormalizationError,
    Normalized,
    RefusalReason,
    Scheme,
)

log = logging.getLogger(__name__)

_KIND: Final[Mapping[RefusalReason, ErrorKind]] = {
    RefusalReason.UNKNOWN_PROVIDER: ErrorKind.NOT_FOUND,
    RefusalReason.BODY_TOO_LARGE: ErrorKind.TOO_LARGE,
    RefusalReason.UNSUPPORTED_MEDIA_TYPE: ErrorKind.UNSUPPORTED_MEDIA_TYPE,
    RefusalReason.INVALID_PAYLOAD: ErrorKind.INVALID,
    RefusalReason.PROVIDER_UNAVAILABLE: ErrorKind.UNAVAILABLE,
}


class WebhookRefusedError(UseCaseError):
    """A refused request: `code` is the reason (also the metric label); nothing was stored or published."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(_KIND.get(reason, ErrorKind.BAD_REQUEST), reason.value, detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Receipt:
    outcome: DeliveryOutcome
    provider_event_id: str
    event_id: uuid.UUID | None  # the published event's id (accepted only)


def new_correlation_id() -> str:
    return f"wh-{uuid.uuid4().hex}"


class ReceiveWebhook:
    def __init__(
        self,
        *,
        providers: Mapping[str, IngressProvider],
        writer: DeliveryWriter,
        metrics: WebhooksMetrics,
        source: str,
        confirmers: Mapping[str, EventConfirmer] | None = None,
        order_fetchers: Mapping[str, OrderFetcher] | None = None,
        payout_fetchers: Mapping[str, PayoutFetcher] | None = None,
        clock: Callable[[], float] = time.time,
        correlation_ids: Callable[[], str] = new_correlation_id,
    ) -> None:
        self.providers = providers
        self.writer = writer
        self.metrics = metrics
        self.source = source
        self.confirmers = confirmers or {}
        self.order_fetchers = order_fetchers or {}
        self.payout_fetchers = payout_fetchers or {}
        self.clock = clock
        self.correlation_ids = correlation_ids
        # The labelled counters of the hot path, looked up once (`labels()` costs more than verifying a MAC).
        self._outcomes = {
            (p.name, o): metrics.deliveries.labels(p.name, o.value) for p in providers.values() for o in DeliveryOutcome
        }
        missing = [p.name for p in providers.values() if p.confirms and p.name not in self._fetchers_of(p)]
        if missing:
            raise ValueError(f"providers {missing} confirm events but have no confirmer")

    def _fetchers_of(self, provider: IngressProvider) -> Mapping[str, object]:
        if provider.type is ProviderType.GIFT_CARD:
            return self.order_fetchers
        if provider.type is ProviderType.UPI:
            return self.payout_fetchers
        return self.confirmers

    def provider(self, name: str) -> IngressProvider:
        """The configured provider called `name`, else refused (`unknown_provider`, label `unknown`)."""
        found = self.providers.get(name)
        if found is None:
            raise self.refuse(None, RefusalReason.UNKNOWN_PROVIDER, "no provider by that name receives webhooks here")
        return found

    def refuse(self, provider: IngressProvider | None, reason: RefusalReason, detail: str) -> WebhookRefusedError:
        """Count a refusal and return its error (to raise). Logged with the reason only, never the body."""
        label = provider.name if provider is not None else UNKNOWN_PROVIDER_LABEL
        self.metrics.refused.labels(label, reason.value).inc()
        log.info("webhook refused", extra={"provider": label, "reason": reason.value})
        return WebhookRefusedError(reason, detail)

    async def __call__(  # noqa: PLR0912 - one branch per signing scheme, then per rail
        self,
        provider: IngressProvider,
        signature: str | None,
        body: bytes,
        *,
        digest_alg: str | None = None,
        event_id: str | None = None,
    ) -> Receipt:
        """`digest_alg`: the `X-Payload-Digest-Alg` header, read by the KYC vendor's scheme only; `event_id`: the
        `X-Razorpay-Event-Id` header, read by RazorpayX's only."""
        now = self.clock()
        if provider.scheme is Scheme.RAZORPAY_SIGNATURE:
            return await self._razorpayx(provider, signature, event_id, body, now)
        if provider.scheme is Scheme.GIFTCARD_SIGNATURE:
            return await self._giftcard(provider, signature, body, now)
        if provider.scheme is Scheme.SUMSUB_DIGEST:
            return await self._verification(provider, signature, digest_alg, body, now)
        rail = provider.type
        if not isinstance(rail, ProviderType):  # a KYC vendor is configured with its own scheme only
            raise self.refuse(provider, RefusalReason.INVALID_PAYLOAD, "this provider's scheme reads no such event")
        try:
            timestamp = verify(
                {provider.scheme.header: signature} if signature is not None else {},
                body,
                header_name=provider.scheme.header,
                secrets=provider.secrets,
                now=now,
                tolerance_s=provider.tolerance_s,
            )
        except SignatureRefused as err:
            raise self.refuse(provider, RefusalReason(err.reason.value), err.detail) from None
        try:
            doc = from_json(body)
        except ValueError:
            raise self.refuse(provider, RefusalReason.MALFORMED_JSON, "the body is not a JSON document") from None
        if not isinstance(doc, dict):
            raise self.refuse(provider, RefusalReason.MALFORMED_JSON, "the body must be a JSON object")
        digest = hashlib.sha256(body).hexdigest()
        received_at = datetime.fromtimestamp(now, UTC)
        confirmed = False
        try:
            if rail is ProviderType.STRIPE:
                confirmer = self.confirmers.get(provider.name)
                if confirmer is not None:
                    confirmed_doc = await self._confirm_stripe(provider, confirmer, doc)
                    if confirmed_doc is None:
                        return self._count(provider, Receipt(DeliveryOutcome.DUPLICATE, str(doc["id"]), None))
                    doc, payment_intent = confirmed_doc
                    confirmed = True
                else:
                    payment_intent = None
                normalized = stripe_events.normalize(
                    doc, provider=rail, digest=digest, received_at=received_at, payment_intent=payment_intent
                )
            else:
                normalized = prizeflow_events.normalize(doc, provider=rail, digest=digest, received_at=received_at)
        except NormalizationError as err:
            raise self.refuse(provider, RefusalReason.INVALID_PAYLOAD, str(err)) from None
        return await self._store(
            provider,
            normalized,
            body=body,
            digest=digest,
            timestamp=timestamp,
            received_at=received_at,
            confirmed=confirmed,
        )

    async def _verification(
        self, provider: IngressProvider, digest: str | None, alg: str | None, body: bytes, now: float
    ) -> Receipt:
        """A KYC vendor's callback: its digest, then who and what kind, published without the review answer (payouts
        fetches the applicant's status from the vendor). The scheme has no timestamp: a replay is a duplicate."""
        vendor = provider.type
        headers = {provider.scheme.header: digest} if digest is not None else {}
        if alg is not None:
            headers[SUMSUB_DIGEST_ALG_HEADER] = alg
        try:
            if not isinstance(vendor, VerificationVendor):
                raise SignatureRefused(SignatureFailure.MISMATCH, "the provider is no identity-verification vendor")
            verify_sumsub_digest(headers, body, secrets=provider.secrets)
        except SignatureRefused as err:
            raise self.refuse(provider, RefusalReason(err.reason.value), err.detail) from None
        try:
            doc = from_json(body)
        except ValueError:
            raise self.refuse(provider, RefusalReason.MALFORMED_JSON, "the body is not a JSON document") from None
        if not isinstance(doc, dict):
            raise self.refuse(provider, RefusalReason.MALFORMED_JSON, "the body must be a JSON object")
        return await self._store_untimed(
            provider,
            body,
            now,
            lambda digest, at: kyc_events.normalize(
                doc, provider=vendor, provider_name=provider.name, digest=digest, received_at=at
            ),
            kept=kyc_events.kept_body(doc),  # never the vendor's free text (a name, a date of birth)
            confirmed=False,
        )

    async def _giftcard(self, provider: IngressProvider, signature: str | None, body: bytes, now: float) -> Receipt:
        """A gift-card callback: signature (no timestamp to check), then the order fetched back, whose status is
        the one published. A delivery already stored is a duplicate before the provider is asked again."""
        try:
            headers = {provider.scheme.header: signature} if signature is not None else {}
            verify_giftcard_signature(headers, body, keys=provider.secrets)
        except SignatureRefused as err:
            raise self.refuse(provider, RefusalReason(err.reason.value), err.detail) from None
        try:
            doc = from_json(body)
        except ValueError:
            raise self.refuse(provider, RefusalReason.MALFORMED_JSON, "the body is not a JSON document") from None
        if not isinstance(doc, dict):
            raise self.refuse(provider, RefusalReason.MALFORMED_JSON, "the body must be a JSON object")
        try:
            ref = giftcard_events.event_ref(doc)
        except NormalizationError as err:
            raise self.refuse(provider, RefusalReason.INVALID_PAYLOAD, str(err)) from None
        if await self.writer.seen(provider.name, ref.event_id):
            return self._count(provider, Receipt(DeliveryOutcome.DUPLICATE, ref.event_id, None))
        rail = provider.type
        if not isinstance(rail, ProviderType):  # pragma: no cover - the config pairs giftcard_signature with gift_card
            raise self.refuse(provider, RefusalReason.INVALID_PAYLOAD, "this provider's scheme reads no such event")
        order = await self._ask(
            provider, self.order_fetchers[provider.name].fetch_order(ref.resource_type, ref.resource_id)
        )
        if order is None:
            self.metrics.confirmations.labels(provider.name, "not_found").inc()
            raise self.refuse(provider, RefusalReason.EVENT_NOT_CONFIRMED, "the provider has no such order or reward")
        self.metrics.confirmations.labels(provider.name, "confirmed").inc()
        return await self._store_untimed(
            provider,
            body,
            now,
            lambda digest, at: giftcard_events.normalize(ref, order, provider=rail, digest=digest, received_at=at),
            confirmed=True,
        )

    async def _razorpayx(
        self, provider: IngressProvider, signature: str | None, event_id: str | None, body: bytes, now: float
    ) -> Receipt:
        """A RazorpayX (upi rail) callback: its signature over the body (constant time, before anything reads the
        body), then its event id from `X-Razorpay-Event-Id`, the dedup key (the scheme has no timestamp: a replay is
        that event again, a duplicate), then the payout's own status in the body."""
        try:
            headers = {RAZORPAY_SIGNATURE_HEADER: signature} if signature is not None else {}
            verify_razorpay_signature(headers, body, secrets=provider.secrets)
        except SignatureRefused as err:
            raise self.refuse(provider, RefusalReason(err.reason.value), err.detail) from None
        try:
            ref = razorpayx_events.event_id_of(event_id)
        except NormalizationError as err:
            raise self.refuse(provider, RefusalReason.INVALID_PAYLOAD, str(err)) from None
        try:
            doc = from_json(body)
        except ValueError:
            raise self.refuse(provider, RefusalReason.MALFORMED_JSON, "the body is not a JSON document") from None
        if not isinstance(doc, dict):
            raise self.refuse(provider, RefusalReason.MALFORMED_JSON, "the body must be a JSON object")
        rail = provider.type
        if not isinstance(rail, ProviderType):  # pragma: no cover - the config pairs razorpay_signature with upi
            raise self.refuse(provider, RefusalReason.INVALID_PAYLOAD, "this provider's scheme reads no such event")
        confirmed = False
        fetcher = self.payout_fetchers.get(provider.name)
        if fetcher is not None:
            if await self.writer.seen(provider.name, ref):
                return self._count(provider, Receipt(DeliveryOutcome.DUPLICATE, ref, None))
            doc = await self._confirm_payout(provider, fetcher, doc)
            confirmed = True
        return await self._store_untimed(
            provider,
            body,
            now,
            lambda digest, at: razorpayx_events.normalize(doc, ref, provider=rail, digest=digest, received_at=at),
            confirmed=confirmed,
        )

    async def _confirm_payout(
        self, provider: IngressProvider, fetcher: PayoutFetcher, doc: dict[str, Any]
    ) -> dict[str, Any]:
        """The event with its payout as RazorpayX holds it now (`GET /v1/payouts/{id}`): the status published is the
        provider's, never only the body's. A payout the provider does not know, or knows under another reference,
        is refused (`event_not_confirmed`); a provider that cannot answer is a 503 (it delivers again)."""
        try:
            entity = doc["payload"]["payout"]["entity"]
            payout_id = entity["id"]
            if not isinstance(payout_id, str):
                raise TypeError("payout id")
        except (KeyError, TypeError) as err:
            raise self.refuse(
                provider, RefusalReason.INVALID_PAYLOAD, f"not a RazorpayX payout event ({type(err).__name__})"
            ) from None
        fetched = await self._ask(provider, fetcher.fetch_payout(payout_id))
        if fetched is None:
            self.metrics.confirmations.labels(provider.name, "not_found").inc()
            raise self.refuse(provider, RefusalReason.EVENT_NOT_CONFIRMED, "the provider has no such payout")
        if fetched.get("id") != payout_id or fetched.get("reference_id") != entity.get("reference_id"):
            self.metrics.confirmations.labels(provider.name, "mismatch").inc()
            raise self.refuse(provider, RefusalReason.EVENT_NOT_CONFIRMED, "the provider's payout is another one")
        self.metrics.confirmations.labels(provider.name, "confirmed").inc()
        # The payout moved on since this event (out of order): its current status, under `payout.updated` (a kind
        # that claims no status of its own), never the stale one the kind names.
        kind = doc.get("event") if fetched.get("status") == entity.get("status") else "payout.updated"
        return {**doc, "event": kind, "payload": {**doc["payload"], "payout": {"entity": dict(fetched)}}}

    async def _confirm_stripe(
        self, provider: IngressProvider, confirmer: EventConfirmer, doc: dict[str, Any]
    ) -> tuple[Mapping[str, Any], Mapping[str, Any] | None] | None:
        """The event as the provider itself has it (and the payment intent a refund or dispute names), or None
        when the delivery is stored already (no need to ask again)."""
        ref = stripe_events.event_ref(doc)
        if await self.writer.seen(provider.name, ref.event_id):
            return None
        fetched = await self._ask(provider, confirmer.fetch_event(ref.event_id, account=ref.account))
        if fetched is None:
            self.metrics.confirmations.labels(provider.name, "not_found").inc()
            raise self.refuse(provider, RefusalReason.EVENT_NOT_CONFIRMED, f"the provider has no event {ref.event_id}")
        try:
            got = stripe_events.event_ref(fetched)
        except NormalizationError:
            got = None
        if (
            got is None
            or (got.event_id, got.kind, got.object_id) != (ref.event_id, ref.kind, ref.object_id)
            or got.account not in {None, ref.account}
        ):
            self.metrics.confirmations.labels(provider.name, "mismatch").inc()
            raise self.refuse(
                provider, RefusalReason.EVENT_NOT_CONFIRMED, "the provider's event differs in type, object or account"
            )
        if got.account is None and ref.account is not None:
            # Found only in that connected account's scope, it is that account's event whether or not the API's copy
            # names it: without it, a connected account's checkout or refund would read as the platform's own.
            fetched = {**fetched, "account": ref.account}
        payment_intent = None
        if (pi := stripe_events.payment_intent_of(fetched)) is not None:
            payment_intent = await self._ask(provider, confirmer.fetch_payment_intent(pi, account=got.account))
            if payment_intent is None:
                self.metrics.confirmations.labels(provider.name, "not_found").inc()
                raise self.refuse(provider, RefusalReason.EVENT_NOT_CONFIRMED, "the provider has no such payment")
        self.metrics.confirmations.labels(provider.name, "confirmed").inc()
        return fetched, payment_intent

    async def _ask(self, provider: IngressProvider, call: Any) -> Mapping[str, Any] | None:
        try:
            result: Mapping[str, Any] | None = await call
        except ProviderUnavailableError:
            self.metrics.confirmations.labels(provider.name, "unavailable").inc()
            raise self.refuse(
                provider, RefusalReason.PROVIDER_UNAVAILABLE, "the provider could not confirm the event; retry later"
            ) from None
        return result

    async def _store_untimed(
        self,
        provider: IngressProvider,
        body: bytes,
        now: float,
        normalize: Callable[[str, datetime], Normalized],
        *,
        kept: bytes | None = None,
        confirmed: bool,
    ) -> Receipt:
        """A verified delivery of a scheme with no timestamp of its own (the time it was verified stands in): the
        body's digest, `normalize(digest, received_at)` (a refusal names the payload), stored (`kept`: what of the
        body is kept, else all of it)."""
        digest = hashlib.sha256(body).hexdigest()
        received_at = datetime.fromtimestamp(now, UTC)
        try:
            normalized = normalize(digest, received_at)
        except NormalizationError as err:
            raise self.refuse(provider, RefusalReason.INVALID_PAYLOAD, str(err)) from None
        return await self._store(
            provider,
            normalized,
            body=body if kept is None else kept,
            digest=digest,
            timestamp=int(now),
            received_at=received_at,
            confirmed=confirmed,
        )

    async def _store(
        self,
        provider: IngressProvider,
        normalized: Normalized,
        *,
        body: bytes,
        digest: str,
        timestamp: int,
        received_at: datetime,
        confirmed: bool,
    ) -> Receipt:
        correlation = normalized.correlation_id
        generated = correlation is None
        if correlation is None:
            correlation = self.correlation_ids()
        staged: StagedEvent | None = None
        if normalized.event is not None:
            staged = stage_event(
                normalized.event,
                source=self.source,
                correlation_id=correlation,
                subject=normalized.provider_event_id,
                time=received_at,
            )
        delivery = NewDelivery(
            provider=provider.name,
            provider_type=provider.type.value,
            provider_event_id=normalized.provider_event_id,
            kind=normalized.kind,
            outcome="published" if staged is not None else "ignored",
            ignored_reason=normalized.ignored.value if normalized.ignored is not None else None,
            event_type=staged.type if staged is not None else None,
            event_json=staged.payload.decode() if staged is not None else None,
            published_event_id=staged.id if staged is not None else None,
            correlation_id=correlation,
            correlation_generated=generated,
            confirmed=confirmed,
            body=body,
            body_sha256=digest,
            signature_timestamp=timestamp,
            received_at=received_at,
        )
        stored = await self.writer.write(delivery, staged)
        if not stored:
            outcome = DeliveryOutcome.DUPLICATE
        elif staged is None:
            outcome = DeliveryOutcome.IGNORED
        else:
            outcome = DeliveryOutcome.ACCEPTED
        if stored and generated:
            self.metrics.correlation_generated.labels(provider.name).inc()
        event_id = staged.id if stored and staged is not None else None
        return self._count(provider, Receipt(outcome, normalized.provider_event_id, event_id))

    def _count(self, provider: IngressProvider, receipt: Receipt) -> Receipt:
        self._outcomes[(provider.name, receipt.outcome)].inc()
        return receipt


__all__ = ["Receipt", "ReceiveWebhook", "WebhookRefusedError", "new_correlation_id"]
