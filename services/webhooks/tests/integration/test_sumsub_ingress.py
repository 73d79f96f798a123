"""The KYC emulator (a process, Sumsub-shaped) delivering its signed webhooks to the ingress (a process) on real
PostgreSQL and Kafka: each applicant event stored and published once as a VerificationEventReceived without the
review answer; a redelivery is a duplicate; a webhook signed with another secret is refused and stores nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from prizeflow_contracts.events.webhooks import VerificationEventReceived
from prizeflow_kyc_emulator.signing import request_signature
from prizeflow_testkit import eventually, fetch
from prizeflow_testkit.kyc import KycEmulator, kyc_emulator
from prizeflow_testkit.webhooks import WebhooksProcess

from .conftest import counts, published

pytestmark = pytest.mark.integration

EVENT = VerificationEventReceived.event_type()
SECRET_ENV = "SUMSUB_WEBHOOK_SECRET"
SECRET = "sumsub-webhook-secret-for-tests-0123456789"
SUMSUB = {"name": "sumsub", "type": "sumsub", "scheme": "sumsub_digest", "secrets": [SECRET_ENV]}


async def create_applicant(em: KycEmulator, player_id: str) -> str:
    """`POST /resources/applicants` signed with the emulator's app token, as payouts' adapter does."""
    path = f"/resources/applicants?levelName={em.level}"
    body = json.dumps({"externalUserId": player_id}).encode()
    ts = str(int(time.time()))
    headers = {
        "X-App-Token": em.app_token,
        "X-App-Access-Ts": ts,
        "X-App-Access-Sig": request_signature(em.secret_key, ts, "POST", path, body),
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await http.post(em.url + path, content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    applicant_id: str = resp.json()["id"]
    return applicant_id


async def stored(db_url: str) -> list[dict[str, Any]]:
    rows = await fetch(db_url, "SELECT provider_event_id, kind, outcome, body FROM deliveries ORDER BY id")
    return [dict(r) for r in rows]


def refused_twice(deliveries: dict[str, Any]) -> bool:
    attempts: list[dict[str, Any]] = deliveries["attempts"]
    return sum(1 for a in attempts if a["status"] == 400) >= 2


async def test_the_vendors_webhooks_are_verified_stored_and_published_once(
    webhooks: Callable[..., WebhooksProcess], db_url: str, kafka_bootstrap: str, topics: str, tmp_path: Path
) -> None:
    svc = webhooks(providers=[SUMSUB], secrets_env={SECRET_ENV: SECRET})
    svc.start()
    env = {"KYC_EMULATOR_WEBHOOK_URL": svc.url("sumsub"), "KYC_EMULATOR_WEBHOOK_SECRET": SECRET}
    with kyc_emulator(tmp_path / "kyc.log", env=env) as em:
        async with em.admin() as admin:
            applicant = await create_applicant(em, "player-kyc-1")
            await admin.submit(applicant, first_name="Ann", last_name="Lee", dob="1990-01-02", country="DEU")
            await admin.review(applicant, "RED", reject_type="FINAL")
            rows = await eventually(lambda: stored(db_url), lambda r: len(r) == 3, timeout=30)
            assert [r["kind"] for r in rows] == ["applicantCreated", "applicantPending", "applicantReviewed"]
            assert {r["outcome"] for r in rows} == {"published"}
            for row in rows:
                assert b"Ann" not in bytes(row["body"])  # the vendor's webhooks carry no person

            events = await eventually(
                lambda: published(kafka_bootstrap, topics, EVENT), lambda e: len(e) == 3, timeout=30
            )
            for envelope in events:
                assert isinstance(envelope.data, VerificationEventReceived)
                assert (envelope.data.applicant_ref, envelope.data.player_id) == (applicant, "player-kyc-1")
                payload = envelope.data.model_dump_json()
                assert "RED" not in payload
                assert "FINAL" not in payload

            # A redelivery of the review: a duplicate, nothing new stored or published.
            [reviewed] = await admin.events(type="applicantReviewed", applicant_id=applicant)
            await admin.redeliver(reviewed["correlationId"])
            await eventually(
                admin.deliveries, lambda d: sum(a["status"] == 200 for a in d["attempts"]) == 4, timeout=30
            )
            assert len(await stored(db_url)) == 3

            # Signed with another secret: refused (a problem, 400), nothing stored; the emulator retries, refused again.
            await admin.webhooks(secret="some-other-secret-0123456789")
            await admin.reset_applicant(applicant)
            await eventually(
                admin.deliveries, lambda d: sum(a["status"] == 400 for a in d["attempts"]) >= 2, timeout=30
            )
            assert (await counts(db_url))[0] == 3
