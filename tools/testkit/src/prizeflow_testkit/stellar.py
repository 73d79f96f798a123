"""Helpers for Stellar provider tests and the bench: the Soroban emulator and the signer as real subprocesses,
funded accounts, a providers file with a `stellar` provider. Imported by tests and benches only."""

from __future__ import annotations

import json
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from litestar.testing import AsyncTestClient
from stellar_sdk import Keypair

from prizeflow_devstack.infra import Infra, create_database, drop_database
from prizeflow_payouts.bootstrap import Payouts
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_soroban_emulator.client import Rpc
from prizeflow_testkit import Process, eventually, fetch, free_port, provision_test_topics
from prizeflow_testkit.payouts import SERVICE_DIR, publish_raw, running, settings_for, token, unique

SIGNER_ALEMBIC_INI = str(SERVICE_DIR.parent / "signer" / "alembic.ini")
NETWORK = "Prizeflow Payouts Stellar Tests ; 2025"


def emulator_process(
    log: Path, *, ledger_ms: int = 500, seed: int = 7, env: dict[str, str] | None = None
) -> tuple[Process, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = Process(
        [sys.executable, "-m", "prizeflow_soroban_emulator"],
        {
            "SOROBAN_RPC_PORT": str(port),
            "STELLAR_NETWORK_PASSPHRASE": NETWORK,
            "SOROBAN_EMULATOR_SEED": str(seed),
            "SOROBAN_EMULATOR_LEDGER_MS": str(ledger_ms),
            **(env or {}),
        },
        log,
        url + "_emulator/health",
    )
    return proc, url


@dataclass
class Keys:
    """The funding account (its key is the signer's hot key), channel accounts, destinations."""

    funding: Keypair = field(default_factory=Keypair.random)
    channels: list[Keypair] = field(default_factory=list)

    @classmethod
    def make(cls, channels: int = 0) -> Keys:
        return cls(Keypair.random(), [Keypair.random() for _ in range(channels)])


def fund(rpc: Rpc, keys: Keys, *, xlm: str = "10000000", usdc: str = "1000000") -> None:
    """Funding account with XLM and USDC; channel accounts whose only signer is the funding key."""
    rpc.admin.create_account(keys.funding.public_key, balances={"XLM": xlm, "USDC": usdc})
    for ch in keys.channels:
        rpc.admin.create_account(
            ch.public_key, balances={"XLM": "10000"}, signers={keys.funding.public_key: 1}, master_weight=0
        )


def destinations(rpc: Rpc, n: int, *, usdc: bool = True) -> list[str]:
    out = []
    for _ in range(n):
        kp = Keypair.random()
        rpc.admin.create_account(kp.public_key, balances={"XLM": "1", "USDC": "0"} if usdc else {"XLM": "1"})
        out.append(kp.public_key)
    return out


def signer_process(
    database_url: str,
    kafka: str,
    suffix: str,
    keys: Keys,
    log: Path,
    *,
    backend: str = "hot_key",
    contract_id: str | None = None,
    extra: dict[str, str] | None = None,
) -> Process:
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "KAFKA_TOPIC_SUFFIX": suffix,
        "HTTP_PORT": str(port),
        "OUTBOX_POLL_INTERVAL_MS": "20",
        "LOG_JSON": "false",
        "STELLAR_NETWORK_PASSPHRASE": NETWORK,
        "PAYOUT_SOURCE_ACCOUNT": keys.funding.public_key,
        "SIGNER_CHANNEL_ACCOUNTS": ",".join(k.public_key for k in keys.channels),
        "SIGNER_BACKEND": backend,
        "CONSUMER_BATCH_SIZE": "50",
        "SIGNER_TX_CAPS": '{"XLM": 10000000000000000, "USDC": 10000000000000000}',
        "SIGNER_DAILY_CAPS": '{"XLM": 100000000000000000, "USDC": 100000000000000000}',
    }
    if backend == "hot_key":
        env |= {"PAYOUTS_SIGN_WITH_HOT_KEY": "true", "PAYOUT_HOT_SIGNER_SECRET": keys.funding.secret}
    if contract_id:
        env["PAYOUT_CONTRACT_ID"] = contract_id
    env |= extra or {}
    return Process([sys.executable, "-m", "prizeflow_signer"], env, log, f"http://127.0.0.1:{port}/health/ready")


def stellar_env(keys: Keys, rpc_url: str, *, contract_id: str | None = None) -> dict[str, str]:
    """The §8 environment of the payouts process."""
    env = {
        "PAYOUT_SOURCE_ACCOUNT": keys.funding.public_key,
        "SOROBAN_RPC_URL": rpc_url,
        "STELLAR_NETWORK_PASSPHRASE": NETWORK,
        "PAYOUTS_MAX_GAS_STROOPS": "2000000",
        "PAYOUT_CHANNEL_ACCOUNTS": ",".join(k.public_key for k in keys.channels),
    }
    if contract_id:
        env["PAYOUT_CONTRACT_ID"] = contract_id
    return env


def stellar_providers_file(tmp_path: Path, **options: Any) -> Path:
    doc = {
        "approvals": {"XLM": {"auto_below": "1000000"}, "USDC": {"auto_below": "1000000"}},
        "providers": [
            {
                "name": "stellar",
                "type": "stellar",
                "assets": ["XLM", "USDC"],
                "destination_types": ["stellar_account"],
                "options": {"validity_s": 15, "resign_after_s": 2.0, "max_tx_attempts": 20, **options},
            }
        ],
    }
    path = tmp_path / f"providers-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass(frozen=True)
class Outcome:
    """What payouts recorded for one request."""

    kind: str  # payout | refused | dead_letter
    payout_id: str | None = None
    code: str | None = None
    created: bool = True
    detail: str | None = None


@dataclass
class Stack:
    rpc: Rpc
    rpc_url: str
    keys: Keys
    settings: PayoutsSettings
    parts: Payouts
    client: AsyncTestClient[Any]
    db: str
    signer: Process | None
    emulator: Process
    tmp: Path
    signer_db: str = ""
    kafka: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        return token(self.settings, "admin-1", "admin")

    def _request(self, dest: str, amount: int, asset: str, key: str) -> tuple[str, bytes, bytes]:
        """A PayoutRequested record as rewards publishes it, as raw JSON (so values the contract refuses, an
        M... address, a bad key, an amount past int64, go out as a broken producer would send them)."""
        claim_id, correlation_id = f"cl-{key}", f"corr-{uuid.uuid4().hex[:12]}"
        data: dict[str, Any] = {
            "payout_request_id": f"pr-{key}",
            "claim_id": claim_id,
            "player_id": "player-1",
            "amount": {"asset": asset, "amount": amount},
            "destination": {"type": "stellar_account", "address": dest},
            "idempotency_key": key,
            "requested_by": "player-1",
            "requested_at": "2025-01-01T12:00:00Z",
        }
        envelope: dict[str, Any] = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "type": "prizeflow.payouts.PayoutRequested.v1",
            "source": "/prizeflow/rewards",
            "subject": None,
            # Now: a consumer refuses an event older than its dedup horizon (ADR 0008).
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "correlationid": correlation_id,
            "causationid": None,
            "schemaversion": 1,
            "data": data,
        }
        return claim_id, correlation_id.encode(), json.dumps(envelope).encode()

    @property
    def _requests_topic(self) -> str:
        return "prizeflow.payouts.requests.v1" + self.settings.kafka_topic_suffix

    async def create(self, dest: str, amount: int, *, asset: str = "XLM", key: str | None = None) -> Outcome:
        """Ask for a payout the only way there is (PayoutRequested on Kafka, as rewards does) and wait for what
        payouts recorded: a payout, a refusal for good, or a dead letter (an unreadable or conflicting
        request)."""
        key = key or unique("st")
        claim_id, record_key, value = self._request(dest, amount, asset, key)
        before = await self._outcomes(key, claim_id)
        letters = len(await fetch(self.db, "SELECT id FROM dead_letters"))
        consumed = await self._consumed()
        await publish_raw(self.kafka, self._requests_topic, [(record_key, value)])

        async def after() -> Outcome | None:
            if await self._consumed() <= consumed:
                return None  # not settled yet (a duplicate changes nothing else one could wait for)
            rows = await fetch(self.db, "SELECT reason, detail FROM dead_letters ORDER BY id")
            if len(rows) > letters:
                return Outcome("dead_letter", code=rows[-1]["reason"], detail=rows[-1]["detail"])
            now = await self._outcomes(key, claim_id)
            if now is None:
                return None
            return Outcome(now.kind, payout_id=now.payout_id, code=now.code, created=before is None)

        outcome = await eventually(after, lambda o: o is not None, timeout=30, interval=0.05)
        assert outcome is not None
        return outcome

    async def create_together(self, requests: Sequence[tuple[str, int, str, str]]) -> list[Outcome]:
        """Several well-formed requests `(dest, amount, asset, key)` published at once (one produce call, so the
        consumer sees them together, as a burst of claims would arrive); waits for each one's payout or
        refusal."""
        built = [(key, *self._request(dest, amount, asset, key)) for dest, amount, asset, key in requests]
        await publish_raw(self.kafka, self._requests_topic, [(rk, value) for _, _, rk, value in built])

        async def outcomes() -> list[Outcome | None]:
            return [await self._outcomes(key, claim_id) for key, claim_id, _, _ in built]

        settled = await eventually(outcomes, lambda found: None not in found, timeout=30, interval=0.05)
        return [o for o in settled if o is not None]

    async def _consumed(self) -> float:
        """Records the requests consumer has settled so far (applied, duplicate or dead-lettered)."""
        text = (await self.client.get("/metrics")).text
        prefix = 'prizeflow_payouts_events_consumed_total{consumer="payouts-requests"'
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

    async def _outcomes(self, key: str, claim_id: str) -> Outcome | None:
        payouts = await fetch(self.db, "SELECT id FROM payouts WHERE idempotency_key = $1", key)
        if payouts:
            return Outcome("payout", payout_id=payouts[0]["id"])
        refused = await fetch(self.db, "SELECT code FROM payout_request_refusals WHERE claim_id = $1", claim_id)
        if refused:
            return Outcome("refused", code=refused[0]["code"])
        return None

    async def states(self, keys: Sequence[str]) -> dict[str, str]:
        rows = await fetch(self.db, "SELECT idempotency_key, state FROM payouts WHERE idempotency_key = ANY($1)", keys)
        return {r["idempotency_key"]: r["state"] for r in rows}

    async def wait_final(self, keys: Sequence[str], timeout: float = 90.0) -> dict[str, str]:
        async def probe() -> dict[str, str]:
            return await self.states(keys)

        try:
            return await eventually(
                probe,
                lambda s: len(s) == len(keys) and all(v in ("paid", "failed", "cancelled") for v in s.values()),
                timeout=timeout,
                interval=0.2,
            )
        except AssertionError as err:
            raise AssertionError(f"{err}\n{await self.dump()}") from None

    async def dump(self) -> str:
        """The provider's books, for assertion messages."""
        txs = await fetch(
            self.db,
            "SELECT id, lane, sequence, state, submits, polls, sign_requests, last_status, error_code, detail,"
            " cardinality(payout_ids) AS n FROM stellar_txs ORDER BY created_at",
        )
        pays = await fetch(
            self.db, "SELECT state, error_code, count(*) FROM stellar_payouts GROUP BY 1, 2 ORDER BY 1, 2"
        )
        lanes = await fetch(self.db, "SELECT account, sequence, busy_tx FROM stellar_lanes")
        stats = self.rpc.admin.stats()
        return "\n".join(
            [
                "txs:",
                *(str(dict(t)) for t in txs),
                "payouts:",
                *(str(dict(p)) for p in pays),
                "lanes:",
                *(str(dict(lane)) for lane in lanes),
                f"emulator: {stats}",
            ]
        )

    def payments(self) -> list[dict[str, Any]]:
        return self.rpc.admin.payments()

    def paid_count(self) -> Counter[str]:
        return Counter(p["destination"] for p in self.payments())


@asynccontextmanager
async def stellar_stack(
    *,
    infra: Infra,
    db: str,
    kafka: str,
    topic_suffix: str,
    tmp: Path,
    monkeypatch: Any,
    ledger_ms: int = 300,
    channels: int = 0,
    live: bool = True,
    backend: str | None = "hot_key",
    options: dict[str, Any] | None = None,
    emulator_env: dict[str, str] | None = None,
    settings_overrides: dict[str, Any] | None = None,
    contract_id: str | None = None,
    signer_env: dict[str, str] | None = None,
    extra_signers: Sequence[str] = (),
) -> AsyncIterator[Stack]:
    keys = Keys.make(channels)
    emulator, url = emulator_process(tmp / "emulator.log", ledger_ms=ledger_ms, env=emulator_env)
    emulator.start()
    signer: Process | None = None
    signer_db = ""
    try:
        rpc = Rpc(url)
        fund(rpc, keys)
        for account in [keys.funding.public_key, *(c.public_key for c in keys.channels)]:
            if extra_signers:
                rpc.admin.create_account(account, signers=dict.fromkeys(extra_signers, 1))
        suffix = topic_suffix
        await provision_test_topics(kafka, suffix)  # before the signer and payouts verify them
        if backend is not None:
            name = f"test_{uuid.uuid4().hex[:16]}"
            signer_db = await create_database(infra, name)
            await upgrade_to_head(SIGNER_ALEMBIC_INI, signer_db)
            signer = signer_process(
                signer_db,
                kafka,
                suffix,
                keys,
                tmp / "signer.log",
                backend=backend,
                contract_id=contract_id,
                extra=signer_env,
            ).start()
        for k, v in stellar_env(keys, url, contract_id=contract_id).items():
            monkeypatch.setenv(k, v)
        settings = settings_for(
            db,
            kafka,
            stellar_providers_file(tmp, **(options or {})),
            topic_suffix=suffix,
            payouts_live_execution=live,
            payouts_confirm_poll_ms=100,
            outbox_poll_interval_ms=20,
            **(settings_overrides or {}),
        )
        async with running(settings) as (parts, client):
            yield Stack(rpc, url, keys, settings, parts, client, db, signer, emulator, tmp, signer_db, kafka)
    finally:
        if signer is not None:
            signer.stop()
        emulator.stop()
        if signer_db:
            await drop_database(infra, signer_db.rsplit("/", 1)[-1])


__all__ = [
    "NETWORK",
    "SIGNER_ALEMBIC_INI",
    "Keys",
    "Outcome",
    "Process",
    "Stack",
    "destinations",
    "emulator_process",
    "free_port",
    "fund",
    "signer_process",
    "stellar_env",
    "stellar_providers_file",
    "stellar_stack",
]
