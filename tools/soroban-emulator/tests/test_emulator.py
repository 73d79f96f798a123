"""The emulator over real HTTP: verification, statuses, fault injection, and the ledger it keeps."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error

import pytest
from stellar_sdk import Asset, Keypair, SorobanServer, StrKey, TransactionBuilder

import prizeflow_stellar as ps
from prizeflow_soroban_emulator.client import EmulatorError, Rpc
from prizeflow_stellar.results import transaction_result_code

pytestmark = pytest.mark.integration  # the emulator runs as a process on a port

PASSPHRASE = "Prizeflow Emulator Tests ; 2025"

CONTRACT = StrKey.encode_contract(b"\x07" * 32)


def funded(rpc: Rpc, xlm: str = "1000") -> Keypair:
    kp = Keypair.random()
    rpc.admin.create_account(kp.public_key, balances={"XLM": xlm, "USDC": "0"})
    return kp


def sequence_of(rpc: Rpc, account: str) -> int:
    found = rpc.admin.account(account)
    assert found is not None
    return int(found["sequence"])


def payment_xdr(
    rpc: Rpc,
    src: Keypair,
    dest: str,
    stroops: int,
    *,
    seq: int | None = None,
    signer: Keypair | None = None,
    fee: int = 100,
    valid_for: int = 300,
) -> str:
    built = ps.build_payments(
        source_account=src.public_key,
        sequence=seq if seq is not None else sequence_of(rpc, src.public_key) + 1,
        payments=[ps.PaymentInstruction("po-1", dest, "XLM", stroops)],
        network_passphrase=PASSPHRASE,
        valid_until=int(time.time()) + valid_for,
        base_fee=fee,
    )
    from stellar_sdk import TransactionEnvelope

    env = TransactionEnvelope.from_xdr(built.envelope_xdr, PASSPHRASE)
    env.sign(signer or src)
    return str(env.to_xdr())


def send(rpc: Rpc, envelope: str) -> dict[str, object]:
    result: dict[str, object] = rpc.call("sendTransaction", {"transaction": envelope})
    return result


def error_code(reply: dict[str, object]) -> str:
    assert reply["status"] == "ERROR", reply
    return transaction_result_code(str(reply["errorResultXdr"]))


def test_stellar_sdk_client_reads_network_health_and_account(emulator: Rpc) -> None:
    src = funded(emulator)
    server = SorobanServer(emulator.url)
    assert server.get_health().status == "healthy"
    assert server.get_network().passphrase == PASSPHRASE
    account = server.load_account(src.public_key)
    assert account.sequence == sequence_of(emulator, src.public_key)
    assert server.get_latest_ledger().sequence >= 1


def test_payment_lands_once_and_a_resubmission_cannot_pay_twice(emulator: Rpc) -> None:
    src, dest = funded(emulator), funded(emulator, "1")
    envelope = payment_xdr(emulator, src, dest.public_key, 1)
    reply = send(emulator, envelope)
    assert reply["status"] == "PENDING"
    assert send(emulator, envelope)["status"] == "DUPLICATE"
    assert emulator.call("getTransaction", {"hash": reply["hash"]})["status"] == "NOT_FOUND"
    emulator.admin.close_ledger()
    tx = emulator.call("getTransaction", {"hash": reply["hash"]})
    assert tx["status"] == "SUCCESS"
    assert tx["ledger"] >= 2
    assert transaction_result_code(tx["resultXdr"]) == "tx_success"
    assert error_code(send(emulator, envelope)) == "tx_bad_seq"  # its sequence number is spent
    emulator.admin.close_ledger()
    paid = emulator.admin.payments(destination=dest.public_key)
    assert [(p["amount"], p["tx_hash"]) for p in paid] == [(1, reply["hash"])]
    found = emulator.admin.account(dest.public_key)
    assert found is not None
    balance = found["balances"]["native"]
    assert balance == 10_000_000 + 1


def test_sequence_number_must_be_account_sequence_plus_one(emulator: Rpc) -> None:
    src, dest = funded(emulator), funded(emulator)
    current = sequence_of(emulator, src.public_key)
    assert error_code(send(emulator, payment_xdr(emulator, src, dest.public_key, 5, seq=current))) == "tx_bad_seq"
    assert error_code(send(emulator, payment_xdr(emulator, src, dest.public_key, 5, seq=current + 2))) == "tx_bad_seq"
    # Two queued in order from one account are both accepted and both land, in one ledger.
    assert send(emulator, payment_xdr(emulator, src, dest.public_key, 5, seq=current + 1))["status"] == "PENDING"
    assert send(emulator, payment_xdr(emulator, src, dest.public_key, 6, seq=current + 2))["status"] == "PENDING"
    emulator.admin.close_ledger()
    assert sequence_of(emulator, src.public_key) == current + 2
    assert sorted(p["amount"] for p in emulator.admin.payments(destination=dest.public_key)) == [
        5,
        6,
    ]


def test_signature_by_the_wrong_key_is_refused(emulator: Rpc) -> None:
    src, dest = funded(emulator), funded(emulator)
    intruder = Keypair.random()
    assert error_code(send(emulator, payment_xdr(emulator, src, dest.public_key, 5, signer=intruder))) == "tx_bad_auth"
    # An added signer (e.g. the HSM key of a channel account) is accepted.
    emulator.admin.create_account(src.public_key, signers={intruder.public_key: 1})
    assert send(emulator, payment_xdr(emulator, src, dest.public_key, 5, signer=intruder))["status"] == "PENDING"


def test_unsigned_and_expired_and_underpaid_transactions_are_refused(emulator: Rpc) -> None:
    src, dest = funded(emulator), funded(emulator)
    built = ps.build_payments(
        source_account=src.public_key,
        sequence=sequence_of(emulator, src.public_key) + 1,
        payments=[ps.PaymentInstruction("po-1", dest.public_key, "XLM", 5)],
        network_passphrase=PASSPHRASE,
        valid_until=int(time.time()) + 60,
    )
    assert error_code(send(emulator, built.envelope_xdr)) == "tx_bad_auth"
    assert error_code(send(emulator, payment_xdr(emulator, src, dest.public_key, 5, valid_for=-5))) == "tx_too_late"
    assert error_code(send(emulator, payment_xdr(emulator, src, dest.public_key, 5, fee=50))) == "tx_insufficient_fee"
    emulator.admin.set_faults(min_base_fee=1000)
    assert error_code(send(emulator, payment_xdr(emulator, src, dest.public_key, 5, fee=100))) == "tx_insufficient_fee"
    assert send(emulator, payment_xdr(emulator, src, dest.public_key, 5, fee=1000))["status"] == "PENDING"


def test_wrong_network_signature_is_refused(emulator: Rpc) -> None:
    src, dest = funded(emulator), funded(emulator)
    tx = (
        TransactionBuilder(
            SorobanServer(emulator.url).load_account(src.public_key), "Test SDF Network ; September 2015"
        )
        .append_payment_op(dest.public_key, Asset.native(), "1")
        .add_time_bounds(0, int(time.time()) + 60)
        .build()
    )
    tx.sign(src)  # signed for testnet: the hash differs on the emulator's network
    assert error_code(send(emulator, tx.to_xdr())) == "tx_bad_auth"


def test_accepted_then_dropped_never_pays_and_leaves_the_sequence(emulator: Rpc) -> None:
    src, dest = funded(emulator), funded(emulator)
    emulator.admin.set_faults(drop_after_accept_rate=1.0)
    before = sequence_of(emulator, src.public_key)
    reply = send(emulator, payment_xdr(emulator, src, dest.public_key, 9))
    assert reply["status"] == "PENDING"
    emulator.admin.close_ledger()
    emulator.admin.close_ledger()
    assert emulator.call("getTransaction", {"hash": reply["hash"]})["status"] == "NOT_FOUND"
    assert sequence_of(emulator, src.public_key) == before
    assert emulator.admin.payments(destination=dest.public_key) == []
    emulator.admin.set_faults(drop_after_accept_rate=0.0)
    resent = send(emulator, payment_xdr(emulator, src, dest.public_key, 9))  # same sequence: the first never landed
    assert resent["status"] == "PENDING"
    emulator.admin.close_ledger()
    assert len(emulator.admin.payments(destination=dest.public_key)) == 1


def test_try_again_later_and_forced_bad_seq(emulator: Rpc) -> None:
    src, dest = funded(emulator), funded(emulator)
    emulator.admin.set_faults(try_again_later_rate=1.0)
    envelope = payment_xdr(emulator, src, dest.public_key, 3)
    assert send(emulator, envelope)["status"] == "TRY_AGAIN_LATER"
    emulator.admin.set_faults(try_again_later_rate=0.0, bad_seq_rate=1.0)
    assert error_code(send(emulator, envelope)) == "tx_bad_seq"
    emulator.admin.set_faults(bad_seq_rate=0.0)
    assert send(emulator, envelope)["status"] == "PENDING"  # the same envelope, unchanged, lands after the faults


def test_delayed_responses_time_clients_out_but_the_request_applies(emulator: Rpc) -> None:
    src, dest = funded(emulator), funded(emulator)
    emulator.admin.set_faults(delay_rate=1.0, delay_ms=1500)
    envelope = payment_xdr(emulator, src, dest.public_key, 4)
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        emulator.call("sendTransaction", {"transaction": envelope}, timeout=0.5)
    emulator.admin.set_faults(delay_rate=0.0)
    assert send(emulator, envelope)["status"] == "DUPLICATE"  # it was accepted even though the client gave up


def test_contract_invoke_simulates_assembles_and_pays_each_winner(emulator: Rpc) -> None:
    src = funded(emulator)
    winners = [funded(emulator, "1") for _ in range(3)]
    args = {
        "source_account": src.public_key,
        "contract_id": CONTRACT,
        "winners": [ps.Winner(f"po-{i}", w.public_key, 10 + i) for i, w in enumerate(winners)],
        "network_passphrase": PASSPHRASE,
        "valid_until": int(time.time()) + 120,
        "asset_code": "XLM",
    }
    seq = sequence_of(emulator, src.public_key) + 1
    draft = ps.build_contract_invoke(sequence=seq, **args)  # type: ignore[arg-type]
    sim = ps.Simulation.from_rpc(emulator.call("simulateTransaction", {"transaction": draft.envelope_xdr}))
    assert sim.min_resource_fee > 0
    built = ps.build_contract_invoke(sequence=seq, simulation=sim, **args)  # type: ignore[arg-type]
    assert built.fee == 100 + sim.min_resource_fee
    from stellar_sdk import TransactionEnvelope

    env = TransactionEnvelope.from_xdr(built.envelope_xdr, PASSPHRASE)
    env.sign(src)
    reply = send(emulator, env.to_xdr())
    assert reply["status"] == "PENDING", reply
    emulator.admin.close_ledger()
    assert emulator.call("getTransaction", {"hash": built.tx_hash})["status"] == "SUCCESS"
    paid = emulator.admin.payments(tx_hash=built.tx_hash)
    assert [(p["destination"], p["amount"], p["kind"]) for p in paid] == [
        (w.public_key, 10 + i, "contract") for i, w in enumerate(winners)
    ]


def test_failed_payment_consumes_the_sequence_but_moves_nothing(emulator: Rpc) -> None:
    src = funded(emulator)
    nobody = Keypair.random().public_key  # no account: payment_no_destination
    reply = send(emulator, payment_xdr(emulator, src, nobody, 5))
    assert reply["status"] == "PENDING"
    before = sequence_of(emulator, src.public_key)
    emulator.admin.close_ledger()
    tx = emulator.call("getTransaction", {"hash": reply["hash"]})
    assert tx["status"] == "FAILED"
    assert ps.operation_result_codes(tx["resultXdr"]) == ["payment_no_destination"]
    assert sequence_of(emulator, src.public_key) == before + 1
    assert emulator.admin.payments(destination=nobody) == []


@pytest.mark.emulator_env(SOROBAN_EMULATOR_LEDGER_MS="200", SOROBAN_EMULATOR_LEDGER_CAPACITY="2")
def test_ledgers_close_on_the_clock_with_capacity(emulator: Rpc) -> None:
    dest = funded(emulator)
    sources = [funded(emulator) for _ in range(5)]
    hashes = [send(emulator, payment_xdr(emulator, s, dest.public_key, 1))["hash"] for s in sources]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [emulator.call("getTransaction", {"hash": h}) for h in hashes]
        if all(f["status"] == "SUCCESS" for f in found):
            break
        time.sleep(0.05)
    ledgers = sorted(f["ledger"] for f in found)
    assert all(f["status"] == "SUCCESS" for f in found)
    assert max(ledgers.count(x) for x in set(ledgers)) <= 2  # never more than the capacity per ledger
    assert len(emulator.admin.payments(destination=dest.public_key)) == 5


def test_the_admin_is_rest_under_the_one_scheme_only(emulator: Rpc) -> None:
    """`/_emulator/...` (the emulator kit's): knobs checked before any applies, an unknown account is None; the
    JSON-RPC methods are Soroban's only (no `emulator_*` left)."""
    assert emulator.admin.account(Keypair.random().public_key) is None
    with pytest.raises(EmulatorError, match="probability in"):
        emulator.admin.set_faults(try_again_later_rate=0.5, bad_seq_rate=2.0)
    assert emulator.admin.faults()["try_again_later_rate"] == 0.0  # nothing applied
    with pytest.raises(EmulatorError, match="unknown fault"):
        emulator.admin.set_faults(nonsense=1)
    closed = emulator.admin.close_ledger()
    assert emulator.admin.stats()["sequence"] == closed["sequence"]
    assert emulator.admin.set_ledger_interval(3_600_000) == {"ms": 3_600_000}
    for method in ("emulator_createAccount", "emulator_stats", "emulator_setFaults", "emulator_getPayments"):
        with pytest.raises(EmulatorError, match="method not found"):
            emulator.call(method, {})


@pytest.mark.parametrize(
    ("name", "value"),
    [("SOROBAN_RPC_PORT", "not-a-port"), ("SOROBAN_EMULATOR_FAULTS", '{"bad_seq_rate": 3}')],
)
def test_a_bad_setting_exits_2_naming_it(name: str, value: str) -> None:
    env = {**os.environ, "SOROBAN_RPC_PORT": "0", name: value}
    done = subprocess.run(
        [sys.executable, "-m", "prizeflow_soroban_emulator"], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "invalid configuration" in done.stderr
    assert name in done.stderr
