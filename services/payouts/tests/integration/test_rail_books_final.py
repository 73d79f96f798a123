"""The rails' own books keep their final states in the database (migration 0016): a late or replayed provider
answer, whatever statement it reaches, never moves a row out of `paid`/`sent`/`landed`, and a TON payout is never
bounceable. Each case is the update a stale answer would make, refused by PostgreSQL itself; the rails' guarded
updates (the compare-and-set statements) are exercised through the emulators in test_<rail>_rail.py."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from prizeflow_payouts.adapters.exchange import store as exchange_book
from prizeflow_payouts.adapters.telegram import journal
from prizeflow_payouts.adapters.ton import store as ton_book
from prizeflow_runtime.db import create_engine
from prizeflow_testkit.db import fetch

pytestmark = pytest.mark.integration

HEX = "ab" * 32
RAW = "0:" + "cd" * 32


async def refused(db: str, sql: str, *args: object) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="final state"):
        await fetch(db, sql, *args)


async def ton_payout(db: str, state: str, **cols: object) -> str:
    key = f"key-{secrets.token_hex(4)}"
    names = ", ".join(cols)
    marks = ", ".join(f"${n}" for n in range(4, 4 + len(cols)))
    await fetch(
        db,
        f"INSERT INTO ton_payouts (provider, idempotency_key, payout_id, asset, amount, destination, bounce, state"
        f"{', ' + names if cols else ''}) VALUES ('ton', $1, $2, 'TON', 5, '{RAW}', false, $3"
        f"{', ' + marks if cols else ''})",
        key,
        f"po-{key}",
        state,
        *cols.values(),
    )
    return key


async def test_a_paid_ton_payout_stays_paid_with_its_transaction(db: str) -> None:
    key = await ton_payout(db, "paid", message_hash=HEX, tx_hash=HEX)
    for late in ("queued", "sending", "failed"):
        await refused(
            db,
            "UPDATE ton_payouts SET state = $2, error_code = 'tx_failed', retryable = true WHERE idempotency_key = $1",
            key,
            late,
        )
    await refused(db, "UPDATE ton_payouts SET tx_hash = $2 WHERE idempotency_key = $1", key, "ef" * 32)
    # The rail's own statements find nothing to move (they name the state they expect).
    engine = create_engine(db)
    try:
        async with engine.begin() as conn:
            params = {"provider": "ton", "key": key, "code": "tx_failed", "retryable": True, "detail": "late"}
            assert (await conn.execute(ton_book.PAYOUT_FAILED, params)).rowcount == 0
            assert (await conn.execute(ton_book.REQUEUE_FAILED, params)).rowcount == 0
    finally:
        await engine.dispose()
    [row] = await fetch(db, "SELECT state, tx_hash FROM ton_payouts WHERE idempotency_key = $1", key)
    assert (row["state"], row["tx_hash"]) == ("paid", HEX)


async def test_a_ton_failure_for_good_moves_only_to_paid_the_chains_late_truth(db: str) -> None:
    key = await ton_payout(db, "failed", error_code="destination_blocked", retryable=False)
    await refused(db, "UPDATE ton_payouts SET state = 'queued' WHERE idempotency_key = $1", key)
    await refused(db, "UPDATE ton_payouts SET retryable = true WHERE idempotency_key = $1", key)
    await fetch(db, "UPDATE ton_payouts SET reported = true WHERE idempotency_key = $1", key)  # bookkeeping: fine
    await fetch(
        db,
        "UPDATE ton_payouts SET state = 'paid', message_hash = $2, tx_hash = $2 WHERE idempotency_key = $1",
        key,
        HEX,
    )


async def test_a_ton_payout_is_never_bounceable(db: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="ton_payouts_never_bounceable"):
        await fetch(
            db,
            "INSERT INTO ton_payouts (provider, idempotency_key, payout_id, asset, amount, destination, bounce, state)"
            f" VALUES ('ton', 'k-bounce', 'po-bounce', 'TON', 5, '{RAW}', true, 'queued')",
        )


async def test_a_landed_ton_message_stays_landed(db: str) -> None:
    key = await ton_payout(db, "paid", message_hash=HEX, tx_hash=HEX)
    await fetch(
        db,
        "INSERT INTO ton_messages (request_id, provider, idempotency_key, payout_id, wallet, seqno, valid_until,"
        f" request, signed_boc, message_hash, state) VALUES ('ton-m1', 'ton', $1, $2, '{RAW}', 1, 10, '{{}}', 'te6',"
        " $3, 'landed')",
        key,
        f"po-{key}",
        HEX,
    )
    for late in ("expired", "signed", "refused"):
        await refused(db, "UPDATE ton_messages SET state = $1 WHERE request_id = 'ton-m1'", late)


async def test_a_sent_exchange_withdrawal_stays_sent_with_its_id(db: str) -> None:
    await fetch(
        db,
        "INSERT INTO exchange_withdrawals (payout_id, provider, idempotency_key, client_id, state, asset, amount,"
        " currency, network, address, submitted_at, withdrawal_id) VALUES ('po-x', 'ex', 'k-x', 'c', 'sent', 'USDC',"
        " 5, 'USDC', 'ETH', 'a', now(), 'w-1')",
    )
    await refused(
        db, "UPDATE exchange_withdrawals SET state = 'not_sent', withdrawal_id = NULL WHERE payout_id = 'po-x'"
    )
    await refused(db, "UPDATE exchange_withdrawals SET withdrawal_id = 'w-2' WHERE payout_id = 'po-x'")
    engine = create_engine(db)
    try:
        book = exchange_book.SqlWithdrawalBook(engine)
        await book.mark_not_sent("po-x", resolved_by="late")  # guarded: nothing to move
        assert await book.mark_sent("po-x", "w-2")  # guarded: a replayed answer changes nothing
        record = await book.get("po-x")
    finally:
        await engine.dispose()
    assert record is not None
    assert (record.state.value, record.withdrawal_id) == ("sent", "w-1")


async def test_a_sent_telegram_gift_stays_sent_with_its_transaction(db: str) -> None:
    await fetch(
        db,
        "INSERT INTO telegram_gift_sends (payout_id, idempotency_key, provider, user_id, gift_id, star_count, state,"
        " transaction_id) VALUES ('po-t', 'k-t', 'telegram', 7, 'g', 15, 'sent', 'gift-1')",
    )
    await refused(
        db, "UPDATE telegram_gift_sends SET state = 'refused', transaction_id = NULL WHERE payout_id = 'po-t'"
    )
    await refused(db, "UPDATE telegram_gift_sends SET transaction_id = 'gift-2' WHERE payout_id = 'po-t'")
    engine = create_engine(db)
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(journal.RESEND, {"payout_id": "po-t"})).rowcount == 0
            assert (await conn.execute(journal.REFUSED, {"payout_id": "po-t", "code": "late"})).rowcount == 0
    finally:
        await engine.dispose()
    [row] = await fetch(db, "SELECT state, transaction_id FROM telegram_gift_sends WHERE payout_id = 'po-t'")
    assert (row["state"], row["transaction_id"]) == ("sent", "gift-1")
