"""The upi rail's pure parts: the destination's strict reading (VPA, IFSC + account), the routing over the
operator's limits (fail closed), RazorpayX's statuses and errors mapped to ours, the options refused at start-up,
the statement's lines, the balance read at RazorpayX (and refused when it is not a clear figure)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from prizeflow_contracts.errors import PAYOUT_ERROR_RETRYABLE, PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    ProviderPayoutStatus,
    ProviderType,
    StatementLineKind,
)
from prizeflow_contracts.upi import (
    PAYOUT_STATUSES,
    UpiAddressKind,
    failure_code,
    parse_upi_address,
    read_payout_event,
)
from prizeflow_payouts.adapters.upi import Mode, UpiErrors, UpiRefusalError, choose_mode, payout_key, reference_of
from prizeflow_payouts.adapters.upi.options import Purpose, UpiKeys, UpiOptions
from prizeflow_payouts.adapters.upi.provider import UpiPayoutProvider
from prizeflow_payouts.adapters.upi.statement import lines_of
from prizeflow_payouts.application.ports import ProviderBalance
from prizeflow_payouts.bootstrap import parse_config
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext

C = PayoutErrorCode
P = ProviderPayoutStatus
LIMITS = {Mode.UPI: 10_000_000, Mode.IMPS: 50_000_000, Mode.NEFT: 200_000_000}


# -- the destination ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "kind", "spelling"),
    [
        ("player@paytm", UpiAddressKind.VPA, "player@paytm"),
        ("Player.One-2_x@OkAxis", UpiAddressKind.VPA, "player.one-2_x@okaxis"),
        ("9876543210@ybl", UpiAddressKind.VPA, "9876543210@ybl"),
        ("HDFC0001234/123456789012", UpiAddressKind.BANK_ACCOUNT, "HDFC0001234/123456789012"),
        ("sbin0ABC123/000123456", UpiAddressKind.BANK_ACCOUNT, "SBIN0ABC123/000123456"),
    ],
)
def test_a_vpa_or_an_ifsc_and_account_is_read_in_one_spelling(
    address: str, kind: UpiAddressKind, spelling: str
) -> None:
    parsed = parse_upi_address(address)
    assert (parsed.kind, parsed.spelling) == (kind, spelling)
    assert PayoutDestination(type=DestinationType.UPI, address=address).address == address


@pytest.mark.parametrize(
    "address",
    [
        "player",  # neither
        "player@",  # no PSP
        "@paytm",  # no user
        ".player@paytm",  # a separator first
        "player.@paytm",  # a separator last
        "pla yer@paytm",  # a space
        "player@pay.tm",  # a dotted handle is an email, not a VPA
        "player@p",  # a one-letter handle
        "player@9paytm",  # a handle starts with a letter
        "a" * 65 + "@paytm",  # too long a user
        "HDFC1001234/123456789",  # the fifth IFSC character is 0
        "HDF00001234/123456789",  # four letters first
        "HDFC000123/123456789",  # 11 characters
        "HDFC0001234/12345678",  # 8 digits
        "HDFC0001234/1234567890123456789",  # 19 digits
        "HDFC0001234/12345678a",  # digits only
        "HDFC0001234",  # no account
        "HDFC0001234/",  # an empty account
        "/123456789",  # an empty IFSC
    ],
)
def test_anything_else_is_refused_by_the_contract(address: str) -> None:
    with pytest.raises(ValueError, match=r"VPA|IFSC|account|upi"):
        parse_upi_address(address)
    with pytest.raises(ValidationError):
        PayoutDestination(type=DestinationType.UPI, address=address)


# -- routing --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "amount", "mode"),
    [
        (UpiAddressKind.VPA, 100, Mode.UPI),
        (UpiAddressKind.VPA, 10_000_000, Mode.UPI),
        (UpiAddressKind.VPA, 10_000_001, None),  # no other mode reaches a VPA
        (UpiAddressKind.VPA, 99, None),  # under ₹1
        (UpiAddressKind.BANK_ACCOUNT, 100, Mode.IMPS),
        (UpiAddressKind.BANK_ACCOUNT, 50_000_000, Mode.IMPS),
        (UpiAddressKind.BANK_ACCOUNT, 50_000_001, Mode.NEFT),
        (UpiAddressKind.BANK_ACCOUNT, 200_000_001, None),
    ],
)
def test_small_amounts_go_instantly_larger_by_neft(kind: UpiAddressKind, amount: int, mode: Mode | None) -> None:
    assert choose_mode(kind, amount, LIMITS) is mode


def test_a_mode_the_operator_left_out_is_never_used() -> None:
    assert choose_mode(UpiAddressKind.VPA, 500, {Mode.IMPS: 1_000_000}) is None
    assert choose_mode(UpiAddressKind.BANK_ACCOUNT, 2_000_000, {Mode.IMPS: 1_000_000}) is None
    assert choose_mode(UpiAddressKind.BANK_ACCOUNT, 2_000_000, {Mode.NEFT: 5_000_000}) is Mode.NEFT


# -- statuses and errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "ours"),
    [
        ("queued", P.PENDING),
        ("pending", P.PENDING),
        ("processing", P.SUBMITTED),
        ("processed", P.PAID),
        ("reversed", P.FAILED),  # on a paid payout, payouts reads it as a return
        ("failed", P.FAILED),
        ("rejected", P.FAILED),
        ("cancelled", P.CANCELLED),
    ],
)
def test_every_razorpayx_state_maps_to_ours(status: str, ours: ProviderPayoutStatus) -> None:
    assert PAYOUT_STATUSES[status] is ours


def test_every_failure_reason_is_terminal() -> None:
    for reason in ("bank_account_invalid", "beneficiary_vpa_invalid", "beneficiary_bank_rejected", None, "new"):
        assert not PAYOUT_ERROR_RETRYABLE[failure_code("failed", reason)]
    assert failure_code("reversed", "bank_account_closed") is C.ACCOUNT_CLOSED
    assert failure_code("rejected", None) is C.COMPLIANCE_REJECTED


@pytest.mark.parametrize(
    ("status", "doc", "mutating", "code"),
    [
        (401, {"error": {"code": "BAD_REQUEST_ERROR"}}, True, C.AUTHENTICATION_FAILED),
        (429, {}, True, C.RATE_LIMITED),
        (500, {"error": {"code": "SERVER_ERROR"}}, True, C.TIMEOUT_UNKNOWN_OUTCOME),
        (500, {"error": {"code": "SERVER_ERROR"}}, False, C.PROVIDER_UNAVAILABLE),
        (502, {}, True, C.TIMEOUT_UNKNOWN_OUTCOME),  # an outage's HTML: not JSON
        (502, {}, False, C.PROVIDER_UNAVAILABLE),
        (400, {"error": {"reason": "insufficient_funds"}}, True, C.INSUFFICIENT_PROVIDER_FUNDS),
        (400, {"error": {"field": "vpa.address"}}, True, C.INVALID_DESTINATION),
        (400, {"error": {"field": "bank_account.ifsc"}}, True, C.INVALID_DESTINATION),
        (400, {"error": {"field": "X-Payout-Idempotency"}}, True, C.DUPLICATE_REQUEST),
        (400, {"error": {"field": "amount"}}, True, C.INVALID_REQUEST),
    ],
)
def test_classify(status: int, doc: dict[str, Any], mutating: bool, code: PayoutErrorCode) -> None:
    assert UpiErrors("upi").classify(UpiRefusalError(status, doc), mutating=mutating).code is code


def test_outages_are_retryable_and_a_reused_key_is_not() -> None:
    for status in (429, 500, 502, 503, 504):
        assert UpiErrors("upi").classify(UpiRefusalError(status, {}), mutating=True).retryable
    reused = UpiRefusalError(400, {"error": {"field": "X-Payout-Idempotency"}})
    assert not UpiErrors("upi").classify(reused, mutating=True).retryable


def test_the_idempotency_key_and_reference_derive_from_the_payout_id() -> None:
    assert payout_key("po-0123456789abcdef0123456789abcdef") == "po-0123456789abcdef0123456789abcdef"
    long_id = "po-" + "x" * 60
    assert payout_key(long_id) == payout_key(long_id)
    assert len(payout_key(long_id)) == 32
    assert len(reference_of(long_id)) == 40


def test_an_event_is_read_as_the_payout_it_carries() -> None:
    doc = {
        "entity": "event",
        "event": "payout.reversed",
        "payload": {"payout": {"entity": {"id": "pout_1", "entity": "payout", "status": "reversed",
                                          "reference_id": "po-1", "notes": {"prizeflow_key": "k1"},
                                          "status_details": {"reason": "beneficiary_bank_rejected"}}}},
        "created_at": 1_750_000_000,
    }  # fmt: skip
    ev = read_payout_event(doc)
    assert (ev.payout_ref, ev.reference_id, ev.idempotency_key) == ("pout_1", "po-1", "k1")
    assert (ev.status, ev.error_code) == (P.FAILED, C.DESTINATION_BLOCKED)


# -- options --------------------------------------------------------------------------------------------------------
ENV = {"UPI_KEY_ID": "rzp_test_abc", "UPI_KEY_SECRET": "secret-value-0123456789"}


def entry(**options: Any) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "upi",
                "type": "upi",
                "assets": ["INR"],
                "destination_types": ["upi"],
                "secrets": {"key_id": "UPI_KEY_ID", "key_secret": "UPI_KEY_SECRET"},
                "options": {"api_base": "http://127.0.0.1:1", "account_number": "7878780080316316", **options},
            }
        ]
    }


def context() -> ProviderContext:
    return ProviderContext(live_execution=False, database_url="postgresql+asyncpg://x/y", provider_timeout_s=10.0)


def test_a_well_formed_entry_builds_the_rail() -> None:
    config = parse_config(entry(limits={"UPI": 1_000_000}), context(), env=ENV)
    upi = config.registry.get("upi")
    caps = upi.capabilities
    assert caps.supports_returns
    assert caps.supports_cancel
    assert caps.async_confirmation
    assert not caps.requires_signature
    assert upi.rail.validator is not None
    assert upi.rail.statement is not None
    assert upi.rail.database is not None
    assert upi.rail.balance is not None
    assert config.registry.route("INR", DestinationType.UPI).name == "upi"


@pytest.mark.parametrize(
    ("options", "env", "says"),
    [
        ({}, ENV, "limits"),  # fail closed: no limits, no rail
        ({"limits": {}}, ENV, "limits"),
        ({"limits": {"UPI": 10_000_001}}, ENV, "above the network"),
        ({"limits": {"RTGS": 1_000_000}}, ENV, "limits"),
        ({"limits": {"UPI": 1000}, "colour": "red"}, ENV, "unknown option"),
        ({"limits": {"UPI": 1000}}, {**ENV, "UPI_KEY_ID": "key_abc"}, "not a RazorpayX key id"),
        ({"limits": {"UPI": 1000}}, {**ENV, "UPI_KEY_ID": "rzp_live_abc"}, "live key"),
    ],
)
def test_an_unusable_entry_refuses_start_up(options: dict[str, Any], env: dict[str, str], says: str) -> None:
    with pytest.raises(ProviderConfigError, match=says):
        parse_config(entry(**options), context(), env=env)


def test_it_pays_inr_to_upi_destinations_only() -> None:
    doc = entry(limits={"UPI": 1000})
    doc["providers"][0]["destination_types"] = ["bank_account"]
    with pytest.raises(ProviderConfigError, match="upi destinations only"):
        parse_config(doc, context(), env=ENV)


# -- statement ------------------------------------------------------------------------------------------------------
def test_a_payout_is_a_payout_and_a_fee_line_a_reversal_a_reversal_line() -> None:
    payout = {"id": "txn_1", "created_at": 1_750_000_000, "credit": 0, "debit": 50590,
              "source": {"id": "pout_1", "entity": "payout", "amount": 50000, "fees": 590, "reference_id": "po-1",
                         "fund_account_id": "fa_1", "mode": "UPI", "status": "processed"}}  # fmt: skip
    lines = lines_of(payout, {"fa_1": "player@paytm"})
    assert [(x.line_id, x.kind, x.amount, x.reference, x.destination) for x in lines] == [
        ("txn_1", StatementLineKind.PAYOUT, 50000, "po-1", "player@paytm"),
        ("txn_1:fee", StatementLineKind.FEE, 590, "po-1", None),
    ]
    source = {"id": "rvrsl_1", "entity": "reversal", "payout_id": "pout_1", "amount": 50000, "fees": 590}
    reversal = {"id": "txn_2", "created_at": 1_750_010_800, "credit": 50590, "source": source}
    back = lines_of(reversal, {})
    assert [(x.kind, x.amount, x.provider_ref) for x in back] == [
        (StatementLineKind.REVERSAL, 50000, "pout_1"),
        (StatementLineKind.CREDIT, 590, "pout_1"),
    ]


def test_a_stray_payouts_fee_is_no_second_finding() -> None:
    source = {"id": "pout_9", "entity": "payout", "amount": 50000, "fees": 590, "reference_id": None}
    stray = {"id": "txn_3", "created_at": 1_750_000_000, "debit": 50590, "source": source}
    assert [x.kind for x in lines_of(stray, {})] == [StatementLineKind.PAYOUT, StatementLineKind.FEE]


# -- the balance at RazorpayX ---------------------------------------------------------------------------------------
ACCOUNT = "7878780080316316"


def balance_rail(answer: httpx.Response | Exception, *, low_below: int | None = 5_000_000) -> UpiPayoutProvider:
    def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("GET", "/v1/banking_balances")
        if isinstance(answer, Exception):
            raise answer
        return answer

    options = UpiOptions(
        name="upi",
        provider_type=ProviderType.UPI,
        api_base="http://razorpayx.test",
        account_number=ACCOUNT,
        limits=LIMITS,
        queue_if_low_balance=True,
        purpose=Purpose.PAYOUT,
        contact_name="Prizeflow player",
        narration=None,
        timeout_s=1.0,
        validate_accounts=True,
        low_balance_below=low_below,
    )
    keys = UpiKeys(key_id="rzp_test_abc", key_secret="secret-value-0123456789", webhook_secrets=())
    return UpiPayoutProvider(options, keys=keys, transport=httpx.MockTransport(handler))


def balances_doc(*items: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"entity": "collection", "count": len(items), "items": list(items)})


def balance_item(account: str = ACCOUNT, available: Any = 12_345_600, currency: str = "INR") -> dict[str, Any]:
    return {
        "entity": "banking_balance",
        "currency": currency,
        "account_number": account,
        "amount": 99_999_999,
        "available_amount": available,
    }


async def test_the_balance_is_our_account_s_available_amount_in_paise_with_the_operator_s_threshold() -> None:
    rail = balance_rail(balances_doc(balance_item("2323230041626905", 1), balance_item()))
    assert await rail.balances() == (ProviderBalance(currency="INR", available=12_345_600, low_below=5_000_000),)
    rail = balance_rail(balances_doc(balance_item()), low_below=None)
    assert (await rail.balances())[0].low_below is None


@pytest.mark.parametrize(
    "answer",
    [
        balances_doc(),  # our account not listed
        balances_doc(balance_item("2323230041626905")),  # another account only
        balances_doc(balance_item(), balance_item()),  # twice: which one?
        balances_doc(balance_item(available="12345600")),  # a string, not an integer of paise
        balances_doc(balance_item(available=123.4)),
        balances_doc(balance_item(available=True)),
        balances_doc(balance_item(available=-1)),
        balances_doc(balance_item(currency="USD")),
        httpx.Response(200, json={"entity": "collection", "items": "none"}),
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(401, json={"error": {"code": "BAD_REQUEST_ERROR", "description": "auth"}}),
        httpx.ConnectError("refused"),
    ],
)
async def test_a_balance_razorpayx_cannot_give_is_an_error_never_a_figure(answer: httpx.Response | Exception) -> None:
    with pytest.raises(PayoutProviderError):
        await balance_rail(answer).balances()


def test_the_low_balance_threshold_is_an_option_in_paise() -> None:
    config = parse_config(entry(limits={"UPI": 1_000_000}, low_balance_below=2_500_000), context(), env=ENV)
    provider = config.registry.get("upi").provider
    assert isinstance(provider, UpiPayoutProvider)
    assert provider.options.low_balance_below == 2_500_000
    with pytest.raises(ProviderConfigError, match="low_balance_below"):
        parse_config(entry(limits={"UPI": 1_000_000}, low_balance_below=-1), context(), env=ENV)
