"""One emulator process for the session (testkit harness), reset before each test; a webhook receiver in the
test process on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import stripe
from aiohttp import web

from prizeflow_testkit import free_port
from prizeflow_testkit.stripe import StripeAdmin, StripeEmulator, stripe_emulator

pytestmark = pytest.mark.integration

OTHER_KEY = "sk_test_other_platform_key"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeEmulator]:
    log = tmp_path_factory.mktemp("stripe-emulator") / "emulator.log"
    env = {
        "STRIPE_EMULATOR_API_KEYS": f"sk_test_prizeflow_emulator,{OTHER_KEY}",
        "STRIPE_EMULATOR_WEBHOOK_RETRY_BASE_MS": "20",
        "STRIPE_EMULATOR_WEBHOOK_MAX_ATTEMPTS": "4",
        "STRIPE_EMULATOR_WEBHOOK_TIMEOUT_MS": "2000",
    }
    with stripe_emulator(log, env=env) as em:
        yield em


@pytest.fixture
async def admin(emulator: StripeEmulator) -> AsyncIterator[StripeAdmin]:
    async with emulator.admin() as client:
        await client.reset()
        await client.webhook_config(retry_base_ms=20, max_attempts=4, hold=False, duplicates=1, timestamp_offset_s=0)
        yield client


@pytest.fixture
def client(emulator: StripeEmulator) -> stripe.StripeClient:
    return emulator.client()


@dataclass
class Received:
    headers: dict[str, str]
    body: str


@dataclass
class Receiver:
    """A webhook endpoint: records every delivery; answers `fail_next` of them with 500 first."""

    url: str
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    status: int = 200

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                await asyncio.sleep(0.02)
        return self.received

    def events(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(r.body) for r in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    rec = Receiver(f"http://127.0.0.1:{port}/webhooks/stripe")

    async def handle(request: web.Request) -> web.Response:
        rec.received.append(Received(dict(request.headers), await request.text()))
        if rec.fail_next > 0:
            rec.fail_next -= 1
            return web.Response(status=500)
        return web.Response(status=rec.status)

    app = web.Application()
    app.router.add_post("/webhooks/stripe", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield rec
    await runner.cleanup()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path
