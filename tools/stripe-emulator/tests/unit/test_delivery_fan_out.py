"""Which deliveries an event makes (no sending: held deliveries and the pre-start buffer never touch a socket)."""

from __future__ import annotations

import json
import random

from prizeflow_emulator_kit.webhooks import DeliveryConfig, DeliveryState
from prizeflow_stripe_emulator.models import Ctx
from prizeflow_stripe_emulator.state import Store
from prizeflow_stripe_emulator.webhooks import StripeDeliverer


def setup() -> tuple[Store, StripeDeliverer]:
    store = Store(api_version="2024-06-20", public_url="http://emulator", clock=lambda: 1_750_000_000)
    deliverer = StripeDeliverer(store, DeliveryConfig(hold=True), rng=random.Random(1))
    store.create_account({}, account_id="acct_fan")
    store.fund("eur", 100, "acct_fan")
    return store, deliverer


def test_each_event_goes_to_the_endpoints_that_want_it_as_many_times_as_asked() -> None:
    store, deliverer = setup()
    platform = store.add_endpoint("http://x/platform", "whsec_p", connect=False)
    connect = store.add_endpoint("http://x/connect", "whsec_c", enabled_events=["payout.created"], connect=True)
    everything = store.add_endpoint("http://x/all", "whsec_a")
    deliverer.config.duplicates = 2
    store.create_payout({"amount": "100", "currency": "eur"}, Ctx(account="acct_fan"))
    held = deliverer.query({"state": "held"})
    assert sorted(d["endpoint_id"] for d in held) == sorted([connect.id, connect.id, everything.id, everything.id])
    assert platform.id not in {d["endpoint_id"] for d in held}
    event = next(iter(store.events.values()))
    assert event["pending_webhooks"] == 2
    assert json.loads(deliverer.held[0].body)["id"] == event["id"]


def test_a_stale_offset_is_captured_when_the_event_is_recorded() -> None:
    store, deliverer = setup()
    store.add_endpoint("http://x/all", "whsec_a")
    deliverer.config.timestamp_offset_s = -600
    store.create_payout({"amount": "50", "currency": "eur"}, Ctx(account="acct_fan"))
    deliverer.config.timestamp_offset_s = 0
    store.create_payout({"amount": "50", "currency": "eur"}, Ctx(account="acct_fan"))
    assert [d.timestamp_offset_s for d in deliverer.held] == [-600, 0]


def test_deliveries_recorded_before_the_loop_runs_wait_for_start() -> None:
    store, deliverer = setup()
    deliverer.config.hold = False
    store.add_endpoint("http://x/all", "whsec_a")
    store.create_payout({"amount": "100", "currency": "eur"}, Ctx(account="acct_fan"))
    assert [d.state for d in deliverer._before_start] == [DeliveryState.QUEUED]
