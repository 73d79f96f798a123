"""Every service's HTTP boundary, attacked: no route but the exact public ones answers without a token (the
list comes from each app's own route table), money is a JSON integer or nothing, bodies are bounded, and a
counter past int64 is a clear problem, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from support import USDC, Api, top_up, uid

from prizeflow_contracts.money import INT64_MAX
from prizeflow_devstack.platform import Platform
from prizeflow_testkit import public_routes, unauthenticated_answers

PUBLIC = {"/health/live", "/health/ready", "/metrics", "/schema"}


def settlement_app() -> Litestar:
    from prizeflow_settlement.bootstrap import build
    from prizeflow_settlement.settings import SettlementSettings

    return build(SettlementSettings(kafka_bootstrap_servers="127.0.0.1:1", database_url="postgresql://x@127.0.0.1:1/x"))


def rewards_app() -> Litestar:
    from prizeflow_rewards.bootstrap import build
    from prizeflow_rewards.settings import RewardsSettings

    return build(RewardsSettings(kafka_bootstrap_servers="127.0.0.1:1", database_url="postgresql://x@127.0.0.1:1/x"))


def payouts_app(tmp: Path) -> Litestar:
    from prizeflow_payouts.bootstrap import build
    from prizeflow_payouts.settings import PayoutsSettings

    providers = tmp / "providers.yaml"
    providers.write_text("providers:\n  - {name: manual, type: manual, assets: [USD], destination_types: [manual]}\n")
    return build(
        PayoutsSettings(
            kafka_bootstrap_servers="127.0.0.1:1",
            database_url="postgresql://x@127.0.0.1:1/x",
            payouts_providers_file=providers,
        )
    )


@pytest.mark.parametrize("service", ["settlement", "rewards", "payouts"])
async def test_every_route_but_the_public_ones_needs_a_token(service: str, tmp_path: Path) -> None:
    app = (
        payouts_app(tmp_path)
        if service == "payouts"
        else {"settlement": settlement_app, "rewards": rewards_app}[service]()
    )
    assert public_routes(app) == PUBLIC
    answers = await unauthenticated_answers(app)
    assert len(answers) >= 5, answers
    assert {route: status for route, status in answers.items() if status != 401} == {}


@pytest.mark.e2e
@pytest.mark.integration
async def test_live_services_refuse_lax_money_deep_and_huge_bodies_with_problems(platform: Platform, api: Api) -> None:
    player = uid("p")
    await top_up(api, player, 10 * USDC)
    dest = {"type": "sandbox", "address": "success:x"}
    deep = '{"reason": ' + "[" * 5_000 + "]" * 5_000 + "}"
    huge = '{"reason": "' + "x" * 2_000_000 + '"}'
    cases: list[tuple[str, str, str, list[str], dict[str, Any], int, str]] = [
        ("rewards", "POST", "/claims/", ["player"], {"json": {"asset": "USDC", "amount": "1000", "destination": dest}}, 400, "validation_error"),  # noqa: E501 - one case per line reads as a table
        ("rewards", "POST", "/claims/", ["player"], {"json": {"asset": "USDC", "amount": 1e7, "destination": dest}}, 400, "validation_error"),  # noqa: E501 - one case per line reads as a table
        ("settlement", "POST", "/rounds/r-1/resolve", ["admin"], {"json": {"reason": "x", "placements": [{"player_id": "a", "rank": "1", "score": 1}]}}, 400, "validation_error"),  # noqa: E501 - one case per line reads as a table
        ("payouts", "POST", "/payouts/quote", ["ops"], {"json": {"amount": {"asset": "USDC", "amount": "5"}, "destination": dest}}, 400, "validation_error"),  # noqa: E501 - one case per line reads as a table
        ("settlement", "POST", "/rounds/r-1/void", ["admin"], {"content": deep, "headers": {"content-type": "application/json"}}, 400, "json_too_deep"),  # noqa: E501 - one case per line reads as a table
        ("rewards", "POST", "/claims/", ["player"], {"content": deep, "headers": {"content-type": "application/json"}}, 400, "json_too_deep"),  # noqa: E501 - one case per line reads as a table
        ("payouts", "POST", "/payouts/quote", ["ops"], {"content": huge, "headers": {"content-type": "application/json"}}, 413, "body_too_large"),  # noqa: E501 - one case per line reads as a table
    ]  # fmt: skip
    for service, method, path, roles, kwargs, status, code in cases:
        response = await api.call(
            method, service, path, user=player if "player" in roles else "op-1", roles=roles, **kwargs
        )
        assert (response.status_code, response.json().get("code")) == (status, code), (
            service,
            path,
            response.text[:300],
        )
        assert response.headers["content-type"].startswith("application/problem+json")
    doc = await api.ok("GET", "rewards", f"/wallets/{player}", user=player, roles=["player"])
    assert [b["reserved"] for b in doc["balances"]] == [0]  # nothing was claimed


@pytest.mark.e2e
@pytest.mark.integration
async def test_a_ledger_counter_past_int64_is_refused_and_changes_nothing(platform: Platform, api: Api) -> None:
    # A provider name and a player of its own: the counters this pins belong to nobody else on the platform.
    player, provider = uid("p"), "overflow" + uid("x").replace("-", "")[-10:]

    async def top(amount: int, reference: str) -> Any:
        return await api.call(
            "POST", "rewards", f"/wallets/{player}/top-ups", user="cashier", roles=["admin"],
            json={"asset": "USDC", "amount": amount, "provider": provider, "reference": reference},
        )  # fmt: skip

    assert (await top(INT64_MAX, "all")).status_code == 200
    over = await top(1, "one-more")
    assert (over.status_code, over.json()["code"]) == (422, "amount_out_of_range")
    assert over.headers["content-type"].startswith("application/problem+json")
    assert await api.available(player) == INT64_MAX


@pytest.mark.e2e
@pytest.mark.integration
async def test_an_idempotency_key_names_one_claim_exactly(platform: Platform, api: Api) -> None:
    player = uid("p")
    await top_up(api, player, 10 * USDC)
    key = uid("key")

    async def send(destination: dict[str, str], amount: int = 2 * USDC) -> Any:
        return await api.call(
            "POST", "rewards", "/claims/", user=player, roles=["player"],
            json={"asset": "USDC", "amount": amount, "destination": destination}, headers={"Idempotency-Key": key},
        )  # fmt: skip

    first = await send({"type": "sandbox", "address": "success:a"})
    assert first.status_code == 201
    assert (await send({"type": "sandbox", "address": "success:a"})).json()["created"] is False
    response = await send({"type": "sandbox", "address": "success:b"})
    assert (response.status_code, response.json()["code"]) == (409, "idempotency_key_reused")
    # A memo no sandbox rail reads is refused before the key is looked at (the destination's key ignores it).
    response = await send({"type": "sandbox", "address": "success:a", "memo": "m"})
    assert (response.status_code, response.json()["code"]) == (422, "memo_not_accepted")
    assert (await send({"type": "sandbox", "address": "success:a"}, amount=3 * USDC)).status_code == 409
