"""`GiftCardPayoutProvider`: pays by ordering one gift card (a Tremendous-shaped REST API v2) for the player's
email address, over `httpx` (async: the event loop is never blocked).

- create: `POST /orders` with `external_id` = our payout id. The provider answers a known external id with its
  first order, so a retry after a lost answer pays once; the order answered is checked against the instruction
  (amount, currency, recipient) and one that differs is `duplicate_request`, never a payment. A 409 (an order
  exists under the id with other parameters) or an answer that cannot be read is an unknown outcome: the sync
  reads the order.
- status: `GET /orders/{ref}` once the order's reference is known, else `GET /orders?external_id=<payout id>`;
  `payout_not_found` only when the provider has none. The order found is checked against the payout (external
  id, and amount and recipient when the lookup carries them): another order is `duplicate_request`, never paid.
  Paid once the card is delivered (`EXECUTED` + delivery `SUCCEEDED`); pending while scheduled or awaiting
  approval. A bounced card is cancelled first (value refunded); a cancel refused for good re-reads the order.
- cancel: an order awaiting approval is rejected (`POST /order_approvals/{id}/reject`); afterwards the card
  exists and is `not_cancellable`.
- statement (the `statement` part): `GET /orders` by `created_at`, paged by offset; an order's card, fee and refund are
  lines under our payout id (`external_id`) and the order id (`statement.py`).
- webhooks: the signature is checked first; the event names a resource only, which is fetched back, and its
  status is published only when the resource agrees.

Cards are emailed by the provider (`delivery: link` is refused at start-up: nothing hands a link to the player).
Any `delivery.link` in an answer (the card itself) is removed as soon as it is parsed: it is never returned,
stored nor logged. Neither is the recipient's address logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import httpx

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.giftcard import event_status, failure_code, order_fees, order_status, verify_giftcard_signature
from prizeflow_contracts.money import ASSETS, Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    Quote,
    StatementPage,
    WebhookEvent,
)
from prizeflow_contracts.webhook_signatures import SignatureRefused
from prizeflow_payouts.adapters.giftcard.classify import GiftCardErrors, HttpRefusalError
from prizeflow_payouts.adapters.giftcard.options import API_PATH, GiftCardOptions
from prizeflow_payouts.adapters.giftcard.statement import instant, lines_of

log = logging.getLogger(__name__)
P = ProviderPayoutStatus
C = PayoutErrorCode

# Deliberately simple (the provider validates too): one @, a dotted domain, no spaces or controls, <= 254 chars.
EMAIL_RE: Final = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")
MAX_EMAIL: Final = 254
RESOURCE_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # an id that goes into a URL path
STATEMENT_PAGE: Final = 100  # orders per statement page (the provider's maximum)
_OFFSET_RE: Final = re.compile(r"^[0-9]{1,12}$")  # a statement cursor: the provider's `offset`


def decimal_amount(money: Money) -> Decimal:
    """Minor units as the provider's decimal denomination (USD 2510 -> 25.10)."""
    return Decimal(money.amount).scaleb(-ASSETS[money.asset].scale)


def json_number(value: Decimal) -> float:
    """A float whose JSON text is exactly `value` (shortest repr round-trips for amounts of <= 15 digits)."""
    as_float = float(value)
    if Decimal(repr(as_float)) != value:
        raise ValueError("amount not representable exactly as a JSON number")
    return as_float


def redact(doc: Any) -> Any:
    """The answer without any reward's `delivery.link` (the card itself), wherever rewards appear."""
    if isinstance(doc, dict):
        return {k: redact(v) for k, v in doc.items() if k != "link"}
    if isinstance(doc, list):
        return [redact(v) for v in doc]
    return doc


class GiftCardPayoutProvider:
    """A gift-card rail. Holds the API key and webhook keys; never logs them, the recipient, nor a card."""

    # sync_status reads the vendor's orders (by reference, else our external id): `finds_payouts_at_provider`.

    def __init__(
        self,
        options: GiftCardOptions,
        *,
        api_key: str,
        webhook_keys: tuple[str, ...] = (),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = options
        self.errors = GiftCardErrors(options.name)
        self.provider_type = options.provider_type
        self._api_key = api_key
        self.webhook_keys = webhook_keys
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self.statement_page_size = STATEMENT_PAGE

    @property
    def name(self) -> str:
        return self.options.name

    def __repr__(self) -> str:
        return f"GiftCardPayoutProvider(name={self.name!r}, delivery={self.options.delivery.value!r})"

    # -- lifecycle (the `engine` part) ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Nothing to open: the client is created on the first call, inside the running loop."""

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.options.api_base + API_PATH + "/",
                headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
                timeout=self.options.timeout_s,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    # -- validation (the `validator` part) ---------------------------------------------------------------------------
    def validate(self, instruction: PayoutInstruction) -> PayoutError | None:
        """Refuse what could never be a gift card, before anything is created."""
        dest = instruction.destination
        if dest.type is not DestinationType.EMAIL:
            return self._error(C.INVALID_DESTINATION, f"gift cards go to email destinations, not {dest.type.value}")
        if len(dest.address) > MAX_EMAIL or not EMAIL_RE.fullmatch(dest.address):
            return self._error(C.INVALID_DESTINATION, "the destination is not an email address")
        if instruction.amount.asset not in self.options.products:
            return self._error(C.UNSUPPORTED_ASSET, f"provider {self.name} does not pay {instruction.amount.asset}")
        try:
            json_number(decimal_amount(instruction.amount))
        except ValueError:
            return self._error(C.AMOUNT_ABOVE_MAXIMUM, "the amount has too many digits for a gift card")
        return None

    def _error(self, code: PayoutErrorCode, message: str) -> PayoutError:
        return PayoutError.of(code, f"gift_card: {message}", provider=self.name)

    def _refuse(self, code: PayoutErrorCode, message: str) -> PayoutProviderError:
        return PayoutProviderError(self._error(code, message))

    # -- quote --------------------------------------------------------------------------------------------------
    async def quote(self, instruction: PayoutInstruction) -> Quote:
        """The card's face value is the amount; the provider's fee is billed to the funding source, not the player."""
        if (error := self.validate(instruction)) is not None:
            raise PayoutProviderError(error)
        amount = instruction.amount
        return Quote(amount=amount, fee=Money(asset=amount.asset, amount=0), receive_amount=amount)

    # -- create -------------------------------------------------------------------------------------------------
    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        key = instruction.idempotency_key
        if (error := self.validate(instruction)) is not None:
            return self._failed(key, None, error, "refused")
        amount = instruction.amount
        body = {
            "external_id": instruction.payout_id,
            "payment": {"funding_source_id": self.options.funding_source_id},
            "reward": {
                "value": {"denomination": json_number(decimal_amount(amount)), "currency_code": amount.asset},
                "delivery": {"method": self.options.delivery.method},
                "recipient": {"name": self.options.recipient_name, "email": instruction.destination.address},
                "products": list(self.options.products[amount.asset]),
            },
        }
        try:
            doc = await self._call("POST", "orders", body=body, mutating=True)
        except PayoutProviderError as err:
            if err.code is not C.DUPLICATE_REQUEST:
                raise
            # 409: an order exists under our external id (asked for before with other parameters: the providers
            # file changed since). Ours or another's, delivered or not, only reading it tells: the sync does.
            raise self._refuse(
                C.TIMEOUT_UNKNOWN_OUTCOME, "an order exists under this payout's id; its outcome is read by the sync"
            ) from None
        try:
            order = _object(doc, "order")
            if order.get("external_id") == instruction.payout_id and not _reward(order):
                raise self._refuse(C.PROVIDER_UNAVAILABLE, "the answer's order carries no reward")
            if not _matches(order, instruction.payout_id, instruction.amount, instruction.destination):
                # Our payout id already names another order at the provider: this payout is never made under it.
                return self._conflict(key, order)
            return await self._settled(key, order)
        except PayoutProviderError as err:
            # Answered 2xx: the order exists. Whatever kept us from reading its outcome (an answer without an order,
            # a status we do not know, a bounced card's cancel not made yet), it is unknown, never a known failure:
            # that would let the payout fail for good (or be cancelled locally) while the card is delivered. The
            # sync reads the order by our external id.
            raise self._refuse(
                C.TIMEOUT_UNKNOWN_OUTCOME, f"the order was placed; its outcome could not be read ({err.code.value})"
            ) from None

    # -- sync ---------------------------------------------------------------------------------------------------
    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        order = await self._find(lookup)
        if order is None:
            raise self._refuse(C.PAYOUT_NOT_FOUND, "no order under this payout's id (ordering again is safe)")
        if not _matches(order, lookup.payout_id, lookup.amount, lookup.destination):
            # Another order under our id (a second environment on one account, a restored database): it says
            # nothing about this payout, which is never reported paid from it, and it is never cancelled.
            return self._conflict(lookup.idempotency_key, order)
        return await self._settled(lookup.idempotency_key, order)

    async def _find(self, lookup: PayoutLookup) -> dict[str, Any] | None:
        """The payout's order: by its reference once known (the very order created), else by our external id
        (the first one, should there be several)."""
        if lookup.provider_ref is not None and RESOURCE_ID_RE.fullmatch(lookup.provider_ref):
            try:
                return _object(await self._call("GET", f"orders/{lookup.provider_ref}", mutating=False), "order")
            except PayoutProviderError as err:
                if err.code is not C.INVALID_REQUEST:  # 404: not on this account; the external id decides
                    raise
                log.warning("gift_card: the payout's order reference is unknown to the provider")
        doc = await self._call("GET", "orders", params={"external_id": lookup.payout_id}, mutating=False)
        orders = [
            o for o in doc.get("orders") or [] if isinstance(o, dict) and o.get("external_id") == lookup.payout_id
        ]
        if len(orders) > 1:
            log.error("gift_card: %d orders carry one payout's external id", len(orders))
        return min(orders, key=lambda o: str(o.get("created_at") or "")) if orders else None

    # -- cancel -------------------------------------------------------------------------------------------------
    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        order = await self._find(lookup)
        if order is None:
            raise self._refuse(C.PAYOUT_NOT_FOUND, "no order under this payout's id")
        if not _matches(order, lookup.payout_id, lookup.amount, lookup.destination):
            log.error("gift_card: the provider's order under a payout's external id differs from the payout")
            raise self._refuse(C.DUPLICATE_REQUEST, "the external id names another order at the provider")
        result = await self._settled(lookup.idempotency_key, order)
        if result.status is P.CANCELLED:
            return result
        if order.get("status") != "PENDING APPROVAL":
            raise self._refuse(C.NOT_CANCELLABLE, f"the order is {result.status.value}: the card exists")
        doc = await self._call("POST", f"order_approvals/{order['id']}/reject", body={}, mutating=True)
        result = self._result(lookup.idempotency_key, _object(doc, "order"))
        if result.status is not P.CANCELLED:
            raise self._refuse(C.NOT_CANCELLABLE, f"the order is {result.status.value}")
        return result

    # -- results ------------------------------------------------------------------------------------------------
    async def _settled(self, key: str, order: Mapping[str, Any]) -> ProviderPayoutResult:
        """The order's result; a card that could not be delivered (the email bounced) is cancelled at the provider
        first, so its value goes back to the funding source before the payout is reported failed. Until that
        succeeds the failure is not reported (a retryable error: the sync asks again).

        A cancel refused for good (422: redelivered, redeemed, already cancelled; 401: our key) proves nothing
        by itself: the order is read again and decides. Delivered since -> paid (the player has the card);
        cancelled -> failed (the value is back); anything else stays pending, logged for an operator, because
        failing it would void the reservation while the card may be in the player's hands."""
        if order.get("status") == "EXECUTED" and _delivery(order) == "FAILED":
            reward_id = str(_reward(order).get("id") or "")
            try:
                await self._call("POST", f"rewards/{reward_id}/cancel", body={}, mutating=True)
            except PayoutProviderError as err:
                if err.retryable:
                    log.warning("gift_card: could not cancel an undelivered card yet (%s); will retry", err.code.value)
                    raise
                log.warning("gift_card: the provider refused to cancel an undelivered card (%s)", err.code.value)
                return await self._after_refused_cancel(key, order, err)
        return self._result(key, order)

    async def _after_refused_cancel(
        self, key: str, before: Mapping[str, Any], refused: PayoutProviderError
    ) -> ProviderPayoutResult:
        order = _object(await self._call("GET", f"orders/{before['id']}", mutating=False), "order")
        raw_order, delivery = str(order.get("status") or ""), _delivery(order)
        ref = str(order["id"])
        if raw_order == "EXECUTED" and (delivery == "SUCCEEDED" or _redeemed(order)):
            # Redelivered or redeemed meanwhile: the card is in someone's hands the payout sent it to.
            raw = f"{raw_order}/{delivery or '-'}{'/redeemed' if _redeemed(order) else ''}"[:128]
            return ProviderPayoutResult(
                status=P.PAID, idempotency_key=key, provider_ref=ref, fee=self._fee(order), raw_status=raw
            )
        if raw_order == "CANCELED" or delivery == "CANCELED":
            return self._result(key, before)  # the bounced card's value is back: the payout failed
        log.error(
            "gift_card: an undelivered card could not be cancelled (%s) and is neither delivered nor cancelled; "
            "the payout stays pending until an operator settles it (docs/runbooks/gift-card-rail.md)",
            refused.code.value,
        )
        raw = f"{raw_order}/{delivery or '-'}/cancel_refused"[:128]
        return ProviderPayoutResult(status=P.PENDING, idempotency_key=key, provider_ref=ref, raw_status=raw)

    def _result(self, key: str, order: Mapping[str, Any]) -> ProviderPayoutResult:
        raw_order = str(order.get("status") or "")
        delivery = _delivery(order)
        status = order_status(raw_order, delivery)
        raw = f"{raw_order}/{delivery or '-'}"[:128]
        ref = str(order["id"])
        if status is None:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, f"unknown order status {raw[:60]!r}")
        if status is P.FAILED:
            code = failure_code(raw_order)
            return self._failed(key, ref, self._error(code, f"order {raw}"), raw)
        fee = self._fee(order) if status is P.PAID else None
        return ProviderPayoutResult(status=status, idempotency_key=key, provider_ref=ref, fee=fee, raw_status=raw)

    def _fee(self, order: Mapping[str, Any]) -> Money:
        """What the provider charged on the order (`payment.fees`, billed to the funding source), as its statement
        lists it and the webhook ingress reads it (prizeflow_contracts.giftcard.order_fees)."""
        asset = self._asset(order)
        try:
            return Money(asset=asset, amount=order_fees(order, asset))
        except ValueError:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, "the order's fee is not an amount of its currency") from None

    def _conflict(self, key: str, order: Mapping[str, Any]) -> ProviderPayoutResult:
        """`duplicate_request` for another order under our external id. Its id is not made the payout's reference
        (its events must never be read as this payout's); support finds it in `raw_status`."""
        log.error("gift_card: the provider's order under a payout's external id differs from the payout")
        other = str(order.get("id") or "")
        raw = f"external_id_conflict/{other}" if RESOURCE_ID_RE.fullmatch(other) else "external_id_conflict"
        error = self._error(C.DUPLICATE_REQUEST, "the external id names another order at the provider")
        return self._failed(key, None, error, raw)

    def _failed(self, key: str, ref: str | None, error: PayoutError, raw: str) -> ProviderPayoutResult:
        return ProviderPayoutResult(status=P.FAILED, idempotency_key=key, provider_ref=ref, error=error, raw_status=raw)

    def _asset(self, order: Mapping[str, Any]) -> str:
        currency = str((_reward(order).get("value") or {}).get("currency_code") or "")
        return currency if currency in self.options.products else self.options.assets[0]

    # -- statement (the `statement` part) -----------------------------------------------------------------------------
    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """The orders created in [since, until) as statement lines (see `statement.py`), newest first as the
        provider lists them. `cursor` is the provider's `offset` into that listing. Offsets are stable while no
        order is created or removed inside the window, which holds for a window that has closed: the only kind
        a scheduled run asks for."""
        if until <= since:
            return StatementPage(lines=())
        if cursor is not None and not _OFFSET_RE.fullmatch(cursor):
            raise self._refuse(C.INVALID_REQUEST, "a statement cursor is an offset into the orders listing")
        offset = int(cursor or 0)
        params = {
            "created_at[gte]": instant(since),
            "created_at[lte]": instant(until),  # inclusive at the provider: an order at `until` is dropped below
            "offset": str(offset),
            "limit": str(self.statement_page_size),
        }
        doc = await self._call("GET", "orders", params=params, mutating=False)
        orders = [o for o in doc.get("orders") or [] if isinstance(o, dict)]
        try:
            lines = tuple(line for order in orders for line in lines_of(order, since, until))
            total = int(doc.get("total_count") or 0)
        except (KeyError, TypeError, ValueError) as err:
            raise self._refuse(
                C.PROVIDER_UNAVAILABLE, f"malformed order in the listing ({type(err).__name__})"
            ) from None
        following = offset + len(orders)
        return StatementPage(lines=lines, next_cursor=str(following) if orders and following < total else None)

    # -- webhooks -----------------------------------------------------------------------------------------------
    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify the signature with the configured webhook key(s), then read the status from the order fetched
        back (the delivery names a resource only, and carries no timestamp: a replay says nothing new)."""
        try:
            verify_giftcard_signature(headers, body, keys=self.webhook_keys)
        except SignatureRefused as err:
            raise self._refuse(C.WEBHOOK_SIGNATURE_INVALID, err.reason.value) from None
        try:
            doc = json.loads(body)
            kind, event_id = str(doc["event"]), str(doc["uuid"])
            resource = doc["payload"]["resource"]
            rid, rtype = str(resource["id"]), str(resource["type"])
        except (KeyError, TypeError, ValueError) as err:
            raise self._refuse(C.INVALID_REQUEST, f"malformed event ({type(err).__name__})") from None
        order = await self._order_of(rid, rtype)
        raw_order = str(order.get("status") or "")
        status = event_status(kind, order_status(raw_order, _delivery(order)))
        error = self._error(failure_code(raw_order), f"order {raw_order}") if status is P.FAILED else None
        return WebhookEvent(
            provider=self.provider_type,
            provider_event_id=event_id,
            kind=kind,
            verified=True,
            provider_payout_ref=str(order["id"]),
            status=status,
            error=error,
            payload_digest=hashlib.sha256(body).hexdigest(),
        )

    async def _order_of(self, rid: str, rtype: str) -> dict[str, Any]:
        if not RESOURCE_ID_RE.fullmatch(rid):
            raise self._refuse(C.INVALID_REQUEST, "an event about a malformed resource id")
        if rtype == "rewards":
            reward = _object(await self._call("GET", f"rewards/{rid}", mutating=False), "reward")
            rid = str(reward.get("order_id") or "")
            if not RESOURCE_ID_RE.fullmatch(rid):
                raise self._refuse(C.PROVIDER_UNAVAILABLE, "the reward names no order")
        elif rtype != "orders":
            raise self._refuse(C.INVALID_REQUEST, f"an event about {rtype[:20]!r}")
        return _object(await self._call("GET", f"orders/{rid}", mutating=False), "order")

    # -- the one place the provider is called -------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        *,
        mutating: bool,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One API call; every failure becomes a `PayoutProviderError` with a stable code. The answer is parsed
        with decimal numbers and redacted (no card link) before anything else sees it."""
        try:
            resp = await self._client().request(
                method,
                path,
                content=json.dumps(body).encode() if body is not None else None,
                params=params,
                headers={"Content-Type": "application/json"} if body is not None else None,
            )
            content = resp.content
        except httpx.HTTPError as err:
            raise PayoutProviderError(self.errors.classify(err, mutating=mutating)) from None
        try:
            doc = redact(json.loads(content, parse_float=Decimal)) if content else {}
        except ValueError:
            doc = {}
        if resp.status_code >= 300:
            refusal = HttpRefusalError(resp.status_code, doc)
            raise PayoutProviderError(self.errors.classify(refusal, mutating=mutating)) from None
        if not isinstance(doc, dict):
            code = C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
            raise self._refuse(code, "the answer is not a JSON object")
        return doc


def _object(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    obj = doc.get(name)
    if not isinstance(obj, dict) or not obj.get("id"):
        raise PayoutProviderError.of(C.PROVIDER_UNAVAILABLE, f"gift_card: the answer has no {name}")
    return obj


def _reward(order: Mapping[str, Any]) -> Mapping[str, Any]:
    rewards = order.get("rewards") or []
    return rewards[0] if rewards and isinstance(rewards[0], Mapping) else {}


def _delivery(order: Mapping[str, Any]) -> str | None:
    delivery = _reward(order).get("delivery") or {}
    status = delivery.get("status") if isinstance(delivery, Mapping) else None
    return str(status) if status is not None else None


def _redeemed(order: Mapping[str, Any]) -> bool:
    """Whether the order's card has been redeemed (the player, or whoever holds it, spent it)."""
    redemption = _reward(order).get("redemption")
    return isinstance(redemption, Mapping) and redemption.get("status") == "REDEEMED"


def _matches(
    order: Mapping[str, Any], payout_id: str, amount: Money | None, destination: PayoutDestination | None
) -> bool:
    """Whether an order the provider answered is this payout's: same external id and, when known, the same value
    and recipient."""
    if order.get("external_id") != payout_id:
        return False
    reward = _reward(order)
    value = reward.get("value") or {}
    recipient = reward.get("recipient") or {}
    if amount is not None:
        try:
            same_value = Decimal(str(value.get("denomination"))) == decimal_amount(amount)
        except ArithmeticError:
            return False
        if not same_value or value.get("currency_code") != amount.asset:
            return False
    return destination is None or str(recipient.get("email") or "").lower() == destination.address.lower()


__all__ = ["EMAIL_RE", "GiftCardPayoutProvider", "decimal_amount", "json_number", "redact"]
