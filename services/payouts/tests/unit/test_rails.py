"""A rail registers once: its capabilities follow from the parts it has (never declared twice), and every rail
reads its provider's failures through one signature, `classify(error, *, mutating) -> PayoutError`."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

import httpx
import pytest

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_payouts.adapters.exchange.classify import ExchangeErrors
from prizeflow_payouts.adapters.giftcard.classify import GiftCardErrors
from prizeflow_payouts.adapters.stripe.classify import StripeErrors
from prizeflow_payouts.adapters.telegram.classify import TelegramErrors
from prizeflow_payouts.adapters.upi.classify import UpiErrors
from prizeflow_payouts.application.rail import ClassifiesErrors, Rail, RailTerms, StableErrors, may_have_landed
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry
from prizeflow_payouts.bootstrap import rail_statements

C = PayoutErrorCode
TERMS = RailTerms(cancels=False, quotes=True, webhooks=False, confirms_later=True)
CLASSIFIERS: dict[str, ClassifiesErrors] = {
    "stripe": StripeErrors("stripe"),
    "telegram": TelegramErrors("telegram"),
    "exchange": ExchangeErrors(exchange="binance", provider="exchange"),
    "gift_card": GiftCardErrors("giftcards"),
    "upi": UpiErrors("upi"),
    "ton": StableErrors("ton"),
}


class Payouts:
    provider_type = "sandbox"


def entry(**parts: Any) -> ProviderEntry:
    rail = Rail(payouts=Payouts(), terms=TERMS, errors=StableErrors("rail"), **parts)  # type: ignore[arg-type]
    return ProviderEntry("rail", rail, ("USDC",), (DestinationType.SANDBOX,))


def test_a_rail_without_parts_can_do_what_its_terms_say_and_no_more() -> None:
    caps = entry().capabilities
    assert (caps.supports_cancel, caps.supports_quote, caps.supports_webhooks, caps.async_confirmation) == (
        False,
        True,
        False,
        True,
    )
    assert not caps.supports_batching
    assert not caps.requires_signature
    assert (caps.assets, caps.destination_types) == (("USDC",), (DestinationType.SANDBOX,))


@pytest.mark.parametrize("part", ["signer_sink", "external"])
def test_a_rail_with_a_signing_part_requires_a_signature(part: str) -> None:
    assert entry(**{part: object()}).capabilities.requires_signature


def test_a_rail_with_a_batch_part_batches_and_one_without_does_not() -> None:
    assert entry(batch=object()).capabilities.supports_batching
    assert not entry(validator=object()).capabilities.supports_batching


def test_fixed_amounts_come_from_the_amounts_part_only() -> None:
    class Prices:
        def payable_amounts(self, asset: str) -> tuple[int, ...]:
            return (15, 25)

    assert entry(amounts=Prices()).payable_amounts("USDC") == (15, 25)
    assert entry().payable_amounts("USDC") is None


@pytest.mark.parametrize("rail", list(CLASSIFIERS))
def test_every_rail_classifies_with_one_signature(rail: str) -> None:
    signature = inspect.signature(type(CLASSIFIERS[rail]).classify)
    assert [(p.name, p.kind) for p in signature.parameters.values()] == [
        ("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("error", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("mutating", inspect.Parameter.KEYWORD_ONLY),
    ]
    assert signature.return_annotation in (PayoutError, "PayoutError")


@pytest.mark.parametrize("rail", list(CLASSIFIERS))
def test_a_call_that_may_have_moved_money_and_got_no_answer_is_of_unknown_outcome(rail: str) -> None:
    """A failure the rail's client does not know, of a call that may have moved money, is never a refusal; the
    same failure of a read says nothing about money."""
    classifier = CLASSIFIERS[rail]
    error = classifier.classify(httpx.ReadTimeout("no answer"), mutating=True)
    assert error.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert may_have_landed(error)
    read = classifier.classify(httpx.ReadTimeout("no answer"), mutating=False)
    assert not may_have_landed(read)
    assert read.code is C.PROVIDER_UNAVAILABLE


def test_reconciliation_registers_each_rail_from_its_parts_not_by_asking_the_provider() -> None:
    """bootstrap's `rail_statements`: the reader is the `statement` part, the settler the `settler` part; a
    provider object that happens to have `statement` or `settle_unknown_outcome` methods registers neither."""

    class Lists:
        provider_type = ProviderType.SANDBOX

        async def statement(self, since: Any, until: Any, cursor: str | None = None) -> Any:
            raise AssertionError("not read here")

        async def settle_unknown_outcome(self, payout_id: str, found_ref: str | None, actor: str) -> None:
            raise AssertionError("not settled here")

    reader, settler = Lists(), Lists()
    bare = Rail(payouts=reader, terms=TERMS, errors=StableErrors("bare"))  # type: ignore[arg-type]
    named = Rail(
        payouts=Payouts(),  # type: ignore[arg-type]
        terms=replace(TERMS, statement_fees_inside=True),
        errors=StableErrors("named"),
        statement=reader,
        settler=settler,
    )
    registry = ProviderRegistry(
        [
            ProviderEntry("bare", bare, ("USDC",), (DestinationType.SANDBOX,)),
            ProviderEntry("named", named, ("USDC",), (DestinationType.SANDBOX,)),
        ]
    )
    statements = rail_statements(registry)
    assert statements.listed() == ["named"]
    assert statements.get("bare").reader is None
    assert statements.get("bare").settler is None
    assert statements.get("bare").fees_inside is False
    assert statements.get("named").reader is reader
    assert statements.get("named").settler is settler
    assert statements.get("named").fees_inside is True


def test_the_exchange_rail_names_its_statement_settler_and_fees_inside() -> None:
    from prizeflow_payouts.adapters.exchange.factory import exchange_rail

    provider: Any = type("P", (), {"options": type("O", (), {"operator_after_s": 60})(), "errors": None})()
    rail = exchange_rail(provider)
    assert rail.statement is provider
    assert rail.settler is provider
    assert rail.terms.statement_fees_inside is True


class _Recording:
    """A rail's classifier that says what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, bool]] = []

    def classify(self, error: BaseException, *, mutating: bool) -> PayoutError:
        self.asked.append((type(error).__name__, mutating))
        return PayoutError.of(C.RATE_LIMITED, "read by the rail", provider="rail")


class _Raising:
    provider_type = "sandbox"

    async def create_payout(self, instruction: Any) -> Any:
        raise KeyError("a client's own error")

    async def sync_status(self, lookup: Any) -> Any:
        raise KeyError("a client's own error")


class _Rec:
    provider_name = "rail"

    def instruction(self) -> Any:
        return object()

    def lookup(self) -> Any:
        return object()


async def test_what_a_rails_client_raised_is_read_by_the_rails_own_classifier() -> None:
    """`ProviderCalls` asks the rail's `errors` part (required of every rail) about anything but the contract's
    errors, telling it whether the call may have moved money."""
    from prizeflow_payouts.application.provider_calls import ProviderCalls

    classifier = _Recording()
    rail = Rail(payouts=_Raising(), terms=TERMS, errors=classifier)  # type: ignore[arg-type]
    entry = ProviderEntry("rail", rail, ("USDC",), (DestinationType.SANDBOX,))
    calls = ProviderCalls(ProviderRegistry([entry]), timeout_s=5.0, concurrency=2)
    created = await calls.create(entry, [_Rec()])  # type: ignore[list-item]
    synced = await calls.sync(_Rec())  # type: ignore[arg-type]
    assert classifier.asked == [("KeyError", True), ("KeyError", False)]
    assert created[0].error is not None
    assert created[0].error.code is C.RATE_LIMITED
    assert synced.error is not None
    assert synced.error.code is C.RATE_LIMITED


async def test_a_create_a_rail_reads_as_not_found_stays_of_unknown_outcome() -> None:
    class NotFound(_Recording):
        def classify(self, error: BaseException, *, mutating: bool) -> PayoutError:
            return PayoutError.of(C.PAYOUT_NOT_FOUND, "wrongly read", provider="rail")

    from prizeflow_payouts.application.provider_calls import ProviderCalls

    rail = Rail(payouts=_Raising(), terms=TERMS, errors=NotFound())  # type: ignore[arg-type]
    entry = ProviderEntry("rail", rail, ("USDC",), (DestinationType.SANDBOX,))
    created = await ProviderCalls(ProviderRegistry([entry]), timeout_s=5.0, concurrency=2).create(entry, [_Rec()])  # type: ignore[list-item]
    assert created[0].error is not None
    assert created[0].error.code is C.TIMEOUT_UNKNOWN_OUTCOME
