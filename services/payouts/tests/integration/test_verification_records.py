"""Players' verification records on real PostgreSQL + Kafka: a vendor's webhook event (as the ingress publishes it)
makes payouts fetch the applicant's review, record it with its history and publish PlayerVerificationChanged from
the outbox; a replayed event changes nothing; retry then failed; a vendor outage is retried then dead-lettered,
never dropped; PostgreSQL refuses an illegal status move and any edit of the history.

The vendor and the sanctions screen are in-process fakes (the Sumsub adapter and the lists are other tests')."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from compliance_fakes import SECRET_NAME, FakeKyc, FakeScreen
from litestar.testing import AsyncTestClient

from prizeflow_compliance.application.ports import (
    KycProviderError,
    KycReview,
)
from prizeflow_compliance.bootstrap import VERIFICATIONS_CONSUMER, compose_compliance_records
from prizeflow_contracts.envelope import Envelope, decode, new_event
from prizeflow_contracts.events.payouts import PlayerVerificationChanged
from prizeflow_contracts.events.webhooks import VerificationEventReceived
from prizeflow_contracts.kyc import VerificationVendor
from prizeflow_contracts.policy import VerificationStatus
from prizeflow_payouts.bootstrap import Payouts, build, compose
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_testkit import eventually, provision_test_topics, read_topic, wait_ready
from prizeflow_testkit.db import fetch
from prizeflow_testkit.kyc import kyc_emulator
from prizeflow_testkit.payouts import providers_file, publish, running, settings_for, token, unique

pytestmark = pytest.mark.integration

V = VerificationStatus
WEBHOOKS_TOPIC = "prizeflow.webhooks.provider-events.v1"
PAYOUTS_TOPIC = "prizeflow.payouts.events.v1"
UN = {"un": "2026-11-20T00:00:00Z"}  # the list the screen has loaded


@asynccontextmanager
async def running_with(
    settings: PayoutsSettings, kyc: FakeKyc | None, screen: FakeScreen
) -> AsyncIterator[tuple[Payouts, AsyncTestClient[Any]]]:
    await provision_test_topics(settings.kafka_bootstrap_servers, settings.kafka_topic_suffix, settings.kafka_topics)
    parts = compose(settings)
    assert parts.compliance_metrics is not None
    # The vendor: the fake, or (None) the one settings name; the screen: always the fake here.
    parts.records = compose_compliance_records(
        settings, parts.runtime, parts.compliance_metrics, parts.uow, screen=screen, kyc=kyc
    )
    app = build(settings, parts=parts)
    async with AsyncTestClient(app) as client:
        await wait_ready(client)
        yield parts, client


def _settings(db: str, kafka: str, suffix: str, tmp_path: Path) -> PayoutsSettings:
    return settings_for(
        db,
        kafka,
        providers_file(tmp_path),
        topic_suffix=suffix,
        payouts_worker_enabled=False,
        consumer_retry={"max_attempts": 3, "backoff_initial_ms": 10, "backoff_max_ms": 50},
    )


def _event(player: str, applicant: str, n: int) -> Envelope[Any]:
    return new_event(
        VerificationEventReceived(
            provider=VerificationVendor.SUMSUB,
            provider_name="sumsub",
            provider_event_id=f"evt-{player}-{n}",
            applicant_ref=applicant,
            player_id=player,
            kind="applicantReviewed",
            received_at=datetime.now(UTC),
            payload_digest="a" * 64,
        ),
        source="/prizeflow/webhooks",
        correlation_id=f"kyc-{player}",
    )


async def _record(db: str, player: str) -> dict[str, Any] | None:
    rows = await fetch(db, "SELECT * FROM kyc_verifications WHERE player_id = $1", player)
    return dict(rows[0]) if rows else None


async def _wait_status(db: str, player: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        return await _record(db, player)

    found = await eventually(probe, lambda r: r is not None and r["status"] == status, timeout=30, interval=0.05)
    assert found is not None
    return found


async def _seen(db: str, env: Envelope[Any]) -> str:
    """The inbox outcome of an event for the verifications consumer, once it was handled (applied or refused)."""

    async def probe() -> list[Any]:
        return await fetch(
            db,
            "SELECT outcome FROM inbox WHERE consumer LIKE $1 AND event_id = $2",
            f"{VERIFICATIONS_CONSUMER}%",
            env.id,
        )

    rows = await eventually(probe, bool, timeout=30, interval=0.05)
    return str(rows[0]["outcome"])


async def _changes(kafka: str, settings: PayoutsSettings, player: str, expect: int) -> list[PlayerVerificationChanged]:
    async def probe() -> list[PlayerVerificationChanged]:
        records = await read_topic(kafka, PAYOUTS_TOPIC + settings.kafka_topic_suffix)
        out = []
        for r in records:
            data = decode(r.value).data
            if isinstance(data, PlayerVerificationChanged) and data.player_id == player:
                out.append(data)
        return out

    return await eventually(probe, lambda found: len(found) >= expect, timeout=30, interval=0.2)


async def test_webhook_event_fetches_the_review_and_records_it_once(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, topic_suffix, tmp_path)
    kyc, screen = FakeKyc(), FakeScreen(loaded=dict(UN))
    player = unique("pl")
    webhooks = WEBHOOKS_TOPIC + topic_suffix
    async with running_with(settings, kyc, screen) as (_, client):
        me = token(settings, player, "player")
        started = await client.post("/v1/me/verification", headers=me)
        assert started.status_code == 200, started.text
        assert started.json() == {
            "status": "pending",
            "url": f"https://kyc.test/flow/app-{player}",
            "message": "Your identity verification is being reviewed. No action is needed.",
        }
        again = await client.post("/v1/me/verification", headers=me)
        assert again.json()["status"] == "pending"
        record = await _record(db, player)
        assert record is not None
        assert (record["sequence"], record["vendor_ref"]) == (1, f"app-{player}")
        assert record["reference"].startswith("kyc-")

        # The webhook says nothing about the answer: the vendor's review does.
        kyc.reviews[f"app-{player}"] = KycReview(f"app-{player}", V.VERIFIED, "FR", "GREEN")
        first = _event(player, f"app-{player}", 1)
        await publish(kafka_bootstrap, webhooks, [first])
        record = await _wait_status(db, player, "verified")
        assert (record["sequence"], record["country"], record["screening_outcome"]) == (2, "FR", "clear")
        assert record["screening_versions"] == {"un": "2026-11-20T00:00:00Z"} or record["screening_versions"] == (
            '{"un": "2026-11-20T00:00:00Z"}'
        )
        history = await fetch(
            db, "SELECT sequence, status, detail FROM kyc_verification_history WHERE player_id = $1 ORDER BY id", player
        )
        assert [(h["sequence"], h["status"], h["detail"]) for h in history] == [
            (1, "pending", "started"),
            (2, "verified", "GREEN"),
        ]
        changes = await _changes(kafka_bootstrap, settings, player, 2)
        assert [(c.status, c.sequence, c.reference) for c in changes] == [
            (V.PENDING, 1, record["reference"]),
            (V.VERIFIED, 2, record["reference"]),
        ]

        # The same event again (a redelivery) and a new event with the same answer: nothing changes.
        calls = kyc.calls.count("review")
        await publish(kafka_bootstrap, webhooks, [first])
        second = _event(player, f"app-{player}", 2)
        await publish(kafka_bootstrap, webhooks, [second])
        assert await _seen(db, second) == "applied"
        assert kyc.calls.count("review") == calls + 1  # the redelivery never reached the use case (inbox)
        assert await _record(db, player) == record
        assert len(await fetch(db, "SELECT 1 FROM kyc_verification_history WHERE player_id = $1", player)) == 2

        mine = (await client.get("/v1/me/verification", headers=me)).json()
        assert mine == {"status": "verified", "message": "Your identity is verified."}
        staff = await client.get(f"/v1/admin/compliance/players/{player}", headers=token(settings, "val", "approver"))
        assert staff.status_code == 200
        view = staff.json()
        assert (view["status"], view["sequence"], view["country"]) == ("verified", 2, "FR")
        assert [h["status"] for h in view["history"]] == ["pending", "verified"]
        assert view["screening"]["outcome"] == "clear"
        assert isinstance(view["decisions"], list)
        forbidden = await client.get(f"/v1/admin/compliance/players/{player}", headers=me)
        assert forbidden.status_code == 403

    # The identity was screened and dropped: it is in no table payouts keeps.
    dump = await fetch(
        db,
        "SELECT (SELECT coalesce(string_agg(t::text, ''), '') FROM kyc_verifications t) || "
        "(SELECT coalesce(string_agg(h::text, ''), '') FROM kyc_verification_history h) || "
        "(SELECT coalesce(string_agg(o::text, ''), '') FROM outbox o) AS everything",
    )
    assert SECRET_NAME not in dump[0]["everything"]


async def test_retry_then_failed_and_a_screening_hit(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, topic_suffix, tmp_path)
    kyc, screen = FakeKyc(), FakeScreen(persons={SECRET_NAME: ["UN-QDi.1"]}, loaded=dict(UN))
    player, listed = unique("pl"), unique("pl")
    webhooks = WEBHOOKS_TOPIC + topic_suffix
    async with running_with(settings, kyc, screen) as (parts, client):
        for p in (player, listed):
            assert (await client.post("/v1/me/verification", headers=token(settings, p, "player"))).status_code == 200
        kyc.reviews[f"app-{player}"] = KycReview(f"app-{player}", V.RETRY, None, "RED/RETRY")
        await publish(kafka_bootstrap, webhooks, [_event(player, f"app-{player}", 1)])
        await _wait_status(db, player, "retry")
        me = (await client.get("/v1/me/verification", headers=token(settings, player, "player"))).json()
        assert me["status"] == "retry"
        kyc.reviews[f"app-{player}"] = KycReview(f"app-{player}", V.FAILED, None, "RED/FINAL")
        await publish(kafka_bootstrap, webhooks, [_event(player, f"app-{player}", 2)])
        record = await _wait_status(db, player, "failed")
        assert record["sequence"] == 3
        # Failed is final: a later "verified" from the vendor is stale.
        kyc.reviews[f"app-{player}"] = KycReview(f"app-{player}", V.VERIFIED, "FR", "GREEN")
        late = _event(player, f"app-{player}", 3)
        await publish(kafka_bootstrap, webhooks, [late])
        assert await _seen(db, late) == "applied"
        assert (await _record(db, player)) == record
        changes = await _changes(kafka_bootstrap, settings, player, 3)
        assert [(c.status, c.sequence) for c in changes] == [(V.PENDING, 1), (V.RETRY, 2), (V.FAILED, 3)]

        kyc.reviews[f"app-{listed}"] = KycReview(f"app-{listed}", V.VERIFIED, "FR", "GREEN")
        await publish(kafka_bootstrap, webhooks, [_event(listed, f"app-{listed}", 1)])
        hit = await _wait_status(db, listed, "verified")
        assert hit["screening_outcome"] == "hit"
        matches = hit["screening_matches"]
        assert "UN-QDi.1" in str(matches)
        assert SECRET_NAME not in str(hit)
        metrics = parts.compliance_metrics
        assert metrics is not None
        assert metrics.screening_hits.labels("player")._value.get() == 1
        # The player sees a next step, never the match.
        me = (await client.get("/v1/me/verification", headers=token(settings, listed, "player"))).json()
        assert "Listed" not in str(me)  # the entry's name (the fake lists it as "Listed <uid>")
        assert "UN-" not in str(me)


async def test_a_vendor_outage_is_retried_then_dead_lettered_never_dropped(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, topic_suffix, tmp_path)
    kyc = FakeKyc()
    player = unique("pl")
    async with running_with(settings, kyc, FakeScreen(loaded=dict(UN))) as (parts, client):
        assert (await client.post("/v1/me/verification", headers=token(settings, player, "player"))).status_code == 200
        kyc.fail = KycProviderError("unavailable", "the vendor answered 503", retryable=True)  # the outage begins
        kyc.reviews[f"app-{player}"] = KycReview(f"app-{player}", V.VERIFIED, "FR", "GREEN")
        event = _event(player, f"app-{player}", 1)
        await publish(kafka_bootstrap, WEBHOOKS_TOPIC + topic_suffix, [event])
        assert await _seen(db, event) == "refused"
        letters = await fetch(db, "SELECT reason, consumer FROM dead_letters WHERE event_id = $1", event.id)
        assert [r["reason"] for r in letters] == ["handler_failed"]
        assert kyc.calls.count("review") >= 3  # every attempt asked the vendor
        record = await _record(db, player)
        assert record is not None
        assert record["status"] == "pending"
        metrics = parts.compliance_metrics
        assert metrics is not None
        assert metrics.kyc_requests.labels("status", "error")._value.get() >= 3


async def test_the_database_refuses_illegal_moves_and_history_edits(db: str) -> None:
    player = unique("pl")
    await fetch(
        db,
        "INSERT INTO kyc_verifications (player_id, reference, vendor, vendor_ref, status, sequence, updated_at) "
        "VALUES ($1, $2, 'sumsub', $3, 'verified', 2, now())",
        player,
        f"kyc-{player}",
        f"app-{player}",
    )
    await fetch(
        db,
        "INSERT INTO kyc_verification_history (player_id, sequence, status, detail, at) VALUES ($1, 2, 'verified', "
        "'GREEN', now())",
        player,
    )
    for status in ("pending", "retry", "not_started"):
        with pytest.raises(asyncpg.CheckViolationError, match="not a transition"):
            await fetch(
                db, "UPDATE kyc_verifications SET status = $2, sequence = 3 WHERE player_id = $1", player, status
            )
    with pytest.raises(asyncpg.CheckViolationError, match="new sequence"):
        await fetch(db, "UPDATE kyc_verifications SET status = 'failed' WHERE player_id = $1", player)
    with pytest.raises(asyncpg.CheckViolationError, match="references never change"):
        await fetch(db, "UPDATE kyc_verifications SET vendor_ref = 'other' WHERE player_id = $1", player)
    with pytest.raises(asyncpg.CheckViolationError):
        await fetch(db, "UPDATE kyc_verifications SET status = 'bogus', sequence = 3 WHERE player_id = $1", player)
    await fetch(db, "UPDATE kyc_verifications SET status = 'failed', sequence = 3 WHERE player_id = $1", player)
    with pytest.raises(asyncpg.CheckViolationError, match="not a transition"):
        await fetch(db, "UPDATE kyc_verifications SET status = 'verified', sequence = 4 WHERE player_id = $1", player)
    with pytest.raises(asyncpg.CheckViolationError, match="append-only"):
        await fetch(db, "UPDATE kyc_verification_history SET detail = 'edited' WHERE player_id = $1", player)
    with pytest.raises(asyncpg.CheckViolationError, match="append-only"):
        await fetch(db, "DELETE FROM kyc_verification_history WHERE player_id = $1", player)
    with pytest.raises(asyncpg.CheckViolationError, match="append-only"):
        await fetch(db, "TRUNCATE kyc_verification_history")
    with pytest.raises(asyncpg.CheckViolationError):  # a hit names the list's entries it matched
        await fetch(db, "UPDATE kyc_verifications SET screening_outcome = 'hit' WHERE player_id = $1", player)


async def test_without_a_vendor_verification_is_unavailable(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, topic_suffix, tmp_path)
    assert settings.payouts_kyc_provider == "none"
    async with running(settings) as (_, client):
        me = token(settings, unique("pl"), "player")
        answer = await client.post("/v1/me/verification", headers=me)
        assert answer.status_code == 503
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "kyc_unavailable"
        status = (await client.get("/v1/me/verification", headers=me)).json()
        assert status == {"status": "not_started", "message": "Verify your identity to withdraw."}
        staff = await client.post("/v1/me/verification", headers=token(settings, "adam", "admin"))
        assert staff.status_code == 403


async def test_with_the_kyc_emulator(db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path) -> None:
    """The Sumsub adapter against the emulator: the hosted flow's applicant, the player's identity submitted there,
    the vendor's GREEN fetched on the ingress's event, the country kept, the name nowhere."""
    with kyc_emulator(tmp_path / "kyc.log") as em:
        settings = settings_for(
            db,
            kafka_bootstrap,
            providers_file(tmp_path),
            topic_suffix=topic_suffix,
            payouts_worker_enabled=False,
            payouts_kyc_provider="sumsub",
            payouts_kyc_base_url=em.url,
            payouts_kyc_app_token=em.app_token,
            payouts_kyc_secret_key=em.secret_key,
            payouts_kyc_level=em.level,
        )
        player = unique("pl")
        async with running_with(settings, None, FakeScreen(loaded=dict(UN))) as (parts, client), em.admin() as admin:
            assert parts.records is not None
            assert parts.records.kyc is not None
            assert parts.records.kyc.name == "sumsub"
            started = await client.post("/v1/me/verification", headers=token(settings, player, "player"))
            assert started.status_code == 200, started.text
            [applicant] = await admin.applicants(player)
            assert started.json()["url"].startswith(em.url)
            await admin.submit(
                applicant["id"], first_name="Zelda", last_name="Emulated", dob="1980-05-06", country="FRA", review=False
            )
            await admin.review(applicant["id"], "GREEN")
            await publish(kafka_bootstrap, WEBHOOKS_TOPIC + topic_suffix, [_event(player, applicant["id"], 1)])
            record = await _wait_status(db, player, "verified")
            assert (record["country"], record["screening_outcome"], record["vendor_ref"]) == (
                "FR",
                "clear",
                applicant["id"],
            )
            history = await fetch(db, "SELECT detail FROM kyc_verification_history WHERE player_id = $1", player)
            assert "Zelda" not in str([dict(h) for h in history])
            assert "Emulated" not in str(record)
