"""The runbooks' mitigations, run as written against the platform in the situation each runbook is for.

Every service runs as its own process on real PostgreSQL and Kafka (one platform for the module). Each test first
brings about the situation (a pool exhausted, a round over-allocated, records dead-lettered, a payout failed on a
rail that then recovered, a disputed manual payout), then runs the runbook's `runbook:<procedure>` block line by
line in bash (`uv run prizeflow-ops ...` exactly as the runbook shows it, with an operator's token), and checks the
outcome in the services' own records: ledger balances, payout states, the rail's own books, dead letters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from runbook_docs import load
from runbook_shell import RunbookShell
from support import USDC, Api, GameServer, ledger_invariants, results_of, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.infra import Infra
from prizeflow_devstack.platform import Platform
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.outbox import RELAY_LOCK_KEY
from prizeflow_testkit import fetch

pytestmark = pytest.mark.e2e

# Payouts: the sandbox rail with a scenario that fails its first attempt (retryable), and the manual rail; a
# retryable failure waits at least five minutes for its next attempt, so only the operator's retry can pay it.
PROVIDERS = """
approvals:
  USDC: {auto_below: "100", dual_from: "1000"}
providers:
  - name: sandbox
    type: sandbox
    assets: [USDC]
    destination_types: [sandbox]
    options:
      default_scenario: success
      scenarios: {flaky1: {outcome: failure, code: provider_unavailable, fail_times: 1}}
  - name: manual
    type: manual
    assets: [USDC]
    destination_types: [manual]
"""
WEBHOOKS = """
providers:
  - name: sandbox
    type: sandbox
    scheme: prizeflow_signature
    secrets: [WEBHOOK_SECRET_SANDBOX]
"""
OPERATOR = ("olga", "ops", "admin")  # runs the runbooks
APPROVER = ("arno", "approver")  # the second person of a ledger correction


@pytest.fixture(scope="module")
def ops_platform(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    work = tmp_path_factory.mktemp("runbooks")
    (work / "providers.yaml").write_text(PROVIDERS)
    (work / "webhooks.yaml").write_text(WEBHOOKS)
    p = Platform(
        infra,
        work / "platform",
        services=("settlement", "rewards", "payouts", "webhooks"),
        env={"CONSUMER_RETRY_MAX_ATTEMPTS": "3", "PAYOUTS_WORKER_INTERVAL_MS": "100"},
        service_env={
            "payouts": {
                "PAYOUTS_PROVIDERS_FILE": str(work / "providers.yaml"),
                "PAYOUTS_RETRY_BASE_MS": "600000",
                "PAYOUTS_RETRY_MAX_MS": "600000",
            },
            "rewards": {"REWARDS_TOPUP_PROVIDER": "sandbox", "REWARDS_NEW_DESTINATION_COOLDOWN_S": "0"},
            "webhooks": {"WEBHOOKS_PROVIDERS_FILE": str(work / "webhooks.yaml")},
        },
    )
    try:
        p.start()
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def shell(ops_platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> RunbookShell:
    return RunbookShell(ops_platform, tmp_path_factory.mktemp("runbook-shell"))


@pytest.fixture(scope="module")
async def api(ops_platform: Platform) -> AsyncIterator[Api]:
    client = Api(ops_platform)
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def game(ops_platform: Platform) -> AsyncIterator[GameServer]:
    server = GameServer(ops_platform.infra.kafka_bootstrap, ops_platform.suffix)
    await server.start()
    yield server
    await server.stop()


def db(platform: Platform, service: str) -> str:
    url = platform.procs[service].database_url
    assert url is not None
    return url


async def campaign_doc(api: Api, campaign: str) -> Any:
    return await api.ok("GET", "rewards", f"/campaigns/{campaign}", user="olga", roles=["ops"])


async def top_up(api: Api, player: str, amount: int) -> None:
    await api.ok(
        "POST",
        "rewards",
        f"/wallets/{player}/top-ups",
        user="cashier",
        roles=["admin"],
        json={"asset": "USDC", "amount": amount, "provider": "sandbox", "reference": uid("cash")},
    )


async def claim(api: Api, player: str, amount: int, destination: dict[str, str], correlation_id: str) -> Any:
    """A player's claim, once rewards knows payouts' routes (published when payouts starts)."""

    async def attempt() -> Any:
        response = await api.call(
            "POST",
            "rewards",
            "/claims/",
            user=player,
            roles=["player"],
            json={"asset": "USDC", "amount": amount, "destination": destination},
            headers={"X-Correlation-Id": correlation_id, "Idempotency-Key": correlation_id},
        )
        return response.json() if response.status_code == 201 else {"refused": response.text}

    return await wait_for(attempt, lambda doc: "claim_id" in doc)


async def payout_of(api: Api, player: str) -> dict[str, Any] | None:
    doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="olga", roles=["ops"])
    return doc["items"][0] if doc["items"] else None


async def submitted_payout(api: Api, player: str) -> dict[str, Any]:
    """The player's payout once it waits at its rail (`submitted`)."""

    async def probe() -> dict[str, Any] | None:
        return await payout_of(api, player)

    found = await wait_for(probe, lambda p: p is not None and p["state"] == "submitted")
    assert found is not None
    return found


async def claim_status(api: Api, player: str, claim_id: str) -> str:
    doc = await api.ok("GET", "rewards", f"/claims/{claim_id}", user=player, roles=["player"])
    return str(doc["status"])


async def test_reward_pool_recovery_pays_the_held_round_and_claims_resume(
    ops_platform: Platform, shell: RunbookShell, api: Api, game: GameServer
) -> None:
    campaign, round_id, winner = uid("camp"), uid("round"), uid("p")
    await api.funded_campaign(campaign, 10 * USDC)
    await game.sponsored_round(
        round_id, [winner, uid("p")], campaign_id=campaign, prize=50 * USDC,
        template=DistributionTemplate.WINNER_TAKES_ALL,
    )  # fmt: skip
    # The situation: the pool (10) cannot pay the round (50); the whole round is held, nothing paid.
    held = await wait_for(lambda: campaign_doc(api, campaign), lambda c: c["held_rounds"] == 1)
    assert (held["held_amount"], held["remaining"]) == (50 * USDC, 10 * USDC)
    assert await api.available(winner) == 0

    await shell.procedure(
        "reward-pool-recovery",
        "recover",
        {"campaign": campaign, "amount": str(100 * USDC), "reference": uid("sponsor-topup")},
        token=shell.token(*OPERATOR),
    )

    after = await campaign_doc(api, campaign)
    assert (after["held_rounds"], after["funded"], after["paid"], after["remaining"]) == (
        0, 110 * USDC, 50 * USDC, 60 * USDC,
    )  # fmt: skip
    assert await api.available(winner) == 50 * USDC
    # Claims resume: the winner claims part of the prize and is paid on the sandbox rail.
    doc = await claim(api, winner, 20 * USDC, {"type": "sandbox", "address": f"success:{winner}"}, uid("claim"))
    assert await wait_for(lambda: claim_status(api, winner, doc["claim_id"]), lambda s: s == "paid") == "paid"
    assert await api.available(winner) == 30 * USDC
    await ledger_invariants(ops_platform)


async def test_accidental_over_allocation_is_corrected_by_a_two_person_compensating_transfer(
    ops_platform: Platform, shell: RunbookShell, api: Api, game: GameServer
) -> None:
    campaign, round_id, winner = uid("camp"), uid("round"), uid("p")
    await api.funded_campaign(campaign, 1_000 * USDC)
    # The situation: a round meant to pay 50 was configured with 500; the winner got all of it.
    await game.sponsored_round(
        round_id, [winner, uid("p")], campaign_id=campaign, prize=500 * USDC,
        template=DistributionTemplate.WINNER_TAKES_ALL,
    )  # fmt: skip
    assert await wait_for(lambda: api.available(winner), lambda v: v == 500 * USDC) == 500 * USDC
    transfers = await api.ok(
        "GET", "rewards", f"/ledger/transfers?correlation_id={round_id}", user="olga", roles=["ops"]
    )
    reward = [t for t in transfers["items"] if t["amount"] == 500 * USDC]
    assert len(reward) == 1, transfers
    reference = uid("fix")
    values = {
        "round": round_id,
        "player": winner,
        "campaign": campaign,
        "asset": "USDC",
        "excess": str(450 * USDC),
        "reference": reference,
        "transfer": str(reward[0]["transfer_id"]),
    }

    await shell.procedure("accidental-over-allocation", "correct", values, token=shell.token(*OPERATOR))

    proposed = await api.ok("GET", "rewards", "/ledger/corrections?status=proposed", user="olga", roles=["ops"])
    mine = [c for c in proposed["items"] if c["reference"] == reference]
    assert len(mine) == 1, proposed
    correction = str(mine[0]["correction_id"])
    assert await api.available(winner) == 500 * USDC  # a proposal moves nothing
    # The proposer cannot approve their own correction (exit 5: 403 same_person).
    own = await shell.sh(f"prizeflow-ops ledger approve {correction}", token=shell.token(*OPERATOR))
    assert own.returncode == 5, own

    approved = await shell.procedure(
        "accidental-over-allocation", "approve", {**values, "correction": correction}, token=shell.token(*APPROVER)
    )
    trace = approved[-1].stdout  # the round's trace shows the correction proposed and approved
    assert "ledger_correction.propose" in trace
    assert "ledger_correction.approve" in trace

    applied = await api.ok("GET", "rewards", f"/ledger/corrections/{correction}", user="olga", roles=["ops"])
    assert applied["status"] == "applied"
    rows = await fetch(
        db(ops_platform, "rewards"),
        "SELECT kind, amount FROM ledger_transfers WHERE id::text = $1",
        str(applied["transfer_id"]),
    )
    assert [(r["kind"], r["amount"]) for r in rows] == [("correction", 450 * USDC)]
    assert await api.available(winner) == 50 * USDC
    pool = await campaign_doc(api, campaign)
    # The pool's figures are its ledger counters: the correction is one more credit (funded 1000 + 450), the prize
    # stays paid (500), and what the pool can still pay is what it would have been (950).
    assert (pool["funded"], pool["paid"], pool["remaining"]) == (1_450 * USDC, 500 * USDC, 950 * USDC)
    await ledger_invariants(ops_platform)


async def test_dead_letters_are_redriven_once_their_cause_is_gone_and_purged_when_they_never_can_apply(
    ops_platform: Platform, shell: RunbookShell, api: Api, game: GameServer
) -> None:
    campaign, round_id, winner = uid("camp"), uid("round"), uid("p")
    players = [winner, uid("p")]
    await api.funded_campaign(campaign, 100 * USDC)
    # The situation: the results arrive before the round was opened (refused: unknown_aggregate), then the rest.
    await game.publish(round_id, results_of(round_id, players))

    async def open_letters() -> list[dict[str, Any]]:
        doc = await api.ok("GET", "settlement", "/admin/dead-letters/?status=open", user="olga", roles=["ops"])
        return list(doc["items"])

    letters = await wait_for(open_letters, lambda ls: any(x["correlation_id"] == round_id for x in ls))
    letter = next(x for x in letters if x["correlation_id"] == round_id)
    assert letter["reason"] == "unknown_aggregate"
    await game.sponsored_round(
        round_id, players, campaign_id=campaign, prize=20 * USDC,
        template=DistributionTemplate.WINNER_TAKES_ALL, results=False,
    )  # fmt: skip

    async def round_state() -> str:
        response = await api.call("GET", "settlement", f"/rounds/{round_id}", user="olga", roles=["ops"])
        return str(response.json()["state"]) if response.status_code == 200 else f"http {response.status_code}"

    await wait_for(round_state, lambda s: s == "closed")

    await shell.procedure(
        "events-dead-lettered", "redrive", {"dead-letter": str(letter["id"])}, token=shell.token(*OPERATOR)
    )

    assert await wait_for(round_state, lambda s: s == "settled") == "settled"
    assert await wait_for(lambda: api.available(winner), lambda v: v == 20 * USDC) == 20 * USDC

    # A record no consumer can ever read: purged with a reason, never applied.
    sent = await game._producer.send_and_wait(game.topic, b"{not json", key=round_id.encode())
    malformed = await wait_for(
        open_letters, lambda ls: any((x["partition"], x["offset"]) == (sent.partition, sent.offset) for x in ls)
    )
    bad = next(x for x in malformed if (x["partition"], x["offset"]) == (sent.partition, sent.offset))
    assert bad["reason"] == "malformed_json"

    await shell.procedure(
        "events-dead-lettered", "purge", {"dead-letter": str(bad["id"])}, token=shell.token(*OPERATOR)
    )

    decided = await fetch(
        db(ops_platform, "settlement"), "SELECT id, status FROM dead_letters WHERE id = ANY($1::bigint[])",
        [letter["id"], bad["id"]],
    )  # fmt: skip
    assert {r["id"]: r["status"] for r in decided} == {letter["id"]: "redriven", bad["id"]: "discarded"}


async def test_provider_retry_pays_a_payout_waiting_on_a_retryable_failure_once(
    ops_platform: Platform, shell: RunbookShell, api: Api
) -> None:
    player = uid("p")
    await top_up(api, player, 50 * USDC)
    # The situation: the rail was unavailable for the first attempt; the next one is due in five minutes or more.
    doc = await claim(api, player, 20 * USDC, {"type": "sandbox", "address": f"flaky1:{player}"}, uid("claim"))
    failed = await wait_for(lambda: payout_of(api, player), lambda p: p is not None and p["state"] == "failed")
    assert failed is not None
    assert failed["next_attempt_at"] is not None  # retryable, not final
    assert await claim_status(api, player, doc["claim_id"]) == "approved"  # still reserved

    await shell.procedure(
        "provider-retry", "retry", {"provider": "sandbox", "payout": failed["id"]}, token=shell.token(*OPERATOR)
    )

    paid = await wait_for(lambda: payout_of(api, player), lambda p: p is not None and p["state"] == "paid")
    assert paid is not None
    assert await wait_for(lambda: claim_status(api, player, doc["claim_id"]), lambda s: s == "paid") == "paid"
    books = await fetch(
        db(ops_platform, "payouts"),
        "SELECT t.amount FROM sandbox.transfers t JOIN payouts p ON p.idempotency_key = t.idempotency_key "
        "WHERE p.id = $1",
        failed["id"],
    )
    assert [b["amount"] for b in books] == [20 * USDC]  # paid once at the rail
    assert await api.available(player) == 30 * USDC
    await ledger_invariants(ops_platform)


async def test_a_disputed_manual_payout_is_traced_then_marked_paid_or_cancelled(
    ops_platform: Platform, shell: RunbookShell, api: Api
) -> None:
    paid_player, cancelled_player = uid("p"), uid("p")
    for player in (paid_player, cancelled_player):
        await top_up(api, player, 50 * USDC)
    flows = {paid_player: uid("dispute"), cancelled_player: uid("dispute")}
    claims = {p: await claim(api, p, 10 * USDC, {"type": "manual", "address": f"acct-{p}"}, flows[p]) for p in flows}
    # The situation: both payouts wait on the manual rail; the players say they were not paid.
    waiting = {p: await submitted_payout(api, p) for p in flows}

    bank_reference = uid("bank")
    ran = await shell.procedure(
        "payout-dispute",
        "resolve-paid",
        {"correlation": flows[paid_player], "payout": waiting[paid_player]["id"], "bank-reference": bank_reference},
        token=shell.token(*OPERATOR),
    )
    assert waiting[paid_player]["id"] in ran[0].stdout  # the trace found the payout under its correlation id

    await shell.procedure(
        "payout-dispute",
        "resolve-cancel",
        {"correlation": flows[cancelled_player], "payout": waiting[cancelled_player]["id"]},
        token=shell.token(*OPERATOR),
    )

    paid = await payout_of(api, paid_player)
    assert paid is not None
    assert (paid["state"], paid["provider_ref"]) == ("paid", bank_reference)
    assert await wait_for(
        lambda: claim_status(api, paid_player, claims[paid_player]["claim_id"]), lambda s: s == "paid"
    )
    cancelled = await payout_of(api, cancelled_player)
    assert cancelled is not None
    assert cancelled["state"] == "cancelled"
    assert await wait_for(
        lambda: claim_status(api, cancelled_player, claims[cancelled_player]["claim_id"]), lambda s: s == "voided"
    )
    assert await api.available(paid_player) == 40 * USDC
    assert await wait_for(lambda: api.available(cancelled_player), lambda v: v == 50 * USDC) == 50 * USDC
    await ledger_invariants(ops_platform)


async def test_a_relay_lock_held_by_a_session_that_does_not_publish_is_found_and_the_backlog_drains_once_it_ends(
    ops_platform: Platform, api: Api
) -> None:
    """Last in the module: it restarts rewards. A process publishes its own commits' events (publish after commit);
    only what publishers left behind (a crash between commit and publish, a failed publish, a bare connection's
    events) waits for the relay. The restarted rewards runs without its publisher, so its events wait for the relay
    as a crashed writer's would."""
    rewards_db = asyncpg_dsn(db(ops_platform, "rewards"))
    ops_platform.service_env.setdefault("rewards", {})["OUTBOX_PUBLISH_AFTER_COMMIT"] = "false"
    # The situation: rewards' leader dies; a session that will never publish (a wedged process) takes the lock
    # before the new rewards process starts, whose relay then cannot lead.
    ops_platform.kill("rewards")
    wedged = await asyncpg.connect(rewards_db)
    try:

        async def take() -> bool:
            return bool(await wedged.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY))

        assert await wait_for(take, bool)  # once PostgreSQL has ended the killed process's session
        ops_platform.restart("rewards")
        await api.funded_campaign(uid("camp"), 1 * USDC)  # committed, with its audit events in the outbox
        assert await outbox_rows(rewards_db) > 0

        # Diagnosis, as the runbook queries it: the holder is the wedged session, not a relay.
        block = load("outbox-relay-not-leading").procedure("find-holder")
        holders = await fetch(db(ops_platform, "rewards"), block.text)
        assert [(h["pid"], h["granted"]) for h in holders] == [(await wedged.fetchval("SELECT pg_backend_pid()"), True)]
        assert await outbox_rows(rewards_db) > 0  # nothing published while it holds the lock
    finally:
        await wedged.close()  # the mitigation: the wedged session ends (its pod deleted), its lock with it

    assert await wait_for(lambda: outbox_rows(rewards_db), lambda n: n == 0) == 0
    holders = await fetch(db(ops_platform, "rewards"), load("outbox-relay-not-leading").procedure("find-holder").text)
    assert len(holders) == 1  # the restarted rewards' relay leads now


async def outbox_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox"))
    finally:
        await conn.close()
