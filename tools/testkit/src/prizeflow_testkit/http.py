"""In-process apps under test: wait for readiness, list public routes, probe every route without a token."""

from __future__ import annotations

import re
from typing import Any

from prizeflow_testkit.waits import eventually


async def wait_ready(client: Any, *, timeout: float = 60.0) -> None:
    """Wait until an in-process app (a Litestar test client) answers /health/ready with 200: a service comes up
    in the background once its lifespan started."""

    async def probe() -> tuple[int, Any]:
        response = await client.get("/health/ready")
        return response.status_code, response.json()

    await eventually(probe, lambda r: r[0] == 200, timeout=timeout, interval=0.05)


def public_routes(app: Any) -> set[str]:
    """Paths an app serves without a token (its OpenAPI documents collapsed to `/schema`)."""
    out: set[str] = set()
    for route in app.routes:
        if any(getattr(h, "opt", {}).get("exclude_from_auth") for h in getattr(route, "route_handlers", ())):
            out.add("/schema" if route.path.startswith("/schema") else route.path)
    return out


_PATH_PARAM = re.compile(r"\{(\w+):(\w+)\}")
_SAMPLE = {"int": "1", "uuid": "00000000-0000-4000-8000-000000000001"}


async def unauthenticated_answers(app: Any) -> dict[str, int]:
    """What every non-public route of `app` answers a request without a token, by `METHOD path` (from the
    app's own route table, so a route added tomorrow is covered without touching the test). The app's
    lifespan is not run: nothing behind the routes needs to exist for the auth layer to answer."""
    import httpx

    public = public_routes(app)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service.test")
    answers: dict[str, int] = {}
    try:
        for route in app.routes:
            path = "/schema" if route.path.startswith("/schema") else route.path
            if path in public or not hasattr(route, "route_handlers"):
                continue
            concrete = _PATH_PARAM.sub(lambda m: _SAMPLE.get(m.group(2), "metrics"), route.path)
            for method in sorted(set(getattr(route, "methods", ())) - {"OPTIONS", "HEAD"}):
                response = await client.request(
                    method, concrete, json={} if method in {"POST", "PUT", "PATCH"} else None
                )
                answers[f"{method} {route.path}"] = response.status_code
    finally:
        await client.aclose()
    return answers


__all__ = ["public_routes", "unauthenticated_answers", "wait_ready"]
