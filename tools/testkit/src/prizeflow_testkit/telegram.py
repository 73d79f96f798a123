"""The Telegram Bot API emulator (tools/telegram-emulator) as a real process on a free port, and an async client
of its `/_emulator` admin API. Imported by tests and benches only.

    with telegram_emulator(tmp_path / "telegram.log") as em:
        async with em.admin() as admin:
            await admin.fault("sendGift", "timeout_after_success", user_id=42)
        # a service under test gets em.url as its Bot API base and em.token as its bot token
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from prizeflow_testkit.processes import Process, free_port

TEST_TOKEN = "7000000001:AAtestTokenOfThePrizeflowEmulatorBot0"  # noqa: S105 - accepted by the emulator only
GIFTS: Final[tuple[dict[str, Any], ...]] = (
    {"id": "5170145012310081615", "star_count": 15},
    {"id": "5170233102089322756", "star_count": 25},
)


def telegram_emulator_process(
    log: Path, *, token: str = TEST_TOKEN, env: dict[str, str] | None = None, port: int | None = None
) -> tuple[Process, str]:
    """The emulator as a process (not started) and its base URL; ready once /health/ready answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        [sys.executable, "-m", "prizeflow_telegram_emulator"],
        {"TELEGRAM_EMULATOR_PORT": str(port), "TELEGRAM_EMULATOR_TOKENS": token, **(env or {})},
        log,
        url + "/health/ready",
    )
    return proc, url


@dataclass
class TelegramEmulator:
    url: str
    token: str
    process: Process

    def admin(self) -> TelegramAdmin:
        return TelegramAdmin(self.url)


@contextmanager
def telegram_emulator(
    log: Path, *, token: str = TEST_TOKEN, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[TelegramEmulator]:
    """Start the emulator, yield it, stop it (SIGTERM)."""
    proc, url = telegram_emulator_process(log, token=token, env=env)
    proc.start(timeout=timeout)
    try:
        yield TelegramEmulator(url, token, proc)
    finally:
        proc.stop(timeout=10)


class TelegramAdmin:
    """What only Telegram or a user can do (a user pays, blocks the bot), faults, and the emulator's books."""

    def __init__(self, url: str) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/") + "/_emulator", timeout=10.0)

    async def __aenter__(self) -> TelegramAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def _ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = await self._http.request(method, path, json=body)
        if resp.status_code >= 400:
            raise AssertionError(f"telegram emulator {method} {path}: {resp.status_code} {resp.text}")
        out: dict[str, Any] = resp.json()
        return out

    async def reset(self) -> None:
        await self._ok("POST", "/reset")

    async def state(self) -> dict[str, Any]:
        return await self._ok("GET", "/state")

    async def balance(self) -> int:
        return int((await self.state())["balance"])

    async def set_balance(self, amount: int) -> None:
        await self._ok("POST", "/balance", {"amount": amount})

    async def set_gifts(self, gifts: list[dict[str, Any]]) -> None:
        await self._ok("POST", "/gifts", {"gifts": gifts})

    async def user(self, user_id: int, state: str) -> None:
        """`active`, `blocked` (the user blocked the bot) or `deleted` (no such user)."""
        await self._ok("POST", "/users", {"user_id": user_id, "state": state})

    async def pay(self, user_id: int, amount: int) -> str:
        """The user pays the bot `amount` Stars (an invoice); the charge id."""
        return str(
            (await self._ok("POST", "/payments", {"user_id": user_id, "amount": amount}))["telegram_payment_charge_id"]
        )

    async def refund_gift(self, transaction_id: str) -> None:
        """Telegram gives the bot back a gift's Stars: an incoming transaction carrying the purchase's id."""
        await self._ok("POST", f"/gift_refunds/{transaction_id}")

    async def fault(
        self,
        method: str | None,
        kind: str,
        *,
        user_id: int | None = None,
        count: int | None = 1,
        retry_after: int = 1,
    ) -> None:
        body: dict[str, Any] = {"method": method, "kind": kind, "user_id": user_id, "retry_after": retry_after}
        if count is not None:
            body["count"] = count
        await self._ok("POST", "/faults", body)

    async def release(self) -> int:
        """Gifts held back by `ledger_delay` appear in the bot's transactions."""
        return int((await self._ok("POST", "/release"))["released"])

    async def clear_faults(self) -> None:
        await self._ok("DELETE", "/faults")

    async def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """The Bot API calls received (of `method`, any case), oldest first: the request log."""
        path = "/requests" + (f"?method={method}" if method else "")
        return list((await self._ok("GET", path))["requests"])

    async def gifts_to(self, user_id: int) -> list[dict[str, Any]]:
        """Outgoing gift transactions to this user: what the rail really paid them."""
        return [
            t
            for t in (await self.state())["transactions"]
            if t.get("receiver", {}).get("transaction_type") == "gift_purchase"
            and t["receiver"]["user"]["id"] == user_id
        ]


__all__ = ["GIFTS", "TEST_TOKEN", "TelegramAdmin", "TelegramEmulator", "telegram_emulator", "telegram_emulator_process"]
