"""The emulated Stripe account: objects, balances, the events every change records. No I/O.

Every method runs to completion without awaiting, so on the server's one event loop each call is atomic. Event
listeners (webhook delivery) are called synchronously with each recorded event and must only enqueue.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prizeflow_stripe_emulator.errors import StripeError
from prizeflow_stripe_emulator.models import (
    ADMIN,
    DISPUTE_TRANSITIONS,
    PAYOUT_FAILURE_MESSAGES,
    PAYOUT_TRANSITIONS,
    SESSION_TRANSITIONS,
    Ctx,
    DisputeStatus,
    Params,
    PayoutStatus,
    SessionStatus,
    created_filter,
    new_id,
    paginate,
)

Obj = dict[str, Any]
EventListener = Callable[[Obj], None]

SESSION_TTL_S = 24 * 3600


@dataclass
class Endpoint:
    """A webhook endpoint. `secrets[0]` is the current secret; more during a rotation (each signs)."""

    id: str
    url: str
    secrets: list[str]
    enabled_events: list[str]
    connect: bool | None  # None (admin/env endpoints): every event; True: Connect events only; False: platform
    created: int
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    api_version: str | None = None

    def wants(self, event: Obj) -> bool:
        if self.connect is not None and self.connect != ("account" in event):
            return False
        return "*" in self.enabled_events or event["type"] in self.enabled_events

    def to_object(self, *, with_secret: bool = False) -> Obj:
        out: Obj = {
            "id": self.id,
            "object": "webhook_endpoint",
            "api_version": self.api_version,
            "application": None,
            "created": self.created,
            "description": self.description,
            "enabled_events": list(self.enabled_events),
            "livemode": False,
            "metadata": dict(self.metadata),
            "status": "enabled",
            "url": self.url,
        }
        if with_secret:
            out["secret"] = self.secrets[0]
        return out


class Store:
    def __init__(self, *, api_version: str, public_url: str, clock: Callable[[], float] = time.time) -> None:
        self.api_version = api_version
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self.listeners: list[EventListener] = []
        self.platform_balance: dict[str, int] = {}
        self.account_balances: dict[str, dict[str, int]] = {}
        self.accounts: dict[str, Obj] = {}
        self.transfers: dict[str, Obj] = {}
        self.reversals: dict[str, Obj] = {}
        self.payouts: dict[str, Obj] = {}
        self.payout_accounts: dict[str, str | None] = {}
        self.sessions: dict[str, Obj] = {}
        self.session_pi_data: dict[str, Obj] = {}
        self.payment_intents: dict[str, Obj] = {}
        self.charges: dict[str, Obj] = {}
        self.refunds: dict[str, Obj] = {}
        self.disputes: dict[str, Obj] = {}
        self.events: dict[str, Obj] = {}
        self.endpoints: dict[str, Endpoint] = {}
        # Every movement of a balance, in the order it happened; `bt_accounts`: whose balance (None: the platform).
        self.balance_transactions: dict[str, Obj] = {}
        self.bt_accounts: dict[str, str | None] = {}

    # -- helpers -------------------------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.clock())

    def _emit(self, type_: str, obj: Obj, ctx: Ctx, *, account: str | None = None, previous: Obj | None = None) -> Obj:
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = previous
        event: Obj = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": self.api_version,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
            "type": type_,
        }
        if account is not None:
            event["account"] = account
        self.events[event["id"]] = event
        for listener in self.listeners:
            listener(event)
        return event

    def _balance_of(self, account: str | None) -> dict[str, int]:
        if account is None:
            return self.platform_balance
        return self.account_balances.setdefault(account, {})

    def _debit(self, account: str | None, currency: str, amount: int) -> None:
        balance = self._balance_of(account)
        if balance.get(currency, 0) < amount:
            raise StripeError.balance_insufficient()
        balance[currency] = balance.get(currency, 0) - amount

    def _credit(self, account: str | None, currency: str, amount: int) -> None:
        balance = self._balance_of(account)
        balance[currency] = balance.get(currency, 0) + amount

    def _newest(self, objects: dict[str, Obj], keep: Callable[[Obj], bool] = lambda _o: True) -> list[Obj]:
        return sorted((o for o in objects.values() if keep(o)), key=lambda o: o["created"], reverse=True)

    @staticmethod
    def _get(objects: dict[str, Obj], oid: str, kind: str) -> Obj:
        obj = objects.get(oid)
        if obj is None:
            raise StripeError.no_such(kind, oid)
        return obj

    def check_account(self, account: str | None) -> None:
        """`Stripe-Account` must name a connected account of this platform."""
        if account is not None and account not in self.accounts:
            raise StripeError(
                403,
                "invalid_request_error",
                f"The provided key does not have access to account '{account}' (or that account does not exist). "
                "Application access may have been revoked.",
                code="account_invalid",
            )

    # -- accounts and balances -----------------------------------------------------------------------------

    def create_account(self, raw: Obj, *, account_id: str | None = None) -> Obj:
        p = Params(
            raw,
            frozenset(
                {
                    "type", "country", "email", "capabilities", "business_type", "metadata", "default_currency",
                    "business_profile", "tos_acceptance", "individual", "company", "controller", "settings",
                    "external_account",
                }
            ),
        )  # fmt: skip
        if account_id is not None and account_id in self.accounts:
            raise StripeError.invalid(f"Account {account_id} already exists.", param="id")
        requested = p.nested("capabilities", frozenset(raw.get("capabilities") or {}))
        capabilities = {"transfers": "active"}
        if requested is not None:
            capabilities |= dict.fromkeys(requested.raw, "active")
        aid = account_id or new_id("acct", 16)
        account: Obj = {
            "id": aid,
            "object": "account",
            "type": p.text("type") or "express",
            "country": p.text("country") or "US",
            "email": p.text("email"),
            "business_type": p.text("business_type"),
            "capabilities": capabilities,
            "charges_enabled": True,
            "payouts_enabled": True,
            "details_submitted": True,
            "default_currency": (p.text("default_currency") or "usd").lower(),
            "metadata": p.metadata(),
            "created": self.now(),
        }
        self.accounts[aid] = account
        self.account_balances.setdefault(aid, {})
        return account

    def get_account(self, account_id: str) -> Obj:
        return self._get(self.accounts, account_id, "account")

    def list_accounts(self, raw: Obj) -> Obj:
        return paginate(self._newest(self.accounts), raw, "/v1/accounts")

    def update_account(self, account_id: str, *, payouts_enabled: bool | None, transfers: str | None) -> Obj:
        """Admin: disable payouts or the transfers capability (a restricted account)."""
        account = self.get_account(account_id)
        previous: Obj = {}
        if payouts_enabled is not None:
            previous["payouts_enabled"] = account["payouts_enabled"]
            account["payouts_enabled"] = payouts_enabled
        if transfers is not None:
            previous["capabilities"] = dict(account["capabilities"])
            account["capabilities"]["transfers"] = transfers
        self._emit("account.updated", account, ADMIN, account=account_id, previous=previous)
        return account

    def balance(self, account: str | None) -> Obj:
        balance = self._balance_of(account)
        return {
            "object": "balance",
            "available": [
                {"amount": amount, "currency": currency, "source_types": {"card": amount}}
                for currency, amount in sorted(balance.items())
            ],
            "pending": [
                {"amount": 0, "currency": currency, "source_types": {"card": 0}} for currency in sorted(balance)
            ],
            "livemode": False,
        }

    def fund(self, currency: str, amount: int, account: str | None = None) -> Obj:
        """Admin: add to (or, negative, take from) an available balance."""
        self.check_account(account)
        self._credit(account, currency.lower(), amount)
        self._record_bt(account, "adjustment", amount, currency.lower(), None, description="emulator: balance funded",
                        category="other_adjustment")  # fmt: skip
        return self.balance(account)

    # -- transfers -----------------------------------------------------------------------------------------

    def create_transfer(self, raw: Obj, ctx: Ctx) -> Obj:
        p = Params(
            raw,
            frozenset(
                {"amount", "currency", "destination", "transfer_group", "metadata", "description", "source_transaction",
                 "source_type"}
            ),
        )  # fmt: skip
        if ctx.account is not None:
            raise StripeError.invalid("Transfers are created by the platform, without Stripe-Account.")
        amount = p.req_integer("amount", minimum=1)
        currency = p.currency()
        destination = p.req_text("destination")
        metadata = p.metadata()
        account = self.accounts.get(destination)
        if account is None:
            raise StripeError.no_such("destination", destination, param="destination")
        if account["capabilities"].get("transfers") != "active":
            raise StripeError.invalid(
                "Your destination account needs to have at least one of the following capabilities enabled: "
                "transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
                param="destination",
            )
        self._debit(None, currency, amount)
        self._credit(destination, currency, amount)
        tid, bt_id, payment_id = new_id("tr"), new_id("txn"), new_id("py")
        transfer = {
            "id": tid,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": bt_id,
            "created": self.now(),
            "currency": currency,
            "description": p.text("description"),
            "destination": destination,
            "destination_payment": payment_id,
            "livemode": False,
            "metadata": metadata,
            "reversals": {"object": "list", "data": [], "has_more": False, "url": f"/v1/transfers/{tid}/reversals"},
            "reversed": False,
            "source_transaction": p.text("source_transaction"),
            "source_type": "card",
            "transfer_group": p.text("transfer_group"),
        }
        self.transfers[tid] = transfer
        self._record_bt(None, "transfer", -amount, currency, tid, bt_id=bt_id, category="transfer")
        self._record_bt(destination, "payment", amount, currency, payment_id, category="charge")
        self._emit("transfer.created", transfer, ctx)
        return transfer

    def get_transfer(self, tid: str) -> Obj:
        return self._get(self.transfers, tid, "transfer")

    def list_transfers(self, raw: Obj) -> Obj:
        filters = {k: raw.pop(k) for k in ("destination", "transfer_group") if k in raw}
        in_window = created_filter(raw)
        items = self._newest(self.transfers, lambda t: in_window(t) and all(t.get(k) == v for k, v in filters.items()))
        return paginate(items, raw, "/v1/transfers")

    def create_reversal(self, tid: str, raw: Obj, ctx: Ctx) -> Obj:
        p = Params(raw, frozenset({"amount", "metadata", "description", "refund_application_fee"}))
        transfer = self.get_transfer(tid)
        remaining = transfer["amount"] - transfer["amount_reversed"]
        amount = p.integer("amount", minimum=1)
        amount = remaining if amount is None else amount
        if remaining == 0:
            raise StripeError.invalid(
                f"Transfer {tid} has already been fully reversed.", code="transfer_already_reversed"
            )
        if amount > remaining:
            raise StripeError.invalid(
                f"Reversal amount ({amount}) is greater than the unreversed amount on the transfer ({remaining}).",
                param="amount",
                code="amount_too_large",
            )
        self._debit(transfer["destination"], transfer["currency"], amount)
        self._credit(None, transfer["currency"], amount)
        reversal = {
            "id": new_id("trr"),
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": new_id("txn"),
            "created": self.now(),
            "currency": transfer["currency"],
            "destination_payment_refund": new_id("pyr"),
            "metadata": p.metadata(),
            "transfer": tid,
        }
        self.reversals[reversal["id"]] = reversal
        self._record_bt(None, "transfer_refund", amount, transfer["currency"], reversal["id"],
                        bt_id=reversal["balance_transaction"], category="transfer_reversal")  # fmt: skip
        self._record_bt(transfer["destination"], "payment_refund", -amount, transfer["currency"],
                        reversal["destination_payment_refund"], category="refund")  # fmt: skip
        previous = {"amount_reversed": transfer["amount_reversed"], "reversed": transfer["reversed"]}
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        data = transfer["reversals"]["data"]
        data.insert(0, reversal)
        self._emit("transfer.reversed", transfer, ctx, previous=previous)
        return reversal

    def list_reversals(self, tid: str, raw: Obj) -> Obj:
        self.get_transfer(tid)
        items = self._newest(self.reversals, lambda r: r["transfer"] == tid)
        return paginate(items, raw, f"/v1/transfers/{tid}/reversals")

    # -- payouts (on a connected account: Stripe-Account) -----------------------------------------------------

    def create_payout(self, raw: Obj, ctx: Ctx) -> Obj:
        p = Params(
            raw,
            frozenset({"amount", "currency", "metadata", "description", "method", "statement_descriptor",
                       "destination", "source_type"}),
        )  # fmt: skip
        amount = p.req_integer("amount", minimum=1)
        currency = p.currency()
        method = p.text("method") or "standard"
        if method not in ("standard", "instant"):
            raise StripeError.invalid(f"Invalid method: {method}", param="method")
        metadata = p.metadata()
        if ctx.account is not None and not self.accounts[ctx.account]["payouts_enabled"]:
            raise StripeError.invalid("Payouts have been disabled on this account.", code="payouts_not_allowed")
        self._debit(ctx.account, currency, amount)
        now = self.now()
        pid = new_id("po")
        payout: Obj = {
            "id": pid,
            "object": "payout",
            "amount": amount,
            "arrival_date": now + 2 * 86400,
            "automatic": False,
            "balance_transaction": new_id("txn"),
            "created": now,
            "currency": currency,
            "description": p.text("description"),
            "destination": new_id("ba"),
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": metadata,
            "method": method,
            "source_type": "card",
            "statement_descriptor": p.text("statement_descriptor"),
            "status": PayoutStatus.PENDING.value,
            "type": "bank_account",
        }
        self.payouts[pid] = payout
        self.payout_accounts[pid] = ctx.account
        self._record_bt(ctx.account, "payout", -amount, currency, pid, bt_id=payout["balance_transaction"],
                        category="payout")  # fmt: skip
        self._emit("payout.created", payout, ctx, account=ctx.account)
        return payout

    def get_payout(self, pid: str, account: str | None) -> Obj:
        if pid not in self.payouts or self.payout_accounts[pid] != account:
            raise StripeError.no_such("payout", pid)
        return self.payouts[pid]

    def list_payouts(self, raw: Obj, account: str | None) -> Obj:
        status = raw.pop("status", None)
        in_window = created_filter(raw)
        raw.pop("arrival_date", None)
        items = self._newest(
            self.payouts,
            lambda o: (
                self.payout_accounts[o["id"]] == account and (status is None or o["status"] == status) and in_window(o)
            ),
        )
        return paginate(items, raw, "/v1/payouts")

    def _move_payout(self, payout: Obj, to: PayoutStatus, ctx: Ctx, *, failure_code: str | None = None) -> Obj:
        current = PayoutStatus(payout["status"])
        if to not in PAYOUT_TRANSITIONS[current]:
            if to is PayoutStatus.CANCELED:
                raise StripeError.invalid(
                    f"Payout {payout['id']} cannot be canceled because its status is {current}; only pending "
                    "payouts can be canceled.",
                )
            raise StripeError.invalid(f"payout {payout['id']} cannot go from {current} to {to}")
        account = self.payout_accounts[payout["id"]]
        previous: Obj = {"status": current.value}
        payout["status"] = to.value
        if to in (PayoutStatus.FAILED, PayoutStatus.CANCELED):
            self._credit(account, payout["currency"], payout["amount"])  # the funds come back to the balance
        if to is PayoutStatus.FAILED:
            code = failure_code or "could_not_process"
            previous |= {"failure_code": None, "failure_message": None}
            payout["failure_code"] = code
            payout["failure_message"] = PAYOUT_FAILURE_MESSAGES.get(code, "The payout failed.")
            payout["failure_balance_transaction"] = new_id("txn")
            self._record_bt(account, "payout_failure", payout["amount"], payout["currency"], payout["id"],
                            bt_id=payout["failure_balance_transaction"], category="payout_reversal")  # fmt: skip
        elif to is PayoutStatus.CANCELED:
            self._record_bt(account, "payout_cancel", payout["amount"], payout["currency"], payout["id"],
                            category="payout_reversal")  # fmt: skip
        event_type = {
            PayoutStatus.IN_TRANSIT: "payout.updated",
            PayoutStatus.PAID: "payout.paid",
            PayoutStatus.FAILED: "payout.failed",
            PayoutStatus.CANCELED: "payout.canceled",
        }[to]
        self._emit(event_type, payout, ctx, account=account, previous=previous)
        return payout

    def cancel_payout(self, pid: str, ctx: Ctx) -> Obj:
        return self._move_payout(self.get_payout(pid, ctx.account), PayoutStatus.CANCELED, ctx)

    def pending_payouts_created_before(self, cutoff: float) -> list[str]:
        """Ids of payouts still pending that were created at or before `cutoff` (epoch seconds)."""
        return [
            pid
            for pid, payout in self.payouts.items()
            if payout["status"] == PayoutStatus.PENDING.value and payout["created"] <= cutoff
        ]

    def settle_payout(self, pid: str, outcome: str, failure_code: str | None = None) -> Obj:
        """Admin: the bank's answer. `paid`, `failed` (with `failure_code`), `in_transit`; `failed` after `paid`
        is a bank return."""
        if pid not in self.payouts:
            raise StripeError.no_such("payout", pid)
        try:
            to = PayoutStatus(outcome)
        except ValueError as err:
            raise StripeError.invalid(f"unknown payout outcome {outcome!r}", param="outcome") from err
        if to is PayoutStatus.CANCELED or to is PayoutStatus.PENDING:
            raise StripeError.invalid("settle a payout as in_transit, paid or failed", param="outcome")
        if failure_code is not None and to is not PayoutStatus.FAILED:
            raise StripeError.invalid("failure_code only goes with outcome=failed", param="failure_code")
        return self._move_payout(self.payouts[pid], to, ADMIN, failure_code=failure_code)

    # -- checkout sessions, payment intents, charges ------------------------------------------------------

    _SESSION_PARAMS = frozenset(
        {
            "mode", "line_items", "success_url", "cancel_url", "client_reference_id", "metadata",
            "payment_intent_data", "customer_email", "customer", "expires_at", "currency", "payment_method_types",
            "locale", "submit_type", "ui_mode", "return_url", "customer_creation", "billing_address_collection",
        }
    )  # fmt: skip
    _PI_DATA_PARAMS = frozenset(
        {"metadata", "description", "transfer_group", "statement_descriptor", "statement_descriptor_suffix",
         "receipt_email", "capture_method", "setup_future_usage"}
    )  # fmt: skip

    def create_session(self, raw: Obj, ctx: Ctx) -> Obj:
        p = Params(raw, self._SESSION_PARAMS)
        mode = p.req_text("mode")
        if mode != "payment":
            raise StripeError.invalid(f"The emulator supports mode=payment only, not {mode}.", param="mode")
        items = p.objects("line_items", frozenset({"price_data", "quantity", "price"}))
        if not items:
            raise StripeError.missing_param("line_items")
        currency: str | None = None
        total = 0
        for item in items:
            if item.has("price"):
                raise StripeError.invalid("The emulator supports price_data line items only.", param="price")
            price = item.nested("price_data", frozenset({"currency", "unit_amount", "product_data", "product",
                                                         "tax_behavior", "unit_amount_decimal"}))  # fmt: skip
            if price is None:
                raise StripeError.missing_param(item._name("price_data"))
            item_currency = price.currency()
            if currency is not None and item_currency != currency:
                raise StripeError.invalid("All line items must have the same currency.", param="line_items")
            currency = item_currency
            unit = price.req_integer("unit_amount")
            product = price.nested("product_data", frozenset({"name", "description", "metadata", "images"}))
            if product is None:
                raise StripeError.missing_param(price._name("product_data"))
            product.req_text("name")
            quantity = item.req_integer("quantity", minimum=1)
            total += unit * quantity
        assert currency is not None
        pi_data = p.nested("payment_intent_data", self._PI_DATA_PARAMS)
        now = self.now()
        expires_at = p.integer("expires_at") or now + SESSION_TTL_S
        if not now + 1800 <= expires_at <= now + SESSION_TTL_S:
            raise StripeError.invalid(
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
                param="expires_at",
            )
        sid = new_id("cs_test", 58)
        session = {
            "id": sid,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": p.text("cancel_url"),
            "client_reference_id": p.text("client_reference_id", max_len=200),
            "created": now,
            "currency": currency,
            "customer": p.text("customer"),
            "customer_email": p.text("customer_email"),
            "expires_at": expires_at,
            "livemode": False,
            "metadata": p.metadata(),
            "mode": mode,
            "payment_intent": None,
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "status": SessionStatus.OPEN.value,
            "success_url": p.text("success_url"),
            "url": f"{self.public_url}/c/pay/{sid}",
        }
        self.sessions[sid] = session
        self.session_pi_data[sid] = {
            "metadata": pi_data.metadata() if pi_data else {},
            "description": pi_data.text("description") if pi_data else None,
            "transfer_group": pi_data.text("transfer_group") if pi_data else None,
        }
        return session

    def get_session(self, sid: str) -> Obj:
        session = self._get(self.sessions, sid, "checkout.session")
        if session["status"] == SessionStatus.OPEN and session["expires_at"] <= self.now():
            self._move_session(session, SessionStatus.EXPIRED, ADMIN)
        return session

    def list_sessions(self, raw: Obj) -> Obj:
        filters = {k: raw.pop(k) for k in ("payment_intent", "status") if k in raw}
        raw.pop("created", None)
        items = self._newest(self.sessions, lambda s: all(s.get(k) == v for k, v in filters.items()))
        return paginate(items, raw, "/v1/checkout/sessions")

    def _move_session(self, session: Obj, to: SessionStatus, ctx: Ctx) -> None:
        current = SessionStatus(session["status"])
        if to not in SESSION_TRANSITIONS[current]:
            raise StripeError.invalid(
                f'Only Checkout Sessions with a status in ["open"] can be {"expired" if to == "expired" else to}. '
                f"This Checkout Session has a status of {current}.",
            )
        session["status"] = to.value
        if to is SessionStatus.EXPIRED:
            self._emit("checkout.session.expired", session, ctx)

    def expire_session(self, sid: str, ctx: Ctx) -> Obj:
        session = self._get(self.sessions, sid, "checkout.session")
        self._move_session(session, SessionStatus.EXPIRED, ctx)
        return session

    def complete_session(self, sid: str, outcome: str) -> Obj:
        """Admin: the customer pays. `paid` (card), `async` (a bank debit: complete but unpaid until
        `async_result`), `expire`."""
        session = self.get_session(sid)
        if outcome == "expire":
            self._move_session(session, SessionStatus.EXPIRED, ADMIN)
            return session
        if outcome not in ("paid", "async"):
            raise StripeError.invalid(f"unknown checkout outcome {outcome!r}", param="outcome")
        self._move_session(session, SessionStatus.COMPLETE, ADMIN)
        extra = self.session_pi_data[sid]
        pi = {
            "id": new_id("pi"),
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_capturable": 0,
            "amount_received": 0,
            "client_secret": None,
            "created": self.now(),
            "currency": session["currency"],
            "description": extra["description"],
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": dict(extra["metadata"]),
            "payment_method_types": ["card"] if outcome == "paid" else ["sepa_debit"],
            "status": "processing",
            "transfer_group": extra["transfer_group"],
        }
        pi["client_secret"] = f"{pi['id']}_secret_{new_id('x', 16)[2:]}"
        self.payment_intents[pi["id"]] = pi
        session["payment_intent"] = pi["id"]
        if outcome == "paid":
            self._succeed(pi)
            session["payment_status"] = "paid"
        self._emit("checkout.session.completed", session, ADMIN)
        return session

    def async_result(self, sid: str, outcome: str) -> Obj:
        """Admin: the delayed payment of an `async` session succeeds or fails."""
        session = self.get_session(sid)
        pi = self.payment_intents.get(session["payment_intent"] or "")
        if session["status"] != SessionStatus.COMPLETE or pi is None or pi["status"] != "processing":
            raise StripeError.invalid(f"checkout session {sid} has no payment waiting for its async outcome")
        if outcome == "async_succeeded":
            self._succeed(pi)
            session["payment_status"] = "paid"
            self._emit("checkout.session.async_payment_succeeded", session, ADMIN)
        elif outcome == "async_failed":
            pi["status"] = "requires_payment_method"
            pi["last_payment_error"] = {"type": "invalid_request_error", "code": "payment_method_not_available",
                                        "message": "The debit was returned unpaid."}  # fmt: skip
            self._emit("payment_intent.payment_failed", pi, ADMIN)
            self._emit("checkout.session.async_payment_failed", session, ADMIN)
        else:
            raise StripeError.invalid(f"unknown async outcome {outcome!r}", param="outcome")
        return session

    def _succeed(self, pi: Obj) -> None:
        charge = {
            "id": new_id("ch"),
            "object": "charge",
            "amount": pi["amount"],
            "amount_captured": pi["amount"],
            "amount_refunded": 0,
            "balance_transaction": new_id("txn"),
            "captured": True,
            "created": self.now(),
            "currency": pi["currency"],
            "disputed": False,
            "livemode": False,
            "metadata": dict(pi["metadata"]),
            "paid": True,
            "payment_intent": pi["id"],
            "refunded": False,
            "status": "succeeded",
        }
        self.charges[charge["id"]] = charge
        pi["status"] = "succeeded"
        pi["amount_received"] = pi["amount"]
        pi["latest_charge"] = charge["id"]
        self._credit(None, pi["currency"], pi["amount"])
        self._record_bt(None, "charge", pi["amount"], pi["currency"], charge["id"], bt_id=charge["balance_transaction"],
                        category="charge")  # fmt: skip
        self._emit("charge.succeeded", charge, ADMIN)
        self._emit("payment_intent.succeeded", pi, ADMIN)

    def get_payment_intent(self, pid: str) -> Obj:
        return self._get(self.payment_intents, pid, "payment_intent")

    def get_charge(self, cid: str) -> Obj:
        return self._get(self.charges, cid, "charge")

    # -- refunds and disputes ------------------------------------------------------------------------------

    def _open_dispute_of(self, charge_id: str) -> Obj | None:
        return next(
            (
                d
                for d in self.disputes.values()
                if d["charge"] == charge_id and d["status"] == DisputeStatus.NEEDS_RESPONSE
            ),
            None,
        )

    def create_refund(self, raw: Obj, ctx: Ctx) -> Obj:
        p = Params(raw, frozenset({"payment_intent", "charge", "amount", "reason", "metadata", "instructions_email"}))
        pi_id, charge_id = p.text("payment_intent"), p.text("charge")
        if pi_id is None and charge_id is None:
            raise StripeError.missing_param("payment_intent")
        if pi_id is not None:
            pi = self.payment_intents.get(pi_id)
            if pi is None:
                raise StripeError.no_such("payment_intent", pi_id, param="payment_intent")
            if pi["latest_charge"] is None or pi["status"] != "succeeded":
                raise StripeError.invalid(
                    f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                    param="payment_intent",
                )
            charge = self.charges[pi["latest_charge"]]
        else:
            assert charge_id is not None
            charge = self.charges.get(charge_id) or {}
            if not charge:
                raise StripeError.no_such("charge", charge_id, param="charge")
        reason = p.text("reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise StripeError.invalid(f"Invalid reason: {reason}", param="reason")
        remaining = charge["amount"] - charge["amount_refunded"]
        amount = p.integer("amount", minimum=1)
        amount = remaining if amount is None else amount
        if remaining == 0:
            raise StripeError.invalid(
                f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
        if self._open_dispute_of(charge["id"]) is not None:
            raise StripeError.invalid(
                f"Charge {charge['id']} has been charged back; cannot issue a refund.", code="charge_disputed"
            )
        if amount > remaining:
            raise StripeError.invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                param="amount",
                code="amount_too_large",
            )
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": new_id("txn"),
            "charge": charge["id"],
            "created": self.now(),
            "currency": charge["currency"],
            "metadata": p.metadata(),
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        self._credit(None, charge["currency"], -amount)  # a refund may take the balance below zero, as on Stripe
        self._record_bt(None, "refund", -amount, charge["currency"], refund["id"], bt_id=refund["balance_transaction"],
                        category="refund")  # fmt: skip
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self._emit("refund.created", refund, ctx)
        self._emit("charge.refunded", charge, ctx, previous=previous)
        return refund

    def get_refund(self, rid: str) -> Obj:
        return self._get(self.refunds, rid, "refund")

    def open_dispute(self, pi_id: str, *, amount: int | None = None, reason: str = "fraudulent") -> Obj:
        """Admin: the cardholder disputes the payment; the amount leaves the balance at once (funds_withdrawn)."""
        pi = self.get_payment_intent(pi_id)
        if pi["latest_charge"] is None or pi["status"] != "succeeded":
            raise StripeError.invalid(f"payment intent {pi_id} has no successful charge to dispute")
        charge = self.charges[pi["latest_charge"]]
        if charge["disputed"]:
            raise StripeError.invalid(f"charge {charge['id']} is already disputed")
        amount = charge["amount"] - charge["amount_refunded"] if amount is None else amount
        if not 0 < amount <= charge["amount"] - charge["amount_refunded"]:
            raise StripeError.invalid("dispute amount must be within the charge's unrefunded amount", param="amount")
        charge["disputed"] = True
        dispute = {
            "id": new_id("dp"),
            "object": "dispute",
            "amount": amount,
            "balance_transactions": [],
            "charge": charge["id"],
            "created": self.now(),
            "currency": charge["currency"],
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": pi_id,
            "reason": reason,
            "status": DisputeStatus.NEEDS_RESPONSE.value,
        }
        self.disputes[dispute["id"]] = dispute
        self._emit("charge.dispute.created", dispute, ADMIN)
        self._credit(None, charge["currency"], -amount)
        withdrawn = self._record_bt(None, "adjustment", -amount, dispute["currency"], dispute["id"], category="dispute")
        dispute["balance_transactions"].append(copy.deepcopy(withdrawn))
        self._emit("charge.dispute.funds_withdrawn", dispute, ADMIN)
        return dispute

    def close_dispute(self, dp_id: str, outcome: str) -> Obj:
        """Admin: `won` (the funds come back: funds_reinstated, then closed) or `lost` (closed)."""
        dispute = self._get(self.disputes, dp_id, "dispute")
        try:
            to = DisputeStatus(outcome)
        except ValueError as err:
            raise StripeError.invalid(f"unknown dispute outcome {outcome!r}", param="outcome") from err
        current = DisputeStatus(dispute["status"])
        if to not in DISPUTE_TRANSITIONS[current]:
            raise StripeError.invalid(f"dispute {dp_id} is {current}; it cannot become {to}")
        previous = {"status": current.value}
        dispute["status"] = to.value
        if to is DisputeStatus.WON:
            self._credit(None, dispute["currency"], dispute["amount"])
            reinstated = self._record_bt(None, "adjustment", dispute["amount"], dispute["currency"], dispute["id"],
                                         category="dispute_reversal")  # fmt: skip
            dispute["balance_transactions"].append(copy.deepcopy(reinstated))
            self._emit("charge.dispute.funds_reinstated", dispute, ADMIN, previous=previous)
        self._emit("charge.dispute.closed", dispute, ADMIN, previous=previous)
        return dispute

    def get_dispute(self, dp_id: str) -> Obj:
        return self._get(self.disputes, dp_id, "dispute")

    # -- balance transactions ------------------------------------------------------------------------------

    _BT_PARAMS = frozenset({"limit", "starting_after", "ending_before", "created", "type", "source", "currency",
                            "payout", "expand"})  # fmt: skip
    _BT_EXPANDABLE = frozenset({"data.source", "data.source.transfer"})

    def _record_bt(
        self,
        account: str | None,
        type_: str,
        amount: int,
        currency: str,
        source: str | None,
        *,
        bt_id: str | None = None,
        description: str | None = None,
        category: str | None = None,
    ) -> Obj:
        """One movement of a balance (`amount` signed: negative is money out, as on Stripe)."""
        now = self.now()
        bt: Obj = {
            "id": bt_id or new_id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": now,
            "created": now,
            "currency": currency,
            "description": description,
            "exchange_rate": None,
            "fee": 0,
            "fee_details": [],
            "net": amount,
            "reporting_category": category or type_,
            "source": source,
            "status": "available",
            "type": type_,
        }
        self.balance_transactions[bt["id"]] = bt
        self.bt_accounts[bt["id"]] = account
        return bt

    def get_balance_transaction(self, bid: str, account: str | None) -> Obj:
        if bid not in self.balance_transactions or self.bt_accounts[bid] != account:
            raise StripeError.no_such("balance_transaction", bid)
        return self._expanded(self.balance_transactions[bid], [])

    def list_balance_transactions(self, raw: Obj, account: str | None) -> Obj:
        """`GET /v1/balance_transactions`: newest first; filters `type`, `source`, `currency`, `created`;
        `expand[]=data.source` (and `data.source.transfer`, a reversal's transfer)."""
        p = Params(raw, self._BT_PARAMS)
        expand = p.array("expand") or []
        for path in expand:
            if path not in self._BT_EXPANDABLE:
                raise StripeError.invalid(f"This property cannot be expanded ({path}).", param="expand")
        if p.has("payout"):
            raise StripeError.invalid("The emulator does not group balance transactions by payout.", param="payout")
        filters = {k: raw.pop(k) for k in ("type", "source", "currency") if k in raw}
        raw.pop("expand", None)
        in_window = created_filter(raw)
        items = [
            bt
            for bt in reversed(self.balance_transactions.values())  # insertion order is creation order
            if self.bt_accounts[bt["id"]] == account and in_window(bt) and all(bt[k] == v for k, v in filters.items())
        ]
        page = paginate(items, raw, "/v1/balance_transactions")
        page["data"] = [self._expanded(bt, expand) for bt in page["data"]]
        return page

    def _source_object(self, sid: str) -> Obj | None:
        for objects in (self.transfers, self.reversals, self.payouts, self.charges, self.refunds, self.disputes):
            if sid in objects:
                return objects[sid]
        return None

    def _expanded(self, bt: Obj, expand: list[str]) -> Obj:
        out = copy.deepcopy(bt)
        source = self._source_object(bt["source"]) if bt["source"] and expand else None
        if source is not None:
            source = copy.deepcopy(source)
            transfer = source.get("transfer")
            if "data.source.transfer" in expand and isinstance(transfer, str) and transfer in self.transfers:
                source["transfer"] = copy.deepcopy(self.transfers[transfer])
            out["source"] = source
        return out

    # -- discrepancies (admin): what a reconciliation must find -------------------------------------------

    def _transfer_of(self, reference: str) -> Obj:
        """The first transfer made for one of our payouts: its idempotency key (or payout id) in `metadata`, or the
        payout id as `transfer_group`."""
        found = [
            t
            for t in self.transfers.values()
            if reference
            in (t["metadata"].get("idempotency_key"), t["metadata"].get("payout_id"), t.get("transfer_group"))
        ]
        if not found:
            raise StripeError.no_such("transfer", reference, param="reference")
        return found[0]

    def _ensure_account(self, account_id: str) -> None:
        if account_id not in self.accounts:
            if not account_id.startswith("acct_"):
                raise StripeError.invalid("destination must be a connected account id (acct_...)", param="destination")
            self.create_account({}, account_id=account_id)

    def inject_discrepancy(
        self,
        kind: str,
        *,
        reference: str | None,
        amount: int | None,
        asset: str | None,
        destination: str | None,
    ) -> str | None:
        """Admin: make Stripe's books differ from what Prizeflow asked for, the way each difference shows on the
        platform's balance transactions. Returns the id of the statement line created or changed (a balance
        transaction id; `<txn>:fee` for a fee on one), None for `missing`."""
        currency = asset.lower() if asset else None
        if kind == "unrequested":
            if amount is None or currency is None or destination is None:
                raise StripeError.invalid("unrequested needs amount, asset and destination")
            self._ensure_account(destination)
            raw: Obj = {"amount": str(amount), "currency": currency, "destination": destination}
            return str(self.create_transfer(raw, ADMIN)["balance_transaction"])
        kinds: dict[str, Callable[[Obj, int | None, str | None, str | None], str | None]] = {
            "missing": self._d_missing,
            "amount": self._d_amount,
            "destination": self._d_destination,
            "duplicate": self._d_duplicate,
            "reversal": self._d_reversal,
            "fee": self._d_fee,
        }
        if kind not in kinds:
            raise StripeError.invalid(f"unknown discrepancy kind {kind!r}", param="kind")
        if reference is None:
            raise StripeError.missing_param("reference")
        return kinds[kind](self._transfer_of(reference), amount, currency, destination)

    def _bt_of(self, transfer: Obj) -> Obj:
        bt = self.balance_transactions.get(transfer["balance_transaction"])
        if bt is None:
            raise StripeError.invalid(f"transfer {transfer['id']} is no longer on the platform's books")
        return bt

    def _d_missing(self, transfer: Obj, _amount: int | None, _currency: str | None, _dest: str | None) -> None:
        self._forget_transfer(transfer)

    def _d_amount(self, transfer: Obj, amount: int | None, currency: str | None, _dest: str | None) -> str:
        if amount is None or amount < 1:
            raise StripeError.invalid("amount needs a positive amount", param="amount")
        bt = self._bt_of(transfer)
        self._rebook_transfer(transfer, bt, amount, currency or transfer["currency"], transfer["destination"])
        return str(bt["id"])

    def _d_destination(self, transfer: Obj, _amount: int | None, _currency: str | None, dest: str | None) -> str:
        if dest is None:
            raise StripeError.missing_param("destination")
        self._ensure_account(dest)
        bt = self._bt_of(transfer)
        self._rebook_transfer(transfer, bt, transfer["amount"], transfer["currency"], dest)
        return str(bt["id"])

    def _d_duplicate(self, transfer: Obj, _amount: int | None, _currency: str | None, _dest: str | None) -> str:
        raw: Obj = {
            "amount": str(transfer["amount"]),
            "currency": transfer["currency"],
            "destination": transfer["destination"],
            "metadata": dict(transfer["metadata"]),
        }
        if transfer.get("transfer_group"):
            raw["transfer_group"] = transfer["transfer_group"]
        return str(self.create_transfer(raw, ADMIN)["balance_transaction"])

    def _d_reversal(self, transfer: Obj, amount: int | None, _currency: str | None, _dest: str | None) -> str:
        # As a reversal made from the dashboard: no metadata of ours, only the transfer it reverses.
        reversal = self.create_reversal(transfer["id"], {} if amount is None else {"amount": str(amount)}, ADMIN)
        return str(reversal["balance_transaction"])

    def _d_fee(self, transfer: Obj, amount: int | None, _currency: str | None, _dest: str | None) -> str:
        if amount is None or amount < 1:
            raise StripeError.invalid("fee needs a positive amount", param="amount")
        # A per-transaction fee shows on the transaction's own balance transaction: `fee`, `fee_details`, `net`.
        bt = self._bt_of(transfer)
        bt["fee"] += amount
        bt["fee_details"].append({"amount": amount, "application": None, "currency": bt["currency"],
                                  "description": "Stripe fee", "type": "stripe_fee"})  # fmt: skip
        bt["net"] = bt["amount"] - bt["fee"]
        self._credit(None, bt["currency"], -amount)
        return f"{bt['id']}:fee"

    def _forget_transfer(self, transfer: Obj) -> None:
        """As if Stripe never made it: the transfer, its reversals and their balance transactions are gone, and the
        money is back where it was."""
        left = transfer["amount"] - transfer["amount_reversed"]
        self._credit(None, transfer["currency"], left)
        self._credit(transfer["destination"], transfer["currency"], -left)
        sources = {transfer["id"], transfer["destination_payment"]}
        for rid in [r for r, rev in self.reversals.items() if rev["transfer"] == transfer["id"]]:
            sources |= {rid, self.reversals[rid]["destination_payment_refund"]}
            del self.reversals[rid]
        for bid in [b for b, bt in self.balance_transactions.items() if bt["source"] in sources]:
            del self.balance_transactions[bid]
            del self.bt_accounts[bid]
        del self.transfers[transfer["id"]]

    def _rebook_transfer(self, transfer: Obj, bt: Obj, amount: int, currency: str, destination: str) -> None:
        """The transfer (and its balance transaction) now says `amount` `currency` to `destination`; the balances
        follow."""
        if amount < transfer["amount_reversed"]:
            raise StripeError.invalid("the amount cannot go below what was already reversed", param="amount")
        left = transfer["amount"] - transfer["amount_reversed"]
        self._credit(None, transfer["currency"], left)
        self._credit(transfer["destination"], transfer["currency"], -left)
        transfer.update(amount=amount, currency=currency, destination=destination)
        left = amount - transfer["amount_reversed"]
        self._credit(None, currency, -left)
        self._credit(destination, currency, left)
        bt.update(amount=-amount, currency=currency, net=-amount - bt["fee"])
        for bid, payment in self.balance_transactions.items():  # the connected account's side of the transfer
            if payment["source"] == transfer["destination_payment"]:
                payment.update(amount=amount, currency=currency, net=amount)
                self.bt_accounts[bid] = destination

    # -- events --------------------------------------------------------------------------------------------

    def get_event(self, eid: str, account: str | None) -> Obj:
        event = self.events.get(eid)
        if event is None or event.get("account") != account:
            raise StripeError.no_such("event", eid)
        return event

    def list_events(self, raw: Obj, account: str | None) -> Obj:
        type_ = raw.pop("type", None)
        types = raw.pop("types", None)
        in_window = created_filter(raw)
        raw.pop("delivery_success", None)
        wanted = [type_] if isinstance(type_, str) else types if isinstance(types, list) else None

        def keep(event: Obj) -> bool:
            if event.get("account") != account or not in_window(event):
                return False
            if wanted is None:
                return True
            return any(w == event["type"] or (w.endswith("*") and event["type"].startswith(w[:-1])) for w in wanted)

        items = [e for e in reversed(self.events.values()) if keep(e)]  # insertion order is creation order
        return paginate(items, raw, "/v1/events")

    # -- webhook endpoints ---------------------------------------------------------------------------------

    def add_endpoint(
        self,
        url: str,
        secret: str | None = None,
        *,
        enabled_events: list[str] | None = None,
        connect: bool | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        api_version: str | None = None,
    ) -> Endpoint:
        if not url.startswith(("http://", "https://")):
            raise StripeError.invalid("Invalid URL: must be an http(s) URL.", param="url")
        endpoint = Endpoint(
            id=new_id("we"),
            url=url,
            secrets=[secret or new_id("whsec", 32)],
            enabled_events=enabled_events or ["*"],
            connect=connect,
            created=self.now(),
            description=description,
            metadata=metadata or {},
            api_version=api_version,
        )
        self.endpoints[endpoint.id] = endpoint
        return endpoint

    def create_endpoint(self, raw: Obj) -> Obj:
        p = Params(raw, frozenset({"url", "enabled_events", "description", "metadata", "connect", "api_version"}))
        url = p.req_text("url")
        events = p.array("enabled_events")
        if not events or not all(isinstance(e, str) for e in events):
            raise StripeError.missing_param("enabled_events")
        endpoint = self.add_endpoint(
            url,
            enabled_events=events,
            connect=bool(p.flag("connect")),  # Stripe's default: an account (platform) endpoint
            description=p.text("description"),
            metadata=p.metadata(),
            api_version=p.text("api_version"),
        )
        return endpoint.to_object(with_secret=True)

    def get_endpoint(self, wid: str) -> Endpoint:
        endpoint = self.endpoints.get(wid)
        if endpoint is None:
            raise StripeError.no_such("webhook_endpoint", wid)
        return endpoint

    def list_endpoints(self, raw: Obj) -> Obj:
        items = sorted((e.to_object() for e in self.endpoints.values()), key=lambda o: o["created"], reverse=True)
        return paginate(items, raw, "/v1/webhook_endpoints")

    def delete_endpoint(self, wid: str) -> Obj:
        self.get_endpoint(wid)
        del self.endpoints[wid]
        return {"id": wid, "object": "webhook_endpoint", "deleted": True}

    def roll_secret(self, wid: str, secret: str | None = None, *, keep_old: bool = True) -> Endpoint:
        """Admin: a new current secret; with `keep_old`, deliveries carry a `v1` for the old ones too (the
        rotation window) until `finish_roll`."""
        endpoint = self.get_endpoint(wid)
        new = secret or new_id("whsec", 32)
        endpoint.secrets = [new, *endpoint.secrets] if keep_old else [new]
        return endpoint

    def finish_roll(self, wid: str) -> Endpoint:
        endpoint = self.get_endpoint(wid)
        endpoint.secrets = endpoint.secrets[:1]
        return endpoint


__all__ = ["Endpoint", "EventListener", "Obj", "Store"]
