"""HTTP face of every service: health, metrics, problem details, JWT roles."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Request, get, post
from litestar.params import JSONBody
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel

from prizeflow_runtime.auth import JwtConfig, Principal, Role, issue_token, require_roles
from prizeflow_runtime.http import ProblemError, create_app

JWT = JwtConfig(secret="unit-test-secret-0123456789abcdef0123")


class Body(BaseModel):
    amount: int


@post("/things", guards=[require_roles(Role.ADMIN)], sync_to_thread=False)
def create_thing(data: JSONBody[Body]) -> dict[str, int]:
    if data.amount > 100:
        raise ProblemError(409, "over_limit", "amount above the limit", limit=100)
    return {"amount": data.amount}


@get("/whoami", sync_to_thread=False)
def whoami(request: Request[Principal, Any, Any]) -> dict[str, Any]:
    user = request.user
    return {"user": user.user_id, "roles": sorted(user.roles)}


def app(readiness: list[Any] | None = None) -> Any:
    registry = CollectorRegistry()
    Counter("prizeflow_unit_things", "things", registry=registry).inc()
    return create_app(
        service_name="unit",
        route_handlers=[create_thing, whoami],
        registry=registry,
        readiness=readiness or [],
        jwt=JWT,
    )


def bearer(*roles: str, user: str = "u-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(JWT, user, roles)}"}


async def test_health_and_metrics_need_no_token() -> None:
    async with AsyncTestClient(app()) as client:
        assert (await client.get("/health/live")).json() == {"status": "ok"}
        assert (await client.get("/health/ready")).status_code == 200
        metrics = await client.get("/metrics")
        assert "prizeflow_unit_things_total 1.0" in metrics.text
        assert (await client.get("/schema/openapi.json")).status_code == 200


async def test_readiness_reports_each_failing_dependency_with_503() -> None:
    async def database_ready() -> None:
        raise ConnectionRefusedError("postgres down")

    async with AsyncTestClient(app([database_ready])) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert "database_ready" in response.json()["failures"][0]


async def test_missing_bad_and_foreign_tokens_are_401_problems() -> None:
    other = JwtConfig(secret="another-secret-0123456789abcdef0123456")
    async with AsyncTestClient(app()) as client:
        missing = await client.get("/whoami")
        forged = await client.get("/whoami", headers={"Authorization": f"Bearer {issue_token(other, 'x', ['admin'])}"})
    for response in (missing, forged):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 401


async def test_roles_guard_refuses_with_403_and_accepts_the_role() -> None:
    async with AsyncTestClient(app()) as client:
        refused = await client.post("/things", json={"amount": 1}, headers=bearer("player", "ops"))
        accepted = await client.post("/things", json={"amount": 1}, headers=bearer("admin"))
        me = await client.get("/whoami", headers=bearer("approver", "not-a-role", user="alice"))
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert accepted.status_code == 201
    assert me.json() == {"user": "alice", "roles": ["approver"]}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": "lots"}, 400, "validation_error"),
        ({}, 400, "validation_error"),
        ({"amount": 101}, 409, "over_limit"),
    ],
)
async def test_bad_input_is_an_rfc9457_problem_with_a_stable_code(body: dict[str, Any], status: int, code: str) -> None:
    async with AsyncTestClient(app()) as client:
        response = await client.post("/things", json=body, headers=bearer("admin"))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["instance"] == "/things"
    assert problem["type"].endswith(code)
    if code == "over_limit":
        assert problem["limit"] == 100
