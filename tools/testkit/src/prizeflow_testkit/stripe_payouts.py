"""Test support for the Stripe payout rail, shared by its tests and a provider conformance kit.

- `FakeStripeHTTP`: an in-memory Stripe behind the official library's HTTP client boundary (`stripe.HTTPClient`),
  for unit tests (no socket): transfers (with `transfer_group` listing), reversals, connected-account payouts
  (`Stripe-Account`), cancel, idempotency keys replayed like Stripe (same key + same body = same answer; another
  body = 400 `idempotency_error`), and scripted faults (`fail_next`: an HTTP error or a lost connection, before
  or after the request took effect).
- `stripe_provider_doc` / `build_test_provider`: a providers-file entry and a provider built through the real
  factory, pointed at the fake or at the Stripe emulator (`api_base`).
- `account_id()`: a fresh connected account id.
- `stripe_providers_file`: a providers file paying USD/INR `stripe_account` destinations through the rail (the
  Stripe emulator's URL as `api_base`), for service-level tests.
- `provider_event`: the ProviderEventReceived the webhook ingress publishes for a Stripe event object.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import stripe
import yaml

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.providers import ProviderType
from prizeflow_payouts.adapters.stripe import StripePayoutProvider, build_stripe, normalize_event
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec

TEST_API_KEY = "sk_test_prizeflow_unit"


def account_id() -> str:
    return "acct_" + secrets.token_hex(8)


@dataclass
class Fault:
    """What the next matching request meets. `status` + `error`: an HTTP error answer (nothing happens);
    `lost`: the connection drops, `after=True` once the request took effect (a timeout after success)."""

    method: str | None = None
    path_prefix: str | None = None
    status: int = 0
    error: Mapping[str, Any] | None = None
    lost: bool = False
    after: bool = False
    times: int = 1


@dataclass
class FakeStripeHTTP(stripe.HTTPClient):
    """An in-memory Stripe (form-encoded requests in, JSON out) at the library's HTTP boundary."""

    name: ClassVar[str] = "prizeflow-fake"

    balance: dict[str, int] = field(default_factory=lambda: {"usd": 10**12, "inr": 10**12})
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    payouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    reversals: list[dict[str, Any]] = field(default_factory=list)
    closed_accounts: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # A payout is created with this status (pending by default; settle it with `settle_payout`).
    payout_status: str = "pending"
    _idem: dict[tuple[str, str], tuple[str, int, str]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        super().__init__()

    # -- scripting ----------------------------------------------------------------------------------------------
    def fail_next(self, fault: Fault) -> None:
        self.faults.append(fault)

    def settle_payout(self, payout_id: str, status: str, failure_code: str | None = None) -> dict[str, Any]:
        payout = self.payouts[payout_id]
        payout["status"] = status
        payout["failure_code"] = failure_code
        return payout

    def transfers_for(self, payout_id: str) -> list[dict[str, Any]]:
        return [t for t in self.transfers.values() if t.get("transfer_group") == payout_id]

    def posts(self, path_prefix: str) -> list[dict[str, str]]:
        """Headers of every POST under `path_prefix` that reached the fake (retries included)."""
        return [h for m, p, h in self.requests if m == "post" and p.startswith(path_prefix)]

    # -- stripe.HTTPClient --------------------------------------------------------------------------------------
    def sleep_async(self, secs: float) -> Any:
        async def _no_wait() -> None:  # the library's retry backoff: instant in tests
            return None

        return _no_wait()

    async def close_async(self) -> None:
        return None

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        parts = urlsplit(url)
        path = parts.path
        raw = post_data.decode() if isinstance(post_data, bytes) else (post_data or parts.query or "")
        form = dict(parse_qsl(raw, keep_blank_values=True))
        hdrs = {k.lower(): v for k, v in headers.items()}
        self.requests.append((method, path, hdrs))
        fault = self._fault(method, path)
        if fault is not None and not fault.after:
            return self._apply_fault(fault)
        key = hdrs.get("idempotency-key")
        fingerprint = json.dumps([method, path, sorted(form.items())])
        if method == "post" and key is not None and (hdrs.get("stripe-account", ""), key) in self._idem:
            seen_fp, status, body = self._idem[(hdrs.get("stripe-account", ""), key)]
            if seen_fp != fingerprint:
                reused = _err("idempotency_error", None, "Keys for idempotent requests can only be reused")
                status, body = 400, json.dumps(reused)
            return body.encode(), status, {"idempotent-replayed": "true"}
        status, doc = self._route(method, path, form, hdrs)
        body = json.dumps(doc)
        if method == "post" and key is not None and status < 500:
            self._idem[(hdrs.get("stripe-account", ""), key)] = (fingerprint, status, body)
        if fault is not None:
            return self._apply_fault(fault)
        return body.encode(), status, {}

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if (fault.method is None or fault.method == method) and (
                fault.path_prefix is None or path.startswith(fault.path_prefix)
            ):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _apply_fault(self, fault: Fault) -> tuple[bytes, int, Mapping[str, str]]:
        if fault.lost:
            cause = aiohttp.ServerTimeoutError("read timeout")
            raise stripe.APIConnectionError("timed out", should_retry=True) from cause  # type: ignore[no-untyped-call]
        body = {"error": fault.error or {"type": "api_error", "message": "fake fault"}}
        return json.dumps(body).encode(), fault.status, {}

    # -- the API ------------------------------------------------------------------------------------------------
    def _route(  # noqa: PLR0911 - a router: one return per route
        self, method: str, path: str, form: dict[str, str], hdrs: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        seg = path.strip("/").split("/")[1:]  # drop "v1"
        account = hdrs.get("stripe-account")
        if seg == ["transfers"] and method == "post":
            return self._create_transfer(form)
        if seg == ["transfers"] and method == "get":
            data = [t for t in self.transfers.values() if t["transfer_group"] == form.get("transfer_group")]
            return 200, {"object": "list", "data": list(reversed(data)), "has_more": False, "url": "/v1/transfers"}
        if len(seg) == 2 and seg[0] == "transfers" and method == "get":
            return (200, self.transfers[seg[1]]) if seg[1] in self.transfers else _missing("transfer", seg[1])
        if len(seg) == 3 and seg[0] == "transfers" and seg[2] == "reversals":
            return self._reverse(seg[1], form)
        if seg == ["payouts"] and method == "post":
            return self._create_payout(account, form)
        if seg == ["payouts"] and method == "get":
            return self._list_payouts(account, form)
        if len(seg) == 2 and seg[0] == "payouts" and method == "get":
            payout = self.payouts.get(seg[1])
            return (200, payout) if payout and payout["account"] == account else _missing("payout", seg[1])
        if len(seg) == 3 and seg[0] == "payouts" and seg[2] == "cancel":
            payout = self.payouts.get(seg[1])
            if payout is None or payout["account"] != account:
                return _missing("payout", seg[1])
            if payout["status"] != "pending":
                return 400, _err("invalid_request_error", None, "Payouts can only be canceled while pending")
            payout["status"] = "canceled"
            self.balance[f"{account}:{payout['currency']}"] += payout["amount"]
            return 200, payout
        return 404, _err("invalid_request_error", "resource_missing", f"Unrecognized request URL ({path})")

    def _create_transfer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        dest, currency, amount = form["destination"], form["currency"], int(form["amount"])
        if not dest.startswith("acct_"):
            return 400, _err("invalid_request_error", "account_invalid", "invalid account", "destination")
        if dest in self.closed_accounts:
            return 400, _err("invalid_request_error", "account_closed", "account closed", "destination")
        if self.balance[currency] < amount:
            return 400, _err("invalid_request_error", "balance_insufficient", "insufficient balance")
        self.balance[currency] -= amount
        self.balance[f"{dest}:{currency}"] = self.balance.get(f"{dest}:{currency}", 0) + amount
        tid = f"tr_{next(self._ids):08d}"
        self.transfers[tid] = {
            "id": tid,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "currency": currency,
            "destination": dest,
            "transfer_group": form.get("transfer_group"),
            "metadata": _metadata(form),
            "reversed": False,
            "created": int(time.time()),
        }
        return 200, self.transfers[tid]

    def _reverse(self, tid: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        transfer = self.transfers.get(tid)
        if transfer is None:
            return _missing("transfer", tid)
        amount = int(form.get("amount") or transfer["amount"] - transfer["amount_reversed"])
        held = f"{transfer['destination']}:{transfer['currency']}"
        if self.balance.get(held, 0) < amount:
            return 400, _err("invalid_request_error", "balance_insufficient", "connected account balance too low")
        self.balance[held] -= amount
        self.balance[transfer["currency"]] += amount
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
        reversal = {
            "id": f"trr_{next(self._ids):08d}",
            "object": "transfer_reversal",
            "amount": amount,
            "transfer": tid,
        }
        self.reversals.append(reversal)
        return 200, reversal

    def _list_payouts(self, account: str | None, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The account's payouts newest first, `created[gte]` and `starting_after`/`limit` paging as Stripe's."""
        since = int(form.get("created[gte]", 0))
        ours = [p for p in reversed(self.payouts.values()) if p["account"] == account and p["created"] >= since]
        if after := form.get("starting_after"):
            ours = ours[[p["id"] for p in ours].index(after) + 1 :]
        limit = int(form.get("limit", 10))
        return 200, {"object": "list", "data": ours[:limit], "has_more": len(ours) > limit, "url": "/v1/payouts"}

    def _create_payout(self, account: str | None, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if account is None:
            return 400, _err("invalid_request_error", None, "platform payouts are not used here")
        currency, amount = form["currency"], int(form["amount"])
        held = f"{account}:{currency}"
        if self.balance.get(held, 0) < amount:
            return 400, _err("invalid_request_error", "balance_insufficient", "connected account balance too low")
        self.balance[held] -= amount
        pid = f"po_{next(self._ids):08d}"
        self.payouts[pid] = {
            "id": pid,
            "object": "payout",
            "amount": amount,
            "currency": currency,
            "status": self.payout_status,
            "failure_code": None,
            "metadata": _metadata(form),
            "statement_descriptor": form.get("statement_descriptor"),
            "account": account,
            "created": int(time.time()),
        }
        return 200, self.payouts[pid]


def _metadata(form: Mapping[str, str]) -> dict[str, str]:
    return {k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")}


def _err(kind: str, code: str | None, message: str, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}


def _missing(what: str, oid: str) -> tuple[int, dict[str, Any]]:
    return 404, _err("invalid_request_error", "resource_missing", f"No such {what}: '{oid}'", "id")


def stripe_provider_doc(
    *,
    name: str = "stripe",
    mode: str = "transfer",
    api_base: str | None = "http://127.0.0.1:1",
    api_key_env: str = "STRIPE_API_KEY",
    assets: tuple[str, ...] = ("USD", "INR"),
    ptype: str = "stripe",
    **options: Any,
) -> dict[str, Any]:
    """A providers-file entry for the Stripe rail."""
    opts: dict[str, Any] = {"mode": mode, **({"api_base": api_base} if api_base is not None else {}), **options}
    if ptype == ProviderType.FIAT_PROVIDER.value:
        opts.setdefault("rail", "stripe")
    return {
        "name": name,
        "type": ptype,
        "assets": list(assets),
        "destination_types": ["stripe_account"],
        "secrets": {"api_key": api_key_env},
        "options": opts,
    }


def build_test_provider(
    *,
    http_client: stripe.HTTPClient | None = None,
    api_key: str = TEST_API_KEY,
    provider_timeout_s: float = 10.0,
    **doc: Any,
) -> StripePayoutProvider:
    """A provider built by the real factory (options validated as at start-up)."""
    raw = stripe_provider_doc(**doc)
    spec = ProviderSpec.model_validate(raw, context={"env": {raw["secrets"]["api_key"]: api_key}})
    context = ProviderContext(
        live_execution=False, database_url="postgresql://unused", provider_timeout_s=provider_timeout_s
    )
    provider = build_stripe(spec, context, http_client=http_client).payouts
    assert isinstance(provider, StripePayoutProvider)
    return provider


def stripe_providers_file(
    tmp_path: Path, api_base: str, *, mode: str = "transfer", api_key_env: str = "STRIPE_API_KEY", **options: Any
) -> Path:
    """A providers file whose only rail is Stripe (USD and INR to `stripe_account`), auto-approving small amounts."""
    doc = {
        "approvals": {"USD": {"auto_below": "1000", "dual_from": "100000"}},
        "providers": [
            stripe_provider_doc(mode=mode, api_base=api_base, api_key_env=api_key_env, timeout_s=2, **options)
        ],
    }
    path = tmp_path / f"providers-stripe-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def provider_event(stripe_event: Mapping[str, Any], *, verified: bool = True) -> Envelope[ProviderEventReceived]:
    """What the webhook ingress publishes for a verified Stripe event about a payout (normalized the same way as
    the rail's `parse_webhook`); one partition per payout (correlation id = our idempotency key)."""
    ev = normalize_event(stripe_event)
    body = json.dumps(stripe_event, sort_keys=True).encode()
    return new_event(
        ProviderEventReceived(
            provider=ProviderType.STRIPE,
            provider_event_id=ev.event_id,
            provider_payout_ref=ev.object_id,
            idempotency_key=ev.idempotency_key,
            kind=ev.kind,
            received_at=datetime.now(UTC),
            verified=verified,
            status=ev.status,
            error_code=ev.error.code if ev.error else None,
            payload_digest=hashlib.sha256(body).hexdigest(),
        ),
        source="/prizeflow/webhooks",
        correlation_id=f"wh-{ev.idempotency_key or ev.object_id}",
    )


__all__ = [
    "TEST_API_KEY",
    "FakeStripeHTTP",
    "Fault",
    "account_id",
    "build_test_provider",
    "provider_event",
    "stripe_provider_doc",
    "stripe_providers_file",
]
