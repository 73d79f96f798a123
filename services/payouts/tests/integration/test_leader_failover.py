"""Leader-only work moves to a surviving replica within a stated time after its leader dies (SIGKILL).

Two payouts worker processes run on one database, as two replicas do. The first, alone at first, takes every
kind of leader-only work: the relay's and the Stellar engine's locks, and the leases of payouts whose provider
calls are in flight. Once the second runs too, the first is SIGKILLed, and the module measures, from the kill,
how long until the survivor does each kind of work (one scenario, one test per kind):

- the outbox relay (the PostgreSQL advisory lock `RELAY_LOCK_KEY`): a follower asks for the lock every
  4 x OUTBOX_POLL_INTERVAL_MS, and at once on the outbox's NOTIFY;
- the Stellar submission engine (the two-key advisory lock of its provider): a follower asks every `STANDBY_S`;
- payout worker leases (`payouts.lease_until`): a crashed worker's rows are claimed again once their lease has
  expired, at the survivor's next poll: an idle worker polls at least every PAYOUTS_WORKER_IDLE_MAX_MS.

A killed process's PostgreSQL sessions end when the kernel closes its sockets, and its advisory locks with them.
The bounds below add `SCHEDULING_SLACK_S` to those figures: process scheduling and a few round trips on a busy
2-core machine. docs/architecture.md ("Leader-only work under replicas") states them for operators.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from prizeflow_contracts.topics import PAYOUT_EVENTS
from prizeflow_devstack.infra import Infra, drop_database
from prizeflow_devstack.topics import delete_suffixed
from prizeflow_payouts.adapters.stellar.engine import STANDBY_S
from prizeflow_payouts.adapters.stellar.leader import ENGINE_LOCK_SPACE
from prizeflow_payouts.application.payout_requests import CreatePayoutCommand
from prizeflow_payouts.bootstrap import compose
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.outbox import RELAY_LOCK_KEY
from prizeflow_testkit import Process, eventually, provision_test_topics, python_module, read_topic
from prizeflow_testkit.payouts import ALEMBIC_INI, WEBHOOK_SECRET_ENV, fetch, providers_file, request, settings_for
from prizeflow_testkit.processes import local_tcp_ports
from prizeflow_testkit.stellar import Keys, stellar_env, stellar_providers_file

pytestmark = pytest.mark.integration

SCHEDULING_SLACK_S = 2.0
READY_LINE = "payout worker started"  # logged once the relay, the providers' engines and the worker run


def _spawn(settings: PayoutsSettings, worker_id: str, **env: str) -> Process:
    """A payouts worker process (worker + outbox relay + the providers' engines), ready once its loop runs."""
    full = {
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_SUFFIX": settings.kafka_topic_suffix,
        "PAYOUTS_PROVIDERS_FILE": str(settings.payouts_providers_file),
        "LOG_JSON": "false",
        "LOG_LEVEL": "INFO",
        **env,
    }
    log = settings.payouts_providers_file.parent / f"worker-{worker_id}.log"  # a pipe nobody reads would block it
    proc = python_module("prizeflow_payouts", "worker", worker_id, env=full, log=log)
    proc.ready_line = READY_LINE
    return proc.spawn()


async def _holder(db: str, procs: list[Process], lock: tuple[int, int, int]) -> Process | None:
    """Which of `procs` holds the advisory lock (classid, objid, objsubid), by its sessions' client ports."""
    rows = await fetch(
        db,
        "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid AND l.objid = $2::oid "
        "AND l.objsubid = $3 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        *lock,
    )
    ports = {int(r["client_port"]) for r in rows if r["client_port"] is not None}
    for proc in procs:
        if proc.running and proc.proc is not None and ports & local_tcp_ports(proc.proc.pid):
            return proc
    return None


def _bigint_lock(key: int) -> tuple[int, int, int]:
    """pg_locks' view of `pg_advisory_lock(bigint)`: high half, low half, objsubid 1."""
    return key >> 32, key & 0xFFFF_FFFF, 1


async def _scalar(db: str, sql: str) -> float:
    return float((await fetch(db, sql))[0][0])


async def _create(settings: PayoutsSettings, addresses: list[str]) -> None:
    parts = compose(settings)
    try:
        commands = []
        for address in addresses:
            d = request(address=address).data
            commands.append(
                CreatePayoutCommand(
                    payout_request_id=d.payout_request_id,
                    claim_id=d.claim_id,
                    player_id=d.player_id,
                    amount=d.amount,
                    destination=d.destination,
                    idempotency_key=d.idempotency_key,
                    requested_by=d.requested_by,
                    provider=None,
                    correlation_id=f"corr-{d.idempotency_key}",
                )
            )
        async with parts.uow() as books:
            await parts.create.execute(books, commands)
    finally:
        await parts.runtime.engine.dispose()


POLL_MS = 250  # OUTBOX_POLL_INTERVAL_MS
WORKER_INTERVAL_MS = 50  # PAYOUTS_WORKER_INTERVAL_MS
WORKER_IDLE_MAX_MS = 1000  # PAYOUTS_WORKER_IDLE_MAX_MS, its default: the longest pause of an idle worker
LEASE_S = 600.0  # PAYOUTS_LEASE_SECONDS: never ends while the second process starts, however busy the machine
# What the test leaves of the dead leader's leases once it is killed: the leader died this long before they end.
LEASE_LEFT_S = 8.0
PAYOUTS = 10


@dataclass(frozen=True)
class Failover:
    """Seconds from the leader's SIGKILL until the survivor did each kind of work; what was left of the dead
    worker's leases at the kill; the relayed event's key and the records of its topic."""

    relay_s: float
    engine_s: float
    leases_s: float
    lease_left_s: float
    key: bytes
    keys_published: list[bytes]


def _providers(tmp_path: Path) -> Path:
    """Sandbox (whose `crawl` destinations keep a call in flight for a minute) and a Stellar provider."""
    sandbox = yaml.safe_load(
        providers_file(tmp_path, scenarios={"crawl": {"outcome": "slow", "latency_ms": 60_000}}).read_text()
    )
    stellar = yaml.safe_load(stellar_providers_file(tmp_path).read_text())
    path = tmp_path / "providers-failover.yaml"
    path.write_text(yaml.safe_dump({**sandbox, "providers": sandbox["providers"] + stellar["providers"]}))
    return path


async def _seconds_until(probe: Callable[[], Awaitable[bool]], since: float, timeout: float) -> float:
    await eventually(probe, bool, timeout=timeout, interval=0.02)
    return time.monotonic() - since


@pytest.fixture(scope="module")
async def failover(
    infra: Infra, migration_templates: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Failover]:
    tmp_path = tmp_path_factory.mktemp("failover")
    name = f"test_{uuid.uuid4().hex[:16]}"
    db = await migration_templates.copy(str(Path(ALEMBIC_INI).resolve()), name)  # tests/conftest.py
    suffix = f".t{uuid.uuid4().hex[:12]}"
    settings = settings_for(db, infra.kafka_bootstrap, _providers(tmp_path), topic_suffix=suffix)
    env = {
        **stellar_env(Keys.make(2), "http://127.0.0.1:1/"),  # no RPC answers: the engine leads and builds nothing
        WEBHOOK_SECRET_ENV: "test-webhook-secret",
        "OUTBOX_POLL_INTERVAL_MS": str(POLL_MS),
        "PAYOUTS_WORKER_INTERVAL_MS": str(WORKER_INTERVAL_MS),
        "PAYOUTS_WORKER_IDLE_MAX_MS": str(WORKER_IDLE_MAX_MS),
        "PAYOUTS_LEASE_SECONDS": str(LEASE_S),
        "PAYOUTS_PROVIDER_TIMEOUT_MS": "90000",
    }
    procs: list[Process] = []
    try:
        await provision_test_topics(infra.kafka_bootstrap, suffix)
        leader = _spawn(settings, "leader", **env)
        procs.append(leader)
        leader.wait_ready(timeout=90)
        with pytest.MonkeyPatch.context() as mp:
            for variable, value in env.items():  # the providers this process composes read them too
                mp.setenv(variable, value)
            await _create(settings, [f"crawl:p{i}" for i in range(PAYOUTS)])
        lock_id = int((await fetch(db, "SELECT lock_id FROM stellar_engine_locks WHERE provider = 'stellar'"))[0][0])
        relay_lock, engine_lock = _bigint_lock(RELAY_LOCK_KEY), (ENGINE_LOCK_SPACE, lock_id, 2)

        async def leased_to(owner: str) -> bool:
            n = await _scalar(
                db, f"SELECT count(*) FROM payouts WHERE state = 'submitting' AND lease_owner = '{owner}'"
            )
            return n == PAYOUTS

        async def leads(proc: Process, lock: tuple[int, int, int]) -> bool:
            return await _holder(db, procs, lock) is proc

        async def outbox_empty() -> bool:
            return await _scalar(db, "SELECT count(*) FROM outbox") == 0

        for ready in (
            lambda: leased_to("leader"),
            lambda: leads(leader, relay_lock),
            lambda: leads(leader, engine_lock),
        ):
            await eventually(ready, bool, timeout=60, interval=0.05)
        await eventually(outbox_empty, bool, timeout=60, interval=0.05)
        survivor = _spawn(settings, "survivor", **env)
        procs.append(survivor)
        survivor.wait_ready(timeout=90)
        assert await _scalar(db, "SELECT min(lease_until) > now() FROM payouts"), "the leases expired before the kill"

        leader.kill()
        killed = time.monotonic()
        # The leader died LEASE_LEFT_S before its leases end (moved on the database's clock, which set them; nobody
        # renews them now): how long the survivor took to start does not decide how long the test waits.
        await fetch(
            db,
            "UPDATE payouts SET lease_until = now() + make_interval(secs => $1) WHERE lease_owner = 'leader'",
            LEASE_LEFT_S,
        )
        left = LEASE_LEFT_S + (time.monotonic() - killed)  # measured from the kill, as the takeover is
        key = f"failover-{uuid.uuid4().hex}".encode()
        await fetch(  # an event staged after the leader died: only a new relay leader can publish it
            db,
            "INSERT INTO outbox (event_id, topic, key, headers, payload, event_type) "
            "VALUES (gen_random_uuid(), $1, $2, '{}', '{}', 'test.failover')",
            PAYOUT_EVENTS.name,
            key,
        )
        relay_s, engine_s, leases_s = await asyncio.gather(
            _seconds_until(outbox_empty, killed, 60),
            _seconds_until(lambda: leads(survivor, engine_lock), killed, 60),
            _seconds_until(lambda: leased_to("survivor"), killed, LEASE_LEFT_S + 60),
        )
        assert await _holder(db, procs, relay_lock) is survivor
        records = await read_topic(infra.kafka_bootstrap, PAYOUT_EVENTS.name + suffix)
        yield Failover(relay_s, engine_s, leases_s, left, key, [r.key for r in records if r.key is not None])
    finally:
        for proc in procs:
            proc.kill()  # the survivor's provider calls crawl for a minute: nothing to wait for
        await drop_database(infra, name)
        delete_suffixed(infra.kafka_bootstrap, suffix)


def test_the_outbox_relay_moves_to_a_survivor_within_four_poll_intervals(failover: Failover) -> None:
    bound = 4 * POLL_MS / 1000 + SCHEDULING_SLACK_S
    print(f"\nfailover after SIGKILL: {failover}")
    assert failover.keys_published.count(failover.key) == 1
    assert failover.relay_s <= bound, f"the relay moved to the survivor in {failover.relay_s:.2f}s, bound {bound}s"


def test_the_stellar_engine_moves_to_a_survivor_within_its_standby_interval(failover: Failover) -> None:
    # The engine ticks on the session that took the lock, in the same pass: holding it is doing its work.
    bound = STANDBY_S + SCHEDULING_SLACK_S
    assert failover.engine_s <= bound, f"the engine moved to the survivor in {failover.engine_s:.2f}s, bound {bound}s"


def test_a_dead_workers_leases_move_to_a_survivor_one_poll_after_they_expire(failover: Failover) -> None:
    bound = failover.lease_left_s + WORKER_IDLE_MAX_MS / 1000 + SCHEDULING_SLACK_S
    assert failover.leases_s <= bound, f"the leases moved {failover.leases_s:.2f}s after the kill, bound {bound:.2f}s"
