"""`StripePayoutProvider`: pays a player's connected account (`acct_...`) through the official `stripe` library.

- mode `transfer`: `POST /v1/transfers` (platform balance -> connected account) is the payout: paid on create.
- mode `transfer_and_payout`: the transfer, then `POST /v1/payouts` on the connected account (`Stripe-Account`);
  paid when Stripe says the payout is paid (sync or webhook). A payout that fails or is cancelled before it is
  paid leaves the money on the connected account: the transfer is reversed (pulled back to the platform) before
  the failure or the cancellation is reported, so the reservation is never voided while the player still holds
  the money. A webhook `failed` therefore only schedules a status sync (`settles_failures_on_sync`).

Every mutating call carries an idempotency key derived from our payout's (`<key>`, `<key>:payout`,
`<key>:cancel`, `<key>:reversal`) and metadata naming the payout. `sync_status` finds the transfer by
`transfer_group=<payout_id>` and our key in its metadata: `payout_not_found` only when Stripe has none. All calls
are async (`*_async` over aiohttp): the event loop is never blocked.

`statement` (ListsStatement) lists the platform balance's transactions (`statement.py` says why those): a transfer's
line carries our key (`metadata.idempotency_key`) as `reference`, the transfer id as `provider_ref` and the connected
account as `destination`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

import stripe
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
from prizeflow_contracts.webhook_signatures import STRIPE_SIGNATURE_HEADER, SignatureRefused, verify
from prizeflow_payouts.adapters.stripe.classify import StripeErrors, is_missing, payout_failure
from prizeflow_payouts.adapters.stripe.events import MODE_KEY, PAYOUT_STATUSES, fully_reversed, normalize_event
from prizeflow_payouts.adapters.stripe.options import StripeMode, StripeOptions
from prizeflow_payouts.adapters.stripe.statement import EXPAND, lines_of, window

log = logging.getLogger(__name__)
P = ProviderPayoutStatus
C = PayoutErrorCode

ACCOUNT_RE: Final = re.compile(r"^acct_[A-Za-z0-9]{1,250}$")
MAX_KEY: Final = 255  # Stripe's idempotency key limit
_LIST_LIMIT: Final = 100
_MAX_PAGES: Final = 20  # a player's connected account: a bounded look back to one transfer
_CURSOR_RE: Final = re.compile(r"^txn_[A-Za-z0-9]{1,250}$")  # a statement cursor: Stripe's `starting_after`


def env_proxy(url: str) -> str | None:
    """The forward proxy HTTPS_PROXY/NO_PROXY name for `url` (deploy/k8s: the egress proxy), as `trust_env` would
    pick it; the Stripe library's aiohttp client never reads the environment itself."""
    host = urlsplit(url).hostname or ""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(urlsplit(url).scheme or "https")


def derived_key(key: str, suffix: str | None = None) -> str:
    """The Stripe idempotency key of one step of our payout (`<key>` or `<key>:<suffix>`), at most 255 chars."""
    if suffix is None:
        return key
    full = f"{key}:{suffix}"
    return full if len(full) <= MAX_KEY else f"{hashlib.sha256(key.encode()).hexdigest()}:{suffix}"


class StripePayoutProvider:
    """A Stripe Connect payout rail. Holds the API key; never logs it, nor a full destination account."""

    # sync_status reads Stripe's books (transfers by transfer_group, the account's payouts): the rail's terms say
    # `finds_payouts_at_provider`.

    def __init__(
        self,
        options: StripeOptions,
        *,
        api_key: str,
        http_client: stripe.HTTPClient | None = None,
        webhook_secrets: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.errors = StripeErrors(options.name)
        self.provider_type = options.provider_type
        # A webhook `failed` is confirmed by a sync, which pulls the money back first (transfer_and_payout).
        # No client telemetry to Stripe (request timings, the host's platform string): it is process-wide in the
        # library, and nothing of ours needs it.
        stripe.enable_telemetry = False
        self._http = http_client or stripe.AIOHTTPClient(
            timeout=aiohttp.ClientTimeout(total=options.timeout_s), proxy=env_proxy(options.api_base)
        )
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": options.api_base},
            max_network_retries=options.max_network_retries,
            http_client=self._http,
        )
        self._webhook_secrets = webhook_secrets
        self._clock = clock
        self.statement_page_size = _LIST_LIMIT  # balance transactions per statement page (Stripe allows 1..100)

    @property
    def name(self) -> str:
        return self.options.name

    def __repr__(self) -> str:
        return f"StripePayoutProvider(name={self.name!r}, mode={self.options.mode.value!r})"

    # -- lifecycle (the `engine` part) ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Nothing to open: the HTTP session is created on the first call, inside the running loop."""

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]  # untyped in stripe 16.1

    # -- validation (the `validator` part) ---------------------------------------------------------------------------
    def validate(self, instruction: PayoutInstruction) -> PayoutError | None:
        """Refuse what Stripe could never pay, before anything is created."""
        dest = instruction.destination
        if dest.type is not DestinationType.STRIPE_ACCOUNT:
            return self._error(C.INVALID_DESTINATION, f"stripe pays stripe_account destinations, not {dest.type.value}")
        if not ACCOUNT_RE.fullmatch(dest.address):
            return self._error(
                C.INVALID_DESTINATION, "a stripe_account destination is acct_ followed by letters/digits"
            )
        if instruction.amount.asset not in self.options.currencies:
            return self._error(C.UNSUPPORTED_ASSET, f"provider {self.name} does not pay {instruction.amount.asset}")
        return None

    def _error(self, code: PayoutErrorCode, message: str) -> PayoutError:
        return PayoutError.of(code, f"stripe: {message}", provider=self.name)

    def _refuse(self, code: PayoutErrorCode, message: str) -> PayoutProviderError:
        return PayoutProviderError(self._error(code, message))

    # -- quote --------------------------------------------------------------------------------------------------
    async def quote(self, instruction: PayoutInstruction) -> Quote:
        """Transfers cost the destination nothing (Stripe bills the platform): it receives the amount."""
        if (error := self.validate(instruction)) is not None:
            raise PayoutProviderError(error)
        amount = instruction.amount
        return Quote(amount=amount, fee=Money(asset=amount.asset, amount=0), receive_amount=amount)

    # -- create -------------------------------------------------------------------------------------------------
    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        if (error := self.validate(instruction)) is not None:
            return self._failed(instruction.idempotency_key, None, error, "refused")
        key = instruction.idempotency_key
        meta = self._metadata(instruction.payout_id, key, instruction.metadata.get("correlation_id"))
        transfer = await self._call(
            lambda: self._client.v1.transfers.create_async(
                {
                    "amount": instruction.amount.amount,
                    "currency": self.options.currencies[instruction.amount.asset],
                    "destination": instruction.destination.address,
                    "transfer_group": instruction.payout_id,
                    "metadata": meta,
                },
                {"idempotency_key": derived_key(key)},
            ),
            mutating=True,
        )
        if self.options.mode is StripeMode.TRANSFER:
            return self._transfer_result(key, transfer)
        try:
            payout = await self._ensure_payout(key, transfer)
        except PayoutProviderError as err:
            if err.retryable:
                raise  # the sync resumes the second step with the same key
            # The transfer landed but its payout can never be made: pull the money back, then report it.
            await self._pull_back(key, transfer)
            return self._failed(key, str(transfer["id"]), err.error, "payout_refused")
        return await self._payout_result(key, transfer, payout)

    def _metadata(self, payout_id: str, key: str, correlation_id: str | None) -> dict[str, str]:
        meta = {"payout_id": payout_id, "idempotency_key": key, MODE_KEY: self.options.mode.value}
        if correlation_id:
            meta["correlation_id"] = correlation_id[:500]
        return meta

    async def _ensure_payout(self, key: str, transfer: Mapping[str, Any]) -> dict[str, Any]:
        """The connected account's payout of this transfer: created once (idempotent on `<key>:payout`)."""
        meta = dict(transfer.get("metadata") or {})
        params: dict[str, Any] = {
            "amount": int(transfer["amount"]),
            "currency": str(transfer["currency"]),
            "metadata": meta,
        }
        if self.options.statement_descriptor:
            params["statement_descriptor"] = self.options.statement_descriptor
        return await self._call(
            lambda: self._client.v1.payouts.create_async(
                params,  # type: ignore[arg-type]  # a plain dict of the documented PayoutCreateParams
                {"idempotency_key": derived_key(key, "payout"), "stripe_account": str(transfer["destination"])},
            ),
            mutating=True,
        )

    # -- sync ---------------------------------------------------------------------------------------------------
    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        transfer = await self._find_transfer(lookup)
        if transfer is None:
            raise self._refuse(C.PAYOUT_NOT_FOUND, "no transfer for this payout (creating with the same key is safe)")
        if self.options.mode is StripeMode.TRANSFER:
            return self._transfer_result(lookup.idempotency_key, transfer)
        payout = None
        if lookup.provider_ref and lookup.provider_ref.startswith("po_"):
            payout = await self._retrieve_payout(lookup.provider_ref, str(transfer["destination"]))
        if payout is None:
            # Look before creating: after a restore, or past Stripe's 24-hour idempotency window, a create under
            # the same key is not a safe way to ask whether the bank payout exists.
            payout = await self._find_payout(lookup.idempotency_key, transfer)
        if payout is None:
            try:
                payout = await self._ensure_payout(lookup.idempotency_key, transfer)
            except PayoutProviderError as err:
                if err.retryable:
                    raise
                await self._pull_back(lookup.idempotency_key, transfer)
                return self._failed(lookup.idempotency_key, str(transfer["id"]), err.error, "payout_refused")
        return await self._payout_result(lookup.idempotency_key, transfer, payout)

    async def _find_transfer(self, lookup: PayoutLookup) -> dict[str, Any] | None:
        if lookup.provider_ref and lookup.provider_ref.startswith("tr_"):
            found = await self._retrieve(lambda: self._client.v1.transfers.retrieve_async(str(lookup.provider_ref)))
            if found is not None and _meta(found, "idempotency_key") == lookup.idempotency_key:
                return found
        page = await self._call(
            lambda: self._client.v1.transfers.list_async({"transfer_group": lookup.payout_id, "limit": _LIST_LIMIT}),
            mutating=False,
        )
        ours = [t for t in page.get("data") or [] if _meta(t, "idempotency_key") == lookup.idempotency_key]
        if len(ours) > 1:
            # Cannot happen with one key per payout; if it does, money moved twice: an operator must look.
            log.error(
                "stripe: %d transfers carry one payout's idempotency key",
                len(ours),
                extra={"payout_id": lookup.payout_id},
            )
        return min(ours, key=lambda t: int(t.get("created") or 0)) if ours else None

    async def _find_payout(self, key: str, transfer: Mapping[str, Any]) -> dict[str, Any] | None:
        """The connected account's bank payout carrying our key, looked up newest first back to the transfer's
        creation (nothing older can be ours); None only when Stripe definitely has none."""
        account = str(transfer["destination"])
        since = int(transfer.get("created") or 0)
        params: dict[str, Any] = {"limit": _LIST_LIMIT, "created": {"gte": since}}
        for _ in range(_MAX_PAGES):
            page = await self._call(partial(self._list_payouts, dict(params), account), mutating=False)
            items: list[dict[str, Any]] = list(page.get("data") or [])
            ours = [p for p in items if _meta(p, "idempotency_key") == key]
            if ours:
                return min(ours, key=lambda p: int(p.get("created") or 0))
            if not page.get("has_more") or not items or int(items[-1].get("created") or 0) < since:
                return None
            params = {**params, "starting_after": str(items[-1]["id"])}
        raise self._refuse(C.PROVIDER_UNAVAILABLE, f"more than {_MAX_PAGES} pages of payouts since the transfer")

    async def _list_payouts(self, params: dict[str, Any], account: str) -> Any:
        return await self._client.v1.payouts.list_async(
            params,  # type: ignore[arg-type]  # a plain dict of the documented PayoutListParams
            {"stripe_account": account},
        )

    async def _retrieve_payout(self, ref: str, account: str) -> dict[str, Any] | None:
        return await self._retrieve(
            lambda: self._client.v1.payouts.retrieve_async(ref, None, {"stripe_account": account})
        )

    async def _retrieve(self, fn: Callable[[], Awaitable[Any]]) -> dict[str, Any] | None:
        """The object, or None when Stripe definitely has none (404)."""
        try:
            return await self._call(fn, mutating=False, missing_ok=True)
        except _MissingError:
            return None

    # -- results ------------------------------------------------------------------------------------------------
    def _transfer_result(self, key: str, transfer: Mapping[str, Any]) -> ProviderPayoutResult:
        returned = fully_reversed(transfer)
        return ProviderPayoutResult(
            status=P.RETURNED if returned else P.PAID,
            idempotency_key=key,
            provider_ref=str(transfer["id"]),
            fee=Money(asset=self._asset(transfer), amount=0),
            raw_status="transfer_reversed" if returned else "transfer_created",
        )

    async def _payout_result(
        self, key: str, transfer: Mapping[str, Any], payout: Mapping[str, Any]
    ) -> ProviderPayoutResult:
        raw = str(payout.get("status"))
        status = PAYOUT_STATUSES.get(raw)
        if status is None:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, f"unknown payout status {raw[:40]!r}")
        ref = str(payout["id"])
        if status in (P.FAILED, P.CANCELLED):
            await self._pull_back(key, transfer)
        if status is P.FAILED:
            return self._failed(key, ref, payout_failure(payout.get("failure_code"), self.name), raw)
        fee = Money(asset=self._asset(transfer), amount=0) if status is P.PAID else None
        return ProviderPayoutResult(status=status, idempotency_key=key, provider_ref=ref, fee=fee, raw_status=raw)

    def _failed(self, key: str, ref: str | None, error: PayoutError, raw: str) -> ProviderPayoutResult:
        return ProviderPayoutResult(status=P.FAILED, idempotency_key=key, provider_ref=ref, error=error, raw_status=raw)

    def _asset(self, transfer: Mapping[str, Any]) -> str:
        currency = str(transfer.get("currency", "")).lower()
        return next((a for a, c in self.options.currencies.items() if c == currency), self.options.assets[0])

    async def _pull_back(self, key: str, transfer: Mapping[str, Any]) -> None:
        """Reverse what is left of the transfer (idempotent on `<key>:reversal`). Until it succeeds the payout is
        reported as of unknown outcome, never failed nor cancelled: the player's account still holds the money."""
        left = int(transfer["amount"]) - int(transfer.get("amount_reversed") or 0)
        if left <= 0 or transfer.get("reversed"):
            return
        try:
            await self._call(
                lambda: self._client.v1.transfers.reversals.create_async(
                    str(transfer["id"]),
                    {"amount": left, "metadata": dict(transfer.get("metadata") or {})},
                    {"idempotency_key": derived_key(key, "reversal")},
                ),
                mutating=True,
            )
        except PayoutProviderError as err:
            log.error("stripe: could not pull a failed payout's money back (%s); will retry", err.code.value)
            raise self._refuse(
                C.TIMEOUT_UNKNOWN_OUTCOME,
                f"the payout did not complete and the transfer could not be reversed yet ({err.code.value})",
            ) from None

    # -- cancel -------------------------------------------------------------------------------------------------
    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        if self.options.mode is StripeMode.TRANSFER:
            # Never possible in this mode (`supports_cancel` is false): the contract's unsupported_operation.
            raise self._refuse(
                C.UNSUPPORTED_OPERATION, "a transfer cannot be cancelled once created (a reversal is not a cancel)"
            )
        transfer = await self._find_transfer(lookup)
        if transfer is None:
            raise self._refuse(C.PAYOUT_NOT_FOUND, "no transfer for this payout")
        ref = lookup.provider_ref
        if not (ref and ref.startswith("po_")):
            raise self._refuse(C.NOT_CANCELLABLE, "the connected account's payout is not known yet: sync first")
        account = str(transfer["destination"])
        try:
            payout = await self._call(
                lambda: self._client.v1.payouts.cancel_async(
                    ref,
                    None,
                    {"idempotency_key": derived_key(lookup.idempotency_key, "cancel"), "stripe_account": account},
                ),
                mutating=True,
            )
        except PayoutProviderError as err:
            if err.code in (C.INVALID_REQUEST, C.DUPLICATE_REQUEST):
                raise self._refuse(
                    C.NOT_CANCELLABLE, "stripe refused to cancel the payout (no longer pending)"
                ) from None
            raise
        result = await self._payout_result(lookup.idempotency_key, transfer, payout)
        if result.status is not P.CANCELLED:
            raise self._refuse(C.NOT_CANCELLABLE, f"the payout is {result.status.value}")
        return result

    # -- statement (the `statement` part) -----------------------------------------------------------------------------
    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """The platform balance's movements created in [since, until), newest first as Stripe lists them (see
        `statement.py` for why balance transactions). `cursor` is Stripe's `starting_after`: the last balance
        transaction of the previous page."""
        if until <= since:
            return StatementPage(lines=())
        params: dict[str, Any] = {
            "limit": self.statement_page_size,
            "created": window(since, until),
            "expand": list(EXPAND),
        }
        if cursor is not None:
            if not _CURSOR_RE.fullmatch(cursor):
                raise self._refuse(C.INVALID_REQUEST, "a statement cursor is a balance transaction id (txn_...)")
            params["starting_after"] = cursor
        page = await self._call(
            lambda: self._client.v1.balance_transactions.list_async(
                params  # type: ignore[arg-type]  # a plain dict of the documented BalanceTransactionListParams
            ),
            mutating=False,
        )
        items: list[dict[str, Any]] = list(page.get("data") or [])
        try:
            lines = tuple(line for bt in items for line in lines_of(bt, self.options.currencies))
        except (KeyError, TypeError, ValueError) as err:
            problem = f"malformed balance transaction ({type(err).__name__})"
            raise self._refuse(C.PROVIDER_UNAVAILABLE, problem) from None
        more = bool(page.get("has_more")) and bool(items)
        return StatementPage(lines=lines, next_cursor=str(items[-1]["id"]) if more else None)

    # -- webhooks -----------------------------------------------------------------------------------------------
    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify `Stripe-Signature` with the configured endpoint secret(s), then normalize the event."""
        try:
            verify(headers, body, header_name=STRIPE_SIGNATURE_HEADER, secrets=self._webhook_secrets, now=self._clock())
        except SignatureRefused as err:
            raise self._refuse(C.WEBHOOK_SIGNATURE_INVALID, err.reason.value) from None
        try:
            ev = normalize_event(json.loads(body), self.name)
            return WebhookEvent(
                provider=self.provider_type,
                provider_event_id=ev.event_id,
                kind=ev.kind,
                verified=True,
                provider_payout_ref=ev.object_id,
                idempotency_key=ev.idempotency_key,
                status=ev.status,
                error=ev.error,
                occurred_at=ev.occurred_at,
                payload_digest=hashlib.sha256(body).hexdigest(),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise self._refuse(C.INVALID_REQUEST, f"malformed event ({type(err).__name__})") from None

    # -- the one place Stripe is called -------------------------------------------------------------------------
    async def _call(
        self, fn: Callable[[], Awaitable[Any]], *, mutating: bool, missing_ok: bool = False
    ) -> dict[str, Any]:
        """Run one Stripe call; every failure becomes a `PayoutProviderError` with a stable code (its message
        carries neither the key nor the destination: Stripe's own text is not copied)."""
        try:
            obj = await fn()
        except stripe.StripeError as err:
            if missing_ok and is_missing(err):
                raise _MissingError from None
            raise PayoutProviderError(self.errors.classify(err, mutating=mutating)) from None
        except (aiohttp.ClientError, TimeoutError) as err:  # the body failed after the headers arrived
            code = C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
            raise self._refuse(code, f"connection lost reading the answer ({type(err).__name__})") from None
        data: dict[str, Any] = obj.to_dict() if isinstance(obj, stripe.StripeObject) else dict(obj)
        return data


class _MissingError(Exception):
    """Stripe answered 404: it has no such object."""


def _meta(obj: Mapping[str, Any], key: str) -> str | None:
    meta = obj.get("metadata") or {}
    value = meta.get(key)
    return str(value) if value is not None else None


__all__ = ["ACCOUNT_RE", "StripePayoutProvider", "derived_key"]
