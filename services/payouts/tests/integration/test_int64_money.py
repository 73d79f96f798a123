"""The payouts API's money field (a quote's amount), across the int64 edges, through the live HTTP boundary on real
PostgreSQL: a value no BIGINT holds is a 400 problem naming the field; nothing is written; the service stays
ready."""

from __future__ import annotations

from pathlib import Path

import pytest

from prizeflow_testkit.int64 import body_with, drive
from prizeflow_testkit.payouts import fetch, providers_file, running, settings_for, token

pytestmark = pytest.mark.integration

QUOTE = {"amount": {"asset": "USDC", "amount": 1}, "destination": {"type": "sandbox", "address": "success:p"}}


async def test_a_quote_refuses_an_amount_no_bigint_holds_naming_it(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    async with running(settings) as (_, client):
        headers = {**token(settings, "olga", "ops"), "content-type": "application/json"}
        keys: set[str] = set()

        async def check(value: int) -> None:
            r = await client.post(
                "/payouts/quote", content=body_with(QUOTE, ("amount", "amount"), str(value)), headers=headers
            )
            assert (r.status_code, r.json()["code"]) == (400, "validation_error"), (value, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            keys.update(e["key"] for e in r.json()["errors"])

        await drive(check)
        zero = await client.post(
            "/payouts/quote", content=body_with(QUOTE, ("amount", "amount"), "-0"), headers=headers
        )
        ready = await client.get("/health/ready")
    assert keys == {"amount.amount"}
    assert (zero.status_code, zero.json()["code"]) == (400, "validation_error")  # zero is never payable
    assert ready.status_code == 200
    assert await fetch(db, "SELECT id FROM payouts") == []
