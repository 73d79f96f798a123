"""The provider conformance kit's two halves: what a rail's harness must tell the kit (`ProviderHarness`), and
the running payouts service the kit drives through it (`Kit`).

The suite (`tests/conformance`) never talks to a provider object alone: every scenario is a real payout,
requested on Kafka as rewards requests it, worked by the payouts service in this event loop on real PostgreSQL
and Kafka, and checked three ways: payouts' tables, its events on Kafka, and what the rail itself did.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Final

import httpx
from litestar.testing import AsyncTestClient

from prizeflow_contracts.envelope import Envelope, decode, new_event
from prizeflow_contracts.errors import PAYOUT_ERROR_RETRYABLE, PayoutErrorCode
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.providers import (
    DestinationType,
    ProviderCapabilities,
    ProviderPayoutStatus,
    ProviderType,
    RewardPayoutProvider,
    WebhookEvent,
)
from prizeflow_payouts.application.payout_requests import payout_id_for
from prizeflow_payouts.bootstrap import Payouts
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_testkit.db import fetch
from prizeflow_testkit.kafka import read_topic
from prizeflow_testkit.payouts import PAYOUT_STATES, publish, request, token
from prizeflow_testkit.waits import eventually

WEBHOOK_SOURCE = "/prizeflow/webhooks"  # what the webhooks ingress stamps on what it publishes
FINAL_STATES = ("paid", "failed", "cancelled", "rejected", "returned")


class Scenario(StrEnum):
    """What every rail is checked on. A rail that cannot have one says why (`ProviderHarness.unsupported`)."""

    CAPABILITIES = "capabilities"
    SUCCESS = "success"
    PENDING = "pending"
    FAILURE = "failure"
    RETRY = "retry"
    DUPLICATE_WEBHOOK = "duplicate_webhook"
    STALE_WEBHOOK = "stale_webhook"
    OUTAGE = "outage"
    TIMEOUT_AFTER_SUCCESS = "timeout_after_success"
    CANCEL = "cancel"
    NOT_CANCELLABLE_AFTER_PAID = "not_cancellable_after_paid"
    ERROR_CODES = "error_codes"
    SECRETS_NOT_LOGGED = "secrets_not_logged"
    RECONCILIATION = "reconciliation"


# What an emulator's `POST /_emulator/discrepancies` can make the provider's books show, and the exception
# reconciliation must raise for it (docs/adr/0011-reconciliation.md).
DISCREPANCIES: Final = {
    "unrequested": "unrequested",
    "missing": "missing",
    "amount": "overpaid",
    "destination": "destination_mismatch",
    "duplicate": "duplicate",
    "reversal": "unrecorded_reversal",
    "fee": "unbooked_fee",
}


class Behaviour(StrEnum):
    """What the rail is to do with the next payout (`ProviderHarness.destination`)."""

    SUCCEED = "succeed"
    STAY_PENDING = "stay_pending"  # until `ProviderHarness.complete`
    FAIL = "fail"  # with the code given
    TRANSIENT_THEN_SUCCEED = "transient_then_succeed"
    OUTAGE = "outage"  # until `ProviderHarness.heal`
    TIMEOUT_AFTER_SUCCESS = "timeout_after_success"  # executed, the answer lost


@dataclass(frozen=True)
class Claims:
    """The capabilities a harness says its provider has; the kit checks the provider says the same."""

    supports_cancel: bool
    supports_quote: bool
    supports_webhooks: bool
    async_confirmation: bool


@dataclass
class KitEnv:
    """Infrastructure a harness builds its stack on: a migrated payouts database, Kafka, a topic suffix (its
    topics are deleted afterwards), a scratch directory and a way to set environment variables for the
    module (`monkeypatch`: anything with `setenv`)."""

    infra: Any
    db: str
    kafka: str
    topic_suffix: str
    tmp: Path
    monkeypatch: Any


@dataclass
class Kit:
    """The payouts service running with one harness's provider, and what the scenarios do with it."""

    harness: ProviderHarness
    settings: PayoutsSettings
    parts: Payouts
    client: AsyncTestClient[Any]
    db: str
    kafka: str
    destinations: dict[str, str] = field(default_factory=dict)  # idempotency key -> destination address
    answers: list[httpx.Response] = field(default_factory=list)  # every admin API answer, for the secrets check
    extra: dict[str, Any] = field(default_factory=dict)  # the harness's own handles (processes, RPC clients)

    @property
    def provider(self) -> RewardPayoutProvider:
        return self.parts.config.registry.get(self.harness.name).provider

    @property
    def capabilities(self) -> ProviderCapabilities:
        """What the rail can do, derived from the parts it registered with (as the admin API lists it)."""
        return self.parts.config.registry.get(self.harness.name).capabilities

    @property
    def admin(self) -> dict[str, str]:
        return token(self.settings, "kit-admin", "admin", "ops")

    def topic(self, base: str) -> str:
        return base + self.settings.kafka_topic_suffix

    # -- requests -----------------------------------------------------------------------------------------------
    async def request(self, address: str, *, amount: int | None = None) -> str:
        """A payout requested as rewards requests one (PayoutRequested on Kafka); its idempotency key, once
        payouts stored it."""
        h = self.harness
        env = request(
            f"kit-{h.name}-{uuid.uuid4().hex[:10]}",
            address=address,
            amount=amount or h.amount,
            asset=h.asset,
            dtype=h.destination_type,
        )
        key = env.data.idempotency_key
        self.destinations[key] = address
        await publish(self.kafka, self.topic("prizeflow.payouts.requests.v1"), [env])
        await self.wait_state(key, *PAYOUT_STATES)
        return key

    # -- what payouts recorded -------------------------------------------------------------------------------
    async def row(self, key: str) -> dict[str, Any]:
        rows = await fetch(self.db, "SELECT * FROM payouts WHERE idempotency_key = $1", key)
        return dict(rows[0]) if rows else {}

    async def state(self, key: str) -> str | None:
        return (await self.row(key)).get("state")

    async def wait_state(self, key: str, *states: str, timeout: float = 30.0) -> str:
        async def probe() -> str | None:
            return await self.state(key)

        got = await eventually(probe, lambda s: s in states, timeout=timeout, interval=0.05)
        assert got is not None
        return got

    async def wait_row(self, key: str, until: Any, *, timeout: float = 30.0) -> dict[str, Any]:
        async def probe() -> dict[str, Any]:
            return await self.row(key)

        return await eventually(probe, until, timeout=timeout, interval=0.05)

    async def history(self, key: str) -> list[tuple[str | None, str]]:
        rows = await fetch(
            self.db,
            "SELECT h.from_state, h.to_state FROM payout_history h JOIN payouts p ON p.id = h.payout_id "
            "WHERE p.idempotency_key = $1 ORDER BY h.id",
            key,
        )
        return [(r["from_state"], r["to_state"]) for r in rows]

    async def attempts(self, key: str) -> list[dict[str, Any]]:
        rows = await fetch(
            self.db,
            "SELECT a.attempt, a.kind, a.outcome, a.error_code FROM payout_attempts a "
            "JOIN payouts p ON p.id = a.payout_id WHERE p.idempotency_key = $1 ORDER BY a.id",
            key,
        )
        return [dict(r) for r in rows]

    async def provider_events(self, event_ids: Sequence[str]) -> dict[str, str]:
        rows = await fetch(
            self.db,
            "SELECT provider_event_id, outcome FROM provider_events WHERE provider_event_id = ANY($1)",
            list(event_ids),
        )
        return {r["provider_event_id"]: r["outcome"] for r in rows}

    async def events(self, key: str) -> list[Envelope[Any]]:
        """Every event about this payout on the payouts topic, in order."""
        records = await read_topic(self.kafka, self.topic("prizeflow.payouts.events.v1"))
        out = []
        for r in records:
            env = decode(r.value)
            if getattr(env.data, "idempotency_key", None) == key:
                out.append(env)
        return out

    async def wait_events(self, key: str, name: str, *, count: int = 1, timeout: float = 30.0) -> list[Envelope[Any]]:
        """Once at least `count` events named `name` (PayoutPaid...) are out for this payout: all its events."""

        def enough(events: list[Envelope[Any]]) -> bool:
            return sum(1 for e in events if e.type.split(".")[2] == name) >= count

        async def probe() -> list[Envelope[Any]]:
            return await self.events(key)

        return await eventually(probe, enough, timeout=timeout, interval=0.1)

    def metric(self, name: str, **labels: str) -> float:
        value = self.parts.runtime.registry.get_sample_value(name, labels)
        return value or 0.0

    # -- admin API --------------------------------------------------------------------------------------------
    async def post(self, key: str, action: str, body: dict[str, Any]) -> httpx.Response:
        resp = await self.client.post(f"/payouts/{payout_id_for(key)}/{action}", json=body, headers=self.admin)
        self.answers.append(resp)
        return resp

    async def cancel(self, key: str, *, busy_timeout: float = 30.0) -> httpx.Response:
        """`POST /cancel`, asked again while a worker holds the payout (`in_flight`, `concurrent_change`)."""

        async def once() -> httpx.Response:
            return await self.post(key, "cancel", {"reason": "conformance kit"})

        def settled(resp: httpx.Response) -> bool:
            return resp.status_code == 200 or resp.json().get("code") not in ("in_flight", "concurrent_change")

        return await eventually(once, settled, timeout=busy_timeout, interval=0.05)

    async def mark_paid(self, key: str) -> httpx.Response:
        return await self.post(key, "mark-paid", {"reference": f"op-{key}"[:64], "reason": "paid by hand"})

    async def mark_failed(self, key: str, code: PayoutErrorCode) -> httpx.Response:
        return await self.post(key, "mark-failed", {"reason": f"operator reports {code.value}", "code": code.value})

    # -- webhooks as the ingress publishes them --------------------------------------------------------------
    async def publish_provider_events(self, events: Sequence[Envelope[ProviderEventReceived]]) -> None:
        await publish(self.kafka, self.topic("prizeflow.webhooks.provider-events.v1"), list(events))

    async def dead_letters(self, topic_base: str) -> list[Any]:
        return await read_topic(self.kafka, self.topic(topic_base) + ".dlq")


def provider_event(
    *,
    provider: ProviderType,
    event_id: str,
    key: str | None,
    status: ProviderPayoutStatus | None,
    kind: str,
    body: bytes,
    provider_ref: str | None = None,
    error_code: PayoutErrorCode | None = None,
    verified: bool = True,
    occurred_at: datetime | None = None,
) -> Envelope[ProviderEventReceived]:
    """The normalized event the webhooks ingress publishes for a verified delivery (one partition per payout)."""
    return new_event(
        ProviderEventReceived(
            provider=provider,
            provider_event_id=event_id,
            provider_payout_ref=provider_ref,
            idempotency_key=key,
            kind=kind,
            received_at=occurred_at or datetime.now(UTC),
            verified=verified,
            status=status,
            error_code=error_code,
            payload_digest=hashlib.sha256(body).hexdigest(),
        ),
        source=WEBHOOK_SOURCE,
        correlation_id=f"wh-{key or provider_ref}",
    )


def as_ingress_publishes(
    normalized: ProviderEventReceived | None, parsed: WebhookEvent, *, correlation_id: str | None = None
) -> Envelope[ProviderEventReceived]:
    """The webhooks ingress's own normalization of a delivery, published as it publishes it; checked against the
    provider's `parse_webhook` of the same signed delivery (the two readings of one event must agree)."""
    assert normalized is not None, f"the ingress ignores {parsed.kind}: no event to publish"
    agree = ("provider", "provider_event_id", "idempotency_key", "kind", "verified", "payload_digest")
    assert {k: getattr(normalized, k) for k in agree} == {k: getattr(parsed, k) for k in agree}
    assert normalized.provider_payout_ref == parsed.provider_payout_ref
    if normalized.status is not None:  # the ingress leaves a status out where it says nothing new
        assert normalized.status is parsed.status, (normalized.status, parsed.status)
        assert normalized.error_code == (parsed.error.code if parsed.error else None)
    return new_event(
        normalized,
        source=WEBHOOK_SOURCE,
        correlation_id=correlation_id or f"wh-{normalized.idempotency_key or normalized.provider_payout_ref}",
    )


def retryable(codes: Sequence[PayoutErrorCode]) -> tuple[PayoutErrorCode, ...]:
    return tuple(c for c in codes if PAYOUT_ERROR_RETRYABLE[c])


def terminal(codes: Sequence[PayoutErrorCode]) -> tuple[PayoutErrorCode, ...]:
    return tuple(c for c in codes if not PAYOUT_ERROR_RETRYABLE[c])


class ProviderHarness(ABC):
    """How the kit builds, steers and observes one payout rail. One subclass per provider, in its own module of
    `prizeflow_testkit.conformance`, found for `HARNESSES` where it is defined: a new provider adds one."""

    name: ClassVar[str]  # the provider's name in the providers file, and the test id prefix
    provider_type: ClassVar[ProviderType]
    asset: ClassVar[str]
    destination_type: ClassVar[DestinationType]
    amount: ClassVar[int] = 1_000_000
    claims: ClassVar[Claims]

    # -- building ---------------------------------------------------------------------------------------------
    @abstractmethod
    def running(self, env: KitEnv) -> AbstractAsyncContextManager[Kit]:
        """The provider for the kit: its providers file, environment, emulators and processes, and payouts
        running on them (`prizeflow_testkit.payouts.running`). Torn down on exit."""

    def unsupported(self, scenario: Scenario) -> str | None:
        """Why this rail cannot have `scenario` (the kit then checks the provider says so properly), or None."""
        return None

    # -- steering ---------------------------------------------------------------------------------------------
    @abstractmethod
    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        """The destination address whose payout will behave so (arming whatever the rail needs for it)."""

    async def after_request(
        self, kit: Kit, key: str, behaviour: Behaviour, code: PayoutErrorCode | None = None
    ) -> None:
        """What the rail or its operator does once the payout reached it (manual: mark it paid or failed)."""
        return

    async def complete(self, kit: Kit, key: str) -> None:
        """The rail completes a payout it kept pending (it pays it)."""
        raise NotImplementedError(f"{self.name}: complete")

    async def outage_felt(self, kit: Kit, key: str) -> bool:
        """The payout has run into the outage (an attempt answered by it is on record)."""
        raise NotImplementedError(f"{self.name}: outage_felt")

    async def heal(self, kit: Kit) -> None:
        """The outage or transient fault is over (nothing to do where it ends by itself)."""
        return

    async def webhook(
        self, kit: Kit, key: str, status: ProviderPayoutStatus, error_code: PayoutErrorCode | None = None
    ) -> Envelope[ProviderEventReceived]:
        """The rail's event reporting `status` for this payout, as the ingress publishes it once verified (the
        rail is brought to a final `status` first, so the event tells the truth). Asked again for the same
        status: the same provider event, delivered again (a new envelope)."""
        raise NotImplementedError(f"{self.name}: webhook")

    # -- observing --------------------------------------------------------------------------------------------
    @abstractmethod
    async def payments(self, kit: Kit, key: str) -> int:
        """How many times the rail really paid this payout (sandbox transfers, ledger payments, ...)."""

    async def rail_attempts(self, kit: Kit, key: str) -> int:
        """How many times the rail was asked to execute this payout (retries included)."""
        return len([a for a in await kit.attempts(key) if a["kind"] == "create"])

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        """Terminal failures the rail can report, each reachable through `destination(FAIL, code)`."""
        return ()

    def retryable_codes(self) -> tuple[PayoutErrorCode, ...]:
        """Transient failures the rail reports to payouts (not those it retries itself), reachable likewise."""
        return ()

    def secrets(self) -> tuple[str, ...]:
        """Every secret value configured for the rail (API keys, webhook secrets, seeds): never in a log."""
        return ()

    # -- reconciliation ---------------------------------------------------------------------------------------
    # Whether a fee the provider charges names the payout it was charged for (else it is the account's own).
    fees_name_payouts: ClassVar[bool] = True

    def discrepancies_waived(self) -> dict[str, str]:
        """Discrepancy kinds (`DISCREPANCIES`) the rail's books cannot show, each with why."""
        return {}

    async def discrepancy_reference(self, kit: Kit, key: str) -> str:
        """How the rail's emulator names our payout `key` in `/_emulator/discrepancies` (the idempotency key, by
        default)."""
        return key

    async def stray_destination(self, kit: Kit) -> str:
        """A destination of the rail's kind that no payout of ours paid (for an `unrequested` payout)."""
        return await self.destination(kit, Behaviour.SUCCEED)

    async def inject(self, kit: Kit, kind: str, key: str | None) -> None:
        """Make the provider's books show a discrepancy of `kind` about payout `key` (None: `unrequested`)."""
        url = kit.extra.get("emulator_url")
        if url is None:
            raise NotImplementedError(f"{self.name}: no emulator to inject a discrepancy into")
        body: dict[str, Any] = {"kind": kind}
        if key is not None:
            body["reference"] = await self.discrepancy_reference(kit, key)
        if kind == "unrequested":
            body.update(amount=self.amount, asset=self.asset, destination=await self.stray_destination(kit))
        elif kind == "amount":
            body["amount"] = self.amount + 1
        elif kind == "destination":
            body["destination"] = await self.stray_destination(kit)
        elif kind == "fee":
            body["amount"] = 7
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
            answer = await client.post("/_emulator/discrepancies", json=body)
        assert answer.status_code == 201, (self.name, kind, answer.status_code, answer.text[:300])

    def log_files(self, kit: Kit) -> tuple[Path, ...]:
        """Logs of the processes the harness started (emulators, the signer): checked for secrets too."""
        return ()


class LogCapture(logging.Handler):
    """Every log record of a kit module, from start-up on, at DEBUG (the secrets scenario reads them)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def rendered(records: Sequence[logging.LogRecord]) -> str:
    """Records as any handler could write them: message, arguments, extra fields and tracebacks."""
    formatter = logging.Formatter()
    lines = []
    standard = set(vars(logging.makeLogRecord({})))
    for r in records:
        lines.append(r.getMessage())
        lines.append(repr(r.args))
        lines.extend(f"{k}={v!r}" for k, v in vars(r).items() if k not in standard)
        if r.exc_info:
            lines.append(formatter.formatException(r.exc_info))
    return "\n".join(lines)


__all__ = [
    "DISCREPANCIES",
    "FINAL_STATES",
    "WEBHOOK_SOURCE",
    "Behaviour",
    "Claims",
    "Kit",
    "KitEnv",
    "LogCapture",
    "ProviderHarness",
    "Scenario",
    "as_ingress_publishes",
    "provider_event",
    "rendered",
    "retryable",
    "terminal",
]
