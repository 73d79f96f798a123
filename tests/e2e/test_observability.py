"""Dashboards and alert rules against what the platform really exposes; metric labels that stay bounded.

This module uses the session's platform (every service its own process; tests/conftest.py), scraped live by
Debian's Prometheus with the rules of deploy/prometheus/rules loaded. Whatever earlier tests left is the baseline;
the growth check compares two snapshots of this module's own batches, between which nothing else runs. Its
traffic comes in batches:

1. coverage, the paths the panels and rules show: a claim paid on the sandbox rail, one failed by the rail
   (a provider error, a failed payout), one paid on Stellar through the signer, a Stripe top-up and a Stripe
   payout with their webhooks, a pool exhausted, a round voided by an admin, a malformed record on every
   consumed topic (one dead letter per consumer) — plus one traffic unit;
2. four more traffic units (a round with two new players, each claiming: one paid, one failed by the rail).

Each service's /metrics is read after each batch, once everything has settled. Then:
- every panel target of deploy/grafana/dashboards and every rule expression must parse in Prometheus, and
  every metric it names must have at least one series: a panel or a rule that can never show data fails;
- no label value may be an id (a uuid, long hex, a Stellar key, or any id this traffic used);
- no label may gain values with traffic: between the snapshots, one label gaining as many new values as the
  second batch had rounds grows with traffic. (A label that gains one or two values, like a retry outcome
  seen once, is bounded; the failure message lists every new series anyway.)
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from stellar_sdk import Keypair
from support import USDC, Api, GameServer, caught_up, claim_status, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_contracts.topics import GAME_ROUNDS, PAYOUT_REQUESTS, SETTLEMENT_ROUNDS, SIGNER_REQUESTS
from prizeflow_devstack.dashboards import SERVICES
from prizeflow_devstack.dashboards.catalog import PLATFORM_METRICS
from prizeflow_devstack.platform import Platform
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_soroban_emulator.client import Rpc
from prizeflow_testkit import fetch
from prizeflow_testkit.prometheus import (
    PrometheusServer,
    SeriesKey,
    Snapshot,
    check_names,
    growing_labels,
    id_labels,
    new_series,
    prometheus_server,
    scrape,
)
from prizeflow_testkit.stripe import StripeAdmin

# Campaign ids of this module (the session platform is shared with other modules).
SPRING = uid("spring-cup")
TINY = uid("tiny-cup")

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
SECOND_BATCH_UNITS = 4
USD = 100
FINAL = {"paid", "rejected", "voided", "returned"}
# What Grafana substitutes in a target before Prometheus sees it.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
PLATFORM_ENV = {
    "CONSUMER_RETRY_MAX_ATTEMPTS": "3",
    "PAYOUTS_WORKER_INTERVAL_MS": "100",
    "ROUNDS_GAUGE_INTERVAL_S": "1",  # the gauges read from the databases follow the traffic within a second
    "REWARDS_METRICS_REFRESH_S": "1",
    "SOROBAN_EMULATOR_LEDGER_MS": "250",
}


@dataclass
class Traffic:
    """The ids one batch used: none of them may show up in a label value."""

    ids: set[str] = field(default_factory=set)
    payouts: int = 0

    def used(self, *ids: str) -> None:
        self.ids.update(i for i in ids if i)


@dataclass
class Observed:
    prometheus: PrometheusServer
    names: set[str]
    first: Snapshot
    second: Snapshot
    traffic: Traffic


# -- the platform, its Prometheus and the traffic -----------------------------------------------------------------


async def claim(api: Api, player: str, amount: int, destination: dict[str, str], *, cid: str, asset: str) -> str:
    """A claim, released by ops when it is held (a destination never used before always is)."""
    doc = await api.ok(
        "POST",
        "rewards",
        "/claims/",
        user=player,
        roles=["player"],
        json={"asset": asset, "amount": amount, "destination": destination},
        headers={"X-Correlation-Id": cid},
    )
    if doc["status"] == "held":
        await api.ok("POST", "rewards", f"/holds/{doc['claim_id']}/release", user="ops-1", roles=["ops"], json={})
    return str(doc["claim_id"])


async def settled(api: Api, player: str, claim_id: str, expected: str, t: Traffic) -> None:
    """The claim reached `expected` (a final state); its payout's ids are remembered."""
    status = await wait_for(lambda: claim_status(api, player, claim_id), lambda s: s in FINAL, timeout=120)
    assert status == expected, f"claim {claim_id} of {player}: {status}, expected {expected}"
    page = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
    for payout in page["items"]:
        t.used(str(payout["id"]), str(payout.get("tx_hash") or ""), str(payout.get("idempotency_key") or ""))
        t.payouts += 1


async def won(api: Api, player: str, amount: int, asset: str = "USDC") -> None:
    async def available() -> int:
        return await api.available(player, asset)

    await wait_for(available, lambda v: v == amount)


async def traffic_unit(api: Api, game: GameServer, t: Traffic) -> None:
    """A round with two new players (top3: 50 % and 30 % of 20 USDC); one is paid, the rail fails the other's
    payout (invalid destination: a provider error, terminal)."""
    round_id, winner, second = uid("round"), uid("p"), uid("p")
    t.used(round_id, winner, second)
    await game.sponsored_round(round_id, [winner, second], campaign_id=SPRING, prize=20 * USDC)
    await won(api, winner, 10 * USDC)
    await won(api, second, 6 * USDC)
    paid = await claim(
        api, winner, 5 * USDC, {"type": "sandbox", "address": f"success:{winner}"}, cid=round_id, asset="USDC"
    )
    failed = await claim(
        api,
        second,
        5 * USDC,
        {"type": "sandbox", "address": f"fail_invalid_destination:{second}"},
        cid=round_id,
        asset="USDC",
    )
    t.used(paid, failed)
    await settled(api, winner, paid, "paid", t)
    await settled(api, second, failed, "voided", t)  # the rail answered failed: the reservation is voided


async def stellar_payout(platform: Platform, api: Api, game: GameServer, t: Traffic) -> None:
    """A claim paid on Stellar: payouts asks the signer, the Soroban RPC emulator lands it."""
    rpc = Rpc(platform.url("soroban-rpc"))
    account = Keypair.random().public_key
    rpc.admin.create_account(account, balances={"XLM": "1", "USDC": "0"})
    round_id, player = uid("round"), uid("p")
    t.used(round_id, player, account)
    await game.sponsored_round(
        round_id,
        [player, uid("p")],
        campaign_id=SPRING,
        prize=7 * USDC,
        template=DistributionTemplate.WINNER_TAKES_ALL,
    )
    await won(api, player, 7 * USDC)
    claim_id = await claim(
        api, player, 7 * USDC, {"type": "stellar_account", "address": account}, cid=round_id, asset="USDC"
    )
    t.used(claim_id)
    await settled(api, player, claim_id, "paid", t)


async def stripe_top_up_and_payout(platform: Platform, api: Api, t: Traffic) -> None:
    """A Stripe Checkout top-up and a Stripe payout, both confirmed by webhooks through the ingress."""
    player, flow = uid("p"), uid("flow")
    async with StripeAdmin(platform.url("stripe-api")) as stripe:
        account = str((await stripe.create_account())["id"])
        session = await api.ok(
            "POST",
            "rewards",
            f"/wallets/{player}/top-up-sessions",
            user=player,
            roles=["player"],
            json={"asset": "USD", "amount": 20 * USD},
            headers={"Idempotency-Key": uid("k"), "X-Correlation-Id": flow},
        )
        t.used(player, flow, account, str(session["session_ref"]))
        await stripe.complete_session(session["session_ref"], "paid")
        await won(api, player, 20 * USD, "USD")
        claim_id = await claim(
            api, player, 10 * USD, {"type": "stripe_account", "address": account}, cid=flow, asset="USD"
        )
        t.used(claim_id)
        await settled(api, player, claim_id, "paid", t)


async def pool_exhausted(platform: Platform, api: Api, game: GameServer, t: Traffic) -> None:
    """A round whose prize its pool cannot pay: held until a top-up (it stays held here)."""
    round_id = uid("round")
    players = [uid("p"), uid("p")]
    t.used(round_id, *players)
    await game.sponsored_round(round_id, players, campaign_id=TINY, prize=50 * USDC)
    db = platform.procs["rewards"].database_url or ""

    async def held() -> int:
        rows = await fetch(db, "SELECT count(*) AS n FROM held_allocations WHERE round_id = $1", round_id)
        return int(rows[0]["n"])

    await wait_for(held, lambda n: n == 1)


async def admin_void(api: Api, game: GameServer, t: Traffic) -> None:
    """An admin voids an open round (audited)."""
    round_id = uid("round")
    players = [uid("p"), uid("p")]
    t.used(round_id, *players)
    await game.sponsored_round(round_id, players, campaign_id=SPRING, prize=10 * USDC, close=False, results=False)

    async def known() -> int:
        response = await api.call("GET", "settlement", f"/rounds/{round_id}", user="admin-1", roles=["admin"])
        return response.status_code

    await wait_for(known, lambda status: status == 200)
    await api.ok(
        "POST",
        "settlement",
        f"/rounds/{round_id}/void",
        user="admin-1",
        roles=["admin"],
        json={"reason": "server lost"},
    )


async def dead_letters(platform: Platform, kafka_bootstrap: str) -> None:
    """A malformed record on every topic a consumer reads: each consuming service dead-letters one."""
    consumers = {
        "settlement": GAME_ROUNDS,
        "rewards": SETTLEMENT_ROUNDS,
        "payouts": PAYOUT_REQUESTS,
        "signer": SIGNER_REQUESTS,
    }
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        for topic in consumers.values():
            await producer.send_and_wait(topic.name + platform.suffix, b'{"not": "an event"', key=b"observability")
    finally:
        await producer.stop()
    for service in consumers:
        db = platform.procs[service].database_url or ""

        async def count(db: str = db) -> int:
            rows = await fetch(db, "SELECT count(*) AS n FROM dead_letters WHERE key = $1", b"observability")
            return int(rows[0]["n"])

        await wait_for(count, lambda n: n == 1)


async def funded(api: Api, campaign: str, amount: int) -> None:
    await api.ok(
        "POST",
        "rewards",
        "/campaigns/",
        user="sponsor",
        roles=["admin"],
        json={"campaign_id": campaign, "name": campaign, "asset": "USDC"},
    )
    await api.fund(campaign, amount, reference=f"{campaign}-initial")


def metrics_urls(platform: Platform) -> dict[str, str]:
    return {service: platform.url(service) + "/metrics" for service in SERVICES}


async def settled_snapshot(platform: Platform) -> Snapshot:
    """One snapshot of every service's /metrics once the batch has settled: every consumer caught up, every
    outbox empty, and the payouts-by-state gauge (refreshed from the database every few seconds) equal to the
    database's own counts."""
    await caught_up(platform)
    db = platform.procs["payouts"].database_url or ""

    async def gauge_and_table() -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
        snap = await scrape({"payouts": platform.url("payouts") + "/metrics"})
        gauge = {
            (dict(key)["state"], dict(key)["provider"]): value
            for key, value in snap.values.get("prizeflow_payouts_payouts", {}).items()
        }
        rows = await fetch(db, "SELECT state, provider_name, count(*) AS n FROM payouts GROUP BY 1, 2")
        return gauge, {(r["state"], r["provider_name"]): float(r["n"]) for r in rows}

    await wait_for(gauge_and_table, lambda both: both[0] == both[1], timeout=30)

    # The pool gauges are refreshed from rewards' database every few seconds: a campaign an earlier module (or
    # this batch) created gets its series at the next refresh, which must not count as growth between snapshots.
    rewards_db = platform.procs["rewards"].database_url or ""

    async def campaigns_exported() -> tuple[set[str], set[str], set[str]]:
        snap = await scrape({"rewards": platform.url("rewards") + "/metrics"})
        funded = {dict(k)["campaign_id"] for k in snap.values.get("prizeflow_rewards_pool_funded", {})}
        paid = {dict(k)["campaign_id"] for k in snap.values.get("prizeflow_rewards_pool_paid", {})}
        return funded, paid, {r["id"] for r in await fetch(rewards_db, "SELECT id FROM campaigns")}

    await wait_for(campaigns_exported, lambda sets: sets[0] == sets[1] == sets[2], timeout=30)
    return await scrape(metrics_urls(platform))


@pytest.fixture(scope="module")
async def observed(
    platform: Platform, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Observed]:
    jobs = {service: [f"127.0.0.1:{platform.procs[service].port}"] for service in SERVICES}
    async with prometheus_server(tmp_path_factory.mktemp("prometheus"), jobs, rule_files=RULES) as prometheus:
        api = Api(platform)
        game = GameServer(kafka_bootstrap, platform.suffix)
        await game.start()
        try:
            t = Traffic()
            await funded(api, SPRING, 10_000 * USDC)
            await funded(api, TINY, 1 * USDC)
            await asyncio.gather(
                traffic_unit(api, game, t),
                stellar_payout(platform, api, game, t),
                stripe_top_up_and_payout(platform, api, t),
                pool_exhausted(platform, api, game, t),
                admin_void(api, game, t),
                dead_letters(platform, kafka_bootstrap),
            )
            first = await settled_snapshot(platform)
            await asyncio.gather(*(traffic_unit(api, game, t) for _ in range(SECOND_BATCH_UNITS)))
            second = await settled_snapshot(platform)
            at = time.time()
            await prometheus.wait_scraped_after(at, SERVICES)
            if RULES:
                await prometheus.wait_rules_evaluated_after(at)
            yield Observed(prometheus, await prometheus.metric_names(), first, second, t)
        finally:
            await game.stop()
            await api.close()


# -- the checks ---------------------------------------------------------------------------------------------------


def grafana_substituted(expr: str) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in GRAFANA_VARIABLES:
            raise AssertionError(f"unknown template variable ${name} in {expr!r}: add it to GRAFANA_VARIABLES")
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def panel_targets() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        doc = json.loads(path.read_text())
        out += [
            (f"dashboard {doc['uid']}, panel {panel['title']!r} ({target['refId']})", target["expr"])
            for panel in doc["panels"]
            for target in panel.get("targets", [])
        ]
    return out


def rule_expressions() -> list[tuple[str, str]]:
    out = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                out.append((f"{path.name}, group {group['name']}, rule {name}", str(rule["expr"])))
    return out


async def problems(observed: Observed, expressions: list[tuple[str, str]]) -> list[str]:
    found = []
    for where, expr in expressions:
        answer = await observed.prometheus.query(expr)
        if answer["status"] != "success":
            found.append(f"{where}: does not parse: {answer.get('error')}\n    {expr}")
            continue
        if any(name in expr for name in PLATFORM_METRICS):
            # The platform's own series on Kubernetes (the brokers' through Strimzi's JMX rules, CloudNativePG's and
            # its backup plugin's, the kubelet's volumes): the devstack has none of those exporters, so only the
            # parse is checked here; tests/deploy checks the rules, their sources and the dashboards.
            continue
        missing = check_names(expr, observed.names)
        if not missing:
            found.append(f"{where}: no series for {', '.join(missing.missing)}\n    {expr}")
    return found


async def test_every_dashboard_panel_parses_and_reads_metrics_that_exist(observed: Observed) -> None:
    targets = [(where, grafana_substituted(expr)) for where, expr in panel_targets()]
    assert len(targets) > 50, "the dashboards were not read"
    found = await problems(observed, targets)
    assert not found, "panels that can never show data:\n" + "\n".join(found)


async def test_every_rule_expression_parses_and_reads_metrics_that_exist(observed: Observed) -> None:
    rules = rule_expressions()
    assert rules, "no rules were read from deploy/prometheus/rules"
    found = await problems(observed, rules)
    assert not found, "rules that can never fire or record:\n" + "\n".join(found)


async def test_every_service_is_scraped_and_the_campaign_gauge_counts_the_campaigns(
    observed: Observed, platform: Platform
) -> None:
    for service in SERVICES:
        mine = {n for n, s in observed.second.source.items() if s == service}
        assert f"prizeflow_{service}_outbox_pending" in mine, service
    assert observed.second.values["prizeflow_rewards_campaigns"]  # in the snapshot the other checks read

    async def gauge_and_table() -> tuple[dict[SeriesKey, float], dict[SeriesKey, float]]:
        # The gauge is refreshed from the database every few seconds; earlier modules created campaigns too.
        gauge = (await scrape({"rewards": platform.url("rewards") + "/metrics"})).values["prizeflow_rewards_campaigns"]
        rows = await fetch(
            platform.procs["rewards"].database_url or "", "SELECT status, count(*) AS n FROM campaigns GROUP BY 1"
        )
        table = {"active": 0.0, "paused": 0.0, "closed": 0.0} | {r["status"]: float(r["n"]) for r in rows}
        return gauge, {(("status", status),): n for status, n in table.items()}

    gauge, table = await wait_for(gauge_and_table, lambda both: both[0] == both[1], timeout=30)
    assert gauge == table
    assert table[(("status", "active"),)] >= 2  # this module's two, at least


def test_no_label_value_is_an_id(observed: Observed) -> None:
    ids = {i for i in observed.traffic.ids if len(i) >= 6}
    assert len(ids) > 30, "the traffic's ids were not collected"
    found = sorted(set(id_labels(observed.first, ids) + id_labels(observed.second, ids)))
    assert not found, "labels carrying ids (unbounded cardinality):\n" + "\n".join(found)


def test_no_label_grows_with_traffic(observed: Observed) -> None:
    assert observed.traffic.payouts >= SECOND_BATCH_UNITS * 2, "the second batch did not run"
    growing = growing_labels(observed.first, observed.second, new_entities=SECOND_BATCH_UNITS)
    assert not growing, (
        f"labels whose values grow with traffic ({SECOND_BATCH_UNITS} more rounds, {2 * SECOND_BATCH_UNITS} "
        "more players and payouts):\n"
        + "\n".join(growing)
        + "\nevery new series:\n"
        + "\n".join(new_series(observed.first, observed.second))
    )
