"""Final states are final, on real Kafka + PostgreSQL: every (final state, late provider report) pair, delivered as
the webhook ingress publishes it (a verified ProviderEventReceived on the webhooks topic) to the running service.

A report never moves a payout out of a final state and publishes no payout event. A report that contradicts the
state is recorded and checked against the provider's current status (here the sandbox rail's own books, which the
test sets as a provider's would stand): stale when the provider agrees with us, a contradiction for a person when
it does not (gauge, audited acknowledgement). PostgreSQL itself refuses every move outside the transition table.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from prizeflow_contracts.envelope import Envelope, decode, new_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_payouts.domain.state import TRANSITIONS, PayoutState
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit import eventually, read_topic
from prizeflow_testkit.payouts import fetch, providers_file, publish, running, settings_for, token

pytestmark = pytest.mark.integration


def _reachable() -> Callable[[tuple[tuple[str, str], ...]], set[tuple[str, str]]]:
    path = Path(__file__).parents[2] / "migrations" / "versions" / "0015_final_states_final.py"
    spec = importlib.util.spec_from_file_location("migration_0015", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found: Callable[[tuple[tuple[str, str], ...]], set[tuple[str, str]]] = module.reachable
    return found


reachable = _reachable()

WEBHOOKS = "prizeflow.webhooks.provider-events.v1"
EVENTS = "prizeflow.payouts.events.v1"
P = ProviderPayoutStatus
S = PayoutState

_INSERT = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, provider_ref, last_error_code, paid_at, finished_at, created_at, "
    "updated_at) VALUES ($1, $1, $1, 'h', $1, 'p-1', 'p-1', 'USDC', 10000000, 'sandbox', 'success:p-1', 'sandbox', "
    "'sandbox', $2, 'auto', $1, $3, 3, $4, $5, $6, $7, now(), now())"
)
_SANDBOX = (
    "INSERT INTO sandbox.payouts (idempotency_key, payout_id, provider_ref, asset, amount, destination, scenario, "
    "status, error_code, polls_left) VALUES ($1, $1, $2, 'USDC', 10000000, 'success:p-1', 'success', $3, $4, 1000)"
)
_INSERT_ANY = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, last_error_code, paid_at, finished_at, next_attempt_at, lease_token, "
    "lease_until, created_at, updated_at) VALUES ($1, $1, $1, 'h', $1, 'p-1', 'p-1', 'USDC', 10000000, 'sandbox', "
    "'success:p-1', 'sandbox', 'sandbox', $2, 'auto', $1, 1, 3, $3, $4, $5, CASE WHEN $6 THEN now() END, "
    "CASE WHEN $2 = 'submitting' THEN gen_random_uuid() END, CASE WHEN $2 = 'submitting' THEN now() END, now(), now())"
)
# Each final state (`failed!`: a final failure), as the worker leaves it: whether it was sent (a provider object).
FINAL = ("paid", "returned", "failed!", "cancelled", "rejected")
REPORTED = (P.PENDING, P.PAID, P.FAILED, P.CANCELLED, P.RETURNED)


@dataclass(frozen=True)
class Case:
    final: str
    reported: ProviderPayoutStatus
    provider_now: str | None  # the provider's current status of it (None: it has no such payout)
    outcome: str  # the provider event's outcome
    concluded: str | None = None  # the disagreement's conclusion, if one was opened
    moves_to: str | None = None  # the one move out of a final state: a paid payout the provider returned

    @property
    def state(self) -> str:
        return self.final.rstrip("!")


def _provider_now(final: str) -> str | None:
    """Where a provider honestly stands for a payout in `final` (a paid payout is paid there, and so on)."""
    return {"paid": "paid", "returned": "returned", "failed!": "failed", "cancelled": "cancelled"}.get(final)


def _outcome(final: str, reported: ProviderPayoutStatus) -> str:
    """The README's table (services/payouts/README.md, "Provider reports after the end"), rail without returns."""
    checks = {
        "paid": {P.CANCELLED},  # a reversal after paid on a rail whose payouts do not come back
        "returned": {P.PAID},
        "failed!": {P.PENDING, P.PAID},
        "cancelled": {P.PENDING, P.PAID},
        "rejected": {P.PENDING, P.PAID, P.RETURNED},
    }
    if final == "paid" and reported is P.FAILED:
        return "checking"  # the sandbox has no returns: a failure after paid is a disagreement, not a return
    return "checking" if reported in checks[final] else "stale"


# Every pair, with the provider standing where it honestly would: each disagreement is a stale snapshot. A paid
# payout reported `returned` is the one that moves (the provider returned it: PayoutReturned gives the money back).
HONEST = [
    Case(f, r, _provider_now(f), _outcome(f, r), "stale" if _outcome(f, r) == "checking" else None)
    for f, r in itertools.product(FINAL, REPORTED)
    if (f, r) != ("paid", P.RETURNED)
] + [Case("paid", P.RETURNED, "returned", "applied", moves_to="returned")]
# The provider's books truly contradict ours: a person decides.
CONTRADICTED = [
    Case("failed!", P.PAID, "paid", "checking", "contradiction"),  # paid after the reservation went back
    Case("paid", P.CANCELLED, "returned", "checking", "contradiction"),  # the money came back after paid
    Case("rejected", P.PAID, "paid", "checking", "contradiction"),  # a payout we never sent, paid
    Case("returned", P.PAID, "paid", "checking", "contradiction"),  # paid after the return
    Case("cancelled", P.PENDING, "pending", "checking", "contradiction"),  # alive at the provider after a cancel
]


async def _seed(db: str, cases: list[Case]) -> dict[str, Case]:
    by_key: dict[str, Case] = {}
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        await conn.execute("CREATE SCHEMA IF NOT EXISTS sandbox")  # the rail creates its tables at start
        for case in cases:
            key = f"fs-{uuid.uuid4().hex[:12]}"
            now = datetime.now(UTC)
            sent = case.final != "rejected"
            paid_at = now if case.state in ("paid", "returned") else None
            finished = now if case.state in ("returned", "failed", "cancelled", "rejected") else None
            code = "invalid_destination" if case.state == "failed" else None
            await conn.execute(
                _INSERT, key, case.state, 1 if sent else 0, f"sbx-{key}" if sent else None, code, paid_at, finished
            )
            by_key[key] = case
    finally:
        await conn.close()
    return by_key


async def _provider_books(db: str, by_key: dict[str, Case]) -> None:
    """The sandbox rail's own books, as the provider would stand (after the service created its tables)."""
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        for key, case in by_key.items():
            if case.provider_now is not None:
                code = "tx_failed" if case.provider_now == "failed" else None
                await conn.execute(_SANDBOX, key, f"sbx-{key}", case.provider_now, code)
    finally:
        await conn.close()


def _report(key: str, status: ProviderPayoutStatus) -> Envelope[ProviderEventReceived]:
    event_id = f"evt-{key}-{status.value}"
    return new_event(
        ProviderEventReceived(
            provider=ProviderType.SANDBOX,
            provider_event_id=event_id,
            idempotency_key=key,
            kind=f"payout.{status.value}",
            received_at=datetime.now(UTC),
            verified=True,
            status=status,
            error_code="tx_failed" if status is P.FAILED else None,
            payload_digest=hashlib.sha256(event_id.encode()).hexdigest(),
        ),
        source="/prizeflow/webhooks",
        correlation_id=key,
    )


async def test_no_late_provider_report_moves_a_final_payout_and_a_true_contradiction_waits_for_a_person(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    by_key = await _seed(db, HONEST + CONTRADICTED)
    keys = list(by_key)
    async with running(settings) as (_, client):
        await _provider_books(db, by_key)
        reports = [_report(k, c.reported) for k, c in by_key.items()]
        # Each report twice (a redelivery, and a replay of the same provider event in a new envelope).
        await publish(
            kafka_bootstrap,
            WEBHOOKS + topic_suffix,
            [*reports, *reports, *(_report(k, by_key[k].reported) for k in keys)],
        )
        seen = await eventually(
            lambda: fetch(
                db,
                "SELECT e.payout_id, e.outcome FROM provider_events e WHERE e.payout_id = ANY($1::text[])",
                keys,
            ),
            lambda rows: len(rows) == len(keys),
            timeout=60,
        )
        checks = await eventually(
            lambda: fetch(db, "SELECT payout_id, status, provider_status_now, checks FROM payout_disagreements"),
            lambda rows: (
                len(rows) == sum(c.concluded is not None for c in by_key.values())
                and all(r["status"] != "checking" for r in rows)
            ),
            timeout=60,
        )
        open_gauge = (
            f'prizeflow_payouts_final_state_contradictions_open{{provider="sandbox"}} {float(len(CONTRADICTED))}'
        )

        async def scrape() -> str:
            return str((await client.get("/metrics")).text)

        # The gauge is read from the database by the worker's periodic refresh (every replica says the same).
        metrics = await eventually(scrape, lambda text: open_gauge in text, timeout=30)

        # A person acknowledges one contradiction (audited); it cannot be acknowledged twice, nor a stale one.
        contradiction = next(r for r in checks if r["status"] == "contradiction")
        (row,) = await fetch(db, "SELECT id FROM payout_disagreements WHERE payout_id = $1", contradiction["payout_id"])
        admin = token(settings, "ada", "admin")
        ack = await client.post(
            f"/disagreements/{row['id']}/acknowledge", json={"reason": "refunded by hand, ticket 42"}, headers=admin
        )
        again = await client.post(f"/disagreements/{row['id']}/acknowledge", json={"reason": "x"}, headers=admin)
        stale = next(r for r in checks if r["status"] == "stale")
        (stale_row,) = await fetch(db, "SELECT id FROM payout_disagreements WHERE payout_id = $1", stale["payout_id"])
        not_open = await client.post(
            f"/disagreements/{stale_row['id']}/acknowledge", json={"reason": "x"}, headers=admin
        )
        by_ops = await client.post(
            f"/disagreements/{row['id']}/acknowledge", json={"reason": "x"}, headers=token(settings, "olga", "ops")
        )
        listed = await client.get("/disagreements?status=contradiction", headers=token(settings, "olga", "ops"))
        audit = await eventually(
            lambda: read_topic(kafka_bootstrap, "prizeflow.audit.v1" + topic_suffix),
            lambda records: any(isinstance(decode(r.value).data, AdminActionRecorded) for r in records),
            timeout=30,
        )

    # Every report was handled once, with the outcome of the table; a redelivery or replay changed nothing more.
    assert {r["payout_id"]: r["outcome"] for r in seen} == {k: c.outcome for k, c in by_key.items()}
    # No final payout moved, and none published an outcome.
    states = {r["id"]: r["state"] for r in await fetch(db, "SELECT id, state FROM payouts WHERE id = ANY($1)", keys)}
    assert states == {k: c.moves_to or c.state for k, c in by_key.items()}
    moves = await fetch(
        db,
        "SELECT payout_id, from_state, to_state FROM payout_history "
        "WHERE from_state IS DISTINCT FROM to_state AND payout_id = ANY($1)",
        keys,
    )
    returned = [k for k, c in by_key.items() if c.moves_to]
    assert [(r["payout_id"], r["from_state"], r["to_state"]) for r in moves] == [(returned[0], "paid", "returned")]
    published = [decode(r.value) for r in await read_topic(kafka_bootstrap, EVENTS + topic_suffix)]
    outcomes = [
        (getattr(e.data, "idempotency_key", None), type(e.data).__name__)
        for e in published
        if getattr(e.data, "idempotency_key", None) in by_key
    ]
    assert outcomes == [(returned[0], "PayoutReturned")]
    # Each disagreement concluded as the provider's current status says.
    assert {r["payout_id"]: r["status"] for r in checks} == {
        k: c.concluded for k, c in by_key.items() if c.concluded is not None
    }
    assert {r["payout_id"]: r["provider_status_now"] for r in checks} == {
        k: c.provider_now or "not_found" for k, c in by_key.items() if c.concluded is not None
    }
    assert (
        'prizeflow_payouts_final_state_contradictions_total{reported="paid",state="failed",subject="payout"} 1.0'
        in metrics
    )
    # The person's decision: on record once, by an admin only; nothing else moved.
    assert (ack.status_code, ack.json()["status"]) == (200, "acknowledged")
    assert (again.status_code, again.json()["code"]) == (409, "not_a_contradiction")
    assert (not_open.status_code, not_open.json()["code"]) == (409, "not_a_contradiction")
    assert by_ops.status_code == 403
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == len(CONTRADICTED) - 1
    (acked,) = [
        decode(r.value).data
        for r in audit
        if getattr(decode(r.value).data, "action", None) == "payout.contradiction_acknowledged"
    ]
    assert isinstance(acked, AdminActionRecorded)
    assert (acked.actor_user_id, acked.target_id, acked.reason) == (
        "ada",
        contradiction["payout_id"],
        "refunded by hand, ticket 42",
    )
    assert (await fetch(db, "SELECT state FROM payouts WHERE id = $1", contradiction["payout_id"]))[0][
        "state"
    ] == by_key[contradiction["payout_id"]].state


async def test_postgresql_refuses_every_move_outside_the_transition_table(db: str, tmp_path: Path) -> None:
    """Migration 0015: whatever SQL asks, a payout moves only along TRANSITIONS; a final failure stays one and a
    concluded disagreement is evidence (never rewritten, never deleted)."""
    conn = await asyncpg.connect(asyncpg_dsn(db))
    refused: list[tuple[str, str]] = []
    allowed: list[tuple[str, str]] = []
    try:
        for src, dst in itertools.product(PayoutState, PayoutState):
            if src is dst:
                continue
            key = f"tt-{uuid.uuid4().hex[:12]}"
            paid_at = datetime.now(UTC) if src in (S.PAID, S.RETURNED) else None
            finished = datetime.now(UTC) if src in (S.RETURNED, S.CANCELLED, S.REJECTED) else None
            failed = src is S.FAILED
            await conn.execute(  # a retryable failure, or a leased submission, as the row checks want
                _INSERT_ANY, key, src.value, "provider_unavailable" if failed else None, paid_at, finished, failed
            )
            try:
                async with conn.transaction():
                    # Columns every target state's row checks want; only the state pair is in question.
                    await conn.execute(
                        "UPDATE payouts SET state = $2, paid_at = now(), lease_token = gen_random_uuid(), "
                        "lease_until = now(), next_attempt_at = CASE WHEN $2 = 'failed' THEN now() END, "
                        "finished_at = NULL WHERE id = $1",
                        key,
                        dst.value,
                    )
            except asyncpg.CheckViolationError as err:
                if "not a transition" in str(err):
                    refused.append((src.value, dst.value))
                    continue
                raise
            allowed.append((src.value, dst.value))
        # Every path of the table's moves (one statement may write several steps), none out of a final state.
        pairs = tuple((a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets)
        legal = {(a, b) for a, b in reachable(pairs) if a != b}  # staying put is no change of state
        assert set(allowed) == legal
        assert len(refused) == 90 - len(legal)
        assert not {src for src, _ in legal} & {"cancelled", "rejected", "returned"}

        final = f"ff-{uuid.uuid4().hex[:12]}"
        await conn.execute(_INSERT, final, "failed", 1, None, "invalid_destination", None, datetime.now(UTC))
        with pytest.raises(asyncpg.CheckViolationError, match="failed for good"):
            await conn.execute(
                "UPDATE payouts SET state = 'paid', paid_at = now(), finished_at = NULL WHERE id = $1", final
            )
        did = await conn.fetchval(
            "INSERT INTO payout_disagreements (payout_id, provider, payout_state, reported, next_check_at) "
            "VALUES ($1, 'sandbox', 'failed', 'paid', now()) RETURNING id",
            final,
        )
        await conn.execute(
            "UPDATE payout_disagreements SET status = 'stale', provider_status_now = 'failed', checked_at = now(), "
            "next_check_at = NULL WHERE id = $1",
            did,
        )
        for sql in (
            "UPDATE payout_disagreements SET status = 'contradiction' WHERE id = $1",
            "UPDATE payout_disagreements SET detail = 'rewritten', reported = 'failed' WHERE id = $1",
            "DELETE FROM payout_disagreements WHERE id = $1",
        ):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(sql, did)
        with pytest.raises(asyncpg.UniqueViolationError):  # one open disagreement per payout
            for _ in range(2):
                await conn.execute(
                    "INSERT INTO payout_disagreements (payout_id, provider, payout_state, reported, next_check_at) "
                    "VALUES ($1, 'sandbox', 'failed', 'paid', now())",
                    final,
                )
    finally:
        await conn.close()


async def test_a_paid_report_for_a_retryable_failure_makes_the_worker_ask_the_provider_before_anything_else(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """A retryable failure waiting an hour for its retry: the provider's `paid` does not move it (a snapshot), it
    makes the retry due now, and the retry asks the provider first: paid there, so paid here, created nowhere."""
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    key = f"fr-{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        retryable = True  # a next attempt (moved an hour on below)
        await conn.execute(_INSERT_ANY, key, "failed", "provider_unavailable", None, None, retryable)
        await conn.execute(
            "UPDATE payouts SET next_attempt_at = now() + interval '1 hour', provider_ref = $2 WHERE id = $1",
            key,
            f"sbx-{key}",
        )
    finally:
        await conn.close()
    async with running(settings):
        await _provider_books(db, {key: Case("failed", P.PAID, "paid", "sync_requested")})
        await publish(kafka_bootstrap, WEBHOOKS + topic_suffix, [_report(key, P.PAID)])
        state = await eventually(
            lambda: fetch(db, "SELECT state FROM payouts WHERE id = $1", key),
            lambda rows: rows[0]["state"] == "paid",
            timeout=30,
        )
        published = await eventually(
            lambda: read_topic(kafka_bootstrap, EVENTS + topic_suffix),
            lambda records: any(getattr(decode(r.value).data, "idempotency_key", None) == key for r in records),
            timeout=30,
        )
    (outcome,) = await fetch(db, "SELECT outcome FROM provider_events WHERE payout_id = $1", key)
    assert outcome["outcome"] == "sync_requested"
    assert state[0]["state"] == "paid"
    path = await fetch(db, "SELECT from_state, to_state FROM payout_history WHERE payout_id = $1 ORDER BY id", key)
    assert [(r["from_state"], r["to_state"]) for r in path] == [
        ("failed", "failed"),  # the report: retried now, asking first
        ("failed", "approved"),
        ("approved", "submitting"),
        ("submitting", "paid"),
    ]
    calls = await fetch(db, "SELECT create_calls, sync_calls FROM sandbox.calls WHERE idempotency_key = $1", key)
    assert [(r["create_calls"], r["sync_calls"]) for r in calls] == [(0, 1)]
    names = [
        type(decode(r.value).data).__name__
        for r in published
        if getattr(decode(r.value).data, "idempotency_key", None) == key
    ]
    assert names == ["PayoutPaid"]
