"""`ReceiveWebhook`: one provider callback, verified, confirmed, stored, then published (ADR 0006).

One path for every provider; what differs per rail is its reader (`prizeflow_contracts.rails.registry`), looked
up by the provider's scheme. Order matters and is the point: the signature is checked before anything else reads
the body; the event is fetched back from a provider that offers it before it is believed; only then is it stored,
deduplicated by (provider, provider event id), with its Prizeflow event staged in the outbox in the same
transaction; the caller answers 2xx only once that committed. A refusal stores nothing and publishes nothing, so it
never takes the dedup key a genuine delivery of that event needs.
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
from prizeflow_contracts.rails.reading import (
    Confirmed,
    NormalizationError,
    Normalized,
    NotConfirmed,
    ProviderUnavailableError,
    WebhookReader,
    incoherence,
)
from prizeflow_contracts.rails.registry import WEBHOOK_READERS
from prizeflow_contracts.webhook_signatures import SignatureRefused
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_webhooks.application.metrics import WebhooksMetrics
from prizeflow_webhooks.application.ports import DeliveryWriter, NewDelivery
from prizeflow_webhooks.domain.deliveries import (
    UNKNOWN_PROVIDER_LABEL,
    DeliveryOutcome,
    IngressProvider,
    RefusalReason,
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
        apis: Mapping[str, object] | None = None,
        readers: Mapping[str, WebhookReader] = WEBHOOK_READERS,
        clock: Callable[[], float] = time.time,
        correlation_ids: Callable[[], str] = new_correlation_id,
    ) -> None:
        """`apis`: by provider name, the port its rail's reader asks the provider back through (a provider
        configured with `confirm` has one)."""
        self.providers = providers
        self.writer = writer
        self.metrics = metrics
        self.source = source
        self.apis = apis or {}
        self.readers = readers
        self.clock = clock
        self.correlation_ids = correlation_ids
        # The labelled counters of the hot path, looked up once (`labels()` costs more than verifying a MAC).
        self._outcomes = {
            (p.name, o): metrics.deliveries.labels(p.name, o.value) for p in providers.values() for o in DeliveryOutcome
        }
        unread = sorted(p.name for p in providers.values() if p.scheme not in readers)
        if unread:
            raise ValueError(f"providers {unread} sign with a scheme no rail reads")
        missing = sorted(p.name for p in providers.values() if p.confirms and p.name not in self.apis)
        if missing:
            raise ValueError(f"providers {missing} confirm events but have no confirmer")
        for p in providers.values():
            # The providers file's rules, held here too: a provider built in code never reads another rail's events.
            # (The key id is the confirmation client's business, checked where the file is read.)
            terms = readers[p.scheme].terms
            why = incoherence(terms, p.type, confirms=p.name in self.apis, key_id=terms.key_id)
            if why is not None or p.confirms != (p.name in self.apis):
                raise ValueError(f"provider {p.name}: {why or 'an api exactly when it confirms'}")

    def provider(self, name: str) -> IngressProvider:
        """The configured provider called `name`, else refused (`unknown_provider`, label `unknown`)."""
        found = self.providers.get(name)
        if found is None:
            raise self.refuse(None, RefusalReason.UNKNOWN_PROVIDER, "no provider by that name receives webhooks here")
        return found

    def reader(self, provider: IngressProvider) -> WebhookReader:
        """The reader of the provider's scheme (checked at construction)."""
        return self.readers[provider.scheme]

    def refuse(self, provider: IngressProvider | None, reason: RefusalReason, detail: str) -> WebhookRefusedError:
        """Count a refusal and return its error (to raise). Logged with the reason only, never the body."""
        label = provider.name if provider is not None else UNKNOWN_PROVIDER_LABEL
        self.metrics.refused.labels(label, reason.value).inc()
        log.info("webhook refused", extra={"provider": label, "reason": reason.value})
        return WebhookRefusedError(reason, detail)

    async def __call__(
        self,
        provider: IngressProvider,
        signature: str | None,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Receipt:
        """`signature`: the value of the scheme's signature header; `headers`: the scheme's other headers it
        reads (the KYC vendor's digest algorithm, RazorpayX's event id), by name."""
        now = self.clock()
        reader = self.reader(provider)
        read = {k.lower(): v for k, v in (headers or {}).items()}
        if signature is not None:
            read[reader.terms.headers[0]] = signature
        try:
            timestamp = reader.verify(provider, read, body, now=now)
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
        api = self.apis.get(provider.name)
        try:
            event_id = reader.identify(doc, read)
            if api is None:
                confirmed = Confirmed(doc)
            else:
                if event_id is not None and await self.writer.seen(provider.name, event_id):
                    # Stored already: a duplicate, before the provider is asked about it again.
                    return self._count(provider, Receipt(DeliveryOutcome.DUPLICATE, event_id, None))
                confirmed = await self._confirm(provider, reader, api, doc, read)
            normalized = reader.normalize(provider, confirmed, read, digest=digest, received_at=received_at)
        except NormalizationError as err:
            raise self.refuse(provider, RefusalReason.INVALID_PAYLOAD, str(err)) from None
        kept = reader.kept(doc)
        return await self._store(
            provider,
            normalized,
            body=body if kept is None else kept,
            digest=digest,
            # A scheme without a timestamp of its own: the time it was verified stands in.
            timestamp=int(now) if timestamp is None else timestamp,
            received_at=received_at,
            confirmed=api is not None,
        )

    async def _confirm(
        self,
        provider: IngressProvider,
        reader: WebhookReader,
        api: Any,
        doc: Mapping[str, Any],
        headers: Mapping[str, str],
    ) -> Confirmed:
        """The event as the provider holds it now; refused when it does not stand by it (`event_not_confirmed`),
        a 503 when it cannot answer (it delivers again)."""
        confirmations = self.metrics.confirmations
        try:
            confirmed = await reader.confirm_with(api, doc, headers)
        except ProviderUnavailableError:
            confirmations.labels(provider.name, "unavailable").inc()
            raise self.refuse(
                provider, RefusalReason.PROVIDER_UNAVAILABLE, "the provider could not confirm the event; retry later"
            ) from None
        except NotConfirmed as err:
            confirmations.labels(provider.name, err.outcome).inc()
            raise self.refuse(provider, RefusalReason.EVENT_NOT_CONFIRMED, err.detail) from None
        confirmations.labels(provider.name, "confirmed").inc()
        return confirmed

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
