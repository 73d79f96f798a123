"""The emulated bot's books: its Star balance, the gift catalogue, users, and every Star transaction.

Every operation runs without awaiting (one asyncio loop), so each is atomic. Shapes follow the Bot API objects
(`Gift`, `StarTransaction`, `TransactionPartnerUser`, `User`); errors are `BotApiError`s carrying the status and
description Telegram answers with.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Final

MAX_TRANSACTIONS_PAGE: Final = 100
GIFT_TEXT_MAX: Final = 128


class BotApiError(Exception):
    """A Bot API refusal: `{"ok": false, "error_code": status, "description": description}`."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


def bad_request(what: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {what}")


@dataclass
class Gift:
    id: str
    star_count: int
    total_count: int | None = None  # limited gifts: how many exist
    remaining_count: int | None = None
    upgrade_star_count: int | None = None

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "star_count": self.star_count,
            "sticker": {
                "file_id": f"sticker-{self.id}",
                "file_unique_id": f"u-{self.id}",
                "type": "custom_emoji",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            },
        }
        if self.total_count is not None:
            out["total_count"] = self.total_count
            out["remaining_count"] = self.remaining_count
        if self.upgrade_star_count is not None:
            out["upgrade_star_count"] = self.upgrade_star_count
        return out


@dataclass
class User:
    id: int
    state: str = "active"  # active | blocked (the user blocked the bot) | deleted (no such user)

    def as_api(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": False, "first_name": f"Player {self.id}"}


@dataclass
class Transaction:
    id: str
    amount: int
    date: int
    incoming: bool
    user_id: int
    transaction_type: str  # invoice_payment | gift_purchase | telegram_api (Telegram's charge for API use)
    gift_id: str | None = None
    refunded: bool = False
    request_count: int | None = None  # telegram_api: how many paid requests the charge is for


@dataclass
class Books:
    balance: int
    gifts: dict[str, Gift]
    users: dict[int, User] = field(default_factory=dict)
    transactions: list[Transaction] = field(default_factory=list)
    held: list[Transaction] = field(default_factory=list)  # carried out, not yet in getStarTransactions (lag)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def user(self, user_id: int) -> User:
        """Any positive id is a user unless an admin said otherwise (deleted, blocked)."""
        if user_id <= 0:
            raise bad_request("USER_ID_INVALID")
        user = self.users.setdefault(user_id, User(user_id))
        if user.state == "deleted":
            raise bad_request("USER_ID_INVALID")
        return user

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):012d}"

    # -- sendGift ---------------------------------------------------------------------------------------------
    def send_gift(self, user_id: int, gift_id: str, *, text: str | None, pay_for_upgrade: bool) -> Transaction:
        gift = self.gifts.get(gift_id)
        if gift is None:
            raise bad_request("STARGIFT_INVALID")
        if text is not None and len(text) > GIFT_TEXT_MAX:
            raise bad_request("text is too long")
        user = self.user(user_id)
        if user.state == "blocked":
            raise BotApiError(403, "Forbidden: bot was blocked by the user")
        if gift.remaining_count is not None and gift.remaining_count <= 0:
            raise bad_request("STARGIFT_USAGE_LIMITED")
        price = gift.star_count + ((gift.upgrade_star_count or 0) if pay_for_upgrade else 0)
        if self.balance < price:
            raise bad_request("BALANCE_TOO_LOW")
        self.balance -= price
        if gift.remaining_count is not None:
            gift.remaining_count -= 1
        tx = Transaction(
            self.next_id("gift"),
            price,
            int(time.time()),
            incoming=False,
            user_id=user_id,
            transaction_type="gift_purchase",
            gift_id=gift_id,
        )
        self.transactions.append(tx)
        return tx

    # -- Star payments and refunds ----------------------------------------------------------------------------
    def pay(self, user_id: int, amount: int) -> Transaction:
        """A user paid an invoice in Stars (what only a user can do): the charge id is the transaction's."""
        if amount <= 0:
            raise bad_request("amount must be positive")
        self.user(user_id)
        tx = Transaction(
            self.next_id("charge"),
            amount,
            int(time.time()),
            incoming=True,
            user_id=user_id,
            transaction_type="invoice_payment",
        )
        self.transactions.append(tx)
        self.balance += amount
        return tx

    def refund(self, user_id: int, charge_id: str) -> Transaction:
        """Refund a real prior payment of this user, once; the refund carries the charge's id (as Telegram's)."""
        if not charge_id:
            raise bad_request("CHARGE_ID_EMPTY")
        self.user(user_id)
        charge = next(
            (
                t
                for t in self.transactions
                if t.incoming and t.id == charge_id and t.transaction_type == "invoice_payment"
            ),
            None,
        )
        if charge is None or charge.user_id != user_id:
            raise bad_request("CHARGE_NOT_FOUND")
        if charge.refunded:
            raise bad_request("CHARGE_ALREADY_REFUNDED")
        if self.balance < charge.amount:
            raise bad_request("BALANCE_TOO_LOW")
        self.balance -= charge.amount
        charge.refunded = True
        tx = Transaction(
            charge.id,
            charge.amount,
            int(time.time()),
            incoming=False,
            user_id=user_id,
            transaction_type="invoice_payment",
        )
        self.transactions.append(tx)
        return tx

    def refund_gift(self, transaction_id: str) -> Transaction:
        """Telegram gives the bot back the Stars of a gift it bought (what only Telegram does: a gift it could not
        deliver, a purchase it reversed): an incoming transaction carrying the purchase's id, as Telegram's refunds
        do ("coincides with the identifier of the original transaction")."""
        purchase = next(
            (t for t in self.transactions if not t.incoming and t.id == transaction_id and t.gift_id is not None),
            None,
        )
        if purchase is None:
            raise bad_request("TRANSACTION_NOT_FOUND")
        if purchase.refunded:
            raise bad_request("TRANSACTION_ALREADY_REFUNDED")
        purchase.refunded = True
        self.balance += purchase.amount
        tx = Transaction(
            purchase.id,
            purchase.amount,
            int(time.time()),
            incoming=True,
            user_id=purchase.user_id,
            transaction_type="gift_purchase",
            gift_id=purchase.gift_id,
        )
        self.transactions.append(tx)
        return tx

    def hold_last(self) -> None:
        """The last transaction is not listed until `release` (a ledger that lags behind the call's answer)."""
        self.held.append(self.transactions.pop())

    def release(self) -> int:
        released, self.held = self.held, []
        self.transactions.extend(released)
        return len(released)

    # -- reading ----------------------------------------------------------------------------------------------
    def page(self, offset: int, limit: int) -> list[dict[str, Any]]:
        if offset < 0 or not 1 <= limit <= MAX_TRANSACTIONS_PAGE:
            raise bad_request("invalid offset or limit")
        return [self.transaction_api(t) for t in self.transactions[offset : offset + limit]]

    def transaction_api(self, t: Transaction) -> dict[str, Any]:
        out: dict[str, Any] = {"id": t.id, "amount": t.amount, "date": t.date}
        if t.transaction_type == "telegram_api":  # TransactionPartnerTelegramApi: Telegram charged the bot
            out["receiver"] = {"type": "telegram_api", "request_count": t.request_count or 1}
            return out
        partner: dict[str, Any] = {
            "type": "user",
            "transaction_type": t.transaction_type,
            "user": self.users.get(t.user_id, User(t.user_id)).as_api(),
        }
        if t.gift_id is not None and t.gift_id in self.gifts:
            partner["gift"] = self.gifts[t.gift_id].as_api()
        out["source" if t.incoming else "receiver"] = partner
        return out


__all__ = ["GIFT_TEXT_MAX", "MAX_TRANSACTIONS_PAGE", "Books", "BotApiError", "Gift", "Transaction", "User"]
