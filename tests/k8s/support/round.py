"""A round paid on the cluster, as its users make it: a game server in its own namespace publishes a sponsored round
on the `games` listener (TLS, SCRAM-SHA-512, its own Kafka user), the winner claims to a Stellar account through the
rewards API, ops release the new-destination hold, an approver approves, and payouts pays through the signer (Kafka)
and the Soroban RPC of the simulated internet, reached through the egress proxy. The APIs are reached as
docs/ops-cli.md says an operator reaches them: `kubectl port-forward` to their Services."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stellar_sdk import Keypair
from support import USDC, Api, results_of, uid, wait_for

from prizeflow_contracts.envelope import EventPayload, new_event
from prizeflow_contracts.events.game import (
    Distribution,
    DistributionTemplate,
    EntryRecorded,
    PaidVia,
    PrizeSource,
    PrizeSpec,
    RoundClosed,
    RoundOpened,
)
from prizeflow_contracts.money import Money
from prizeflow_contracts.topics import GAME_ROUNDS
from prizeflow_devstack.cluster.kube import Kube
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_soroban_emulator.client import SorobanAdmin

GAME_NAMESPACE = "prizeflow-game-servers"


@contextmanager
def port_forward(kube: Kube, namespace: str, target: str, port: int) -> Iterator[str]:
    """`kubectl port-forward <target> :<port>` for as long as the block runs; yields its `http://127.0.0.1:<p>`."""
    proc = subprocess.Popen(
        [kube.kubectl, "-n", namespace, "port-forward", target, f":{port}"],
        env=kube.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert found, f"kubectl port-forward {target}: {line}{proc.stderr.read() if proc.poll() is not None else ''}"  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@dataclass
class Forwarded:
    """What `support.Api` needs of a platform: each service's URL and the identity whose tokens it accepts."""

    urls: dict[str, str]
    identity: DevIdentity

    def url(self, service: str) -> str:
        return self.urls[service]


def round_events(round_id: str, players: Sequence[str], *, campaign: str, prize: int) -> list[dict[str, str]]:
    """A sponsored winner-takes-most round as a game server publishes it: each record's key, value and headers."""
    now = datetime.now(UTC)
    fee = Money(asset="USDC", amount=0)
    payloads: list[EventPayload] = [
        RoundOpened(
            round_id=round_id,
            competition_id="rehearsal-cup",
            game_id="rehearsal",
            opened_at=now,
            entry_fee=None,
            prize=PrizeSpec(asset="USDC", amount=prize, campaign_id=campaign),
            prize_source=PrizeSource.SPONSORED,
            distribution=Distribution(template=DistributionTemplate.TOP3),
        ),
        *[
            EntryRecorded(
                round_id=round_id,
                entry_id=f"{round_id}-e{i}",
                player_id=p,
                fee=fee,
                paid_via=PaidVia.EXTERNAL,
                recorded_at=now,
            )
            for i, p in enumerate(players)
        ],
        RoundClosed(round_id=round_id, closed_at=now, entry_count=len(players)),
        results_of(round_id, players, None),
    ]
    records = []
    for payload in payloads:
        env = new_event(payload, source="/games/rehearsal", correlation_id=round_id, subject=round_id)
        records.append(
            {
                "key": env.key.decode() if isinstance(env.key, bytes) else str(env.key),
                "value": base64.b64encode(env.encode()).decode(),
                "headers": json.dumps([[k, v.decode()] for k, v in env.headers()]),
            }
        )
    return records


PUBLISHER = """
import asyncio, base64, json, ssl
from aiokafka import AIOKafkaProducer
records = json.load(open("/records/records.json"))
async def main():
    ctx = ssl.create_default_context(cafile="/kafka/ca.crt")
    producer = AIOKafkaProducer(
        bootstrap_servers="prizeflow-kafka-bootstrap.prizeflow.svc:9094", security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="game-servers",
        sasl_plain_password=open("/kafka/password").read().strip(), ssl_context=ctx,
        enable_idempotence=True, acks="all")
    for attempt in range(30):
        try:
            await producer.start()
            break
        except Exception as err:  # a new pod's first connections may be refused until its policy is programmed
            print("retrying:", repr(err), flush=True)
            await asyncio.sleep(2)
    for r in records:
        headers = [(k, v.encode()) for k, v in json.loads(r["headers"])]
        await producer.send_and_wait(TOPIC, base64.b64decode(r["value"]), key=r["key"].encode(), headers=headers)
    await producer.stop()
    print("published", len(records), flush=True)
asyncio.run(main())
"""


def publish_round(kube: Kube, ops_image: str, records: list[dict[str, str]], name: str) -> str:
    """A game server's pod in its namespace (deploy/k8s/game-servers: default deny, DNS and the brokers' 9094 out)
    publishes the records with its user's credentials (the Secret game-servers-kafka); its log."""
    script = PUBLISHER.replace("TOPIC", repr(GAME_ROUNDS.name))
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": GAME_NAMESPACE},
                "data": {"records.json": json.dumps(records), "publish.py": script},
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": GAME_NAMESPACE},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "game-server",
                            "image": ops_image,
                            "command": ["python", "/records/publish.py"],
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [
                                {"name": "records", "mountPath": "/records"},
                                {"name": "kafka", "mountPath": "/kafka"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "records", "configMap": {"name": name}},
                        {"name": "kafka", "secret": {"secretName": "game-servers-kafka"}},
                    ],
                },
            },
        ],
        server_side=False,
    )

    def done() -> bool:
        phase = kube.run("-n", GAME_NAMESPACE, "get", "pod", name, "-o", "jsonpath={.status.phase}")
        assert phase != "Failed", kube.run("-n", GAME_NAMESPACE, "logs", name, check=False)
        return phase == "Succeeded"

    kube.wait_for(f"the game server {name}", done, timeout_s=180, every_s=2)
    return kube.run("-n", GAME_NAMESPACE, "logs", name)


@dataclass(frozen=True)
class Reached:
    """The platform's APIs as an operator reaches them (port-forwards), and the simulated Stellar network's."""

    api: Api
    soroban: str


@asynccontextmanager
async def reach(kube: Kube, identity: DevIdentity, issuer: str) -> AsyncIterator[Reached]:
    """docs/ops-cli.md `k8s:reach`'s port-forwards, for as long as the block runs (tokens of `issuer`)."""
    identity = dataclasses.replace(identity, issuer=issuer)
    services = ("settlement", "rewards", "payouts", "webhooks")
    with (
        port_forward(kube, "prizeflow", "svc/settlement", 80) as settlement,
        port_forward(kube, "prizeflow", "svc/rewards", 80) as rewards,
        port_forward(kube, "prizeflow", "svc/payouts", 80) as payouts,
        port_forward(kube, "prizeflow", "svc/webhooks", 80) as webhooks,
        port_forward(kube, "internet", "svc/soroban-rpc", 8080) as soroban,
    ):
        api = Api(Forwarded(dict(zip(services, (settlement, rewards, payouts, webhooks), strict=True)), identity))  # type: ignore[arg-type]
        try:
            yield Reached(api, soroban)
        finally:
            await api.close()


@dataclass(frozen=True)
class Round:
    round_id: str
    campaign: str
    players: tuple[str, str, str]  # winner (200 USDC of 400), second (120), third (80)


async def a_funded_round(reached: Reached) -> Round:
    """A campaign funded over HTTP for a round of three new players (not yet published)."""
    campaign, round_id = uid("camp"), uid("round")
    await reached.api.funded_campaign(campaign, 1_000 * USDC)
    return Round(round_id, campaign, (uid("p"), uid("p"), uid("p")))


async def a_round_is_settled(reached: Reached, kube: Kube, ops_image: str, played: Round) -> None:
    """The game server publishes the round; its winner's wallet is credited (events only: Kafka can replay it)."""
    log = publish_round(
        kube,
        ops_image,
        round_events(played.round_id, list(played.players), campaign=played.campaign, prize=400 * USDC),
        played.round_id,
    )
    assert "published" in log, log
    winner = played.players[0]
    credited = await wait_for(lambda: reached.api.available(winner), lambda v: v == 200 * USDC, timeout=180)
    assert credited == 200 * USDC


@dataclass(frozen=True)
class PaidRound:
    played: Round
    destination: str
    payout: dict[str, Any]
    seconds: float


async def a_round_is_paid(reached: Reached, kube: Kube, ops_image: str) -> PaidRound:
    """Round → allocation → claim → hold released → approved → paid on the Stellar emulator, on the cluster."""
    started = time.monotonic()
    api = reached.api
    destination = Keypair.random().public_key
    SorobanAdmin(reached.soroban).create_account(destination, balances={"XLM": "1", "USDC": "0"})
    played = await a_funded_round(reached)
    await a_round_is_settled(reached, kube, ops_image, played)
    winner = played.players[0]
    claim = await api.ok(
        "POST", "rewards", "/claims/", user=winner, roles=["player"],
        json={
            "asset": "USDC", "amount": 150 * USDC,
            "destination": {"type": "stellar_account", "address": destination},
        },
        headers={"X-Correlation-Id": played.round_id},
    )  # fmt: skip
    assert claim["hold_code"] == "new_destination", claim
    await api.ok("POST", "rewards", f"/holds/{claim['claim_id']}/release", user="ops-1", roles=["ops"], json={})

    async def payout() -> dict[str, Any] | None:
        doc = await api.ok("GET", "payouts", f"/payouts/?player_id={winner}", user="ops-1", roles=["ops"])
        return doc["items"][0] if doc["items"] else None

    pending = await wait_for(payout, lambda p: p is not None and p["state"] == "pending_approval", timeout=180)
    assert pending is not None
    await api.ok(
        "POST", "payouts", f"/payouts/{pending['id']}/approve", user="approver-1", roles=["approver"],
        json={"reason": "rehearsal"},
    )  # fmt: skip
    paid = await wait_for(payout, lambda p: p is not None and p["state"] == "paid", timeout=240)
    assert paid is not None
    assert paid["amount"] == 150 * USDC
    payments = SorobanAdmin(reached.soroban).payments(destination=destination)
    assert len(payments) == 1, payments
    await wait_for(lambda: api.available(winner), lambda v: v == 50 * USDC, timeout=120)
    return PaidRound(played, destination, paid, time.monotonic() - started)


async def books(reached: Reached, players: Sequence[str], destinations: Sequence[str]) -> dict[str, Any]:
    """What the money invariants compare: each player's balances, claims and payouts (ids, states, amounts) and the
    payments the Stellar network holds for each destination."""
    api = reached.api
    out: dict[str, Any] = {}
    for player in players:
        wallet = await api.ok("GET", "rewards", f"/wallets/{player}", user=player, roles=["player"])
        claims = await api.ok("GET", "rewards", f"/wallets/{player}/claims", user=player, roles=["player"])
        payouts = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
        out[player] = {
            "balances": sorted(
                (b["asset"], int(b["balance"]), int(b["reserved"]), int(b["available"])) for b in wallet["balances"]
            ),
            "claims": sorted((c["claim_id"], c["status"], int(c["amount"]), c["payout_id"]) for c in claims["items"]),
            "payouts": sorted((p["id"], p["state"], int(p["amount"])) for p in payouts["items"]),
        }
    for destination in destinations:
        out[destination] = len(SorobanAdmin(reached.soroban).payments(destination=destination))
    return out


__all__ = [
    "GAME_NAMESPACE",
    "PaidRound",
    "Reached",
    "Round",
    "a_funded_round",
    "a_round_is_paid",
    "a_round_is_settled",
    "books",
    "port_forward",
    "publish_round",
    "reach",
    "round_events",
]
