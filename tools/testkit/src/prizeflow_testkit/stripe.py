"""The Stripe emulator (tools/stripe-emulator) as a real process on a free port, and an async client of its
`/_emulator` admin API. Imported by tests and benches only.

    with stripe_emulator(tmp_path / "stripe.log", env={"STRIPE_EMULATOR_PLATFORM_BALANCE": "eur:100000"}) as em:
        client = em.client()                        # the official library, pointed at the emulator
        admin = em.admin()                          # async: complete sessions, settle payouts, faults, webhooks
        # a service under test gets em.url as its Stripe API base and em.api_key as its secret key
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from prizeflow_testkit.processes import Process, free_port
from prizeflow_testkit.waits import eventually

if TYPE_CHECKING:
    import stripe as stripe_lib

TEST_API_KEY = "sk_test_prizeflow_emulator"  # the emulator's test key, accepted by nothing else


def stripe_emulator_process(
    log: Path, *, api_key: str = TEST_API_KEY, env: dict[str, str] | None = None, port: int | None = None
) -> tuple[Process, str]:
    """The emulator as a process (not started) and its base URL; ready once /_emulator/health answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        [sys.executable, "-m", "prizeflow_stripe_emulator"],
        {
            "STRIPE_EMULATOR_PORT": str(port),
            "STRIPE_EMULATOR_API_KEYS": api_key,
            "STRIPE_EMULATOR_WEBHOOK_RETRY_BASE_MS": "50",
            **(env or {}),
        },
        log,
        url + "/_emulator/health",
    )
    return proc, url


@dataclass
class StripeEmulator:
    """A running emulator: its URL, the API key it accepts, its process."""

    url: str
    api_key: str
    process: Process

    def client(self, **options: Any) -> stripe_lib.StripeClient:
        """The official `stripe` library against the emulator (options go to `StripeClient`)."""
        import stripe

        return stripe.StripeClient(self.api_key, base_addresses={"api": self.url}, **options)

    def admin(self) -> StripeAdmin:
        return StripeAdmin(self.url)


@contextmanager
def stripe_emulator(
    log: Path, *, api_key: str = TEST_API_KEY, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[StripeEmulator]:
    """Start the emulator, yield it, stop it (SIGTERM)."""
    proc, url = stripe_emulator_process(log, api_key=api_key, env=env)
    proc.start(timeout=timeout)
    try:
        yield StripeEmulator(url, api_key, proc)
    finally:
        proc.stop(timeout=10)


@dataclass
class ReceivedWebhook:
    headers: dict[str, str]
    body: str

    @property
    def signature(self) -> str:
        return self.headers.get("Stripe-Signature", "")


class WebhookReceiver:
    """A webhook endpoint in the test process (aiohttp on a free port): records every delivery, answers 200, or
    500 to the next `fail_next` deliveries.

        async with WebhookReceiver() as hook:
            await admin.add_endpoint(hook.url, secret)
            ...
            [delivery] = await hook.wait_for(1)
    """

    def __init__(self, path: str = "/webhooks/stripe") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self.path = path
        self.received: list[ReceivedWebhook] = []
        self.fail_next = 0
        self._runner: Any = None

    async def __aenter__(self) -> WebhookReceiver:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            self.received.append(ReceivedWebhook(dict(request.headers), await request.text()))
            if self.fail_next > 0:
                self.fail_next -= 1
                return web.Response(status=500)
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post(self.path, handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, *, timeout: float = 10.0) -> list[ReceivedWebhook]:
        """Until at least `count` deliveries arrived."""
        await eventually(self._count, lambda n: n >= count, timeout=timeout, interval=0.02)
        return self.received

    async def _count(self) -> int:
        return len(self.received)


class StripeAdminError(AssertionError):
    """The admin API refused a call (its error object is the message)."""


class StripeAdmin:
    """Async client of `/_emulator/...` (see tools/stripe-emulator/README.md)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url + "/_emulator", timeout=timeout)

    async def __aenter__(self) -> StripeAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, query: dict[str, str] | None = None
    ) -> Any:
        resp = await self._http.request(method, path, json=body, params=query)
        if resp.status_code >= 400:
            raise StripeAdminError(f"{method} /_emulator{path}: {resp.status_code} {resp.text}")
        return resp.json()

    # -- state ---------------------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/health")
        return result

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def create_account(
        self, account_id: str | None = None, *, balance: dict[str, int] | None = None, **fields: str
    ) -> dict[str, Any]:
        """A connected account (`acct_...`, or the id given), optionally with an available balance."""
        body: dict[str, Any] = {**fields, "balance": balance or {}}
        if account_id is not None:
            body["id"] = account_id
        result: dict[str, Any] = await self._call("POST", "/accounts", body)
        return result

    async def restrict_account(
        self, account_id: str, *, payouts_enabled: bool | None = None, transfers: str | None = None
    ) -> dict[str, Any]:
        body = {k: v for k, v in {"payouts_enabled": payouts_enabled, "transfers": transfers}.items() if v is not None}
        result: dict[str, Any] = await self._call("POST", f"/accounts/{account_id}", body)
        return result

    async def fund(self, currency: str, amount: int, *, account: str | None = None) -> dict[str, Any]:
        """Add `amount` minor units to the platform's (or a connected account's) available balance."""
        result: dict[str, Any] = await self._call(
            "POST", "/balance", {"currency": currency, "amount": amount, "account": account}
        )
        return result

    async def balance(self, account: str | None = None) -> dict[str, int]:
        """{currency: available minor units}."""
        result = await self._call("GET", "/balance", query={"account": account} if account else None)
        return {b["currency"]: b["amount"] for b in result["available"]}

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def complete_session(self, session_id: str, outcome: str = "paid") -> dict[str, Any]:
        """`paid`, `async` (complete, payment_status unpaid until `async_result`), or `expire`."""
        result: dict[str, Any] = await self._call(
            "POST", f"/checkout/sessions/{session_id}/complete", {"outcome": outcome}
        )
        return result

    async def async_result(self, session_id: str, *, succeeded: bool) -> dict[str, Any]:
        outcome = "async_succeeded" if succeeded else "async_failed"
        result: dict[str, Any] = await self._call(
            "POST", f"/checkout/sessions/{session_id}/async", {"outcome": outcome}
        )
        return result

    async def open_dispute(
        self, payment_intent: str, *, amount: int | None = None, reason: str = "fraudulent"
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", f"/payment_intents/{payment_intent}/dispute", {"amount": amount, "reason": reason}
        )
        return result

    async def close_dispute(self, dispute_id: str, *, won: bool) -> dict[str, Any]:
        outcome = "won" if won else "lost"
        result: dict[str, Any] = await self._call("POST", f"/disputes/{dispute_id}/close", {"outcome": outcome})
        return result

    async def settle_payout(
        self, payout_id: str, outcome: str = "paid", failure_code: str | None = None
    ) -> dict[str, Any]:
        """`paid`, `in_transit`, `failed` (with `failure_code`); `failed` after `paid` is a bank return."""
        body: dict[str, Any] = {"outcome": outcome}
        if failure_code is not None:
            body["failure_code"] = failure_code
        result: dict[str, Any] = await self._call("POST", f"/payouts/{payout_id}/settle", body)
        return result

    # -- webhooks ------------------------------------------------------------------------------------------

    async def add_endpoint(
        self, url: str, secret: str, *, enabled_events: list[str] | None = None, connect: bool | None = None
    ) -> dict[str, Any]:
        """A webhook endpoint signing with the given secret (every event unless `enabled_events` / `connect`)."""
        body: dict[str, Any] = {"url": url, "secret": secret, "enabled_events": enabled_events, "connect": connect}
        result: dict[str, Any] = await self._call("POST", "/webhook_endpoints", body)
        return result

    async def delete_endpoint(self, endpoint_id: str) -> None:
        await self._call("DELETE", f"/webhook_endpoints/{endpoint_id}")

    async def roll_secret(self, endpoint_id: str, secret: str, *, keep_old: bool = True) -> dict[str, Any]:
        """New secret; with `keep_old` each delivery carries a `v1` per secret until `finish_roll`."""
        result: dict[str, Any] = await self._call(
            "POST", f"/webhook_endpoints/{endpoint_id}/roll", {"secret": secret, "keep_old": keep_old}
        )
        return result

    async def finish_roll(self, endpoint_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/webhook_endpoints/{endpoint_id}/finish_roll")
        return result

    async def webhook_config(self, **changes: Any) -> dict[str, Any]:
        """Read (no arguments) or change delivery: hold, duplicates, timestamp_offset_s, retry_base_ms,
        max_attempts, timeout_ms."""
        result: dict[str, Any] = await (
            self._call("POST", "/webhooks/config", changes) if changes else self._call("GET", "/webhooks/config")
        )
        return result

    async def hold(self) -> None:
        await self.webhook_config(hold=True)

    async def release(self, order: str = "fifo", *, seed: int | None = None) -> list[dict[str, Any]]:
        """Send the held deliveries (`fifo`, `reverse`, `shuffle`) and stop holding."""
        result = await self._call("POST", "/webhooks/release", {"order": order, "seed": seed})
        released: list[dict[str, Any]] = result["released"]
        return released

    async def duplicates(self, copies: int) -> None:
        """Each event recorded from now on is delivered `copies` times."""
        await self.webhook_config(duplicates=copies)

    async def stale_timestamps(self, offset_s: int) -> None:
        """Deliveries of events recorded from now on are signed with `t` shifted by `offset_s` (negative: old)."""
        await self.webhook_config(timestamp_offset_s=offset_s)

    async def resend(self, event_id: str, *, endpoint_id: str | None = None) -> list[dict[str, Any]]:
        result = await self._call("POST", f"/events/{event_id}/resend", {"endpoint_id": endpoint_id})
        created: list[dict[str, Any]] = result["deliveries"]
        return created

    async def deliveries(self, **filters: str) -> list[dict[str, Any]]:
        """The delivery log; filter by event_id, type, endpoint_id, state (held/queued/retrying/succeeded/failed)."""
        result = await self._call("GET", "/webhooks/deliveries", query=filters)
        found: list[dict[str, Any]] = result["deliveries"]
        return found

    async def wait_deliveries(
        self, until: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 15.0, **filters: str
    ) -> list[dict[str, Any]]:
        """Poll the delivery log until `until(deliveries)` holds."""
        return await eventually(lambda: self.deliveries(**filters), until, timeout=timeout, interval=0.05)

    async def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Every event recorded (platform and Connect), oldest first."""
        result = await self._call("GET", "/events", query={"type": type_} if type_ else None)
        found: list[dict[str, Any]] = result["events"]
        return found

    # -- requests and faults -------------------------------------------------------------------------------

    async def requests(self, *, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """The /v1 calls received (method, path, account, idempotency_key, params, status, replayed, fault)."""
        query = {k: v for k, v in {"method": method, "path": path}.items() if v is not None}
        result = await self._call("GET", "/requests", query=query)
        found: list[dict[str, Any]] = result["requests"]
        return found

    async def request_counts(self) -> dict[str, int]:
        """{"POST /v1/transfers": n, ...}."""
        result = await self._call("GET", "/requests")
        counts: dict[str, int] = result["counts"]
        return counts

    async def fault(
        self, kind: str, *, method: str = "*", path_prefix: str = "/v1/", count: int = 1, delay_ms: int | None = None
    ) -> dict[str, Any]:
        """The next `count` calls matching misbehave: `connection_reset`, `rate_limit`, `api_error` (not processed),
        `timeout_after_success` (processed, answer delayed `delay_ms`), `drop_after_success` (processed, cut)."""
        body: dict[str, Any] = {"kind": kind, "method": method, "path_prefix": path_prefix, "count": count}
        if delay_ms is not None:
            body["delay_ms"] = delay_ms
        result: dict[str, Any] = await self._call("POST", "/faults", body)
        return result

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")


__all__ = [
    "TEST_API_KEY",
    "ReceivedWebhook",
    "StripeAdmin",
    "StripeAdminError",
    "StripeEmulator",
    "WebhookReceiver",
    "stripe_emulator",
    "stripe_emulator_process",
]
