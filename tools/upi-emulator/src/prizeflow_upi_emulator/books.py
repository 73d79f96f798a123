"""The emulator's books, without I/O: contacts, fund accounts and their validations, payouts through their life cycle
(`rules.TRANSITIONS`), the business account's transactions, idempotency keys and the webhook events each change
emits. Every method is synchronous and runs on the event loop: no locks.

Money: the account's balance is never stored — it is the sum of the visible transactions (credits less debits), so a
change to a payout (a discrepancy) or a hidden transaction moves it, and nothing can be paid twice by bookkeeping. A
payout is debited its amount plus fees (tax included) when it starts `processing`; a payout that ends `failed` or
`reversed` after that gets it back as a reversal transaction (docs x/payouts/states-life-cycle: "credits your business
account with the original payout amount including fees and tax").

Time is the emulator's clock: each payout waiting for the bank's word has a `due_at`; `run_due(now)` carries out
what came due, in order, each at its own due time (so a clock moved three hours shows a reversal dated when it was due).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prizeflow_upi_emulator.bodies import (
    IDEMPOTENCY_KEY,
    PayoutRequest,
    account_number,
    contact_request,
    count_skip,
    fund_account_request,
    notes,
    only,
    payout_request,
    window,
)
from prizeflow_upi_emulator.entities import (
    Contact,
    Event,
    FundAccount,
    FundAccountValidation,
    Payout,
    Transaction,
    new_id,
    new_utr,
)
from prizeflow_upi_emulator.errors import RazorpayError
from prizeflow_upi_emulator.rules import (
    EVENTS,
    GIVES_BACK,
    UPDATED,
    Outcome,
    Rule,
    Status,
    Validation,
    check,
    first_match,
    status_details,
)
from prizeflow_upi_emulator.settings import RTGS_MINIMUM, EmulatorSettings

IDEMPOTENCY_HEADER = "X-Payout-Idempotency"
ALL_MODES = "*"


@dataclass(frozen=True)
class Stored:
    """The first answer under an idempotency key, and the body it answered."""

    body: str  # canonical JSON: key order is not a difference, 100 and 100.0 are
    answer: dict[str, Any]


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
        self.contacts: dict[str, Contact] = {}
        self.fund_accounts: dict[str, FundAccount] = {}
        self.validations: dict[str, FundAccountValidation] = {}
        self.payouts: dict[str, Payout] = {}
        self.transactions: dict[str, Transaction] = {}
        self.events: list[Event] = []
        self.idempotency: dict[tuple[str, str], Stored] = {}
        self.down: set[str] = set()  # modes whose partner bank is down (ALL_MODES: every mode)
        self.created = 0  # payouts created through the API (replays and refusals excluded)
        self._seq = 0
        if settings.opening_balance:
            self.top_up(settings.opening_balance, payer="Opening balance")

    # -- money ----------------------------------------------------------------------------------------------------
    def balance(self) -> int:
        return sum(c - d for c, d in (self._moves(t) for t in self.transactions.values() if not t.hidden))

    def _moves(self, txn: Transaction) -> tuple[int, int]:
        if txn.kind == "payout":
            p = self.payouts[txn.subject_id]
            return 0, p.amount + p.fees
        return txn.credit, txn.debit

    def fee_for(self, mode: str) -> tuple[int, int]:
        """(fees including tax, tax) of one payout in `mode`."""
        base = self.settings.fees.get(mode, 0)
        tax = (base * self.settings.tax_bps + 5_000) // 10_000
        return base + tax, tax

    def next_seq(self) -> int:
        """The order of what the books record (payouts and transactions), unique and increasing."""
        self._seq += 1
        return self._seq

    def record(self, kind: str, subject_id: str, at: float, **fields: Any) -> Transaction:
        txn = Transaction(new_id("txn"), self.next_seq(), int(at), kind, subject_id, **fields)
        self.transactions[txn.id] = txn
        return txn

    def top_up(self, amount: int, *, payer: str = "Prizeflow Treasury") -> Transaction:
        """Money added to the business account (a bank transfer in); queued payouts that now fit are processed."""
        if amount < 1:
            raise RazorpayError.invalid("amount must be a positive number of paise", "amount")
        transfer = new_id("bt")
        source = {
            "id": transfer,
            "entity": "bank_transfer",
            "payer_name": payer,
            "payer_account": "6543266545411243",
            "payer_ifsc": "HDFC0000001",
            "mode": "NEFT",
            "bank_reference": new_utr("NEFT"),
            "amount": amount,
        }
        txn = self.record("bank_transfer", transfer, self.now(), credit=amount, source=source)
        self.release_queued()
        return txn

    def returned(self, payout: Payout) -> int:
        """What came back of a payout's debit (reversal transactions)."""
        return sum(
            t.credit
            for t in self.transactions.values()
            if t.kind == "reversal" and t.subject_id == payout.id and not t.hidden
        )

    def give_back(self, payout: Payout, amount: int, at: float) -> Transaction:
        """A reversal transaction of `amount` for a debited payout; the part of it that is fees and tax is
        shown as such (fees come back last)."""
        principal_left = max(payout.amount - self.returned(payout), 0)
        fees = max(amount - principal_left, 0)
        tax = min(payout.tax, fees)
        rid = new_id("rvrsl")
        source = {
            "id": rid,
            "entity": "reversal",
            "payout_id": payout.id,
            "amount": amount,
            "fees": fees,
            "tax": tax,
            "utr": payout.utr,
            "created_at": int(at),
        }
        return self.record("reversal", payout.id, at, credit=amount, source=source)

    # -- contacts and fund accounts --------------------------------------------------------------------------------
    def create_contact(self, body: Mapping[str, Any]) -> Contact:
        """A new contact, or the existing one with the same name, email, phone, type and reference."""
        req = contact_request(body)
        made = Contact(
            new_id("cont"), req.name, req.email, req.contact, req.type, req.reference_id, req.notes, int(self.now())
        )
        existing = next((c for c in self.contacts.values() if c.identity == made.identity), None)
        if existing is not None:
            return existing
        self.contacts[made.id] = made
        return made

    def contact(self, contact_id: str) -> Contact:
        found = self.contacts.get(contact_id)
        if found is None:
            raise RazorpayError.no_such_id()
        return found

    def create_fund_account(self, body: Mapping[str, Any]) -> FundAccount:
        """A new fund account, or the existing one with the same contact and details (fund accounts are never
        edited)."""
        req = fund_account_request(body)
        if req.contact_id not in self.contacts:
            raise RazorpayError.invalid("The contact id provided does not exist", "contact_id")
        made = FundAccount(
            new_id("fa"),
            req.contact_id,
            req.account_type,
            int(self.now()),
            req.vpa,
            req.holder,
            req.ifsc,
            req.account_number,
        )
        existing = next((f for f in self.fund_accounts.values() if f.identity == made.identity), None)
        if existing is not None:
            return existing
        self.fund_accounts[made.id] = made
        return made

    def fund_account(self, fund_account_id: str, field: str = "id") -> FundAccount:
        found = self.fund_accounts.get(fund_account_id)
        if found is None:
            raise RazorpayError.no_such_id(field)
        return found

    def holder_name(self, fa: FundAccount) -> str:
        return fa.holder or self.contacts[fa.contact_id].name

    # -- validations -----------------------------------------------------------------------------------------------
    def create_validation(self, body: Mapping[str, Any]) -> FundAccountValidation:
        """A penny drop (bank account: `amount` paise, default 100, leaves when it completes) or a VPA lookup,
        `created` now and completed `validation_ms` later."""
        only(body, frozenset({"account_number", "fund_account", "amount", "currency", "notes"}))
        account_number(body, self.settings.account_number)
        target = body.get("fund_account")
        if not isinstance(target, dict) or not isinstance(target.get("id"), str):
            raise RazorpayError.invalid("The fund account.id field is required.", "fund_account.id")
        fa = self.fund_account(target["id"], "fund_account.id")
        amount = body.get("amount", 100 if fa.account_type == "bank_account" else None)
        if fa.account_type == "bank_account" and (
            not isinstance(amount, int) or isinstance(amount, bool) or amount < 100
        ):
            raise RazorpayError.invalid("The amount must be an integer of at least 100.", "amount")
        if fa.account_type == "vpa" and amount is not None:
            raise RazorpayError.invalid("amount is/are not required and should not be sent", "amount")
        if body.get("currency", "INR") != "INR":
            raise RazorpayError.invalid("The selected currency is invalid.", "currency")
        if amount is not None and self.balance() < amount:
            raise _insufficient()
        now = self.now()
        made = FundAccountValidation(
            new_id("fav"), fa.id, amount, notes(body), int(now), now + self.settings.validation_ms / 1000
        )
        self.validations[made.id] = made
        return made

    def validation(self, validation_id: str) -> FundAccountValidation:
        found = self.validations.get(validation_id)
        if found is None:
            raise RazorpayError.no_such_id()
        return found

    def _complete_validation(self, v: FundAccountValidation, at: float) -> None:
        v.due_at = None
        fa = self.fund_accounts[v.fund_account_id]
        rule = first_match(self.rules, fa.destination)
        found = rule.validation if rule is not None else Validation.ACTIVE
        if found is Validation.FAILED:
            v.status = "failed"
            self._emit("fund_account.validation.failed", v.id, self._validation_payload(v), at)
            return
        v.status, v.account_status = "completed", found.value
        if found is Validation.ACTIVE:
            v.registered_name = (rule.registered_name if rule else None) or self.holder_name(fa)
        if v.amount is not None:
            v.utr = new_utr("IMPS")
            source = {"id": v.id, "entity": "fund_account.validation", "fund_account_id": fa.id, "amount": v.amount}
            self.record("fund_account.validation", v.id, at, debit=v.amount, source=source)
        self._emit("fund_account.validation.completed", v.id, self._validation_payload(v), at)

    def _validation_payload(self, v: FundAccountValidation) -> dict[str, Any]:
        return {"fund_account.validation": {"entity": v.to_json(self.fund_accounts[v.fund_account_id])}}

    # -- payouts ---------------------------------------------------------------------------------------------------
    def create_payout(self, key_id: str, key: str | None, body: Any) -> dict[str, Any]:
        """A payout under an idempotency key: the same key and body answer the first answer again; the same key
        with another body is refused (docs api/x/payout-idempotency/make-request)."""
        if not key:
            raise RazorpayError.invalid(
                "Idempotency key is missing. Include idempotency header and key in the request.", IDEMPOTENCY_HEADER
            )
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise RazorpayError.invalid(
                "The idempotency key must be 4 to 36 letters, digits, hyphens, underscores or spaces.",
                IDEMPOTENCY_HEADER,
            )
        if not isinstance(body, dict):
            raise RazorpayError.invalid("The request body must be a JSON object.")
        stored = self.idempotency.get((key_id, key))
        if stored is not None:
            if stored.body != _canonical(body):
                raise RazorpayError.invalid(
                    "Different request body sent for the same Idempotency Header", IDEMPOTENCY_HEADER
                )
            return _copy(stored.answer)
        req = payout_request(body, self.settings.account_number)
        payout = self._new_payout(req, key)
        answer = payout.to_json(self.settings.account_number)
        self.idempotency[(key_id, key)] = Stored(_canonical(body), answer)
        return _copy(answer)

    def _new_payout(self, req: PayoutRequest, key: str | None) -> Payout:
        fa = self.fund_account(req.fund_account_id, "fund_account_id")
        if not fa.active:
            raise RazorpayError.invalid("Payouts cannot be made to an inactive fund account.", "fund_account_id")
        wanted = "vpa" if req.mode == "UPI" else "bank_account"
        if fa.account_type != wanted:
            raise RazorpayError.invalid(
                f"Invalid combination of payout mode ({req.mode}) and beneficiary account type ({fa.account_type})",
                "mode",
            )
        limit = self.settings.limits.get(req.mode)
        if limit is not None and req.amount > limit:
            raise RazorpayError.invalid(f"Amount exceeds the maximum amount allowed for {req.mode}.", "amount")
        if req.mode == "RTGS" and req.amount < RTGS_MINIMUM:
            raise RazorpayError.invalid("Amount is less than the minimum amount allowed for RTGS.", "amount")
        rule = first_match(self.rules, fa.destination, req.mode)
        approval = rule is not None and rule.payout in (Outcome.PENDING, Outcome.REJECTED)
        fees, _tax = self.fee_for(req.mode)
        if (
            self.settings.low_balance == "refuse"
            and not req.queue_if_low_balance
            and not approval
            and not self._is_down(req.mode)
            and self.balance() < req.amount + fees
        ):
            raise _insufficient()
        now = self.now()
        payout = Payout(
            new_id("pout"),
            self.next_seq(),
            fa.id,
            req.amount,
            req.mode,
            req.purpose,
            req.reference_id,
            req.narration,
            req.notes,
            req.queue_if_low_balance,
            int(now),
            key,
            rule,
        )
        self.payouts[payout.id] = payout
        self.created += 1
        if approval:
            self._enter(payout, Status.PENDING, "pending_approval", now)
            if rule is not None and rule.payout is Outcome.REJECTED:
                payout.due_at = now + self.settings.decision_ms / 1000
        else:
            self._start(payout, now)
        return payout

    def payout(self, payout_id: str) -> Payout:
        found = self.payouts.get(payout_id)
        if found is None or found.hidden:
            raise RazorpayError.no_such_id()
        return found

    def list_payouts(self, query: Mapping[str, str]) -> list[Payout]:
        """Newest first, filtered as RazorpayX filters (contact_id, fund_account_id, mode, reference_id, status,
        from/to), paged with count and skip."""
        account_number(query, self.settings.account_number)
        count, skip = count_skip(query)
        start, end = window(query)
        contact_id = query.get("contact_id")
        chosen = [
            p
            for p in self.payouts.values()
            if not p.hidden
            and all(
                query.get(k) in (None, v)
                for k, v in (
                    ("fund_account_id", p.fund_account_id),
                    ("mode", p.mode),
                    ("reference_id", p.reference_id),
                    ("status", p.status),
                )
            )
            and (contact_id is None or self.fund_accounts[p.fund_account_id].contact_id == contact_id)
            and (start is None or p.created_at >= start)
            and (end is None or p.created_at <= end)
        ]
        chosen.sort(key=lambda p: p.seq, reverse=True)
        return chosen[skip : skip + count]

    def cancel(self, payout_id: str) -> Payout:
        """Only a queued payout can be cancelled (docs api/x/payouts/cancel)."""
        payout = self.payout(payout_id)
        if payout.status is not Status.QUEUED:
            status = payout.status.value if payout.status else "unknown"
            raise RazorpayError.invalid(f"Only queued payouts can be cancelled; this payout is {status}.", "id")
        self._enter(payout, Status.CANCELLED, None, self.now())
        return payout

    def _is_down(self, mode: str) -> bool:
        return ALL_MODES in self.down or mode in self.down

    def _start(self, payout: Payout, at: float) -> None:
        """Into processing if the partner bank is up and the balance covers amount and fees; else queued (or failed
        for want of money when the payout may not wait)."""
        if self._is_down(payout.mode):
            self._wait(payout, "gateway_degraded", at)
            return
        fees, tax = self.fee_for(payout.mode)
        if self.balance() < payout.amount + fees:
            if payout.queue_if_low_balance:
                self._wait(payout, "low_balance", at)
            else:
                self._enter(payout, Status.FAILED, "insufficient_funds", at)
            return
        payout.fees, payout.tax, payout.debited = fees, tax, True
        self.record("payout", payout.id, at)
        self._enter(payout, Status.PROCESSING, None, at)
        payout.due_at = at + self.settings.settle_ms.get(payout.mode, 0) / 1000

    def _wait(self, payout: Payout, reason: str, at: float) -> None:
        if payout.status is not Status.QUEUED:
            self._enter(payout, Status.QUEUED, reason, at)
        elif payout.status_details is None or payout.status_details["reason"] != reason:
            payout.status_details = status_details(reason)
            self._emit_payout(UPDATED, payout, at)

    def release_queued(self) -> None:
        """Queued payouts in the order they came (FIFO); one that does not fit yet is passed over for the next."""
        now = self.now()
        for payout in sorted(self.payouts.values(), key=lambda p: p.seq):
            if payout.status is Status.QUEUED and not payout.hidden:
                self._start(payout, now)

    def set_down(self, mode: str, down: bool) -> None:
        """The partner bank down for a mode (or every mode): new payouts queue (`gateway_degraded`); when it is up
        again what waited is processed."""
        if down:
            self.down.add(mode)
        else:
            self.down.discard(mode)
            self.release_queued()

    def _enter(self, payout: Payout, status: Status, reason: str | None, at: float) -> None:
        if payout.status is not None:
            check(payout.status, status)
        payout.status = status
        payout.status_details = status_details(reason) if reason else None
        event = EVENTS[status]
        if event is not None:
            self._emit_payout(event, payout, at)

    def _end_with_refund(self, payout: Payout, status: Status, reason: str, at: float) -> None:
        """Failed or reversed: whatever of its debit has not come back yet comes back first."""
        if payout.debited:
            left = payout.amount + payout.fees - self.returned(payout)
            if left > 0:
                self.give_back(payout, left, at)
        self._enter(payout, status, reason, at)

    # -- the bank's word, when it is due ---------------------------------------------------------------------------
    def run_due(self, now: float) -> int:
        """Carry out everything due by `now`, earliest first; how many steps were taken."""
        steps = 0
        while True:
            due: list[tuple[float, int, Payout | FundAccountValidation]] = [
                (p.due_at, p.seq, p) for p in self.payouts.values() if p.due_at is not None and p.due_at <= now
            ]
            due += [(v.due_at, 0, v) for v in self.validations.values() if v.due_at is not None and v.due_at <= now]
            if not due:
                return steps
            at, _seq, item = min(due, key=lambda d: (d[0], d[1]))
            if isinstance(item, Payout):
                self._payout_due(item, at)
            else:
                self._complete_validation(item, at)
            steps += 1

    def _payout_due(self, payout: Payout, at: float) -> None:
        payout.due_at = None
        rule = payout.rule
        outcome = rule.payout if rule is not None else Outcome.PROCESSED
        reason = rule.failure_reason if rule is not None else "gateway_technical_error"
        if payout.status is Status.PENDING:
            self._enter(payout, Status.REJECTED, "payout_rejected", at)
        elif payout.status is Status.PROCESSING:
            if outcome in (Outcome.PROCESSED, Outcome.REVERSED_AFTER_PROCESSED, Outcome.PENDING, Outcome.REJECTED):
                self._processed(payout, at)
            elif outcome is Outcome.FAILED:
                self._end_with_refund(payout, Status.FAILED, reason, at)
            elif outcome is Outcome.REVERSED:
                payout.utr = new_utr(payout.mode)
                self._end_with_refund(payout, Status.REVERSED, reason, at)
            else:  # deemed success: processing until an operator settles it
                payout.status_details = status_details("beneficiary_bank_confirmation_pending")
                self._emit_payout(UPDATED, payout, at)
        elif payout.status is Status.PROCESSED and not payout.hidden:
            self._end_with_refund(payout, Status.REVERSED, reason, at)

    def _processed(self, payout: Payout, at: float) -> None:
        payout.utr = payout.utr or new_utr(payout.mode)
        self._enter(payout, Status.PROCESSED, "payout_processed", at)
        if payout.rule is not None and payout.rule.payout is Outcome.REVERSED_AFTER_PROCESSED:
            payout.due_at = at + payout.rule.after_s

    # -- operators' levers (admin) ---------------------------------------------------------------------------------
    def approve(self, payout_id: str) -> Payout:
        payout = self._in(payout_id, Status.PENDING)
        payout.due_at = None
        self._start(payout, self.now())
        return payout

    def reject(self, payout_id: str) -> Payout:
        payout = self._in(payout_id, Status.PENDING)
        payout.due_at = None
        self._enter(payout, Status.REJECTED, "payout_rejected", self.now())
        return payout

    def settle(self, payout_id: str, outcome: str, reason: str | None) -> Payout:
        """The bank's answer now for a processing payout: processed, failed or reversed (a `processed` one can only be
        reversed); a queued one can only fail (RazorpayX fails what waited too long)."""
        payout = self.payout(payout_id)
        target = Status(outcome)
        if payout.status is None or target not in GIVES_BACK | {Status.PROCESSED}:
            raise ValueError("outcome is processed, failed or reversed")
        check(payout.status, target)
        payout.due_at = None
        now = self.now()
        if target is Status.PROCESSED:
            self._processed(payout, now)
        else:
            self._end_with_refund(payout, target, reason or "gateway_technical_error", now)
        return payout

    def _in(self, payout_id: str, status: Status) -> Payout:
        payout = self.payout(payout_id)
        if payout.status is not status:
            raise ValueError(f"the payout is {payout.status}, not {status.value}")
        return payout

    # -- the statement ---------------------------------------------------------------------------------------------
    def statement(self) -> list[tuple[Transaction, int]]:
        """Every visible transaction, oldest first, with the balance after it."""
        running = 0
        out = []
        for txn in sorted(self.transactions.values(), key=lambda t: t.seq):
            if txn.hidden:
                continue
            credit, debit = self._moves(txn)
            running += credit - debit
            out.append((txn, running))
        return out

    def list_transactions(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """Newest first; `from`/`to` inclusive; paged with count (<= 100) and skip."""
        account_number(query, self.settings.account_number)
        count, skip = count_skip(query)
        start, end = window(query)
        rows = [
            (t, b)
            for t, b in self.statement()
            if (start is None or t.created_at >= start) and (end is None or t.created_at <= end)
        ]
        rows.reverse()
        return [self.transaction_json(t, b) for t, b in rows[skip : skip + count]]

    def transaction(self, txn_id: str) -> dict[str, Any]:
        for txn, balance in self.statement():
            if txn.id == txn_id:
                return self.transaction_json(txn, balance)
        raise RazorpayError.no_such_id()

    def transaction_json(self, txn: Transaction, balance: int) -> dict[str, Any]:
        credit, debit = self._moves(txn)
        if txn.kind == "payout":
            source = self.payouts[txn.subject_id].to_json(self.settings.account_number)
        else:
            source = dict(txn.source)
        return {
            "id": txn.id,
            "entity": "transaction",
            "account_number": self.settings.account_number,
            "amount": credit or debit,
            "currency": "INR",
            "credit": credit,
            "debit": debit,
            "balance": balance,
            "source": source,
            "created_at": txn.created_at,
        }

    def banking_balance(self) -> dict[str, Any]:
        amount = self.balance()
        return {
            "entity": "banking_balance",
            "currency": "INR",
            "account_number": self.settings.account_number,
            "account_type": "razorpayx_lite",
            "bank_name": "RazorpayX",
            "bank_code": "RAZR",
            "amount": amount,
            "available_amount": amount,
            "refreshed_at": int(self.now()),
        }

    # -- events ----------------------------------------------------------------------------------------------------
    def _emit_payout(self, name: str, payout: Payout, at: float) -> None:
        entity = payout.to_json(self.settings.account_number)
        entity["fund_account"] = self.fund_accounts[payout.fund_account_id].to_json()
        self._emit(name, payout.id, {"payout": {"entity": entity}}, at)

    def _emit(self, name: str, subject_id: str, payload: dict[str, Any], at: float) -> None:
        body = {
            "entity": "event",
            "account_id": self.settings.account_id,
            "event": name,
            "contains": list(payload),
            "payload": payload,
            "created_at": int(at),
        }
        event = Event(new_id(), name, int(at), subject_id, json.dumps(body, separators=(",", ":")).encode())
        self.events.append(event)
        if self.listener is not None:
            self.listener(event)


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(doc))
    return copied


def _canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _insufficient() -> RazorpayError:
    return RazorpayError(
        400,
        "Your account does not have enough balance to carry out the payout operation.",
        reason="insufficient_funds",
    )


__all__ = ["ALL_MODES", "IDEMPOTENCY_HEADER", "Books", "Stored"]
