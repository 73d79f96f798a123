"""The emulator's books, without I/O: products, orders and their rewards, the funding balance, recipients steered
by tests, and the webhook events each change emits. Amounts are `Decimal` (the API's JSON numbers are parsed
so), never floats. Every method is synchronous and runs on the event loop: no locks needed.

Statuses follow Tremendous' documentation: an order is `EXECUTED`, `PENDING APPROVAL`, `CANCELED` or `FAILED`;
a reward's `delivery.status` is `SCHEDULED`, `PENDING`, `SUCCEEDED` or `FAILED` (`CANCELED` once its order is
rejected).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

EXECUTED: Final = "EXECUTED"
PENDING_APPROVAL: Final = "PENDING APPROVAL"
CANCELED: Final = "CANCELED"
FAILED: Final = "FAILED"
METHODS: Final = ("EMAIL", "LINK")
_EMAIL_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.!#$%&'*+/=?^_`{|}~-@")


class Outcome(StrEnum):
    """What the emulator does with the next order to a steered recipient (`/_emulator/recipients`)."""

    DELIVER = "deliver"  # executed, delivered (after the configured delay)
    APPROVAL = "approval"  # waits in PENDING APPROVAL until approved or rejected
    DELIVERY_FAILED = "delivery_failed"  # executed, the email bounces: delivery FAILED
    INVALID_EMAIL = "invalid_email"  # refused at creation: 422 on recipient.email
    ORDER_FAILED = "order_failed"  # created FAILED (the provider's own processing error)


class ApiError(Exception):
    """An API refusal in Tremendous' shape: `{"errors": {"message": ..., "payload": {...}}}`."""

    def __init__(self, status: int, message: str, payload: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.payload = dict(payload or {})

    def to_json(self) -> dict[str, Any]:
        return {"errors": {"message": self.message, "payload": self.payload}}


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    currency: str
    min: Decimal
    max: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "category": "merchant_card",
            "currency_codes": [self.currency],
            "skus": [{"min": self.min, "max": self.max}],
            "countries": [{"abbr": "US"}],
        }


DEFAULT_PRODUCTS: Final = (
    Product("OKMHM2X2OHYV", "Amazon.com Gift Card", "USD", Decimal(1), Decimal(2000)),
    Product("KV934TZ93NQM", "Visa Virtual Card", "USD", Decimal(5), Decimal(500)),
    Product("ET0ZVETV5ILN", "Flipkart Gift Card", "INR", Decimal(100), Decimal(10000)),
)


@dataclass
class Reward:
    id: str
    order_id: str
    created_at: str
    denomination: Decimal
    currency: str
    method: str
    recipient_name: str
    recipient_email: str | None
    products: list[str]
    delivery_status: str
    link: str  # the redemption link: the card itself. Shown only for LINK rewards, as Tremendous does.
    deliver_at: float | None = None
    # Shown for an EMAIL reward too (Store.links_for_email): an answer carrying more than documented, so tests
    # prove a client drops any link it is given.
    link_shown: bool = False
    # Spent by whoever holds it (an operator's lever). The emulator's own model: answers carry
    # `redemption: {status: REDEEMED}` and such a reward can no longer be cancelled.
    redeemed: bool = False

    def to_json(self) -> dict[str, Any]:
        delivery: dict[str, Any] = {"method": self.method, "status": self.delivery_status}
        if (self.method == "LINK" or self.link_shown) and self.delivery_status in ("SUCCEEDED", "PENDING"):
            delivery["link"] = self.link
        recipient: dict[str, Any] = {"name": self.recipient_name}
        if self.recipient_email is not None:
            recipient["email"] = self.recipient_email
        return {
            "id": self.id,
            "order_id": self.order_id,
            "created_at": self.created_at,
            "value": {"denomination": self.denomination, "currency_code": self.currency},
            "delivery": delivery,
            "recipient": recipient,
            **({"redemption": {"status": "REDEEMED"}} if self.redeemed else {}),
        }


@dataclass
class Order:
    id: str
    external_id: str | None
    created_at: str
    status: str
    funding_source_id: str
    reward: Reward
    digest: str  # of the request body, to tell a retry from a conflicting order under the same external_id
    fees: Decimal = Decimal(0)  # charged to the funding source on top of the card's value
    refunded: Decimal = Decimal(0)  # given back to the funding source (a cancelled card)

    def to_json(self) -> dict[str, Any]:
        value = self.reward.denomination
        money = {"currency_code": self.reward.currency}
        payment: dict[str, Any] = {
            "subtotal": {**money, "value": value},
            "total": {**money, "value": value + self.fees},
            "fees": {**money, "value": self.fees},
        }
        if self.refunded:
            payment["refund"] = {**money, "total": self.refunded}
        return {
            "id": self.id,
            "external_id": self.external_id,
            "created_at": self.created_at,
            "status": self.status,
            "payment": payment,
            "rewards": [self.reward.to_json()],
        }


@dataclass
class Event:
    uuid: str
    event: str
    resource_id: str
    resource_type: str
    created_utc: str
    order_id: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "uuid": self.uuid,
            "created_utc": self.created_utc,
            "payload": {"resource": {"id": self.resource_id, "type": self.resource_type}, "meta": self.meta},
        }


def _id() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _valid_email(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return (
        bool(at and local and "." in domain)
        and len(value) <= 254
        and all(c in _EMAIL_CHARS for c in value)
        and value.count("@") == 1
        and not domain.startswith(".")
        and not domain.endswith(".")
    )


# Decimal places of the currencies the catalogue sells (minor units in admin calls).
CURRENCY_SCALES: Final = {"USD": 2, "INR": 2}


def _units(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-CURRENCY_SCALES.get(currency, 2))


def _parse_instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _instant(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        return _parse_instant(value)
    except ValueError:
        raise ApiError(400, "Validation failed", {name: ["must be an ISO 8601 datetime"]}) from None


def _count(query: Mapping[str, str], name: str, default: int, maximum: int | None) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not value.isdigit() or (maximum is not None and not 0 < int(value) <= maximum):
        bound = f"between 1 and {maximum}" if maximum is not None else "a non-negative integer"
        raise ApiError(400, "Validation failed", {name: [f"must be {bound}"]})
    return int(value)


@dataclass
class Store:
    balances: dict[str, Decimal]
    products: dict[str, Product] = field(default_factory=lambda: {p.id: p for p in DEFAULT_PRODUCTS})
    external_id_conflict: str = "replay"
    delivery_delay_ms: int = 0
    approvals_required: bool = False
    links_for_email: bool = False  # answers show an EMAIL reward's link too (see Reward.link_shown)
    base_url: str = "http://127.0.0.1"
    orders: dict[str, Order] = field(default_factory=dict)
    by_external: dict[str, str] = field(default_factory=dict)
    rewards: dict[str, Reward] = field(default_factory=dict)
    recipients: dict[str, Outcome] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    created: int = 0  # orders created (replays and refusals excluded): "paid once" is read here
    listener: Callable[[Event], None] | None = None  # told of every event (the webhook deliverer)

    # -- the API -------------------------------------------------------------------------------------------------
    def create_order(self, body: Any) -> tuple[int, Order]:
        """201 and the order; a known `external_id` answers its first order (or 409, setting `reject`)."""
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object")
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        external_id = body.get("external_id")
        if external_id is not None and (not isinstance(external_id, str) or not 0 < len(external_id) <= 128):
            raise ApiError(400, "Validation failed", {"external_id": ["must be a string of at most 128 characters"]})
        if external_id is not None and external_id in self.by_external:
            order = self.orders[self.by_external[external_id]]
            if order.digest != digest and self.external_id_conflict == "reject":
                raise ApiError(409, "An order with this external_id exists with different parameters")
            return 201, order
        funding, reward = self._parse(body)
        steer = self.recipients.get((reward.recipient_email or "").lower(), Outcome.DELIVER)
        if steer is Outcome.INVALID_EMAIL:
            raise ApiError(422, "Validation failed", {"reward": {"recipient": {"email": ["is invalid"]}}})
        held = steer is Outcome.APPROVAL or self.approvals_required
        if not held and steer is not Outcome.ORDER_FAILED:
            self._charge(reward)
        order_id = _id()
        reward.order_id = order_id
        order = Order(order_id, external_id, _now_iso(), EXECUTED, funding, reward, digest)
        self.orders[order_id] = order
        self.rewards[reward.id] = reward
        if external_id is not None:
            self.by_external[external_id] = order_id
        self.created += 1
        self._emit("ORDERS.CREATED", order_id, "orders", order_id)
        if steer is Outcome.ORDER_FAILED:
            order.status, reward.delivery_status = FAILED, "FAILED"
            self._emit("ORDERS.FAILED", order_id, "orders", order_id)
        elif held:
            order.status, reward.delivery_status = PENDING_APPROVAL, "PENDING"
        else:
            self._execute(order, failed=steer is Outcome.DELIVERY_FAILED)
        return 201, order

    def _parse(self, body: Mapping[str, Any]) -> tuple[str, Reward]:  # noqa: PLR0912 - one check per field
        payment = body.get("payment")
        funding = payment.get("funding_source_id") if isinstance(payment, dict) else None
        if funding not in ("balance", "BALANCE"):
            raise ApiError(400, "Validation failed", {"payment": {"funding_source_id": ["is not a funding source"]}})
        reward = body.get("reward")
        if not isinstance(reward, dict):
            raise ApiError(400, "Validation failed", {"reward": ["is required"]})
        value = reward.get("value") or {}
        denomination, currency = value.get("denomination"), value.get("currency_code")
        if not isinstance(denomination, Decimal | int) or isinstance(denomination, bool):
            raise ApiError(400, "Validation failed", {"reward": {"value": {"denomination": ["must be a number"]}}})
        denomination = Decimal(denomination)
        if denomination <= 0 or denomination.as_tuple().exponent < -2:  # type: ignore[operator]
            raise ApiError(
                400, "Validation failed", {"reward": {"value": {"denomination": ["must be positive, in cents"]}}}
            )
        products = reward.get("products")
        if not isinstance(products, list) or not products or not all(isinstance(p, str) for p in products):
            raise ApiError(400, "Validation failed", {"reward": {"products": ["must list at least one product"]}})
        for pid in products:
            product = self.products.get(pid)
            if product is None:
                raise ApiError(400, "Validation failed", {"reward": {"products": [f"{pid} is not available"]}})
            if product.currency != currency:
                raise ApiError(
                    400, "Validation failed", {"reward": {"value": {"currency_code": [f"not offered by {pid}"]}}}
                )
            if denomination < product.min:
                raise ApiError(
                    400,
                    "Validation failed",
                    {"reward": {"value": {"denomination": [f"is below the minimum of {product.min} for {pid}"]}}},
                )
            if denomination > product.max:
                raise ApiError(
                    400,
                    "Validation failed",
                    {"reward": {"value": {"denomination": [f"is above the maximum of {product.max} for {pid}"]}}},
                )
        delivery = reward.get("delivery") or {}
        method = delivery.get("method", "EMAIL")
        if method not in METHODS:
            raise ApiError(400, "Validation failed", {"reward": {"delivery": {"method": ["is EMAIL or LINK"]}}})
        recipient = reward.get("recipient") or {}
        name, email = recipient.get("name"), recipient.get("email")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "Validation failed", {"reward": {"recipient": {"name": ["is required"]}}})
        if email is not None and (not isinstance(email, str) or not _valid_email(email)):
            raise ApiError(422, "Validation failed", {"reward": {"recipient": {"email": ["is invalid"]}}})
        if method == "EMAIL" and email is None:
            raise ApiError(400, "Validation failed", {"reward": {"recipient": {"email": ["is required for EMAIL"]}}})
        rid = _id()
        link = f"{self.base_url}/redeem/{secrets.token_urlsafe(24)}"
        return str(funding), Reward(
            rid,
            "",
            _now_iso(),
            denomination,
            str(currency),
            method,
            name,
            email,
            list(products),
            "SCHEDULED",
            link,
            link_shown=self.links_for_email,
        )

    def _charge(self, reward: Reward) -> None:
        left = self.balances.get(reward.currency, Decimal(0))
        if left < reward.denomination:
            raise ApiError(
                400, "Insufficient funds", {"payment": {"funding_source_id": ["has insufficient funds for this order"]}}
            )
        self.balances[reward.currency] = left - reward.denomination

    def _execute(self, order: Order, *, failed: bool = False) -> None:
        order.status = EXECUTED
        reward = order.reward
        if failed:
            self._deliver(reward, "FAILED")
        elif reward.method == "LINK" or self.delivery_delay_ms == 0:
            self._deliver(reward, "SUCCEEDED")
        else:
            reward.delivery_status = "SCHEDULED"
            reward.deliver_at = time.monotonic() + self.delivery_delay_ms / 1000

    def _deliver(self, reward: Reward, status: str) -> None:
        reward.delivery_status, reward.deliver_at = status, None
        # As Tremendous documents for a bounce: why, and whether the same recipient can be sent it again.
        meta = {"failure_reason": "invalid_email", "retryable": False} if status == "FAILED" else {}
        self._emit(f"REWARDS.DELIVERY.{status}", reward.id, "rewards", reward.order_id, meta)

    def advance(self, now: float | None = None) -> int:
        """Deliver scheduled rewards whose time has come; how many."""
        now = time.monotonic() if now is None else now
        due = [r for r in self.rewards.values() if r.deliver_at is not None and r.deliver_at <= now]
        for reward in due:
            self._deliver(reward, "SUCCEEDED")
        return len(due)

    def order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, "Resource not found")
        return order

    def find(self, external_id: str) -> list[Order]:
        """Every order under `external_id`, oldest first (one, unless the provider made a duplicate)."""
        return [o for o in self.orders.values() if o.external_id == external_id]

    def list_orders(self, query: Mapping[str, str]) -> dict[str, Any]:
        """`GET /orders` as Tremendous lists them: newest first (by `created_at`), filtered by `external_id` and
        `created_at[gte]` / `created_at[lte]` (ISO 8601, inclusive), paged by `offset` and `limit` (default 10, at
        most 100); `total_count` is the number of orders matching across all pages."""
        unknown = set(query) - {"external_id", "campaign_id", "created_at[gte]", "created_at[lte]", "offset", "limit"}
        if unknown:
            raise ApiError(400, "Validation failed", {name: ["is not a known parameter"] for name in sorted(unknown)})
        offset, limit = _count(query, "offset", 0, None), _count(query, "limit", 10, 100)
        gte, lte = _instant(query, "created_at[gte]"), _instant(query, "created_at[lte]")
        external_id = query.get("external_id")
        chosen = [
            o
            for o in reversed(self.orders.values())  # insertion order is creation order: newest first
            if (external_id is None or o.external_id == external_id)
            and (gte is None or _parse_instant(o.created_at) >= gte)
            and (lte is None or _parse_instant(o.created_at) <= lte)
            and not query.get("campaign_id")  # no campaigns here: an order of a campaign is none of these
        ]
        return {"orders": [o.to_json() for o in chosen[offset : offset + limit]], "total_count": len(chosen)}

    def reward(self, reward_id: str) -> Reward:
        reward = self.rewards.get(reward_id)
        if reward is None:
            raise ApiError(404, "Resource not found")
        return reward

    def approve(self, order_id: str) -> Order:
        order = self.order(order_id)
        if order.status != PENDING_APPROVAL:
            raise ApiError(422, f"The order is {order.status}, not PENDING APPROVAL")
        steer = self.recipients.get((order.reward.recipient_email or "").lower())
        self._charge(order.reward)
        self._emit("ORDERS.APPROVED", order.id, "orders", order.id)
        self._execute(order, failed=steer is Outcome.DELIVERY_FAILED)
        return order

    def reject(self, order_id: str) -> Order:
        order = self.order(order_id)
        if order.status != PENDING_APPROVAL:
            raise ApiError(422, f"The order is {order.status}, not PENDING APPROVAL")
        order.status, order.reward.delivery_status = CANCELED, "CANCELED"
        self._emit("ORDERS.CANCELED", order.id, "orders", order.id)
        self._emit("REWARDS.CANCELED", order.reward.id, "rewards", order.id)
        return order

    def cancel_reward(self, reward_id: str) -> Reward:
        """An undelivered card cancelled and its value refunded to the funding source (Tremendous allows it for
        rewards neither redeemed nor expired, typically after a delivery failure)."""
        reward = self.reward(reward_id)
        if reward.redeemed:
            raise ApiError(422, "The reward has been redeemed: it cannot be canceled")
        if reward.delivery_status not in ("FAILED", "SCHEDULED"):
            raise ApiError(422, f"The reward's delivery is {reward.delivery_status}: it cannot be canceled")
        reward.delivery_status, reward.deliver_at = "CANCELED", None
        self._refund(reward, reward.denomination)
        self._emit("REWARDS.CANCELED", reward.id, "rewards", reward.order_id)
        return reward

    def _refund(self, reward: Reward, amount: Decimal) -> None:
        """`amount` of the card's value back on the funding source, shown on its order's `payment.refund`."""
        self.balances[reward.currency] = self.balances.get(reward.currency, Decimal(0)) + amount
        order = self.orders.get(reward.order_id)
        if order is not None:
            order.refunded += amount

    def fail_delivery(self, reward_id: str) -> Reward:
        """The email bounced (an operator's lever for tests)."""
        reward = self.reward(reward_id)
        if reward.delivery_status not in ("SCHEDULED", "PENDING"):
            raise ApiError(422, f"The reward's delivery is {reward.delivery_status}")
        self._deliver(reward, "FAILED")
        return reward

    def cancel_delivered(self, reward_id: str) -> Reward:
        """The provider cancels a card it had delivered (its support, a fraud review) before anyone redeemed it:
        the value goes back to the funding source (an operator's lever: the late word after `paid`)."""
        reward = self.reward(reward_id)
        if reward.redeemed or reward.delivery_status != "SUCCEEDED":
            raise ApiError(422, f"The reward's delivery is {reward.delivery_status}: it cannot be canceled")
        reward.delivery_status = "CANCELED"
        self._refund(reward, reward.denomination)
        self._emit("REWARDS.CANCELED", reward.id, "rewards", reward.order_id)
        return reward

    def bounce_after_delivery(self, reward_id: str) -> Reward:
        """A delivered card's email bounces after all (mail servers bounce late): delivery FAILED (an operator's
        lever: the late word after `paid`)."""
        reward = self.reward(reward_id)
        if reward.redeemed or reward.delivery_status != "SUCCEEDED":
            raise ApiError(422, f"The reward's delivery is {reward.delivery_status}")
        self._deliver(reward, "FAILED")
        return reward

    def resend(self, reward_id: str) -> Reward:
        """A bounced card sent again and delivered this time (`POST /rewards/{id}/resend`, an operator's lever)."""
        reward = self.reward(reward_id)
        if reward.delivery_status != "FAILED":
            raise ApiError(422, f"The reward's delivery is {reward.delivery_status}, not FAILED")
        self._deliver(reward, "SUCCEEDED")
        return reward

    def redeem(self, reward_id: str) -> Reward:
        """The card spent by whoever holds its link (an operator's lever); a cancelled card cannot be."""
        reward = self.reward(reward_id)
        if reward.delivery_status == "CANCELED":
            raise ApiError(422, "The reward is canceled")
        reward.redeemed = True
        return reward

    # -- discrepancies (admin): what a reconciliation must find ---------------------------------------------------
    def inject_discrepancy(
        self, kind: str, *, reference: str | None, amount: int | None, asset: str | None, destination: str | None
    ) -> str | None:
        """Make the provider's books differ from what Prizeflow asked for, as each difference shows on its orders
        listing. `amount` is in minor units. Returns the statement line created or changed (an order id;
        `<order id>:fee` / `<order id>:refund` for its fee or refund), None for `missing`."""
        if kind == "unrequested":
            if amount is None or asset is None or destination is None:
                raise ApiError(400, "unrequested needs amount, asset and destination")
            return self._unrequested(_units(amount, asset), asset, destination)
        kinds: dict[str, Callable[[Order, int | None, str | None, str | None], str | None]] = {
            "missing": self._d_missing,
            "amount": self._d_amount,
            "destination": self._d_destination,
            "duplicate": self._d_duplicate,
            "reversal": self._d_reversal,
            "fee": self._d_fee,
        }
        if kind not in kinds:
            raise ApiError(400, f"unknown discrepancy kind {kind!r}")
        if not reference:
            raise ApiError(400, "reference (the order's external_id) is required")
        found = self.find(reference)
        if not found:
            raise ApiError(404, f"no order under external_id {reference!r}")
        return kinds[kind](found[0], amount, asset, destination)

    def _unrequested(self, value: Decimal, currency: str, email: str) -> str:
        product = next((p for p in self.products.values() if p.currency == currency), None)
        if product is None:
            raise ApiError(400, f"no product in {currency}")
        reward = Reward(_id(), "", _now_iso(), value, currency, "EMAIL", "Unknown", email, [product.id], "SCHEDULED",
                        f"{self.base_url}/redeem/{secrets.token_urlsafe(24)}")  # fmt: skip
        return self._place(None, reward).id

    def _place(self, external_id: str | None, reward: Reward) -> Order:
        """An order the provider made by itself (no request of ours): charged, executed, delivered."""
        self._charge(reward)
        order = Order(_id(), external_id, _now_iso(), EXECUTED, "balance", reward, "")
        reward.order_id = order.id
        self.orders[order.id] = order
        self.rewards[reward.id] = reward
        self.created += 1
        self._emit("ORDERS.CREATED", order.id, "orders", order.id)
        self._execute(order)
        return order

    def _d_missing(self, order: Order, _amount: int | None, _asset: str | None, _dest: str | None) -> None:
        """As if the provider never made it: gone from every listing, its charge back on the funding source."""
        if order.status == EXECUTED:
            back = order.reward.denomination + order.fees - order.refunded
            self.balances[order.reward.currency] = self.balances.get(order.reward.currency, Decimal(0)) + back
        del self.orders[order.id]
        self.rewards.pop(order.reward.id, None)
        if order.external_id is not None and self.by_external.get(order.external_id) == order.id:
            del self.by_external[order.external_id]

    def _d_amount(self, order: Order, amount: int | None, asset: str | None, _dest: str | None) -> str:
        if amount is None or amount < 1:
            raise ApiError(400, "amount needs a positive amount (minor units)")
        reward = order.reward
        currency = asset or reward.currency
        value = _units(amount, currency)
        self.balances[reward.currency] = self.balances.get(reward.currency, Decimal(0)) + reward.denomination
        self.balances[currency] = self.balances.get(currency, Decimal(0)) - value
        reward.denomination, reward.currency = value, currency
        return order.id

    def _d_destination(self, order: Order, _amount: int | None, _asset: str | None, dest: str | None) -> str:
        if not dest:
            raise ApiError(400, "destination (the recipient's email) is required")
        order.reward.recipient_email = dest
        return order.id

    def _d_duplicate(self, order: Order, _amount: int | None, _asset: str | None, _dest: str | None) -> str:
        first = order.reward
        reward = Reward(_id(), "", _now_iso(), first.denomination, first.currency, first.method, first.recipient_name,
                        first.recipient_email, list(first.products), "SCHEDULED",
                        f"{self.base_url}/redeem/{secrets.token_urlsafe(24)}")  # fmt: skip
        return self._place(order.external_id, reward).id

    def _d_reversal(self, order: Order, amount: int | None, _asset: str | None, _dest: str | None) -> str:
        reward = order.reward
        left = reward.denomination - order.refunded
        value = left if amount is None else _units(amount, reward.currency)
        if not Decimal(0) < value <= left:
            raise ApiError(400, "a reversal is of at most what is left of the card's value")
        self._refund(reward, value)
        if order.refunded == reward.denomination:
            reward.delivery_status, reward.deliver_at = "CANCELED", None
            self._emit("REWARDS.CANCELED", reward.id, "rewards", order.id)
        return f"{order.id}:refund"

    def _d_fee(self, order: Order, amount: int | None, _asset: str | None, _dest: str | None) -> str:
        if amount is None or amount < 1:
            raise ApiError(400, "fee needs a positive amount (minor units)")
        fee = _units(amount, order.reward.currency)
        order.fees += fee
        self.balances[order.reward.currency] = self.balances.get(order.reward.currency, Decimal(0)) - fee
        return f"{order.id}:fee"

    # -- events --------------------------------------------------------------------------------------------------
    def _emit(
        self, name: str, resource_id: str, resource_type: str, order_id: str, meta: dict[str, Any] | None = None
    ) -> None:
        event = Event(str(uuid.uuid4()), name, resource_id, resource_type, _now_iso(), order_id, dict(meta or {}))
        self.events.append(event)
        if self.listener is not None:
            self.listener(event)


__all__ = [
    "CANCELED",
    "DEFAULT_PRODUCTS",
    "EXECUTED",
    "FAILED",
    "PENDING_APPROVAL",
    "ApiError",
    "Event",
    "Order",
    "Outcome",
    "Product",
    "Reward",
    "Store",
]
