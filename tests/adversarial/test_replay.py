"""An operator's recovery move, attacked: replay every topic from offset 0 into every service.

A history with everything in it (settled, voided and disputed rounds, wallet-paid entries, refused events of
every kind, a reused event id, garbage, claims paid, held, refused and voided) is run through the platform.
Then every service is stopped, every consumer group is rewound to offset 0 on every topic it reads, and the
services start again and consume it all a second time. Nothing may change: not one new record on any topic
(DLQs included), not one new row where money or decisions live.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from support import (
    USDC,
    Api,
    GameServer,
    caught_up,
    claim,
    claim_status,
    groups_of,
    results_of,
    rewind,
    top_up,
    topics_of,
    uid,
    wait_for,
)

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.game import (
    Distribution,
    DistributionTemplate,
    EntryRecorded,
    PaidVia,
    PrizeSource,
    PrizeSpec,
    RoundClosed,
    RoundOpened,
)
from prizeflow_contracts.money import Money
from prizeflow_devstack.infra import Infra
from prizeflow_devstack.platform import RAIL_EMULATORS, Platform
from prizeflow_testkit import end_offsets, fetch

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# What each service decided, counted where it lives.
STATE = {
    "settlement": {
        "rounds": "SELECT state, count(*) FROM rounds GROUP BY 1",
        "entries": "SELECT count(*), coalesce(sum(fee_amount), 0) FROM round_entries",
        "transitions": "SELECT count(*) FROM round_transitions",
        "inbox": "SELECT outcome, count(*) FROM inbox GROUP BY 1",
        "dead_letters": "SELECT reason, count(*) FROM dead_letters GROUP BY 1",
    },
    "rewards": {
        "transfers": "SELECT kind, count(*), sum(amount) FROM ledger_transfers GROUP BY 1",
        "claims": "SELECT status, count(*) FROM claims GROUP BY 1",
        "inbox": "SELECT outcome, count(*) FROM inbox GROUP BY 1",
        "dead_letters": "SELECT reason, count(*) FROM dead_letters GROUP BY 1",
    },
    "payouts": {
        "payouts": "SELECT state, count(*) FROM payouts GROUP BY 1",
        "refusals": "SELECT code, count(*) FROM payout_request_refusals GROUP BY 1",
        "history": "SELECT count(*) FROM payout_history",
        "sandbox": "SELECT count(*) FROM sandbox.transfers",
        "inbox": "SELECT outcome, count(*) FROM inbox GROUP BY 1",
    },
}


@pytest.fixture(scope="module")
def platform(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform of its own: its history is exactly what this test wrote."""
    p = Platform(
        infra,
        tmp_path_factory.mktemp("replay"),
        # payouts pays stripe_account destinations through the Stripe emulator, whose webhooks need the ingress;
        # the local providers file names the other rails too, whose emulators must be there
        services=("settlement", "rewards", "payouts", "webhooks", *RAIL_EMULATORS),
        env={"CONSUMER_RETRY_MAX_ATTEMPTS": "2", "PAYOUTS_WORKER_INTERVAL_MS": "100"},
    )
    try:
        p.start()
        yield p
    finally:
        p.stop()


async def snapshot(platform: Platform, kafka: str) -> dict[str, Any]:
    offsets = {}
    for topic in await topics_of(platform):
        offsets[topic] = sorted((tp.partition, end) for tp, end in (await end_offsets(kafka, topic)).items())
    state = {}
    for service, queries in STATE.items():
        db = platform.procs[service].database_url
        assert db is not None
        for name, sql in queries.items():
            state[f"{service}.{name}"] = sorted(tuple(r) for r in await fetch(db, sql))
    return {"offsets": offsets, "state": state}


def paid_round(round_id: str, players: list[str], *, campaign: str, pot: bool = False) -> list[Any]:
    now = datetime.now(UTC)
    fee = Money(asset="USDC", amount=2 * USDC)
    prize = PrizeSpec(asset="USDC") if pot else PrizeSpec(asset="USDC", amount=30 * USDC, campaign_id=campaign)
    return [
        RoundOpened(
            round_id=round_id,
            competition_id="replay-cup",
            game_id="replay",
            opened_at=now,
            entry_fee=fee,
            prize=prize,
            prize_source=PrizeSource.ENTRY_POT if pot else PrizeSource.SPONSORED,
            distribution=Distribution(template=DistributionTemplate.TOP3),
            platform_fee_bps=1_000,
        ),
        *[
            EntryRecorded(
                round_id=round_id,
                entry_id=f"{round_id}-e{i}",
                player_id=p,
                fee=fee,
                paid_via=PaidVia.WALLET,
                recorded_at=now,
            )
            for i, p in enumerate(players)
        ],
        RoundClosed(round_id=round_id, closed_at=now, entry_count=len(players)),
    ]


async def write_history(platform: Platform, game: GameServer, api: Api) -> None:
    campaign = uid("camp")
    await api.funded_campaign(campaign, 500 * USDC)
    players = [uid("p") for _ in range(4)]
    for p in players:
        await top_up(api, p, 10 * USDC)

    sponsored, pot, voided, disputed = uid("sp"), uid("pot"), uid("void"), uid("disp")
    await game.publish(
        sponsored, *paid_round(sponsored, players[:3], campaign=campaign), results_of(sponsored, players[:3])
    )
    await game.publish(pot, *paid_round(pot, players[1:], campaign=campaign, pot=True), results_of(pot, players[1:]))
    await game.publish(voided, *paid_round(voided, players[:2], campaign=campaign))
    await game.void(voided)
    await game.sponsored_round(disputed, players[:2], campaign_id=campaign, prize=10 * USDC)
    await game.publish(disputed, results_of(disputed, list(reversed(players[:2]))))

    # Refused, each for its own reason: results before the close (the close comes after: a replay used to
    # settle this round), a close for a round not yet opened (opened after), an entry after the close, a
    # stranger placed in the results, an event id reused with other bytes, garbage.
    early, ghost, stranger_round = uid("early"), uid("ghost"), uid("stranger")
    await game.sponsored_round(early, players[:2], campaign_id=campaign, prize=5 * USDC, close=False, results=False)
    await game.publish(early, results_of(early, players[:2]))
    await game.publish(early, RoundClosed(round_id=early, closed_at=datetime.now(UTC), entry_count=2))
    await game.publish(ghost, RoundClosed(round_id=ghost, closed_at=datetime.now(UTC), entry_count=0))
    await game.publish(ghost, *paid_round(ghost, [], campaign=campaign)[:1])
    await game.publish(
        sponsored,
        EntryRecorded(
            round_id=sponsored,
            entry_id=f"{sponsored}-late",
            player_id=players[3],
            fee=Money(asset="USDC", amount=2 * USDC),
            paid_via=PaidVia.WALLET,
            recorded_at=datetime.now(UTC),
        ),
    )
    await game.sponsored_round(stranger_round, players[:2], campaign_id=campaign, prize=5 * USDC, results=False)
    await game.publish(stranger_round, results_of(stranger_round, [players[0], uid("intruder")]))
    reused = uid("reuse")
    (opened,) = await game.publish(reused, *paid_round(reused, [], campaign=campaign)[:1])
    other = new_event(
        opened.data.model_copy(update={"competition_id": "forged-cup"}),
        source="/games/e2e",
        correlation_id=opened.correlationid,
        event_id=opened.id,
    )
    await game._producer.send_and_wait(game.topic, other.encode(), key=other.key, headers=other.headers())
    await game._producer.send_and_wait(game.topic, b"{not json at all", key=b"garbage")

    # Claims: one paid, one refused up front, one the provider refuses (voided), one rejected by ops.
    winner = players[0]
    await wait_for(lambda: api.available(winner), lambda v: v >= 10 * USDC)
    paid = (await claim(api, winner, 3 * USDC, {"type": "sandbox", "address": f"success:{winner}"})).json()
    await api.ok("POST", "rewards", f"/holds/{paid['claim_id']}/release", user="ops-1", roles=["ops"], json={})
    refused = await claim(api, winner, 1 * USDC, {"type": "ton_wallet", "address": "EQsomething"})
    assert refused.status_code == 422
    blocked = (
        await claim(api, winner, 1 * USDC, {"type": "sandbox", "address": "refuse_destination_blocked:x"})
    ).json()
    await api.ok("POST", "rewards", f"/holds/{blocked['claim_id']}/release", user="ops-1", roles=["ops"], json={})
    rejected = (await claim(api, players[1], 1 * USDC, {"type": "sandbox", "address": "success:r"})).json()
    await api.ok(
        "POST", "rewards", f"/holds/{rejected['claim_id']}/reject", user="ops-1", roles=["ops"], json={"reason": "no"}
    )
    await wait_for(lambda: claim_status(api, winner, paid["claim_id"]), lambda s: s == "paid", timeout=90)
    await wait_for(lambda: claim_status(api, winner, blocked["claim_id"]), lambda s: s == "voided", timeout=90)


async def test_replaying_every_topic_into_every_service_changes_nothing(
    platform: Platform, game: GameServer, api: Api, kafka_bootstrap: str
) -> None:
    await write_history(platform, game, api)
    await caught_up(platform)
    before = await snapshot(platform, kafka_bootstrap)
    refusals = dict(before["state"]["settlement.dead_letters"])
    assert {
        "illegal_transition",
        "unknown_aggregate",
        "placement_not_entered",
        "event_id_reused",
        "malformed_json",
    } <= set(refusals), refusals
    assert dict(before["state"]["settlement.rounds"])["settled"] >= 3

    groups = await groups_of(platform)
    assert len(groups) >= 4, groups  # settlement, rewards (rounds, payouts), payouts (requests, ...)
    platform.stop(drop_databases=False)
    await rewind(platform, groups)
    for name in platform.procs:
        platform.restart(name)
    await caught_up(platform)
    after = await snapshot(platform, kafka_bootstrap)

    assert after["offsets"] == before["offsets"], "a replay published new records"
    assert after["state"] == before["state"], "a replay changed what a service decided"
