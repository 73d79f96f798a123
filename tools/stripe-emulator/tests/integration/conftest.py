"""One emulator process for the session (testkit harness), reset before each test; a webhook receiver in the
test process on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import stripe

from prizeflow_testkit.stripe import StripeAdmin, StripeEmulator, WebhookReceiver, stripe_emulator

pytestmark = pytest.mark.integration

OTHER_KEY = "sk_test_other_platform_key"  # a second accepted key: idempotency keys are scoped per API key


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


@pytest.fixture
def other_client(emulator: StripeEmulator) -> stripe.StripeClient:
    """The same emulator through another accepted API key."""
    return stripe.StripeClient(OTHER_KEY, base_addresses={"api": emulator.url})


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as hook:
        yield hook
