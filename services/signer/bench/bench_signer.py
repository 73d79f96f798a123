"""Signer benchmark: signatures per second WITH every check (decode, intent match, caps), per backend.

The use case runs as in the service (SignPipeline: decode_and_check, spending policy, sign, verify the
signature, build the result event) on an in-memory store, so the figure is the signer's CPU cost per
request without PostgreSQL/Kafka. Two shapes: 100-payment batches (100 operations checked per signature)
and single payments. Backends: hot_key and pkcs11 (a real Ed25519 key in a SoftHSM2 token).

Run: `uv run python services/signer/bench/bench_signer.py [--seconds 3] [--out FILE]`. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stellar_sdk import Keypair

import prizeflow_stellar as ps
from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.signer import SignatureRequested, TransactionSigned
from prizeflow_signer.adapters.backends import HotKeyBackend, Pkcs11Backend
from prizeflow_signer.application.books import Books
from prizeflow_signer.application.ports import AuditRecord, SignatureBackend
from prizeflow_signer.application.schemes import StellarScheme
from prizeflow_signer.application.sign_pipeline import SignPipeline
from prizeflow_signer.domain.policy import LiveSignature, SpendingPolicy
from prizeflow_signer.softhsm import DEFAULT_KEY_LABEL, SoftHsmToken
from prizeflow_stellar.checks import CheckPolicy
from prizeflow_testkit.bench import print_result

NETWORK = "Prizeflow Signer Bench ; 2025"
BIG = 2**62


class NoResults:
    """Nothing kept: the same requests are signed again and again (the bench measures checks and signing)."""

    async def get(self, request_id: str) -> str | None:
        return None

    async def save(self, request_id: str, outcome: str, envelope: str) -> None:
        return None


class NoSpend:
    async def lock(self) -> None:
        return None

    async def spent_in_window(self, assets: Sequence[str]) -> dict[str, int]:
        return {}

    async def record(self, request_id: str, amounts: Mapping[str, int]) -> None:
        return None


class NoSignatures:
    async def live(self, payout_ids: Sequence[str]) -> dict[str, LiveSignature]:
        return {}

    async def record(self, **kw: Any) -> None:
        return None


class NoAudit:
    async def record(self, record: AuditRecord) -> None:
        return None


@dataclass
class KeptOutbox:
    emitted: list[Envelope[Any]] = field(default_factory=list)

    async def stage(self, envelope: Envelope[Any]) -> None:
        self.emitted.append(envelope)

    async def stage_again(self, envelope: Envelope[Any]) -> None:
        self.emitted.append(envelope)


def requests(source: str, count: int, ops: int) -> list[Envelope[Any]]:
    dests = [Keypair.random().public_key for _ in range(ops)]
    out = []
    for n in range(count):
        built = ps.build_payments(
            source_account=source,
            sequence=10_000 + n,
            payments=[ps.PaymentInstruction(f"po-{n}-{i}", d, "XLM", 1_000 + i) for i, d in enumerate(dests)],
            network_passphrase=NETWORK,
            valid_until=int(time.time()) + 1800,
        )
        req: SignatureRequested = built.signature_request(
            request_id=f"sig-{n}", network_passphrase=NETWORK, max_fee_stroops=1_000_000
        )
        out.append(new_event(req, source="/bench", correlation_id=f"flow-{n}", event_id=uuid.uuid4()))
    return out


async def measure(backend: SignatureBackend, ops: int, seconds: float) -> dict[str, Any]:
    source = backend.public_key
    assert source is not None
    outbox = KeptOutbox()
    books = Books(results=NoResults(), spend=NoSpend(), signatures=NoSignatures(), audit=NoAudit(), outbox=outbox)
    sign = SignPipeline(
        backend=backend,
        schemes=[
            StellarScheme(
                CheckPolicy(
                    network_passphrase=NETWORK,
                    funding_account=source,
                    allowed_sources=frozenset({source}),
                    max_fee_stroops=1_000_000,
                    contract_id=None,
                    method_name="distribute_winnings",
                    allowed_assets=frozenset({"XLM"}),
                    max_validity_seconds=3600,
                )
            )
        ],
        spending=SpendingPolicy(tx_caps={"XLM": BIG}, daily_caps={"XLM": BIG}, deny_destinations=frozenset()),
        source="/prizeflow/signer",
    )
    batch = requests(source, 50 if ops > 1 else 500, ops)
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for env in batch:
            await sign(books, env)
        done += len(batch)
    elapsed = time.perf_counter() - started
    assert all(isinstance(e.data, TransactionSigned) for e in outbox.emitted), "every honest request must be signed"
    return {
        "operations_per_tx": ops,
        "signatures": done,
        "seconds": round(elapsed, 3),
        "signatures_per_s": round(done / elapsed, 1),
        "operations_checked_per_s": round(done * ops / elapsed, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="per backend and shape")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    hot = HotKeyBackend(Keypair.random().secret)
    with tempfile.TemporaryDirectory(prefix="signer-bench-") as tmp:
        token = SoftHsmToken.create(Path(tmp))
        token.generate_key(DEFAULT_KEY_LABEL)
        hsm = Pkcs11Backend(
            module=token.module, token_label=token.token_label, pin=token.pin, key_label=DEFAULT_KEY_LABEL
        )
        result: dict[str, Any] = {"benchmark": "signer", "checks": "decode_and_check + caps + signature verify"}
        for name, backend in (("hot_key", hot), ("pkcs11_softhsm2", hsm)):
            result[name] = {
                "batch_100_payments": await measure(backend, 100, args.seconds),
                "single_payment": await measure(backend, 1, args.seconds),
            }
        hsm.close()
    print_result(result, args.out)


if __name__ == "__main__":
    asyncio.run(main())
