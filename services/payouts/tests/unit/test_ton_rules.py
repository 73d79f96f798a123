"""The TON rail's pure rules (`adapters/ton/rules.py`): what a message carries and which payouts share one. A
payout of the wallet v4r2 driver is a batch of one: the same transfer as the highload lane's, query id 0."""

from __future__ import annotations

from typing import Any

from prizeflow_payouts.adapters.ton import rules
from prizeflow_payouts.adapters.ton.options import TonAsset
from prizeflow_ton.messages import TransferKind

WALLET = "0:" + "11" * 32
TON = TonAsset("TON", 9, None, None, 50_000_000)
USDT = TonAsset("USDT", 6, "0:" + "44" * 32, "0:" + "33" * 32, 50_000_000)


def row(dest: str, *, asset: str = "TON", solo: bool = False, amount: int = 10**9, bounce: bool = False) -> Any:
    return {"destination": dest, "asset": asset, "solo": solo, "amount": amount, "bounce": bounce}


def test_a_ton_transfer_bounces_as_the_payout_says_and_a_jetton_always_does() -> None:
    ton = rules.transfer(TON, row("0:" + "22" * 32, bounce=False), wallet=WALLET)
    assert (ton.kind, ton.amount, ton.bounce, ton.jetton_wallet) == (TransferKind.TON, 10**9, False, None)
    jetton = rules.transfer(USDT, row("0:" + "22" * 32, asset="USDT", amount=7), wallet=WALLET, query_id=(5 << 8) | 3)
    assert (jetton.kind, jetton.amount, jetton.bounce) == (TransferKind.JETTON, 7, True)
    assert (jetton.jetton_wallet, jetton.response_destination, jetton.query_id) == (USDT.jetton_wallet, WALLET, 1283)


def test_a_single_payout_is_a_batch_of_one_with_query_id_zero() -> None:
    single = rules.transfer(USDT, row("0:" + "22" * 32, asset="USDT"), wallet=WALLET)
    assert single == rules.transfer(USDT, row("0:" + "22" * 32, asset="USDT"), wallet=WALLET, query_id=0)


def test_a_batch_takes_one_payout_per_destination_and_asset_up_to_its_size() -> None:
    rows = [row("a"), row("a"), row("a", asset="USDT"), row("b"), row("c")]
    assert [(r["destination"], r["asset"]) for r in rules.group(rows, 3)] == [("a", "TON"), ("a", "USDT"), ("b", "TON")]


def test_a_solo_payout_goes_alone_and_only_first() -> None:
    assert rules.group([row("s", solo=True), row("a")], 10) == [row("s", solo=True)]
    assert rules.group([row("a"), row("s", solo=True), row("b")], 10) == [row("a"), row("b")]
    assert rules.group([], 10) == []
