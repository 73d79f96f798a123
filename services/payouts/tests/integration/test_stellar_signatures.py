"""What payouts accepts as signed, and when it asks for another signature (PostgreSQL; the last test runs the
whole stack with the emulator and the real signer).

- A TransactionSigned is accepted only if its envelope is exactly the transaction payouts built and stored
  (hash over the received bytes, canonical XDR) and carries a valid signature of `signed_by`; anything else
  is never submitted.
- POST /payouts/{id}/submit-signed holds the operator's envelope to the same standard.
- The signer signs one live transaction per payout: payouts never needs a second one while the first can
  land (it waits out a signed envelope's time bound before rebuilding its payouts), and a
  live_signature_exists refusal sends the payouts back to the queue, never to failed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from stellar_sdk import Keypair, TransactionEnvelope, xdr

import prizeflow_stellar as ps
from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.signer import SignatureRefusalCode, SignatureRefused, TransactionSigned
from prizeflow_devstack.infra import Infra
from prizeflow_payouts.adapters.stellar import StellarPayoutProvider
from prizeflow_payouts.adapters.stellar import store as q
from prizeflow_payouts.adapters.stellar.books import bind
from prizeflow_payouts.adapters.stellar.provider import StellarOptions
from prizeflow_payouts.adapters.stellar.settings import StellarMode
from prizeflow_runtime.db import create_engine
from prizeflow_runtime.sql_uow import unit_of_work
from prizeflow_stellar.envelopes import network_id
from prizeflow_testkit import eventually
from prizeflow_testkit.payouts import fetch
from prizeflow_testkit.stellar import NETWORK, destinations, stellar_stack

pytestmark = pytest.mark.integration

FUNDING = Keypair.random()
DEST = Keypair.random().public_key
OTHER = Keypair.random().public_key


@pytest.fixture
async def engine(db: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db, pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture
def provider(db: str) -> StellarPayoutProvider:
    """The provider's handlers only; its engine is never started (nothing here talks to RPC)."""
    options = StellarOptions(
        name="stellar",
        mode=StellarMode.PAYMENTS,
        live_execution=True,
        network_passphrase=NETWORK,
        rpc_url="http://127.0.0.1:1/",
        funding_account=FUNDING.public_key,
        channel_accounts=(),
        contract_id=None,
        method_name=ps.DEFAULT_METHOD_NAME,
        contract_asset="XLM",
        assets=("XLM", "USDC"),
        max_fee_stroops=2_000_000,
    )
    return StellarPayoutProvider(options, database_url=db)


@dataclass
class Built:
    tx_id: str
    payout_ids: list[str]
    tx: ps.BuiltTransaction


async def built_tx(engine: AsyncEngine, *, asset: str = "USDC", payouts: int = 1, state: str = "signing") -> Built:
    """A transaction as `_build_on` leaves it: payouts in it, the lane held, awaiting its signature."""
    tag = uuid.uuid4().hex[:8]
    tx_id = f"stx-{tag}"
    ids = [f"po-{tag}-{n}" for n in range(payouts)]
    dests = [DEST, OTHER, *(Keypair.random().public_key for _ in range(max(0, payouts - 2)))][:payouts]
    sequence = int(uuid.uuid4().int % 10**9) + 1
    tx = ps.build_payments(
        source_account=FUNDING.public_key,
        sequence=sequence,
        payments=[ps.PaymentInstruction(p, d, asset, 5_000_000) for p, d in zip(ids, dests, strict=True)],
        network_passphrase=NETWORK,
        valid_until=int(time.time()) + 60,
    )
    request = tx.signature_request(request_id=tx_id, network_passphrase=NETWORK, max_fee_stroops=2_000_000)
    async with engine.begin() as conn:
        await conn.execute(q.ENSURE_LANE, {"account": FUNDING.public_key, "role": "funding"})
        await conn.execute(
            text("UPDATE stellar_lanes SET sequence = :s, busy_tx = :tx WHERE account = :a"),
            {"s": sequence, "tx": tx_id, "a": FUNDING.public_key},
        )
        await conn.execute(
            q.INSERT_PAYOUTS,
            {
                "provider": "stellar",
                "keys": [f"key-{p}" for p in ids],
                "ids": ids,
                "assets": [asset] * payouts,
                "amounts": [5_000_000] * payouts,
                "dests": dests,
            },
        )
        await conn.execute(
            q.INSERT_TX,
            {
                "id": tx_id,
                "provider": "stellar",
                "lane": FUNDING.public_key,
                "sequence": sequence,
                "kind": "payments",
                "payout_ids": ids,
                "state": state,
                "unsigned_xdr": tx.envelope_xdr,
                "sign_request": request.model_dump_json(),
                "tx_hash": tx.tx_hash,
                "fee": tx.fee,
                "max_time": tx.max_time,
                "sign_requests": 1,
                "check_in_s": 5,
            },
        )
        await conn.execute(q.ASSIGN_PAYOUTS, {"tx": tx_id, "payout_ids": ids})
    return Built(tx_id, ids, tx)


def sign(envelope_xdr: str, key: Keypair, tx_hash: bytes) -> str:
    """`envelope_xdr` (whatever its encoding) plus `key`'s signature over `tx_hash`, bytes appended as they are."""
    raw = base64.b64decode(envelope_xdr)
    assert raw[-4:] == b"\0\0\0\0"
    sig = xdr.DecoratedSignature(xdr.SignatureHint(key.signature_hint()), xdr.Signature(key.sign(tx_hash)))
    return base64.b64encode(raw[:-4] + b"\0\0\0\1" + sig.to_xdr_bytes()).decode()


def zero_padded_alphanum12(envelope_xdr: str) -> str:
    """The same USDC payment with its code sent as a zero-padded 12-character code: stellar-sdk reads it back
    as the transaction built (same re-encoded hash); the network sees another transaction."""
    env = xdr.TransactionEnvelope.from_xdr(envelope_xdr)
    assert env.v1 is not None
    pay = env.v1.tx.operations[0].body.payment_op
    assert pay is not None
    assert pay.asset.alpha_num4 is not None
    a4 = pay.asset.alpha_num4
    pay.asset = xdr.Asset(
        xdr.AssetType.ASSET_TYPE_CREDIT_ALPHANUM12,
        alpha_num12=xdr.AlphaNum12(xdr.AssetCode12(a4.asset_code.asset_code4 + b"\0" * 8), a4.issuer),
    )
    variant = str(env.to_xdr())
    assert TransactionEnvelope.from_xdr(variant, NETWORK).to_xdr() == envelope_xdr
    return variant


def signed_event(b: Built, signed_xdr: str, *, tx_hash: str | None = None, signed_by: str | None = None) -> Any:
    payload = TransactionSigned(
        request_id=b.tx_id,
        payout_ids=b.payout_ids,
        signed_xdr=signed_xdr,
        tx_hash=tx_hash or b.tx.tx_hash,
        signed_by=signed_by or FUNDING.public_key,
    )
    return new_event(payload, source="/prizeflow/signer", correlation_id=b.tx_id)


async def deliver(engine: AsyncEngine, provider: StellarPayoutProvider, event: Envelope[EventPayload]) -> None:
    """As the `payouts-signer-results` consumer does: the handler inside the inbox transaction."""
    async with AsyncSession(engine) as session, session.begin():
        await provider.on_signer_results(session, [event])


async def tx_row(engine: AsyncEngine, tx_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT state, signed_xdr, error_code, detail, extract(epoch FROM next_check_at)::bigint AS due,"
                    " max_time FROM stellar_txs WHERE id = :id"
                ),
                {"id": tx_id},
            )
        ).mappings()
        return dict(row.one())


async def payout_rows(engine: AsyncEngine, ids: list[str]) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT payout_id, state, attempts, error_code, extract(epoch FROM not_before) AS not_before"
                    " FROM stellar_payouts WHERE payout_id = ANY(:ids)"
                ),
                {"ids": ids},
            )
        ).mappings()
        return {r["payout_id"]: dict(r) for r in rows}


async def test_the_signed_transaction_built_here_is_accepted_byte_for_byte(
    engine: AsyncEngine, provider: StellarPayoutProvider
) -> None:
    b = await built_tx(engine)
    signed_xdr = sign(b.tx.envelope_xdr, FUNDING, bytes.fromhex(b.tx.tx_hash))
    await deliver(engine, provider, signed_event(b, signed_xdr))
    row = await tx_row(engine, b.tx_id)
    assert row["state"] == "signed"
    assert row["signed_xdr"] == signed_xdr


def _another(b: Built) -> Any:
    other = ps.build_payments(
        source_account=FUNDING.public_key,
        sequence=b.tx.sequence,
        payments=[ps.PaymentInstruction(b.payout_ids[0], OTHER, "USDC", 5_000_000)],
        network_passphrase=NETWORK,
        valid_until=b.tx.max_time,
    )
    return signed_event(b, sign(other.envelope_xdr, FUNDING, bytes.fromhex(other.tx_hash)), tx_hash=other.tx_hash)


TAMPERED = {
    # What a signer re-encoding with stellar-sdk used to return: the stored hash, but other bytes on the wire.
    "zero_padded_asset_code": lambda b: signed_event(
        b, sign(zero_padded_alphanum12(b.tx.envelope_xdr), FUNDING, bytes.fromhex(b.tx.tx_hash))
    ),
    "no_valid_signature": lambda b: signed_event(b, sign(b.tx.envelope_xdr, FUNDING, b"\0" * 32)),
    "another_transaction_consistently_hashed": _another,
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
async def test_a_signed_envelope_that_is_not_the_transaction_built_is_refused_and_never_submitted(
    engine: AsyncEngine, provider: StellarPayoutProvider, case: str
) -> None:
    b = await built_tx(engine)
    await deliver(engine, provider, TAMPERED[case](b))
    row = await tx_row(engine, b.tx_id)
    assert row["state"] == "signing"  # never 'signed': nothing is submitted
    assert row["signed_xdr"] is None
    assert row["error_code"] == "signed_envelope_mismatch", row
    # No new signature is asked for it; it waits for its own time bound, then dies and its payouts are rebuilt.
    assert row["due"] == row["max_time"] + 1
    assert {p["state"] for p in (await payout_rows(engine, b.payout_ids)).values()} == {"in_tx"}
    # ... and the honest answer arriving after that is still taken.
    await deliver(engine, provider, signed_event(b, sign(b.tx.envelope_xdr, FUNDING, bytes.fromhex(b.tx.tx_hash))))
    assert (await tx_row(engine, b.tx_id))["state"] == "signed"


async def test_live_signature_exists_requeues_the_payouts_until_the_signer_will_sign(
    engine: AsyncEngine, provider: StellarPayoutProvider
) -> None:
    b = await built_tx(engine, payouts=2)
    live_until = int(time.time()) + 300
    refusal = SignatureRefused(
        request_id=b.tx_id,
        payout_ids=b.payout_ids,
        code=SignatureRefusalCode.LIVE_SIGNATURE_EXISTS,
        detail="payout po-x has a signed transaction that can land until ...",
        live_until=live_until,
    )
    await deliver(engine, provider, new_event(refusal, source="/prizeflow/signer", correlation_id=b.tx_id))
    assert (await tx_row(engine, b.tx_id))["state"] == "refused"
    payouts = await payout_rows(engine, b.payout_ids)
    assert {p["state"] for p in payouts.values()} == {"queued"}  # never failed: the live one may still pay them
    assert {p["attempts"] for p in payouts.values()} == {0}  # not their fault: the attempt is given back
    assert {int(p["not_before"]) for p in payouts.values()} == {live_until + 1}
    async with engine.connect() as conn:
        busy = await conn.scalar(
            text("SELECT busy_tx FROM stellar_lanes WHERE account = :a"), {"a": FUNDING.public_key}
        )
    assert busy is None


async def test_payouts_of_a_failed_batch_wait_out_its_time_bound_before_they_are_rebuilt(
    engine: AsyncEngine, provider: StellarPayoutProvider
) -> None:
    """The batch landed FAILED because of one payout: it can never land again, but the signer cannot know,
    so the innocent payouts are rebuilt only after its upper time bound (plus the clock margin)."""
    b = await built_tx(engine, payouts=2)
    tx = {"id": b.tx_id, "kind": "payments", "payout_ids": b.payout_ids, "max_time": b.tx.max_time}
    async with unit_of_work(engine, bind)() as books:
        await provider._after_failed_tx(books, tx, "tx_failed", ["payment_success", "payment_no_trust"])
    payouts = await payout_rows(engine, b.payout_ids)
    innocent, culprit = payouts[b.payout_ids[0]], payouts[b.payout_ids[1]]
    assert culprit["state"] == "failed"
    assert culprit["error_code"] == "destination_no_trustline"
    assert innocent["state"] == "queued"
    assert int(innocent["not_before"]) == b.tx.max_time + ps.TIME_BOUND_MARGIN_S + 1


async def test_payouts_of_an_envelope_dead_by_a_consumed_sequence_wait_out_its_time_bound(
    engine: AsyncEngine, provider: StellarPayoutProvider
) -> None:
    from prizeflow_contracts.errors import PayoutErrorCode

    b = await built_tx(engine, payouts=2)
    tx = {"id": b.tx_id, "tx_hash": b.tx.tx_hash, "max_time": b.tx.max_time}
    async with unit_of_work(engine, bind)() as books:
        await provider._requeue_or_fail(books, tx, PayoutErrorCode.TX_BAD_SEQ)
    payouts = await payout_rows(engine, b.payout_ids)
    assert {p["state"] for p in payouts.values()} == {"queued"}
    assert {int(p["not_before"]) for p in payouts.values()} == {b.tx.max_time + ps.TIME_BOUND_MARGIN_S + 1}


async def test_a_failed_batch_is_rebuilt_without_ever_asking_for_a_second_live_signature(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Payouts and the real signer together: a batch fails on the ledger (one destination has no USDC
    trustline); the others are paid exactly once by a transaction built after the first one's time bound,
    and the signer never had to refuse a second live transaction.

    The test closes the ledgers itself: no ledger closes until the burst is queued behind the first envelope, so
    the three always form one batch. (On a clock of its own, a ledger could close between the burst's payouts
    reaching the lane on a loaded machine, and the batch that fails would hold the untrusting payout alone.)"""
    async with stellar_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        ledger_ms=3_600_000,  # no ledger closes on the emulator's clock: the test closes them
        options={"validity_s": 10},
        topic_suffix=topic_suffix,
    ) as s:
        (blocker, *good) = destinations(s.rpc, 3)
        (untrusting,) = destinations(s.rpc, 1, usdc=False)
        # The first payout holds the lane (one envelope in flight per lane) so the next ones form one batch.
        assert (await s.create(blocker, 1_000_000, key=f"first-{uuid.uuid4().hex[:6]}")).kind == "payout"

        async def lane_busy() -> list[Any]:
            return await fetch(db, "SELECT state FROM stellar_txs WHERE state = 'submitted'")

        await eventually(lane_busy, lambda r: len(r) == 1, timeout=30)
        keys = [f"batch-{n}-{uuid.uuid4().hex[:6]}" for n in range(3)]
        burst = [(dest, 2_000_000, "USDC", key) for key, dest in zip(keys, [*good, untrusting], strict=True)]
        assert [o.kind for o in await s.create_together(burst)] == ["payout"] * 3

        async def queued() -> list[Any]:
            return await fetch(
                db,
                "SELECT sp.state FROM stellar_payouts sp JOIN payouts p ON p.id = sp.payout_id"
                " WHERE p.idempotency_key = ANY($1) AND sp.state = 'queued'",
                keys,
            )

        await eventually(queued, lambda r: len(r) == 3, timeout=30)

        async def close_ledgers() -> None:
            while True:
                await asyncio.to_thread(s.rpc.admin.close_ledger)
                await asyncio.sleep(0.5)

        closer = asyncio.create_task(close_ledgers())
        try:
            final = await s.wait_final(keys, timeout=90)
        finally:
            closer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closer
        assert final == {keys[0]: "paid", keys[1]: "paid", keys[2]: "failed"}, await s.dump()
        assert all(s.paid_count()[d] == 1 for d in good)
        assert s.paid_count()[untrusting] == 0
        txs = await fetch(db, "SELECT state, payout_ids, max_time, created_at FROM stellar_txs ORDER BY created_at")
        failed = [t for t in txs if t["state"] == "failed"]
        assert len(failed) == 1, await s.dump()
        # The batch: the untrusting destination's payout with the good ones to rebuild.
        ids = await fetch(db, "SELECT idempotency_key, id FROM payouts WHERE idempotency_key = ANY($1)", keys)
        by_key = {r["idempotency_key"]: r["id"] for r in ids}
        batch = set(failed[0]["payout_ids"])
        assert batch == set(by_key.values()), await s.dump()
        rebuilt = [t for t in txs if t["created_at"] > failed[0]["created_at"] and t["state"] == "success"]
        assert rebuilt, await s.dump()
        earliest = min(t["created_at"] for t in rebuilt)
        assert isinstance(earliest, datetime)
        assert earliest.timestamp() > failed[0]["max_time"] + ps.TIME_BOUND_MARGIN_S
        refusals = await fetch(s.signer_db, "SELECT code FROM signer_audit WHERE decision = 'refused'")
        assert refusals == []  # in particular, no live_signature_exists
        signed_for = await fetch(s.signer_db, "SELECT count(*) AS n FROM signer_payout_signatures")
        assert signed_for[0]["n"] == 4


async def test_submit_signed_holds_the_operator_to_the_exact_transaction_built(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a zero-padded variant signed over the stored hash was accepted (stellar-sdk re-encoded it back to
    the transaction built). Now: refused as non-canonical; the envelope accepted is the bytes posted."""
    async with stellar_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        backend="external",
        ledger_ms=1000,
        options={"validity_s": 600},
        topic_suffix=topic_suffix,
    ) as s:
        (dest,) = destinations(s.rpc, 1)
        payout_id = (await s.create(dest, 33_000_000, asset="USDC", key="ext-usdc")).payout_id

        async def view() -> dict[str, Any]:
            out: dict[str, Any] = (await s.client.get(f"/payouts/{payout_id}/unsigned-xdr", headers=s.admin)).json()
            return out

        got = await eventually(
            view, lambda v: isinstance(v.get("transaction"), dict) and v["transaction"]["state"] == "external"
        )
        tx = got["transaction"]
        post = f"/payouts/{payout_id}/submit-signed"
        stored_hash = bytes.fromhex(tx["tx_hash"])
        variant = zero_padded_alphanum12(tx["unsigned_xdr"])
        its_own_hash = hashlib.sha256(network_id(NETWORK) + base64.b64decode(variant)[:-4]).digest()
        for signed_over in (stored_hash, its_own_hash):
            signed = sign(variant, s.keys.funding, signed_over)
            r = await s.client.post(post, json={"signed_xdr": signed}, headers=s.admin)
            assert r.status_code == 422, r.text
            assert r.json()["code"] == "non_canonical_xdr", r.text
        right = sign(tx["unsigned_xdr"], s.keys.funding, stored_hash)
        r = await s.client.post(post, json={"signed_xdr": right}, headers=s.admin)
        assert r.status_code == 202, r.text
        assert (await s.wait_final(["ext-usdc"]))["ext-usdc"] == "paid"
        rows = await fetch(db, "SELECT signed_xdr FROM stellar_txs WHERE tx_hash = $1", tx["tx_hash"])
        assert [r["signed_xdr"] for r in rows] == [right]
        assert s.paid_count()[dest] == 1
