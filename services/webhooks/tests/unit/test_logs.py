"""What the service writes to its log at the most verbose level: never a payer's personal data, a payment link
or the API key, even from the `stripe` library it calls (which logs its requests and answers at DEBUG)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
import stripe

from prizeflow_runtime.logging import configure_logging
from prizeflow_webhooks.adapters.config import ConfirmConfig
from prizeflow_webhooks.adapters.stripe_api import StripeEventConfirmer

EMAIL = "payer@example.org"
API_KEY = "sk_test_0123456789abcdefSECRET"
INTENT = {
    "id": "pi_1",
    "object": "payment_intent",
    "amount": 1000,
    "currency": "usd",
    "receipt_email": EMAIL,
    "metadata": {"top_up_id": "tu-1", "player_id": "player-7"},
}


class CannedStripe(stripe.HTTPClient):
    """Stripe's answer without a socket."""

    name: ClassVar[str] = "canned"

    def __init__(self, answer: Mapping[str, Any]) -> None:
        super().__init__()
        self.answer = json.dumps(answer).encode()

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        return self.answer, 200, {"Request-Id": "req_1"}

    async def close_async(self) -> None:
        return None


@pytest.fixture
def debug_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """The runtime's logging at DEBUG (as an operator chasing a problem would set it), restored afterwards."""
    root = logging.getLogger()
    saved = (
        root.handlers[:],
        root.level,
        {n: logging.getLogger(n).level for n in ("stripe", *logging.root.manager.loggerDict)},
    )
    configure_logging("webhooks", level="DEBUG", json_output=True)
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


async def test_a_confirmation_at_debug_logs_no_payer_data_nor_key(
    debug_logging: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe, "enable_telemetry", False)  # else it runs `uname` for its user agent
    confirmer = StripeEventConfirmer(
        ConfirmConfig(api_base="http://stripe.invalid", api_key=API_KEY, timeout_s=1),
        http_client=CannedStripe(INTENT),
    )
    intent = await confirmer.fetch_payment_intent("pi_1", account="acct_1")
    assert intent is not None
    assert intent["receipt_email"] == EMAIL
    err = capsys.readouterr().err
    assert EMAIL not in err
    assert "player-7" not in err
    assert API_KEY not in err
