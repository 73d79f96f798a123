"""The signer's request and result topics (docs/signing-modes.md).

The signer trusts nothing but the intent: it decodes `unsigned_xdr` and signs only if the transaction
does exactly what the intent says, within policy. Amounts are stroops (7 decimals), never decimals.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, ClassVar, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from prizeflow_contracts.envelope import EventPayload
from prizeflow_contracts.ids import (
    Identifier,
    StellarAccountId,
    StellarContractId,
    TxHash,
    XdrBase64,
)
from prizeflow_contracts.money import INT64_MAX, AssetCode, PositiveMinorUnits, asset
from prizeflow_contracts.topics import SIGNER_REQUESTS, SIGNER_RESULTS, Topic

MAX_OPERATIONS: Final = 100  # Stellar's per-transaction limit
TON_MAX_BATCH: Final = 254  # highload wallet v3: out-actions in one message (255 per transaction, one kept spare)
MAX_PAYOUTS_PER_REQUEST: Final = max(MAX_OPERATIONS, TON_MAX_BATCH)


class SignatureRefusalCode(StrEnum):
    WRONG_NETWORK = "wrong_network"
    WRONG_SOURCE = "wrong_source"
    DESTINATION_MISMATCH = "destination_mismatch"
    AMOUNT_MISMATCH = "amount_mismatch"
    ASSET_NOT_ALLOWED = "asset_not_allowed"
    CONTRACT_MISMATCH = "contract_mismatch"
    METHOD_MISMATCH = "method_mismatch"
    UNEXPECTED_OPERATION = "unexpected_operation"
    FEE_TOO_HIGH = "fee_too_high"
    MISSING_TIME_BOUNDS = "missing_time_bounds"
    OVER_TX_CAP = "over_tx_cap"
    OVER_DAILY_CAP = "over_daily_cap"
    DESTINATION_DENIED = "destination_denied"
    MALFORMED_XDR = "malformed_xdr"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    # The signer runs the `external` backend: checks passed, an operator signs out of band (payouts admin API).
    EXTERNAL_SIGNING_REQUIRED = "external_signing_required"
    # The envelope decodes but does not re-encode to the same bytes (e.g. a zero-padded asset code, trailing
    # bytes, non-zero padding): what would be signed is not what was checked.
    NON_CANONICAL_ENCODING = "non_canonical_encoding"
    # The request itself could not be read (bad JSON, envelope or payload) but named its request id.
    MALFORMED_REQUEST = "malformed_request"
    # A transaction the signer signed earlier for one of these payouts can still land (its upper time bound
    # has not passed); `live_until` says when it will sign another.
    LIVE_SIGNATURE_EXISTS = "live_signature_exists"
    # TON: the message's seqno (highload wallet v3: query id), bounce flag, validity window (v4r2: valid_until;
    # highload: created_at within the clock skew, timeout at most the maximum) or jetton (master and our jetton
    # wallet) is not the intent's, or not allowed by policy.
    SEQNO_MISMATCH = "seqno_mismatch"
    BOUNCE_MISMATCH = "bounce_mismatch"
    VALIDITY_OUT_OF_WINDOW = "validity_out_of_window"
    JETTON_MISMATCH = "jetton_mismatch"


# Only a signer outage may be retried with the same request; every other refusal is a verdict.
RETRYABLE_REFUSALS: Final = frozenset({SignatureRefusalCode.BACKEND_UNAVAILABLE})


def _stellar_asset(code: str) -> str:
    if "stellar" not in asset(code).provider_codes:
        raise ValueError(f"asset {code} has no Stellar mapping")
    return code


StellarAsset = Annotated[AssetCode, AfterValidator(_stellar_asset)]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ScArgType(StrEnum):
    """Soroban argument types an intent may name; values are strings so big integers stay exact."""

    ADDRESS = "address"
    I128 = "i128"
    U128 = "u128"
    I64 = "i64"
    U64 = "u64"
    U32 = "u32"
    BOOL = "bool"
    SYMBOL = "symbol"
    STRING = "string"
    BYTES = "bytes"


_INT_RANGES: Final = {
    ScArgType.I128: (-(2**127), 2**127 - 1),
    ScArgType.U128: (0, 2**128 - 1),
    ScArgType.I64: (-(2**63), 2**63 - 1),
    ScArgType.U64: (0, 2**64 - 1),
    ScArgType.U32: (0, 2**32 - 1),
}
_ADDRESS_RE: Final = re.compile(r"[GC][A-Z2-7]{55}")
_SYMBOL_RE: Final = re.compile(r"[A-Za-z0-9_]{1,32}")
_INT_RE: Final = re.compile(r"-?(0|[1-9][0-9]*)")
_HEX_RE: Final = re.compile(r"([0-9a-f]{2})*")


class ScArg(_Part):
    """One contract argument, typed, its value as a canonical string."""

    type: ScArgType
    value: Annotated[str, Field(max_length=4096)]

    @model_validator(mode="after")
    def _check(self) -> ScArg:
        t, v = self.type, self.value
        if t in _INT_RANGES:
            if not _INT_RE.fullmatch(v):
                raise ValueError(f"{t.value} value must be a canonical integer string, got {v!r}")
            low, high = _INT_RANGES[t]
            if not low <= int(v) <= high:
                raise ValueError(f"{v} is out of range for {t.value}")
        elif t is ScArgType.ADDRESS and not _ADDRESS_RE.fullmatch(v):
            raise ValueError(f"address must be a G... account or C... contract, got {v!r}")
        elif t is ScArgType.BOOL and v not in ("true", "false"):
            raise ValueError(f"bool value must be 'true' or 'false', got {v!r}")
        elif t is ScArgType.SYMBOL and not _SYMBOL_RE.fullmatch(v):
            raise ValueError(f"symbol must be 1-32 chars of [A-Za-z0-9_], got {v!r}")
        elif t is ScArgType.BYTES and not _HEX_RE.fullmatch(v):
            raise ValueError("bytes value must be lowercase hex")
        return self


class PaymentIntent(_Part):
    """A classic payment the transaction must contain, exactly."""

    type: Literal["payment"] = "payment"
    payout_id: Identifier
    destination: StellarAccountId
    asset: StellarAsset
    amount_stroops: PositiveMinorUnits


class ContractWinner(_Part):
    """One winner of a payout-contract call: paid `amount_stroops` at `address` for `payout_id`."""

    payout_id: Identifier
    address: Annotated[str, Field(pattern=r"^[GC][A-Z2-7]{55}$", description="G... account or C... contract")]
    amount_stroops: PositiveMinorUnits


class ContractInvokeIntent(_Part):
    """A Soroban contract call the transaction must contain, exactly (e.g. distribute_winnings).

    The call's arguments are `args` followed, when `winners` is not empty, by ONE more argument: a vector of
    `(address, i128 amount)` tuples, in the order of `winners`. `asset` is what the contract pays out in,
    so the signer can apply its per-asset caps.
    """

    type: Literal["invoke_contract"] = "invoke_contract"
    payout_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_OPERATIONS)]
    contract_id: StellarContractId
    method: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,32}$")]
    args: Annotated[list[ScArg], Field(max_length=64)] = Field(default_factory=list)
    winners: Annotated[list[ContractWinner], Field(max_length=MAX_OPERATIONS)] = Field(default_factory=list)
    asset: StellarAsset | None = None

    @model_validator(mode="after")
    def _winners_cover_payouts(self) -> ContractInvokeIntent:
        if self.winners and sorted(w.payout_id for w in self.winners) != sorted(self.payout_ids):
            raise ValueError("winners must name each of payout_ids exactly once")
        return self


IntendedOperation = Annotated[PaymentIntent | ContractInvokeIntent, Field(discriminator="type")]


_TON_RAW = r"^(0|-1):[0-9a-f]{64}$"
TonRawAddress = Annotated[str, Field(pattern=_TON_RAW, description="A TON address in raw form, <wc>:<64 hex>")]
TON_MAX_BOC_CHARS: Final = 4096


class TonTransferIntent(_Part):
    """The one transfer a TON wallet message must make: `amount` minor units of `asset` to `destination` (for a
    jetton: its owner), with this bounce flag; a jetton names its master and OUR jetton wallet of that master."""

    type: Literal["ton_transfer"] = "ton_transfer"
    payout_id: Identifier
    destination: TonRawAddress
    asset: AssetCode
    amount: PositiveMinorUnits
    bounce: bool
    jetton_master: TonRawAddress | None = None
    jetton_wallet: TonRawAddress | None = None

    @model_validator(mode="after")
    def _jetton_pair(self) -> TonTransferIntent:
        if (self.jetton_master is None) != (self.jetton_wallet is None):
            raise ValueError("a jetton transfer names both its master and our jetton wallet; TON names neither")
        return self


class TonSignatureRequested(EventPayload):
    """Sign this TON wallet (v4r2) message if, and only if, it is exactly the intent: one out-message, no state
    init, this seqno, valid until `valid_until` (unix seconds). `unsigned_body_boc` is the body cell whose hash
    the key signs; the signer answers the whole external message (TonMessageSigned)."""

    EVENT_NAME: ClassVar[str] = "TonSignatureRequested"
    TOPIC: ClassVar[Topic] = SIGNER_REQUESTS

    request_id: Identifier
    payout_ids: Annotated[list[Identifier], Field(min_length=1, max_length=1)]
    wallet: TonRawAddress
    unsigned_body_boc: Annotated[
        str, Field(min_length=4, max_length=TON_MAX_BOC_CHARS, pattern=r"^[A-Za-z0-9+/]+={0,2}$")
    ]
    seqno: Annotated[int, Field(ge=0, le=2**32 - 1)]
    valid_until: Annotated[int, Field(ge=0, le=2**32 - 1)]
    intent: TonTransferIntent

    @model_validator(mode="after")
    def _check(self) -> TonSignatureRequested:
        if self.payout_ids != [self.intent.payout_id]:
            raise ValueError("a TON message pays exactly the one payout its intent names")
        return self


TON_MAX_BATCH_BOC_CHARS: Final = 131_072  # 254 jetton transfers take about 50,000


class TonBatchSignatureRequested(EventPayload):
    """Sign this highload wallet v3 message if, and only if, its out-messages are exactly `intents`, in order (one
    per payout, no other message, no state init), from this wallet, with this query id, `created_at` and `timeout`.
    `unsigned_inner_boc` is the `MsgInner` cell whose hash the key signs; the signer answers the whole external
    message (TonBatchSigned). It can land while `created_at > now - timeout` (the chain's clock)."""

    EVENT_NAME: ClassVar[str] = "TonBatchSignatureRequested"
    TOPIC: ClassVar[Topic] = SIGNER_REQUESTS

    request_id: Identifier
    payout_ids: Annotated[list[Identifier], Field(min_length=1, max_length=TON_MAX_BATCH)]
    wallet: TonRawAddress
    unsigned_inner_boc: Annotated[
        str, Field(min_length=4, max_length=TON_MAX_BATCH_BOC_CHARS, pattern=r"^[A-Za-z0-9+/]+={0,2}$")
    ]
    query_id: Annotated[int, Field(ge=0, le=2**23 - 1, description="shift << 10 | bit_number")]
    created_at: Annotated[int, Field(ge=0, le=2**63 - 1)]
    timeout: Annotated[int, Field(ge=1, le=2**22 - 1)]
    intents: Annotated[list[TonTransferIntent], Field(min_length=1, max_length=TON_MAX_BATCH)]

    @model_validator(mode="after")
    def _check(self) -> TonBatchSignatureRequested:
        if len(set(self.payout_ids)) != len(self.payout_ids):
            raise ValueError("payout_ids must be unique")
        if [i.payout_id for i in self.intents] != self.payout_ids:
            raise ValueError("intents name payout_ids, one each, in the message's order")
        return self


class TonBatchSigned(EventPayload):
    """The signed highload external message; payouts sends it unchanged until it lands or can no longer."""

    EVENT_NAME: ClassVar[str] = "TonBatchSigned"
    TOPIC: ClassVar[Topic] = SIGNER_RESULTS

    request_id: Identifier
    payout_ids: Annotated[list[Identifier], Field(min_length=1, max_length=TON_MAX_BATCH)]
    signed_boc: Annotated[
        str, Field(min_length=4, max_length=TON_MAX_BATCH_BOC_CHARS, pattern=r"^[A-Za-z0-9+/]+={0,2}$")
    ]
    message_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="External message hash, hex")]
    signed_by: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Ed25519 public key, hex")]


class TonMessageSigned(EventPayload):
    """The signed external message; payouts sends it unchanged until it lands or `valid_until` passes."""

    EVENT_NAME: ClassVar[str] = "TonMessageSigned"
    TOPIC: ClassVar[Topic] = SIGNER_RESULTS

    request_id: Identifier
    payout_ids: Annotated[list[Identifier], Field(min_length=1, max_length=1)]
    signed_boc: Annotated[str, Field(min_length=4, max_length=TON_MAX_BOC_CHARS, pattern=r"^[A-Za-z0-9+/]+={0,2}$")]
    message_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="External message hash, hex")]
    signed_by: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Ed25519 public key, hex")]


class SignatureRequested(EventPayload):
    """Sign this transaction if, and only if, it is exactly the intent."""

    EVENT_NAME: ClassVar[str] = "SignatureRequested"
    TOPIC: ClassVar[Topic] = SIGNER_REQUESTS

    request_id: Identifier
    payout_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_OPERATIONS)]
    unsigned_xdr: XdrBase64
    network_passphrase: Annotated[str, Field(min_length=1, max_length=128)]
    source_account: StellarAccountId
    intent: Annotated[list[IntendedOperation], Field(min_length=1, max_length=MAX_OPERATIONS)]
    max_fee_stroops: PositiveMinorUnits

    @model_validator(mode="after")
    def _check(self) -> SignatureRequested:
        if len(set(self.payout_ids)) != len(self.payout_ids):
            raise ValueError("payout_ids must be unique")
        covered: list[str] = []
        for op in self.intent:
            covered.extend([op.payout_id] if isinstance(op, PaymentIntent) else op.payout_ids)
        if set(covered) != set(self.payout_ids) or len(covered) != len(set(covered)):
            raise ValueError("every payout_id must be covered by exactly one intended operation, and no other")
        return self


class TransactionSigned(EventPayload):
    """The signed envelope; payouts submits it unchanged until it lands or its time bound passes."""

    EVENT_NAME: ClassVar[str] = "TransactionSigned"
    TOPIC: ClassVar[Topic] = SIGNER_RESULTS

    request_id: Identifier
    payout_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_OPERATIONS)]
    signed_xdr: XdrBase64
    tx_hash: TxHash
    signed_by: StellarAccountId = Field(description="Public key of the signing key")


class SignatureRefused(EventPayload):
    """The signer would not sign; `code` says why (only backend_unavailable may be retried)."""

    EVENT_NAME: ClassVar[str] = "SignatureRefused"
    TOPIC: ClassVar[Topic] = SIGNER_RESULTS

    request_id: Identifier
    payout_ids: Annotated[
        list[Identifier],
        Field(
            max_length=MAX_PAYOUTS_PER_REQUEST,
            description="The request's payouts; empty only for malformed_request when the record named none",
        ),
    ]
    code: SignatureRefusalCode
    detail: Annotated[str, Field(min_length=1, max_length=2000)]
    live_until: Annotated[
        int | None,
        Field(
            ge=0,
            le=INT64_MAX,
            description="live_signature_exists: unix time after which the signer signs another transaction for "
            "these payouts",
        ),
    ] = None

    @model_validator(mode="after")
    def _check(self) -> SignatureRefused:
        if not self.payout_ids and self.code is not SignatureRefusalCode.MALFORMED_REQUEST:
            raise ValueError("payout_ids may be empty only for a malformed_request refusal")
        if (self.live_until is not None) != (self.code is SignatureRefusalCode.LIVE_SIGNATURE_EXISTS):
            raise ValueError("live_until is given exactly for live_signature_exists refusals")
        return self

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_REFUSALS


__all__ = [
    "MAX_OPERATIONS",
    "MAX_PAYOUTS_PER_REQUEST",
    "RETRYABLE_REFUSALS",
    "TON_MAX_BATCH",
    "TON_MAX_BATCH_BOC_CHARS",
    "ContractInvokeIntent",
    "ContractWinner",
    "IntendedOperation",
    "PaymentIntent",
    "ScArg",
    "ScArgType",
    "SignatureRefusalCode",
    "SignatureRefused",
    "SignatureRequested",
    "TonBatchSignatureRequested",
    "TonBatchSigned",
    "TonMessageSigned",
    "TonSignatureRequested",
    "TonTransferIntent",
    "TransactionSigned",
]
