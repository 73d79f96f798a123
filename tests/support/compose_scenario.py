"""The smoke scenario of docker-compose.yml, one for every engine that runs the file (podman-compose in
tests/containers/test_compose_smoke.py, Docker Compose in tests/containers/test_compose_docker.py).

A game server publishes a sponsored round to the stack's Kafka; the allocation is read back from the rewards API,
the winner claims to a sandbox destination, ops release the new-destination hold, an approver approves, and the
payout is paid on the sandbox; the payout and the events on the topics are read back. Prometheus, with the
project's rule files, reaches every service's /metrics (the signer's over the signer-metrics network, the only
other network the signer is on)."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from support import USDC, Api, GameServer, gather_events, uid, wait_for

from prizeflow_contracts.topics import PAYOUT_EVENTS, REWARDS_EVENTS, SETTLEMENT_ROUNDS
from prizeflow_devstack.compose import secrets_dir
from prizeflow_runtime.dev_identity import DevIdentity


class Stack(Protocol):
    """What the scenario needs of a running compose project: its published URLs and its Kafka, and its one-shot
    jobs' exit codes."""

    def url(self, service: str) -> str: ...

    @property
    def kafka_bootstrap(self) -> str: ...

    def jobs(self) -> list[str]: ...

    def exit_code(self, service: str) -> int | None: ...


@dataclass
class StackView:
    """What `support.Api` needs of a platform: service URLs and the identity whose tokens the services accept."""

    stack: Stack
    identity: DevIdentity

    def url(self, service: str) -> str:
        return self.stack.url(service)


async def a_sponsored_round_is_paid(stack: Stack, root: Path) -> float:
    """Round → allocation → claim → hold released → approved → paid, on `stack`; returns its duration in seconds."""
    for job in stack.jobs():  # topics and every service's migrations ran to completion before the services
        assert stack.exit_code(job) == 0, job
    jwks = (secrets_dir(root) / "identity" / "jwks.json").resolve()
    view = StackView(stack, DevIdentity.from_jwks_url(jwks.as_uri()))
    api = Api(view)  # type: ignore[arg-type]  # duck-typed: identity + url()
    game = GameServer(stack.kafka_bootstrap, "")
    await game.start()
    started = time.monotonic()
    try:
        campaign, round_id = uid("camp"), uid("round")
        winner, second, third = uid("p"), uid("p"), uid("p")
        await api.funded_campaign(campaign, 1_000 * USDC)
        await game.sponsored_round(round_id, [winner, second, third], campaign_id=campaign, prize=400 * USDC)
        assert await wait_for(lambda: api.available(winner), lambda v: v == 200 * USDC, timeout=120) == 200 * USDC
        assert await api.available(second) == 120 * USDC

        destination = {"type": "sandbox", "address": f"success:{winner}"}
        claim = await api.ok(
            "POST", "rewards", "/claims/", user=winner, roles=["player"],
            json={"asset": "USDC", "amount": 150 * USDC, "destination": destination},
            headers={"X-Correlation-Id": round_id},
        )  # fmt: skip
        assert claim["hold_code"] == "new_destination"
        await api.ok("POST", "rewards", f"/holds/{claim['claim_id']}/release", user="ops-1", roles=["ops"], json={})

        async def payout() -> dict[str, Any] | None:
            doc = await api.ok("GET", "payouts", f"/payouts/?player_id={winner}", user="ops-1", roles=["ops"])
            return doc["items"][0] if doc["items"] else None

        pending = await wait_for(payout, lambda p: p is not None and p["state"] == "pending_approval", timeout=120)
        assert pending is not None
        await api.ok(
            "POST", "payouts", f"/payouts/{pending['id']}/approve", user="approver-1", roles=["approver"],
            json={"reason": "compose smoke"},
        )  # fmt: skip
        paid = await wait_for(payout, lambda p: p is not None and p["state"] == "paid", timeout=120)
        assert paid is not None
        assert paid["amount"] == 150 * USDC
        await wait_for(lambda: api.available(winner), lambda v: v == 50 * USDC, timeout=60)

        # The same story on the topics, under the round's correlation id.
        topics = [t.name for t in (SETTLEMENT_ROUNDS, REWARDS_EVENTS, PAYOUT_EVENTS)]

        async def chain() -> set[str]:
            events = await gather_events(stack.kafka_bootstrap, topics)
            return {e.data.EVENT_NAME for e in events if e.correlationid == round_id}

        expected = {"RoundSettled", "RewardAllocated", "PayoutPaid"}
        assert expected <= await wait_for(chain, lambda names: expected <= names, timeout=60)
        return time.monotonic() - started
    finally:
        await game.stop()
        await api.close()


def prometheus_scrapes_every_service(stack: Stack) -> None:
    """Every service's target is up in Prometheus' own view (it scrapes every 5 s: polled for up to 90 s), and the
    rules from deploy/prometheus/rules are loaded."""
    deadline = time.monotonic() + 90
    expected = {"settlement", "rewards", "payouts", "webhooks", "signer"}
    while True:
        url = f"{stack.url('prometheus')}/api/v1/targets?state=active"
        with urllib.request.urlopen(url, timeout=5) as response:
            targets = json.load(response)["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        if expected <= {k for k, v in health.items() if v == "up"} or time.monotonic() > deadline:
            break
        time.sleep(2)  # polling Prometheus' own view of its targets
    assert {k: v for k, v in health.items() if k in expected} == dict.fromkeys(expected, "up")
    with urllib.request.urlopen(f"{stack.url('prometheus')}/api/v1/rules", timeout=5) as response:
        groups = json.load(response)["data"]["groups"]
    assert groups, "Prometheus loaded no rule group from deploy/prometheus/rules"
