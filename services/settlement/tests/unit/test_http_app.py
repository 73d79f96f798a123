"""The app builds from settings without touching the network, and its OpenAPI document lists the admin API."""

from __future__ import annotations

from prizeflow_settlement.bootstrap import build
from prizeflow_settlement.settings import SettlementSettings


async def test_app_builds_and_documents_the_admin_api() -> None:
    app = build(SettlementSettings(kafka_bootstrap_servers="127.0.0.1:1", database_url="postgresql://x@127.0.0.1:1/x"))
    paths = app.openapi_schema.paths or {}
    assert {"/rounds", "/rounds/{round_id}", "/rounds/{round_id}/resolve", "/rounds/{round_id}/void"} <= set(paths)
    params = {p.name for p in (paths["/rounds"].get.parameters or [])}  # type: ignore[union-attr]
    assert {"state", "competition_id", "disputed", "cursor", "limit"} <= params
