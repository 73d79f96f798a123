"""Claims decided a batch at a time (group commit) on real PostgreSQL: each request keeps its own outcome.

A refused request in a batch of 500 changes nothing for the other 499; a batch that crosses the daily limit half
way approves up to it and refuses past it; two batches racing for one wallet never overdraw it; a repeated
Idempotency-Key in one batch gets the first claim back; concurrent requests share transactions.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry
from rewards_sql import bind, sql_uow
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_rewards.adapters.backend_pg import SqlLostCommits
from prizeflow_rewards.adapters.routes_pg import publish_routes
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.claims import ClaimIntake, SubmitClaim, claim_id_for
from prizeflow_rewards.application.claims.submit import ClaimOutcome, ClaimRequest, Deferred
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.claims import reservation
from prizeflow_rewards.domain.ledger import LedgerError, Transfer, TransferKind
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.errors import UseCaseError
from prizeflow_testkit.rewards import OPEN_CLAIM_POLICY, STELLAR_KEY, routes_event

pytestmark = pytest.mark.integration

DEST = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=STELLAR_KEY)


async def fund(engine: AsyncEngine, balances: dict[str, int]) -> None:
    async with engine.begin() as conn:
        await bind(conn, strict=True).ledger.apply(
            [
                Transfer.of(
                    accounts.external("stripe", "USDC"),
                    accounts.wallet(p, "USDC"),
                    amount,
                    TransferKind.TOP_UP,
                    f"fund-{p}",
                )
                for p, amount in balances.items()
            ],
        )
        await publish_routes(conn, routes_event().data)


def ask(player: str, amount: int, key: str, asset: str = "USDC") -> ClaimRequest:
    return ClaimRequest(Principal(player, frozenset({Role.PLAYER})), player, asset, amount, DEST, key)


async def decide(engine: AsyncEngine, submit: SubmitClaim, requests: Sequence[ClaimRequest]) -> list[ClaimOutcome]:
    async with sql_uow(engine)() as books:
        return await submit.decide(books, requests)


def code(outcome: ClaimOutcome) -> str:
    if isinstance(outcome, Deferred):
        return "deferred"
    return outcome.code if isinstance(outcome, UseCaseError) else outcome[0].status.value


async def scalar(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one() or 0)


async def test_one_refused_request_in_a_batch_of_500_leaves_the_other_499_decided(engine: AsyncEngine) -> None:
    await fund(engine, {f"p{i:03}": 1_000 for i in range(500)})
    submit = SubmitClaim(OPEN_CLAIM_POLICY, "/test")
    requests = [ask(f"p{i:03}", 1_000, f"k{i}") for i in range(500)]
    requests[250] = ask("p250", 1_001, "k250")  # one more than the wallet holds
    outcomes = await decide(engine, submit, requests)
    assert [code(o) for i, o in enumerate(outcomes) if i != 250] == ["approved"] * 499
    refused = outcomes[250]
    assert isinstance(refused, UseCaseError)
    assert refused.code == "insufficient_balance"
    assert "1001" in refused.detail
    # Exactly the 499: claims, reservations, ClaimApproved + PayoutRequested each, and p250's wallet untouched.
    assert await scalar(engine, "SELECT count(*) FROM claims") == 499
    assert await scalar(engine, "SELECT count(*) FROM ledger_transfers WHERE kind = 'claim_reserve'") == 499
    assert await scalar(engine, "SELECT count(*) FROM outbox") == 998
    assert await scalar(engine, "SELECT count(*) FROM claims WHERE player_id = 'p250'") == 0
    # The same batch again: every claim comes back as it was (created: False), p250 is refused again.
    again = await decide(engine, submit, requests)
    assert all(not o[1] for i, o in enumerate(again) if i != 250 and isinstance(o, tuple))
    assert code(again[250]) == "insufficient_balance"
    assert await scalar(engine, "SELECT count(*) FROM claims") == 499
    assert await scalar(engine, "SELECT count(*) FROM outbox") == 998


async def test_a_batch_that_crosses_the_daily_limit_half_way_approves_up_to_it(engine: AsyncEngine) -> None:
    await fund(engine, {"p": 100_000})
    policy = dataclasses.replace(OPEN_CLAIM_POLICY, daily_limit={"USDC": 5_000})
    submit = SubmitClaim(policy, "/test")
    first = await decide(engine, submit, [ask("p", 2_000, "a")])
    assert code(first[0]) == "approved"
    outcomes = await decide(engine, submit, [ask("p", 1_000, f"k{i}") for i in range(6)])
    assert [code(o) for o in outcomes] == ["approved"] * 3 + ["daily_limit_exceeded"] * 3
    assert await scalar(engine, "SELECT sum(amount) FROM claims WHERE player_id = 'p'") == 5_000


async def test_the_rules_count_the_batch_before_each_request_velocity_and_new_destination(
    engine: AsyncEngine,
) -> None:
    await fund(engine, {"p": 100_000})
    policy = dataclasses.replace(OPEN_CLAIM_POLICY, velocity_max_claims=2, new_destination_cooldown_s=3600)
    submit = SubmitClaim(policy, "/test")
    outcomes = await decide(engine, submit, [ask("p", 100, f"k{i}") for i in range(4)])
    holds = [o[0].hold_code for o in outcomes if isinstance(o, tuple)]
    # Serially: the first two are held for the new destination (the second sees it first used just now), the
    # third and fourth for velocity (two claims already in the window). The batch decides the same.
    assert holds == ["new_destination", "new_destination", "velocity", "velocity"]
    assert await scalar(engine, "SELECT count(*) FROM payout_destinations") == 1


async def test_a_repeated_key_in_one_batch_gets_the_first_claim_and_a_changed_body_a_conflict(
    engine: AsyncEngine,
) -> None:
    await fund(engine, {"p": 10_000})
    submit = SubmitClaim(OPEN_CLAIM_POLICY, "/test")
    outcomes = await decide(engine, submit, [ask("p", 1_000, "same"), ask("p", 1_000, "same"), ask("p", 999, "same")])
    first, repeated = outcomes[0], outcomes[1]
    assert isinstance(first, tuple)
    assert isinstance(repeated, tuple)
    assert (first[1], repeated[1], repeated[0].id) == (True, False, first[0].id)
    assert code(outcomes[2]) == "idempotency_key_reused"
    assert await scalar(engine, "SELECT count(*) FROM claims") == 1
    assert await scalar(engine, "SELECT debits_pending FROM ledger_accounts WHERE owner_id = 'p'") == 1_000


async def test_two_batches_racing_for_one_wallet_never_overdraw_it(engine: AsyncEngine) -> None:
    await fund(engine, {"p": 10_000, "q": 10_000, "r": 10_000})
    submit = SubmitClaim(OPEN_CLAIM_POLICY, "/test")
    gate = asyncio.Event()
    uow = sql_uow(engine)

    async def batch(tag: str) -> list[ClaimOutcome]:
        async with uow() as books:
            await gate.wait()
            # Each batch also claims for its own player: the wallet both want is the contended one.
            own = "q" if tag == "a" else "r"
            return await submit.decide(books, [ask("p", 700, f"{tag}{i}") for i in range(10)] + [ask(own, 1, tag)])

    tasks = [asyncio.create_task(batch(t)) for t in ("a", "b")]
    await asyncio.sleep(0.1)
    gate.set()
    a, b = await asyncio.gather(*tasks)
    # Neither batch waits for the other: a batch that found p's wallet taken deferred p's requests (their lane decides
    # them, waiting for the wallet), while its own player's claim went through on a clearing shard it could take.
    assert [code(o) for o in (a[10], b[10])] == ["approved", "approved"]
    deferred = [
        ask("p", 700, f"{tag}{i}") for tag, out in (("a", a), ("b", b)) for i in range(10) if code(out[i]) == "deferred"
    ]
    async with uow() as books:
        later = await submit.decide(books, deferred, wait=True) if deferred else []
    on_p = [code(o) for o in a[:10] + b[:10] if code(o) != "deferred"] + [code(o) for o in later]
    assert on_p.count("approved") == 14  # 14 * 700 = 9_800 <= 10_000 < 15 * 700, whichever batch went first
    assert on_p.count("insufficient_balance") == 6
    assert await scalar(engine, "SELECT debits_pending FROM ledger_accounts WHERE owner_id = 'p'") == 9_800


async def test_concurrent_requests_share_intake_transactions_and_keep_their_own_answers(engine: AsyncEngine) -> None:
    """The API's group commit (`ClaimIntake`, as the HTTP handler calls it) on real PostgreSQL."""
    players = [f"h{i:03}" for i in range(200)]
    await fund(engine, dict.fromkeys(players, 1_000))
    metrics = RewardsMetrics.create(CollectorRegistry())
    intake = ClaimIntake(
        sql_uow(engine),
        SubmitClaim(OPEN_CLAIM_POLICY, "/test", metrics),
        SqlLostCommits(session_factory(engine)),
        metrics=metrics,
    )

    async def claim(p: str) -> str:
        try:
            c, _ = await intake.submit(ask(p, 2_000 if p == "h100" else 500, f"claim-{p}"))
        except UseCaseError as err:
            return err.code
        return c.status.value

    answers = await asyncio.gather(*(claim(p) for p in players))
    assert answers[100] == "insufficient_balance"  # its own refusal
    assert [a for i, a in enumerate(answers) if i != 100] == ["approved"] * 199
    count = next(s.value for m in metrics.claim_batch.collect() for s in m.samples if s.name.endswith("_count"))
    assert count < 20  # 200 requests, a handful of transactions
    assert await scalar(engine, "SELECT count(*) FROM claims") == 199


async def test_a_request_that_breaks_its_batch_is_answered_alone_and_the_rest_committed_in_one_more_transaction(
    engine: AsyncEngine,
) -> None:
    """Issue 56: a request whose reservation the ledger refuses with a fault (not a refusal of the claim: here a
    reservation under its claim's id exists with another body and no claim) broke its whole batch, which was then
    halved log2(n) times to find it. The batch names it (`Culprits`): it gets its error, and the other requests
    are decided again together, in one more transaction."""
    players = [f"k{i:03}" for i in range(120)]
    await fund(engine, dict.fromkeys(players, 1_000))
    poisoned = players[57]
    async with sql_uow(engine)() as books:  # a reservation of the poisoned request's claim, with another amount
        await books.ledger.apply([reservation(claim_id_for(poisoned, f"claim-{poisoned}"), poisoned, "USDC", 1)])
    submit = SubmitClaim(OPEN_CLAIM_POLICY, "/test")
    decided: list[int] = []
    original = submit.decide

    async def counting(books: Books, requests: Sequence[ClaimRequest], *, wait: bool = False) -> list[ClaimOutcome]:
        decided.append(len(requests))
        return await original(books, requests, wait=wait)

    submit.decide = counting  # type: ignore[method-assign]
    intake = ClaimIntake(sql_uow(engine), submit, SqlLostCommits(session_factory(engine)))

    async def claim(p: str) -> str:
        try:
            c, _ = await intake.submit(ask(p, 500, f"claim-{p}"))
        except LedgerError as err:
            return err.code
        return c.status.value

    first = await claim(players[0])  # alone: the others arrive while it commits and share the next batch
    rest = await asyncio.gather(*(claim(p) for p in players[1:]))
    answers = [first, *rest]
    assert answers[57] == "transfer_conflict"
    assert [a for i, a in enumerate(answers) if i != 57] == ["approved"] * 119
    # The lone first; then one batch of the others and its rest once more (halving took 1 + 2 * log2(119) ≈ 15).
    assert len(decided) == 3, decided
    assert decided[2] == decided[1] - 1, decided
    assert await scalar(engine, "SELECT count(*) FROM claims") == 119
