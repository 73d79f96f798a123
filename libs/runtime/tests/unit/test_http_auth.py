"""HTTP face of every service: health, metrics, problem details, bearer JWT and roles, the OpenAPI scheme."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Request, get, post
from litestar.params import JSONBody
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel

from prizeflow_runtime.auth import Principal, Role, require_roles
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.http import ProblemError, create_app

IDENTITY = DevIdentity.generate()
AUDIENCE = "prizeflow-unit"


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
        auth=IDENTITY.verifier(audience=AUDIENCE),
    )


def bearer(*roles: str, user: str = "u-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {IDENTITY.issue(user, roles, audience=AUDIENCE)}"}


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
    other = DevIdentity.generate()
    forged_token = other.issue("x", ["admin"], audience=AUDIENCE)
    another_service = IDENTITY.issue("x", ["admin"], audience="prizeflow-other")
    async with AsyncTestClient(app()) as client:
        missing = await client.get("/whoami")
        forged = await client.get("/whoami", headers={"Authorization": f"Bearer {forged_token}"})
        misdirected = await client.get("/whoami", headers={"Authorization": f"Bearer {another_service}"})
        garbage = await client.get("/whoami", headers={"Authorization": "Bearer not.a.jwt"})
    for response in (missing, forged, misdirected, garbage):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="prizeflow"'
    for response in (forged, misdirected, garbage):
        assert response.headers["www-authenticate"] == 'Bearer realm="prizeflow", error="invalid_token"'


async def test_roles_guard_refuses_with_403_and_accepts_the_role() -> None:
    async with AsyncTestClient(app()) as client:
        refused = await client.post("/things", json={"amount": 1}, headers=bearer("player", "ops"))
        accepted = await client.post("/things", json={"amount": 1}, headers=bearer("admin"))
        me = await client.get("/whoami", headers=bearer("approver", "not-a-role", user="alice"))
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert accepted.status_code == 201
    assert me.json() == {"user": "alice", "roles": ["approver"]}


@pytest.mark.parametrize("roles", [[], ["superuser"], ["Admin", "ADMIN"]])
async def test_a_token_without_a_known_role_is_403_everywhere_never_a_default_role(roles: list[str]) -> None:
    async with AsyncTestClient(app()) as client:
        unguarded = await client.get("/whoami", headers=bearer(*roles))
        guarded = await client.post("/things", json={"amount": 1}, headers=bearer(*roles))
    assert (unguarded.status_code, guarded.status_code) == (403, 403)
    assert unguarded.json()["detail"] == "the token holds no known role"


async def test_the_openapi_document_declares_bearer_jwt_for_every_operation() -> None:
    async with AsyncTestClient(app()) as client:
        schema = (await client.get("/schema/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["BearerJWT"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT from the identity provider: `Authorization: Bearer <token>`",
    }
    assert schema["security"] == [{"BearerJWT": []}]


def test_an_app_with_guarded_routes_and_no_verifier_refuses_to_be_built() -> None:
    with pytest.raises(ValueError, match="need a token verifier"):
        create_app(service_name="unit", route_handlers=[whoami], registry=CollectorRegistry())
    public_only = create_app(service_name="unit", registry=CollectorRegistry())
    assert {r.path for r in public_only.routes} >= {"/health/live", "/metrics"}


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
