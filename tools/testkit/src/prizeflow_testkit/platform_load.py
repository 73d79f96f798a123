"""Load on a whole `Platform` (every service its own process), as the end-to-end bench and the soak drive it.

Rounds go through the game topic into settlement (opened, eight entries, closed, results), which pays their
prize pool through rewards into the players' wallets: eight allocations a round. Payouts are either requested
straight on the payout-requests topic (`payout_request`: the bench, payouts alone; rewards knows no such claim and
dead-letters their outcomes) or claimed by players through rewards' API (`Claimant`, one claim at a time as the
soak sends them; `ClaimLoad`, an open loop at a fixed rate as the bench offers them: the whole flow, a claim
reserving the player's money, its payout settling it); both small, auto-approved, paid by the sandbox provider.
`activate_policy` puts a risk policy in force (two admins), so that both gates evaluate it (`BENCH_POLICY`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
from aiokafka import AIOKafkaProducer

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.game import (
    Distribution,
    DistributionTemplate,
    EntryRecorded,
    PaidVia,
    Placement,
    PrizeSource,
    PrizeSpec,
    RoundClosed,
    RoundOpened,
    RoundResultsReported,
)
from prizeflow_contracts.events.payouts import PayoutRequested
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_devstack.platform import Platform
from prizeflow_runtime.settings import audience_for
from prizeflow_testkit.bench import OpenLoop, count, open_loop

USDC = 10_000_000  # minor units of one USDC
PLAYERS_PER_ROUND = 8  # allocations per round: every player of a TOP10 round is paid
PRIZE_PER_ROUND = 80 * USDC
PAYOUT_AMOUNT = 5 * USDC  # under every auto-approval threshold: no one has to approve it

CLAIM_AMOUNT = USDC  # the smallest claim rewards takes; every rank of a round is paid more
CLAIM_ATTEMPTS = 3

# What the platform runs with under load: consumers and relay in large batches, quiet logs.
LOAD_ENV = {"CONSUMER_BATCH_SIZE": "1000", "OUTBOX_BATCH_SIZE": "2000", "LOG_LEVEL": "WARNING"}
# Rewards' risk rules would hold a load's claims for a person (a player claiming more than 5 times an hour, to a
# destination first used today, over a daily limit): lifted, so that every claim is approved and paid.
CLAIMS_ENV = {
    "REWARDS_VELOCITY_MAX_CLAIMS": "1000000000",
    "REWARDS_NEW_DESTINATION_COOLDOWN_S": "0",
    "REWARDS_DAILY_CLAIM_LIMIT": '{"USDC": 1000000000000000000}',
}
DAY_S = 86_400
# The risk policy the bench puts in force, so that the compliance gate is on as in production: rewards evaluates it
# before a claim reserves money, payouts at request and again at send. Every rule kind that reads history is there
# (sums over a day and a month, a count over an hour: the per-player window facts and their locks), with limits a
# bench player stays under (a hold would wait for a person: never paid within the phase); allowed rails is decided
# by payouts alone. Left out, as rewards' own rules are lifted (CLAIMS_ENV): a new destination's cooldown (every
# bench player's first claim is to a new destination) and countries (they need a verified identity).
BENCH_POLICY: list[dict[str, Any]] = [
    {
        "scope": {"asset": "USDC"},
        "kyc_above": {"amount": 1_000_000 * USDC, "window_s": 30 * DAY_S},
        "player_limit": {"amount": 100_000 * USDC, "window_s": DAY_S},
        "destination_limit": {"amount": 100_000 * USDC, "window_s": DAY_S},
        "velocity": {"count": 1_000_000, "window_s": 3600},
    },
    {"scope": {"asset": "USDC", "destination_type": "sandbox"}, "allowed_rails": ["sandbox"]},
]


def round_events(
    round_id: str, campaign: str, players: Sequence[str], *, prize: int = PRIZE_PER_ROUND
) -> tuple[list[Any], RoundResultsReported]:
    """A sponsored TOP10 round of `players`, paid from `campaign`: the events up to its close, and its results."""
    now = datetime.now(UTC)
    setup: list[Any] = [
        RoundOpened(
            round_id=round_id,
            competition_id="bench",
            game_id="bench",
            opened_at=now,
            prize=PrizeSpec(asset="USDC", amount=prize, campaign_id=campaign),
            prize_source=PrizeSource.SPONSORED,
            distribution=Distribution(template=DistributionTemplate.TOP10),
        ),
        *[
            EntryRecorded(
                round_id=round_id,
                entry_id=f"{round_id}-{i}",
                player_id=p,
                fee=Money(asset="USDC", amount=0),
                paid_via=PaidVia.EXTERNAL,
                recorded_at=now,
            )
            for i, p in enumerate(players)
        ],
        RoundClosed(round_id=round_id, closed_at=now, entry_count=len(players)),
    ]
    results = RoundResultsReported(
        round_id=round_id,
        placements=[Placement(player_id=p, rank=i + 1, score=1000 - i) for i, p in enumerate(players)],
        reported_at=now,
    )
    return setup, results


def payout_request(key: str, player: str) -> PayoutRequested:
    """A small payout of `player` to the sandbox provider (which pays it), under idempotency key `key`."""
    ref = key.split(":", 1)[-1]
    return PayoutRequested(
        payout_request_id=f"pr-{ref}",
        claim_id=f"cl-{ref}",
        player_id=player,
        amount=Money(asset="USDC", amount=PAYOUT_AMOUNT),
        destination=PayoutDestination(type=DestinationType.SANDBOX, address=f"success:{player}"),
        idempotency_key=key,
        requested_by=player,
        requested_at=datetime.now(UTC),
    )


async def publish(producer: AIOKafkaProducer, topic: str, payloads: Sequence[Any], correlation: str) -> None:
    """Each payload as an event of correlation `correlation`, handed to the producer (not awaited: flush)."""
    for p in payloads:
        env = new_event(p, source="/bench", correlation_id=correlation)
        await producer.send(topic, env.encode(), key=env.key, headers=env.headers())


async def fund(platform: Platform, campaign: str, amount: int) -> None:
    """Create `campaign` in USDC on the platform's rewards and fund it with `amount` minor units."""
    token = platform.identity.issue("bench", ["admin"], audience=audience_for("rewards"))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=platform.url("rewards"), headers=headers, timeout=30) as http:
        r = await http.post("/campaigns/", json={"campaign_id": campaign, "name": campaign, "asset": "USDC"})
        r.raise_for_status()
        r = await http.post(f"/campaigns/{campaign}/fund", json={"amount": amount, "reference": f"{campaign}-f"})
        r.raise_for_status()


async def activate_policy(platform: Platform, rules: list[dict[str, Any]], note: str, *, timeout: float = 60) -> int:
    """Put `rules` in force as the platform's risk policy (one admin proposes, another approves, as payouts
    requires) and wait until rewards has received it; the version it took effect as."""
    audience = audience_for("payouts")
    proposer, approver = (
        {"Authorization": f"Bearer {platform.identity.issue(who, ['admin'], audience=audience)}"}
        for who in ("bench-admin-1", "bench-admin-2")
    )
    base = "/v1/admin/compliance/policy/proposals"
    async with httpx.AsyncClient(base_url=platform.url("payouts"), timeout=30) as http:
        r = await http.post(base, json={"policy": {"rules": rules, "note": note}, "reason": note}, headers=proposer)
        r.raise_for_status()
        r = await http.post(f"{base}/{r.json()['id']}/approve", json={"reason": note}, headers=approver)
        r.raise_for_status()
        version = int(r.json()["version"])
    rewards_db = platform.procs["rewards"].database_url or ""
    deadline = time.monotonic() + timeout
    while await count(rewards_db, "SELECT coalesce(max(version), 0) FROM risk_policy") < version:
        if time.monotonic() > deadline:
            raise TimeoutError(f"rewards did not receive risk policy version {version} within {timeout} s")
        await asyncio.sleep(0.2)
    return version


@dataclass
class Claimant:
    """Players claiming `CLAIM_AMOUNT` to a sandbox destination through rewards' API, as a game client does:
    each with a player token of the platform's dev identity (minted once, renewed before it expires).

    aiohttp, not httpx: the load generator shares the bench's 2 cores with the platform, and httpx's connection
    pool cost ~60 % of a core at 80 claims/s (py-spy: httpcore 54 % of the client's samples), as much CPU per claim
    as rewards and payouts together."""

    platform: Platform
    concurrency: int = 64
    token_ttl_s: int = 7200
    _http: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict, init=False, repr=False)

    async def start(self) -> None:
        # Kept-alive connections expire before uvicorn's 5 s keep-alive closes them (no reset on a reused one).
        connector = aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=2.0)
        self._http = aiohttp.ClientSession(
            base_url=self.platform.url("rewards"), connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        )

    def _token(self, player: str) -> str:
        # No "minted at 0" default: the monotonic clock counts from boot, and a machine up for less than half a
        # token's life would never mint one (an empty bearer).
        held = self._tokens.get(player)
        if held is not None and time.monotonic() - held[1] <= self.token_ttl_s / 2:
            return held[0]
        audience = audience_for("rewards")
        token = self.platform.identity.issue(player, ["player"], audience=audience, ttl_s=self.token_ttl_s)
        self._tokens[player] = (token, time.monotonic())
        return token

    async def claim(self, player: str) -> tuple[str | None, str]:
        """(claim id, its status) when rewards took the claim, else (None, the refusal's code). A request whose
        answer is lost on the way (a connection closed under it) is sent again with the same Idempotency-Key, as
        a game client does: it can never make a second claim."""
        assert self._http is not None, "start() first"
        key = uuid.uuid4().hex
        body = {
            "asset": "USDC",
            "amount": CLAIM_AMOUNT,
            "destination": {"type": "sandbox", "address": f"success:{player}"},
        }
        for attempt in range(1, CLAIM_ATTEMPTS + 1):
            try:
                headers = {"Authorization": f"Bearer {self._token(player)}", "Idempotency-Key": key}
                async with self._http.post("/claims/", json=body, headers=headers) as r:
                    status, is_json = r.status, r.content_type.endswith("json")
                    doc = json.loads(await r.read()) if is_json else {}
                break
            except aiohttp.ClientConnectionError:
                if attempt == CLAIM_ATTEMPTS:
                    raise
        if status == 201:
            return str(doc["claim_id"]), str(doc["status"])
        return None, str(doc.get("code") or status)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()


@dataclass(frozen=True, slots=True)
class PlannedClaim:
    """One claim of a `ClaimLoad`, encoded ahead: `key` is its Idempotency-Key and its flow's correlation id (the
    key of its events on every topic, its payout's included)."""

    player: str
    key: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class ClaimAnswer:
    """What rewards answered one claim, and when (`due`: when the open loop was to send it; both on
    `time.monotonic()`)."""

    key: str
    due: float
    answered: float
    status: int  # HTTP status
    claim_id: str | None
    outcome: str  # approved, held, or the refusal's code

    @property
    def accepted_ms(self) -> float:
        return (self.answered - self.due) * 1000


@dataclass
class ClaimLoad:
    """Players' claims offered through rewards' API at a fixed rate, whatever came back (an open loop: players do
    not wait for each other), at most `max_in_flight` awaiting their answer (a generator that reaches it sends
    late, which `OpenLoop.late_ms` shows).

    Cheap on purpose (it shares the machine with the platform): aiohttp, each player's token minted once before the
    load, each claim's body and headers encoded before the load starts; an answer is parsed for its claim id and
    status only. A request whose answer is lost on the way is sent again with its Idempotency-Key (never a second
    claim)."""

    platform: Platform
    max_in_flight: int = 512
    token_ttl_s: int = 7200
    _http: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)
    _tokens: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _bodies: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)
    _url: str = field(default="", init=False, repr=False)

    def plan(self, players: Sequence[str], n: int, *, tag: str) -> list[PlannedClaim]:
        """`n` claims of `CLAIM_AMOUNT`, the players taking turns (player k claims every len(players)-th time),
        each to the player's own sandbox destination."""
        audience = audience_for("rewards")
        for p in players:
            if p not in self._tokens:
                token = self.platform.identity.issue(p, ["player"], audience=audience, ttl_s=self.token_ttl_s)
                self._tokens[p] = f"Bearer {token}"
                body = {
                    "asset": "USDC",
                    "amount": CLAIM_AMOUNT,
                    "destination": {"type": "sandbox", "address": f"success:{p}"},
                }
                self._bodies[p] = json.dumps(body).encode()
        run = uuid.uuid4().hex[:8]
        out = []
        for i in range(n):
            p = players[i % len(players)]
            key = f"{tag}-{run}-{i}"
            headers = {
                "Authorization": self._tokens[p],
                "Idempotency-Key": key,
                "X-Correlation-Id": key,
                "Content-Type": "application/json",
            }
            out.append(PlannedClaim(p, key, headers, self._bodies[p]))
        return out

    async def start(self) -> None:
        # Kept-alive connections expire before uvicorn's 5 s keep-alive closes them (no reset on a reused one).
        connector = aiohttp.TCPConnector(limit=self.max_in_flight, keepalive_timeout=2.0)
        self._http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=120),
            # Less to build and to send per request: no default headers, no decompression.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            auto_decompress=False,
        )
        self._url = f"{self.platform.url('rewards')}/claims/"

    async def _send(self, claim: PlannedClaim, due: float) -> ClaimAnswer:
        assert self._http is not None, "start() first"
        for attempt in range(1, CLAIM_ATTEMPTS + 1):
            try:
                async with self._http.post(self._url, data=claim.body, headers=claim.headers) as r:
                    status, raw = r.status, await r.read()
                    answered = time.monotonic()
                break
            except (aiohttp.ClientConnectionError, TimeoutError) as err:
                if attempt == CLAIM_ATTEMPTS:  # counted as an outcome of its own: the run goes on
                    return ClaimAnswer(claim.key, due, time.monotonic(), 0, None, type(err).__name__)
        doc = json.loads(raw) if raw[:1] == b"{" else {}
        if status == 201:
            return ClaimAnswer(claim.key, due, answered, status, str(doc["claim_id"]), str(doc["status"]))
        return ClaimAnswer(claim.key, due, answered, status, None, str(doc.get("code") or status))

    async def run(
        self, plan: Sequence[PlannedClaim], per_s: float, *, seconds: float | None = None
    ) -> tuple[OpenLoop, list[ClaimAnswer]]:
        """The claims of `plan` offered at `per_s` a second (for `seconds` at most); returns once each one sent has
        its answer."""
        free = asyncio.Semaphore(self.max_in_flight)
        answers: list[ClaimAnswer] = []
        pending: set[asyncio.Task[None]] = set()

        async def one(claim: PlannedClaim, due: float) -> None:
            try:
                answers.append(await self._send(claim, due))
            finally:
                free.release()

        async def send(i: int, due: float) -> None:
            await free.acquire()
            task = asyncio.create_task(one(plan[i], due))
            pending.add(task)
            task.add_done_callback(pending.discard)

        paced = await open_loop(len(plan), per_s, send, seconds=seconds)
        while pending:
            await asyncio.gather(*pending)
        return paced, answers

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()


__all__ = [
    "BENCH_POLICY",
    "CLAIMS_ENV",
    "CLAIM_AMOUNT",
    "LOAD_ENV",
    "PAYOUT_AMOUNT",
    "PLAYERS_PER_ROUND",
    "PRIZE_PER_ROUND",
    "USDC",
    "ClaimAnswer",
    "ClaimLoad",
    "Claimant",
    "PlannedClaim",
    "activate_policy",
    "fund",
    "payout_request",
    "publish",
    "round_events",
]
