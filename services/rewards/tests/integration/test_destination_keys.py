"""One wallet spelled differently is one destination, on the whole rewards process and on its schema: a player
re-spelling a TON wallet meets `destination_limit` on the second claim, and migration 0014 rewrites the keys the
v1 formula stored (claims, payout_destinations: spellings merged keeping the earliest first use), so the policy's
windows, first use and a retried claim's idempotency carry over."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.payouts import PayoutRoute, RiskPolicyActivated
from prizeflow_contracts.policy import AmountInWindow, PolicyRule, RiskPolicy
from prizeflow_contracts.providers import DestinationType, PayoutDestination, ProviderType, destination_key
from prizeflow_contracts.topics import PAYOUT_EVENTS
from prizeflow_rewards.application.claims.submit import claim_id_for
from prizeflow_rewards.domain import accounts
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.migrations import migrate, upgrade_to_head
from prizeflow_testkit import eventually
from prizeflow_testkit.events import AT
from prizeflow_testkit.rewards import ROUTES, running_app, settings_for
from prizeflow_ton.addresses import TonAddress

from .conftest import ALEMBIC_INI
from .test_schema_rules import add_account, add_transfer

pytestmark = pytest.mark.integration

TON = TonAddress(0, bytes(range(7, 39)), None)
EVM = "0xAbC0000000000000000000000000000000000001"


async def test_a_player_re_spelling_a_wallet_meets_the_destination_limit(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    routes = (
        *ROUTES,
        PayoutRoute(asset="USDC", destination_type=DestinationType.TON_WALLET, provider=ProviderType.TON_WALLET),
        PayoutRoute(
            asset="USDC", destination_type=DestinationType.CRYPTO_ADDRESS, provider=ProviderType.CRYPTO_EXCHANGE
        ),
    )
    async with running_app(settings, routes=routes) as app:
        policy = RiskPolicy(
            version=1, rules=[PolicyRule(destination_limit=AmountInWindow(amount=4_000, window_s=86_400))]
        )
        event = RiskPolicyActivated(policy=policy, proposed_by="admin-1", approved_by="admin-2", activated_at=AT)
        await app.publish(PAYOUT_EVENTS.name, [new_event(event, source="/prizeflow/payouts", correlation_id="rp")])
        engine_url = asyncpg_dsn(database_url)

        async def version() -> int | None:
            conn = await asyncpg.connect(engine_url)
            try:
                return await conn.fetchval("SELECT version FROM risk_policy")  # type: ignore[no-any-return]
            finally:
                await conn.close()

        await eventually(version, lambda v: v == 1, timeout=60)
        r = await app.client.post(
            "/wallets/p-wallet/top-ups",
            json={"asset": "USDC", "amount": 10_000, "provider": "stripe", "reference": "ch-p-wallet"},
            headers=app.admin,
        )
        assert r.status_code == 200, r.text

        async def claim(dtype: DestinationType, address: str, memo: str | None = None) -> tuple[int, str]:
            destination = {"type": dtype.value, "address": address, "memo": memo}
            r = await app.client.post(
                "/claims/",
                json={"asset": "USDC", "amount": 3_000, "destination": destination},
                headers=app.player("p-wallet"),
            )
            body = r.json()
            return r.status_code, str(body["status"] if r.status_code == 201 else body["code"])

        assert await claim(DestinationType.TON_WALLET, TON.friendly(bounceable=True)) == (201, "approved")
        # The same wallet non-bounceable, and raw as an exchange's crypto_address: one destination, over its limit.
        assert await claim(DestinationType.TON_WALLET, TON.friendly(bounceable=False)) == (
            422,
            "destination_limit_exceeded",
        )
        assert await claim(DestinationType.CRYPTO_ADDRESS, TON.raw.upper()) == (422, "destination_limit_exceeded")
        # A memo no TON rail reads is refused, never a new destination (its key would ignore it anyway).
        assert await claim(DestinationType.TON_WALLET, TON.raw, memo="1") == (422, "memo_not_accepted")
        # An exchange's tag is part of the destination, read as a number: 0123 and 123 are one account there.
        assert (await claim(DestinationType.CRYPTO_ADDRESS, EVM, memo="0123"))[0] == 201
        assert await claim(DestinationType.CRYPTO_ADDRESS, EVM.lower(), memo="123") == (
            422,
            "destination_limit_exceeded",
        )
        conn = await asyncpg.connect(engine_url)
        try:
            first_uses = await conn.fetch(
                "SELECT destination_key FROM payout_destinations WHERE player_id = 'p-wallet'"
            )
        finally:
            await conn.close()
        assert sorted(f["destination_key"] for f in first_uses) == sorted(
            [
                destination_key(PayoutDestination(type=DestinationType.TON_WALLET, address=TON.raw)),
                destination_key(PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=EVM, memo="123")),
            ]
        )


def _v1(destination: dict[str, str | None]) -> str:
    raw = f"{destination['type']}|{destination['address']}|{destination.get('memo') or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _v2(destination: dict[str, str | None]) -> str:
    return destination_key(PayoutDestination.model_validate(destination))


async def test_the_upgrade_rewrites_claims_and_merges_first_uses(database_url: str) -> None:
    await migrate(ALEMBIC_INI, database_url, "0013", downgrade=True)
    now = datetime.now(UTC)
    spellings: list[tuple[str, dict[str, str | None], datetime]] = [
        ("p-1", {"type": "ton_wallet", "address": TON.friendly(bounceable=True), "memo": None}, now),
        ("p-1", {"type": "ton_wallet", "address": TON.friendly(bounceable=False), "memo": None}, now - timedelta(1)),
        ("p-1", {"type": "crypto_address", "address": EVM, "memo": " 5 "}, now),
        ("p-2", {"type": "crypto_address", "address": EVM.lower(), "memo": "5"}, now - timedelta(2)),
    ]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for player in ("p-1", "p-2"):
            await add_account(conn, accounts.wallet(player, "USDC"))
        await add_account(conn, accounts.clearing("USDC"))
        for n, (player, destination, at) in enumerate(spellings):
            pending = await add_transfer(conn, accounts.wallet(player, "USDC").id, accounts.clearing("USDC").id)
            await conn.execute(
                "INSERT INTO claims (id, player_id, asset, amount, destination, destination_key, status, "
                "pending_transfer_id, payout_request_id, correlation_id, created_at) "
                "VALUES ($1, $2, 'USDC', 100, $3::jsonb, $4, 'approved', $5, $1, $1, $6)",
                f"cl-{n}",
                player,
                json.dumps(destination),
                _v1(destination),
                pending,
                at,
            )
            await conn.execute(
                "INSERT INTO payout_destinations (player_id, destination_key, first_seen_at) VALUES ($1, $2, $3)",
                player,
                _v1(destination),
                at,
            )
        orphan = uuid.uuid4().hex * 2  # a first use no claim names: kept as it is
        await conn.execute("INSERT INTO payout_destinations (player_id, destination_key) VALUES ('p-3', $1)", orphan)

        await upgrade_to_head(ALEMBIC_INI, database_url)
        keys = dict(await conn.fetch("SELECT id, destination_key FROM claims"))
        assert keys == {f"cl-{n}": _v2(d) for n, (_, d, _) in enumerate(spellings)}
        wallet, evm = _v2(spellings[0][1]), _v2(spellings[2][1])
        assert keys["cl-0"] == keys["cl-1"] == wallet
        assert keys["cl-2"] == keys["cl-3"] == evm
        first_uses = {
            (r["player_id"], r["destination_key"]): r["first_seen_at"]
            for r in await conn.fetch("SELECT player_id, destination_key, first_seen_at FROM payout_destinations")
        }
        assert first_uses.keys() == {("p-1", wallet), ("p-1", evm), ("p-2", evm), ("p-3", orphan)}
        assert first_uses[("p-1", wallet)] == spellings[1][2]  # the earliest of the merged spellings
        # The key's functions and the claims' trigger stay; the v1 helpers are gone.
        assert await _key_objects(conn) == (["prizeflow_destination_key", "prizeflow_destination_spelling"], 1)

        # Downgrade: the v1 keys are back, each spelling first seen no earlier than its own first claim.
        await migrate(ALEMBIC_INI, database_url, "0013", downgrade=True)
        keys = dict(await conn.fetch("SELECT id, destination_key FROM claims"))
        assert keys == {f"cl-{n}": _v1(d) for n, (_, d, _) in enumerate(spellings)}
        first_uses = {
            (r["player_id"], r["destination_key"]): r["first_seen_at"]
            for r in await conn.fetch("SELECT player_id, destination_key, first_seen_at FROM payout_destinations")
        }
        assert first_uses == {(p, _v1(d)): at for p, d, at in spellings} | {
            ("p-3", orphan): first_uses[("p-3", orphan)]
        }
        assert await _key_objects(conn) == ([], 0)
    finally:
        await conn.close()


async def _key_objects(conn: asyncpg.Connection) -> tuple[list[str], int]:
    """The destination-key functions in the database (helpers included), and the claims' trigger."""
    functions = await conn.fetch(
        "SELECT proname FROM pg_proc WHERE proname ~ '^prizeflow_(destination|claim)_' ORDER BY 1"
    )
    triggers = await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname = 'claims_destination_key'")
    return [f["proname"] for f in functions], triggers


async def test_a_claim_an_old_pod_stored_is_keyed_v2_and_its_retry_is_the_same_claim(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """During a rolling deploy a pod of the previous release stores a claim with its v1 key; the trigger stores the
    v2 key of the claim's destination instead, so the claim retried on a new pod (same Idempotency-Key) is the
    same claim, not `idempotency_key_reused`."""
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    routes = (
        *ROUTES,
        PayoutRoute(asset="USDC", destination_type=DestinationType.TON_WALLET, provider=ProviderType.TON_WALLET),
    )
    destination: dict[str, str | None] = {"type": "ton_wallet", "address": TON.friendly(bounceable=True), "memo": None}
    async with running_app(settings, routes=routes) as app:
        r = await app.client.post(
            "/wallets/p-old/top-ups",
            json={"asset": "USDC", "amount": 10_000, "provider": "stripe", "reference": "ch-p-old"},
            headers=app.admin,
        )
        assert r.status_code == 200, r.text
        first = await app.client.post(
            "/claims/",
            json={"asset": "USDC", "amount": 100, "destination": destination},
            headers={**app.player("p-old"), "Idempotency-Key": "new-pod"},
        )
        assert first.status_code == 201, first.text
        claim_id = claim_id_for("p-old", "old-pod")
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            pending = await add_transfer(conn, accounts.wallet("p-old", "USDC").id, accounts.clearing("USDC").id)
            await conn.execute(  # as the previous release's code writes it
                "INSERT INTO claims (id, player_id, asset, amount, destination, destination_key, status, "
                "pending_transfer_id, payout_request_id, correlation_id) "
                "VALUES ($1, 'p-old', 'USDC', 100, $2::jsonb, $3, 'approved', $4, $1, $1)",
                claim_id,
                json.dumps(destination),
                _v1(destination),
                pending,
            )
            keys = await conn.fetch("SELECT DISTINCT destination_key FROM claims WHERE player_id = 'p-old'")
        finally:
            await conn.close()
        assert [k["destination_key"] for k in keys] == [_v2(destination)]
        retried = await app.client.post(
            "/claims/",
            json={"asset": "USDC", "amount": 100, "destination": destination},
            headers={**app.player("p-old"), "Idempotency-Key": "old-pod"},
        )
        assert retried.status_code == 201, retried.text
        assert (retried.json()["claim_id"], retried.json()["created"]) == (claim_id, False)
