"""Every money field of the rewards API, across the int64 edges, through the live HTTP boundary on real
PostgreSQL: a value no BIGINT holds is a 400 problem naming the field, before any query; nothing is written (no
claim, transfer, top-up, campaign change, correction or staged event); the service stays ready. JSON `-0` is 0,
refused as 0 is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from prizeflow_runtime.db import create_engine
from prizeflow_testkit.int64 import body_with, drive, names_field
from prizeflow_testkit.rewards import STELLAR_KEY, Running, running_app, settings_for

pytestmark = pytest.mark.integration

DEST = {"type": "stellar_account", "address": STELLAR_KEY}
TABLES = ("claims", "ledger_transfers", "top_ups", "campaigns", "ledger_corrections")


@dataclass(frozen=True)
class Field:
    name: str
    path: str
    body: dict[str, Any]
    value_at: tuple[str, ...]
    as_: str  # who asks: player | admin


FIELDS = [
    Field("claim", "/claims/", {"asset": "USDC", "amount": 1, "destination": DEST}, ("amount",), "player"),
    Field(
        "top-up",
        "/wallets/p-1/top-ups",
        {"asset": "USDC", "amount": 1, "provider": "stripe", "reference": "r-1"},
        ("amount",),
        "admin",
    ),
    Field("top-up session", "/wallets/p-1/top-up-sessions", {"asset": "USD", "amount": 1}, ("amount",), "player"),
    Field("funding", "/campaigns/c-1/fund", {"amount": 1, "reference": "f-1"}, ("amount",), "admin"),
    Field(
        "campaign threshold",
        "/campaigns/",
        {"campaign_id": "c-2", "name": "two", "asset": "USDC", "low_threshold": 1},
        ("low_threshold",),
        "admin",
    ),
    Field(
        "correction",
        "/ledger/corrections",
        {
            "debit_account": "treasury:platform",
            "credit_account": "player_wallet:p-1",
            "asset": "USDC",
            "amount": 1,
            "reason": "probe",
            "reference": "corr-1",
        },
        ("amount",),
        "admin",
    ),
]


async def written(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            counted = {t: int((await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()) for t in TABLES}
            staged = await conn.execute(text("SELECT pg_sequence_last_value(pg_get_serial_sequence('outbox', 'seq'))"))
            return {**counted, "events_staged": int(staged.scalar_one() or 0)}
    finally:
        await engine.dispose()


def _headers(app: Running, who: str) -> dict[str, str]:
    base = app.admin if who == "admin" else app.player("p-1")
    return {**base, "content-type": "application/json", "Idempotency-Key": "probe-key-1"}


async def test_every_money_field_refuses_what_no_bigint_holds_and_writes_nothing(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        created = await app.client.post(
            "/campaigns/", json={"campaign_id": "c-1", "name": "one", "asset": "USDC"}, headers=app.admin
        )
        assert created.status_code == 201, created.text
        before = await written(database_url)
        seen: list[tuple[str, int]] = []

        async def check(value: int) -> None:
            for f in FIELDS:
                content = body_with(f.body, f.value_at, str(value))
                r = await app.client.post(f.path, content=content, headers=_headers(app, f.as_))
                assert r.status_code == 400, (f.name, value, r.text)
                problem = r.json()
                assert r.headers["content-type"].startswith("application/problem+json")
                assert problem["code"] == "validation_error", (f.name, problem)
                assert names_field(problem, f.value_at[-1]), (f.name, json.dumps(problem))
                seen.append((f.name, value))

        await drive(check)
        after = await written(database_url)
        ready = await app.client.get("/health/ready")

        # JSON -0 is the integer 0: what 0 gets (a refusal of the use case or the contract), never a 5xx.
        zeros = {}
        for f in FIELDS:
            r = await app.client.post(f.path, content=body_with(f.body, f.value_at, "-0"), headers=_headers(app, f.as_))
            zeros[f.name] = (r.status_code, r.json().get("code"))
        floats = {}
        for f in FIELDS:  # a float is never money, however round
            r = await app.client.post(
                f.path, content=body_with(f.body, f.value_at, "1e40"), headers=_headers(app, f.as_)
            )
            floats[f.name] = (r.status_code, r.json().get("code"))
        final = await written(database_url)
    assert after == before
    assert final == before
    assert ready.status_code == 200
    assert {name for name, _ in seen} == {f.name for f in FIELDS}
    assert all(400 <= status < 500 for status, _ in zeros.values()), zeros
    assert floats == {f.name: (400, "validation_error") for f in FIELDS}
    assert json.dumps(zeros)  # on record in a failure's output
