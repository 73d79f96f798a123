"""No reservation is ever stranded, and one claim is paid by at most one payout, attacked on the running
platform: every way a payout request can fail to become a payout is driven through the APIs and Kafka, and
each must end with the claim voided and its money back in the wallet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from support import USDC, Api, caught_up, claim, claim_status, events_on, top_up, uid, wait_for

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.payouts import PayoutPaid, PayoutRequested, PayoutRoute, PayoutRoutesPublished
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_contracts.topics import PAYOUT_EVENTS, PAYOUT_REQUESTS
from prizeflow_devstack.platform import Platform
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_testkit import fetch
from prizeflow_testkit.events import example_payload

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SANDBOX = "sandbox"


async def publish(platform: Platform, topic: str, *records: tuple[bytes, bytes]) -> None:
    producer = idempotent_producer(platform.infra.kafka_bootstrap, client_id="adversary")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic + platform.suffix, value, key=key)
    finally:
        await producer.stop()


async def released(api: Api, player: str, amount: int, destination: dict[str, str]) -> str:
    """A claim through review (a first-time destination is held): approved, its money reserved."""
    response = await claim(api, player, amount, destination)
    assert response.status_code == 201, response.text
    body = response.json()
    if body["status"] == "held":
        await api.ok("POST", "rewards", f"/holds/{body['claim_id']}/release", user="ops-1", roles=["ops"], json={})
    return str(body["claim_id"])


async def payout_of(api: Api, player: str) -> dict[str, Any]:
    async def probe() -> list[Any]:
        doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
        return list(doc["items"])

    (payout,) = await wait_for(probe, lambda items: len(items) == 1)
    return dict(payout)


async def routes_now(platform: Platform) -> list[PayoutRoutesPublished]:
    envs = await events_on(platform.infra.kafka_bootstrap, PAYOUT_EVENTS.name + platform.suffix)
    return [e.data for e in envs if isinstance(e.data, PayoutRoutesPublished)]


async def test_every_way_a_request_fails_to_become_a_payout_voids_its_reservation(platform: Platform, api: Api) -> None:
    player = uid("p")
    await top_up(api, player, 1_000 * USDC)
    voided: dict[str, str] = {}

    # 1. No provider pays it: refused up front, nothing reserved.
    up_front = await claim(api, player, 10 * USDC, {"type": "ton_wallet", "address": "EQ-not-routable"})
    assert (up_front.status_code, up_front.json()["code"]) == (422, "no_payout_route")

    # 2. Rewards' view of the routes is stale (an old or forged announcement says TON is payable): payouts
    #    refuses the request, PayoutRequestRefused voids the reservation.
    real = max(await routes_now(platform), key=lambda a: a.sequence)
    stale = PayoutRoutesPublished(
        sequence=real.sequence + 1_000,
        routes=[
            *real.routes,
            PayoutRoute(asset="USDC", destination_type=DestinationType.TON_WALLET, provider=ProviderType.TON_WALLET),
        ],
        published_at=datetime.now(UTC),
    )
    env = new_event(stale, source="/adversary", correlation_id="payouts-routes")
    await publish(platform, PAYOUT_EVENTS.name, (env.key, env.encode()))
    await caught_up(platform)
    voided["stale route"] = await released(api, player, 10 * USDC, {"type": "ton_wallet", "address": "EQ-ton"})

    # 3. The provider refuses the destination before anything is created.
    voided["provider refuses"] = await released(
        api, player, 10 * USDC, {"type": SANDBOX, "address": "refuse_destination_blocked:x"}
    )
    # 4. The provider fails it for good after trying.
    voided["terminal failure"] = await released(
        api, player, 10 * USDC, {"type": SANDBOX, "address": "fail_invalid_destination:x"}
    )
    # 5. An approver rejects it (above the auto-approval threshold: one approver).
    other = uid("p")
    await top_up(api, other, 1_000 * USDC)
    voided["approver rejects"] = await released(
        api, other, 150 * USDC, {"type": SANDBOX, "address": "pending_forever:r"}
    )
    payout = await payout_of(api, other)
    await api.ok(
        "POST", "payouts", f"/payouts/{payout['id']}/reject", user="ap-1", roles=["approver"], json={"reason": "no"}
    )
    # 6. An admin cancels it while the provider still holds it.
    third = uid("p")
    await top_up(api, third, 1_000 * USDC)
    voided["cancelled"] = await released(api, third, 10 * USDC, {"type": SANDBOX, "address": "pending_forever:c"})
    payout = await payout_of(api, third)
    await wait_for(lambda: payout_state(api, payout["id"]), lambda s: s == "submitted")

    async def cancel() -> Any:
        path = f"/payouts/{payout['id']}/cancel"
        return await api.call("POST", "payouts", path, user="adm-1", roles=["admin"], json={"reason": "asked"})

    # A status sync of the payout may be asking the provider at that moment: the cancel is refused (409 in_flight
    # or concurrent_change, "try again") and the admin tries again, as the answer says.
    answer = await wait_for(
        cancel, lambda r: not (r.status_code == 409 and r.json()["code"] in {"in_flight", "concurrent_change"})
    )
    assert answer.is_success, answer.text
    # 7. A request that cannot be read, naming a held claim (forged on the topic): payouts refuses it for good,
    #    so the claim is voided now rather than stranded when its hold is released.
    fourth = uid("p")
    await top_up(api, fourth, 1_000 * USDC)
    held = (await claim(api, fourth, 10 * USDC, {"type": SANDBOX, "address": "success:h"})).json()
    assert held["status"] == "held"
    garbage = (
        b'{"type": "prizeflow.payouts.PayoutRequested.v1", "data": {"claim_id": "'
        + held["claim_id"].encode()
        + b'", "payout_request_id": "'
        + held["payout_request_id"].encode()
        + b'", "amount": "all of it"}}'
    )
    await publish(platform, PAYOUT_REQUESTS.name, (b"x", garbage))
    voided["unreadable request"] = held["claim_id"]

    owners = {
        "stale route": player,
        "provider refuses": player,
        "terminal failure": player,
        "approver rejects": other,
        "cancelled": third,
        "unreadable request": fourth,
    }
    for why, claim_id in voided.items():

        async def status(owner: str = owners[why], cid: str = claim_id) -> str:
            return await claim_status(api, owner, cid)

        assert await wait_for(status, lambda s: s == "voided") == "voided", why
    await caught_up(platform)
    for p in (player, other, third, fourth):
        doc = await api.ok("GET", "rewards", f"/wallets/{p}", user=p, roles=["player"])
        (usdc,) = [b for b in doc["balances"] if b["asset"] == "USDC"]
        assert (usdc["reserved"], usdc["available"]) == (0, 1_000 * USDC), (p, usdc)
    released_again = await api.call(
        "POST", "rewards", f"/holds/{held['claim_id']}/release", user="ops-1", roles=["ops"], json={}
    )
    assert released_again.status_code == 409
    # Put the real routes back for the tests that come after.
    restore = new_event(
        real.model_copy(update={"sequence": stale.sequence + 1}), source="/adversary", correlation_id="payouts-routes"
    )
    await publish(platform, PAYOUT_EVENTS.name, (restore.key, restore.encode()))
    await caught_up(platform)


async def payout_state(api: Api, payout_id: str) -> str:
    doc = await api.ok("GET", "payouts", f"/payouts/{payout_id}", user="ops-1", roles=["ops"])
    return str(doc["state"])


async def test_one_claim_is_paid_by_one_payout_however_the_second_is_asked_for(platform: Platform, api: Api) -> None:
    player = uid("p")
    await top_up(api, player, 100 * USDC)
    claim_id = await released(api, player, 10 * USDC, {"type": SANDBOX, "address": "success:once"})
    assert await wait_for(lambda: claim_status(api, player, claim_id), lambda s: s == "paid") == "paid"
    payout = await payout_of(api, player)

    # There is no admin route to create a payout at all: nothing pays money no reservation backs.
    direct = await api.call(
        "POST",
        "payouts",
        "/payouts/",
        user="adm-1",
        roles=["admin"],
        json={"claim_id": claim_id, "amount": {"asset": "USDC", "amount": 10 * USDC}, "idempotency_key": "again"},
    )
    assert direct.status_code == 405
    # A second PayoutRequested for the paid claim under a new key (forged, or a bug upstream): no payout.
    first = next(
        e
        for e in await events_on(platform.infra.kafka_bootstrap, PAYOUT_REQUESTS.name + platform.suffix)
        if isinstance(e.data, PayoutRequested) and e.data.claim_id == claim_id
    )
    forged = new_event(
        first.data.model_copy(update={"idempotency_key": uid("k"), "payout_request_id": uid("pr")}),
        source="/adversary",
        correlation_id=first.correlationid,
    )
    await publish(platform, PAYOUT_REQUESTS.name, (forged.key, forged.encode()))
    # ...and a PayoutPaid of some other payout for that claim: rewards refuses to settle it a second time.
    double = new_event(
        example_payload(
            PayoutPaid,
            payout_id=uid("po"),
            payout_request_id=first.data.payout_request_id,
            claim_id=claim_id,
            player_id=player,
            amount={"asset": "USDC", "amount": 10 * USDC},
            provider="sandbox",
            idempotency_key=first.data.idempotency_key,
        ),
        source="/adversary",
        correlation_id=first.correlationid,
    )
    await publish(platform, PAYOUT_EVENTS.name, (double.key, double.encode()))
    await caught_up(platform)
    db = platform.procs["payouts"].database_url
    assert db is not None
    rows = await fetch(db, "SELECT id FROM payouts WHERE claim_id = $1", claim_id)
    assert [r["id"] for r in rows] == [payout["id"]]
    sandbox_paid = await fetch(
        db, "SELECT count(*) AS n FROM sandbox.transfers WHERE idempotency_key = $1", forged.data.idempotency_key
    )
    assert sandbox_paid[0]["n"] == 0
    refusals = await api.ok(
        "GET", "rewards", "/admin/dead-letters/?reason=duplicate_payout", user="ops-1", roles=["ops"]
    )
    assert [d["correlation_id"] for d in refusals["items"]] == [first.correlationid]
    doc = await api.ok("GET", "rewards", f"/wallets/{player}", user=player, roles=["player"])
    (usdc,) = [b for b in doc["balances"] if b["asset"] == "USDC"]
    assert (usdc["balance"], usdc["reserved"]) == (90 * USDC, 0)
