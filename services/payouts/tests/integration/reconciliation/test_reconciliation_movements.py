"""Money that moves again after reconciliation found it (issue 43), through the service's boundaries on real
PostgreSQL and Kafka: payouts requested on Kafka, paid through the Stripe rail against the Stripe emulator (a real
process) or the sandbox rail, the provider's books made to move at the emulator (`/_emulator/discrepancies`: a
partial reversal, a fee, a payment again) or in the sandbox's own books (a payment listed late), windows run through
the reconciliation admin API and resolved there by two people, the adjustments read back from Kafka.

Each movement after a first finding was resolved is a new exception for exactly the money the books have not
absorbed; a payout's only payment listed late, far from the window it was paid in, is its payment, not a second one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.payouts import ReconciliationAdjusted
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_testkit import eventually, read_topic
from prizeflow_testkit.db import fetch
from prizeflow_testkit.payouts import (
    RECON_SLACK_S,
    providers_file,
    request_payout,
    running,
    settings_for,
    token,
    unique,
    wait_state,
)
from prizeflow_testkit.stripe import StripeAdmin, StripeEmulator, stripe_emulator
from prizeflow_testkit.stripe_payouts import stripe_providers_file

pytestmark = pytest.mark.integration

KEY_ENV = "PAYOUTS_TEST_STRIPE_API_KEY"
USD_100 = 10_000  # 100 USD in cents


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeEmulator]:
    log = tmp_path_factory.mktemp("stripe") / "emulator.log"
    with stripe_emulator(log, env={"STRIPE_EMULATOR_PLATFORM_BALANCE": "usd:100000000"}) as em:
        yield em


@pytest.fixture
async def admin(emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StripeAdmin]:
    monkeypatch.setenv(KEY_ENV, emulator.api_key)
    async with emulator.admin() as a:
        await a.reset()  # no other test's transfers in this test's windows
        yield a


def _stripe(db: str, kafka: str, suffix: str, tmp_path: Path, emulator: StripeEmulator) -> PayoutsSettings:
    providers = stripe_providers_file(tmp_path, emulator.url, mode="transfer", api_key_env=KEY_ENV)
    return settings_for(db, kafka, providers, topic_suffix=suffix, payouts_confirm_poll_ms=60_000)


async def _paid_at_stripe(settings: PayoutsSettings, admin: StripeAdmin, db: str) -> tuple[str, str]:
    """A 100 USD payout requested on Kafka and paid by a transfer to a connected account: (payout id, its key)."""
    account = str((await admin.create_account())["id"])
    key = unique("recon43")
    payout_id = await request_payout(
        settings, key, amount=USD_100, address=account, dtype="stripe_account", asset="USD"
    )
    assert await wait_state(db, key, "paid", "failed") == "paid"
    return payout_id, key


async def _move(emulator: StripeEmulator, kind: str, key: str, amount: int | None = None) -> None:
    """The provider's books move (the emulator's admin API)."""
    body: dict[str, Any] = {"kind": kind, "reference": key}
    if amount is not None:
        body["amount"] = amount
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as http:
        answer = await http.post("/_emulator/discrepancies", json=body)
    assert answer.status_code == 201, answer.text


async def _closed() -> datetime:
    """Now, as the end of a window, once it ended the slack ago (a window is run once its late lines are listed)."""
    until = datetime.now(UTC)

    async def now() -> datetime:
        return datetime.now(UTC)

    await eventually(now, lambda t: t > until + timedelta(seconds=RECON_SLACK_S + 0.2), timeout=15)
    return until


class _Queue:
    """The reconciliation admin API as people use it: ops run windows and propose, an approver confirms."""

    def __init__(self, settings: PayoutsSettings, client: AsyncTestClient[Any], provider: str) -> None:
        self.client, self.provider = client, provider
        self.ops = token(settings, "olga", "ops")
        self.approver = token(settings, "bob", "approver")

    async def run(self, since: datetime, until: datetime) -> dict[str, Any]:
        window = {"provider": self.provider, "since": since.isoformat(), "until": until.isoformat()}
        answer = await self.client.post("/reconciliation/runs", json=window, headers=self.ops)
        assert answer.status_code == 200, answer.text
        run: dict[str, Any] = answer.json()
        assert run["state"] == "completed", run
        return run

    async def exceptions(self, kind: str | None = None) -> list[dict[str, Any]]:
        params = {"kind": kind} if kind else {}
        answer = await self.client.get("/reconciliation/exceptions", params=params, headers=self.ops)
        assert answer.status_code == 200, answer.text
        return sorted(answer.json()["exceptions"], key=lambda e: e["id"])

    async def resolve(self, exception_id: int, action: str, reason: str) -> dict[str, Any]:
        """`acknowledge` by one person; a money action proposed by one and executed by a second."""
        body = {"action": action, "reason": reason}
        path = f"/reconciliation/exceptions/{exception_id}/resolve"
        first = await self.client.post(path, json=body, headers=self.ops)
        if action == "acknowledge":
            assert first.status_code == 200, first.text
            return dict(first.json())
        assert first.status_code == 202, first.text
        second = await self.client.post(path, json=body, headers=self.approver)
        assert second.status_code == 200, second.text
        done: dict[str, Any] = second.json()
        assert (done["state"], done["resolution"]["resolved_by"]) == ("resolved", ["olga", "bob"])
        return done


async def _adjustments(kafka: str, settings: PayoutsSettings, count: int) -> list[ReconciliationAdjusted]:
    """The adjustments rewards is told to post (`ReconciliationAdjusted` on the payouts topic), once `count` are out."""
    topic = "prizeflow.payouts.events.v1" + settings.kafka_topic_suffix

    async def probe() -> list[ReconciliationAdjusted]:
        found = [decode(r.value).data for r in await read_topic(kafka, topic)]
        return [a for a in found if isinstance(a, ReconciliationAdjusted)]

    return await eventually(probe, lambda found: len(found) >= count, timeout=30)


def _money(found: list[dict[str, Any]]) -> list[tuple[str, str, int, str]]:
    return [(e["kind"], e["payout_id"], e["amount"], e["state"]) for e in found]


async def test_a_second_partial_reversal_is_a_new_exception_for_what_came_back_since(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    """40 of 100 USD reversed at Stripe and acknowledged; the other 60 reversed later: 60 more found, not hidden
    behind the first (the 60 sat at the provider with no book showing them)."""
    settings = _stripe(db, kafka_bootstrap, topic_suffix, tmp_path, emulator)
    async with running(settings) as (_parts, client):
        queue = _Queue(settings, client, "stripe")
        t0 = datetime.now(UTC)
        payout, key = await _paid_at_stripe(settings, admin, db)
        await _move(emulator, "reversal", key, 4_000)
        t1 = await _closed()
        await queue.run(t0, t1)
        (first,) = await queue.exceptions()
        assert _money([first]) == [("unrecorded_reversal", payout, 4_000, "open")]
        await queue.resolve(first["id"], "acknowledge", "40 USD credited back to the player by a ledger correction")

        await _move(emulator, "reversal", key, 6_000)
        t2 = await _closed()
        later = await queue.run(t1, t2)
        assert later["exceptions"] == 1
        found = await queue.exceptions()
        assert _money(found) == [
            ("unrecorded_reversal", payout, 4_000, "resolved"),
            ("unrecorded_reversal", payout, 6_000, "open"),
        ]
        assert [e["absorbed"] for e in found] == [0, 4_000]  # what the exceptions before it claimed
        # A window over both finds nothing again: everything that came back is claimed once.
        await queue.run(t0, t2)
        assert len(await queue.exceptions()) == 2
        assert sum(e["amount"] for e in await queue.exceptions()) == USD_100


async def test_a_fee_raised_after_it_was_booked_is_a_new_exception_for_the_rise(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    """Stripe charges 30 on the transfer, booked by two people; then its fee on the same transaction is 50: 20 more
    is found and booked, never the 30 again (the books then hold exactly the provider's 50)."""
    settings = _stripe(db, kafka_bootstrap, topic_suffix, tmp_path, emulator)
    async with running(settings) as (_parts, client):
        queue = _Queue(settings, client, "stripe")
        t0 = datetime.now(UTC)
        payout, key = await _paid_at_stripe(settings, admin, db)
        await _move(emulator, "fee", key, 30)
        t1 = await _closed()
        await queue.run(t0, t1)
        (fee,) = await queue.exceptions()
        assert _money([fee]) == [("unbooked_fee", payout, 30, "open")]
        await queue.resolve(fee["id"], "book_fee", "Stripe fee on the transfer")
        assert [a.amount.amount for a in await _adjustments(kafka_bootstrap, settings, 1)] == [30]

        await _move(emulator, "fee", key, 20)  # the same balance transaction now shows a fee of 50
        t2 = await _closed()
        again = await queue.run(t0, t2)  # an overlapping window: the transfer's own window, read again
        assert again["exceptions"] == 1
        found = await queue.exceptions()
        assert _money(found) == [("unbooked_fee", payout, 30, "resolved"), ("unbooked_fee", payout, 20, "open")]
        assert [e["absorbed"] for e in found] == [0, 30]
        await queue.resolve(found[1]["id"], "book_fee", "Stripe raised its fee on the transfer")
        booked = await _adjustments(kafka_bootstrap, settings, 2)
        assert sorted(a.amount.amount for a in booked) == [20, 30]
        assert {(a.kind.value, a.payout_id, a.amount.asset) for a in booked} == {("fee", payout, "USD")}


async def test_a_payment_after_a_duplicate_was_written_off_is_a_new_exception_for_itself(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    """Paid twice, the second written off by two people; then paid a third time: a new duplicate of 100 USD (not
    200: the written-off payment is not added in again)."""
    settings = _stripe(db, kafka_bootstrap, topic_suffix, tmp_path, emulator)
    async with running(settings) as (_parts, client):
        queue = _Queue(settings, client, "stripe")
        t0 = datetime.now(UTC)
        payout, key = await _paid_at_stripe(settings, admin, db)
        await _move(emulator, "duplicate", key)
        t1 = await _closed()
        await queue.run(t0, t1)
        (duplicate,) = await queue.exceptions()
        assert _money([duplicate]) == [("duplicate", payout, USD_100, "open")]
        await queue.resolve(duplicate["id"], "write_off", "paid twice by Stripe; not recoverable")

        await _move(emulator, "duplicate", key)
        t2 = await _closed()
        await queue.run(t1, t2)
        found = await queue.exceptions()
        assert _money(found) == [
            ("duplicate", payout, USD_100, "resolved"),
            ("duplicate", payout, USD_100, "open"),
        ]
        assert ([e["absorbed"] for e in found], found[1]["severity"]) == ([0, USD_100], "critical")
        await queue.resolve(found[1]["id"], "write_off", "paid a third time by Stripe")
        written_off = await _adjustments(kafka_bootstrap, settings, 2)
        assert [a.amount.amount for a in written_off] == [USD_100, USD_100]  # the two extra payments, once each


async def test_a_payment_listed_late_is_the_payout_s_payment_not_a_second_one(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """The sandbox rail paid a payout and lists the transfer late, far from the window it was paid in: the window it
    was paid in finds it missing; the late window's run finds its only payment (no critical `duplicate`: a write-off
    would book a loss that never happened) and closes the `missing`. A payment after that is a duplicate."""
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    async with running(settings) as (_parts, client):
        queue = _Queue(settings, client, "sandbox")
        t0 = datetime.now(UTC)
        key = unique("recon43-late")
        payout = await request_payout(settings, key, amount=10**7)
        assert await wait_state(db, key, "paid") == "paid"
        t1 = datetime.now(UTC) + timedelta(seconds=0.5)
        t2 = t1 + timedelta(seconds=4)  # the late window [t2, t3): more than a window's length past the payout's
        t3 = t2 + timedelta(seconds=1)
        await fetch(
            db, "UPDATE sandbox.transfers SET executed_at = $2 WHERE idempotency_key = $1", key, t2 + (t3 - t2) / 2
        )
        await eventually(_now, lambda now: now > t3 + timedelta(seconds=RECON_SLACK_S + 0.2), timeout=20)
        await queue.run(t0, t1)
        (missing,) = await queue.exceptions()
        assert _money([missing]) == [("missing", payout, 10**7, "open")]

        late = await queue.run(t2, t3)
        assert late["exceptions"] == 0
        (closed,) = await queue.exceptions()
        assert (closed["id"], closed["state"]) == (missing["id"], "resolved")
        assert (closed["resolution"]["action"], closed["resolution"]["resolved_by"]) == (
            "acknowledge",
            ["reconciliation"],
        )
        shown = (await client.get(f"/reconciliation/exceptions/{missing['id']}", headers=queue.ops)).json()
        assert [h["actor"] for h in shown["history"]] == ["reconciliation", "reconciliation"]

        # A second payment, across the payout's whole remembered history, is a duplicate.
        t4 = datetime.now(UTC)
        await fetch(
            db,
            "INSERT INTO sandbox.transfers (idempotency_key, asset, amount) VALUES ($1, 'USDC', $2)",
            key,
            10**7,
        )
        t5 = await _closed()
        await queue.run(t4, t5)
        found = await queue.exceptions()
        assert _money(found) == [("missing", payout, 10**7, "resolved"), ("duplicate", payout, 10**7, "open")]


async def _now() -> datetime:
    return datetime.now(UTC)


async def test_money_that_leaves_or_enters_the_stripe_balance_outside_a_payout_is_found_with_its_sign(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    """Beside an ordinary payout, a bank payout of the platform's balance (to an account an attacker set, or the
    treasury's own sweep) and a float top-up move the Stripe balance: the run raises the payout of the balance as a
    critical `unexplained_debit` (it pages) and the top-up as `unmatched_credit`, and its totals take each by its
    sign. Before issue 56 both were `other` lines: nothing was raised, and the top-up counted as money out."""
    settings = _stripe(db, kafka_bootstrap, topic_suffix, tmp_path, emulator)
    async with running(settings) as (_parts, client):
        queue = _Queue(settings, client, "stripe")
        # Stripe dates a line in whole seconds (floored): a window starting on the next whole second holds all that
        # happens after it, and nothing from before (the emulator's seed funding at its reset, dated this second).
        t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        await asyncio.sleep((t0 - datetime.now(UTC)).total_seconds())
        await _paid_at_stripe(settings, admin, db)
        bank = emulator.client().v1.payouts.create({"amount": 2_500_00, "currency": "usd"})  # no Stripe-Account
        await admin.fund("usd", 7_000_00)
        t1 = await _closed()
        run = await queue.run(t0, t1)
        found = {e["kind"]: e for e in await queue.exceptions()}
        assert sorted(found) == ["unexplained_debit", "unmatched_credit"], found
        debit, credit = found["unexplained_debit"], found["unmatched_credit"]
        assert (debit["amount"], debit["asset"], debit["severity"], debit["payout_id"]) == (
            2_500_00, "USD", "critical", None
        )  # fmt: skip
        assert [line["provider_ref"] for line in debit["theirs"]] == [bank.id]
        assert (credit["amount"], credit["asset"], credit["severity"]) == (7_000_00, "USD", "medium")
        (usd,) = [t for t in run["totals"] if t["asset"] == "USD"]
        # out: the transfer and the bank payout; in: the top-up
        assert (usd["debits"], usd["credits"]) == (2_500_00, 7_000_00)
        assert usd["provider_movement"] == usd["theirs_paid"] + usd["fees"] + 2_500_00 - 7_000_00 - usd["reversals"]
        open_critical = await fetch(
            db, "SELECT count(*) AS n FROM recon_exceptions WHERE severity = 'critical' AND state <> 'resolved'"
        )
        assert open_critical[0]["n"] == 1
