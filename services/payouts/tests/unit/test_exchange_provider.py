"""The crypto_exchange rail's rules on a fake ccxt exchange and an in-memory book: configuration refused by name,
errors mapped to stable codes (retryable vs terminal, landed or not), and never a second withdrawal once one may
exist."""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]
import pytest
import sqlalchemy.exc

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutStatus,
)
from prizeflow_payouts.adapters.exchange import (
    ExchangeErrors,
    ExchangeWithdrawalProvider,
    SqlWithdrawalBook,
    WithdrawalBookError,
    WithdrawalRecord,
    WithdrawalState,
    build_exchange,
    client_id_for,
)
from prizeflow_payouts.adapters.exchange.store import SqlWithdrawals
from prizeflow_payouts.application.rail import may_have_landed
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec
from prizeflow_reconciliation.statements import ReconError

C = PayoutErrorCode
P = ProviderPayoutStatus
ADDRESS = "0x" + "5a" * 20
ENV = {"EX_KEY": "key-value-123", "EX_SECRET": "secret-value-456"}


def spec(**options: Any) -> dict[str, Any]:
    return {
        "name": "exchange",
        "type": "crypto_exchange",
        "assets": ["USDC"],
        "destination_types": ["crypto_address"],
        "secrets": {"api_key": "EX_KEY", "api_secret": "EX_SECRET"},
        "options": {
            "exchange": "binance",
            "api_base": "http://127.0.0.1:9",
            "timeout_s": 2,
            "assets": {"USDC": {"currency": "USDC", "network": "ERC20", "precision": 6}},
            **options,
        },
    }


class MemoryBook:
    def __init__(self) -> None:
        self.rows: dict[str, WithdrawalRecord] = {}

    async def get(self, payout_id: str) -> WithdrawalRecord | None:
        return self.rows.get(payout_id)

    async def begin_request(self, record: WithdrawalRecord) -> tuple[WithdrawalRecord, bool]:
        old = self.rows.get(record.payout_id)
        if old is not None and old.state is not WithdrawalState.NOT_SENT:
            return old, False
        new = replace(record, requests=(old.requests if old else 0) + 1)
        self.rows[record.payout_id] = new
        return new, True

    async def mark_sent(self, payout_id: str, withdrawal_id: str) -> bool:
        if any(r.withdrawal_id == withdrawal_id and p != payout_id for p, r in self.rows.items()):
            return False
        self.rows[payout_id] = replace(self.rows[payout_id], state=WithdrawalState.SENT, withdrawal_id=withdrawal_id)
        return True

    async def mark_not_sent(self, payout_id: str, *, resolved_by: str | None = None) -> None:
        if self.rows[payout_id].state is WithdrawalState.SUBMITTING:
            self.rows[payout_id] = replace(self.rows[payout_id], state=WithdrawalState.NOT_SENT)

    async def settle(self, payout_id: str, withdrawal_id: str | None, *, resolved_by: str) -> WithdrawalRecord | None:
        row = self.rows.get(payout_id)
        if row is None or row.state is not WithdrawalState.SUBMITTING:
            return row
        if withdrawal_id is None:
            self.rows[payout_id] = replace(row, state=WithdrawalState.NOT_SENT)
        elif not any(r.withdrawal_id == withdrawal_id for r in self.rows.values()):
            self.rows[payout_id] = replace(row, state=WithdrawalState.SENT, withdrawal_id=withdrawal_id)
        return self.rows[payout_id]

    async def owned(self, provider: str, withdrawal_ids: list[str]) -> dict[str, str]:
        return {r.withdrawal_id: p for p, r in self.rows.items() if r.withdrawal_id in withdrawal_ids}

    async def alike_in_flight(self, record: WithdrawalRecord, within_s: float, amounts: Sequence[int]) -> int:
        return sum(
            1
            for r in self.rows.values()
            if r.payout_id != record.payout_id
            and r.state is WithdrawalState.SUBMITTING
            and (r.provider, r.address, r.memo) == (record.provider, record.address, record.memo)
            and r.amount in amounts
            and abs((r.submitted_at - record.submitted_at).total_seconds()) <= within_s
        )


class FakeExchange:
    """ccxt's unified surface, scripted: each withdraw raises the next queued error or makes a withdrawal."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.made: list[dict[str, Any]] = []
        self.currencies: dict[str, Any] = {"USDC": {"networks": {"ERC20": {"withdraw": True}}}}

    async def load_markets(self) -> dict[str, Any]:
        return {}

    def currency_to_precision(self, code: str, amount: str, network: str) -> str:
        """ccxt's rounding to the network's precision (decimal places here), as its withdraw does silently."""
        places = self.currencies[code]["networks"][network].get("places", 8)
        return f"{Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):f}"

    async def withdraw(self, code: str, amount: str, address: str, params: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(amount, str)  # never a float
        tx = {"id": f"w{len(self.made) + 1}", "status": "pending", "address": address, "amount": float(amount),
              "timestamp": int(datetime.now(UTC).timestamp() * 1000), "network": params["network"],
              "info": {"withdrawOrderId": params.get("withdrawOrderId")}}  # fmt: skip
        if self.errors:
            err = self.errors.pop(0)
            if "landed" in str(err):
                self.made.append(tx)
            raise err
        self.made.append(tx)
        return {"id": tx["id"]}

    async def fetch_withdrawals(self, code: str, since: int, limit: None, params: dict[str, Any]) -> list[Any]:
        cid = params.get("withdrawOrderId")
        return [t for t in self.made if cid is None or t["info"]["withdrawOrderId"] == cid]

    async def fetch_deposit_withdraw_fees(self, codes: list[str]) -> dict[str, Any]:
        return {"USDC": {"networks": {"ERC20": {"withdraw": {"fee": 1.5}}}}}

    async def close(self) -> None:
        return None


def rail(**options: Any) -> tuple[ExchangeWithdrawalProvider, FakeExchange, MemoryBook]:
    fake, book = FakeExchange(), MemoryBook()
    s = ProviderSpec.model_validate(spec(**options), context={"env": ENV})
    ctx = ProviderContext(live_execution=False, database_url="", provider_timeout_s=10)
    built = build_exchange(s, ctx, exchange=fake, book=book)
    assert built.terms.polls_status
    provider = built.payouts
    assert isinstance(provider, ExchangeWithdrawalProvider)
    return provider, fake, book


def pay(n: str = "1", amount: int = 100_000_000, address: str = ADDRESS, memo: str | None = None) -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=f"pay-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset="USDC", amount=amount),
        destination=PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=address, memo=memo),
    )


def build(doc: dict[str, Any], *, live: bool = False, env: dict[str, str] | None = None) -> None:
    s = ProviderSpec.model_validate(doc, context={"env": ENV if env is None else env})
    build_exchange(s, ProviderContext(live_execution=live, database_url="", provider_timeout_s=10))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (spec(api_base=None), "PAYOUTS_LIVE_EXECUTION is false"),
        (spec(exchange="nosuchexchange"), "ccxt knows no exchange 'nosuchexchange'"),
        (spec(surprise=1), "surprise: unknown option"),
        (spec(api_base="http://exchange.example.com"), "https outside loopback"),
        (spec(timeout_s=30), "must be below PAYOUTS_PROVIDER_TIMEOUT_MS"),
        (spec(assets={"USDC": {"currency": "USDC", "network": "ERC20", "precision": 9}}), "finer than its scale"),
        ({**spec(), "destination_types": ["stellar_account"]}, "crypto_address destinations only"),
        ({**spec(), "secrets": {"api_key": "EX_KEY"}}, "missing \\['api_secret'\\]"),
    ],
)
def test_configuration_is_refused_by_name(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        build(doc)


def test_credentials_never_show_in_reprs() -> None:
    provider, _, _ = rail()
    assert "key-value" not in repr(provider)
    assert "key-value" not in repr(provider.options)


@pytest.mark.parametrize(
    ("err", "code", "landed"),
    [
        (ccxt_async.ExchangeError('binance {"code":-4035,"msg":"not on the whitelist"}'), C.DESTINATION_BLOCKED, False),
        (ccxt_async.ExchangeError('binance {"code":-4019,"msg":"suspended"}'), C.PROVIDER_UNAVAILABLE, False),
        (ccxt_async.ExchangeError('binance {"code":-4026,"msg":"balance"}'), C.INSUFFICIENT_PROVIDER_FUNDS, False),
        (ccxt_async.ExchangeError('binance {"code":-1001,"msg":"internal"}'), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        (ccxt_async.RateLimitExceeded("binance 429"), C.RATE_LIMITED, False),
        (ccxt_async.RequestTimeout("binance POST"), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        (ccxt_async.ExchangeNotAvailable("binance 503"), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        (ccxt_async.AuthenticationError("binance key"), C.AUTHENTICATION_FAILED, False),
        (ccxt_async.InsufficientFunds("kraken"), C.INSUFFICIENT_PROVIDER_FUNDS, False),
        (ccxt_async.InvalidAddress("kraken"), C.INVALID_DESTINATION, False),
        (ccxt_async.BadRequest("kraken"), C.INVALID_REQUEST, False),
        (RuntimeError("bug"), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        # ccxt's answer to a code it does not know, whatever the HTTP status (a 5xx: "execution status unknown")
        (ccxt_async.ExchangeError('binance {"code":-9999,"msg":"?"}'), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        (ccxt_async.ExchangeError('binance {"code":-1006,"msg":"status unknown"}'), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        (ccxt_async.ExchangeError("binance 500 no code"), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        (ccxt_async.InvalidOrder("binance"), C.TIMEOUT_UNKNOWN_OUTCOME, True),
        (ccxt_async.PermissionDenied("binance"), C.AUTHENTICATION_FAILED, False),
    ],
)
def test_errors_map_to_stable_codes(err: BaseException, code: PayoutErrorCode, landed: bool) -> None:
    errors = ExchangeErrors(exchange="binance", provider="exchange")
    c = errors.classify(err, mutating=True)
    assert (c.code, may_have_landed(c)) == (code, landed)
    read = errors.classify(err, mutating=False)
    assert not may_have_landed(read)
    assert read.code is not C.TIMEOUT_UNKNOWN_OUTCOME  # a read that failed says nothing about money


def test_destinations_are_checked_before_anything_is_recorded() -> None:
    provider, fake, book = rail()
    assert provider.validate(pay(address="not-an-address-of-this-network")) is None  # no pattern configured
    strict, _, _ = rail(assets={"USDC": {"currency": "USDC", "network": "ERC20", "precision": 6,
                                          "address_pattern": "^0x[0-9a-f]{40}$"}})  # fmt: skip
    assert (err := strict.validate(pay(address="GABC"))) is not None
    assert err.code is C.INVALID_DESTINATION
    assert (err := provider.validate(pay(memo="77"))) is not None  # this network takes no memo
    assert err.code is C.INVALID_DESTINATION
    assert (err := provider.validate(pay(amount=100_000_001))) is not None  # finer than 6 decimal places
    assert err.code is C.INVALID_REQUEST
    result = asyncio.run(provider.create_payout(pay(memo="77")))
    assert result.status is P.FAILED
    assert (fake.made, book.rows) == ([], {})


async def test_a_lost_answer_is_never_asked_again() -> None:
    provider, fake, book = rail()
    fake.errors.append(ccxt_async.RequestTimeout("binance POST landed"))
    i = pay()
    with pytest.raises(PayoutProviderError) as err:
        await provider.create_payout(i)
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert book.rows[i.payout_id].state is WithdrawalState.SUBMITTING
    found = await provider.create_payout(i)
    assert (found.status, found.provider_ref, len(fake.made)) == (P.SUBMITTED, "w1", 1)
    assert fake.made[0]["info"]["withdrawOrderId"] == client_id_for(i.idempotency_key)


async def test_an_unrecognised_exchange_error_is_never_a_refusal() -> None:
    """ccxt raises a plain ExchangeError for any code it does not know: the withdrawal may exist."""
    provider, fake, book = rail()
    fake.errors.append(ccxt_async.ExchangeError('binance {"code":-9999,"msg":"landed, then a 5xx"}'))
    i = pay()
    with pytest.raises(PayoutProviderError) as err:
        await provider.create_payout(i)
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert book.rows[i.payout_id].state is WithdrawalState.SUBMITTING
    found = await provider.create_payout(i)  # reconciled from the history, never asked again
    assert (found.status, found.provider_ref, len(fake.made)) == (P.SUBMITTED, "w1", 1)


async def test_without_client_ids_a_sibling_in_flight_blocks_adoption() -> None:
    """Matched by address, memo, amount and time only: while another payout of the same shape still waits for its
    answer, the withdrawal found may be its own: nothing is adopted until it has settled."""
    provider, fake, book = rail(use_client_id=False)
    first, sibling = pay("1"), pay("2")
    fake.errors.append(ccxt_async.RequestTimeout("binance POST landed"))
    with pytest.raises(PayoutProviderError):
        await provider.create_payout(first)
    record = book.rows[first.payout_id]
    await book.begin_request(replace(record, payout_id=sibling.payout_id, idempotency_key=sibling.idempotency_key))
    lookup = PayoutLookup(payout_id=first.payout_id, idempotency_key=first.idempotency_key)
    with pytest.raises(PayoutProviderError) as err:
        await provider.sync_status(lookup)  # the sibling's withdraw() has not answered yet
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert book.rows[first.payout_id].state is WithdrawalState.SUBMITTING
    await book.mark_not_sent(sibling.payout_id)  # the sibling was refused: the withdrawal can only be ours
    found = await provider.sync_status(lookup)
    assert (found.status, found.provider_ref) == (P.SUBMITTED, "w1")


async def test_without_client_ids_a_sibling_whose_amount_differs_by_the_fee_blocks_adoption() -> None:
    """A withdrawal matches a record by its amount or its amount plus fee (exchanges report either), so a sibling
    payout of the same address asking for this payout's amount plus the network fee makes a withdrawal this payout
    would adopt: while that sibling is in flight, nothing is adopted, whichever of the two asked first."""
    provider, fake, book = rail(use_client_id=False)
    mine, sibling = pay("1", amount=100_000_000), pay("2", amount=101_500_000)  # USDC has 7 decimals: 10, 10.15
    fake.errors.append(ccxt_async.RequestTimeout("binance POST landed"))
    with pytest.raises(PayoutProviderError):
        await provider.create_payout(sibling)  # made: 10.15 asked, the 0.15 fee taken out, 10 reported
    fake.made[0].update(amount=10.0, fee={"cost": 0.15, "currency": "USDC"})
    fake.errors.append(ccxt_async.RequestTimeout("binance POST (lost before the exchange)"))
    with pytest.raises(PayoutProviderError):
        await provider.create_payout(mine)  # never made
    lookup = PayoutLookup(payout_id=mine.payout_id, idempotency_key=mine.idempotency_key)
    with pytest.raises(PayoutProviderError) as err:
        await provider.sync_status(lookup)
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME, "the sibling's withdrawal was adopted as this payout's"
    assert book.rows[mine.payout_id].state is WithdrawalState.SUBMITTING
    await book.mark_not_sent(mine.payout_id)  # an operator finds it was never made
    theirs = PayoutLookup(payout_id=sibling.payout_id, idempotency_key=sibling.idempotency_key)
    found = await provider.sync_status(theirs)
    assert (found.status, found.provider_ref) == (P.SUBMITTED, "w1")


async def test_a_withdrawal_another_payout_holds_is_never_adopted() -> None:
    provider, fake, book = rail(use_client_id=False)
    first, second = pay("1"), pay("2")
    assert (await provider.create_payout(first)).provider_ref == "w1"
    fake.errors.append(ccxt_async.RequestTimeout("binance POST (lost before the exchange)"))
    with pytest.raises(PayoutProviderError):
        await provider.create_payout(second)
    with pytest.raises(PayoutProviderError) as err:
        await provider.sync_status(PayoutLookup(payout_id=second.payout_id, idempotency_key=second.idempotency_key))
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert book.rows[second.payout_id].state is WithdrawalState.SUBMITTING


async def test_an_amount_the_exchange_would_round_is_never_sent(caplog: pytest.LogCaptureFixture) -> None:
    """ccxt's withdraw rounds silently to the network's precision: a configured precision finer than the
    exchange's is refused (logged once, naming the asset), never sent as another amount."""
    provider, fake, book = rail()
    fake.currencies["USDC"]["networks"]["ERC20"]["places"] = 2  # the exchange pays 2 decimals, we configured 6
    assert (await provider.create_payout(pay("1", amount=100_000_000))).status is P.SUBMITTED  # 10.00: kept
    for n in ("2", "3"):
        result = await provider.create_payout(pay(n, amount=100_010_000))  # 10.001 would become 10.00
        assert result.status is P.FAILED
        assert result.error is not None
        assert (result.error.code, result.error.provider_code) == (C.INVALID_REQUEST, "precision:USDC")
    assert len(fake.made) == 1
    assert set(book.rows) == {"pay-1"}
    logged = [r for r in caplog.records if "finer than the exchange's" in r.getMessage()]
    assert len(logged) == 1
    assert "USDC" in logged[0].getMessage()


class BrokenSession:
    """A session whose every statement fails the way SQLAlchemy does: its error quotes the parameters."""

    async def execute(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        orig = Exception("connection lost")
        orig.sqlstate = "08006"  # type: ignore[attr-defined]
        raise sqlalchemy.exc.OperationalError(str(statement), params, orig)


@contextlib.asynccontextmanager
async def broken_unit_of_work() -> AsyncIterator[SqlWithdrawals]:
    yield SqlWithdrawals(BrokenSession())  # type: ignore[arg-type]


async def test_a_database_error_of_the_book_never_carries_its_parameters() -> None:
    book = SqlWithdrawalBook.__new__(SqlWithdrawalBook)
    book._uow = broken_unit_of_work  # type: ignore[assignment] # the rail's unit of work, on a broken session
    record = WithdrawalRecord(
        payout_id="pay-1", provider="exchange", idempotency_key="key-1", client_id="pf1",
        state=WithdrawalState.SUBMITTING, asset="USDC", amount=1, currency="USDC", network="XLM",
        address=ADDRESS, memo="memo-4242", submitted_at=datetime.now(UTC),
    )  # fmt: skip
    calls = (book.begin_request(record), book.get("pay-1"), book.mark_sent("pay-1", "w1"),
             book.mark_not_sent("pay-1"), book.owned("exchange", ["w1"]),
             book.alike_in_flight(record, 60, [record.amount]))  # fmt: skip
    for call in calls:
        with pytest.raises(WithdrawalBookError) as err:
            await call
        assert err.value.code is C.PROVIDER_UNAVAILABLE
        assert err.value.sqlstate == "08006"
        shown = "".join(traceback.format_exception(err.value)) + repr(err.value.error)
        assert ADDRESS not in shown
        assert "memo-4242" not in shown
        assert "08006" in shown


async def test_an_answer_that_cannot_be_recorded_stays_unknown() -> None:
    provider, fake, book = rail()

    async def broken(payout_id: str, withdrawal_id: str) -> bool:
        raise WithdrawalBookError("mark_sent", "08006")

    book.mark_sent = broken  # type: ignore[method-assign]
    i = pay()
    with pytest.raises(PayoutProviderError) as err:
        await provider.create_payout(i)
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME  # the withdrawal exists: reconciled, never asked again
    assert book.rows[i.payout_id].state is WithdrawalState.SUBMITTING
    assert len(fake.made) == 1


async def test_unknown_and_unfound_stays_unknown_never_not_found() -> None:
    provider, fake, _book = rail()
    fake.errors.append(ccxt_async.RequestTimeout("binance POST (lost before the exchange)"))
    i = pay()
    with pytest.raises(PayoutProviderError):
        await provider.create_payout(i)
    for _ in range(2):
        with pytest.raises(PayoutProviderError) as err:
            await provider.sync_status(PayoutLookup(payout_id=i.payout_id, idempotency_key=i.idempotency_key))
        assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    with pytest.raises(PayoutProviderError):
        await provider.create_payout(i)
    assert fake.made == []  # nothing found, nothing asked again: an operator decides


async def test_people_settle_an_unknown_outcome_once_found_or_never_made() -> None:
    """What replaced the runbook's SQL: the reconciliation queue's settle_found / settle_not_made, decided by two
    people, recorded in the rail's book only from `submitting`; the same decision again changes nothing, another
    one is refused."""
    provider, fake, book = rail()
    lost, never = pay("1"), pay("2")
    for i in (lost, never):
        fake.errors.append(ccxt_async.RequestTimeout("binance POST (lost)"))
        with pytest.raises(PayoutProviderError):
            await provider.create_payout(i)
    await provider.settle_unknown_outcome(lost.payout_id, "w-found", "bob")
    await provider.settle_unknown_outcome(lost.payout_id, "w-found", "bob")  # confirmed again: no change
    assert (book.rows[lost.payout_id].state, book.rows[lost.payout_id].withdrawal_id) == (
        WithdrawalState.SENT,
        "w-found",
    )
    with pytest.raises(ReconError) as refused:
        await provider.settle_unknown_outcome(lost.payout_id, None, "bob")
    assert refused.value.code == "not_settleable"
    await provider.settle_unknown_outcome(never.payout_id, None, "bob")
    assert book.rows[never.payout_id].state is WithdrawalState.NOT_SENT
    assert (await provider.create_payout(never)).status is P.SUBMITTED  # asked again, with the same client id
    with pytest.raises(ReconError):
        await provider.settle_unknown_outcome(never.payout_id, "w-other", "bob")  # settled: nothing to decide


async def test_a_refusal_frees_the_payout_for_a_retry() -> None:
    provider, fake, book = rail()
    fake.errors.append(ccxt_async.RateLimitExceeded("binance 429"))
    i = pay()
    with pytest.raises(PayoutProviderError) as err:
        await provider.create_payout(i)
    assert err.value.code is C.RATE_LIMITED
    with pytest.raises(PayoutProviderError) as err:
        await provider.sync_status(PayoutLookup(payout_id=i.payout_id, idempotency_key=i.idempotency_key))
    assert err.value.code is C.PAYOUT_NOT_FOUND
    assert (await provider.create_payout(i)).status is P.SUBMITTED
    assert book.rows[i.payout_id].requests == 2


async def test_fee_quote_and_unsupported_operations() -> None:
    provider, fake, _ = rail()
    q = await provider.quote(pay())
    assert (q.fee.amount, q.receive_amount.amount) == (15_000_000, 85_000_000)
    fake.currencies["USDC"]["networks"]["ERC20"]["withdraw"] = False
    with pytest.raises(PayoutProviderError) as err:
        await provider.quote(pay())
    assert err.value.code is C.PROVIDER_UNAVAILABLE
    lookup = PayoutLookup(payout_id="pay-1", idempotency_key="key-1")
    with pytest.raises(PayoutProviderError) as err:
        await provider.cancel(lookup)
    assert err.value.code is C.UNSUPPORTED_OPERATION
    with pytest.raises(PayoutProviderError) as err:
        await provider.parse_webhook({}, b"{}")
    assert err.value.code is C.UNSUPPORTED_OPERATION


def test_two_providers_on_one_exchange_account_are_refused() -> None:
    """Each provider keeps its own book: on one account, each could adopt the other's withdrawals."""
    from prizeflow_payouts.bootstrap import parse_config

    other = {**spec(), "name": "exchange_two", "assets": ["USDC"]}
    ctx = ProviderContext(live_execution=False, database_url="", provider_timeout_s=10)
    with pytest.raises(ProviderConfigError, match=r"exchange_two.*also provider 'exchange'"):
        parse_config({"providers": [spec(), other]}, ctx, env=ENV)
