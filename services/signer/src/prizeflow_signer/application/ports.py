"""Ports: where keys live (`SignatureBackend`) and where decisions are kept (the stores of `Books`).

Every store is bound to the one transaction a request is decided in (`application/books.py`): the result event
(outbox), the audit row, the stored result, the spend rows and the payouts' live signatures commit together or
not at all, so a crash anywhere yields exactly one outcome per request id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prizeflow_contracts.envelope import Envelope
from prizeflow_signer.domain.policy import LiveSignature
from prizeflow_signer.settings import BackendKind


class BackendUnavailableError(Exception):
    """The key store could not sign right now (HSM down, session lost): retryable, never a verdict."""


class SignatureBackend(Protocol):
    """Signs a 32-byte hash with an Ed25519 key the process may never export."""

    @property
    def kind(self) -> BackendKind: ...

    @property
    def public_key(self) -> str | None:
        """The G... address of the key, None for `external` (no key here)."""
        ...

    def sign(self, tx_hash: bytes) -> bytes:
        """64-byte Ed25519 signature of `tx_hash`; raises BackendUnavailableError."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One decision, as the append-only audit table keeps it."""

    request_id: str
    event_id: str
    correlation_id: str
    decision: str  # signed | refused | replayed | external
    backend: str
    code: str | None = None
    detail: str | None = None
    tx_hash: str | None = None
    source_account: str | None = None
    signed_by: str | None = None
    amounts: Mapping[str, int] = field(default_factory=dict)
    payout_ids: Sequence[str] = ()


class ResultStore(Protocol):
    """The one answer given to each request id (a verdict; a retryable refusal is never stored)."""

    async def get(self, request_id: str) -> str | None:
        """The encoded result envelope already given for `request_id`, if any."""
        ...

    async def save(self, request_id: str, outcome: str, envelope: str) -> None:
        """Keep the answer; a request id answered before is refused (the caller looked first, under the inbox)."""
        ...


class SpendStore(Protocol):
    """What was signed per asset: the rolling daily caps' history."""

    async def lock(self) -> None:
        """Serialize cap and live-signature decisions until the transaction ends (concurrent signers cannot
        both pass)."""
        ...

    async def spent_in_window(self, assets: Sequence[str]) -> dict[str, int]:
        """Signed in the last 24 hours, by asset (an asset with nothing signed may be absent)."""
        ...

    async def record(self, request_id: str, amounts: Mapping[str, int]) -> None: ...


class SignatureStore(Protocol):
    """The last transaction signed for each payout (one live signature per payout)."""

    async def live(self, payout_ids: Sequence[str]) -> dict[str, LiveSignature]:
        """The last transaction signed for each of these payouts, if any."""
        ...

    async def record(
        self, *, request_id: str, tx_hash: str, max_time: int, payout_ids: Sequence[str], now: int
    ) -> None:
        """Remember that `tx_hash` (valid until `max_time`) was signed for these payouts at `now`. Replacing a
        payout's transaction that can still land (`now` not past its `max_time`) is refused."""
        ...


class AuditStore(Protocol):
    async def record(self, record: AuditRecord) -> None:
        """Append one decision (the table is append-only)."""
        ...


class Outbox(Protocol):
    async def stage(self, envelope: Envelope[Any]) -> None:
        """Stage an event in the transaction: published only if it commits."""
        ...

    async def stage_again(self, envelope: Envelope[Any]) -> None:
        """Publish an already-staged event again, under the same event id (a row still waiting is left as is)."""
        ...


__all__ = [
    "AuditRecord",
    "AuditStore",
    "BackendUnavailableError",
    "Outbox",
    "ResultStore",
    "SignatureBackend",
    "SignatureStore",
    "SpendStore",
]
