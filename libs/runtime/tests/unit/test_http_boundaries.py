"""The HTTP boundary every service shares: exact public routes, strict money, bounded bodies."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from litestar import Litestar, Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field

from prizeflow_contracts.money import MinorUnits
from prizeflow_runtime.auth import Principal
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.http import MAX_JSON_DEPTH, create_app, json_depth
from prizeflow_testkit import public_routes, unauthenticated_answers

IDENTITY = DevIdentity.generate()
AUDIENCE = "prizeflow-unit"


class Pay(BaseModel):
    amount: MinorUnits
    count: Annotated[int, Field(strict=True, ge=0)] = 0
    note: str | None = None


@post("/pay", sync_to_thread=False)
def pay(data: JSONBody[Pay]) -> dict[str, int]:
    return {"amount": data.amount}


@get("/wallets/{player_id:str}", sync_to_thread=False)
def wallet(request: Request[Principal, Any, Any], player_id: FromPath[str]) -> dict[str, str]:
    return {"player": player_id, "caller": request.user.user_id}


@get("/rounds/{round_id:str}/health-check", sync_to_thread=False)
def round_check(round_id: FromPath[str]) -> dict[str, str]:
    return {"round": round_id}


def app() -> Litestar:
    return create_app(
        service_name="unit",
        route_handlers=[pay, wallet, round_check],
        registry=CollectorRegistry(),
        auth=IDENTITY.verifier(audience=AUDIENCE),
    )


def bearer(user: str = "u-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {IDENTITY.issue(user, ['player'], audience=AUDIENCE)}"}


async def test_only_the_exact_public_routes_are_served_without_a_token() -> None:
    a = app()
    assert public_routes(a) == {"/health/live", "/health/ready", "/metrics", "/schema"}
    answers = await unauthenticated_answers(a)
    assert answers, "the route table yielded nothing to probe"
    assert {path: status for path, status in answers.items() if status != 401} == {}


@pytest.mark.parametrize("player_id", ["metrics", "health", "schema", "health-check"])
async def test_players_whose_ids_look_like_public_paths_are_still_authenticated(player_id: str) -> None:
    async with AsyncTestClient(app()) as client:
        anonymous = await client.get(f"/wallets/{player_id}")
        own = await client.get(f"/wallets/{player_id}", headers=bearer(player_id))
        probe = await client.get("/rounds/r-1/health-check")
    assert anonymous.status_code == 401
    assert own.json() == {"player": player_id, "caller": player_id}
    assert probe.status_code == 401


@pytest.mark.parametrize("amount", ["1000", 1000.0, 1.5, True, None, [1000]])
async def test_money_must_be_a_json_integer(amount: Any) -> None:
    async with AsyncTestClient(app()) as client:
        refused = await client.post("/pay", json={"amount": amount}, headers=bearer())
        counted = await client.post("/pay", json={"amount": 5, "count": "3"}, headers=bearer())
        fine = await client.post("/pay", json={"amount": 1000, "note": "x"}, headers=bearer())
    assert (refused.status_code, refused.json()["code"]) == (400, "validation_error")
    assert counted.status_code == 400
    assert fine.json() == {"amount": 1000}


async def test_deep_or_huge_bodies_are_refused_before_parsing() -> None:
    deep = b'{"amount": 1, "note": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    huge = b'{"amount": 1, "note": "' + b"x" * 2_000_000 + b'"}'
    tricky = b'{"amount": 7, "note": "' + b"[" * 500 + b'"}'  # brackets inside a string do not nest
    async with AsyncTestClient(app()) as client:
        too_deep = await client.post("/pay", content=deep, headers={**bearer(), "content-type": "application/json"})
        too_big = await client.post("/pay", content=huge, headers={**bearer(), "content-type": "application/json"})
        fine = await client.post("/pay", content=tricky, headers={**bearer(), "content-type": "application/json"})
    assert (too_deep.status_code, too_deep.json()["code"]) == (400, "json_too_deep")
    assert (too_big.status_code, too_big.json()["code"]) == (413, "body_too_large")
    for r in (too_deep, too_big):
        assert r.headers["content-type"].startswith("application/problem+json")
    assert fine.json() == {"amount": 7}


def test_json_depth_counts_nesting_outside_strings() -> None:
    assert json_depth(b"{}") == 1
    assert json_depth(b'{"a": [1, {"b": [[]]}]}') == 5
    assert json_depth(b'{"a": "[[[[{{{", "b": "\\"[["}') == 1
    assert json_depth(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) == MAX_JSON_DEPTH
