"""Ports: where keys live (`SignatureBackend`) and where decisions are kept (`SignerStore`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from prizeflow_contracts.envelope import Envelope
from prizeflow_signer.domain.policy import LiveSignature
from prizeflow_signer.settings import BackendKind

# The open transaction, opaque to the use cases (the consumer's SQLAlchemy session in production, whatever a fake
# likes in the unit tests): they only hand it to the ports, so a decision and its audit commit together.
Tx: TypeAlias = Any


class BackendUnavailableError(Exception):
    """The key store could not sign right now (HSM down, session lost): retryable, never a verdict."""


class SignatureBackend(Protocol):
    """Signs a 32-byte transaction hash with an Ed25519 key the process may never export."""

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


class SignerStore(Protocol):
    async def stored_result(self, session: Tx, request_id: str) -> str | None:
        """The encoded result envelope already given for `request_id`, if any."""
        ...

    async def save_result(self, session: Tx, request_id: str, outcome: str, envelope: str) -> None: ...

    async def lock_spending(self, session: Tx) -> None:
        """Serialize cap and live-signature decisions until the transaction ends (concurrent signers cannot
        both pass)."""
        ...

    async def live_signatures(self, session: Tx, payout_ids: Sequence[str]) -> dict[str, LiveSignature]:
        """The last transaction signed for each of these payouts, if any."""
        ...

    async def record_signature(
        self,
        session: Tx,
        *,
        request_id: str,
        tx_hash: str,
        max_time: int,
        payout_ids: Sequence[str],
        now: int,
    ) -> None:
        """Remember that `tx_hash` (valid until `max_time`) was signed for these payouts at `now`."""
        ...

    async def spent_in_window(self, session: Tx, assets: Sequence[str]) -> dict[str, int]: ...

    async def record_spend(self, session: Tx, request_id: str, amounts: Mapping[str, int]) -> None: ...

    async def audit(self, session: Tx, record: AuditRecord) -> None: ...

    async def emit(self, session: Tx, envelope: Envelope[Any]) -> None:
        """Stage an event in the outbox of this transaction."""
        ...

    async def reemit(self, session: Tx, envelope: Envelope[Any]) -> None:
        """Publish an already-staged event again, under the same event id."""
        ...


JsonDict = dict[str, Any]
