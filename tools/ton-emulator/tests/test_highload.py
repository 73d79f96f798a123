"""The emulated highload wallet v3 without HTTP: acceptance checks in the contract's order, replay protection (the
query id in the processed sets and their rotation), the two transactions of a batch, partial failure."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from nacl.signing import SigningKey

from prizeflow_ton.addresses import parse_address
from prizeflow_ton.highload import HighloadBatch, QueryId, external_message, signed_inner_hash, signing_hash
from prizeflow_ton.messages import Transfer, TransferKind, from_b64, parse_jetton_transfer_body, to_b64
from prizeflow_ton_emulator.chain import ApiError, Chain

WALLET = "0:" + "11" * 32
MASTER = "0:" + "44" * 32
JETTON_WALLET = "0:" + "33" * 32
TON = 1_000_000_000
TIMEOUT = 60
FEE = 3_000_000


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def dest(i: int) -> str:
    return "0:" + f"{i + 0xA0:064x}"


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def chain(key: SigningKey) -> Chain:
    c = Chain(clock=Clock(), rng=random.Random(1), fee_nanotons=FEE)
    c.add_highload_wallet(WALLET, bytes(key.verify_key), balance=10 * TON, subwallet_id=0x10AD, timeout=TIMEOUT)
    c.add_jetton(master=MASTER, owner=WALLET, jetton_wallet=JETTON_WALLET, balance=5_000_000)
    return c


def ton(i: int, amount: int = TON) -> Transfer:
    return Transfer(kind=TransferKind.TON, destination=dest(i), amount=amount, bounce=False)


def jetton(i: int, amount: int = 1_000_000) -> Transfer:
    return Transfer(
        kind=TransferKind.JETTON, destination=dest(i), amount=amount, bounce=True, jetton_wallet=JETTON_WALLET,
        attached_nanotons=50_000_000, forward_nanotons=1, response_destination=WALLET, query_id=7000 + i,
    )  # fmt: skip


def batch(chain: Chain, *transfers: Transfer, query: int = 1, age: int = 1, **kw: object) -> HighloadBatch:
    b = HighloadBatch(
        wallet=WALLET, subwallet_id=0x10AD, query_id=QueryId.from_sequence(query), created_at=chain.now() - age,
        timeout=TIMEOUT, transfers=transfers or (ton(0), jetton(1), ton(2)), internal_nanotons=50_000_000,
    )  # fmt: skip
    return replace(b, **kw)  # type: ignore[arg-type]


def boc(key: SigningKey, b: HighloadBatch) -> str:
    return to_b64(external_message(b, key.sign(signing_hash(b)).signature))


def raws(tx: dict[str, object]) -> list[str]:
    return [parse_address(str(m["destination"])).raw for m in tx["out_msgs"]]  # type: ignore[attr-defined]


def test_a_batch_lands_in_two_transactions_paying_every_transfer_in_order(chain: Chain, key: SigningKey) -> None:
    b = batch(chain)
    message = boc(key, b)
    h = chain.send_boc(message)
    assert chain.send_boc(message) == h  # resent before inclusion: one mempool entry
    chain.produce_block()
    (external,) = chain.get_transactions(WALLET, limit=10)
    assert external["in_msg"]["hash"]  # the external message, its body readable
    body = from_b64(external["in_msg"]["msg_data"]["body"])
    assert signed_inner_hash(body) == signing_hash(b).hex()
    assert raws(external) == [WALLET]  # the internal transfer to itself
    assert chain.balance(dest(0)) == 0  # delivered next block
    chain.produce_block()
    internal, _ = chain.get_transactions(WALLET, limit=10)
    assert internal["in_msg"]["hash"] == external["out_msgs"][0]["hash"]
    assert raws(internal) == [dest(0), JETTON_WALLET, dest(2)]
    jetton_out = internal["out_msgs"][1]
    parsed = parse_jetton_transfer_body(from_b64(jetton_out["msg_data"]["body"]))
    assert (parsed.query_id, parsed.amount, parsed.destination) == (7001, 1_000_000, dest(1))
    assert chain.balance(dest(0)) == TON
    assert chain.balance(dest(2)) == TON
    assert chain.jetton_balance(MASTER, dest(1)) == 1_000_000
    assert chain.transfers_to(WALLET, dest(0)) == {"ton": 1, "jetton": 0}
    assert chain.transfers_to(WALLET, dest(1)) == {"ton": 0, "jetton": 1}


def test_a_landed_query_id_is_never_accepted_again_until_both_sets_rotated(chain: Chain, key: SigningKey) -> None:
    first = batch(chain, ton(0), query=5)
    chain.send_boc(boc(key, first))
    chain.produce_block()
    with pytest.raises(ApiError, match="exitcode=36"):
        chain.send_boc(boc(key, first))  # the very same message
    other = batch(chain, ton(1), query=5, age=0)  # another message, the same query id
    with pytest.raises(ApiError, match="exitcode=36"):
        chain.send_boc(boc(key, other))
    assert chain.processed(WALLET, QueryId.from_sequence(5).value, need_clean=False)
    # One rotation (a message past the timeout): the query id moves to old_queries, still refused.
    chain.offset_s += TIMEOUT + 1
    chain.send_boc(boc(key, batch(chain, ton(2), query=6)))
    chain.produce_block()
    with pytest.raises(ApiError, match="exitcode=36"):
        chain.send_boc(boc(key, batch(chain, ton(3), query=5)))
    assert chain.processed(WALLET, QueryId.from_sequence(5).value, need_clean=False)
    # A second rotation drops old_queries: the query id is free again.
    chain.offset_s += TIMEOUT + 1
    again = batch(chain, ton(4), query=5)
    chain.send_boc(boc(key, again))
    chain.produce_block()
    chain.produce_block()
    assert chain.balance(dest(4)) == TON
    assert chain.balance(dest(1)) == 0  # the second message with the first query id never landed


def test_processed_with_need_clean_sees_the_rotation_a_message_would_make(chain: Chain, key: SigningKey) -> None:
    chain.send_boc(boc(key, batch(chain, ton(0), query=9)))
    chain.produce_block()
    q = QueryId.from_sequence(9).value
    chain.offset_s += 2 * TIMEOUT + 1
    assert chain.processed(WALLET, q, need_clean=False)  # nothing rotated the stored sets yet
    assert not chain.processed(WALLET, q, need_clean=True)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"created_at_delta": 1}, 35),  # from the future
        ({"created_at_delta": -TIMEOUT}, 35),  # created_at <= now - timeout: expired
        ({"timeout": TIMEOUT + 1}, 38),
        ({"subwallet_id": 698983191}, 34),
    ],
)
def test_the_contract_s_acceptance_checks(chain: Chain, key: SigningKey, change: dict[str, int], code: int) -> None:
    delta = change.pop("created_at_delta", None)
    b = batch(chain, ton(0), age=0, **change)
    if delta is not None:
        b = replace(b, created_at=chain.now() + delta)
    with pytest.raises(ApiError, match=f"exitcode={code}"):
        chain.send_boc(boc(key, b))


def test_a_wrong_key_is_not_accepted(chain: Chain) -> None:
    with pytest.raises(ApiError, match="exitcode=33"):
        chain.send_boc(boc(SigningKey.generate(), batch(chain)))


def test_a_message_expires_in_the_mempool_when_not_included_in_time(chain: Chain, key: SigningKey) -> None:
    chain.faults.update({"not_included_rate": 1.0})
    b = batch(chain, ton(0), age=TIMEOUT - 10)
    chain.send_boc(boc(key, b))
    chain.produce_block()
    chain.offset_s += 11
    chain.produce_block()
    assert chain.mempool == {}
    assert chain.get_transactions(WALLET, limit=10) == []
    assert not chain.processed(WALLET, b.query_id.value, need_clean=False)
    with pytest.raises(ApiError, match="exitcode=35"):
        chain.send_boc(boc(key, b))


def test_a_transfer_the_balance_cannot_pay_fails_alone(chain: Chain, key: SigningKey) -> None:
    chain.balances[WALLET] = 3 * TON
    b = batch(chain, ton(0), ton(1, 5 * TON), jetton(2), ton(3))
    chain.send_boc(boc(key, b))
    chain.produce_block()
    chain.produce_block()
    internal = chain.get_transactions(WALLET, limit=1)[0]
    assert raws(internal) == [dest(0), JETTON_WALLET, dest(3)]  # the 5 TON transfer skipped, the rest sent
    assert chain.balance(dest(1)) == 0
    assert chain.balance(dest(0)) == chain.balance(dest(3)) == TON
    assert chain.jetton_balance(MASTER, dest(2)) == 1_000_000
    assert chain.counters["actions_skipped"] == 1


def test_a_wallet_that_cannot_pay_its_own_gas_consumes_the_query_id_and_sends_nothing(
    chain: Chain, key: SigningKey
) -> None:
    chain.balances[WALLET] = FEE + 1
    b = batch(chain)
    chain.send_boc(boc(key, b))
    chain.produce_block()
    chain.produce_block()
    (only,) = chain.get_transactions(WALLET, limit=10)
    assert only["out_msgs"] == []
    assert chain.processed(WALLET, b.query_id.value, need_clean=False)
    with pytest.raises(ApiError, match="exitcode=36"):
        chain.send_boc(boc(key, b))


def test_a_short_jetton_balance_bounces_one_transfer(chain: Chain, key: SigningKey) -> None:
    b = batch(chain, jetton(0, 4_000_000), jetton(1, 4_000_000))
    chain.send_boc(boc(key, b))
    chain.produce_block()
    chain.produce_block()
    jtxs = chain.get_transactions(JETTON_WALLET, limit=10)  # newest first
    assert raws(jtxs[0]) == [WALLET]  # the second bounced back to our wallet
    assert raws(jtxs[1]) != [WALLET]
    assert chain.jetton_balance(MASTER, dest(0)) == 4_000_000
    assert chain.jetton_balance(MASTER, dest(1)) == 0


def test_a_highload_wallet_has_no_seqno(chain: Chain) -> None:
    with pytest.raises(ApiError, match="no seqno"):
        chain.seqno(WALLET)
    assert chain.wallet_information(WALLET)["wallet_type"] == "highload v3"


def test_a_lagging_node_shows_the_processed_sets_of_its_older_block(chain: Chain, key: SigningKey) -> None:
    b = batch(chain)
    chain.clock.t += 3  # type: ignore[attr-defined]
    chain.send_boc(boc(key, b))
    chain.produce_block()  # block 1: the batch lands, its query id processed
    chain.faults.update({"lag_s": 2})
    assert not chain.processed(WALLET, b.query_id.value, need_clean=False)
    answer = chain.run_get_method(WALLET, "processed?", [b.query_id.value, 0])
    assert (answer["stack"], answer["block_id"]["seqno"]) == ([["num", "0x0"]], 0)
    assert chain.get_transactions(WALLET, limit=10) == []
    chain.clock.t += 2  # type: ignore[attr-defined]
    assert chain.processed(WALLET, b.query_id.value, need_clean=False)
    assert chain.run_get_method(WALLET, "processed?", [b.query_id.value, 0])["stack"] == [["num", "-0x1"]]
    chain.faults.update({"lag_s": 0})
    assert chain.processed(WALLET, b.query_id.value, need_clean=False)
