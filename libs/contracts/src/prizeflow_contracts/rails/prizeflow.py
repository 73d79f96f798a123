"""The Prizeflow signature (`Prizeflow-Signature: t=<unix>,v1=<HMAC of "<t>.<body>">`, `webhook_signatures`): the
callbacks of the rails whose provider side signs as Prizeflow does (the sandbox, TON, Stellar, the exchange,
Telegram, manual). Never confirmed: the body is the event (`prizeflow_events`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.rails import prizeflow_events
from prizeflow_contracts.rails.reading import Caller, Confirmed, NormalizationError, Normalized, ReaderTerms
from prizeflow_contracts.webhook_signatures import PRIZEFLOW_SIGNATURE_HEADER, verify


def timed_verify(header: str, caller: Caller, headers: Mapping[str, str], body: bytes, now: float) -> int:
    """`t=<unix>,v1=<hex>` under one of the caller's secrets, within its tolerance: the signature's timestamp."""
    return verify(headers, body, header_name=header, secrets=caller.secrets, now=now, tolerance_s=caller.tolerance_s)


def rail_of(caller: Caller) -> ProviderType:
    """The caller's payout rail; a KYC vendor configured with a rail's scheme reads no such event."""
    if not isinstance(caller.type, ProviderType):
        raise NormalizationError("this provider's scheme reads no such event")
    return caller.type


class PrizeflowSignatureReader:
    """The scheme of every rail that has none of its own: `own` is what the rails' own readers serve (the registry
    gives it), so a new rail with its own scheme is taken out of this one's without naming it here."""

    def __init__(self, *, own: frozenset[object]) -> None:
        self.terms: Final = ReaderTerms(
            scheme="prizeflow_signature",
            headers=(PRIZEFLOW_SIGNATURE_HEADER,),
            serves=frozenset(t for t in ProviderType if t not in own),
        )

    def verify(self, caller: Caller, headers: Mapping[str, str], body: bytes, *, now: float) -> int | None:
        return timed_verify(PRIZEFLOW_SIGNATURE_HEADER, caller, headers, body, now)

    def identify(self, doc: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
        return None

    async def confirm_with(self, api: Any, doc: Mapping[str, Any], headers: Mapping[str, str]) -> Confirmed:
        raise RuntimeError("prizeflow_signature events are never confirmed (the providers file refuses `confirm`)")

    def normalize(
        self, caller: Caller, confirmed: Confirmed, headers: Mapping[str, str], *, digest: str, received_at: datetime
    ) -> Normalized:
        return prizeflow_events.normalize(
            confirmed.doc, provider=rail_of(caller), digest=digest, received_at=received_at
        )

    def kept(self, doc: Mapping[str, Any]) -> bytes | None:
        return None


__all__ = ["PrizeflowSignatureReader", "rail_of", "timed_verify"]
