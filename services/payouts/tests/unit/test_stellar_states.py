"""The Stellar books' state machines, transition by transition, and the engine's election rules, without I/O."""

from __future__ import annotations

import asyncio
import itertools
import re
import zlib
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import prizeflow_stellar as ps
from prizeflow_contracts.transitions import IllegalTransition
from prizeflow_payouts.adapters.stellar import store as q
from prizeflow_payouts.adapters.stellar.engine import STAND_DOWN_S, STANDBY_S, StellarEngine
from prizeflow_payouts.adapters.stellar.leader import ENGINE_LOCK_SPACE, INT4_MAX, lock_key
from prizeflow_payouts.adapters.stellar.options import StellarOptions
from prizeflow_payouts.adapters.stellar.settings import StellarMode
from prizeflow_payouts.adapters.stellar.states import (
    FINAL_TX_STATES,
    OPEN_TX_STATES,
    PAYOUT_TRANSITIONS,
    TX_TRANSITIONS,
    PayoutState,
    TxRow,
    TxState,
    live_until,
    require_payout_transition,
    require_transition,
    sources_of,
)
from prizeflow_runtime.jobs import Scheduled, Scheduler

T = TxState
P = PayoutState

# The rules, written out independently of the table: what the engine, the signer's answers and the admin API
# may do to an envelope. Anything else must be refused.
LEGAL_TX = {
    (T.SIGNING, T.SIGNING),  # signature asked again, or checked later
    (T.SIGNING, T.EXTERNAL),  # the signer wants an operator
    (T.SIGNING, T.SIGNED),
    (T.SIGNING, T.REFUSED),
    (T.SIGNING, T.SUCCESS),  # an answer lost, yet it landed (signed by an earlier request)
    (T.SIGNING, T.FAILED),
    (T.SIGNING, T.DEAD),  # its time bound passed unsigned
    (T.EXTERNAL, T.EXTERNAL),
    (T.EXTERNAL, T.SIGNED),
    (T.EXTERNAL, T.REFUSED),
    (T.EXTERNAL, T.SUCCESS),
    (T.EXTERNAL, T.FAILED),
    (T.EXTERNAL, T.DEAD),
    (T.SIGNED, T.SIGNED),  # RPC unavailable: try again later
    (T.SIGNED, T.SUBMITTED),
    (T.SIGNED, T.SUCCESS),
    (T.SIGNED, T.FAILED),
    (T.SIGNED, T.DEAD),  # tx_bad_seq with its sequence consumed, or tx_too_late
    (T.SUBMITTED, T.SUBMITTED),
    (T.SUBMITTED, T.SUCCESS),
    (T.SUBMITTED, T.FAILED),
    (T.SUBMITTED, T.DEAD),
}
LEGAL_PAYOUT = {(P.QUEUED, P.IN_TX), (P.QUEUED, P.FAILED), (P.IN_TX, P.QUEUED), (P.IN_TX, P.PAID), (P.IN_TX, P.FAILED)}


def test_the_table_lists_every_state() -> None:
    assert set(TX_TRANSITIONS) == set(TxState)
    assert set(PAYOUT_TRANSITIONS) == set(PayoutState)


def test_the_table_is_exactly_the_rules() -> None:
    table = {(src, dst) for src, targets in TX_TRANSITIONS.items() for dst in targets}
    assert table == LEGAL_TX


@pytest.mark.parametrize(("src", "dst"), sorted(itertools.product(TxState, TxState)))
def test_every_envelope_transition_is_allowed_or_refused(src: TxState, dst: TxState) -> None:
    if (src, dst) in LEGAL_TX:
        assert require_transition(src, dst) is dst
    else:
        with pytest.raises(IllegalTransition, match=f"stellar_txs: {src.value} → {dst.value} is not allowed"):
            require_transition(src, dst)


@pytest.mark.parametrize(("src", "dst"), sorted(itertools.product(PayoutState, PayoutState)))
def test_every_payout_transition_is_allowed_or_refused(src: PayoutState, dst: PayoutState) -> None:
    if (src, dst) in LEGAL_PAYOUT:
        assert require_payout_transition(src, dst) is dst
    else:
        with pytest.raises(IllegalTransition):
            require_payout_transition(src, dst)


def test_final_states_go_nowhere_and_built_is_never_driven() -> None:
    assert {T.BUILT, T.SUCCESS, T.FAILED, T.DEAD, T.REFUSED} == FINAL_TX_STATES
    assert set(OPEN_TX_STATES) == set(TxState) - FINAL_TX_STATES
    assert set(OPEN_TX_STATES) == set(sources_of(T.SUCCESS)) == set(sources_of(T.FAILED)) == set(sources_of(T.DEAD))


def _guard(statement: Any) -> set[str]:
    """The states an SQL statement's `state IN (...)` guard accepts."""
    found = re.search(r"state IN \(([^)]*)\)", str(statement))
    assert found is not None, statement
    return {s.strip().strip("'") for s in found.group(1).split(",")}


@pytest.mark.parametrize(
    ("statement", "target"),
    [(q.SIGNED, T.SIGNED), (q.EXTERNAL, T.EXTERNAL), (q.REFUSED, T.REFUSED)],
)
def test_the_sql_guards_are_the_tables_sources(statement: Any, target: TxState) -> None:
    assert _guard(statement) == {s.value for s in sources_of(target, moves_only=True)}


def test_the_open_states_of_the_sql_are_the_tables() -> None:
    assert _guard(q.DUE_TXS) == {s.value for s in OPEN_TX_STATES}
    assert set(q.OPEN_TX_STATES) == {s.value for s in OPEN_TX_STATES}
    assert _guard(q.SIGNED_REFUSED) == {T.SIGNING.value, T.EXTERNAL.value}


def test_a_typed_row_refuses_a_state_it_does_not_know() -> None:
    row = {
        "id": "stx-1",
        "lane": "G",
        "sequence": 7,
        "kind": "payments",
        "payout_ids": ["po-1"],
        "state": "signing",
        "tx_hash": "ab",
        "signed_xdr": None,
        "max_time": 100,
        "submits": 0,
        "polls": 0,
        "sign_requests": 1,
        "sign_request": "{}",
        "last_status": None,
        "error_code": None,
        "fee": 100,
    }
    tx = TxRow.from_row(row)
    assert tx.state is T.SIGNING
    assert tx.payout_ids == ("po-1",)
    assert tx.live_until == live_until(100) == 100 + ps.TIME_BOUND_MARGIN_S + 1
    with pytest.raises(ValueError, match="landed"):
        TxRow.from_row({**row, "state": "landed"})


# -- the engine lock key -------------------------------------------------------------------------------------


def test_the_lock_key_is_injective_in_the_providers_identity() -> None:
    """Distinct rows of stellar_engine_locks have distinct lock ids (a unique identity), so distinct keys."""
    ids = [1, 2, 3, 0xFFFF, 0x10000, 0x10001, INT4_MAX]
    keys = [lock_key(i) for i in ids]
    assert len(set(keys)) == len(ids)
    assert all(space == ENGINE_LOCK_SPACE for space, _ in keys)
    assert [lock_id for _, lock_id in keys] == ids
    assert 0 < ENGINE_LOCK_SPACE <= INT4_MAX  # both halves are int4: the two-key advisory lock space


@pytest.mark.parametrize("lock_id", [0, -1, INT4_MAX + 1])
def test_a_lock_id_outside_int4_is_refused(lock_id: int) -> None:
    with pytest.raises(ValueError, match="int4"):
        lock_key(lock_id)


def test_the_old_hash_key_collided_between_provider_names() -> None:
    """Why the key is no longer a hash of the name: two names found in a few hundred tries shared a leader."""
    seen: dict[int, str] = {}
    for n in itertools.count():
        name = f"stellar-{n}"
        key = zlib.crc32(name.encode()) & 0xFFFF
        if key in seen:
            break
        seen[key] = name
    assert seen[key] != name  # two providers, one lock under the old scheme


# -- the engine loop -----------------------------------------------------------------------------------------


class FakeLeadership:
    def __init__(self, *, grant: bool = True) -> None:
        self.grant = grant
        self.held = False
        self.lose_at_check: int | None = None
        self.checks = 0
        self.attempts = 0
        self.drops = 0

    @property
    def leads(self) -> bool:
        return self.held

    async def try_lead(self, db: AsyncEngine) -> bool:
        self.attempts += 1
        self.held = self.grant
        return self.held

    async def still_leads(self) -> bool:
        self.checks += 1
        if self.lose_at_check is not None and self.checks >= self.lose_at_check:
            self.held = False
        return self.held

    async def drop(self) -> None:
        self.drops += 1
        self.held = False


class Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.due_in: float | None = None  # the books' next timed work (None: none)

    async def drive_open(self) -> bool:
        self.calls += 1
        return False

    async def next_due_in(self) -> float | None:
        return self.due_in

    async def build(self) -> bool:
        return False


def _engine(leadership: FakeLeadership, work: Counting) -> StellarEngine:
    options = StellarOptions(
        name="stellar",
        mode=StellarMode.PAYMENTS,
        live_execution=True,
        network_passphrase="n",
        rpc_url="http://127.0.0.1:1/",
        funding_account="G",
        channel_accounts=(),
        contract_id=None,
        method_name="pay",
        contract_asset="XLM",
        assets=("XLM",),
        max_fee_stroops=1000,
    )

    async def no_db() -> AsyncEngine:
        return None  # type: ignore[return-value] # the fake leadership never uses it

    return StellarEngine(options, leadership=leadership, driver=work, builder=work, db=no_db)


async def test_a_leader_rechecks_its_lock_before_every_tick() -> None:
    leadership, work = FakeLeadership(), Counting()
    engine = _engine(leadership, work)
    for n in range(5):
        assert await engine.lead(float(n))
        await engine.tick()
    assert leadership.attempts == 1
    assert leadership.checks == 4  # every tick after the first asked the session again
    assert work.calls == 5


async def test_a_leader_that_lost_its_lock_stops_at_once_and_stands_down() -> None:
    leadership, work = FakeLeadership(), Counting()
    leadership.lose_at_check = 2
    engine = _engine(leadership, work)
    assert await engine.lead(0.0)  # elected
    assert await engine.lead(0.1)  # check 1: still ours
    assert not await engine.lead(0.2)  # check 2: lost -> no tick
    assert not await engine.lead(0.2 + STAND_DOWN_S - 0.01)  # leaves the others time to take over
    assert leadership.attempts == 1
    assert await engine.lead(0.2 + STAND_DOWN_S)  # then stands again
    assert leadership.attempts == 2


async def test_a_follower_never_ticks() -> None:
    leadership, work = FakeLeadership(grant=False), Counting()
    engine = _engine(leadership, work)
    jobs = Scheduler()
    engine.schedule(jobs)
    engine.start()
    await jobs.start()
    try:
        await asyncio.sleep(0.05)
    finally:
        await jobs.stop()
        await engine.stop()
    assert leadership.attempts >= 1
    assert work.calls == 0


class Scripted(Counting):
    """Work found by the leader's ticks, in order: True = a tick with work."""

    def __init__(self, ticks: list[bool]) -> None:
        super().__init__()
        self.ticks = ticks

    async def drive_open(self) -> bool:
        self.calls += 1
        return self.ticks.pop(0) if self.ticks else False


async def test_an_idle_leader_backs_off_to_its_maximum_and_a_wake_or_work_restarts_the_interval() -> None:
    leadership = FakeLeadership()
    work = Scripted([False] * 8 + [True] + [False] * 4)
    engine = _engine(leadership, work)
    pauses: list[float] = []
    woken_at = {11}
    scheduled = Scheduled(engine.passes, "stellar-engine", engine.o.tick_s, engine.o.idle_max_s)

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) >= 15:
            scheduled._stopping = True  # the script is over: no pass after this wait
        if len(pauses) - 1 in woken_at:
            engine.wake()

    scheduled._sleep = sleep  # type: ignore[method-assign]
    engine._scheduled = scheduled  # the engine's job, run here by hand
    engine.running = True  # started (the provider's start), without scheduling the wake-up it asks for
    await scheduled._run()
    tick, top = engine.o.tick_s, engine.o.idle_max_s
    doubled = [tick * 2**n for n in range(7)]  # 0.05 .. 3.2, then the maximum (5 s)
    assert doubled[-1] < top < doubled[-1] * 2
    # eight idle ticks double to the maximum; a tick with work pauses not at all; idle again from tick_s; the
    # wake after the 12th pause (a payout created here) restarts the doubling (the tick with work waits 0: not a pause)
    assert pauses == [*doubled, top, 0, tick, 2 * tick, 4 * tick, tick, 2 * tick, 4 * tick]


async def test_an_idle_leader_never_pauses_past_its_next_timed_work() -> None:
    """An open envelope's check (or a queued payout's wait) due in 0.3 s bounds the pause, whatever the doubling
    reached; due already (work a busy lane holds back) leaves the doubling as it is; nothing timed: the doubling."""
    leadership, work = FakeLeadership(), Counting()
    engine = _engine(leadership, work)
    engine.start()
    tick = engine.o.tick_s
    assert await engine.passes.tick() == tick  # nothing timed: the doubling's first pause
    engine.passes.pause = engine.o.idle_max_s
    work.due_in = 0.3
    assert await engine.passes.tick() == 0.3
    work.due_in = -1.0
    assert await engine.passes.tick() == tick  # not a spin: at least tick_s
    work.due_in = 60.0
    assert await engine.passes.tick() == engine.o.idle_max_s


async def test_the_passes_stand_by_until_the_engine_starts_and_again_once_it_stopped() -> None:
    """On the process's scheduler the passes run from the process's start, before the rail's own start-up (a
    start-up hook) has made its books ready: until then, and after a stop, a pass neither leads nor works."""
    leadership, work = FakeLeadership(), Counting()
    engine = _engine(leadership, work)
    assert await engine.passes.tick() == STANDBY_S
    assert (leadership.attempts, work.calls) == (0, 0)
    engine.start()
    await engine.passes.tick()  # stood for election, won, and looked for work
    assert (leadership.attempts, work.calls) == (1, 1)
    await engine.stop()
    assert await engine.passes.tick() == STANDBY_S
    assert work.calls == 1
