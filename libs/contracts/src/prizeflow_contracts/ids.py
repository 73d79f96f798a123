"""Shared identifier and text types for event payloads.

Ids end up in database keys, Kafka keys, log lines and URLs, so every one is bounded and drawn from a
safe character set; a payload that fails these checks is refused at the edge, never half-processed.

What an id is has one definition, `IDENTIFIER_PATTERN`, matched whole: pydantic's `Identifier` (its regex engine
anchors `$` at the very end) and `is_identifier` (Python's `fullmatch`) agree on every string. Never test it with
`re.match`/`re.search` or a msgspec `pattern`: Python's `$` also matches before a final newline, so an id followed by
one would pass there and be refused later, by the event that carries it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Final

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

IDENTIFIER_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9:_.\-]{0,127}$"
IDEMPOTENCY_KEY_PATTERN: Final = r"^[A-Za-z0-9:_\-]{1,255}$"
STELLAR_ACCOUNT_PATTERN: Final = r"^G[A-Z2-7]{55}$"
STELLAR_CONTRACT_PATTERN: Final = r"^C[A-Z2-7]{55}$"
CODE_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
PROVIDER_REF_PATTERN: Final = r"^[\x21-\x7e]{1,255}$"
MAX_XDR_CHARS: Final = 200_000
MAX_IDENTIFIER_CHARS: Final = 128

_IDENTIFIER_RE: Final = re.compile(IDENTIFIER_PATTERN)
_PROVIDER_REF_RE: Final = re.compile(PROVIDER_REF_PATTERN)


def is_identifier(value: object) -> bool:
    """Whether `value` is an `Identifier` (the same rule as the type, for code that has a string, not a model)."""
    return isinstance(value, str) and _IDENTIFIER_RE.fullmatch(value) is not None


def is_provider_ref(value: object) -> bool:
    """Whether `value` is a `ProviderRef`."""
    return isinstance(value, str) and _PROVIDER_REF_RE.fullmatch(value) is not None


Identifier = Annotated[
    str,
    Field(
        pattern=IDENTIFIER_PATTERN,
        description="An id: 1-128 chars of [A-Za-z0-9:_.-], starting with a letter or digit",
        examples=["round-2024-0001"],
    ),
]
IdempotencyKey = Annotated[
    str,
    Field(
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Idempotency key: 1-255 chars of [A-Za-z0-9:_-]; the same key never moves money twice",
        examples=["claim-42:payout:1"],
    ),
]
StellarAccountId = Annotated[
    str, Field(pattern=STELLAR_ACCOUNT_PATTERN, description="A Stellar account public key (G..., 56 chars)")
]
StellarContractId = Annotated[
    str, Field(pattern=STELLAR_CONTRACT_PATTERN, description="A Soroban contract id (C..., 56 chars)")
]
StableCode = Annotated[
    str,
    Field(pattern=CODE_PATTERN, description="A stable snake_case code (1-64 chars), safe as a metric label"),
]
ProviderRef = Annotated[
    str,
    Field(
        pattern=PROVIDER_REF_PATTERN,
        description="A reference minted by an external provider: 1-255 printable ASCII chars, no spaces",
    ),
]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 digest, lowercase hex")]
TxHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Stellar transaction hash, lowercase hex")]
Reason = Annotated[str, Field(min_length=1, max_length=1000, description="Human-readable reason (1-1000 chars)")]


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str):  # pydantic's lax mode would read 1 as 1970-01-01T00:00:01Z
        raise ValueError("an ISO 8601 instant with its offset, as a string (e.g. 2026-01-01T00:00:00Z)")
    return value


# An instant a client writes: ISO 8601 text with an offset, never a number of seconds.
IsoInstant = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
ServiceName = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9\-]{0,63}$", description="A Prizeflow service or source name")
]


def _is_base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("not valid base64 (standard alphabet, padded)") from err
    return value


XdrBase64 = Annotated[
    str,
    Field(
        min_length=4,
        max_length=MAX_XDR_CHARS,
        pattern=r"^[A-Za-z0-9+/]+={0,2}$",
        description="A Stellar TransactionEnvelope XDR, base64",
    ),
    AfterValidator(_is_base64),
]

__all__ = [
    "IDEMPOTENCY_KEY_PATTERN",
    "IDENTIFIER_PATTERN",
    "MAX_IDENTIFIER_CHARS",
    "IdempotencyKey",
    "Identifier",
    "ProviderRef",
    "Reason",
    "ServiceName",
    "Sha256Hex",
    "StableCode",
    "StellarAccountId",
    "StellarContractId",
    "TxHash",
    "XdrBase64",
    "is_identifier",
    "is_provider_ref",
]
