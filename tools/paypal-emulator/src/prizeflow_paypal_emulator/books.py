"""The emulator's books, without I/O: OAuth2 tokens, payout batches and their items through their life cycle
(`rules.TRANSITIONS`), the account's money movements (what Transaction Search lists), idempotency (`PayPal-Request-Id`,
and `sender_batch_id` reused within 30 days refused as PayPal refuses it) and the webhook events each change emits.
Every method is synchronous and runs on the event loop: no locks.

Money: a currency's balance is never stored — it is the opening balance plus the visible movements, so a changed or
hidden movement (a discrepancy) moves it, and nothing can be paid twice by bookkeeping. An accepted batch reserves its
items' amounts and fees (a batch that does not fit is refused 422 INSUFFICIENT_FUNDS, nothing made); an item is debited
when it is processed into SUCCESS, UNCLAIMED or ONHOLD: a `T0001` (MassPay payment) line of its amount and a `T0104`
(MassPay fee) line of its fee. Money coming back is its own line: `T1114` (MassPay reversal: returned, reversed),
`T1115` (MassPay refund: the receiver refunded) and `T1108` (fee reversal: the fee of a returned item); the lines it
undoes turn `V`. A FAILED or BLOCKED item is never debited.

Time is the emulator's clock: each item waiting for PayPal's next word has a `due_at`; `run_due(now)` carries out what
came due, in order, each at its own due time.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from prizeflow_paypal_emulator.bodies import (
    BATCH_PAGE_MAX,
    REPORTING_PAGE_DEFAULT,
    REPORTING_PAGE_MAX,
    batch_request,
    page,
    reporting_window,
)
from prizeflow_paypal_emulator.entities import Batch, Event, Item, Line, link, new_event_id, new_id
from prizeflow_paypal_emulator.errors import OAuthError, PayPalError, detail
from prizeflow_paypal_emulator.money import balances_json, iso_ms, reporting_time
from prizeflow_paypal_emulator.rules import NOT_PAID, Outcome, Rule, Status, check, first_match
from prizeflow_paypal_emulator.settings import DAY_S, EmulatorSettings

REQUEST_ID_HEADER: Final = "PayPal-Request-Id"
KEPT_S: Final = 30 * DAY_S  # request ids are kept, and sender_batch_ids refused again, this long
PAYOUT: Final = "T0001"  # MassPay payment
FEE: Final = "T0104"  # MassPay (batch) fee
FEE_REVERSAL: Final = "T1108"  # fee reversal
REVERSAL: Final = "T1114"  # MassPay reversal transaction (returned, reversed)
REFUND: Final = "T1115"  # MassPay refund transaction (the receiver refunded)
FUNDING: Final = "T0300"  # general funding of the PayPal account (an operator's top-up)
SCOPE: Final = " ".join(
    (
        "https://uri.paypal.com/services/payments/payouts",
        "https://uri.paypal.com/services/reporting/search/read",
        "https://uri.paypal.com/services/applications/webhooks",
    )
)
ITEM_EVENTS: Final[Mapping[Status, str]] = {
    Status.SUCCESS: "PAYMENT.PAYOUTS-ITEM.SUCCEEDED",
    Status.UNCLAIMED: "PAYMENT.PAYOUTS-ITEM.UNCLAIMED",
    Status.RETURNED: "PAYMENT.PAYOUTS-ITEM.RETURNED",
    Status.ONHOLD: "PAYMENT.PAYOUTS-ITEM.HELD",
    Status.BLOCKED: "PAYMENT.PAYOUTS-ITEM.BLOCKED",
    Status.REFUNDED: "PAYMENT.PAYOUTS-ITEM.REFUNDED",
    Status.REVERSED: "PAYMENT.PAYOUTS-ITEM.REVERSED",
    Status.FAILED: "PAYMENT.PAYOUTS-ITEM.FAILED",
}
CANCELED: Final = "PAYMENT.PAYOUTS-ITEM.CANCELED"
DENIED: Final = "PAYMENT.PAYOUTS-ITEM.DENIED"
SUMMARIES: Final[Mapping[str, str]] = {
    "PAYMENT.PAYOUTS-ITEM.SUCCEEDED": "Payout item was successfully completed",
    "PAYMENT.PAYOUTS-ITEM.UNCLAIMED": "A payout item is unclaimed",
    "PAYMENT.PAYOUTS-ITEM.RETURNED": "A payout item was returned",
    "PAYMENT.PAYOUTS-ITEM.HELD": "A payout item is held",
    "PAYMENT.PAYOUTS-ITEM.BLOCKED": "A payout item is blocked",
    "PAYMENT.PAYOUTS-ITEM.REFUNDED": "A payout item was refunded",
    "PAYMENT.PAYOUTS-ITEM.REVERSED": "A payout item was reversed",
    "PAYMENT.PAYOUTS-ITEM.FAILED": "A payout item has failed",
    CANCELED: "A payout item was canceled",
    DENIED: "A payout item was denied",
    "PAYMENT.PAYOUTSBATCH.PROCESSING": "Payouts batch is being processed",
    "PAYMENT.PAYOUTSBATCH.SUCCESS": "Payouts batch completed successfully",
    "PAYMENT.PAYOUTSBATCH.DENIED": "Payouts batch got denied",
}


@dataclass(frozen=True)
class Stored:
    """The batch a PayPal-Request-Id made, and the body that made it."""

    body: str  # canonical JSON: key order is not a difference
    payout_batch_id: str
    at: float


@dataclass(frozen=True)
class Token:
    client_id: str
    expires_at: float


class Books:
    def __init__(
        self,
        settings: EmulatorSettings,
        now: Callable[[], float],
        listener: Callable[[Event], None] | None = None,
    ) -> None:
        self.settings = settings
        self.now = now
        self.listener = listener
        self.rules: list[Rule] = list(settings.rules)
        self.opening: dict[str, Decimal] = dict(settings.balances)
        self.tokens: dict[str, Token] = {}
        self.batches: dict[str, Batch] = {}
        self.items: dict[str, Item] = {}
        self.lines: dict[str, Line] = {}
        self.events: list[Event] = []
        self.request_ids: dict[tuple[str, str], Stored] = {}
        self.sender_batches: dict[str, str] = {}  # sender_batch_id → the payout batch made under it (the latest)
        self.created = 0  # batches made through the API (replays and refusals excluded)
        self._seq = 0

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    # -- OAuth2 ---------------------------------------------------------------------------------------------------
    def issue_token(self, client_id: str) -> dict[str, Any]:
        """A client-credentials access token, valid `token_ttl_s` on the emulator's clock."""
        token = "A21AA" + secrets.token_urlsafe(48)
        self.tokens[token] = Token(client_id, self.now() + self.settings.token_ttl_s)
        return {
            "scope": SCOPE,
            "access_token": token,
            "token_type": "Bearer",
            "app_id": self.settings.app_id,
            "expires_in": self.settings.token_ttl_s,
            "nonce": f"{iso_ms(self.now())}{secrets.token_urlsafe(16)}",
        }

    def authenticate(self, header: str) -> str:
        """The client id a `Bearer <token>` header belongs to; OAuthError 401 when it is missing, unknown or expired."""
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            raise OAuthError(401, "invalid_token", "Token signature verification failed")
        found = self.tokens.get(token)
        if found is None or found.expires_at <= self.now():
            self.tokens.pop(token, None)
            raise OAuthError(401, "invalid_token", "Access Token not found in cache")
        return found.client_id

    # -- money ----------------------------------------------------------------------------------------------------
    def balance(self, currency: str) -> Decimal:
        moved = sum((ln.value for ln in self.lines.values() if ln.currency == currency and not ln.hidden), Decimal(0))
        return self.opening.get(currency, Decimal(0)) + moved

    def reserved(self, currency: str) -> Decimal:
        """What accepted items not yet debited hold back (amount and fee)."""
        return sum(
            (
                i.value + self.fee_for(i.currency)
                for i in self.items.values()
                if i.currency == currency and i.status is Status.PENDING and not i.debited and not i.hidden
            ),
            Decimal(0),
        )

    def available(self, currency: str) -> Decimal:
        return self.balance(currency) - self.reserved(currency)

    def currencies(self) -> list[str]:
        return sorted(set(self.opening) | {ln.currency for ln in self.lines.values()})

    def balances(self) -> dict[str, Any]:
        return {
            "balances": balances_json({c: self.balance(c) for c in self.currencies()}),
            "available": balances_json({c: self.available(c) for c in self.currencies()}),
        }

    def fee_for(self, currency: str) -> Decimal:
        return self.settings.item_fees.get(currency, Decimal(0))

    def next_seq(self) -> int:
        """The order of what the books record, unique and increasing."""
        self._seq += 1
        return self._seq

    def record(
        self, code: str, item: Item | None, value: Decimal, currency: str, at: float, *, status: str = "S", **kw: Any
    ) -> Line:
        """A money movement; an item's carries its transaction id as `paypal_reference_id`."""
        txn = kw.pop("transaction_id", None) or new_id(17)
        line = Line(txn, self.next_seq(), at, code, item.payout_item_id if item else None, value, currency, status,
                    reference_id=item.transaction_id if item else None, **kw)  # fmt: skip
        self.lines[line.transaction_id] = line
        return line

    def top_up(self, currency: str, value: Decimal) -> Line:
        """Money added to the account (a bank transfer in, T0300)."""
        if value <= 0:
            raise ValueError("a top-up is a positive amount")
        return self.record(FUNDING, None, value, currency, self.now(), subject="Add funds from a bank")

    def item_lines(self, item: Item, *codes: str) -> list[Line]:
        return [ln for ln in self.lines.values() if ln.item_id == item.payout_item_id and ln.code in codes]

    def given_back(self, item: Item) -> Decimal:
        """What came back of an item's amount (its reversal and refund lines)."""
        return sum((ln.value for ln in self.item_lines(item, REVERSAL, REFUND) if not ln.hidden), Decimal(0))

    # -- payouts: create ------------------------------------------------------------------------------------------
    def create_batch(self, client_id: str, request_id: str | None, body: Any) -> dict[str, Any]:
        """POST /v1/payments/payouts: 201's body. The same PayPal-Request-Id with the same body answers the same
        batch (its latest status, as PayPal documents); with another body it is refused."""
        now = self.now()
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        if request_id:
            stored = self.request_ids.get((client_id, request_id))
            if stored is not None and now - stored.at <= KEPT_S and not self.batches[stored.payout_batch_id].hidden:
                if stored.body != canonical:
                    raise PayPalError(
                        400,
                        "DUPLICATE_REQUEST_ID",
                        "The value of PayPal-Request-Id header has already been used.",
                        details=[
                            detail(REQUEST_ID_HEADER, "Resend the request with a unique value", location="header")
                        ],
                    )
                return self.created_answer(self.batches[stored.payout_batch_id])
        req = batch_request(body)
        if req.sender_batch_id is not None:
            prior = self.batches.get(self.sender_batches.get(req.sender_batch_id, ""))
            if prior is not None and not prior.hidden and now - prior.created_at <= KEPT_S:
                raise PayPalError(
                    400,
                    "USER_BUSINESS_ERROR",
                    "User business error.",
                    details=[
                        {
                            "field": "SENDER_BATCH_ID",
                            "location": "body",
                            "issue": "Batch with given sender_batch_id already exists",
                            "link": [link(self._batch_url(prior.payout_batch_id), "self")],
                        }
                    ],
                )
        needed: dict[str, Decimal] = {}
        for ir in req.items:
            needed[ir.currency] = needed.get(ir.currency, Decimal(0)) + ir.value + self.fee_for(ir.currency)
        for currency, total in sorted(needed.items()):
            if self.available(currency) < total:
                raise PayPalError(422, "INSUFFICIENT_FUNDS", "Sender does not have sufficient funds. Please add "
                                  "funds and retry.")  # fmt: skip
        batch = Batch(new_id(), req.sender_batch_id, req.header, now, [])
        due = now + self.settings.process_ms / 1000
        for ir in req.items:
            rule = first_match(self.rules, ir.recipient_type, ir.receiver)
            outcome = rule.outcome if rule is not None else Outcome.SUCCESS
            item = Item(new_id(), batch.payout_batch_id, self.next_seq(), ir.recipient_type, ir.receiver, ir.value,
                        ir.currency, ir.sender_item_id, ir.note, ir.extra, outcome,
                        rule.error_name if rule is not None else None, due)  # fmt: skip
            self.items[item.payout_item_id] = item
            batch.item_ids.append(item.payout_item_id)
        self.batches[batch.payout_batch_id] = batch
        if req.sender_batch_id is not None:
            self.sender_batches[req.sender_batch_id] = batch.payout_batch_id
        if request_id:
            self.request_ids[(client_id, request_id)] = Stored(canonical, batch.payout_batch_id, now)
        self.created += 1
        return self.created_answer(batch)

    def created_answer(self, batch: Batch) -> dict[str, Any]:
        return {
            "batch_header": {
                "payout_batch_id": batch.payout_batch_id,
                "batch_status": batch.status,
                "sender_batch_header": dict(batch.sender_batch_header),
            },
            "links": [link(self._batch_url(batch.payout_batch_id), "self")],
        }

    def _batch_url(self, payout_batch_id: str) -> str:
        return f"{self.base_url}/v1/payments/payouts/{payout_batch_id}"

    # -- payouts: read ----------------------------------------------------------------------------------------------
    def batch(self, payout_batch_id: str) -> Batch:
        found = self.batches.get(payout_batch_id)
        if found is None or found.hidden:
            raise PayPalError.not_found()
        return found

    def item(self, payout_item_id: str) -> Item:
        found = self.items.get(payout_item_id)
        if found is None or found.hidden:
            raise PayPalError.not_found()
        return found

    def batch_items(self, batch: Batch) -> list[Item]:
        return [self.items[i] for i in batch.item_ids if not self.items[i].hidden]

    def batch_json(self, payout_batch_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        """GET /v1/payments/payouts/{id}: the header (amount and fees) and a page of items (`page`, `page_size` ≤ 1000,
        `total_required=true` for `total_items` and `total_pages`, `fields=batch_header` for the header only)."""
        batch = self.batch(payout_batch_id)
        size = page(query, "page_size", BATCH_PAGE_MAX, BATCH_PAGE_MAX, payouts=True)
        number = page(query, "page", 1, None, payouts=True)
        items = self.batch_items(batch)
        doc: dict[str, Any] = {}
        if query.get("total_required") == "true":
            doc["total_items"] = len(items)
            doc["total_pages"] = math.ceil(len(items) / size)
        doc["batch_header"] = batch.header(items)
        if query.get("fields") != "batch_header":
            chosen = items[(number - 1) * size : number * size]
            doc["items"] = [i.to_json(self.base_url, batch.sender_batch_id, detail=False) for i in chosen]
        url = self._batch_url(batch.payout_batch_id)
        links = [link(f"{url}?page={number}&page_size={size}", "self")]
        if number * size < len(items):
            links.append(link(f"{url}?page={number + 1}&page_size={size}", "next"))
        if number > 1:
            links.append(link(f"{url}?page={number - 1}&page_size={size}", "previous"))
        doc["links"] = links
        return doc

    def item_json(self, item: Item) -> dict[str, Any]:
        return item.to_json(self.base_url, self.batches[item.payout_batch_id].sender_batch_id, detail=True)

    # -- the clock --------------------------------------------------------------------------------------------------
    def run_due(self, now: float) -> int:
        """Carry out what came due by `now`, each at its own due time, in order; how many steps."""
        steps = 0
        while True:
            due = sorted(
                (i for i in self.items.values() if i.due_at is not None and i.due_at <= now and not i.hidden),
                key=lambda i: (i.due_at or 0.0, i.seq),
            )
            if not due:
                return steps
            for item in due:
                at, item.due_at = item.due_at or now, None
                if item.status is Status.UNCLAIMED:
                    self._give_back(item, Status.RETURNED, at)
                elif item.status is Status.PENDING and not item.processed:
                    self._process(item, item.outcome, at)
                steps += 1

    def _process(self, item: Item, outcome: Outcome, at: float) -> None:
        """The batch's processing reaches `item`: it becomes what `outcome` says."""
        batch = self.batches[item.payout_batch_id]
        if not batch.started:
            batch.started = True
            self._batch_moved(batch, at)
        item.processed, item.due_at = True, None
        if outcome is Outcome.PENDING:
            return
        item.time_processed = at
        if outcome in (Outcome.SUCCESS, Outcome.UNCLAIMED, Outcome.ONHOLD):
            status = Status(outcome.value)
            self._debit(item, at, "S" if status is Status.SUCCESS else "P")
            if status is Status.UNCLAIMED:
                item.shown_error = item.error
                item.due_at = at + self.settings.unclaimed_days * DAY_S
            self._move(item, status, at)
            return
        item.shown_error = item.error
        if outcome is Outcome.BLOCKED:
            self._move(item, Status.BLOCKED, at)
        else:
            self._move(item, Status.FAILED, at, DENIED if outcome is Outcome.DENIED else None)

    def _debit(self, item: Item, at: float, status: str) -> None:
        """The item's money leaves: T0001 of its amount, T0104 of its fee."""
        item.transaction_id = new_id(17)
        batch = self.batches[item.payout_batch_id]
        subject = batch.sender_batch_header.get("email_subject")
        self.record(PAYOUT, item, -item.value, item.currency, at, status=status, transaction_id=item.transaction_id,
                    subject=subject, note=item.note, counterparty=counterparty(item))  # fmt: skip
        fee = self.fee_for(item.currency)
        if fee > 0:
            self.record(FEE, item, -fee, item.currency, at, status=status, subject="MassPay fee")
        item.fee = fee

    def _settle_lines(self, item: Item, status: str, at: float) -> None:
        for ln in self.item_lines(item, PAYOUT, FEE):
            ln.status, ln.updated_at = status, at

    def _give_back(self, item: Item, status: Status, at: float, event: str | None = None) -> None:
        """An UNCLAIMED or ONHOLD item's money back (T1114, its fee T1108): RETURNED, or FAILED after a hold."""
        check(item.status, status)
        self.record(REVERSAL, item, item.value, item.currency, at, subject="Payout returned")
        if item.fee > 0:
            self.record(FEE_REVERSAL, item, item.fee, item.currency, at, subject="MassPay fee reversal")
        self._settle_lines(item, "V", at)
        item.fee, item.due_at = Decimal(0), None
        self._move(item, status, at, event)

    def _move(self, item: Item, status: Status, at: float, event: str | None = None) -> None:
        item.status = status
        self._emit_item(event or ITEM_EVENTS[status], item, at)
        self._batch_moved(self.batches[item.payout_batch_id], at)

    def _batch_moved(self, batch: Batch, at: float) -> None:
        """PENDING → PROCESSING once processing began → SUCCESS (no item left pending) or DENIED (nothing paid)."""
        if batch.status in ("SUCCESS", "DENIED") or not batch.started:
            return
        items = self.batch_items(batch)
        if any(i.status is Status.PENDING for i in items):
            new = "PROCESSING"
        elif items and all(i.status in NOT_PAID for i in items):
            new = "DENIED"
        else:
            new = "SUCCESS"
        if new == batch.status:
            return
        batch.status = new
        if new != "PROCESSING":
            batch.time_completed = at
        self._emit_batch(f"PAYMENT.PAYOUTSBATCH.{new}", batch, at)

    # -- payouts: cancel, and the operator's levers ------------------------------------------------------------------
    def cancel(self, payout_item_id: str) -> Item:
        """POST .../payouts-item/{id}/cancel: an UNCLAIMED item RETURNED, its money back (PAYMENT.PAYOUTS-ITEM.CANCELED
        is announced)."""
        item = self.item(payout_item_id)
        if item.cancelled:
            raise PayPalError(400, "ITEM_ALREADY_CANCELLED", "The requested item is already cancelled.")
        if item.status is not Status.UNCLAIMED:
            raise PayPalError(400, "ITEM_INCORRECT_STATUS", "You can only cancel items that have an Unclaimed state.")
        item.cancelled = True
        self._give_back(item, Status.RETURNED, self.now(), CANCELED)
        return item

    def release(self, payout_item_id: str) -> Item:
        """SUCCESS now: a held item released, an unclaimed one claimed, a pending one paid."""
        item, at = self.item(payout_item_id), self.now()
        check(item.status, Status.SUCCESS)
        if item.status is Status.PENDING:
            self._process(item, Outcome.SUCCESS, at)
            return item
        self._settle_lines(item, "S", at)
        item.shown_error, item.due_at = None, None
        self._move(item, Status.SUCCESS, at)
        return item

    def return_item(self, payout_item_id: str) -> Item:
        """An UNCLAIMED item returned now (before its 30 days), or a held one PayPal's review returns."""
        item = self.item(payout_item_id)
        self._give_back(item, Status.RETURNED, self.now())
        return item

    def refund(self, payout_item_id: str) -> Item:
        """The receiver refunds a paid item: T1115 of its amount (the fee is not given back)."""
        return self._undo(payout_item_id, Status.REFUNDED, REFUND, "Payout refunded by the receiver")

    def reverse(self, payout_item_id: str) -> Item:
        """PayPal reverses a paid item (a dispute, fraud): T1114 of its amount (the fee is not given back)."""
        return self._undo(payout_item_id, Status.REVERSED, REVERSAL, "Payout reversed")

    def _undo(self, payout_item_id: str, status: Status, code: str, subject: str) -> Item:
        item, at = self.item(payout_item_id), self.now()
        check(item.status, status)
        left = item.value - self.given_back(item)
        if left > 0:
            self.record(code, item, left, item.currency, at, subject=subject)
        for ln in self.item_lines(item, PAYOUT):
            ln.status, ln.updated_at = "V", at
        self._move(item, status, at)
        return item

    def fail(self, payout_item_id: str, error: str | None = None) -> Item:
        """A pending item failed (nothing paid), or a held one (its money back)."""
        item, at = self.item(payout_item_id), self.now()
        check(item.status, Status.FAILED)
        item.shown_error = error or item.error or "RECEIVER_ACCOUNT_LOCKED"
        if item.status is Status.ONHOLD:
            self._give_back(item, Status.FAILED, at)
            return item
        batch = self.batches[item.payout_batch_id]
        if not batch.started:
            batch.started = True
            self._batch_moved(batch, at)
        item.processed, item.due_at, item.time_processed = True, None, at
        self._move(item, Status.FAILED, at)
        return item

    # -- Transaction Search -----------------------------------------------------------------------------------------
    def search(self, query: Mapping[str, str]) -> dict[str, Any]:
        """GET /v1/reporting/transactions: the movements initiated in [start_date, end_date] (at most 31 days apart),
        oldest first, a page at a time (`page_size` ≤ 500, default 100)."""
        start, end = reporting_window(query)
        size = page(query, "page_size", REPORTING_PAGE_DEFAULT, REPORTING_PAGE_MAX)
        number = page(query, "page", 1, None)
        fields = {f.strip() for f in query.get("fields", "transaction_info").split(",")}
        filters = {
            "transaction_id": lambda ln: ln.transaction_id,
            "transaction_type": lambda ln: ln.code,
            "transaction_status": lambda ln: ln.status,
            "transaction_currency": lambda ln: ln.currency,
        }
        wanted = {name: query[name] for name in filters if query.get(name)}
        refreshed = self.now() - self.settings.reporting_delay_s
        chosen = sorted(
            (
                ln
                for ln in self.lines.values()
                if not ln.hidden
                and start <= ln.at <= end
                and ln.at <= refreshed
                and all(filters[name](ln) == value for name, value in wanted.items())
            ),
            key=lambda ln: (ln.at, ln.seq),
        )
        payer_info = bool(fields & {"all", "payer_info"})
        shown = chosen[(number - 1) * size : number * size]
        url = f"{self.base_url}/v1/reporting/transactions"
        return {
            "transaction_details": [ln.to_json(self.settings.account_id, payer_info=payer_info) for ln in shown],
            "account_number": self.settings.account_id,
            "start_date": query["start_date"],
            "end_date": query["end_date"],
            "last_refreshed_datetime": reporting_time(refreshed),
            "page": number,
            "total_items": len(chosen),
            "total_pages": math.ceil(len(chosen) / size),
            "links": [link(f"{url}?page={number}&page_size={size}", "self")],
        }

    # -- events -----------------------------------------------------------------------------------------------------
    def _emit_item(self, event_type: str, item: Item, at: float) -> None:
        self._emit(event_type, "payouts_item", item.payout_item_id, self.item_json(item), at)

    def _emit_batch(self, event_type: str, batch: Batch, at: float) -> None:
        resource = {
            "batch_header": batch.header(self.batch_items(batch)),
            "links": [link(self._batch_url(batch.payout_batch_id), "self")],
        }
        self._emit(event_type, "payouts", batch.payout_batch_id, resource, at)

    def _emit(self, event_type: str, resource_type: str, subject_id: str, resource: dict[str, Any], at: float) -> None:
        event_id = new_event_id()
        url = f"{self.base_url}/v1/notifications/webhooks-events/{event_id}"
        body = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": iso_ms(at),
            "resource_type": resource_type,
            "event_type": event_type,
            "summary": SUMMARIES.get(event_type, event_type),
            "resource": resource,
            "links": [link(url, "self"), link(f"{url}/resend", "resend", "POST")],
        }
        event = Event(event_id, event_type, at, subject_id, json.dumps(body, separators=(",", ":")).encode())
        self.events.append(event)
        if self.listener is not None:
            self.listener(event)


def counterparty(item: Item) -> dict[str, Any]:
    """Transaction Search's `payer_info` of a payout line: who was paid."""
    if item.recipient_type == "EMAIL":
        return {"email_address": item.receiver}
    if item.recipient_type == "PHONE":
        return {"phone_number": {"national_number": item.receiver.lstrip("+")}}
    return {"account_id": item.receiver}


__all__ = [
    "CANCELED",
    "DENIED",
    "FEE",
    "FEE_REVERSAL",
    "FUNDING",
    "ITEM_EVENTS",
    "KEPT_S",
    "PAYOUT",
    "REFUND",
    "REQUEST_ID_HEADER",
    "REVERSAL",
    "Books",
    "Stored",
    "Token",
    "counterparty",
]
