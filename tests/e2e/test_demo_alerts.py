"""`make run`'s alerting, on the e2e platform: the devstack's Prometheus scrapes every service under its name with
the project's rules loaded, and the simulator's chaos makes the alerts' inputs move: a burst of malformed game
records fires PrizeflowEventsDeadLettered for settlement; forged webhooks are counted as signature failures."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from prizeflow_devstack.paths import Paths, find_root
from prizeflow_devstack.platform import Platform
from prizeflow_devstack.prometheus import RULES_DIR, api, fetch_alerts, start_prometheus, stop_prometheus
from prizeflow_devstack.state import State
from prizeflow_simulator.chaos import Burst, ChaosConfig
from prizeflow_simulator.runner import Simulator
from prizeflow_simulator.scenarios import ScenarioConfig
from prizeflow_simulator.service import send_forged_webhook
from prizeflow_testkit import eventually

pytestmark = pytest.mark.e2e

SCRAPE_S = 1.0


@pytest.fixture(scope="module")
def prometheus(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The devstack's Prometheus (its own directory), over every process of the platform that serves /metrics."""
    paths = Paths(tmp_path_factory.mktemp("prometheus-root"))
    state = State()
    targets = {
        name: f"127.0.0.1:{proc.port}" for name, proc in platform.procs.items() if proc.spec.metrics and proc.port
    }
    try:
        yield start_prometheus(paths, state, targets, rules=find_root() / RULES_DIR, interval_s=SCRAPE_S)
    finally:
        stop_prometheus(paths, state)


def _rule_names() -> set[str]:
    names: set[str] = set()
    for path in (find_root() / RULES_DIR).glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(rule.get("alert") or rule["record"] for rule in group["rules"])
    return names


async def _api(address: str, path: str) -> Any:
    return await asyncio.to_thread(api, address, path)


async def _targets(address: str) -> dict[str, str]:
    active = (await _api(address, "/api/v1/targets"))["data"]["activeTargets"]
    return {t["labels"]["job"]: t["health"] for t in active}


async def _rules(address: str) -> set[str]:
    return {r["name"] for g in (await _api(address, "/api/v1/rules"))["data"]["groups"] for r in g["rules"]}


async def test_every_service_is_scraped_under_its_name_with_the_project_rules_loaded(
    platform: Platform, prometheus: str
) -> None:
    scraped = {name for name, proc in platform.procs.items() if proc.spec.metrics}
    assert {"settlement", "rewards", "payouts", "signer", "webhooks"} <= scraped
    await eventually(lambda: _targets(prometheus), lambda t: t == dict.fromkeys(scraped, "up"), timeout=30)
    await eventually(lambda: _rules(prometheus), lambda names: names == _rule_names(), timeout=30)


async def _firing(address: str) -> list[dict[str, str]]:
    return [dict(a.labels) for a in await asyncio.to_thread(fetch_alerts, address) if a.state == "firing"]


async def test_a_burst_of_malformed_game_records_fires_the_dead_letter_alert_for_settlement(
    platform: Platform, prometheus: str, kafka_bootstrap: str
) -> None:
    sim = Simulator(
        bootstrap=kafka_bootstrap,
        topic_suffix=platform.suffix,
        # voided free rounds: nothing for the other tests' ledgers, one malformed record with each
        scenario=ScenarioConfig(void_rate=1.0, entry_fee_units=(0, 0)),
        chaos=ChaosConfig(burst=Burst(duration_s=600, period_s=3600), burst_malformed_rate=1.0),
        seed=18,
    )
    await sim.start()
    try:
        await sim.run(rate=0, rounds=12)
    finally:
        await sim.stop()
    assert sim.stats.chaos["malformed"] == 12

    firing = await eventually(
        lambda: _firing(prometheus),
        lambda alerts: any(
            a["alertname"] == "PrizeflowEventsDeadLettered" and a.get("job") == "settlement" for a in alerts
        ),
        timeout=45,
        interval=0.5,
    )
    dlq = [a for a in firing if a["alertname"] == "PrizeflowEventsDeadLettered" and a.get("job") == "settlement"]
    assert {a["topic"] for a in dlq} == {f"prizeflow.game.rounds.v1{platform.suffix}"}


async def _signature_failures(address: str) -> float:
    query = 'sum(increase(prizeflow_webhooks_refused_total{provider="sandbox",reason="signature_mismatch"}[1m]))'
    result = (await _api(address, f"/api/v1/query?query={quote(query)}"))["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


async def test_forged_webhooks_are_refused_and_counted_as_signature_failures(
    platform: Platform, prometheus: str
) -> None:
    rng = random.Random(18)
    async with httpx.AsyncClient(base_url=platform.url("webhooks"), timeout=10) as client:
        for _ in range(5):
            response = await send_forged_webhook(client, rng)
            assert response.status_code == 400
            assert response.json()["code"] == "signature_mismatch"
    await eventually(lambda: _signature_failures(prometheus), lambda n: n > 0, timeout=30, interval=0.5)
