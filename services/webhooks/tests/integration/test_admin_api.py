"""The operators' API of a running ingress: who may read, what a delivery shows, an audited re-publish."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_testkit import eventually
from prizeflow_testkit.webhooks import WebhooksProcess, sandbox_payout_event

from .conftest import counts, published, token

pytestmark = pytest.mark.integration

OPS = {"Authorization": f"Bearer {token('ops-1', 'ops')}"}
PLAYER = {"Authorization": f"Bearer {token('p-1', 'player')}"}


async def test_operators_list_read_and_republish_deliveries_audited(
    webhooks: Callable[..., WebhooksProcess], db_url: str, kafka_bootstrap: str, topics: str
) -> None:
    svc = webhooks()
    svc.start()
    doc = sandbox_payout_event("sbx-1", provider_ref="r-1", correlation_id="c-flow-1")
    _, accepted = await svc.post("sandbox", doc)
    await svc.post("sandbox", {"event_id": "sbx-2", "kind": "ping"})
    async with httpx.AsyncClient(base_url=svc.base, timeout=10) as http:
        assert (await http.get("/admin/deliveries")).status_code == 401
        assert (await http.get("/admin/deliveries", headers=PLAYER)).status_code == 403

        page = (await http.get("/admin/deliveries", params={"limit": 1}, headers=OPS)).json()
        [newest] = page["items"]
        assert newest["provider_event_id"] == "sbx-2"
        assert newest["outcome"] == "ignored"
        assert "body" not in newest
        rest = (await http.get("/admin/deliveries", params={"cursor": page["next_cursor"]}, headers=OPS)).json()
        [first] = rest["items"]
        assert rest["next_cursor"] is None
        assert first["published_event_id"] == accepted["event_id"]
        published_only = (await http.get("/admin/deliveries", params={"outcome": "published"}, headers=OPS)).json()
        assert [d["provider_event_id"] for d in published_only["items"]] == ["sbx-1"]
        bad = await http.get("/admin/deliveries", params={"cursor": "x"}, headers=OPS)
        assert bad.status_code == 400

        one = (await http.get(f"/admin/deliveries/{first['id']}", headers=OPS)).json()
        assert one["body"] == svc_body(doc)
        assert one["event_json"] is not None
        assert (await http.get("/admin/deliveries/999999", headers=OPS)).status_code == 404

        refused = await http.post(f"/admin/deliveries/{newest['id']}/republish", json={"reason": "x"}, headers=OPS)
        assert refused.status_code == 409
        assert (await http.post(f"/admin/deliveries/{first['id']}/republish", json={}, headers=OPS)).status_code == 400
        done = await http.post(
            f"/admin/deliveries/{first['id']}/republish", json={"reason": "payouts restored its topic"}, headers=OPS
        )
        assert done.status_code == 200
        again = done.json()
        assert again["republished"] == 1
        assert again["event_id"] != accepted["event_id"]

        # The flow's timeline: the delivery, its re-publication and the audited action, in order.
        flow = await eventually(lambda: timeline(http, "c-flow-1"), lambda f: len(f["entries"]) >= 3, timeout=10)
        assert (flow["correlation_id"], flow["service"]) == ("c-flow-1", "webhooks")
        assert [(e["kind"], e["type"], e["subject"]) for e in flow["entries"]] == [
            ("delivery", "payout.paid", "r-1"),
            ("audit", "delivery.republish", str(first["id"])),
            ("delivery", "delivery.republish", "r-1"),
        ]
        assert "published as ProviderEventReceived" in flow["entries"][0]["summary"]
        assert "payouts restored its topic" not in str(flow)
        assert (await http.get("/admin/timeline/c-flow-1", headers=PLAYER)).status_code == 403

    await eventually(lambda: counts(db_url), lambda c: c[1] == 0, timeout=30)
    events = await published(kafka_bootstrap, topics, ProviderEventReceived.event_type())
    assert [str(e.id) for e in events] == [accepted["event_id"], again["event_id"]]
    assert events[0].data == events[1].data  # the same fact: consumers dedup it on the provider event id
    assert events[1].correlationid == "c-flow-1"
    [audit] = await published(kafka_bootstrap, topics, audit=True)
    assert isinstance(audit.data, AdminActionRecorded)
    assert audit.data.action == "delivery.republish"
    assert audit.data.actor_user_id == "ops-1"
    assert audit.data.reason == "payouts restored its topic"
    assert audit.correlationid == "c-flow-1"


async def timeline(http: httpx.AsyncClient, correlation_id: str) -> dict[str, Any]:
    r = await http.get(f"/admin/timeline/{correlation_id}", headers=OPS)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def svc_body(doc: dict[str, object]) -> str:
    import json

    return json.dumps(doc)
