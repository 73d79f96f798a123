"""The TON statement against the TON API emulator: real payouts from the wallet v4r2 (signer, payouts, emulator),
then each kind of discrepancy injected through `POST /_emulator/discrepancies` and seen in the statement, page by
page."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from prizeflow_contracts.providers import ListsStatement, StatementLine, StatementLineKind
from prizeflow_devstack.infra import Infra
from prizeflow_payouts.adapters.ton import TonWalletProvider
from prizeflow_payouts.adapters.ton.books import ton_books
from prizeflow_payouts.adapters.ton.statement import TonStatement
from prizeflow_payouts.adapters.ton.toncenter import ToncenterClient
from prizeflow_runtime.db import create_engine
from prizeflow_testkit import fetch
from prizeflow_testkit.payouts import request_payout, wait_state
from prizeflow_testkit.ton import NANO, TonStack, random_address, raw, ton_stack

pytestmark = pytest.mark.integration

PAYOUT, FEE, REVERSAL = StatementLineKind.PAYOUT, StatementLineKind.FEE, StatementLineKind.REVERSAL


def inject(s: TonStack, body: dict[str, Any]) -> str | None:
    req = urllib.request.Request(
        f"{s.url}/_emulator/discrepancies", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
        line_id: str | None = json.loads(resp.read())["line_id"]
    return line_id


async def _all(provider: TonStatement, since: datetime, until: datetime) -> tuple[list[StatementLine], int]:
    lines: list[StatementLine] = []
    pages, cursor = 0, None
    while True:
        page = await provider.statement(since, until, cursor)
        pages += 1
        lines.extend(page.lines)
        assert await provider.statement(since, until, cursor) == page  # same window and cursor, same page
        if page.next_cursor is None:
            return lines, pages
        cursor = page.next_cursor


async def test_statement_lists_transfers_fees_and_each_injected_discrepancy(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)
    async with ton_stack(
        infra=infra, db=db, kafka=kafka_bootstrap, topic_suffix=topic_suffix, tmp=tmp_path, monkeypatch=monkeypatch
    ) as s:
        keys = []
        for n in range(7):
            key = f"ton-stmt-{n}-{uuid.uuid4().hex[:8]}"
            asset, amount = ("USDT", 1_000_000 + n) if n == 6 else ("TON", NANO + n)
            await request_payout(
                s.settings, key, amount=amount, address=random_address(), dtype="ton_wallet", asset=asset
            )
            keys.append(key)
        for key in keys:
            await wait_state(db, key, "paid", timeout=60)
        served = s.parts.config.registry.get("ton").provider
        assert isinstance(served, TonWalletProvider)
        assert isinstance(served, ListsStatement)
        # The service runs on its own event loop: the test reads through a statement of its own on the same books.
        client = ToncenterClient(served.o.api_url, api_key=served.o.api_key, timeout_s=5)
        engine = create_engine(db, pool_size=2)
        provider = TonStatement(served.o, client, ton_books(engine, served.o.name), page_limit=2)  # several pages
        try:
            await _check(s, provider, db, since, keys)
        finally:
            await client.close()
            await engine.dispose()


async def _check(s: TonStack, provider: TonStatement, db: str, since: datetime, keys: list[str]) -> None:
    ours = {
        r["id"]: r
        for r in await fetch(
            db,
            "SELECT p.id, p.idempotency_key, p.asset, p.amount, p.destination_address, p.provider_ref, p.fee_asset,"
            " p.fee_amount, t.fee AS books_fee FROM payouts p JOIN ton_payouts t ON t.payout_id = p.id"
            " WHERE p.idempotency_key = ANY($1)",
            keys,
        )
    }
    by_key = {r["idempotency_key"]: r["id"] for r in ours.values()}

    until = datetime.now(UTC) + timedelta(seconds=5)
    lines, pages = await _all(provider, since, until)
    assert pages > 1
    paid = [line for line in lines if line.kind is PAYOUT]
    assert sorted(line.reference or "" for line in paid) == sorted(ours)
    for line in paid:
        assert line.reference is not None
        p = ours[line.reference]
        assert (line.asset, line.amount, line.destination) == (p["asset"], p["amount"], p["destination_address"])
        assert line.provider_ref == p["provider_ref"]
    fees = [line for line in lines if line.kind is FEE]
    assert sorted(line.reference or "" for line in fees) == sorted(ours)  # one wallet transaction each
    assert all(line.asset == "TON" and line.amount > 0 for line in fees)
    # Each payout booked the fee its transaction cost (the paid result's fee): the statement's fee, to the nanoton.
    for line in fees:
        assert line.reference is not None
        p = ours[line.reference]
        assert (p["fee_asset"], p["fee_amount"], p["books_fee"]) == ("TON", line.amount, line.amount)
    assert len({line.line_id for line in lines}) == len(lines)

    ids = [by_key[k] for k in keys]
    missing, amount, destination, duplicate, reversal, fee, jetton = ids

    def ref(payout_id: str) -> str:
        return str(ours[payout_id]["provider_ref"])

    elsewhere = random_address()
    stranger = random_address()
    got = {
        "missing": inject(s, {"kind": "missing", "reference": ref(missing)}),
        "amount": inject(s, {"kind": "amount", "reference": ref(amount), "amount": 123}),
        "destination": inject(s, {"kind": "destination", "reference": ref(destination), "destination": elsewhere}),
        "duplicate": inject(s, {"kind": "duplicate", "reference": ref(duplicate)}),
        "reversal": inject(s, {"kind": "reversal", "reference": ref(reversal)}),
        "fee": inject(s, {"kind": "fee", "reference": ref(fee), "amount": 5_000}),
        "unrequested": inject(s, {"kind": "unrequested", "amount": 777, "asset": "TON", "destination": stranger}),
    }
    assert got["missing"] is None
    until = datetime.now(UTC) + timedelta(seconds=5)
    lines, pages = await _all(provider, since, until)
    assert pages > 1
    by_id = {line.line_id: line for line in lines}
    assert len(by_id) == len(lines)
    paid_of: dict[str | None, list[StatementLine]] = defaultdict(list)
    for line in lines:
        if line.kind is PAYOUT:
            paid_of[line.reference].append(line)

    assert missing not in paid_of
    assert [line.line_id for line in paid_of[amount]] == [got["amount"]]
    assert by_id[str(got["amount"])].amount == 123
    assert [line.line_id for line in paid_of[destination]] == [got["destination"]]
    moved = by_id[str(got["destination"])].destination
    assert moved is not None
    assert raw(moved) == raw(elsewhere)
    assert len(paid_of[duplicate]) == 2
    assert got["duplicate"] in {line.line_id for line in paid_of[duplicate]}
    assert {(line.amount, line.destination) for line in paid_of[duplicate]} == {
        (ours[duplicate]["amount"], ours[duplicate]["destination_address"])
    }
    back = by_id[str(got["reversal"])]
    assert (back.kind, back.reference, back.amount, back.asset, back.destination) == (
        REVERSAL,
        reversal,
        ours[reversal]["amount"],
        "TON",
        ours[reversal]["destination_address"],
    )
    fee_lines = [line for line in lines if line.kind is FEE and line.reference == fee]
    assert [line.line_id for line in fee_lines] == [got["fee"]]
    routine = next(line.amount for line in lines if line.kind is FEE and line.reference == amount)
    assert fee_lines[0].amount == routine + 5_000
    stray = by_id[str(got["unrequested"])]
    assert (stray.kind, stray.reference, stray.amount, stray.asset) == (PAYOUT, None, 777, "TON")
    assert stray.destination is not None
    assert raw(stray.destination) == raw(stranger)
    assert len(paid_of[None]) == 1
    (usdt,) = paid_of[jetton]
    assert (usdt.asset, usdt.amount, usdt.destination) == (
        "USDT",
        ours[jetton]["amount"],
        ours[jetton]["destination_address"],
    )
    assert usdt.raw_type == "jetton_transfer"
    # The window is honoured: one that ends before the first payout lists nothing.
    empty, _ = await _all(provider, since - timedelta(hours=1), since - timedelta(minutes=30))
    assert empty == []


async def test_a_highload_batch_is_one_line_per_item_and_its_fees_split(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)
    async with ton_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        topic_suffix=topic_suffix,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        options={"wallet_version": "highload_v3"},
    ) as s:
        keys = []
        for n in range(4):
            key = f"ton-hl-{n}-{uuid.uuid4().hex[:8]}"
            asset, amount = ("USDT", 2_000_000 + n) if n == 3 else ("TON", NANO + n)
            await request_payout(
                s.settings, key, amount=amount, address=random_address(), dtype="ton_wallet", asset=asset
            )
            keys.append(key)
        for key in keys:
            await wait_state(db, key, "paid", timeout=60)
        served = s.parts.config.registry.get("ton").provider
        assert isinstance(served, TonWalletProvider)
        client = ToncenterClient(served.o.api_url, api_key=served.o.api_key, timeout_s=5)
        engine = create_engine(db, pool_size=2)
        provider = TonStatement(served.o, client, ton_books(engine, served.o.name), page_limit=2)
        try:
            ours = {
                r["id"]: r
                for r in await fetch(
                    db,
                    "SELECT p.id, p.asset, p.amount, p.destination_address, i.out_msg_hash, p.fee_asset, p.fee_amount,"
                    " i.fee AS item_fee FROM payouts p"
                    " JOIN ton_batch_items i ON i.payout_id = p.id AND i.state = 'paid'"
                    " WHERE p.idempotency_key = ANY($1)",
                    keys,
                )
            }
            assert len(ours) == 4
            until = datetime.now(UTC) + timedelta(seconds=5)
            lines, pages = await _all(provider, since, until)
            assert pages > 1
            paid = sorted((line for line in lines if line.kind is PAYOUT), key=lambda line: line.reference or "")
            assert [(x.reference, x.line_id, x.asset, x.amount, x.destination) for x in paid] == [
                (k, p["out_msg_hash"], p["asset"], p["amount"], p["destination_address"])
                for k, p in sorted(ours.items())
            ]
            fees: dict[str | None, int] = defaultdict(int)
            for line in lines:
                if line.kind is FEE:
                    fees[line.reference] += line.amount
            assert set(fees) == set(ours)  # every batch transaction's fee belongs to its payouts
            # Each payout booked its share (the paid result's fee), split as the statement splits it ...
            assert {k: ("TON", fees[k], fees[k]) for k in ours} == {
                k: (p["fee_asset"], p["fee_amount"], p["item_fee"]) for k, p in ours.items()
            }
            # ... and a batch's shares are its two transactions' fees exactly.
            batches = await fetch(
                db,
                "SELECT sum(i.fee) AS shares, min(b.external_fee + b.internal_fee) AS charged, count(*) AS items"
                " FROM ton_batches b JOIN ton_batch_items i ON i.request_id = b.request_id"
                " WHERE i.payout_id = ANY($1) GROUP BY b.request_id",
                list(ours),
            )
            assert batches
            assert all(b["shares"] == b["charged"] > 0 for b in batches), [dict(b) for b in batches]

            ids = sorted(k for k, p in ours.items() if p["asset"] == "TON")  # amount, reversal: TON transfers only
            gone, other = ids[0], ids[1]
            assert inject(s, {"kind": "missing", "reference": ours[gone]["out_msg_hash"]}) is None
            moved = inject(s, {"kind": "amount", "reference": ours[other]["out_msg_hash"], "amount": 9})
            back = inject(s, {"kind": "reversal", "reference": ours[ids[2]]["out_msg_hash"], "amount": 5})
            lines, _ = await _all(provider, since, datetime.now(UTC) + timedelta(seconds=5))
            by_ref: dict[str | None, list[StatementLine]] = defaultdict(list)
            for line in lines:
                by_ref[line.reference].append(line)
            assert gone not in {line.reference for line in lines if line.kind is PAYOUT}
            assert [(x.line_id, x.amount) for x in by_ref[other] if x.kind is PAYOUT] == [(moved, 9)]
            assert [(x.line_id, x.amount) for x in by_ref[ids[2]] if x.kind is REVERSAL] == [(back, 5)]
        finally:
            await client.close()
            await engine.dispose()
