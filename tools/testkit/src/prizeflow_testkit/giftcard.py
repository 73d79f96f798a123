"""The gift-card emulator (tools/giftcard-emulator) as a real process on a free port, and an async client of its
`/_emulator` admin API. Imported by tests only.

    with giftcard_emulator(tmp_path / "giftcard.log", api_key=key) as em:
        async with em.admin() as admin:
            await admin.steer("ann@example.com", "approval")   # the next order to ann waits for approval
            ...
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from prizeflow_testkit.processes import Process, free_port

TEST_API_KEY = "TEST_prizeflow_giftcard_emulator_key"


@dataclass
class GiftCardEmulator:
    url: str
    api_key: str
    process: Process

    @property
    def api_base(self) -> str:
        return self.url + "/api/v2"

    def admin(self) -> GiftCardAdmin:
        return GiftCardAdmin(self.url)


@contextmanager
def giftcard_emulator(
    log: Path, *, api_key: str = TEST_API_KEY, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[GiftCardEmulator]:
    """Start the emulator, yield it, stop it (SIGTERM)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        [sys.executable, "-m", "prizeflow_giftcard_emulator"],
        {
            "GIFTCARD_EMULATOR_PORT": str(port),
            "GIFTCARD_EMULATOR_API_KEYS": api_key,
            "GIFTCARD_EMULATOR_WEBHOOK_RETRY_BASE_MS": "50",
            **(env or {}),
        },
        log,
        url + "/_emulator/health",
    )
    proc.start(timeout=timeout)
    try:
        yield GiftCardEmulator(url, api_key, proc)
    finally:
        proc.stop(timeout=10)


class GiftCardAdminError(AssertionError):
    """The admin API refused a call."""


class GiftCardAdmin:
    """Async client of `/_emulator/...` (see tools/giftcard-emulator/README.md)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/") + "/_emulator", timeout=timeout)

    async def __aenter__(self) -> GiftCardAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, query: dict[str, str] | None = None
    ) -> Any:
        resp = await self._http.request(method, path, json=body, params=query or None)
        if resp.status_code >= 400:
            raise GiftCardAdminError(f"{method} /_emulator{path}: {resp.status_code} {resp.text}")
        return resp.json()

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def steer(self, email: str, outcome: str) -> None:
        """What the next order to `email` does: deliver, approval, delivery_failed, invalid_email, order_failed."""
        await self._call("POST", "/recipients", {"email": email, "outcome": outcome})

    async def approve(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/orders/{order_id}/approve")
        return result

    async def reject(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/orders/{order_id}/reject")
        return result

    async def fail_delivery(self, reward_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/rewards/{reward_id}/fail")
        return result

    async def cancel_delivered(self, reward_id: str) -> dict[str, Any]:
        """The provider cancels a delivered card (value back to the funding source)."""
        result: dict[str, Any] = await self._call("POST", f"/rewards/{reward_id}/cancel_delivered")
        return result

    async def bounce_after_delivery(self, reward_id: str) -> dict[str, Any]:
        """A delivered card's email bounces after all."""
        result: dict[str, Any] = await self._call("POST", f"/rewards/{reward_id}/bounce")
        return result

    async def fault(
        self, kind: str, *, method: str = "*", path_prefix: str = "/api/v2/", count: int = 1, delay_ms: int = 30_000
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

    async def events(self, event: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/events", query={"event": event} if event else None))[
            "events"
        ]
        return result

    async def redeliver(self, event_uuid: str) -> None:
        await self._call("POST", f"/events/{event_uuid}/deliver")

    async def webhooks(
        self,
        *,
        url: str | None = None,
        private_key: str | None = None,
        duplicates: int | None = None,
        hold: bool | None = None,
    ) -> dict[str, Any]:
        body = {
            k: v
            for k, v in {"url": url, "private_key": private_key, "duplicates": duplicates, "hold": hold}.items()
            if v is not None
        }
        result: dict[str, Any] = await self._call("POST", "/webhooks", body)
        return result

    async def release(self, *, reverse: bool = False) -> int:
        result: int = (await self._call("POST", "/webhooks/release", {"reverse": reverse}))["released"]
        return result

    async def deliveries(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/webhooks")
        return result

    async def orders(self, external_id: str | None = None) -> list[dict[str, Any]]:
        """Orders as the API shows them (answered during an API outage too)."""
        query = {"external_id": external_id} if external_id else None
        result: list[dict[str, Any]] = (await self._call("GET", "/orders", query=query))["orders"]
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/stats")
        return result


__all__ = ["TEST_API_KEY", "GiftCardAdmin", "GiftCardAdminError", "GiftCardEmulator", "giftcard_emulator"]
