"""The Stripe rail on an in-memory Stripe at the `stripe` library's HTTP boundary (no socket): configuration
refusals, validation, idempotency keys, flows of both modes, error and failure-code mapping, webhooks."""

from __future__ import annotations

# mypy: disallow-untyped-calls=False
# (stripe's exception constructors are untyped; the tests build them to feed the classification)
import json
import time
from typing import Any

import aiohttp
import pytest
import stripe

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError, is_retryable
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
)
from prizeflow_contracts.webhook_signatures import signature_header
from prizeflow_payouts.adapters.stripe import (
    PAYOUT_FAILURE_CODES,
    REQUEST_CODES,
    StripeErrors,
    StripePayoutProvider,
    derived_key,
    normalize_event,
    payout_failure,
)
from prizeflow_payouts.bootstrap import parse_config
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext
from prizeflow_testkit.stripe_payouts import (
    TEST_API_KEY,
    FakeStripeHTTP,
    Fault,
    account_id,
    build_test_provider,
    stripe_provider_doc,
)

C = PayoutErrorCode
P = ProviderPayoutStatus
CTX = ProviderContext(live_execution=False, database_url="postgresql+asyncpg://x@127.0.0.1:1/x", provider_timeout_s=10)


def instruction(n: int = 1, *, dest: str | None = None, amount: int = 1_000, asset: str = "USD") -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=f"pay-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset=asset, amount=amount),
        destination=PayoutDestination(type=DestinationType.STRIPE_ACCOUNT, address=dest or account_id()),
        metadata={"claim_id": f"claim-{n}", "correlation_id": f"corr-{n}"},
    )


def lookup(instr: PayoutInstruction, ref: str | None = None) -> PayoutLookup:
    return PayoutLookup(payout_id=instr.payout_id, idempotency_key=instr.idempotency_key, provider_ref=ref)


def provider(fake: FakeStripeHTTP, **doc: Any) -> StripePayoutProvider:
    return build_test_provider(http_client=fake, **doc)


# -- configuration --------------------------------------------------------------------------------------------
def config(entry: dict[str, Any], env: dict[str, str] | None = None, ctx: ProviderContext = CTX) -> Any:
    return parse_config({"providers": [entry]}, ctx, env={"STRIPE_API_KEY": TEST_API_KEY} if env is None else env)


def test_a_stripe_entry_builds_the_rail_with_its_capabilities() -> None:
    cfg = config(stripe_provider_doc(mode="transfer_and_payout", statement_descriptor="PRIZEFLOW"))
    entry = next(iter(cfg.registry))
    p = entry.provider
    assert isinstance(p, StripePayoutProvider)
    assert entry.rail.engine is p
    assert entry.rail.validator is p
    assert entry.rail.terms.settles_failures_on_sync
    assert p.provider_type is ProviderType.STRIPE
    caps = entry.capabilities
    assert caps.supports_cancel
    assert caps.async_confirmation
    assert caps.supports_returns
    assert caps.supports_quote
    assert entry.polls_status
    assert TEST_API_KEY not in repr(p)
    assert TEST_API_KEY not in json.dumps(entry.public)


def test_the_transfer_mode_is_synchronous_and_not_cancellable() -> None:
    caps = next(iter(config(stripe_provider_doc()).registry)).capabilities
    assert not caps.supports_cancel
    assert not caps.async_confirmation
    assert caps.supports_returns


def test_a_fiat_provider_with_the_stripe_rail_is_built_by_the_stripe_factory() -> None:
    p = next(iter(config(stripe_provider_doc(ptype="fiat_provider")).registry)).provider
    assert isinstance(p, StripePayoutProvider)
    assert p.provider_type is ProviderType.FIAT_PROVIDER  # routes and preferences keep the configured type


@pytest.mark.parametrize(
    ("entry", "env", "ctx", "message"),
    [
        (stripe_provider_doc(ptype="fiat_provider", rail="wise"), None, CTX, "fiat_provider rail 'wise' is not impl"),
        ({**stripe_provider_doc(ptype="fiat_provider"), "options": {}}, None, CTX, "fiat_provider rail None"),
        (stripe_provider_doc(rail="adyen"), None, CTX, "rail can only be stripe"),
        (stripe_provider_doc(colour="blue"), None, CTX, "colour: unknown option"),
        (stripe_provider_doc(mode="instant"), None, CTX, "mode"),
        (stripe_provider_doc(max_network_retries=9), None, CTX, "max_network_retries"),
        (stripe_provider_doc(statement_descriptor="PRIZE"), None, CTX, "statement_descriptor applies to payouts"),
        (stripe_provider_doc(timeout_s=10), None, CTX, "timeout_s (10.0) must be below"),
        (stripe_provider_doc(api_base="ftp://x"), None, CTX, "api_base must be an http"),
        (stripe_provider_doc(api_base="http://stripe.example.com"), None, CTX, "must use https"),
        ({**stripe_provider_doc(), "secrets": {}}, None, CTX, "stripe needs `secrets: {api_key"),
        ({**stripe_provider_doc(), "secrets": {"api_key": "STRIPE_API_KEY", "x": "STRIPE_API_KEY"}}, None, CTX, "'x'"),
        (stripe_provider_doc(), {}, CTX, "needs environment variable STRIPE_API_KEY"),
        (stripe_provider_doc(), {"STRIPE_API_KEY": "pk_test_123"}, CTX, "not a Stripe secret or restricted key"),
        (
            stripe_provider_doc(api_base="https://stripe.example.com"),
            {"STRIPE_API_KEY": "sk_live_abc"},
            ProviderContext(live_execution=True, database_url="x", provider_timeout_s=10),
            "live key (STRIPE_API_KEY) is only ever sent to https://api.stripe.com",
        ),
        (
            stripe_provider_doc(api_base="https://api.stripe.com"),
            {"STRIPE_API_KEY": "sk_live_abc"},
            CTX,
            "PAYOUTS_LIVE_EXECUTION is false",
        ),
        ({**stripe_provider_doc(), "destination_types": ["bank_account"]}, None, CTX, "stripe_account destinations"),
        (stripe_provider_doc(assets=("USDC",)), None, CTX, "asset USDC has no Stripe currency"),
        (
            stripe_provider_doc(api_base=None, api_base_env="STRIPE_API_URL"),
            None,
            CTX,
            "names STRIPE_API_URL, which is not set",
        ),
        (
            stripe_provider_doc(api_base=None, api_base_env="STRIPE_API_URL"),
            {"STRIPE_API_KEY": TEST_API_KEY, "STRIPE_API_URL": "ftp://x"},
            CTX,
            "STRIPE_API_URL: api_base must be an http",
        ),
        (
            stripe_provider_doc(api_base="http://127.0.0.1:1", api_base_env="STRIPE_API_URL"),
            {"STRIPE_API_KEY": TEST_API_KEY, "STRIPE_API_URL": "http://127.0.0.1:2"},
            CTX,
            "api_base or api_base_env, not both",
        ),
    ],
)
def test_unusable_stripe_configuration_is_refused_naming_it(
    entry: dict[str, Any], env: dict[str, str] | None, ctx: ProviderContext, message: str
) -> None:
    with pytest.raises(ProviderConfigError, match="provider 'stripe'") as info:
        config(entry, env, ctx)
    assert message in str(info.value)
    assert "sk_live_abc" not in str(info.value)
    assert "pk_test_123" not in str(info.value)


def test_api_base_env_reads_the_emulators_address_from_the_environment_the_file_was_resolved_against() -> None:
    env = {"STRIPE_API_KEY": TEST_API_KEY, "STRIPE_API_URL": "http://127.0.0.1:12111/"}
    p = next(iter(config(stripe_provider_doc(api_base=None, api_base_env="STRIPE_API_URL"), env).registry)).provider
    assert isinstance(p, StripePayoutProvider)
    assert p.options.api_base == "http://127.0.0.1:12111"


def test_a_live_key_to_stripe_with_live_execution_is_accepted() -> None:
    ctx = ProviderContext(live_execution=True, database_url="x", provider_timeout_s=10)
    entry = stripe_provider_doc(api_base="https://api.stripe.com")
    assert next(iter(config(entry, {"STRIPE_API_KEY": "sk_live_abc"}, ctx).registry)).name == "stripe"


def test_derived_keys_stay_within_stripes_limit() -> None:
    assert derived_key("k") == "k"
    assert derived_key("k", "payout") == "k:payout"
    long = "k" * 255
    assert len(derived_key(long, "reversal")) <= 255
    assert derived_key(long, "reversal") != derived_key("j" * 255, "reversal")


# -- validation and quote ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dest_type", "address", "asset", "code"),
    [
        (DestinationType.STRIPE_ACCOUNT, "acct_", "USD", C.INVALID_DESTINATION),
        (DestinationType.STRIPE_ACCOUNT, "acct_12-34", "USD", C.INVALID_DESTINATION),
        (DestinationType.STRIPE_ACCOUNT, "cus_123", "USD", C.INVALID_DESTINATION),
        (DestinationType.EMAIL, "acct_123", "USD", C.INVALID_DESTINATION),
        (DestinationType.STRIPE_ACCOUNT, "acct_123", "USDC", C.UNSUPPORTED_ASSET),
    ],
)
async def test_a_destination_stripe_cannot_pay_is_refused_before_anything_is_created(
    dest_type: DestinationType, address: str, asset: str, code: PayoutErrorCode
) -> None:
    fake = FakeStripeHTTP()
    p = provider(fake)
    instr = PayoutInstruction(
        payout_id="pay-x",
        idempotency_key="key-x",
        amount=Money(asset=asset, amount=100),
        destination=PayoutDestination(type=dest_type, address=address),
    )
    error = p.validate(instr)
    assert error is not None
    assert error.code is code
    assert not error.retryable
    assert address not in error.message or address in ("acct_", "cus_123")  # never the account it was given
    result = await p.create_payout(instr)
    assert result.status is P.FAILED
    assert result.error is not None
    assert result.error.code is code
    with pytest.raises(PayoutProviderError):
        await p.quote(instr)
    assert fake.requests == []


async def test_a_quote_is_free_and_delivers_the_amount() -> None:
    q = await provider(FakeStripeHTTP()).quote(instruction(amount=12_345))
    assert q.fee == Money(asset="USD", amount=0)
    assert q.receive_amount == q.amount == Money(asset="USD", amount=12_345)


# -- mode transfer ----------------------------------------------------------------------------------------------
async def test_a_transfer_is_the_payout_paid_at_once_with_our_key_and_metadata() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake)
    instr = instruction(amount=2_500, asset="INR")
    result = await p.create_payout(instr)
    assert result.status is P.PAID
    assert result.provider_ref is not None
    assert result.provider_ref.startswith("tr_")
    (transfer,) = fake.transfers_for(instr.payout_id)
    assert transfer["amount"] == 2_500
    assert transfer["currency"] == "inr"
    assert transfer["destination"] == instr.destination.address
    assert transfer["metadata"] == {
        "payout_id": "pay-1",
        "idempotency_key": "key-1",
        "prizeflow_mode": "transfer",
        "correlation_id": "corr-1",
    }
    (headers,) = fake.posts("/v1/transfers")
    assert headers["idempotency-key"] == "key-1"
    assert headers["authorization"] == f"Bearer {TEST_API_KEY}"
    again = await p.create_payout(instr)
    assert again.provider_ref == result.provider_ref
    assert len(fake.transfers_for(instr.payout_id)) == 1
    synced = await p.sync_status(lookup(instr))
    assert synced.status is P.PAID
    assert synced.provider_ref == result.provider_ref
    assert (await p.sync_status(lookup(instr, result.provider_ref))).status is P.PAID


async def test_sync_says_not_found_only_when_stripe_has_no_transfer() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake)
    with pytest.raises(PayoutProviderError) as info:
        await p.sync_status(lookup(instruction()))
    assert info.value.code is C.PAYOUT_NOT_FOUND
    fake.fail_next(Fault(method="get", status=503))
    with pytest.raises(PayoutProviderError) as info:  # no answer is not "none": the worker never creates on it
        await provider(fake, max_network_retries=0).sync_status(lookup(instruction()))
    assert info.value.code is C.PROVIDER_UNAVAILABLE


async def test_a_transfer_of_another_payout_in_the_group_is_not_ours() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake)
    mine = instruction(1)
    other = mine.model_copy(update={"idempotency_key": "key-other"})
    await p.create_payout(other)
    with pytest.raises(PayoutProviderError) as info:
        await p.sync_status(lookup(mine))
    assert info.value.code is C.PAYOUT_NOT_FOUND


async def test_a_rate_limit_creates_nothing_and_the_retry_pays_once() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake)
    instr = instruction()
    fake.fail_next(Fault(method="post", status=429, error={"type": "rate_limit_error", "message": "slow down"}))
    with pytest.raises(PayoutProviderError) as info:
        await p.create_payout(instr)
    assert info.value.code is C.RATE_LIMITED
    assert info.value.retryable
    assert fake.transfers_for(instr.payout_id) == []
    assert (await p.create_payout(instr)).status is P.PAID
    assert len(fake.transfers_for(instr.payout_id)) == 1


async def test_the_library_retries_a_500_with_the_same_key_and_one_transfer_is_made() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake, max_network_retries=2)
    instr = instruction()
    fake.fail_next(Fault(method="post", status=500, times=2))
    assert (await p.create_payout(instr)).status is P.PAID
    keys = {h["idempotency-key"] for h in fake.posts("/v1/transfers")}
    assert len(fake.posts("/v1/transfers")) == 3
    assert keys == {"key-1"}
    assert len(fake.transfers_for(instr.payout_id)) == 1


async def test_a_timeout_after_success_is_an_unknown_outcome_that_sync_resolves_paid_once() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake, max_network_retries=0)
    instr = instruction()
    fake.fail_next(Fault(method="post", lost=True, after=True))
    with pytest.raises(PayoutProviderError) as info:
        await p.create_payout(instr)
    assert info.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert (await p.sync_status(lookup(instr))).status is P.PAID
    assert len(fake.transfers_for(instr.payout_id)) == 1


async def test_a_terminal_refusal_is_a_failed_answer_never_retried() -> None:
    fake = FakeStripeHTTP()
    dest = account_id()
    fake.closed_accounts.add(dest)
    with pytest.raises(PayoutProviderError) as info:
        await provider(fake).create_payout(instruction(dest=dest))
    assert info.value.code is C.ACCOUNT_CLOSED
    assert not info.value.retryable
    assert dest not in str(info.value)


async def test_a_transfer_cannot_be_cancelled_and_a_full_reversal_is_a_return() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake)
    instr = instruction()
    paid = await p.create_payout(instr)
    with pytest.raises(PayoutProviderError) as info:
        await p.cancel(lookup(instr, paid.provider_ref))
    assert info.value.code is C.UNSUPPORTED_OPERATION  # never, in this mode (supports_cancel is false)
    assert fake.reversals == []  # a reversal is not a cancel
    fake.transfers[str(paid.provider_ref)].update(reversed=True, amount_reversed=1_000)
    assert (await p.sync_status(lookup(instr, paid.provider_ref))).status is P.RETURNED


# -- mode transfer_and_payout -----------------------------------------------------------------------------------
async def test_transfer_then_payout_is_pending_until_the_payout_is_paid() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake, mode="transfer_and_payout", statement_descriptor="PRIZEFLOW")
    instr = instruction()
    result = await p.create_payout(instr)
    assert result.status is P.PENDING
    assert result.provider_ref is not None
    assert result.provider_ref.startswith("po_")
    (headers,) = fake.posts("/v1/payouts")
    assert headers["idempotency-key"] == "key-1:payout"
    assert headers["stripe-account"] == instr.destination.address
    payout = fake.payouts[result.provider_ref]
    assert payout["metadata"]["idempotency_key"] == "key-1"
    assert payout["statement_descriptor"] == "PRIZEFLOW"
    assert (await p.sync_status(lookup(instr, result.provider_ref))).status is P.PENDING
    fake.settle_payout(result.provider_ref, "paid")
    assert (await p.sync_status(lookup(instr, result.provider_ref))).status is P.PAID
    assert len(fake.transfers_for(instr.payout_id)) == 1
    assert len(fake.payouts) == 1


async def test_a_create_lost_between_the_steps_is_resumed_by_sync_with_the_same_keys() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake, mode="transfer_and_payout", max_network_retries=0)
    instr = instruction()
    fake.fail_next(Fault(method="post", path_prefix="/v1/payouts", lost=True))
    with pytest.raises(PayoutProviderError) as info:
        await p.create_payout(instr)
    assert info.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    synced = await p.sync_status(lookup(instr))
    assert synced.status is P.PENDING
    assert len(fake.payouts) == 1
    assert len(fake.transfers) == 1


async def test_a_bank_payout_whose_answer_was_lost_is_found_by_sync_never_created_again() -> None:
    """After a restore, or past Stripe's 24-hour idempotency window, a create under the same key could make a
    second bank payout: sync looks the payout up on the connected account first."""
    fake = FakeStripeHTTP()
    p = provider(fake, mode="transfer_and_payout", max_network_retries=0)
    instr = instruction()
    others = [await p.create_payout(instruction(n, dest=instr.destination.address)) for n in (2, 3)]
    fake.fail_next(Fault(method="post", path_prefix="/v1/payouts", lost=True, after=True))  # made, answer lost
    with pytest.raises(PayoutProviderError):
        await p.create_payout(instr)
    fake.settle_payout(max(fake.payouts), "paid")
    posts = len(fake.posts("/v1/payouts"))
    synced = await p.sync_status(lookup(instr))
    assert synced.status is P.PAID
    assert synced.provider_ref == max(fake.payouts)
    assert len(fake.posts("/v1/payouts")) == posts  # looked up, not sent again
    assert len(fake.payouts) == 3
    assert all(o.status is P.PENDING for o in others)


async def test_a_failed_payout_pulls_the_money_back_before_it_is_reported_failed() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake, mode="transfer_and_payout")
    instr = instruction(amount=700)
    before = fake.balance["usd"]
    ref = str((await p.create_payout(instr)).provider_ref)
    fake.settle_payout(ref, "failed", "account_closed")
    fake.balance[f"{instr.destination.address}:usd"] += 700  # Stripe returns a failed payout to the account
    result = await p.sync_status(lookup(instr, ref))
    assert result.status is P.FAILED
    assert result.error is not None
    assert result.error.code is C.ACCOUNT_CLOSED
    assert not result.error.retryable
    assert result.error.provider_code == "payout:account_closed"
    assert fake.balance["usd"] == before
    assert len(fake.reversals) == 1
    assert fake.posts("/v1/transfers/")[0]["idempotency-key"] == "key-1:reversal"
    assert (await p.sync_status(lookup(instr, ref))).status is P.FAILED
    assert len(fake.reversals) == 1


async def test_a_failure_whose_money_cannot_be_pulled_back_is_never_reported_failed() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake, mode="transfer_and_payout")
    instr = instruction()
    ref = str((await p.create_payout(instr)).provider_ref)
    fake.settle_payout(ref, "failed", "declined")  # and the account's balance is empty: no reversal possible
    with pytest.raises(PayoutProviderError) as info:
        await p.sync_status(lookup(instr, ref))
    assert info.value.code is C.TIMEOUT_UNKNOWN_OUTCOME  # the worker keeps syncing; nothing is voided


async def test_a_payout_stripe_refuses_after_the_transfer_is_failed_with_the_money_back() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake, mode="transfer_and_payout")
    instr = instruction()
    fake.fail_next(
        Fault(
            path_prefix="/v1/payouts",
            status=400,
            error={"type": "invalid_request_error", "code": "payouts_not_allowed", "message": "no"},
        )
    )
    result = await p.create_payout(instr)
    assert result.status is P.FAILED
    assert result.error is not None
    assert result.error.code is C.DESTINATION_BLOCKED
    assert len(fake.reversals) == 1
    assert fake.transfers_for(instr.payout_id)[0]["reversed"]


async def test_a_pending_payout_is_cancelled_and_its_money_pulled_back() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake, mode="transfer_and_payout")
    instr = instruction()
    ref = str((await p.create_payout(instr)).provider_ref)
    result = await p.cancel(lookup(instr, ref))
    assert result.status is P.CANCELLED
    assert len(fake.reversals) == 1
    (cancel,) = fake.posts(f"/v1/payouts/{ref}/cancel")
    assert cancel["idempotency-key"] == "key-1:cancel"
    assert cancel["stripe-account"] == instr.destination.address


async def test_a_paid_payout_or_an_unknown_one_is_not_cancellable() -> None:
    fake = FakeStripeHTTP()
    p = provider(fake, mode="transfer_and_payout")
    instr = instruction()
    ref = str((await p.create_payout(instr)).provider_ref)
    fake.settle_payout(ref, "paid")
    for ref_given in (ref, None):
        with pytest.raises(PayoutProviderError) as info:
            await p.cancel(lookup(instr, ref_given))
        assert info.value.code is C.NOT_CANCELLABLE
    with pytest.raises(PayoutProviderError) as info:
        await p.cancel(lookup(instruction(2)))
    assert info.value.code is C.PAYOUT_NOT_FOUND
    assert fake.reversals == []


# -- error mapping ----------------------------------------------------------------------------------------------
def _invalid(code: str | None, param: str | None = None, status: int = 400) -> stripe.StripeError:
    return stripe.InvalidRequestError("Account acct_SECRET42 is closed", param, code, http_status=status)


def _connection(cause: BaseException) -> stripe.StripeError:
    err = stripe.APIConnectionError("network", should_retry=True)
    err.__cause__ = cause
    return err


_CONNECT_REFUSED = aiohttp.ClientConnectorError(None, OSError(111, "refused"))  # type: ignore[arg-type]

ERRORS: list[tuple[str, stripe.StripeError, bool, PayoutErrorCode]] = [
    ("429", stripe.RateLimitError("slow", http_status=429), True, C.RATE_LIMITED),
    ("429 read", stripe.RateLimitError("slow", http_status=429), False, C.RATE_LIMITED),
    ("timeout write", _connection(aiohttp.ServerTimeoutError()), True, C.TIMEOUT_UNKNOWN_OUTCOME),
    ("timeout read", _connection(aiohttp.ServerTimeoutError()), False, C.PROVIDER_UNAVAILABLE),
    ("refused write", _connection(_CONNECT_REFUSED), True, C.PROVIDER_UNAVAILABLE),
    ("500 write", stripe.APIError("boom", http_status=500), True, C.TIMEOUT_UNKNOWN_OUTCOME),
    ("503 read", stripe.APIError("boom", http_status=503), False, C.PROVIDER_UNAVAILABLE),
    ("409 in progress", stripe.APIError("in use", http_status=409), True, C.TIMEOUT_UNKNOWN_OUTCOME),
    ("401", stripe.AuthenticationError("bad key sk_test_x", http_status=401), True, C.AUTHENTICATION_FAILED),
    ("403", stripe.PermissionError("no perm", http_status=403), True, C.AUTHENTICATION_FAILED),
    # A create refused for another body under our key: an earlier attempt's transfer may exist (never final).
    ("idem reuse", stripe.IdempotencyError("reused", http_status=400), True, C.TIMEOUT_UNKNOWN_OUTCOME),
    ("idem reuse read", stripe.IdempotencyError("reused", http_status=400), False, C.DUPLICATE_REQUEST),
    ("card", stripe.CardError("declined", None, "card_declined", http_status=402), True, C.DESTINATION_BLOCKED),
    ("card ?", stripe.CardError("odd", None, "weird", http_status=402), True, C.DESTINATION_BLOCKED),
    ("expired card", stripe.CardError("x", None, "expired_card", http_status=402), True, C.INVALID_DESTINATION),
    ("missing dest", _invalid("resource_missing", "destination", 404), True, C.DESTINATION_NOT_FOUND),
    ("bad dest", _invalid("parameter_invalid_string", "destination"), True, C.INVALID_DESTINATION),
    ("bad currency", _invalid("parameter_invalid", "currency"), True, C.UNSUPPORTED_ASSET),
    ("other", _invalid("parameter_unknown", "colour"), True, C.INVALID_REQUEST),
    ("no code", _invalid(None), True, C.INVALID_REQUEST),
    ("rate_limit 400", _invalid("rate_limit"), True, C.RATE_LIMITED),
    *[(f"code {code}", _invalid(code), True, mapped) for code, mapped in REQUEST_CODES.items()],
]


@pytest.mark.parametrize(("case", "err", "mutating", "code"), ERRORS, ids=[e[0] for e in ERRORS])
def test_stripe_errors_map_to_stable_codes(
    case: str, err: stripe.StripeError, mutating: bool, code: PayoutErrorCode
) -> None:
    error = StripeErrors("stripe").classify(err, mutating=mutating)
    assert error.code is code, case
    assert error.retryable is is_retryable(code)
    assert "acct_SECRET42" not in error.message
    assert "sk_test_x" not in error.message
    assert error.provider_code is not None
    assert error.provider == "stripe"


def test_the_retryable_families_are_the_brief() -> None:
    retryable = {"429", "429 read", "timeout write", "timeout read", "refused write", "500 write", "503 read"}
    retryable |= {"409 in progress", "rate_limit 400", "idem reuse"}
    for case, err, mutating, _ in ERRORS:
        if case in retryable:
            assert StripeErrors("stripe").classify(err, mutating=mutating).retryable, case
    for code in ("account_invalid", "no_account", "account_closed", "amount_too_small", "payouts_not_allowed"):
        assert not StripeErrors("stripe").classify(_invalid(code), mutating=True).retryable, code


def test_credentials_refused_are_logged_loudly_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    StripeErrors("s").classify(
        stripe.AuthenticationError("Invalid API Key provided: sk_test_***x", http_status=401), mutating=True
    )
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "credentials" in record.getMessage()
    assert "sk_test" not in record.getMessage()


@pytest.mark.parametrize(("failure_code", "code"), [*PAYOUT_FAILURE_CODES.items(), ("something_new", C.TX_FAILED)])
def test_payout_failure_codes_are_terminal_for_that_payout(failure_code: str, code: PayoutErrorCode) -> None:
    error = payout_failure(failure_code, "stripe")
    assert error.code is code
    assert not error.retryable
    assert error.provider_code == f"payout:{failure_code}"


# -- webhooks ---------------------------------------------------------------------------------------------------
def event(kind: str, obj: dict[str, Any], *, eid: str = "evt_1") -> dict[str, Any]:
    return {"id": eid, "object": "event", "type": kind, "created": 1_700_000_000, "data": {"object": obj}}


def _meta(mode: str) -> dict[str, str]:
    return {"payout_id": "pay-1", "idempotency_key": "key-1", "prizeflow_mode": mode}


TRANSFER = {"id": "tr_1", "object": "transfer", "amount": 100, "amount_reversed": 0, "reversed": False}
PAYOUT = {"id": "po_1", "object": "payout", "amount": 100, "status": "pending"}


@pytest.mark.parametrize(
    ("kind", "obj", "status", "code"),
    [
        ("transfer.created", {**TRANSFER, "metadata": _meta("transfer")}, P.PAID, None),
        ("transfer.created", {**TRANSFER, "metadata": _meta("transfer_and_payout")}, None, None),
        ("transfer.reversed", {**TRANSFER, "reversed": True, "metadata": _meta("transfer")}, P.RETURNED, None),
        ("transfer.reversed", {**TRANSFER, "amount_reversed": 40, "metadata": _meta("transfer")}, None, None),
        ("transfer.reversed", {**TRANSFER, "reversed": True, "metadata": _meta("transfer_and_payout")}, None, None),
        ("payout.created", {**PAYOUT, "metadata": _meta("transfer_and_payout")}, P.PENDING, None),
        (
            "payout.updated",
            {**PAYOUT, "status": "in_transit", "metadata": _meta("transfer_and_payout")},
            P.PENDING,
            None,
        ),
        ("payout.paid", {**PAYOUT, "status": "paid", "metadata": _meta("transfer_and_payout")}, P.PAID, None),
        (
            "payout.failed",
            {**PAYOUT, "status": "failed", "failure_code": "account_closed", "metadata": _meta("transfer_and_payout")},
            P.FAILED,
            C.ACCOUNT_CLOSED,
        ),
        (
            "payout.canceled",
            {**PAYOUT, "status": "canceled", "metadata": _meta("transfer_and_payout")},
            P.CANCELLED,
            None,
        ),
        ("payout.reconciliation_completed", {**PAYOUT, "metadata": _meta("transfer_and_payout")}, None, None),
        ("charge.refunded", {"id": "ch_1", "object": "charge"}, None, None),
    ],
)
def test_stripe_events_normalize_to_a_payout_status(
    kind: str, obj: dict[str, Any], status: ProviderPayoutStatus | None, code: PayoutErrorCode | None
) -> None:
    ev = normalize_event(event(kind, obj))
    assert ev.status is status
    assert ev.kind == kind
    assert ev.object_id == obj["id"]
    assert (ev.error.code if ev.error else None) is code
    if obj.get("metadata"):
        assert ev.idempotency_key == "key-1"
        assert ev.payout_id == "pay-1"


async def test_a_webhook_is_verified_with_the_endpoint_secret_then_normalized() -> None:
    now = time.time()
    raw = stripe_provider_doc()
    raw["secrets"] = {**raw["secrets"], "webhook_secret": "STRIPE_WEBHOOK_SECRET"}
    env = {"STRIPE_API_KEY": TEST_API_KEY, "STRIPE_WEBHOOK_SECRET": "whsec_test"}
    p = next(iter(parse_config({"providers": [raw]}, CTX, env=env).registry)).provider
    body = json.dumps(event("payout.paid", {**PAYOUT, "status": "paid", "metadata": _meta("t")})).encode()
    header = signature_header("whsec_test", int(now), body)
    ev = await p.parse_webhook({"Stripe-Signature": header}, body)
    assert ev.verified
    assert ev.status is P.PAID
    assert ev.idempotency_key == "key-1"
    assert ev.provider_payout_ref == "po_1"
    for bad in (signature_header("whsec_other", int(now), body), ""):
        with pytest.raises(PayoutProviderError) as info:
            await p.parse_webhook({"Stripe-Signature": bad}, body)
        assert info.value.code is C.WEBHOOK_SIGNATURE_INVALID


def test_a_webhook_secret_must_be_an_endpoint_secret() -> None:
    raw = stripe_provider_doc()
    raw["secrets"] = {**raw["secrets"], "webhook_secret": "STRIPE_WEBHOOK_SECRET"}
    with pytest.raises(ProviderConfigError, match="STRIPE_WEBHOOK_SECRET is not a Stripe endpoint secret"):
        config(raw, {"STRIPE_API_KEY": TEST_API_KEY, "STRIPE_WEBHOOK_SECRET": "hunter2"})


async def test_results_are_valid_contract_results() -> None:
    fake = FakeStripeHTTP()
    result = await provider(fake).create_payout(instruction())
    assert ProviderPayoutResult.model_validate(result.model_dump()) == result
    assert result.fee == Money(asset="USD", amount=0)


def test_the_stripe_client_goes_through_the_proxy_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/k8s sends public egress through its proxy; the Stripe library's aiohttp client never reads it."""
    from prizeflow_payouts.adapters.stripe.provider import env_proxy

    monkeypatch.setenv("HTTPS_PROXY", "http://egress-proxy:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,.svc")
    assert env_proxy("https://api.stripe.com") == "http://egress-proxy:3128"
    assert env_proxy("http://127.0.0.1:12111") is None
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("NO_PROXY")
    assert env_proxy("https://api.stripe.com") is None
