"""The emulated chain without HTTP: acceptance checks, inclusion, seqno, expiry, jettons and faults."""

from __future__ import annotations

import random
from typing import Any

import pytest
from nacl.signing import SigningKey

from prizeflow_ton.addresses import parse_address
from prizeflow_ton.messages import Transfer, TransferKind, WalletMessage, external_message, signing_hash, to_b64
from prizeflow_ton_emulator.chain import ApiError, Chain

WALLET = "0:" + "11" * 32
DEST = "0:" + "22" * 32
MASTER = "0:" + "44" * 32
JETTON_WALLET = "0:" + "33" * 32
TON = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def chain(key: SigningKey) -> Chain:
    c = Chain(clock=Clock(), rng=random.Random(1))
    c.add_wallet(WALLET, bytes(key.verify_key), balance=10 * TON, subwallet_id=698983191)
    c.add_jetton(master=MASTER, owner=WALLET, jetton_wallet=JETTON_WALLET, balance=5_000_000)
    return c


def boc(key: SigningKey, chain: Chain, *, seqno: int = 0, ttl: int = 60, transfer: Transfer | None = None) -> str:
    t = transfer or Transfer(kind=TransferKind.TON, destination=DEST, amount=TON, bounce=False)
    m = WalletMessage(wallet=WALLET, subwallet_id=698983191, valid_until=chain.now() + ttl, seqno=seqno, transfer=t)
    return to_b64(external_message(m, key.sign(signing_hash(m)).signature))


def test_a_transfer_lands_once_and_moves_the_seqno(chain: Chain, key: SigningKey) -> None:
    message = boc(key, chain)
    h = chain.send_boc(message)
    assert chain.send_boc(message) == h  # resubmitting the same message: same hash, one mempool entry
    chain.produce_block()
    assert chain.seqno(WALLET) == 1
    assert chain.balance(DEST) == TON
    txs = chain.get_transactions(WALLET, limit=10)
    assert len(txs) == 1
    assert txs[0]["out_msgs"][0]["value"] == str(TON)
    with pytest.raises(ApiError, match="exitcode=33"):
        chain.send_boc(message)  # already included: the seqno moved on


def test_a_wrong_key_is_not_accepted(chain: Chain) -> None:
    with pytest.raises(ApiError, match="exitcode=35"):
        chain.send_boc(boc(SigningKey.generate(), chain))


def test_a_wrong_seqno_is_not_accepted(chain: Chain, key: SigningKey) -> None:
    with pytest.raises(ApiError, match="exitcode=33"):
        chain.send_boc(boc(key, chain, seqno=3))


def test_an_expired_message_never_lands(chain: Chain, key: SigningKey) -> None:
    message = boc(key, chain, ttl=30)
    chain.send_boc(message)
    chain.offset_s += 31
    chain.produce_block()
    assert chain.seqno(WALLET) == 0
    assert chain.get_transactions(WALLET, limit=10) == []
    with pytest.raises(ApiError, match="exitcode=36"):
        chain.send_boc(message)


def test_an_unpayable_transfer_consumes_the_seqno_and_moves_nothing(chain: Chain, key: SigningKey) -> None:
    big = Transfer(kind=TransferKind.TON, destination=DEST, amount=100 * TON, bounce=False)
    chain.send_boc(boc(key, chain, transfer=big))
    chain.produce_block()
    assert chain.seqno(WALLET) == 1
    assert chain.balance(DEST) == 0
    assert chain.get_transactions(WALLET, limit=1)[0]["out_msgs"] == []


def jetton(amount: int) -> Transfer:
    return Transfer(
        kind=TransferKind.JETTON, destination=DEST, amount=amount, bounce=True, jetton_wallet=JETTON_WALLET,
        attached_nanotons=50_000_000, forward_nanotons=1, response_destination=WALLET,
    )  # fmt: skip


def test_a_jetton_transfer_moves_jettons(chain: Chain, key: SigningKey) -> None:
    chain.send_boc(boc(key, chain, transfer=jetton(1_000_000)))
    chain.produce_block()
    assert chain.jetton_balance(MASTER, DEST) == 1_000_000
    assert chain.jetton_balance(MASTER, WALLET) == 4_000_000
    tx = chain.get_transactions(JETTON_WALLET, limit=1)[0]
    assert "aborted" not in tx  # toncenter v2's raw.transaction has no such field
    assert [parse_address(m["destination"]).raw for m in tx["out_msgs"]] != [parse_address(WALLET).raw]


def test_a_short_jetton_balance_bounces(chain: Chain, key: SigningKey) -> None:
    chain.send_boc(boc(key, chain, transfer=jetton(9_000_000)))
    chain.produce_block()
    assert chain.jetton_balance(MASTER, DEST) == 0
    tx = chain.get_transactions(JETTON_WALLET, limit=1)[0]
    assert "aborted" not in tx
    # As on chain: the bounce is read from the out-messages, a message back to our wallet only.
    assert [parse_address(m["destination"]).raw for m in tx["out_msgs"]] == [parse_address(WALLET).raw]


def raws(tx: dict[str, Any]) -> list[str]:
    return [parse_address(m["destination"], workchains=frozenset({0, -1})).raw for m in tx["out_msgs"]]


def test_the_destination_jetton_wallet_s_transaction_is_located_by_its_in_message(
    chain: Chain, key: SigningKey
) -> None:
    """Our jetton wallet's internal_transfer onward carries its created_lt; the destination's jetton wallet's
    transaction processing it is found by `tryLocateResultTx` (source, destination, created_lt), and sends the
    notification to its owner and the excess to our wallet — nothing back to our jetton wallet."""
    chain.send_boc(boc(key, chain, transfer=jetton(1_000_000)))
    chain.produce_block()
    (ours,) = chain.get_transactions(JETTON_WALLET, limit=10)
    (internal,) = ours["out_msgs"]
    dest_wallet = parse_address(internal["destination"]).raw
    assert int(internal["created_lt"]) == int(ours["transaction_id"]["lt"]) + 1
    located = chain.locate_result(JETTON_WALLET, internal["destination"], int(internal["created_lt"]))
    assert located["in_msg"]["hash"] == internal["hash"]
    assert located == chain.get_transactions(dest_wallet, limit=1)[0]
    assert sorted(raws(located)) == sorted([DEST, WALLET])  # notification to the owner, excess to our wallet
    assert chain.transfers_to(WALLET, DEST) == {"ton": 0, "jetton": 1}
    with pytest.raises(ApiError, match="not found") as err:
        chain.locate_result(JETTON_WALLET, internal["destination"], int(internal["created_lt"]) + 1)
    assert err.value.status == 404
    with pytest.raises(ApiError, match="not found"):
        chain.locate_result(WALLET, internal["destination"], int(internal["created_lt"]))  # another source


def test_a_frozen_destination_jetton_wallet_bounces_the_jettons_back_to_ours(chain: Chain, key: SigningKey) -> None:
    chain.faults.update({"frozen_jetton_owners": [parse_address(DEST).friendly(bounceable=True)]})
    chain.send_boc(boc(key, chain, transfer=jetton(1_000_000)))
    chain.produce_block()
    assert chain.jetton_balance(MASTER, DEST) == 0
    assert chain.jetton_balance(MASTER, WALLET) == 5_000_000  # back with our owner
    bounce_back, ours = chain.get_transactions(JETTON_WALLET, limit=10)  # newest first
    (internal,) = ours["out_msgs"]
    assert raws(ours) != [WALLET]  # our jetton wallet did send it onward
    located = chain.locate_result(JETTON_WALLET, internal["destination"], int(internal["created_lt"]))
    assert "aborted" not in located  # toncenter v2: the refusal is read from the out-messages
    assert raws(located) == [JETTON_WALLET]  # bounced to the sender of the internal_transfer, our jetton wallet
    assert bounce_back["in_msg"]["hash"] == located["out_msgs"][0]["hash"]  # our jetton wallet took it back
    assert chain.transfers_to(WALLET, DEST) == {"ton": 0, "jetton": 0}
    assert chain.counters["jetton_bounced_by_destination"] == 1
    chain.faults.update({"frozen_jetton_owners": []})  # unfrozen: the next one is taken
    chain.send_boc(boc(key, chain, seqno=1, transfer=jetton(1_000_000)))
    chain.produce_block()
    assert chain.jetton_balance(MASTER, DEST) == 1_000_000
    assert chain.transfers_to(WALLET, DEST) == {"ton": 0, "jetton": 1}
    with pytest.raises(ValueError, match="list of strings"):
        chain.faults.update({"frozen_jetton_owners": DEST})


def test_a_lagging_node_does_not_locate_a_newer_transaction(chain: Chain, key: SigningKey) -> None:
    chain.clock.t += 5  # type: ignore[attr-defined]
    chain.send_boc(boc(key, chain, transfer=jetton(1_000_000)))
    chain.produce_block()
    (internal,) = chain.transactions[JETTON_WALLET][0].out_msgs
    chain.faults.update({"lag_s": 3})
    with pytest.raises(ApiError, match="not found"):
        chain.locate_result(JETTON_WALLET, internal["destination"], int(internal["created_lt"]))
    chain.faults.update({"lag_s": 0})
    assert chain.locate_result(JETTON_WALLET, internal["destination"], int(internal["created_lt"]))


def test_accepted_but_never_included(chain: Chain, key: SigningKey) -> None:
    chain.faults.update({"not_included_rate": 1.0})
    chain.send_boc(boc(key, chain, ttl=10))
    chain.produce_block()
    assert chain.seqno(WALLET) == 0
    chain.offset_s += 11
    chain.produce_block()
    assert chain.mempool == {}


def test_masterchain_blocks_have_their_time_and_headers(chain: Chain) -> None:
    info = chain.masterchain_info()
    assert info["@type"] == "blocks.masterchainInfo"
    assert info["last"]["seqno"] == 0  # block 0 at creation
    chain.clock.t += 7  # type: ignore[attr-defined]
    assert chain.produce_block() == 1
    last = chain.masterchain_info()["last"]
    assert (last["workchain"], last["shard"], last["seqno"]) == (-1, "-9223372036854775808", 1)
    header = chain.block_header(-1, last["shard"], 1, last["root_hash"])
    assert header["@type"] == "blocks.header"
    assert header["id"] == last
    assert header["gen_utime"] == chain.now()
    with pytest.raises(ApiError, match="not in db"):
        chain.block_header(-1, last["shard"], 2)
    with pytest.raises(ApiError, match="root hash"):
        chain.block_header(-1, last["shard"], 1, "AAAA")
    answer = chain.run_get_method(WALLET, "seqno", [])
    assert answer["block_id"] == last
    assert answer["stack"] == [["num", "0x0"]]


def test_a_lagging_node_answers_consistently_from_an_older_block(chain: Chain, key: SigningKey) -> None:
    """`lag_s`: transactions, seqno, wallet information, get-methods and masterchain info all from the newest
    block at least that old; a newer block is unknown to it. sendBoc still reaches the chain."""
    start = chain.now()
    chain.clock.t += 5  # type: ignore[attr-defined]
    chain.produce_block()  # block 1: nothing in it
    chain.clock.t += 5  # type: ignore[attr-defined]
    chain.send_boc(boc(key, chain))
    chain.produce_block()  # block 2: the transfer lands, seqno 1
    chain.faults.update({"lag_s": 4})
    assert chain.masterchain_info()["last"]["seqno"] == 1
    assert chain.block_header(-1, "-9223372036854775808", 1)["gen_utime"] == start + 5
    with pytest.raises(ApiError, match="not in db"):
        chain.block_header(-1, "-9223372036854775808", 2)
    assert chain.get_transactions(WALLET, limit=10) == []
    assert chain.seqno(WALLET) == 0
    assert chain.wallet_information(WALLET)["seqno"] == 0
    assert chain.run_get_method(WALLET, "seqno", [])["block_id"]["seqno"] == 1
    chain.clock.t += 4  # type: ignore[attr-defined]
    assert chain.masterchain_info()["last"]["seqno"] == 2  # caught up with the landing
    assert len(chain.get_transactions(WALLET, limit=10)) == 1
    assert chain.seqno(WALLET) == 1
    chain.faults.update({"lag_s": 0})
    assert chain.seqno(WALLET) == 1


@pytest.mark.parametrize("bounce", [False, True])
def test_a_ton_transfer_to_an_uninitialised_account_bounces_back_only_when_bounceable(
    chain: Chain, key: SigningKey, bounce: bool
) -> None:
    chain.send_boc(
        boc(key, chain, transfer=Transfer(kind=TransferKind.TON, destination=DEST, amount=TON, bounce=bounce))
    )
    chain.produce_block()
    [sent] = chain.get_transactions(WALLET, limit=10)[-1:]  # the oldest: our transfer (its out-message exists)
    assert sent["out_msgs"][0]["value"] == str(TON)
    [arrived] = chain.transactions[DEST]
    assert arrived.aborted is bounce
    if bounce:  # the money came back after the transaction that reads as a payment
        assert chain.balance(DEST) == 0
        assert chain.counters["native_bounced"] == 1
        assert len(chain.get_transactions(WALLET, limit=10)) == 2
    else:
        assert chain.balance(DEST) == TON
        assert chain.counters.get("native_bounced", 0) == 0
