"""The provider conformance kit: every payout rail passes the same suite (`tests/conformance`), through the
payouts service, on real PostgreSQL and Kafka.

Adding a provider means adding it here: a `ProviderHarness` subclass in its own module (how to build the rail,
steer its next payout, complete it, produce its webhooks, count what it really paid, what it cannot do), and
its entry in `HARNESSES`. Then `pytest tests/conformance -k <name>`.
"""

from __future__ import annotations

from typing import Final

from prizeflow_testkit.conformance.base import (
    DISCREPANCIES,
    FINAL_STATES,
    WEBHOOK_SOURCE,
    Behaviour,
    Claims,
    Kit,
    KitEnv,
    LogCapture,
    ProviderHarness,
    Scenario,
    provider_event,
    rendered,
)
from prizeflow_testkit.conformance.exchange import ExchangeHarness
from prizeflow_testkit.conformance.giftcard import GiftCardHarness
from prizeflow_testkit.conformance.manual import ManualHarness
from prizeflow_testkit.conformance.paypal import PayPalHarness
from prizeflow_testkit.conformance.sandbox import SandboxHarness
from prizeflow_testkit.conformance.stellar import StellarHarness
from prizeflow_testkit.conformance.stripe import StripeHarness, StripeTransferHarness
from prizeflow_testkit.conformance.telegram import TelegramHarness
from prizeflow_testkit.conformance.ton import TonHarness, TonHighloadHarness
from prizeflow_testkit.conformance.upi import UpiHarness

HARNESSES: Final[dict[str, type[ProviderHarness]]] = {
    h.name: h
    for h in (
        ManualHarness,
        SandboxHarness,
        StellarHarness,
        StripeHarness,
        StripeTransferHarness,
        TelegramHarness,
        ExchangeHarness,
        GiftCardHarness,
        TonHarness,
        TonHighloadHarness,
        UpiHarness,
        PayPalHarness,
    )
}

__all__ = [
    "DISCREPANCIES",
    "FINAL_STATES",
    "HARNESSES",
    "WEBHOOK_SOURCE",
    "Behaviour",
    "Claims",
    "ExchangeHarness",
    "GiftCardHarness",
    "Kit",
    "KitEnv",
    "LogCapture",
    "ManualHarness",
    "ProviderHarness",
    "SandboxHarness",
    "Scenario",
    "StellarHarness",
    "StripeHarness",
    "StripeTransferHarness",
    "TelegramHarness",
    "TonHarness",
    "TonHighloadHarness",
    "UpiHarness",
    "provider_event",
    "rendered",
]
