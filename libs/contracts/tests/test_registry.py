"""Topic registry, payout error code table, provider protocol and the generated AsyncAPI document."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import prizeflow_contracts
from prizeflow_contracts import asyncapi
from prizeflow_contracts.envelope import event_types
from prizeflow_contracts.errors import (
    PAYOUT_ERROR_RETRYABLE,
    PayoutError,
    PayoutErrorCode,
    PayoutProviderError,
    is_retryable,
)
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderCapabilities,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
    Quote,
    RewardPayoutProvider,
    WebhookEvent,
)
from prizeflow_contracts.topics import ALL_TOPICS, all_topic_names, topic_named
from prizeflow_testkit.events import PLAYER_KEY

REPO_ROOT = Path(__file__).resolve().parents[3]

# --- topics ------------------------------------------------------------------------------------------


def test_every_topic_has_a_dlq_and_follows_the_naming_rule() -> None:
    names = all_topic_names()
    for topic in ALL_TOPICS:
        assert topic.dlq == topic.name + ".dlq"
        assert topic.dlq in names
        assert topic_named(topic.dlq) is topic
        assert topic.name.startswith("prizeflow.")
        assert topic.name.rsplit(".", 1)[1].startswith("v")
    assert len(names) == 2 * len(ALL_TOPICS) == len(set(names))
    with pytest.raises(KeyError, match="unknown topic"):
        topic_named("prizeflow.nope.v1")


def test_every_listed_event_is_registered_and_vice_versa() -> None:
    registered = {(cls.TOPIC.name, cls.EVENT_NAME) for cls in event_types().values()}
    listed = {(topic.name, name) for topic in ALL_TOPICS for name in topic.events}
    assert registered == listed


def test_event_names_are_past_tense_types() -> None:
    for event_type, cls in event_types().items():
        assert event_type == cls.event_type()
        assert cls.model_config.get("frozen") is True


# --- payout error codes ------------------------------------------------------------------------------


def test_error_table_covers_every_code() -> None:
    assert set(PAYOUT_ERROR_RETRYABLE) == set(PayoutErrorCode)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("provider_unavailable", True),
        ("rate_limited", True),
        ("timeout_unknown_outcome", True),
        ("insufficient_provider_funds", True),
        ("tx_bad_seq", True),
        ("tx_insufficient_fee", True),
        ("tx_expired", True),
        ("internal_error", True),
        ("invalid_destination", False),
        ("destination_blocked", False),
        ("amount_below_minimum", False),
        ("amount_above_maximum", False),
        ("unsupported_asset", False),
        ("compliance_rejected", False),
        ("duplicate_request", False),
        ("account_closed", False),
        ("signature_refused", False),
    ],
)
def test_is_retryable(code: str, retryable: bool) -> None:
    assert is_retryable(code) is retryable


def test_unknown_error_code() -> None:
    with pytest.raises(ValueError, match="unknown payout error code"):
        is_retryable("nope")


def test_payout_error_model_and_exception() -> None:
    err = PayoutError.of(PayoutErrorCode.RATE_LIMITED, "slow down", provider="stripe")
    assert err.retryable
    assert not PayoutError.of(PayoutErrorCode.RATE_LIMITED, "out of attempts", retryable=False).retryable
    assert PayoutError.model_validate({"code": "tx_failed", "message": "op_underfunded"}).retryable is False
    with pytest.raises(ValidationError, match="terminal"):
        PayoutError(code=PayoutErrorCode.INVALID_DESTINATION, message="x", retryable=True)
    exc = PayoutProviderError.of(PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME, "no answer in 10s", provider="stellar")
    assert exc.code is PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME
    assert exc.retryable
    assert "timeout_unknown_outcome" in str(exc)


# --- provider protocol -------------------------------------------------------------------------------


class FakeStellarProvider:
    """An asynchronous, signed, confirm-later provider: proves the protocol fits Stellar unchanged."""

    provider_type = ProviderType.STELLAR
    capabilities = ProviderCapabilities(
        supports_cancel=False,
        supports_quote=True,
        supports_webhooks=False,
        async_confirmation=True,
        requires_signature=True,
        supports_batching=True,
        assets=("XLM", "USDC"),
        destination_types=(DestinationType.STELLAR_ACCOUNT,),
    )

    def __init__(self) -> None:
        self.created: dict[str, ProviderPayoutResult] = {}
        self.time_out_next = False

    async def quote(self, instruction: PayoutInstruction) -> Quote:
        fee = Money(asset="XLM", amount=100)
        return Quote(amount=instruction.amount, fee=fee, receive_amount=instruction.amount)

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        key = instruction.idempotency_key
        if key not in self.created:
            self.created[key] = ProviderPayoutResult(status=ProviderPayoutStatus.PENDING, idempotency_key=key)
        if self.time_out_next:
            self.time_out_next = False
            raise PayoutProviderError.of(PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME, "rpc timeout", provider="stellar")
        return self.created[key]

    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        if lookup.idempotency_key not in self.created:
            raise PayoutProviderError.of(PayoutErrorCode.PAYOUT_NOT_FOUND, "never seen")
        return self.created[lookup.idempotency_key]

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        raise PayoutProviderError.of(PayoutErrorCode.UNSUPPORTED_OPERATION, "stellar payouts cannot be cancelled")

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise PayoutProviderError.of(PayoutErrorCode.UNSUPPORTED_OPERATION, "no webhooks")


async def test_a_timeout_is_synced_not_recreated() -> None:
    provider = FakeStellarProvider()
    assert isinstance(provider, RewardPayoutProvider)
    instruction = PayoutInstruction(
        payout_id="po-1",
        idempotency_key="cl-1:payout",
        amount=Money(asset="USDC", amount=25_000_000),
        destination=PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=PLAYER_KEY),
    )
    provider.time_out_next = True
    with pytest.raises(PayoutProviderError) as info:
        await provider.create_payout(instruction)
    assert info.value.code is PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME
    synced = await provider.sync_status(PayoutLookup(payout_id="po-1", idempotency_key="cl-1:payout"))
    assert synced.status is ProviderPayoutStatus.PENDING
    assert len(provider.created) == 1


def test_provider_models_validate() -> None:
    with pytest.raises(ValidationError, match="must carry an error"):
        ProviderPayoutResult(status=ProviderPayoutStatus.FAILED, idempotency_key="k")
    with pytest.raises(ValidationError, match="only a failed result"):
        ProviderPayoutResult(
            status=ProviderPayoutStatus.PAID,
            idempotency_key="k",
            error=PayoutError.of(PayoutErrorCode.TX_FAILED, "x"),
        )
    with pytest.raises(ValidationError, match="not redeemable"):
        PayoutInstruction(
            payout_id="po-1",
            idempotency_key="k",
            amount=Money(asset="SP", amount=1),
            destination=PayoutDestination(type=DestinationType.MANUAL, address="desk"),
        )
    with pytest.raises(ValidationError, match="28 bytes"):
        PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=PLAYER_KEY, memo="m" * 29)
    assert {t.value for t in ProviderType} >= {
        "manual",
        "stellar",
        "stripe",
        "sandbox",
        "telegram_if_supported",
    }


# --- AsyncAPI and the package surface ---------------------------------------------------------------


def test_committed_asyncapi_document_is_current() -> None:
    committed = (REPO_ROOT / asyncapi.DOC_PATH).read_text(encoding="utf-8")
    assert committed == asyncapi.render(), "docs/asyncapi.yaml is stale: run `uv run prizeflow-asyncapi`"


def test_asyncapi_document_shape() -> None:
    doc = yaml.safe_load(asyncapi.render())
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == set(all_topic_names())
    messages = doc["components"]["messages"]
    assert len(messages) == len(event_types())
    for message in messages.values():
        assert set(message["headers"]["required"]) == {"ce_type", "ce_id", "correlation_id"}
        envelope = doc["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert {"id", "type", "source", "time", "correlationid", "data"} <= set(envelope["required"])
    assert asyncapi.render() == asyncapi.render()


def test_asyncapi_schema_translates_pydantic_2020_12_spellings() -> None:
    tagged = {
        "discriminator": {"mapping": {"a": "#/components/schemas/A"}, "propertyName": "kind"},
        "oneOf": [{"$ref": "#/components/schemas/A"}],
    }
    assert asyncapi.asyncapi_schema(tagged) == {
        "discriminator": "kind",
        asyncapi.DISCRIMINATOR_MAPPING: {"a": "#/components/schemas/A"},
        "oneOf": [{"$ref": "#/components/schemas/A"}],
    }
    fixed = {"maxItems": 2, "minItems": 2, "prefixItems": [{"type": "integer"}, tagged], "type": "array"}
    assert asyncapi.asyncapi_schema(fixed) == {
        "maxItems": 2,
        "minItems": 2,
        "items": [{"type": "integer"}, asyncapi.asyncapi_schema(tagged)],
        "type": "array",
    }
    open_tail = {"prefixItems": [{"type": "integer"}], "items": {"type": "string"}, "type": "array"}
    assert asyncapi.asyncapi_schema(open_tail) == {
        "items": [{"type": "integer"}],
        "additionalItems": {"type": "string"},
        "type": "array",
    }
    homogeneous = {"items": tagged, "type": "array"}
    assert asyncapi.asyncapi_schema(homogeneous) == {"items": asyncapi.asyncapi_schema(tagged), "type": "array"}


def test_asyncapi_schema_leaves_data_and_property_names_alone() -> None:
    # Keywords are rewritten only where a schema is expected, never inside values or as property names.
    data = {"discriminator": {"propertyName": "x"}, "prefixItems": [1]}
    schema = {
        "properties": {"discriminator": {"type": "object", "default": data, "examples": [data]}, "prefixItems": {}},
        "const": data,
    }
    assert asyncapi.asyncapi_schema(schema) == schema


def test_asyncapi_schema_refuses_keywords_draft_07_cannot_express() -> None:
    with pytest.raises(ValueError, match=r"#/properties/a/items: .*unevaluatedProperties"):
        asyncapi.asyncapi_schema({"properties": {"a": {"items": {"unevaluatedProperties": False}}}})


def test_asyncapi_document_has_no_2020_12_spellings_left() -> None:
    def walk(node: object) -> None:
        if isinstance(node, dict):
            assert not isinstance(node.get("discriminator"), dict)
            assert "prefixItems" not in node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(asyncapi.render()))


def test_asyncapi_check_flag(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.yaml"
    with pytest.raises(SystemExit) as info:
        asyncapi.main(["--check", "--output", str(target)])
    assert info.value.code == 1
    asyncapi.main(["--output", str(target)])
    asyncapi.main(["--check", "--output", str(target)])


def test_public_api_is_exported() -> None:
    for name in prizeflow_contracts.__all__:
        assert hasattr(prizeflow_contracts, name), name


def test_each_provider_type_is_read_by_one_scheme_and_the_shared_one_serves_only_the_rails_without_their_own() -> None:
    """The readers are found by name (`rails/registry.py`), and the Prizeflow signature serves whatever no other
    reader does: a rail's reader module that went missing would silently move its provider type under the shared
    HMAC scheme. Pinned here: what signs as Prizeflow does, and one scheme for every type."""
    from prizeflow_contracts.kyc import VerificationVendor
    from prizeflow_contracts.rails.registry import WEBHOOK_READERS

    assert WEBHOOK_READERS["prizeflow_signature"].terms.serves == {
        ProviderType.MANUAL,
        ProviderType.SANDBOX,
        ProviderType.STELLAR,
        ProviderType.CRYPTO_EXCHANGE,
        ProviderType.FIAT_PROVIDER,
        ProviderType.TELEGRAM_IF_SUPPORTED,
        ProviderType.TON_WALLET,
    }
    served = [t for reader in WEBHOOK_READERS.values() for t in reader.terms.serves]
    assert sorted(map(str, served)) == sorted(map(str, [*ProviderType, *VerificationVendor]))
