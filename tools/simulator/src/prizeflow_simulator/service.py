"""The simulator as a long-running process for `make run`: publishes continuously, exposes /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable

import httpx
from prometheus_client import CollectorRegistry, Counter

from prizeflow_contracts.money import asset
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.http import create_app
from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.service import serve
from prizeflow_runtime.settings import Profile, ServiceSettings, audience_for, settings_or_exit
from prizeflow_simulator.chaos import SANDBOX_EVENTS_PATH, forged_webhook
from prizeflow_simulator.players import (
    ClaimConfig,
    ClaimStats,
    RewardsClient,
    TokenMinter,
    claim_round,
    review_holds,
    stellar_accounts,
)
from prizeflow_simulator.runner import Simulator

log = logging.getLogger("prizeflow.simulator")


class SimulatorSettings(ServiceSettings):
    """The simulator serves health and metrics only: it verifies no token (its players mint theirs)."""

    verifies_tokens = False
    service_name: str = "simulator"


def serve_simulator(build: Callable[[CollectorRegistry], Simulator], *, rate: float) -> None:
    settings = settings_or_exit(SimulatorSettings, "prizeflow-sim")
    configure_logging("simulator", level=settings.log_level, json_output=settings.log_json)
    registry = CollectorRegistry()
    sim = build(registry)
    task: asyncio.Task[object] | None = None
    side_tasks: list[asyncio.Task[object]] = []
    rewards_url = os.environ.get("REWARDS_URL")
    tokens = player_tokens(settings) if rewards_url else None
    claims = ClaimStats()
    claim_outcomes = Counter(
        "prizeflow_simulator_claims",
        "Claims submitted by simulated players, by outcome",
        ["outcome"],
        registry=registry,
    )

    async def start() -> None:
        nonlocal task
        await sim.start()
        task = asyncio.create_task(_forever(sim, rate))
        if rewards_url and tokens:
            client = RewardsClient(rewards_url, tokens)
            side_tasks.append(asyncio.create_task(_players(sim, client, claims, claim_outcomes)))
        else:
            log.warning("REWARDS_URL not set: simulated players will not claim")
        if sim.chaos.burst is not None and sim.chaos.burst_forged_webhooks > 0:
            if webhooks_url := os.environ.get("WEBHOOKS_URL"):
                side_tasks.append(asyncio.create_task(_forge_webhooks(sim, webhooks_url)))
            else:
                log.warning("WEBHOOKS_URL not set: no forged webhooks in the chaos bursts")

    async def stop() -> None:
        for t in [task, *side_tasks]:
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        await sim.stop()

    async def ready() -> None:
        if task is None or task.done():
            raise RuntimeError("the simulator is not publishing")

    app = create_app(
        service_name="simulator", registry=registry, readiness=[ready], on_startup=[start], on_shutdown=[stop]
    )
    serve(app, settings)


def player_tokens(settings: ServiceSettings) -> TokenMinter:
    """Simulated players sign with the dev identity: a local stack's only (PRIZEFLOW_PROFILE=dev, file:// JWKS)."""
    if settings.prizeflow_profile is not Profile.DEV or settings.jwt_jwks_url is None:
        raise SystemExit(
            "prizeflow-sim: simulated players mint tokens with the dev identity: "
            "PRIZEFLOW_PROFILE=dev and JWT_JWKS_URL (file://) are needed when REWARDS_URL is set"
        )
    return TokenMinter(
        DevIdentity.from_jwks_url(settings.jwt_jwks_url),
        audience=settings.jwt_audience or audience_for("rewards"),  # a shared JWT_AUDIENCE is rewards' too
        issuer=settings.issuer,
        roles_claim=settings.jwt_roles_claim,
    )


async def _players(sim: Simulator, client: RewardsClient, stats: ClaimStats, outcomes: Counter) -> None:
    """Fund the sponsor's campaign once, then every few seconds some recent players claim and ops review holds."""
    scenario = sim.scenario
    while True:
        try:
            await client.ensure_funded_campaign(scenario.campaign_id, scenario.asset, whole_units=10_000_000)
            break
        except (httpx.HTTPError, OSError) as err:
            log.info("rewards not ready to fund the campaign yet: %s", err)
            await asyncio.sleep(2)
    rng = random.Random()  # noqa: S311 - simulation
    minimum = asset(scenario.asset).unit
    config = ClaimConfig(inr_share=float(os.environ.get("SIM_INR_SHARE", "0")))  # INR players paid by UPI
    if rpc_url := os.environ.get("SOROBAN_RPC_URL"):
        for _ in range(60):  # the emulator may start after the simulator
            try:
                config = dataclasses.replace(config, stellar_accounts=await stellar_accounts(rpc_url, 10))
                break
            except (httpx.HTTPError, OSError) as err:
                log.info("Soroban RPC emulator not reachable yet: %s", err)
                await asyncio.sleep(1)
    while True:
        await asyncio.sleep(3)
        try:
            before = dict(stats.outcomes)
            players = rng.sample(list(set(sim.recent_players)), k=min(5, len(set(sim.recent_players))))
            await claim_round(
                client, rng, players, asset_code=scenario.asset, config=config, stats=stats, minimum=minimum
            )
            await review_holds(client, rng, stats, reject_rate=0.1)
            for outcome, n in stats.outcomes.items():
                if n > before.get(outcome, 0):
                    outcomes.labels(outcome).inc(n - before.get(outcome, 0))
        except (httpx.HTTPError, OSError) as err:
            log.warning("claiming failed this time: %s", err)


async def send_forged_webhook(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
    """One sandbox webhook signed with a secret nobody configured, to the ingress `client` points at."""
    body, headers = forged_webhook(rng, int(time.time()))
    return await client.post(SANDBOX_EVENTS_PATH, content=body, headers=headers)


async def _forge_webhooks(sim: Simulator, webhooks_url: str) -> None:
    """Inside each chaos burst, forged webhooks at the configured rate: the ingress refuses every one
    (`signature_mismatch`), so an alert on signature failures fires, then resolves."""
    interval = 1 / sim.chaos.burst_forged_webhooks
    rng = random.Random()  # noqa: S311 - simulation
    async with httpx.AsyncClient(base_url=webhooks_url, timeout=5) as client:
        while True:
            await asyncio.sleep(interval)
            if not sim.chaos.in_burst(sim.elapsed()):
                continue
            try:
                response = await send_forged_webhook(client, rng)
            except (httpx.HTTPError, OSError) as err:
                log.info("forged webhook not delivered: %s", err)
                continue
            sim.count_chaos("forged_webhook")
            if response.is_success:
                log.error("the webhook ingress accepted a forged webhook (%s)", response.status_code)


async def _forever(sim: Simulator, rate: float) -> None:
    while True:
        try:
            await sim.run(rate=rate)
        except Exception:
            log.exception("publishing failed; retrying in 1s")
            await asyncio.sleep(1)
