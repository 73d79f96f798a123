"""Destination keys v2 on real PostgreSQL: migration 0023's SQL key function computes the key the code computes
(`prizeflow_contracts.providers.destination_key`) for every kind of address, memo and type, its trigger stores it
whatever a writer computed (a pod of the previous release), the upgrade rewrites the keys the v1
formula stored (payouts, screening clearances) so windows, first use and clearances carry over, and the gate counts
every spelling of one wallet toward one destination."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest
import yaml

from prizeflow_contracts.policy import AmountInWindow, PolicyRule, RiskPolicy
from prizeflow_contracts.providers import MEMO_TYPES, DestinationType, PayoutDestination, destination_key
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.migrations import migrate, upgrade_to_head
from prizeflow_testkit.payouts import ALEMBIC_INI, WEBHOOK_SECRET_ENV, fetch, request, settings_for, wait_state
from prizeflow_ton.addresses import TonAddress, _crc16

from .test_compliance_gate import _row, gated

pytestmark = pytest.mark.integration


def _migration(service: str = "payouts", name: str = "0023_destination_keys.py") -> ModuleType:
    path = Path(__file__).parents[3] / service / "migrations" / "versions" / name
    spec = importlib.util.spec_from_file_location(f"{service}_{name.removesuffix('.py')}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MIGRATION = _migration()
EVM = "0xAbC0000000000000000000000000000000000001"


def _mixed_case(rng: random.Random, text: str) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def generated_destinations(seed: int, count: int) -> list[tuple[str, str | None]]:
    """(address, memo) pairs of every kind the key folds: a TON address in each form (both alphabets, test-only,
    raw in any case, workchain -1), EVM hex in mixed case, 48-character base64 strings that are not TON addresses
    (bad checksum, unknown flags, another workchain, random), other printable ASCII, memos with spaces around."""
    rng = random.Random(seed)
    printable = "".join(chr(c) for c in range(0x21, 0x7F))
    out: list[tuple[str, str | None]] = []
    for _ in range(count):
        ton = TonAddress(rng.choice([0, -1]), rng.randbytes(32), None)
        kind = rng.randrange(8)
        if kind == 0:
            address = ton.friendly(bounceable=rng.random() < 0.5, test_only=rng.random() < 0.3)
            if rng.random() < 0.5:
                address = address.replace("-", "+").replace("_", "/")
        elif kind == 1:
            address = _mixed_case(rng, ton.raw)
        elif kind in (2, 3):  # 48 base64 characters that are no TON address
            tag = rng.choice([0x11, 0x51, 0x12, 0x00, 0xFF]) if kind == 2 else 0x11
            workchain = rng.choice([0, 0xFF, 1, 0x7F])
            body = bytes([tag, workchain]) + ton.account
            crc = int.from_bytes(_crc16(body), "big") ^ (rng.randrange(1, 0x10000) if kind == 3 else 0)
            address = base64.urlsafe_b64encode(body + crc.to_bytes(2, "big")).decode()
        elif kind == 4:
            address = "".join(rng.choice(printable[:62] + "+/_-") for _ in range(48))
        elif kind == 5:
            address = _mixed_case(rng, "0x" + rng.randbytes(20).hex())
        elif kind == 6:
            address = "".join(rng.choice(printable) for _ in range(rng.randrange(1, 80)))
        else:
            address = _mixed_case(rng, f"player{rng.randrange(1000)}@Example.com")
        if rng.random() < 0.1:  # `|` in an address: no field boundary may move
            address = address[:10] + "|" + address[11:]
        memo = rng.choice(
            [
                None,
                str(rng.randrange(10**9)),
                f"  {rng.randrange(100)} ",
                "Tag A",
                " x",
                "0",
                "000",
                "00123",
                "tag|",
                "|",
            ]
        )
        out.append((address, memo))
    return out


# Every type but a Stellar account (whose address must be a G... key) and a upi one (a VPA or IFSC/account); the key
# does not depend on the type otherwise: memos count only for `MEMO_TYPES`.
KEY_TYPES = [t for t in DestinationType if t not in (DestinationType.STELLAR_ACCOUNT, DestinationType.UPI)]


async def test_the_databases_key_function_computes_the_codes_key(db: str) -> None:
    """`prizeflow_destination_key(type, address, memo)`, as 0023 leaves it in the database (the trigger calls it on
    every payout written), equals `destination_key` for every kind of address and memo, of every type."""
    rng = random.Random(36)
    cases = [(rng.choice(KEY_TYPES), a, m) for a, m in generated_destinations(seed=35, count=3000)]
    expected = [destination_key(PayoutDestination(type=t, address=a, memo=m)) for t, a, m in cases]
    assert len({a for _, a, _ in cases}) > 2900
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        rows = await conn.fetch(
            "SELECT prizeflow_destination_key(t, a, m) AS key FROM unnest($1::text[], $2::text[], $3::text[]) "
            "WITH ORDINALITY AS u(t, a, m, n) ORDER BY n",
            [t.value for t, _, _ in cases],
            [a for _, a, _ in cases],
            [m for _, _, m in cases],
        )
    finally:
        await conn.close()
    mismatched = [(c, r["key"], e) for c, r, e in zip(cases, rows, expected, strict=True) if r["key"] != e]
    assert mismatched == []
    # Rewards' 0014 creates the very same functions, with the same memo types.
    rewards = _migration("rewards", "0014_destination_keys.py")
    assert rewards._FUNCTIONS == MIGRATION._FUNCTIONS
    assert ", ".join(f"'{t.value}'" for t in sorted(MEMO_TYPES)) == MIGRATION._MEMO_TYPES


async def test_a_payout_stores_its_destinations_key_whatever_the_writer_computed(db: str) -> None:
    """A pod of the previous release (during a rolling deploy) writes v1 keys: the trigger stores the v2 key of the
    payout's own destination columns, on insert and on update, so its amount counts in every window."""
    conn = await asyncpg.connect(asyncpg_dsn(db))
    ton = TonAddress(0, bytes(range(2, 34)), None)
    try:
        now = datetime.now(UTC)
        v1 = _v1(DestinationType.TON_WALLET, ton.friendly(bounceable=True))
        await conn.execute(_INSERT, "po-old-pod", "p-1", "ton_wallet", ton.friendly(bounceable=True), None, v1, now)
        await conn.execute(_INSERT, "po-evm", "p-1", "crypto_address", EVM, "00123", None, now)
        keys = dict(await conn.fetch("SELECT id, destination_key FROM payouts"))
        assert keys == {
            "po-old-pod": destination_key(PayoutDestination(type=DestinationType.TON_WALLET, address=ton.raw)),
            "po-evm": destination_key(
                PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=EVM.lower(), memo="123")
            ),
        }
        await conn.execute("UPDATE payouts SET destination_key = $1 WHERE id = 'po-old-pod'", v1)
        assert await conn.fetchval("SELECT destination_key FROM payouts WHERE id = 'po-old-pod'") == keys["po-old-pod"]
    finally:
        await conn.close()


_INSERT = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, destination_memo, provider_type, provider_name, state, "
    "approval_policy, correlation_id, attempts, max_attempts, destination_key, created_at, updated_at) "
    "VALUES ($1, $1, $1, 'h', $1, $2, $2, 'USDC', 10000000, $3, $4, $5, 'sandbox', 'sandbox', 'approved', 'auto', "
    "$1, 0, 3, $6, $7, $7)"
)


def _v1(dtype: DestinationType, address: str, memo: str | None = None) -> str:
    return hashlib.sha256(f"{dtype.value}|{address}|{memo or ''}".encode()).hexdigest()


async def test_the_upgrade_rewrites_the_keys_the_v1_formula_stored(db: str) -> None:
    await migrate(ALEMBIC_INI, db, "0022", downgrade=True)
    ton = TonAddress(0, bytes(range(32)), None)
    spellings = [
        (DestinationType.TON_WALLET, ton.friendly(bounceable=True), None),
        (DestinationType.TON_WALLET, ton.friendly(bounceable=False), None),
        (DestinationType.CRYPTO_ADDRESS, ton.raw.upper(), None),
        (DestinationType.CRYPTO_ADDRESS, EVM, "77"),
        (DestinationType.CRYPTO_ADDRESS, EVM.lower(), "77"),
    ]
    now = datetime.now(UTC)
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        for n, (dtype, address, memo) in enumerate(spellings):
            await conn.execute(_INSERT, f"po-{n}", "p-1", dtype.value, address, memo, _v1(dtype, address, memo), now)
        # Older than the longest window: 0021 left its key NULL, and so does 0023.
        await conn.execute(_INSERT, "po-old", "p-1", "sandbox", "success:x", None, None, now - timedelta(days=400))
        # Two approvers cleared one entry for the bounceable spelling, another entry for the raw one.
        for payout, entry in (("po-0", "e-1"), ("po-2", "e-2"), ("po-1", "e-1")):
            dtype, address, memo = spellings[int(payout[-1])]
            await conn.execute(
                "INSERT INTO screening_clearances (subject_kind, subject_key, source, entry_uid, cleared_by, "
                "payout_id, cleared_at) VALUES ('destination', $1, 'ofac_sdn', $2, ARRAY['ann', 'bob'], $3, $4)",
                _v1(dtype, address, memo),
                entry,
                payout,
                now,
            )
        await upgrade_to_head(ALEMBIC_INI, db)
        keys = dict(await conn.fetch("SELECT id, destination_key FROM payouts"))
        wallet = destination_key(PayoutDestination(type=DestinationType.TON_WALLET, address=ton.raw))
        evm = destination_key(PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=EVM, memo="77"))
        assert keys == {"po-0": wallet, "po-1": wallet, "po-2": wallet, "po-3": evm, "po-4": evm, "po-old": None}
        cleared = await conn.fetch(
            "SELECT entry_uid FROM screening_clearances WHERE subject_kind = 'destination' AND subject_key = $1 "
            "ORDER BY entry_uid",
            wallet,
        )
        assert [r["entry_uid"] for r in cleared] == ["e-1", "e-2"]  # one destination; e-1 once (merged)
        assert await conn.fetchval("SELECT count(*) FROM screening_clearances") == 5  # the v1 rows stay (evidence)
        # The key's functions and the trigger stay (every later write of a payout calls them); the v1 one is gone.
        assert await _key_objects(conn) == (["prizeflow_destination_key", "prizeflow_destination_spelling"], 1)
        # Downgrade: the v1 keys are back (the code before this revision counts them again).
        await migrate(ALEMBIC_INI, db, "0022", downgrade=True)
        keys = dict(await conn.fetch("SELECT id, destination_key FROM payouts WHERE destination_key IS NOT NULL"))
        assert keys == {f"po-{n}": _v1(t, a, m) for n, (t, a, m) in enumerate(spellings)}
        assert await _key_objects(conn) == ([], 0)
    finally:
        await conn.close()


async def _key_objects(conn: asyncpg.Connection) -> tuple[list[str], int]:
    """The destination-key functions in the database, and how many triggers call them on payouts."""
    functions = await conn.fetch("SELECT proname FROM pg_proc WHERE proname LIKE 'prizeflow_destination_%' ORDER BY 1")
    triggers = await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname = 'payouts_destination_key'")
    return [f["proname"] for f in functions], triggers


async def test_the_gate_counts_every_spelling_of_one_wallet_toward_one_destination(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    """Two players pay one TON wallet, spelled bounceable then raw (as an exchange's crypto_address): one
    destination's window, so the second payout is held for `destination_limit` (v1 keys let it through)."""
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        yaml.safe_dump(
            {
                "approvals": {"USDC": {"auto_below": "100", "dual_from": "1000"}},
                "providers": [
                    {
                        "name": "sandbox",
                        "type": "sandbox",
                        "assets": ["USDC"],
                        "destination_types": ["sandbox", "ton_wallet", "crypto_address"],
                        "secrets": {"webhook_secret": WEBHOOK_SECRET_ENV},
                        "options": {"default_scenario": "success", "scenarios": {}},
                    }
                ],
            }
        )
    )
    settings = settings_for(db, kafka_bootstrap, providers, topic_suffix=topic_suffix, payouts_worker_enabled=False)
    ton = TonAddress(0, bytes(range(1, 33)), None)
    async with gated(settings) as rig:
        rig.facts.policy = RiskPolicy(
            version=3, rules=[PolicyRule(destination_limit=AmountInWindow(amount=15 * 10**7, window_s=86_400))]
        )
        first = request(
            address=ton.friendly(bounceable=True),
            dtype=DestinationType.TON_WALLET,
            amount=10 * 10**7,
            player_id="player-a",
            requested_by="player-a",
        )
        await rig.publish(first)
        assert await wait_state(db, first.data.idempotency_key, "approved") == "approved"
        second = request(
            address=ton.raw.upper(),
            dtype=DestinationType.CRYPTO_ADDRESS,
            amount=10 * 10**7,
            player_id="player-b",
            requested_by="player-b",
        )
        await rig.publish(second)
        assert await wait_state(db, second.data.idempotency_key, "pending_approval") == "pending_approval"
        row = await _row(db, second.data.idempotency_key)
        assert row["hold_code"] == "policy"
        assert "destination_limit" in row["hold_detail"]
        keys = await fetch(db, "SELECT DISTINCT destination_key FROM payouts")
        assert [k["destination_key"] for k in keys] == [
            destination_key(PayoutDestination(type=DestinationType.TON_WALLET, address=ton.raw))
        ]
