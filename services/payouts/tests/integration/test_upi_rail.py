"""The upi rail end to end on real Kafka + PostgreSQL and the UPI emulator (RazorpayX-shaped, a process): a payout
to a new VPA is validated first and paid once; its contact and fund account are made once and remembered; a bank
return hours after `processed`, delivered twice and out of order, returns the payout once; a low balance queues it
until a top-up; an outage is retried; a validation that finds no account fails the payout, one the bank cannot
answer holds it (nothing is sent)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_contracts.rails.razorpayx_events import normalize
from prizeflow_payouts.application.payout_requests import payout_id_for
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_testkit.db import fetch
from prizeflow_testkit.payouts import (
    RECON_SLACK_S,
    payout_events,
    publish,
    request,
    running,
    settings_for,
    token,
    wait_state,
)
from prizeflow_testkit.upi import UpiAdmin, UpiEmulator, upi_emulator
from prizeflow_testkit.upi_payouts import upi_provider_doc
from prizeflow_testkit.waits import eventually

pytestmark = pytest.mark.integration

REQUESTS = "prizeflow.payouts.requests.v1"
PROVIDER_EVENTS = "prizeflow.webhooks.provider-events.v1"
KEY_ID_ENV, KEY_SECRET_ENV = "PAYOUTS_TEST_UPI_KEY_ID", "PAYOUTS_TEST_UPI_KEY_SECRET"
FAST = {"UPI_EMULATOR_VALIDATION_MS": "200", "UPI_EMULATOR_SETTLE_MS": "UPI:300,IMPS:300,NEFT:300,RTGS:300"}
AMOUNT = 50_000  # ₹500


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpiEmulator]:
    with upi_emulator(tmp_path_factory.mktemp("upi") / "emulator.log", env=FAST) as em:
        yield em


@pytest.fixture
async def admin(emulator: UpiEmulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[UpiAdmin]:
    monkeypatch.setenv(KEY_ID_ENV, emulator.key_id)
    monkeypatch.setenv(KEY_SECRET_ENV, emulator.key_secret)
    async with emulator.admin() as a:
        await a.reset()
        yield a


def settings(db: str, kafka: str, suffix: str, tmp_path: Path, api_base: str, **options: Any) -> PayoutsSettings:
    entry = upi_provider_doc(
        api_base=api_base, key_id_env=KEY_ID_ENV, key_secret_env=KEY_SECRET_ENV, webhook_secret_env=None, **options
    )
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump({"approvals": {"INR": {"auto_below": "1000000"}}, "providers": [entry]}))
    return settings_for(db, kafka, path, topic_suffix=suffix, payouts_max_attempts=20, payouts_balances_interval_s=1)


def vpa(kind: str = "") -> str:
    return f"p{secrets.token_hex(5)}{'.' + kind if kind else ''}@okaxis"


def pay(address: str, amount: int = AMOUNT) -> Envelope[Any]:
    return request(address=address, dtype=DestinationType.UPI, asset="INR", amount=amount)


async def processed(admin: UpiAdmin, key: str) -> int:
    found = await admin.payouts(reference_id=payout_id_for(key), status="processed")
    return len([p for p in found if not p.get("hidden")])


def delivered(event: dict[str, Any]) -> Envelope[ProviderEventReceived]:
    """The emulator's recorded event as the webhooks ingress publishes it once verified."""
    body = repr(event["body"]).encode()
    normalized = normalize(
        event["body"],
        str(event["id"]),
        provider=ProviderType.UPI,
        digest=hashlib.sha256(body).hexdigest(),
        received_at=datetime.now(UTC),
    )
    assert isinstance(normalized.event, ProviderEventReceived)
    return new_event(normalized.event, source="/prizeflow/webhooks", correlation_id=f"wh-{event['id']}")


async def test_a_new_vpa_is_validated_then_paid_once_and_its_fund_account_remembered(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: UpiEmulator, admin: UpiAdmin
) -> None:
    s = settings(db, kafka_bootstrap, topic_suffix, tmp_path, emulator.url)
    address = vpa()
    first, second = pay(address), pay(address, 70_000)
    async with running(s):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [first, first])
        assert await wait_state(db, first.data.idempotency_key, "paid") == "paid"
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [second])
        assert await wait_state(db, second.data.idempotency_key, "paid") == "paid"
        names = await payout_events(kafka_bootstrap, s, first.data.idempotency_key, expect=3, last="PayoutPaid")
    assert names.count("PayoutPaid") == 1
    assert "PayoutFailed" not in names
    assert [await processed(admin, e.data.idempotency_key) for e in (first, second)] == [1, 1]
    calls = {path: len(await admin.requests(method="POST", path=path)) for path in
             ("/v1/contacts", "/v1/fund_accounts", "/v1/fund_accounts/validations")}  # fmt: skip
    assert calls == {"/v1/contacts": 1, "/v1/fund_accounts": 1, "/v1/fund_accounts/validations": 1}
    [book] = await fetch(db, "SELECT destination, validation FROM upi_fund_accounts")
    assert (book["destination"], book["validation"]) == (address, "active")
    rows = await fetch(db, "SELECT fee_asset, fee_amount, provider_ref FROM payouts ORDER BY created_at")
    assert [(r["fee_asset"], r["fee_amount"]) for r in rows] == [("INR", 590), ("INR", 590)]
    # The key RazorpayX saw is derived from our payout id.
    [made] = await admin.payouts(reference_id=payout_id_for(first.data.idempotency_key))
    assert made["idempotency_key"] == payout_id_for(first.data.idempotency_key)
    assert made["mode"] == "UPI"


async def test_paid_by_its_webhook_first_or_by_its_status_first_a_payout_records_the_fee_and_a_window_is_clean(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: UpiEmulator, admin: UpiAdmin
) -> None:
    """Issue 56: a payout paid by its `processed` webhook before payouts polls its status records the fee RazorpayX
    charged (590 paise: ₹5 + 18 % GST), as one paid by the poll does; one paid by an answer that names no fee records
    the fee from the statement, the first answer that carries it; the window over the three raises nothing."""
    polled = settings(db, kafka_bootstrap, topic_suffix, tmp_path, emulator.url)
    # The rail makes the payout at RazorpayX on a status sync (after its validation); the next one is 8 s later,
    # long after the test delivers `processed` (settled in 0.3 s): the webhook pays it, as the history shows.
    hooked = polled.model_copy(update={"payouts_confirm_poll_ms": 8_000})
    by_webhook, feeless, by_poll = pay(vpa(), 32_100), pay(vpa(), 43_200), pay(vpa(), 65_400)
    keys = [e.data.idempotency_key for e in (by_webhook, feeless, by_poll)]
    t0 = datetime.now(UTC)
    async with running(hooked):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [by_webhook, feeless])
        for key, drop_fee in ((keys[0], False), (keys[1], True)):
            [made] = await eventually(partial(admin.payouts, reference_id=payout_id_for(key)), _processed, timeout=60)
            [paid] = await admin.events("payout.processed", made["id"])
            if drop_fee:  # an answer that names no fee (as a rail's webhook may not)
                del paid["body"]["payload"]["payout"]["entity"]["fees"]
            await publish(kafka_bootstrap, PROVIDER_EVENTS + topic_suffix, [delivered(paid)])
        for key in keys[:2]:
            assert await wait_state(db, key, "paid") == "paid"
        moved = await fetch(
            db,
            "SELECT h.actor FROM payout_history h JOIN payouts p ON p.id = h.payout_id "
            "WHERE p.idempotency_key = ANY($1) AND h.to_state = 'paid' AND h.from_state <> 'paid'",
            keys[:2],
        )
        assert [m["actor"] for m in moved] == ["webhook:upi", "webhook:upi"], moved
    async with running(polled) as (_parts, client):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [by_poll])
        assert await wait_state(db, keys[2], "paid") == "paid"
        assert await _fees(db, keys) == [("INR", 590), (None, None), ("INR", 590)]
        until = datetime.now(UTC)  # the window is run once it ended the slack ago
        await eventually(_now, lambda now: now > until + timedelta(seconds=RECON_SLACK_S + 0.2), timeout=15)
        ops = token(polled, "olga", "ops")
        window = {"provider": "upi", "since": t0.isoformat(), "until": until.isoformat()}
        answer = await client.post("/reconciliation/runs", json=window, headers=ops)
        assert answer.status_code == 200, answer.text
        run = answer.json()
        assert (run["state"], run["exceptions"]) == ("completed", 0), run
        listed = await client.get("/reconciliation/exceptions", headers=ops)
        assert listed.json()["exceptions"] == [], listed.text
    assert await _fees(db, keys) == [("INR", 590)] * 3  # the statement's fee, recorded with the payout
    [noted] = await fetch(
        db,
        "SELECT h.actor, h.from_state, h.to_state FROM payout_history h JOIN payouts p ON p.id = h.payout_id "
        "WHERE p.idempotency_key = $1 AND h.reason LIKE 'fee 590 INR:%'",
        keys[1],
    )
    assert (noted["actor"], noted["from_state"], noted["to_state"]) == ("reconciliation", "paid", "paid")


async def _fees(db: str, keys: list[str]) -> list[tuple[str | None, int | None]]:
    rows = await fetch(
        db, "SELECT idempotency_key, fee_asset, fee_amount FROM payouts WHERE idempotency_key = ANY($1)", keys
    )
    by_key = {r["idempotency_key"]: (r["fee_asset"], r["fee_amount"]) for r in rows}
    return [by_key[k] for k in keys]


async def _now() -> datetime:
    return datetime.now(UTC)


def _processed(found: list[dict[str, Any]]) -> bool:
    return len(found) == 1 and found[0]["status"] == "processed"


async def test_a_bank_return_after_processed_returns_the_payout_once_whatever_the_deliveries(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: UpiEmulator, admin: UpiAdmin
) -> None:
    s = settings(db, kafka_bootstrap, topic_suffix, tmp_path, emulator.url)
    env = pay(vpa("returned"))  # the emulator's rule: processed, reversed by the bank 3 h later
    key = env.data.idempotency_key
    async with running(s):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [env])
        assert await wait_state(db, key, "paid") == "paid"
        [made] = await admin.payouts(reference_id=payout_id_for(key))
        await admin.advance(3 * 3600 + 60)  # two hours and more later, the bank returns it
        [reversed_] = await admin.events("payout.reversed", made["id"])
        [paid] = await admin.events("payout.processed", made["id"])
        # Delivered twice, with the older `processed` after it: returned once, nothing moves backwards.
        await publish(
            kafka_bootstrap,
            PROVIDER_EVENTS + topic_suffix,
            [delivered(reversed_), delivered(reversed_), delivered(paid)],
        )
        assert await wait_state(db, key, "returned") == "returned"
        names = await payout_events(kafka_bootstrap, s, key, expect=4, last="PayoutReturned")
        # Every delivery handled (the reversal once, its copy a duplicate, the late `processed` too) before the
        # history is read: otherwise what follows could read it before the last one and prove nothing.
        recorded = await eventually(
            lambda: fetch(
                db,
                "SELECT provider_event_id, outcome FROM provider_events e JOIN payouts p ON p.id = e.payout_id "
                "WHERE p.idempotency_key = $1",
                key,
            ),
            lambda rows: {r["provider_event_id"] for r in rows} >= {str(reversed_["id"]), str(paid["id"])},
        )
        assert len(recorded) == 2, recorded
    assert names.count("PayoutReturned") == 1
    assert names.count("PayoutPaid") == 1
    history = await fetch(
        db,
        "SELECT from_state, to_state FROM payout_history h JOIN payouts p ON p.id = h.payout_id "
        "WHERE p.idempotency_key = $1 ORDER BY h.id",
        key,
    )
    moves = [(h["from_state"], h["to_state"]) for h in history if h["from_state"] != h["to_state"]]
    # Returned once; the late `processed` moves nothing back (at most a note that it contradicts the return,
    # checked against RazorpayX's current status).
    assert moves.count(("paid", "returned")) == 1
    assert moves[-1] == ("paid", "returned"), moves
    assert {h["to_state"] for h in history if h["from_state"] == "returned"} <= {"returned"}
    assert (await admin.payouts(reference_id=payout_id_for(key)))[0]["status"] == "reversed"


async def test_a_low_balance_queues_the_payout_until_a_top_up(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with upi_emulator(tmp_path / "low.log", env={**FAST, "UPI_EMULATOR_BALANCE": "10000"}) as em:
        monkeypatch.setenv(KEY_ID_ENV, em.key_id)
        monkeypatch.setenv(KEY_SECRET_ENV, em.key_secret)
        s = settings(db, kafka_bootstrap, topic_suffix, tmp_path, em.url)
        env = pay(vpa())
        key = env.data.idempotency_key
        async with em.admin() as admin, running(s):
            await publish(kafka_bootstrap, REQUESTS + topic_suffix, [env])

            async def queued() -> list[dict[str, Any]]:
                return await admin.payouts(reference_id=payout_id_for(key), status="queued")

            [made] = await eventually(queued, bool, timeout=30)
            assert made["status_details"]["reason"] == "low_balance"
            assert await wait_state(db, key, "submitted") == "submitted"
            assert await processed(admin, key) == 0
            await admin.top_up(1_000_000)
            assert await wait_state(db, key, "paid") == "paid"
            assert await processed(admin, key) == 1


async def test_an_outage_is_retried_and_pays_once(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: UpiEmulator, admin: UpiAdmin
) -> None:
    s = settings(db, kafka_bootstrap, topic_suffix, tmp_path, emulator.url)
    env = pay(vpa())
    key = env.data.idempotency_key
    await admin.fault("outage", path_prefix="/v1/", count=100_000)
    async with running(s):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [env])

        async def errors() -> list[Any]:
            rows = await fetch(
                db,
                "SELECT a.error_code FROM payout_attempts a JOIN payouts p ON p.id = a.payout_id "
                "WHERE p.idempotency_key = $1 AND a.error_code IS NOT NULL",
                key,
            )
            return [r["error_code"] for r in rows]

        felt = await eventually(errors, bool, timeout=30)
        assert set(felt) <= {"provider_unavailable", "timeout_unknown_outcome"}
        assert await state_not_final(db, key)
        await admin.clear_faults()
        assert await wait_state(db, key, "paid", timeout=60) == "paid"
    assert await processed(admin, key) == 1


async def state_not_final(db: str, key: str) -> bool:
    [row] = await fetch(db, "SELECT state, next_attempt_at FROM payouts WHERE idempotency_key = $1", key)
    return row["state"] != "failed" or row["next_attempt_at"] is not None


async def test_a_validation_finding_no_account_fails_and_one_unanswered_holds(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: UpiEmulator, admin: UpiAdmin
) -> None:
    s = settings(db, kafka_bootstrap, topic_suffix, tmp_path, emulator.url)
    invalid, unanswered = pay(vpa("invalid")), pay(vpa("unreachable"))
    async with running(s) as (_, client):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [invalid, unanswered])
        assert await wait_state(db, invalid.data.idempotency_key, "failed") == "failed"
        held = unanswered.data.idempotency_key

        async def polled() -> dict[str, Any]:
            [row] = await fetch(db, "SELECT state, sync_polls FROM payouts WHERE idempotency_key = $1", held)
            return dict(row)

        row = await eventually(polled, lambda r: r["sync_polls"] >= 3, timeout=30)
        assert row["state"] == "submitted"
        # A person cancels it: nothing was sent, its reservation goes back. While a status sync holds it (it polls
        # the validation, and would send the payout once the validation is active) the cancel is a 409: again.

        async def cancel() -> Any:
            return await client.post(
                f"/payouts/{payout_id_for(held)}/cancel",
                json={"reason": "not validated"},
                headers=token(s, "admin-1", "admin"),
            )

        answer = await eventually(
            cancel, lambda a: a.status_code != 409 or a.json().get("code") not in ("in_flight", "concurrent_change")
        )
        assert answer.status_code == 200, answer.text
        assert await wait_state(db, held, "cancelled") == "cancelled"
    [failed] = await fetch(
        db, "SELECT last_error_code FROM payouts WHERE idempotency_key = $1", invalid.data.idempotency_key
    )
    assert failed["last_error_code"] == "invalid_destination"
    books = {r["destination"].split("@")[0].split(".")[-1]: r["validation"]
             for r in await fetch(db, "SELECT destination, validation FROM upi_fund_accounts")}  # fmt: skip
    assert books == {"invalid": "invalid", "unreachable": "failed"}
    # Nothing was sent for either.
    assert await admin.requests(method="POST", path="/v1/payouts") == []


def samples(exposition: str) -> dict[str, float]:
    """`series{labels}` → value, of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


async def test_the_balance_at_razorpayx_is_exported_and_kept_through_an_outage(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: UpiEmulator, admin: UpiAdmin
) -> None:
    """What PrizeflowProviderBalanceLow reads: the account's balance at the emulator (`GET /v1/banking_balances`)
    and the operator's threshold, refreshed by the gauges job; an outage keeps the last figure, never 0."""
    s = settings(db, kafka_bootstrap, topic_suffix, tmp_path, emulator.url, low_balance_below=2_000_000_000)
    series = '{currency="INR",provider="upi"}'
    balance, threshold = (
        f"prizeflow_payouts_provider_balance{series}",
        f"prizeflow_payouts_provider_balance_low_threshold{series}",
    )
    opening = await admin.balance()
    async with running(s) as (_parts, client):

        async def scraped() -> dict[str, float]:
            return samples((await client.get("/metrics")).text)

        got = await eventually(scraped, lambda m: m.get(balance) == opening, timeout=30)
        assert got[threshold] == 2_000_000_000
        ops = token(s, "ops-1", "ops")

        async def shown() -> dict[str, Any]:
            listed = (await client.get("/providers", headers=ops)).json()["providers"]
            upi: dict[str, Any] = next(p for p in listed if p["name"] == "upi")["balance"]
            return upi

        # What people see (GET /providers, the console's FX desk): the balance read now, with the threshold.
        assert (await shown())["balances"] == [
            {"currency": "INR", "available": opening, "low_below": 2_000_000_000, "low": opening < 2_000_000_000}
        ]
        await admin.top_up(2_500_000)
        await eventually(scraped, lambda m: m.get(balance) == opening + 2_500_000, timeout=30)

        await admin.fault("outage", path_prefix="/v1/banking_balances", count=100_000)
        await admin.top_up(100)

        async def asked_during_outage() -> list[dict[str, Any]]:
            return await admin.requests(method="GET", path="/v1/banking_balances")

        before = len(await asked_during_outage())
        await eventually(asked_during_outage, lambda r: len(r) >= before + 2, timeout=30)
        assert (await scraped())[balance] == opening + 2_500_000  # unreadable: the last figure stays
        unreadable = await shown()
        assert "balances" not in unreadable
        assert unreadable["unavailable"]  # why (the error's type), never a made-up figure
        await admin.clear_faults()
        await eventually(scraped, lambda m: m.get(balance) == opening + 2_500_100, timeout=30)
