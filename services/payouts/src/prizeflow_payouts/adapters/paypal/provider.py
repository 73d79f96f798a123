"""`PayPalPayoutProvider`: pays PayPal accounts (by email, phone or PayPal id) through PayPal Payouts, in batches.

- create: the instructions the worker hands over go in one batch (`sender_batch_header` + items, each item's
  `sender_item_id` our idempotency key). The batch is written to the rail's books and committed first
  (`book.py`): a payout is in one batch only, and the request is kept as sent. Then `POST /v1/payments/payouts`
  under `PayPal-Request-Id` = the batch's id. An answer that never came (a timeout, a 5xx) leaves the batch
  unanswered: the sync sends the very request again under the same id, and PayPal answers the first batch (a
  reused `sender_batch_id` is refused by PayPal besides: nothing is ever paid twice). A refusal (4xx) proves
  nothing was made: the batch is forgotten and the payouts may be created again.
- status: the payout's item in its batch (`GET /v1/payments/payouts/{payout_batch_id}`, by our key), then by
  PayPal's item id once known (`GET /v1/payments/payouts-item/{id}`); checked against the payout (currency,
  amount), so another item is never taken for it. PayPal's item states read as `prizeflow_contracts.rails.paypal`
  says (paid, pending, returned after it was paid, failed with why).
- cancel: an UNCLAIMED item only (`POST .../payouts-item/{id}/cancel`: the money comes back); else `not_cancellable`.
- statement: PayPal's Transaction Search (`GET /v1/reporting/transactions`), a page per cursor (`statement.py`);
  each line named by our key when it is one of our items (by its transaction id, or the one a return refers to); a
  payment the books do not name yet is looked for in our batches of the hours before (and then kept).
- webhooks: the ingress publishes them (`prizeflow_contracts.rails.paypal`'s reader, confirmed by fetching the item
  back); `parse_webhook` checks the same signature under the same pinned certificate and reads the same event.

Credentials are a REST app's client id and secret, traded for an OAuth2 token (`client.py`). Neither, nor a
receiver, is ever logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    Quote,
    StatementPage,
    WebhookEvent,
)
from prizeflow_contracts.rails import paypal_wire as wire
from prizeflow_contracts.rails.paypal import normalize, verify_paypal_signature
from prizeflow_contracts.rails.reading import NormalizationError
from prizeflow_contracts.webhook_signatures import SignatureRefused
from prizeflow_payouts.adapters.paypal.book import Item, PayPalBooks, SqlPayPalBooks
from prizeflow_payouts.adapters.paypal.client import PayPalCallError, PayPalClient, PayPalKeys, PayPalOptions
from prizeflow_payouts.adapters.paypal.statement import PayPalStatement
from prizeflow_payouts.application.ports import CreateOutcome

log = logging.getLogger(__name__)
P = ProviderPayoutStatus
C = PayoutErrorCode

WEBHOOK_TOLERANCE_S: Final = 300  # a transmission time further than this from ours is refused (stale or future)
# A replayed batch PayPal refuses for its ids: the batch exists there, but its first answer is no longer kept.
_ALREADY_USED: Final = frozenset({"SENDER_BATCH_ID_ALREADY_USED", "DUPLICATE_REQUEST_ID"})
# PayPal read a re-sent request's body and refused it: it did (or would have) the first time, so nothing was made.
BODY_REFUSED: Final = frozenset({"VALIDATION_ERROR", "MALFORMED_REQUEST"})
UNCLAIMED: Final = "UNCLAIMED"
CANCELLED_STATES: Final = frozenset({"RETURNED", "CANCELED"})  # an unclaimed item cancelled, as PayPal answers it


class PayPalPayoutProvider:
    """A PayPal Payouts rail. Holds the REST app's credentials; never logs them nor a receiver."""

    def __init__(
        self,
        options: PayPalOptions,
        *,
        keys: PayPalKeys,
        books: PayPalBooks | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = options
        self.provider_type = options.provider_type
        self._keys = keys
        self.http = PayPalClient(options, keys, transport=transport)
        self._books = books
        self.statements = PayPalStatement(options.name, self.http, lambda: self.books)

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def webhook_keys(self) -> tuple[str, ...]:
        return self._keys.webhook

    def __repr__(self) -> str:
        return f"PayPalPayoutProvider(name={self.name!r}, api_base={self.options.api_base!r})"

    # -- lifecycle (the `engine` and `database` parts) -------------------------------------------------------------
    def bind_database(self, engine: AsyncEngine) -> None:
        if self._books is None:
            self._books = SqlPayPalBooks(engine)

    @property
    def books(self) -> PayPalBooks:
        if self._books is None:
            raise RuntimeError(f"paypal provider {self.name!r} has no database: bootstrap binds one")
        return self._books

    async def start(self) -> None:
        """Nothing to open: the client is created on the first call, inside the running loop."""

    async def close(self) -> None:
        await self.http.close()

    # -- errors (the `classify` part) ------------------------------------------------------------------------------
    def _error(self, code: PayoutErrorCode, message: str, **kw: Any) -> PayoutError:
        return self.http.errors.error(code, message, **kw)

    def _refuse(self, code: PayoutErrorCode, message: str) -> PayoutProviderError:
        return PayoutProviderError(self._error(code, message))

    def classify(self, error: BaseException, *, mutating: bool) -> PayoutError:
        return self.http.errors.classify(error, mutating=mutating)

    # -- validation (the `validator` part) ---------------------------------------------------------------------------
    def validate(self, instruction: PayoutInstruction) -> PayoutError | None:
        """Refuse what PayPal could never pay, before anything is created."""
        dest = instruction.destination
        if dest.type is not DestinationType.PAYPAL:
            return self._error(C.INVALID_DESTINATION, f"pays paypal destinations only, not {dest.type.value}")
        if recipient_of(dest.address) is None:
            return self._error(C.INVALID_DESTINATION, "not an email address, an E.164 phone number nor a PayPal id")
        if instruction.amount.asset not in self.options.assets:
            return self._error(C.UNSUPPORTED_ASSET, f"provider {self.name} does not pay {instruction.amount.asset}")
        if len(instruction.idempotency_key) > wire.SENDER_ITEM_ID_MAX:
            return self._error(C.INVALID_REQUEST, "the idempotency key is longer than PayPal's sender_item_id (63)")
        return None

    async def quote(self, instruction: PayoutInstruction) -> Quote:
        """The player receives the amount; PayPal's fee is charged to our balance, beside it."""
        if (error := self.validate(instruction)) is not None:
            raise PayoutProviderError(error)
        amount = instruction.amount
        return Quote(amount=amount, fee=Money(asset=amount.asset, amount=0), receive_amount=amount)

    # -- create (one call, or a batch: the `batch` part) -----------------------------------------------------------
    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        outcome = (await self.create_payouts([instruction]))[0]
        if isinstance(outcome, PayoutProviderError):
            raise outcome
        return outcome

    async def create_payouts(self, instructions: Sequence[PayoutInstruction]) -> Sequence[CreateOutcome]:
        slots: list[CreateOutcome | None] = [None] * len(instructions)
        items: list[Item] = []
        by_key: dict[str, PayoutInstruction] = {}
        batch = f"{wire.OUR_BATCH_PREFIX}{uuid.uuid4().hex}"
        for i, instruction in enumerate(instructions):
            if (error := self.validate(instruction)) is not None:
                slots[i] = ProviderPayoutResult(
                    status=P.FAILED, idempotency_key=instruction.idempotency_key, error=error, raw_status="refused"
                )
            elif instruction.idempotency_key not in by_key:
                by_key[instruction.idempotency_key] = instruction
                items.append(
                    Item(
                        instruction.idempotency_key,
                        instruction.payout_id,
                        instruction.amount.asset,
                        instruction.amount.amount,
                        batch,
                    )
                )
        if items:
            try:
                async with self.books("enter") as book:
                    entered = set(
                        await book.enter(self.name, batch, items, lambda keys: self._body(batch, by_key, keys))
                    )
            except ValueError as err:  # a request PayPal would refuse (the options): nothing was entered nor sent
                error = self._error(C.INVALID_REQUEST, f"the batch could not be made ({err})")
                return [
                    s if s is not None else self._failed(i.idempotency_key, error)
                    for s, i in zip(slots, instructions, strict=True)
                ]
            sent = await self._send(batch, self._body(batch, by_key, sorted(entered))) if entered else None
            for i, instruction in enumerate(instructions):
                key = instruction.idempotency_key
                if slots[i] is not None or key not in by_key:
                    continue
                slots[i] = sent.get(key) if sent is not None and key in entered else None
                if slots[i] is None:  # in an earlier batch (a create again): what became of it
                    slots[i] = await self._outcome(self._lookup(instruction))
        return [s if s is not None else self._refuse(C.INTERNAL_ERROR, "no answer") for s in slots]

    def _body(self, batch: str, by_key: Mapping[str, PayoutInstruction], keys: Sequence[str]) -> dict[str, Any]:
        items = []
        for key in sorted(keys):
            amount, address = by_key[key].amount, by_key[key].destination.address
            recipient = recipient_of(address)
            assert recipient is not None  # validated
            items.append(wire.ItemSpec(recipient, address, amount.amount, amount.asset, key, self.options.note))
        return wire.payout_request(batch, self.options.email_subject, items)

    async def _send(self, batch: str, body: Mapping[str, Any]) -> dict[str, CreateOutcome]:
        """The batch sent under its request id: each item's outcome, by key. Answered: pending (the items' ids come
        with the sync). Refused: nothing was made, the batch is forgotten. No answer: unknown, the sync asks again."""
        keys = [str(i["sender_item_id"]) for i in body["items"]]
        try:
            doc = await self.http.call("POST", "/v1/payments/payouts", body=body, request_id=batch, mutating=True)
        except PayoutProviderError as err:
            return await self._refused(batch, keys, err)
        try:
            answered = wire.read_batch(doc)
        except ValueError:
            return dict.fromkeys(keys, self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "the answer names no batch"))
        async with self.books("answered") as book:
            kept = await book.answered(self.name, batch, answered.payout_batch_id)
        if not kept:
            log.error("paypal: a batch of ours was answered with another PayPal batch than the one recorded")
            return dict.fromkeys(keys, self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "PayPal answered another batch"))
        raw = answered.batch_status
        return {k: ProviderPayoutResult(status=P.PENDING, idempotency_key=k, raw_status=raw) for k in keys}

    async def _refused(self, batch: str, keys: Sequence[str], err: PayoutProviderError) -> dict[str, CreateOutcome]:
        """A fresh send that failed: unknown if it may have landed (the batch kept: the sync asks again); else
        nothing was made, the batch is forgotten, and its payouts are retried, or fail: those PayPal's refusal names
        when it names some (the others go again without them), all of them when it names none."""
        if err.code is C.TIMEOUT_UNKNOWN_OUTCOME:
            return dict.fromkeys(keys, err)
        async with self.books("forget") as book:
            await book.refused(self.name, batch)
        if err.retryable:
            return dict.fromkeys(keys, err)
        named = {keys[n] for n in (err.items if isinstance(err, PayPalCallError) else ()) if n < len(keys)}
        if not named:
            return {k: self._failed(k, err.error) for k in keys}
        again = self._refuse(C.PROVIDER_UNAVAILABLE, "the batch was refused for another of its items")
        return {k: self._failed(k, err.error) if k in named else again for k in keys}

    def _failed(self, key: str, error: PayoutError) -> ProviderPayoutResult:
        return ProviderPayoutResult(status=P.FAILED, idempotency_key=key, error=error, raw_status="refused")

    def _lookup(self, instruction: PayoutInstruction) -> PayoutLookup:
        return PayoutLookup(
            payout_id=instruction.payout_id,
            idempotency_key=instruction.idempotency_key,
            amount=instruction.amount,
            destination=instruction.destination,
        )

    async def _outcome(self, lookup: PayoutLookup) -> CreateOutcome:
        try:
            return await self.sync_status(lookup)
        except PayoutProviderError as err:
            return err

    # -- sync -------------------------------------------------------------------------------------------------------
    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        item = await self._item(lookup)
        return await self._read(item, await self._paypal_item(item))

    async def _item(self, lookup: PayoutLookup) -> Item:
        async with self.books("item") as book:
            item = (await book.items(self.name, [lookup.idempotency_key])).get(lookup.idempotency_key)
        if item is None:
            raise self._refuse(C.PAYOUT_NOT_FOUND, "no batch ever carried this payout (creating it is safe)")
        if item.payout_id != lookup.payout_id or (
            lookup.amount is not None and (lookup.amount.asset, lookup.amount.amount) != (item.asset, item.amount)
        ):
            raise self._refuse(C.DUPLICATE_REQUEST, "this idempotency key was sent for another payout")
        return item

    async def _paypal_item(self, item: Item) -> Mapping[str, Any]:
        """PayPal's item of our payout: by its id once known, else found in its batch (asked again if never
        answered)."""
        if item.payout_item_id is not None:
            return await self.http.call("GET", f"/v1/payments/payouts-item/{item.payout_item_id}", mutating=False)
        async for found in self.http.batch_items(await self._batch_id(item)):
            inner = found.get("payout_item")
            if isinstance(inner, dict) and inner.get("sender_item_id") == item.idempotency_key:
                return found
        raise self._refuse(C.PROVIDER_UNAVAILABLE, "PayPal's batch does not list this payout's item (yet)")

    async def _batch_id(self, item: Item) -> str:
        async with self.books("batch") as book:
            batch = await book.batch(self.name, item.sender_batch_id)
        if batch is None:
            raise self._refuse(C.PAYOUT_NOT_FOUND, "no batch ever carried this payout (creating it is safe)")
        if batch.payout_batch_id is not None:
            return batch.payout_batch_id
        try:  # sent without an answer (or never): the very request again, under its id
            doc = await self.http.call(
                "POST", "/v1/payments/payouts", body=dict(batch.body), request_id=batch.sender_batch_id, mutating=True
            )
        except PayoutProviderError as err:
            # Asked again, an answer speaks of this request only, never of the first send, which may have made the
            # batch: only PayPal reading the very body and refusing it (as it did, or would have, the first time)
            # lets the batch be forgotten. Anything else (an outage, our credentials, a redirect, funds, a 404)
            # leaves the outcome unknown.
            name = (err.error.provider_code or "").partition(":")[2]
            if name in BODY_REFUSED:
                async with self.books("forget") as book:
                    await book.refused(self.name, batch.sender_batch_id)
                raise self._refuse(C.PAYOUT_NOT_FOUND, f"PayPal refused the batch as sent ({name})") from None
            if name in _ALREADY_USED:
                log.error(
                    "paypal: a batch exists at PayPal whose answer was lost and is no longer replayed; "
                    "an operator settles its payouts from PayPal's records"
                )
                raise self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "the batch's answer is lost at PayPal") from None
            if err.retryable:
                raise
            raise self._refuse(
                C.TIMEOUT_UNKNOWN_OUTCOME, f"the batch may exist; asking PayPal again failed ({err.code.value})"
            ) from None
        try:
            payout_batch_id = wire.read_batch(doc).payout_batch_id
        except ValueError:
            raise self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "the answer names no batch") from None
        async with self.books("answered") as book:
            kept = await book.answered(self.name, batch.sender_batch_id, payout_batch_id)
        if not kept:
            log.error("paypal: a batch of ours was answered with another PayPal batch than the one recorded")
            raise self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "PayPal answered another batch")
        return payout_batch_id

    async def _read(self, item: Item, found: Mapping[str, Any]) -> ProviderPayoutResult:
        """The payout's result from PayPal's item; its ids kept in the books the first time (the statement's lines
        and the next sync name them)."""
        read = self._item_of(item, found)
        if item.payout_item_id is None or (item.transaction_id is None and read.transaction_id is not None):
            async with self.books("seen") as book:
                await book.seen(self.name, item.idempotency_key, read.payout_item_id, read.transaction_id)
        return self._result(item, read)

    def _item_of(self, item: Item, found: Mapping[str, Any]) -> wire.PayoutItem:
        try:
            read = wire.read_item(found)
        except (KeyError, TypeError, ValueError):
            raise self._refuse(C.PROVIDER_UNAVAILABLE, "PayPal's item could not be read") from None
        if read.sender_item_id != item.idempotency_key:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, "PayPal answered another item")
        return read

    def _result(self, item: Item, read: wire.PayoutItem) -> ProviderPayoutResult:
        key, ref, raw = item.idempotency_key, read.payout_item_id, read.state
        if (read.currency, read.amount) != (item.asset, item.amount):
            log.error("paypal: the item under a payout's key pays another amount; it is never taken for the payout")
            error = self._error(C.DUPLICATE_REQUEST, "PayPal's item under this key pays another amount")
            return ProviderPayoutResult(status=P.FAILED, idempotency_key=key, error=error, raw_status=raw)
        status = read.status
        if status is None:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, f"an item state this rail does not know ({read.state})")
        if status is P.FAILED:
            why = f"item {read.state}" + (f" ({read.error_name})" if read.error_name else "")
            error = self._error(wire.failure_code(read.state, read.error_name), why)
            return ProviderPayoutResult(
                status=P.FAILED, idempotency_key=key, provider_ref=ref, error=error, raw_status=raw
            )
        fee = None
        if status is P.PAID and read.fee and read.fee_currency is not None:
            fee = Money(asset=read.fee_currency, amount=read.fee)
        return ProviderPayoutResult(status=status, idempotency_key=key, provider_ref=ref, fee=fee, raw_status=raw)

    # -- cancel -----------------------------------------------------------------------------------------------------
    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        """An unclaimed item only: PayPal gives the money back (the item is then RETURNED)."""
        item = await self._item(lookup)
        found = self._item_of(item, await self._paypal_item(item))
        if found.state != UNCLAIMED:
            raise self._refuse(C.NOT_CANCELLABLE, f"only an unclaimed item is cancelled, not {found.state}")
        path = f"/v1/payments/payouts-item/{found.payout_item_id}/cancel"
        after = self._item_of(item, await self.http.call("POST", path, mutating=True))
        if after.state not in CANCELLED_STATES:
            raise self._refuse(C.NOT_CANCELLABLE, f"the item is {after.state}")
        return ProviderPayoutResult(
            status=P.CANCELLED,
            idempotency_key=item.idempotency_key,
            provider_ref=found.payout_item_id,
            raw_status=after.state,
        )

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """PayPal's signature checked offline under the pinned certificate and webhook id (`prizeflow_contracts.rails.
        paypal`, as the ingress checks it), then the event read as the ingress reads it (unconfirmed: the ingress
        fetches the item back before it publishes; this reading serves the provider's own checks)."""
        if not self._keys.webhook:
            raise self._refuse(C.WEBHOOK_SIGNATURE_INVALID, "no webhook id and certificate are configured")
        now = time.time()
        try:
            verify_paypal_signature(headers, body, secrets=self._keys.webhook, now=now, tolerance_s=WEBHOOK_TOLERANCE_S)
        except SignatureRefused as err:
            raise self._refuse(C.WEBHOOK_SIGNATURE_INVALID, err.reason.value) from None
        digest = hashlib.sha256(body).hexdigest()
        try:
            read = normalize(
                json.loads(body),
                provider=self.provider_type,
                digest=digest,
                received_at=datetime.fromtimestamp(now, UTC),
            )
        except (NormalizationError, ValueError, TypeError) as err:
            raise self._refuse(C.INVALID_REQUEST, f"malformed event ({type(err).__name__})") from None
        event = read.event
        if not isinstance(event, ProviderEventReceived):
            return WebhookEvent(
                provider=self.provider_type,
                provider_event_id=read.provider_event_id,
                kind=read.kind,
                verified=True,
                payload_digest=digest,
            )
        return WebhookEvent(
            provider=self.provider_type,
            provider_event_id=event.provider_event_id,
            kind=event.kind,
            verified=True,
            provider_payout_ref=event.provider_payout_ref,
            idempotency_key=event.idempotency_key,
            status=event.status,
            error=self._error(event.error_code, event.kind) if event.error_code is not None else None,
            fee=event.fee,
            payload_digest=digest,
        )

    # -- statement (the `statement` part) ---------------------------------------------------------------------------
    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """What PayPal's Transaction Search lists in [since, until), a page per cursor (`statement.py`)."""
        return await self.statements.statement(since, until, cursor)


def recipient_of(address: str) -> wire.RecipientType | None:
    """How PayPal is told the destination's address: an email, a phone number (E.164, `+` first) or a payer id."""
    kind = (
        wire.RecipientType.EMAIL
        if "@" in address
        else wire.RecipientType.PHONE
        if address.startswith("+")
        else wire.RecipientType.PAYPAL_ID
    )
    try:
        wire.check_receiver(kind, address)
    except ValueError:
        return None
    return kind


__all__ = ["PayPalPayoutProvider", "recipient_of"]
