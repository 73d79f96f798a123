"""`UpiPayoutProvider`: pays a player's VPA by UPI, or bank account by IMPS / NEFT, through RazorpayX Payouts over
`httpx` (async: the event loop is never blocked).

- destination: a contact and a fund account (`vpa` or `bank_account`) made once per destination and remembered
  (`upi_fund_accounts`); before a first payout to it, a fund-account validation must find it `active`. While it
  runs the payout is pending; `invalid` fails it (`invalid_destination`); a validation that `failed` (the bank did
  not answer) holds it: nothing is sent until a person cancels it, and the next payout to it asks again.
- create: `POST /v1/payouts` with `X-Payout-Idempotency` derived from our payout id (RazorpayX answers the same key
  and body with the first payout, refuses another body: a payout is there, an unknown outcome its sync settles) and
  `reference_id` = our payout id; the mode is chosen by
  the operator's limits (`routing.py`); `queue_if_low_balance` queues it on a low balance until a top-up.
- status: by RazorpayX's payout id once known, else `GET /v1/payouts?reference_id=<payout id>`;
  `payout_not_found` only when it has none. `reversed` after `processed` (a bank return, hours later) is reported
  `failed`, which payouts reads as a return on this rail (`supports_returns`): the money goes back once.
- cancel: a `queued` payout (`POST /v1/payouts/{id}/cancel`); anything else is `not_cancellable`.
- statement (ListsStatement): `GET /v1/transactions` of our account, paged by `skip` (`statement.py`).
- webhooks: `X-Razorpay-Signature` checked first, `X-Razorpay-Event-Id` the event's id.
- balance (its Rail's `balance` part): `GET /v1/banking_balances`, our account's `available_amount`, with the operator's
  `low_balance_below`: the worker exports both as gauges (alert PrizeflowProviderBalanceLow).

Never logged: the key, the webhook secret, a destination.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
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
from prizeflow_contracts.upi import (
    NOTES_KEY,
    RAZORPAY_EVENT_ID_HEADER,
    UpiAddress,
    UpiAddressKind,
    failure_code,
    parse_upi_address,
    payout_fees,
    payout_status,
    read_payout_event,
    verify_razorpay_signature,
)
from prizeflow_contracts.webhook_signatures import SignatureRefused
from prizeflow_payouts.adapters.upi.book import FundAccount, FundAccountBook, SqlFundAccountBook, Validation
from prizeflow_payouts.adapters.upi.classify import UpiErrors, UpiRefusalError
from prizeflow_payouts.adapters.upi.options import ASSET, MIN_AMOUNT, UpiKeys, UpiOptions
from prizeflow_payouts.adapters.upi.routing import ceiling, choose_mode
from prizeflow_payouts.adapters.upi.statement import fund_account_ids, lines_of
from prizeflow_payouts.application.ports import ProviderBalance

log = logging.getLogger(__name__)
P = ProviderPayoutStatus
C = PayoutErrorCode

KEY_RE: Final = re.compile(r"^[A-Za-z0-9 _-]{4,36}$")  # what RazorpayX takes as X-Payout-Idempotency
MAX_REFERENCE: Final = 40
RESOURCE_ID_RE: Final = re.compile(r"^[A-Za-z0-9_]{1,64}$")  # an id that goes into a URL path
STATEMENT_PAGE: Final = 100  # transactions per page (RazorpayX's maximum `count`)
_SKIP_RE: Final = re.compile(r"^[0-9]{1,9}$")
PENNY_DROP: Final = 100  # paise a bank account's validation deposits


def payout_key(payout_id: str) -> str:
    """The `X-Payout-Idempotency` of our payout: its id when RazorpayX takes it (ours are 35 characters), else 32
    hex characters of its SHA-256. The same every attempt, so a retry answers the first payout."""
    return payout_id if KEY_RE.fullmatch(payout_id) else hashlib.sha256(payout_id.encode()).hexdigest()[:32]


def reference_of(payout_id: str) -> str:
    """The `reference_id` naming our payout at RazorpayX (at most 40 characters)."""
    return payout_id if len(payout_id) <= MAX_REFERENCE else hashlib.sha256(payout_id.encode()).hexdigest()[:40]


class UpiPayoutProvider:
    """A RazorpayX payout rail. Holds the key and the webhook secret; never logs them, nor a destination."""

    def __init__(
        self,
        options: UpiOptions,
        *,
        keys: UpiKeys,
        book: FundAccountBook | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = options
        self.provider_type = options.provider_type
        self.errors = UpiErrors(options.name)
        self._keys = keys
        self._book = book
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self.statement_page_size = STATEMENT_PAGE

    @property
    def name(self) -> str:
        return self.options.name

    def __repr__(self) -> str:
        return f"UpiPayoutProvider(name={self.name!r})"

    # -- lifecycle (ManagedProvider, UsesServiceDatabase) -------------------------------------------------------
    def bind_database(self, engine: AsyncEngine) -> None:
        if self._book is None:
            self._book = SqlFundAccountBook(engine)

    async def start(self) -> None:
        """Nothing to open: the client is created on the first call, inside the running loop."""

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.options.api_base + "/v1/",
                auth=(self._keys.key_id, self._keys.key_secret),
                headers={"Accept": "application/json"},
                timeout=self.options.timeout_s,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    @property
    def book(self) -> FundAccountBook:
        if self._book is None:
            raise self._refuse(C.INTERNAL_ERROR, "the fund account book is not bound to a database")
        return self._book

    # -- validation (PayoutValidator) ---------------------------------------------------------------------------
    def validate(self, instruction: PayoutInstruction) -> PayoutError | None:
        """Refuse what RazorpayX could never pay under the operator's limits, before anything is created."""
        dest = instruction.destination
        if dest.type is not DestinationType.UPI:
            return self._error(C.INVALID_DESTINATION, f"upi pays upi destinations, not {dest.type.value}")
        try:
            address = parse_upi_address(dest.address)
        except ValueError as err:
            return self._error(C.INVALID_DESTINATION, str(err))
        if instruction.amount.asset != ASSET:
            return self._error(C.UNSUPPORTED_ASSET, f"provider {self.name} pays INR, not {instruction.amount.asset}")
        amount = instruction.amount.amount
        if amount < MIN_AMOUNT:
            return self._error(C.AMOUNT_BELOW_MINIMUM, f"a payout is at least {MIN_AMOUNT} paise")
        if choose_mode(address.kind, amount, self.options.limits) is None:
            top = ceiling(address.kind, self.options.limits)
            what = "no mode is configured" if top is None else f"the configured limit is {top} paise"
            return self._error(C.AMOUNT_ABOVE_MAXIMUM, f"{what} for a {address.kind.value}")
        return None

    def _error(self, code: PayoutErrorCode, message: str) -> PayoutError:
        return PayoutError.of(code, f"upi: {message}", provider=self.name)

    def _refuse(self, code: PayoutErrorCode, message: str) -> PayoutProviderError:
        return PayoutProviderError(self._error(code, message))

    # -- quote --------------------------------------------------------------------------------------------------
    async def quote(self, instruction: PayoutInstruction) -> Quote:
        """RazorpayX bills its fee to our account, not the player: the destination receives the amount."""
        if (error := self.validate(instruction)) is not None:
            raise PayoutProviderError(error)
        amount = instruction.amount
        return Quote(amount=amount, fee=Money(asset=amount.asset, amount=0), receive_amount=amount)

    # -- create -------------------------------------------------------------------------------------------------
    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        key = instruction.idempotency_key
        if (error := self.validate(instruction)) is not None:
            return self._failed(key, None, error, "refused")
        address = parse_upi_address(instruction.destination.address)
        mode = choose_mode(address.kind, instruction.amount.amount, self.options.limits)
        assert mode is not None  # validate() said so
        account = await self._fund_account(address)
        held = await self._validated(key, account, anew=True)
        if held is not None:
            return held
        body: dict[str, Any] = {
            "account_number": self.options.account_number,
            "fund_account_id": account.fund_account_id,
            "amount": instruction.amount.amount,
            "currency": ASSET,
            "mode": mode.value,
            "purpose": self.options.purpose.value,
            "queue_if_low_balance": self.options.queue_if_low_balance,
            "reference_id": reference_of(instruction.payout_id),
            "notes": {NOTES_KEY: key},
        }
        if self.options.narration:
            body["narration"] = self.options.narration
        try:
            doc = await self._call(
                "POST",
                "payouts",
                body=body,
                mutating=True,
                headers={"X-Payout-Idempotency": payout_key(instruction.payout_id)},
            )
        except PayoutProviderError as err:
            if err.code is not C.DUPLICATE_REQUEST:
                raise
            # Our key (one per payout) refused for another body: an earlier attempt made a payout under it before an
            # option in the body changed. It is at RazorpayX: its sync reads it; a final failure would pay twice.
            raise self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "a payout exists under this payout's key") from None
        if doc.get("entity") != "payout" or not doc.get("id"):
            raise self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "the answer carries no payout; the sync reads it")
        return self._result(key, doc)

    async def _fund_account(self, address: UpiAddress) -> FundAccount:
        """The destination's contact and fund account at RazorpayX: remembered, else made (RazorpayX answers the
        same details with the existing ones, so a race or a lost answer makes nothing twice) and remembered."""
        known = await self.book.get(self.name, address.spelling)
        if known is not None:
            return known
        reference = "pf" + hashlib.sha256(f"{self.name}|{address.spelling}".encode()).hexdigest()[:32]
        contact = await self._call(
            "POST",
            "contacts",
            body={"name": self.options.contact_name, "type": "customer", "reference_id": reference},
            mutating=True,
        )
        body: dict[str, Any] = {"contact_id": str(contact["id"])}
        if address.kind is UpiAddressKind.VPA:
            body.update(account_type="vpa", vpa={"address": address.vpa})
        else:
            body.update(
                account_type="bank_account",
                bank_account={
                    "name": self.options.contact_name,
                    "ifsc": address.ifsc,
                    "account_number": address.account_number,
                },
            )
        fund_account = await self._call("POST", "fund_accounts", body=body, mutating=True)
        return await self.book.remember(
            FundAccount(self.name, address.spelling, str(contact["id"]), str(fund_account["id"]))
        )

    async def _validated(self, key: str, account: FundAccount, *, anew: bool = False) -> ProviderPayoutResult | None:
        """None when payouts may go to the account; else the payout's result meanwhile (pending while the
        validation runs or after it failed, failed when the account does not exist). `anew`: a new payout, which
        asks again after a validation the bank did not answer (a held payout's syncs never ask: they read the
        destination's latest validation, so one a later payout started that finds the account releases it too)."""
        if not self.options.validate_accounts or account.validation is Validation.ACTIVE:
            return None
        if account.validation is Validation.INVALID:
            return self._invalid(key)
        if account.validation_id is None or (anew and account.validation is Validation.FAILED):
            body: dict[str, Any] = {
                "account_number": self.options.account_number,
                "fund_account": {"id": account.fund_account_id},
                "notes": {"purpose": "first payout"},
            }
            if account.destination.find("@") < 0:
                body["amount"] = PENNY_DROP
            doc = await self._call("POST", "fund_accounts/validations", body=body, mutating=True)
        else:
            doc = await self._call("GET", f"fund_accounts/validations/{account.validation_id}", mutating=False)
        validation_id = str(doc["id"])
        status = str(doc.get("status") or "")
        results = doc.get("results") or {}
        found = Validation.CREATED
        if status == "completed":
            found = Validation.ACTIVE if results.get("account_status") == "active" else Validation.INVALID
        elif status == "failed":
            found = Validation.FAILED
        if found is not account.validation or validation_id != account.validation_id:
            account = await self.book.validated(account, found, validation_id)
        if found is Validation.ACTIVE:
            return None
        if found is Validation.INVALID:
            return self._invalid(key)
        if found is Validation.FAILED:
            log.warning(
                "upi: a destination's fund-account validation failed (the bank did not answer); its payout is held "
                "until a person cancels it (docs/runbooks/upi-payouts.md)",
                extra={"provider": self.name},
            )
        return ProviderPayoutResult(status=P.PENDING, idempotency_key=key, raw_status=f"validation:{found.value}")

    def _invalid(self, key: str) -> ProviderPayoutResult:
        error = self._error(C.INVALID_DESTINATION, "the fund-account validation found no such account")
        return self._failed(key, None, error, "validation:invalid")

    # -- sync ---------------------------------------------------------------------------------------------------
    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        """The payout's status at RazorpayX. None there while its destination's validation runs: the validation
        is read on, and once it finds the account `active` the payout is sent now, under its same key (it was
        waiting for nothing else: create_payout answered it pending for the validation)."""
        payout = await self._find(lookup)
        if payout is not None:
            return self._result(lookup.idempotency_key, payout)
        waiting = await self._waiting_account(lookup)
        if waiting is not None:
            held = await self._validated(lookup.idempotency_key, waiting)
            if held is not None:
                return held
            if lookup.amount is not None and lookup.destination is not None:
                instruction = PayoutInstruction(
                    payout_id=lookup.payout_id,
                    idempotency_key=lookup.idempotency_key,
                    amount=lookup.amount,
                    destination=lookup.destination,
                )
                return await self.create_payout(instruction)
        raise self._refuse(
            C.PAYOUT_NOT_FOUND, "no payout under this payout's reference (creating with its key is safe)"
        )

    async def _waiting_account(self, lookup: PayoutLookup) -> FundAccount | None:
        """The lookup's destination when a validation of it is still under way (or failed and is held)."""
        if not self.options.validate_accounts or lookup.destination is None:
            return None
        if lookup.destination.type is not DestinationType.UPI:
            return None
        try:
            address = parse_upi_address(lookup.destination.address)
        except ValueError:
            return None
        account = await self.book.get(self.name, address.spelling)
        if account is None or account.validation not in (Validation.CREATED, Validation.FAILED):
            return None
        return account

    async def _find(self, lookup: PayoutLookup) -> dict[str, Any] | None:
        """The payout's RazorpayX payout: by its id once known, else by our reference (the first, should there be
        several: a second is a duplicate reconciliation reports)."""
        reference = reference_of(lookup.payout_id)
        if lookup.provider_ref is not None and RESOURCE_ID_RE.fullmatch(lookup.provider_ref):
            doc = await self._call("GET", f"payouts/{lookup.provider_ref}", mutating=False, missing_ok=True)
            if doc and doc.get("reference_id") == reference:
                return doc
        doc = await self._call(
            "GET",
            "payouts",
            params={"account_number": self.options.account_number, "reference_id": reference, "count": "100"},
            mutating=False,
        )
        ours = [p for p in doc.get("items") or [] if isinstance(p, dict) and p.get("reference_id") == reference]
        if len(ours) > 1:
            log.error("upi: %d RazorpayX payouts carry one payout's reference", len(ours))
        return min(ours, key=lambda p: (int(p.get("created_at") or 0), str(p.get("id")))) if ours else None

    # -- cancel -------------------------------------------------------------------------------------------------
    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        """A `queued` payout is cancelled at RazorpayX; one held for its destination's validation (nothing was
        sent: a payout is made only once the validation is `active`) is cancelled without asking."""
        payout = await self._find(lookup)
        if payout is None:
            if await self._waiting_account(lookup) is not None:
                return ProviderPayoutResult(
                    status=P.CANCELLED, idempotency_key=lookup.idempotency_key, raw_status="validation:cancelled"
                )
            raise self._refuse(C.PAYOUT_NOT_FOUND, "no payout under this payout's reference")
        result = self._result(lookup.idempotency_key, payout)
        if result.status is P.CANCELLED:
            return result
        if payout.get("status") != "queued":
            raise self._refuse(C.NOT_CANCELLABLE, f"the payout is {payout.get('status')!s:.20}")
        try:
            doc = await self._call("POST", f"payouts/{payout['id']}/cancel", body={}, mutating=True)
        except PayoutProviderError as err:
            if err.retryable:
                raise
            raise self._refuse(C.NOT_CANCELLABLE, "RazorpayX refused to cancel the payout") from None
        result = self._result(lookup.idempotency_key, doc)
        if result.status is not P.CANCELLED:
            raise self._refuse(C.NOT_CANCELLABLE, f"the payout is {result.status.value}")
        return result

    # -- results ------------------------------------------------------------------------------------------------
    def _result(self, key: str, payout: Mapping[str, Any]) -> ProviderPayoutResult:
        raw = str(payout.get("status") or "")
        details = payout.get("status_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        raw_status = f"{raw}/{reason}"[:128] if reason else raw[:128]
        status = payout_status(raw)
        ref = str(payout["id"])
        if status is None:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, f"unknown payout status {raw[:40]!r}")
        if status is P.FAILED:
            code = failure_code(raw, reason)
            return self._failed(key, ref, self._error(code, f"payout {raw_status}"), raw_status)
        try:
            fees = payout_fees(payout) if status is P.PAID else None
        except ValueError:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, "the payout's fees are not whole paise") from None
        fee = Money(asset=ASSET, amount=fees) if fees is not None else None
        return ProviderPayoutResult(
            status=status, idempotency_key=key, provider_ref=ref, fee=fee, raw_status=raw_status
        )

    def _failed(self, key: str, ref: str | None, error: PayoutError, raw: str) -> ProviderPayoutResult:
        return ProviderPayoutResult(status=P.FAILED, idempotency_key=key, provider_ref=ref, error=error, raw_status=raw)

    # -- statement (ListsStatement) -----------------------------------------------------------------------------
    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """The account's transactions in [since, until) as statement lines, newest first as RazorpayX lists them.
        `cursor` is RazorpayX's `skip`: stable for a window that has closed, the only kind a scheduled run asks."""
        if until <= since:
            return StatementPage(lines=())
        if cursor is not None and not _SKIP_RE.fullmatch(cursor):
            raise self._refuse(C.INVALID_REQUEST, "a statement cursor is a skip into the transactions listing")
        skip = int(cursor or 0)
        params = {
            "account_number": self.options.account_number,
            "from": str(int(since.timestamp())),
            "to": str(int(until.timestamp())),  # inclusive at RazorpayX: a line at `until` is dropped below
            "count": str(self.statement_page_size),
            "skip": str(skip),
        }
        doc = await self._call("GET", "transactions", params=params, mutating=False)
        txns = [t for t in doc.get("items") or [] if isinstance(t, dict)]
        try:
            destinations = await self._destinations(fund_account_ids(txns))
            lines = tuple(line for t in txns for line in lines_of(t, destinations) if since <= line.occurred_at < until)
        except (KeyError, TypeError, ValueError) as err:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, f"malformed transaction ({type(err).__name__})") from None
        more = len(txns) == self.statement_page_size
        return StatementPage(lines=lines, next_cursor=str(skip + len(txns)) if more else None)

    async def _destinations(self, ids: list[str]) -> dict[str, str]:
        """fund account id -> destination: ours from the book, any other (a payout nobody asked for) from RazorpayX."""
        found = await self.book.destinations(self.name, ids)
        for fid in ids:
            if fid in found or not RESOURCE_ID_RE.fullmatch(fid):
                continue
            fa = await self._call("GET", f"fund_accounts/{fid}", mutating=False, missing_ok=True)
            if fa.get("account_type") == "vpa":
                found[fid] = str((fa.get("vpa") or {}).get("address") or "")
            elif fa.get("account_type") == "bank_account":
                bank = fa.get("bank_account") or {}
                found[fid] = f"{bank.get('ifsc')}/{bank.get('account_number')}"
        return found

    # -- balance (the Rail's `balance` part) ------------------------------------------------------------------
    async def balances(self) -> tuple[ProviderBalance, ...]:
        """The available balance of our account (`account_number`) from `GET /v1/banking_balances`, in paise, with
        the operator's threshold. Raises `PayoutProviderError` when RazorpayX cannot answer or its answer does not
        name our account with an integer amount: the caller keeps its last figure, never a guessed one."""
        doc = await self._call("GET", "banking_balances", mutating=False)
        items = doc.get("items")
        listed = items if isinstance(items, list) else []
        ours = [
            i
            for i in listed
            if isinstance(i, dict) and str(i.get("account_number") or "") == self.options.account_number
        ]
        if len(ours) != 1:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, "the balances do not list our account once")
        amount, currency = ours[0].get("available_amount"), ours[0].get("currency", ASSET)
        if type(amount) is not int or amount < 0 or currency != ASSET:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, "malformed balance")
        return (ProviderBalance(currency=ASSET, available=amount, low_below=self.options.low_balance_below),)

    # -- webhooks -----------------------------------------------------------------------------------------------
    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify `X-Razorpay-Signature` with the configured secret(s), then read the event (no timestamp: a replay
        is deduplicated on `X-Razorpay-Event-Id`, and the payout's own status is what it reports)."""
        try:
            verify_razorpay_signature(headers, body, secrets=self._keys.webhook_secrets)
        except SignatureRefused as err:
            raise self._refuse(C.WEBHOOK_SIGNATURE_INVALID, err.reason.value) from None
        event_id = next((v for k, v in headers.items() if k.lower() == RAZORPAY_EVENT_ID_HEADER), None)
        try:
            if not event_id:
                raise ValueError("no X-Razorpay-Event-Id")
            ev = read_payout_event(json.loads(body))
            return WebhookEvent(
                provider=self.provider_type,
                provider_event_id=event_id,
                kind=ev.kind,
                verified=True,
                provider_payout_ref=ev.payout_ref,
                idempotency_key=ev.idempotency_key,
                status=ev.status,
                error=self._error(ev.error_code, f"payout {ev.raw_status}") if ev.error_code is not None else None,
                occurred_at=ev.occurred_at,
                fee=Money(asset=ASSET, amount=ev.fees) if ev.fees is not None else None,
                payload_digest=hashlib.sha256(body).hexdigest(),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise self._refuse(C.INVALID_REQUEST, f"malformed event ({type(err).__name__})") from None

    # -- the one place RazorpayX is called ----------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        *,
        mutating: bool,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any]:
        """One API call; every failure becomes a `PayoutProviderError` with a stable code. `missing_ok`: an unknown
        id (RazorpayX answers 400 "The id provided does not exist") is an empty answer."""
        sent = dict(headers or {})
        if body is not None:
            sent["Content-Type"] = "application/json"
        try:
            resp = await self._client().request(
                method,
                path,
                content=json.dumps(body).encode() if body is not None else None,
                params=params,
                headers=sent,
            )
            content = resp.content
        except httpx.HTTPError as err:
            raise PayoutProviderError(self.errors.classify(err, mutating=mutating)) from None
        try:
            doc = json.loads(content) if content else {}
        except ValueError:
            doc = {}
        if resp.status_code >= 300:
            if missing_ok and resp.status_code == 400 and _no_such_id(doc):
                return {}
            refusal = UpiRefusalError(resp.status_code, doc)
            raise PayoutProviderError(self.errors.classify(refusal, mutating=mutating))
        if not isinstance(doc, dict):
            code = C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
            raise self._refuse(code, "the answer is not a JSON object")
        return doc


def _no_such_id(doc: Any) -> bool:
    error = doc.get("error") if isinstance(doc, dict) else None
    return isinstance(error, dict) and "does not exist" in str(error.get("description") or "")


__all__ = ["UpiPayoutProvider", "payout_key", "reference_of"]
