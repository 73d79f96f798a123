"""Player money moves only on the decision of the service that owns it, attacked through the game feed and
the APIs of the running platform: refused entries cost nothing, strangers in results are not paid, and for
every round the entry fees charged are exactly the entries settlement accepted."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest
from support import (
    USDC,
    Api,
    GameServer,
    caught_up,
    results_of,
    top_up,
    uid,
    wait_for,
)

from prizeflow_contracts.events.game import DistributionTemplate, EntryRecorded, PaidVia
from prizeflow_contracts.money import Money
from prizeflow_devstack.platform import Platform
from prizeflow_testkit import fetch

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def db(platform: Platform, service: str) -> str:
    url = platform.procs[service].database_url
    assert url is not None
    return url


async def charged_vs_accepted(platform: Platform) -> tuple[dict[str, int], dict[str, int]]:
    """Per round: the fees rewards charged (ledger), and the fees of the entries settlement accepted."""
    accepted = {
        r["round_id"]: int(r["fees"])
        for r in await fetch(
            db(platform, "settlement"),
            "SELECT round_id, sum(fee_amount) AS fees FROM round_entries WHERE fee_amount > 0 GROUP BY round_id",
        )
    }
    charged: dict[str, int] = defaultdict(int)
    for r in await fetch(
        db(platform, "rewards"), "SELECT business_key, amount FROM ledger_transfers WHERE kind = 'entry_fee'"
    ):
        charged[str(r["business_key"]).split("|")[1]] += int(r["amount"])
    return dict(charged), accepted


async def dead_letters(api: Api, service: str, reason: str) -> list[dict[str, object]]:
    doc = await api.ok(
        "GET", service, f"/admin/dead-letters/?reason={reason}&status=open&limit=500", user="ops-1", roles=["ops"]
    )
    return list(doc["items"])


async def test_entries_settlement_refuses_cost_the_player_nothing(
    platform: Platform, game: GameServer, api: Api
) -> None:
    campaign, round_id, never_opened = uid("camp"), uid("round"), uid("ghost")
    entrant, late, lost = uid("p"), uid("p"), uid("p")
    await api.funded_campaign(campaign, 100 * USDC)
    for p in (entrant, late, lost):
        await top_up(api, p, 10 * USDC)
    await game.sponsored_round(
        round_id, [entrant], campaign_id=campaign, prize=5 * USDC, entry_fee=2 * USDC, paid_via=PaidVia.WALLET,
        results=False, template=DistributionTemplate.WINNER_TAKES_ALL,
    )  # fmt: skip
    now = datetime.now(UTC)
    fee = Money(asset="USDC", amount=2 * USDC)
    await game.publish(
        round_id,
        EntryRecorded(
            round_id=round_id, entry_id=uid("e"), player_id=late, fee=fee, paid_via=PaidVia.WALLET, recorded_at=now
        ),
    )
    await game.publish(
        never_opened,
        EntryRecorded(
            round_id=never_opened, entry_id=uid("e"), player_id=lost, fee=fee, paid_via=PaidVia.WALLET, recorded_at=now
        ),
    )
    await game.publish(round_id, results_of(round_id, [entrant]))
    assert await wait_for(lambda: api.available(entrant), lambda v: v == 13 * USDC) == 13 * USDC  # -2 fee, +5 prize
    await caught_up(platform)
    assert await api.available(late) == 10 * USDC, "an entry after the close was charged"
    assert await api.available(lost) == 10 * USDC, "an entry to a round that never opened was charged"
    refusals = {d["correlation_id"] for d in await dead_letters(api, "settlement", "illegal_transition")}
    refusals |= {d["correlation_id"] for d in await dead_letters(api, "settlement", "unknown_aggregate")}
    assert {round_id, never_opened} <= refusals


async def test_a_player_who_never_entered_is_not_paid(platform: Platform, game: GameServer, api: Api) -> None:
    campaign, round_id = uid("camp"), uid("round")
    a, b, intruder = uid("p"), uid("p"), uid("intruder")
    await api.funded_campaign(campaign, 100 * USDC)
    await game.sponsored_round(round_id, [a, b], campaign_id=campaign, prize=10 * USDC, results=False)
    await game.publish(round_id, results_of(round_id, [intruder, a]))
    await caught_up(platform)
    assert await api.available(intruder) == 0
    assert await api.available(a) == 0
    (letter,) = [
        d for d in await dead_letters(api, "settlement", "placement_not_entered") if d["correlation_id"] == round_id
    ]
    assert intruder in str(letter["detail"])
    doc = await api.ok("GET", "settlement", f"/rounds/{round_id}", user="admin-1", roles=["admin"])
    assert doc["state"] == "closed"
    # Ops close the letter; the refused results stay refused, even when replayed.
    await api.ok(
        "POST",
        "settlement",
        f"/admin/dead-letters/{letter['id']}/discard",
        user="ops-1",
        roles=["ops"],
        json={"reason": "the game server placed a spectator"},
    )
    await game.publish(round_id, results_of(round_id, [intruder, a]))
    await caught_up(platform)
    assert await api.available(intruder) == 0


async def test_a_fee_a_wallet_could_not_pay_is_charged_by_an_operators_redrive_and_every_round_balances(
    platform: Platform, game: GameServer, api: Api
) -> None:
    campaign, round_id = uid("camp"), uid("round")
    payer, broke = uid("p"), uid("p")
    await api.funded_campaign(campaign, 100 * USDC)
    await top_up(api, payer, 10 * USDC)
    await game.sponsored_round(
        round_id, [payer, broke], campaign_id=campaign, prize=4 * USDC, entry_fee=1 * USDC, paid_via=PaidVia.WALLET
    )
    await caught_up(platform)
    (letter,) = [d for d in await dead_letters(api, "rewards", "insufficient_funds") if d["correlation_id"] == round_id]
    charged, accepted = await charged_vs_accepted(platform)
    assert (charged.get(round_id), accepted[round_id]) == (1 * USDC, 2 * USDC)  # visible, not silent

    await top_up(api, broke, 5 * USDC)
    redriven = await api.ok(
        "POST",
        "rewards",
        f"/admin/dead-letters/{letter['id']}/redrive",
        user="ops-1",
        roles=["ops"],
        json={"reason": "the player topped up"},
    )
    assert redriven["status"] == "redriven"
    await caught_up(platform)
    charged, accepted = await charged_vs_accepted(platform)
    assert charged[round_id] == accepted[round_id] == 2 * USDC
    # Across the whole platform: every round charged exactly what settlement accepted, unless a refusal
    # (an unpaid fee) is still open for it.
    open_shortfalls = {str(d["correlation_id"]) for d in await dead_letters(api, "rewards", "insufficient_funds")}
    mismatched = {r for r in accepted if charged.get(r, 0) != accepted[r] and r not in open_shortfalls}
    assert mismatched == set()
    assert set(charged) <= set(accepted), "a fee was charged for an entry settlement never accepted"
