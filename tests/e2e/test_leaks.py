"""No destination, token or secret reaches a log line or a DLQ header.

Drives the platform through the paths most likely to leak (claims paid, timed out after success, refused by
the rail and failed on the Stellar ledger; forged and misdirected tokens; a counter overflowing in
PostgreSQL; an unreadable game record dead-lettered), then reads every log every service wrote this session
and the headers of every record on every DLQ topic, and fails on any of them. The record *values* on a DLQ
keep the refused bytes on purpose (an operator redrives them): only headers travel into tooling and alerts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

import pytest
from stellar_sdk import Keypair
from support import USDC, Api, claim, top_up, uid, wait_for

from prizeflow_contracts.money import INT64_MAX
from prizeflow_contracts.topics import ALL_TOPICS, GAME_ROUNDS
from prizeflow_devstack.platform import Platform
from prizeflow_runtime.dev_identity import KEY_FILE, DevIdentity
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_testkit import fetch, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")
FINAL = ("paid", "rejected", "voided", "returned")


def secrets_of(platform: Platform) -> dict[str, str]:
    """What an attacker must never read: the hot signer's seed and the identity provider's private key."""
    directory = platform.workdir / "secrets"
    found = {"hot signer seed": (directory / "hot-signer.seed").read_text().strip()}
    pem = (directory / "identity" / KEY_FILE).read_text()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    found["identity private key (PEM body)"] = body
    return found


def log_lines(platform: Platform) -> Iterable[tuple[str, int, str]]:
    for path in sorted(platform.workdir.glob("*.log")):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            yield path.name, number, line


async def dlq_headers(platform: Platform, bootstrap: str) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for topic in ALL_TOPICS:
        name = topic.name + platform.suffix + ".dlq"
        for record in await read_topic(bootstrap, name):
            out += [(name, key, bytes(value).decode(errors="replace")) for key, value in record.headers or ()]
    return out


async def test_logs_and_dlq_headers_carry_no_destination_token_or_secret(
    platform: Platform, api: Api, kafka_bootstrap: str
) -> None:
    player = uid("leak-player")
    marker = uuid.uuid4().hex[:12]
    destinations = {
        "paid": {"type": "sandbox", "address": f"success:dest-{marker}-a"},
        "timed out after success": {"type": "sandbox", "address": f"timeout_after_success:dest-{marker}-b"},
        "refused by the rail": {"type": "sandbox", "address": f"refuse_invalid_destination:dest-{marker}-c"},
        "failed on the ledger": {"type": "stellar_account", "address": Keypair.random().public_key},
    }
    await top_up(api, player, 50 * USDC)
    claims = []
    for destination in destinations.values():
        response = await claim(api, player, 2 * USDC, destination)
        assert response.status_code == 201, response.text
        claims.append(response.json()["claim_id"])
        if response.json()["status"] == "held":  # a destination never used before waits for review
            await api.ok("POST", "rewards", f"/holds/{claims[-1]}/release", user="ops-1", roles=["ops"], json={})

    # Tokens that must be refused without being echoed anywhere: forged by another identity, and one for
    # another service's audience.
    forged = DevIdentity.generate().issue(player, ["player"], audience="prizeflow-rewards")
    misdirected = platform.identity.issue(player, ["player"], audience="prizeflow-payouts")
    for token in (forged, misdirected, "not.a.jwt"):
        response = await api.http.get(
            f"{platform.url('rewards')}/wallets/{player}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
    # A counter past int64 fails inside PostgreSQL, with the player's id among the statement's parameters.
    overflow = await api.call(
        "POST", "rewards", f"/wallets/{player}/top-ups", user="cashier", roles=["admin"],
        json={"asset": "USDC", "amount": INT64_MAX - 50 * USDC, "provider": f"leak{marker}", "reference": "r1"},
    )  # fmt: skip
    assert overflow.status_code == 200
    overflow = await api.call(
        "POST", "rewards", f"/wallets/{player}/top-ups", user="cashier", roles=["admin"],
        json={"asset": "USDC", "amount": 1, "provider": f"leak{marker}", "reference": "r2"},
    )  # fmt: skip
    assert overflow.status_code == 422
    # An unreadable game record naming a destination: refused to the DLQ, its bytes kept, its headers clean.
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            GAME_ROUNDS.name + platform.suffix, f'{{"destination": "dest-{marker}-d"'.encode(), key=b"leak"
        )
    finally:
        await producer.stop()

    async def settled() -> list[str]:
        rows = await fetch(
            platform.procs["rewards"].database_url or "", "SELECT status FROM claims WHERE id = ANY($1)", claims
        )
        return [str(r["status"]) for r in rows]

    await wait_for(settled, lambda states: len(states) == len(claims) and all(s in FINAL for s in states), 120)

    async def dead_lettered() -> int:
        rows = await fetch(
            platform.procs["settlement"].database_url or "", "SELECT count(*) AS n FROM dead_letters WHERE key = $1",
            b"leak",
        )  # fmt: skip
        return int(rows[0]["n"])

    await wait_for(dead_lettered, lambda n: n == 1, 60)

    forbidden = {
        **{f"destination ({why})": d["address"].split(":", 1)[-1] for why, d in destinations.items()},
        "destination in a refused record": f"dest-{marker}-d",
        **secrets_of(platform),
        "forged token": forged,
        "misdirected token": misdirected,
    }
    for user in (player, "cashier"):
        forbidden[f"token of {user}"] = api.token(user, "player", service="rewards")["Authorization"][7:]
    leaks = [
        f"{where}:{line_no}: {what}"
        for where, line_no, line in log_lines(platform)
        for what, value in forbidden.items()
        if value in line
    ]
    leaks += [f"{where}:{n}: a bearer token" for where, n, line in log_lines(platform) if JWT.search(line)]
    headers = await dlq_headers(platform, kafka_bootstrap)
    assert headers, "no DLQ record was read: the scan would prove nothing"
    leaks += [
        f"{topic} header {key}: {what}"
        for topic, key, value in headers
        for what, secret in forbidden.items()
        if secret in value
    ]
    leaks += [f"{topic} header {key}: a bearer token" for topic, key, value in headers if JWT.search(value)]
    # The scan read the lines the leak-prone paths write (a refusal, a failed ledger transaction).
    logged = "\n".join(line for _, _, line in log_lines(platform))
    assert '"msg": "event dead-lettered", "reason": "malformed_json"' in logged
    assert '"msg": "stellar transaction landed"' in logged
    assert leaks == []
