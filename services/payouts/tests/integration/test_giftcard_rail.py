"""The gift-card rail end to end on real Kafka + PostgreSQL and the gift-card emulator (a process): an emailed card
is paid once, including after an answer lost on the way back, and its link (the card itself) is nowhere Prizeflow
keeps or says anything: not in any row of the payouts database, not in a log record, not in an event."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from prizeflow_contracts.providers import DestinationType
from prizeflow_payouts.application.payout_requests import payout_id_for
from prizeflow_testkit import read_topic
from prizeflow_testkit.conformance import LogCapture, rendered
from prizeflow_testkit.db import fetch
from prizeflow_testkit.giftcard import GiftCardAdmin, GiftCardEmulator, giftcard_emulator
from prizeflow_testkit.giftcard_payouts import giftcard_provider_doc
from prizeflow_testkit.payouts import payout_events, publish, request, running, settings_for, wait_state

pytestmark = pytest.mark.integration

REQUESTS = "prizeflow.payouts.requests.v1"
KEY_ENV = "PAYOUTS_TEST_GIFTCARD_API_KEY"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiftCardEmulator]:
    # Its answers carry an emailed card's link too, so the scans below look for something that was there.
    env = {"GIFTCARD_EMULATOR_LINKS_FOR_EMAIL": "1"}
    with giftcard_emulator(tmp_path_factory.mktemp("giftcard") / "emulator.log", env=env) as em:
        yield em


@pytest.fixture
async def admin(emulator: GiftCardEmulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GiftCardAdmin]:
    monkeypatch.setenv(KEY_ENV, emulator.api_key)
    async with emulator.admin() as a:
        await a.reset()
        yield a


@pytest.fixture
def capture() -> Iterator[LogCapture]:
    handler = LogCapture()
    root = logging.getLogger()
    loggers = [logging.getLogger(n) for n in ("prizeflow_payouts", "prizeflow_runtime", "httpx", "httpcore")]
    levels = [(lg, lg.level) for lg in (root, *loggers)]
    root.addHandler(handler)
    for lg in (root, *loggers):
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for lg, level in levels:
            lg.setLevel(level)


async def every_row(db: str) -> str:
    """Every row of every table of the payouts database, as text."""
    tables = await fetch(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    out: list[str] = []
    for t in tables:
        rows = await fetch(db, f'SELECT t::text AS row FROM "{t["tablename"]}" t')
        out.extend(r["row"] for r in rows)
    return "\n".join(out)


async def test_an_emailed_card_is_paid_once_and_its_link_is_never_kept_logged_or_published(
    db: str,
    kafka_bootstrap: str,
    topic_suffix: str,
    tmp_path: Path,
    emulator: GiftCardEmulator,
    admin: GiftCardAdmin,
    capture: LogCapture,
) -> None:
    entry: dict[str, Any] = giftcard_provider_doc(
        api_key_env=KEY_ENV, webhook_key_env=None, api_base=emulator.url, delivery="email", timeout_s=1.0
    )
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump({"approvals": {"USD": {"auto_below": "1000000"}}, "providers": [entry]}))
    s = settings_for(db, kafka_bootstrap, path, topic_suffix=topic_suffix)
    env = request(address="ann@example.com", dtype=DestinationType.EMAIL, asset="USD", amount=2_510)
    key = env.data.idempotency_key
    # The order lands, its answer does not: the worker finds it by our id and never orders a second card.
    await admin.fault("timeout_after_success", method="POST", path_prefix="/api/v2/orders", delay_ms=2500)
    async with running(s):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [env, env])
        assert await wait_state(db, key, "paid") == "paid"  # `failed` on the way is the retryable one
        names = await payout_events(kafka_bootstrap, s, key, expect=3, last="PayoutPaid")
    assert names[0] == "PayoutCreated"
    assert names.count("PayoutPaid") == 1
    [order] = await admin.orders(payout_id_for(key))
    assert (await admin.stats())["orders_created"] == 1
    link = order["rewards"][0]["delivery"]["link"]
    token = link.rsplit("/", 1)[-1]
    assert len(token) >= 24
    [row] = await fetch(db, "SELECT provider_ref, state FROM payouts WHERE idempotency_key = $1", key)
    assert (row["provider_ref"], row["state"]) == (order["id"], "paid")
    topics = [REQUESTS, "prizeflow.payouts.events.v1", "prizeflow.audit.v1"]
    events = [r.value.decode() for t in topics for r in await read_topic(kafka_bootstrap, t + topic_suffix)]
    places = {"database": await every_row(db), "logs": rendered(capture.records), "events": "\n".join(events)}
    assert any("ann@example.com" in text for text in places.values())  # the scan does read what was kept
    assert not [where for where, text in places.items() if token in text], "the card link leaked"
