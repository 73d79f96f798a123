"""The rates emulator (tools/rates-emulator, Open Exchange Rates-shaped) as a real process on a free port, and an
async client of its `/_emulator` admin API. Imported by tests and benches only.

    with rates_emulator(tmp_path / "rates.log") as em:
        async with em.admin() as admin:
            await admin.set_rates({"INR": "84.1"})    # published at once
            await admin.freeze()                      # the provider goes stale
            await admin.advance(7200)                 # ... for two hours
        # a service under test gets em.url as its rates API base and em.app_id
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from prizeflow_testkit.processes import Process, free_port

TEST_APP_ID = "prizeflow0rates0emulator0test0id"


@dataclass
class RatesEmulator:
    url: str
    app_id: str
    process: Process

    @property
    def api_base(self) -> str:
        return self.url + "/api"

    def admin(self) -> RatesAdmin:
        return RatesAdmin(self.url)


def rates_emulator_process(
    log: Path, *, env: Mapping[str, str] | None = None, port: int | None = None
) -> tuple[Process, str]:
    """The emulator as a process (not started) and its base URL; ready once /_emulator/health answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        [sys.executable, "-m", "prizeflow_rates_emulator"],
        {"RATES_EMULATOR_PORT": str(port), "RATES_EMULATOR_APP_IDS": TEST_APP_ID, **(env or {})},
        log,
        url + "/_emulator/health",
    )
    return proc, url


@contextmanager
def rates_emulator(
    log: Path, *, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> Iterator[RatesEmulator]:
    """Start the emulator, yield it, stop it (SIGTERM)."""
    proc, url = rates_emulator_process(log, env=env)
    proc.start(timeout=timeout)
    try:
        yield RatesEmulator(url, TEST_APP_ID, proc)
    finally:
        proc.stop(timeout=10)


class RatesAdminError(AssertionError):
    """The admin API refused a call: its status and its answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RatesAdmin:
    """Async client of `/_emulator/...` (see tools/rates-emulator/README.md). Rates go as decimal strings."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/") + "/_emulator", timeout=timeout)

    async def __aenter__(self) -> RatesAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, query: dict[str, str] | None = None
    ) -> Any:
        resp = await self._http.request(method, path, json=body, params=query or None)
        if resp.status_code >= 400:
            raise RatesAdminError(resp.status_code, f"{method} /_emulator{path}: {resp.status_code} {resp.text}")
        return resp.json()

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def board(self) -> dict[str, Any]:
        """The market, the latest publication, frozen or not, the publication interval and the schedule."""
        result: dict[str, Any] = await self._call("GET", "/rates")
        return result

    async def set_rates(self, rates: Mapping[str, str | Decimal], *, publish: bool = True) -> dict[str, Any]:
        """Rates against USD; published at once unless the board is frozen (or `publish` is false)."""
        body = {"rates": {k: str(v) for k, v in rates.items()}, "publish": publish}
        result: dict[str, Any] = await self._call("POST", "/rates", body)
        return result

    async def move(
        self, symbol: str, *, to: str | Decimal | None = None, by_bps: int | None = None, publish: bool = True
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"symbol": symbol, "publish": publish}
        if to is not None:
            body["to"] = str(to)
        if by_bps is not None:
            body["by_bps"] = by_bps
        result: dict[str, Any] = await self._call("POST", "/rates/move", body)
        return result

    async def schedule(self, after_s: float, rates: Mapping[str, str | Decimal]) -> dict[str, Any]:
        """The market moves `after_s` from now (published at the next publication)."""
        body = {"after_s": after_s, "rates": {k: str(v) for k, v in rates.items()}}
        result: dict[str, Any] = await self._call("POST", "/rates/schedule", body)
        return result

    async def freeze(self, frozen: bool = True) -> dict[str, Any]:
        """Stop publishing (stale) or start again."""
        result: dict[str, Any] = await self._call("POST", "/freeze", {"frozen": frozen})
        return result

    async def publish(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/publish")
        return result

    async def advance(self, seconds: float) -> dict[str, Any]:
        """Move the clock forward; moves and publications that came due are done when this returns."""
        result: dict[str, Any] = await self._call("POST", "/clock/advance", {"seconds": seconds})
        return result

    async def quote(self, base: str = "USD") -> dict[str, Any]:
        """What the API answers now, rates as strings."""
        result: dict[str, Any] = await self._call("GET", "/quote", query={"base": base})
        return result

    async def fault(
        self, kind: str, *, method: str = "*", path_prefix: str = "/api/", count: int = 1, delay_ms: int = 30_000
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


__all__ = ["TEST_APP_ID", "RatesAdmin", "RatesAdminError", "RatesEmulator", "rates_emulator", "rates_emulator_process"]
