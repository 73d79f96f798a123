"""The UPI emulator (tools/upi-emulator, RazorpayX-shaped) as a real process on a free port, an API client with its
Basic auth, and an async client of its `/_emulator` admin API. Imported by tests and benches only.

    with upi_emulator(tmp_path / "upi.log") as em:
        async with em.api() as api, em.admin() as admin:
            await admin.rules([{"destination": "*@flaky", "payout": "reversed_after_processed"}])
            ...                                    # a service under test gets em.url, em.key_id, em.key_secret
            await admin.advance(3 * 3600)          # the bank's word three hours later, now
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from prizeflow_testkit.processes import Process, free_port

TEST_KEY_ID = "rzp_test_prizeflowEmu01"
TEST_KEY_SECRET = "prizeflow-upi-emulator-test-secret"  # noqa: S105 - the emulator's test key, accepted by nothing else
ACCOUNT_NUMBER = "7878780080316316"


@dataclass
class UpiEmulator:
    url: str
    key_id: str
    key_secret: str
    process: Process
    account_number: str = ACCOUNT_NUMBER

    def api(self, **options: Any) -> httpx.AsyncClient:
        """An httpx client of `/v1` with the emulator's key (a rail adapter under test makes its own)."""
        return httpx.AsyncClient(base_url=self.url + "/v1", auth=(self.key_id, self.key_secret), **options)

    def admin(self) -> UpiAdmin:
        return UpiAdmin(self.url)


def upi_emulator_process(
    log: Path, *, env: Mapping[str, str] | None = None, port: int | None = None
) -> tuple[Process, str]:
    """The emulator as a process (not started) and its base URL; ready once /_emulator/health answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        [sys.executable, "-m", "prizeflow_upi_emulator"],
        {
            "UPI_EMULATOR_PORT": str(port),
            "UPI_EMULATOR_KEYS": f"{TEST_KEY_ID}:{TEST_KEY_SECRET}",
            "UPI_EMULATOR_WEBHOOK_RETRY_BASE_MS": "50",
            **(env or {}),
        },
        log,
        url + "/_emulator/health",
    )
    return proc, url


@contextmanager
def upi_emulator(log: Path, *, env: Mapping[str, str] | None = None, timeout: float = 30.0) -> Iterator[UpiEmulator]:
    """Start the emulator, yield it, stop it (SIGTERM)."""
    proc, url = upi_emulator_process(log, env=env)
    proc.start(timeout=timeout)
    try:
        yield UpiEmulator(url, TEST_KEY_ID, TEST_KEY_SECRET, proc)
    finally:
        proc.stop(timeout=10)


class UpiAdminError(AssertionError):
    """The admin API refused a call: its status and its answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UpiAdmin:
    """Async client of `/_emulator/...` (see tools/upi-emulator/README.md)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/") + "/_emulator", timeout=timeout)

    async def __aenter__(self) -> UpiAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, query: dict[str, str] | None = None
    ) -> Any:
        resp = await self._http.request(method, path, json=body, params=query or None)
        if resp.status_code >= 400:
            raise UpiAdminError(resp.status_code, f"{method} /_emulator{path}: {resp.status_code} {resp.text}")
        return resp.json()

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    # -- time and the bank -----------------------------------------------------------------------------------------
    async def advance(self, seconds: float) -> dict[str, Any]:
        """Move the clock forward; what came due (settlements, reversals, validations) is done when this returns."""
        result: dict[str, Any] = await self._call("POST", "/clock/advance", {"seconds": seconds})
        return result

    async def freeze(self, frozen: bool = True) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/clock", {"frozen": frozen})
        return result

    async def rules(self, rules: list[dict[str, Any]], *, replace: bool = False) -> list[dict[str, Any]]:
        """Rules in front of those in force (or instead of them): `{destination, payout, reason, after_s,
        validation, registered_name, mode}`."""
        result: list[dict[str, Any]] = (await self._call("PUT" if replace else "POST", "/rules", {"rules": rules}))[
            "rules"
        ]
        return result

    async def top_up(self, amount: int) -> dict[str, Any]:
        """Paise added to the business account; queued payouts that now fit are processed."""
        result: dict[str, Any] = await self._call("POST", "/balance", {"amount": amount})
        return result

    async def balance(self) -> int:
        result: int = (await self._call("GET", "/balance"))["amount"]
        return result

    async def downtime(self, *, down: bool, mode: str = "*") -> list[str]:
        result: list[str] = (await self._call("POST", "/downtime", {"mode": mode, "down": down}))["down"]
        return result

    async def approve(self, payout_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/payouts/{payout_id}/approve")
        return result

    async def reject(self, payout_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/payouts/{payout_id}/reject")
        return result

    async def settle(self, payout_id: str, outcome: str, reason: str | None = None) -> dict[str, Any]:
        """The bank's answer now: `processed`, `failed` or `reversed` (a processed payout can only be reversed)."""
        body = {"outcome": outcome, **({"reason": reason} if reason else {})}
        result: dict[str, Any] = await self._call("POST", f"/payouts/{payout_id}/settle", body)
        return result

    async def payouts(self, **filters: str) -> list[dict[str, Any]]:
        """Every payout (`missing` ones flagged `hidden`), filtered by reference_id, idempotency_key or status;
        answered during an API outage too."""
        result: list[dict[str, Any]] = (await self._call("GET", "/payouts", query=filters))["payouts"]
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/stats")
        return result

    # -- webhooks --------------------------------------------------------------------------------------------------
    async def webhooks(self, **config: Any) -> dict[str, Any]:
        """Any of url, secret, duplicates, hold, retry_base_ms, max_attempts, timeout_ms."""
        result: dict[str, Any] = await self._call("POST", "/webhooks", config)
        return result

    async def deliveries(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/webhooks")
        return result

    async def release(self, order: str = "fifo", *, seed: int | None = None) -> int:
        body: dict[str, Any] = {"order": order, **({"seed": seed} if seed is not None else {})}
        result: int = (await self._call("POST", "/webhooks/release", body))["released"]
        return result

    async def events(self, event: str | None = None, subject_id: str | None = None) -> list[dict[str, Any]]:
        query = {k: v for k, v in {"event": event, "subject_id": subject_id}.items() if v is not None}
        result: list[dict[str, Any]] = (await self._call("GET", "/events", query=query))["events"]
        return result

    async def redeliver(self, event_id: str) -> None:
        await self._call("POST", f"/events/{event_id}/deliver")

    # -- faults, requests, discrepancies ---------------------------------------------------------------------------
    async def fault(
        self, kind: str, *, method: str = "*", path_prefix: str = "/v1/", count: int = 1, delay_ms: int = 30_000
    ) -> dict[str, Any]:
        body = {"kind": kind, "method": method, "path_prefix": path_prefix, "count": count, "delay_ms": delay_ms}
        result: dict[str, Any] = await self._call("POST", "/faults", body)
        return result

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def requests(self, *, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        query = {k: v for k, v in {"method": method, "path": path}.items() if v is not None}
        result: list[dict[str, Any]] = (await self._call("GET", "/requests", query=query))["requests"]
        return result

    async def discrepancy(self, kind: str, **fields: Any) -> str | None:
        """A reconciliation discrepancy in the provider's books (ADR 0011); the statement line it made or changed."""
        result: str | None = (await self._call("POST", "/discrepancies", {"kind": kind, **fields}))["line_id"]
        return result


__all__ = [
    "ACCOUNT_NUMBER",
    "TEST_KEY_ID",
    "TEST_KEY_SECRET",
    "UpiAdmin",
    "UpiAdminError",
    "UpiEmulator",
    "upi_emulator",
    "upi_emulator_process",
]
