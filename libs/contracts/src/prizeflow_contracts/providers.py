"""The payout provider contract (docs/architecture.md §5): every payout rail implements `RewardPayoutProvider`.

The protocol is shaped for the hardest rail, an asynchronous, signed, confirm-later one (Stellar via the
signer): `create_payout` may answer `pending` or `submitted`, and the outcome arrives later through
`sync_status` or a webhook. Synchronous rails simply answer `paid` at once.

Error rules:
- A definitive answer about the payout, including a definitive failure, is a `ProviderPayoutResult`
  (`status=failed` carries a `PayoutError`).
- No definitive answer raises `PayoutProviderError`. `timeout_unknown_outcome` means the payout may exist:
  call `sync_status` with the same idempotency key; never create a second payout. `payout_not_found` from
  `sync_status` means the provider never saw it, so `create_payout` with the same key is safe.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Protocol, runtime_checkable

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from prizeflow_contracts.errors import PayoutError
from prizeflow_contracts.ids import (
    STELLAR_ACCOUNT_PATTERN,
    IdempotencyKey,
    Identifier,
    ProviderRef,
    Sha256Hex,
    TxHash,
)
from prizeflow_contracts.money import AssetCode, Money, PayableMoney
from prizeflow_contracts.upi_address import parse_upi_address

MAX_METADATA_ITEMS: Final = 20


class ProviderType(StrEnum):
    MANUAL = "manual"
    STELLAR = "stellar"
    STRIPE = "stripe"
    GIFT_CARD = "gift_card"
    TON_WALLET = "ton_wallet"
    CRYPTO_EXCHANGE = "crypto_exchange"
    FIAT_PROVIDER = "fiat_provider"
    TELEGRAM_IF_SUPPORTED = "telegram_if_supported"
    UPI = "upi"
    PAYPAL = "paypal"
    SANDBOX = "sandbox"


# The API each HTTP rail calls when its providers entry names no other (`api_base`), the provider's sandbox where it
# has one: kept here once, for payouts' rail options and the ops preflight (`prizeflow_ops.preflight`) alike. The
# exchange's is its library's; the TON wallet's is its network's; manual and Stellar call no API of their own.
DEFAULT_APIS: Final[Mapping[ProviderType, str]] = {
    ProviderType.STRIPE: "https://api.stripe.com",
    ProviderType.GIFT_CARD: "https://testflight.tremendous.com",
    ProviderType.UPI: "https://api.razorpay.com",
    ProviderType.PAYPAL: "https://api-m.sandbox.paypal.com",
    ProviderType.TELEGRAM_IF_SUPPORTED: "https://api.telegram.org",
}


class DestinationType(StrEnum):
    STELLAR_ACCOUNT = "stellar_account"
    TON_WALLET = "ton_wallet"
    CRYPTO_ADDRESS = "crypto_address"
    STRIPE_ACCOUNT = "stripe_account"
    BANK_ACCOUNT = "bank_account"
    EMAIL = "email"
    TELEGRAM_USER = "telegram_user"
    # A VPA (`handle@psp`) or an Indian bank account (`IFSC/account number`): prizeflow_contracts.upi.
    UPI = "upi"
    # A PayPal account, by its email address, its phone number (E.164) or its PayPal payer id.
    PAYPAL = "paypal"
    MANUAL = "manual"
    SANDBOX = "sandbox"


class ProviderPayoutStatus(StrEnum):
    """A provider's view of one payout, normalized. `returned` = paid, then reversed by the provider."""

    ACCEPTED = "accepted"
    PENDING = "pending"
    SUBMITTED = "submitted"
    PAID = "paid"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETURNED = "returned"


# Statuses after which polling stops (a paid payout may still be `returned` later, by webhook).
FINAL_PROVIDER_STATUSES: Final = frozenset(
    {
        ProviderPayoutStatus.PAID,
        ProviderPayoutStatus.FAILED,
        ProviderPayoutStatus.CANCELLED,
        ProviderPayoutStatus.RETURNED,
    }
)

STELLAR_TEXT_MEMO_MAX_BYTES: Final = 28
_STELLAR_ACCOUNT_RE: Final = re.compile(STELLAR_ACCOUNT_PATTERN.removeprefix("^").removesuffix("$"))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PayoutDestination(_Model):
    """Where the money goes. `address` is the rail's own reference (account key, wallet, email...)."""

    type: DestinationType
    address: ProviderRef
    memo: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x20-\x7e]+$")] | None = Field(
        default=None, description="Memo/tag the destination needs (exchanges); Stellar text memo <= 28 bytes"
    )

    @model_validator(mode="after")
    def _check(self) -> PayoutDestination:
        if self.type is DestinationType.STELLAR_ACCOUNT:
            if not _STELLAR_ACCOUNT_RE.fullmatch(self.address):
                raise ValueError("a stellar_account destination must be a G... public key (56 chars)")
            if self.memo is not None and len(self.memo.encode()) > STELLAR_TEXT_MEMO_MAX_BYTES:
                raise ValueError(f"a Stellar text memo is at most {STELLAR_TEXT_MEMO_MAX_BYTES} bytes")
        if self.type is DestinationType.UPI:
            parse_upi_address(self.address)  # a memo is no part of it (MEMO_TYPES): the rail never reads one
        return self


_TON_RAW_RE: Final = re.compile(r"(0|-1):[0-9a-fA-F]{64}")
_TON_FRIENDLY_RE: Final = re.compile(r"[A-Za-z0-9+/_-]{48}")
_TON_BOUNCEABLE, _TON_NON_BOUNCEABLE, _TON_TEST_ONLY = 0x11, 0x51, 0x80
DESTINATION_KEY_VERSION: Final = "v2"


def _crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def ton_raw_address(text: str) -> str | None:
    """The raw spelling (`<wc>:<64 lowercase hex>`) of a TON address of workchain 0 or -1, given raw or
    user-friendly (48 base64/base64url characters, flags 0x11 or 0x51, maybe | 0x80 test-only, a correct
    CRC16/XMODEM); None for anything else. The same rule as `prizeflow_ton.addresses.parse_address` (a property
    test holds them equal), written again here because contracts depend on no rail library."""
    value = text.strip()
    if _TON_RAW_RE.fullmatch(value):
        workchain_text, account = value.split(":")
        return f"{workchain_text}:{account.lower()}"
    if not _TON_FRIENDLY_RE.fullmatch(value):
        return None
    decoded = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    if _crc16_xmodem(decoded[:34]) != int.from_bytes(decoded[34:], "big"):
        return None
    if decoded[0] & ~_TON_TEST_ONLY not in (_TON_BOUNCEABLE, _TON_NON_BOUNCEABLE):
        return None
    workchain = int.from_bytes(decoded[1:2], "big", signed=True)
    if workchain not in (0, -1):
        return None
    return f"{workchain}:{decoded[2:34].hex()}"


def destination_spelling(kind: DestinationType, address: str) -> str:
    """The one spelling a destination's address is compared, counted and screened in (limits, first use,
    clearances, sanctions lists, the deny list): a TON address, whatever its form (bounceable, non-bounceable,
    test-only, raw), in its raw form; anything else with its whitespace removed and case-folded.

    The rule is the same for every `kind`: a TON wallet also arrives as a `crypto_address` (an exchange's USDT on
    TON). Folding is exact for what is case-insensitive by definition (EVM hex, whose case is only a checksum;
    bech32; emails in practice); for case-sensitive encodings (base58, Stripe ids) it can only merge two
    addresses into one spelling, which makes a limit or a deny stricter, never looser."""
    del kind  # one rule for every type (see above); taken so the call sites say what they compare
    compact = "".join(address.split())
    return ton_raw_address(compact) or compact.casefold()


# The destination types whose rails read a memo, from the payout adapters: the crypto exchange's withdrawal tag
# (`adapters/exchange`, crypto_address only; an exchange's deposit address is shared, its tag says whose account it
# is). The Stellar and TON adapters refuse a memo, and no other rail reads one: for those types the memo is no part
# of a destination, and a key counting it would let a player open a new limit window by typing another one.
MEMO_TYPES: Final = frozenset({DestinationType.CRYPTO_ADDRESS})
_ALL_DIGITS_RE: Final = re.compile(r"[0-9]+")


def destination_memo(kind: DestinationType, memo: str | None) -> str:
    """A destination's memo as its key counts it: nothing for a type whose rails ignore memos (`MEMO_TYPES`);
    otherwise the memo stripped, and an all-digit one as its number (`00123` is `123`, `0` stays `0`: exchanges
    read a numeric tag as a number). Folding can only merge two memos into one, which makes a limit stricter."""
    if kind not in MEMO_TYPES:
        return ""
    text = (memo or "").strip()
    return (text.lstrip("0") or "0") if _ALL_DIGITS_RE.fullmatch(text) else text


def destination_key(destination: PayoutDestination) -> str:
    """One destination's key wherever amounts to it are counted (rewards' claims, payouts' gate, screening
    clearances): sha256 of `v2|<n>:<destination_spelling>|<m>:<destination_memo>` (each field prefixed with its
    length, so no character of an address or memo can move a boundary), so one wallet spelled differently is one
    destination.

    The type is not in the key, except to say whether the memo counts (`MEMO_TYPES`): one wallet given as a
    `ton_wallet` and as a `crypto_address` without a memo is one destination for a limit, and a type in the key
    would let a player pass a limit by choosing the other one. `v1` (type|address|memo as typed) keys were
    rewritten by payouts migration 0023 and rewards migration 0014, which also keep this same formula in SQL
    (`prizeflow_destination_key(type, address, memo)`, an integration test holds them equal) and a trigger that
    stores it in every row written with a destination, whatever the writer computed (a pod of the previous
    release during a rolling deploy)."""
    spelling = destination_spelling(destination.type, destination.address)
    memo = destination_memo(destination.type, destination.memo)
    encoded = f"{DESTINATION_KEY_VERSION}|{len(spelling)}:{spelling}|{len(memo)}:{memo}"
    return hashlib.sha256(encoded.encode()).hexdigest()


class ProviderCapabilities(_Model):
    """What a rail can do, as the payouts admin API lists it. Payouts derives it from the parts a rail registers
    with (`prizeflow_payouts.application.rail.Rail`); the workflow branches on those, never on the provider type."""

    supports_cancel: bool
    supports_quote: bool
    supports_webhooks: bool
    async_confirmation: bool = Field(description="The outcome arrives later (sync_status or webhook)")
    requires_signature: bool = Field(description="Transactions go through the signer service")
    supports_batching: bool
    supports_returns: bool = Field(
        default=False,
        description="A paid payout can come back (a bank return, a reversal): a later `failed` for a paid payout "
        "means returned, never ignored",
    )
    assets: Annotated[tuple[AssetCode, ...], Field(min_length=1)] = Field(description="Assets it can pay")
    destination_types: Annotated[tuple[DestinationType, ...], Field(min_length=1)]


Metadata = Annotated[
    dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")], Annotated[str, Field(max_length=500)]],
    Field(max_length=MAX_METADATA_ITEMS),
]


class PayoutInstruction(_Model):
    """Pay `amount` to `destination`, exactly once per `idempotency_key`."""

    payout_id: Identifier
    idempotency_key: IdempotencyKey
    amount: PayableMoney
    destination: PayoutDestination
    metadata: Metadata = Field(default_factory=dict, description="Non-secret context passed to the provider")


class PayoutLookup(_Model):
    """Find a payout at the provider: by our idempotency key, and by its reference once known. `amount` and
    `destination` (the payout's own, when the caller has them) let a rail check that what it found is this
    payout and not another one under the same id (a shared provider account, a restored database)."""

    payout_id: Identifier
    idempotency_key: IdempotencyKey
    provider_ref: ProviderRef | None = None
    amount: Money | None = None
    destination: PayoutDestination | None = None


class Quote(_Model):
    """What a payout would cost and deliver, valid until `expires_at`."""

    quote_id: ProviderRef | None = None
    amount: PayableMoney
    fee: Money = Field(description="Provider fee, in the asset the provider charges it")
    receive_amount: Money = Field(description="What the destination receives")
    expires_at: AwareDatetime | None = None


class ProviderPayoutResult(_Model):
    """The provider's definitive answer about one payout at this moment."""

    status: ProviderPayoutStatus
    idempotency_key: IdempotencyKey
    provider_ref: ProviderRef | None = None
    tx_hash: TxHash | None = None
    fee: Money | None = None
    error: PayoutError | None = None
    raw_status: Annotated[str, Field(max_length=128)] | None = Field(
        default=None, description="The provider's own status word, for support; never branch on it"
    )

    @model_validator(mode="after")
    def _check(self) -> ProviderPayoutResult:
        if self.status is ProviderPayoutStatus.FAILED and self.error is None:
            raise ValueError("a failed payout result must carry an error")
        if self.status is not ProviderPayoutStatus.FAILED and self.error is not None:
            raise ValueError(f"only a failed result carries an error, not {self.status.value}")
        return self


class WebhookEvent(_Model):
    """A provider webhook, verified and normalized by `parse_webhook`."""

    provider: ProviderType
    provider_event_id: ProviderRef
    kind: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/\-]{1,128}$")] = Field(
        description="The provider's event kind, e.g. payout.paid"
    )
    verified: bool
    provider_payout_ref: ProviderRef | None = None
    idempotency_key: IdempotencyKey | None = None
    status: ProviderPayoutStatus | None = Field(default=None, description="None: the event says nothing new")
    error: PayoutError | None = None
    occurred_at: AwareDatetime | None = None
    fee: Money | None = Field(default=None, description="What the provider charged, when the event carries it")
    payload_digest: Sha256Hex


class StatementLineKind(StrEnum):
    """What a line of a provider's statement did to the money we hold there."""

    PAYOUT = "payout"  # money left our account for a destination (a transfer, a withdrawal, an order, a payment)
    FEE = "fee"  # the provider charged us (a network fee, a withdrawal fee, a card order fee)
    REVERSAL = "reversal"  # money came back (a bank return, a reversed transfer, a refunded order)
    # Anything else, by its direction: each is matched to a payout of ours or is a finding (nothing moves unseen).
    CREDIT = "credit"  # money in that no payout gave back (a float top-up, an adjustment or a fee refunded to us)
    DEBIT = "debit"  # money out to no player and not a fee (a bank payout of the balance, an adjustment, a dispute)
    # Written by builds before CREDIT and DEBIT, with no direction: still read (a line staged or remembered then),
    # never written; a stray one is placed by a person as a debit would be.
    OTHER = "other"


DEBIT_KINDS: Final = frozenset(
    {StatementLineKind.PAYOUT, StatementLineKind.FEE, StatementLineKind.DEBIT, StatementLineKind.OTHER}
)

StatementText = Annotated[str, Field(min_length=1, max_length=256)]


class StatementLine(_Model):
    """One movement of our money at a provider, as the provider's own listing API tells it, normalized.

    `reference` is our identifier as the rail carries it (the idempotency key, the payout id, a memo or a query
    id), so the line can be matched to one payout; `provider_ref` is the provider's reference of the payout it
    belongs to (for fees and reversals, the payout line's). `amount` is positive: `kind` gives its direction."""

    line_id: StatementText = Field(description="The provider's own id of this line, unique and stable across pages")
    kind: StatementLineKind
    occurred_at: AwareDatetime
    asset: Annotated[str, Field(min_length=1, max_length=32)] = Field(description="Our asset code, or the provider's")
    amount: Annotated[int, Field(strict=True, ge=0)]
    reference: StatementText | None = None
    provider_ref: StatementText | None = None
    destination: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Where the money went, in the same form as the payout's destination address"
    )
    raw_type: Annotated[str, Field(max_length=128)] | None = Field(
        default=None, description="The provider's own word for the line, for people; never branch on it"
    )


class StatementPage(_Model):
    """A page of a statement; `next_cursor` is None on the last page. Pages are in the provider's order."""

    lines: tuple[StatementLine, ...]
    next_cursor: Annotated[str, Field(max_length=2048)] | None = None


@runtime_checkable
class ListsStatement(Protocol):
    """A rail that can tell what the provider did with our money in a window, from its own listing API.

    `statement` returns the lines whose `occurred_at` is in [since, until), one page at a time: pass the
    previous page's `next_cursor` to get the next. The same window and cursor give the same lines (a run is
    resumable); a provider error raises `PayoutProviderError` (retryable kinds for outages)."""

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage: ...


@runtime_checkable
class RewardPayoutProvider(Protocol):
    """A payout rail. Implementations hold their secrets; nothing here is ever sent to a client."""

    provider_type: ProviderType

    async def quote(self, instruction: PayoutInstruction) -> Quote:
        """Price a payout; raises `PayoutProviderError(unsupported_operation)` unless `supports_quote`."""
        ...

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        """Start a payout; calling again with the same idempotency key returns the same payout."""
        ...

    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        """Current status; raises `PayoutProviderError(payout_not_found)` if the provider never saw it."""
        ...

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        """Cancel if still possible; `not_cancellable` once too late, `unsupported_operation` if never."""
        ...

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify and normalize a webhook; raises `PayoutProviderError(webhook_signature_invalid)`."""
        ...


__all__ = [
    "DEBIT_KINDS",
    "DEFAULT_APIS",
    "DESTINATION_KEY_VERSION",
    "FINAL_PROVIDER_STATUSES",
    "MEMO_TYPES",
    "DestinationType",
    "ListsStatement",
    "PayoutDestination",
    "PayoutInstruction",
    "PayoutLookup",
    "ProviderCapabilities",
    "ProviderPayoutResult",
    "ProviderPayoutStatus",
    "ProviderType",
    "Quote",
    "RewardPayoutProvider",
    "StatementLine",
    "StatementLineKind",
    "StatementPage",
    "WebhookEvent",
    "destination_key",
    "destination_memo",
    "destination_spelling",
    "ton_raw_address",
]
