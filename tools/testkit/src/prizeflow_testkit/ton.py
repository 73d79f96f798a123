"""The TON rail's test stack: the TON API emulator and the signer as processes, payouts in this event loop.

The signer's hot key (a Stellar seed: the same Ed25519 key) is the wallet's key; the emulator is told the
wallet's public key at genesis (it does not derive addresses from a state init).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from stellar_sdk import Keypair

from prizeflow_contracts.events.signer import TonBatchSignatureRequested, TonTransferIntent
from prizeflow_devstack.infra import Infra, create_database, drop_database
from prizeflow_emulator_kit.client import AdminClient
from prizeflow_payouts.bootstrap import Payouts
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_testkit import Process, free_port, provision_test_topics
from prizeflow_testkit.payouts import running, settings_for
from prizeflow_testkit.stellar import SIGNER_ALEMBIC_INI, Keys, signer_process
from prizeflow_ton.addresses import TonAddress
from prizeflow_ton.highload import HighloadBatch, inner
from prizeflow_ton.messages import TransferKind, to_b64

TON_API_KEY_ENV: Final = "TONCENTER_API_KEY"
TON_API_URL_ENV: Final = "TON_API_URL"
NANO: Final = 1_000_000_000
HIGHLOAD_TIMEOUT_S: Final = 20  # the test highload wallet's timeout: an unincluded batch is dead within ~30 s


def random_address(*, bounceable: bool = False) -> str:
    """A fresh user-friendly address (workchain 0), non-bounceable unless asked."""
    return TonAddress(0, os.urandom(32), None).friendly(bounceable=bounceable, test_only=False)


def raw(address: str) -> str:
    from prizeflow_ton.addresses import canonical

    return canonical(address)


def batch_request(
    batch: HighloadBatch,
    *,
    master: str,
    payout_ids: list[str] | None = None,
    request_id: str | None = None,
    jetton_asset: str = "USDT",
) -> TonBatchSignatureRequested:
    """The signature request an honest payouts would send for `batch`: one intent per transfer, in order (TON
    transfers in `TON`, jetton transfers in `jetton_asset` of `master` through the transfer's jetton wallet)."""
    ids = payout_ids or [f"po-{uuid.uuid4().hex[:10]}" for _ in batch.transfers]
    intents = [
        TonTransferIntent(
            payout_id=p,
            destination=t.destination,
            asset=jetton_asset if t.kind is TransferKind.JETTON else "TON",
            amount=t.amount,
            bounce=t.bounce,
            jetton_master=master if t.kind is TransferKind.JETTON else None,
            jetton_wallet=t.jetton_wallet if t.kind is TransferKind.JETTON else None,
        )
        for p, t in zip(ids, batch.transfers, strict=True)
    ]
    return TonBatchSignatureRequested(
        request_id=request_id or f"ton-batch-{uuid.uuid4().hex[:12]}",
        payout_ids=ids,
        wallet=batch.wallet,
        unsigned_inner_boc=to_b64(inner(batch)),
        query_id=batch.query_id.value,
        created_at=batch.created_at,
        timeout=batch.timeout,
        intents=intents,
    )


class TonApi:
    """The emulator's admin routes (`/_emulator/...`, synchronous: tests and harnesses call them between awaits)."""

    def __init__(self, url: str) -> None:
        if not url.startswith("http://127.0.0.1:"):
            raise ValueError("the TON emulator runs on loopback")
        self.url = url.rstrip("/")
        self._admin = AdminClient(self.url)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **query: str) -> Any:
        """`method /_emulator<path>`: its JSON answer (AdminCallError when refused)."""
        return self._admin.call(method, path, body, query=query)

    def faults(self, **values: Any) -> None:
        self.call("POST", "/faults", values)

    def counter(self, name: str) -> int:
        return int(self.call("GET", "/stats")["counters"].get(name, 0))

    def transfers(self, wallet: str, destination: str) -> dict[str, int]:
        return dict(self.call("GET", "/transfers", wallet=wallet, destination=destination))

    def jetton_balance(self, master: str, owner: str) -> int:
        return int(self.call("GET", "/balances", address=owner, master=master)["jetton"])

    def ton_balance(self, address: str) -> int:
        return int(self.call("GET", "/balances", address=address)["ton"])


def emulator_process(log: Path, *, api_key: str, block_ms: int = 200) -> tuple[Process, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "TON_EMULATOR_PORT": str(port),
        "TON_EMULATOR_BLOCK_MS": str(block_ms),
        "TON_EMULATOR_SEED": "7",
        "TON_EMULATOR_API_KEY": api_key,
    }
    return Process([sys.executable, "-m", "prizeflow_ton_emulator"], env, log, url + "/_emulator/health"), url


@dataclass
class TonKeys:
    """The wallet's key (the signer's hot key), its addresses (a wallet v4r2 and a highload wallet v3), their
    USDT jetton wallets, a denied destination."""

    key: Keypair = field(default_factory=Keypair.random)
    api_key: str = field(default_factory=lambda: "ton-" + uuid.uuid4().hex)
    denied: str = field(default_factory=random_address)
    jetton_master: str = field(default_factory=lambda: "0:" + os.urandom(32).hex())
    jetton_wallet: str = field(default_factory=lambda: "0:" + os.urandom(32).hex())
    highload_jetton_wallet: str = field(default_factory=lambda: "0:" + os.urandom(32).hex())

    @property
    def wallet(self) -> str:
        return "0:" + hashlib.sha256(b"wallet-v4r2/" + self.key.raw_public_key()).hexdigest()

    @property
    def highload_wallet(self) -> str:
        return "0:" + hashlib.sha256(b"highload-v3/" + self.key.raw_public_key()).hexdigest()

    @property
    def public_key_hex(self) -> str:
        return bytes(self.key.raw_public_key()).hex()


def ton_signer_env(keys: TonKeys) -> dict[str, str]:
    caps = {"XLM": 10**16, "USDC": 10**16, "TON": 10**18, "USDT": 10**15}
    highload_jettons = {"USDT": {"master": keys.jetton_master, "wallet": keys.highload_jetton_wallet}}
    return {
        "SIGNER_TON_WALLET": keys.wallet,
        "SIGNER_TON_JETTONS": json.dumps({"USDT": {"master": keys.jetton_master, "wallet": keys.jetton_wallet}}),
        "SIGNER_TON_HIGHLOAD_WALLET": keys.highload_wallet,
        "SIGNER_TON_HIGHLOAD_JETTONS": json.dumps(highload_jettons),
        "SIGNER_TX_CAPS": json.dumps(caps),
        "SIGNER_DAILY_CAPS": json.dumps({k: v * 10 for k, v in caps.items()}),
        "SIGNER_DENY_DESTINATIONS": raw(keys.denied),
    }


def ton_providers_file(tmp: Path, keys: TonKeys, *, name: str = "ton", **options: Any) -> Path:
    """The `ton` provider of the stack: wallet v4r2 by default; with `wallet_version="highload_v3"` the highload
    wallet and its jetton wallet, batching (the v4r2-only `validity_s` left out)."""
    highload = options.get("wallet_version") == "highload_v3"
    timing: dict[str, Any] = (
        {"highload_timeout_s": HIGHLOAD_TIMEOUT_S, "created_at_lag_s": 1, "batch_linger_s": 0.2}
        if highload
        else {"validity_s": 30}
    )
    doc = {
        "approvals": {"TON": {"auto_below": "1000"}, "USDT": {"auto_below": "100000"}},
        "providers": [
            {
                "name": name,
                "type": "ton_wallet",
                "assets": ["TON", "USDT"],
                "destination_types": ["ton_wallet"],
                "secrets": {"api_key": TON_API_KEY_ENV},
                "options": {
                    "network": "testnet",
                    "api_url_env": TON_API_URL_ENV,
                    "wallet": keys.highload_wallet if highload else keys.wallet,
                    "public_key": keys.public_key_hex,
                    **timing,
                    "expiry_margin_s": 5,
                    "poll_s": 0.1,
                    "resign_after_s": 2.0,
                    "timeout_s": 1.0,
                    "assets": {
                        "TON": {"decimals": 9},
                        "USDT": {
                            "decimals": 6,
                            "jetton_master": keys.jetton_master,
                            "jetton_wallet": keys.highload_jetton_wallet if highload else keys.jetton_wallet,
                            "attach_nanotons": 50_000_000,
                        },
                    },
                    **options,
                },
            }
        ],
    }
    path = tmp / f"providers-ton-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass
class TonStack:
    api: TonApi
    url: str
    keys: TonKeys
    settings: PayoutsSettings
    parts: Payouts
    client: Any
    emulator: Process
    signer: Process
    highload: bool = False

    @property
    def wallet(self) -> str:
        """The wallet the provider pays from (the highload one with `wallet_version: highload_v3`)."""
        return self.keys.highload_wallet if self.highload else self.keys.wallet

    @property
    def jetton_wallet(self) -> str:
        return self.keys.highload_jetton_wallet if self.highload else self.keys.jetton_wallet


def genesis(
    api: TonApi, keys: TonKeys, *, ton: int = 1_000 * NANO, usdt: int = 10**12, timeout: int = HIGHLOAD_TIMEOUT_S
) -> None:
    """Both wallets of the key (v4r2, and highload v3 with `timeout`), funded with TON and USDT."""
    api.call("POST", "/wallets", {"address": keys.wallet, "public_key": keys.public_key_hex, "balance": ton})
    api.call(
        "POST",
        "/wallets",
        {"address": keys.highload_wallet, "public_key": keys.public_key_hex, "balance": ton, "type": "highload_v3",
         "timeout": timeout},
    )  # fmt: skip
    api.call(
        "POST",
        "/jettons",
        {"master": keys.jetton_master, "owner": keys.wallet, "jetton_wallet": keys.jetton_wallet, "balance": usdt},
    )
    api.call(
        "POST",
        "/jettons",
        {"master": keys.jetton_master, "owner": keys.highload_wallet, "jetton_wallet": keys.highload_jetton_wallet,
         "balance": usdt},
    )  # fmt: skip


@asynccontextmanager
async def ton_stack(
    *,
    infra: Infra,
    db: str,
    kafka: str,
    topic_suffix: str,
    tmp: Path,
    monkeypatch: Any,
    options: dict[str, Any] | None = None,
    settings_overrides: dict[str, Any] | None = None,
    backend: str = "hot_key",
    provider_name: str = "ton",
) -> AsyncIterator[TonStack]:
    keys = TonKeys()
    emulator, url = emulator_process(tmp / "ton-emulator.log", api_key=keys.api_key)
    emulator.start()
    signer: Process | None = None
    signer_db = ""
    try:
        api = TonApi(url)
        genesis(api, keys)
        await provision_test_topics(kafka, topic_suffix)
        signer_db = await create_database(infra, f"test_{uuid.uuid4().hex[:16]}")
        await upgrade_to_head(SIGNER_ALEMBIC_INI, signer_db)
        stellar_keys = Keys(funding=keys.key)
        signer = signer_process(
            signer_db,
            kafka,
            topic_suffix,
            stellar_keys,
            tmp / "signer.log",
            backend=backend,
            extra=ton_signer_env(keys),
        ).start()
        monkeypatch.setenv(TON_API_KEY_ENV, keys.api_key)
        monkeypatch.setenv(TON_API_URL_ENV, url)
        settings = settings_for(
            db,
            kafka,
            ton_providers_file(tmp, keys, name=provider_name, **(options or {})),
            topic_suffix=topic_suffix,
            payouts_live_execution=True,
            outbox_poll_interval_ms=20,
            **(settings_overrides or {}),
        )
        async with running(settings) as (parts, client):
            highload = (options or {}).get("wallet_version") == "highload_v3"
            yield TonStack(api, url, keys, settings, parts, client, emulator, signer, highload)
    finally:
        if signer is not None:
            signer.stop()
        emulator.stop()
        if signer_db:
            await drop_database(infra, signer_db.rsplit("/", 1)[-1])


__all__ = [
    "HIGHLOAD_TIMEOUT_S",
    "NANO",
    "TON_API_KEY_ENV",
    "TON_API_URL_ENV",
    "TonApi",
    "TonKeys",
    "TonStack",
    "batch_request",
    "emulator_process",
    "genesis",
    "random_address",
    "raw",
    "ton_providers_file",
    "ton_signer_env",
    "ton_stack",
]
