"""The manual provider: operators pay outside the system and report the outcome through the admin API.

Its statement is the recorded evidence: an operator's report that they paid a payout (`mark_paid`: the payout
paid at that moment, with the reference they gave, kept as its `provider_ref`) and a paid payout returned later.
It is read from the payouts database (`SqlManualEvidence`, bound by bootstrap), the one place the evidence lives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import (
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
    Quote,
    StatementLine,
    StatementLineKind,
    StatementPage,
    WebhookEvent,
)
from prizeflow_payouts.application.rail import Rail, RailTerms, StableErrors
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec
from prizeflow_runtime.sql_uow import unit_of_work

PAGE_SIZE: Final = 500

# A manual payout's evidence: paid when the operator reported it (its reference kept as provider_ref), and returned
# when its history says so. In (at, line id) order after a keyset position.
_EVIDENCE: Final = text(
    """SELECT payout_id, event, at, idempotency_key, reference, asset, amount, destination FROM (
           SELECT p.id AS payout_id, 'paid' AS event, p.paid_at AS at, p.idempotency_key,
                  p.provider_ref AS reference, p.asset, p.amount, p.destination_address AS destination
           FROM payouts p
           WHERE p.provider_name = :provider AND p.state IN ('paid', 'returned')
             AND p.paid_at >= :since AND p.paid_at < :until
           UNION ALL
           SELECT p.id, 'returned', h.at, p.idempotency_key, p.provider_ref, p.asset, p.amount,
                  p.destination_address
           FROM payouts p JOIN payout_history h ON h.payout_id = p.id AND h.to_state = 'returned'
           WHERE p.provider_name = :provider AND p.state = 'returned' AND p.paid_at < :until
             AND h.at >= :since AND h.at < :until
       ) e
       WHERE (e.at, e.payout_id || ':' || e.event) > (:after_at, :after_id)
       ORDER BY e.at, e.payout_id || ':' || e.event
       LIMIT :limit"""
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One movement an operator put on record for a manual payout: `paid` (with their reference) or `returned`."""

    payout_id: str
    event: str  # paid | returned
    at: datetime
    idempotency_key: str
    reference: str | None  # what the operator reported paying it with (a bank reference, a receipt number)
    asset: str
    amount: int
    destination: str

    @property
    def line_id(self) -> str:
        return f"{self.payout_id}:{self.event}"


class ManualEvidence(Protocol):
    """The evidence of one manual provider's payouts, in (at, line id) order, strictly after `after`."""

    async def recorded(
        self, provider: str, since: datetime, until: datetime, after: tuple[datetime, str], limit: int
    ) -> Sequence[Evidence]: ...


class ManualPayoutProvider:
    """`create_payout` queues the payout for an operator (`pending`); the admin API marks it paid or failed."""

    provider_type = ProviderType.MANUAL

    def __init__(
        self,
        *,
        name: str = "manual",
        evidence: ManualEvidence | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.name = name
        self._evidence = evidence
        self._page_size = page_size

    def bind_database(self, engine: AsyncEngine) -> None:
        """The service's pool (bootstrap): the evidence is the payouts database's own records."""
        self._evidence = SqlManualEvidence(engine)

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """PAYOUT lines of the payouts an operator marked paid in [since, until) (`reference` = our idempotency key,
        `provider_ref` = the operator's reference), REVERSAL lines of those returned in it; keyset-paged."""
        if self._evidence is None:
            raise PayoutProviderError.of(
                PayoutErrorCode.PROVIDER_UNAVAILABLE, "the manual provider has no database bound", provider=self.name
            )
        try:
            after = _decode(cursor, since)
        except ValueError:
            raise PayoutProviderError.of(
                PayoutErrorCode.INVALID_REQUEST, "not a cursor of the manual statement", provider=self.name
            ) from None
        rows = await self._evidence.recorded(self.name, since, until, after, self._page_size)
        lines = tuple(_line(e) for e in rows)
        following = f"{rows[-1].at.isoformat()}|{rows[-1].line_id}" if len(rows) >= self._page_size else None
        return StatementPage(lines=lines, next_cursor=following)

    async def quote(self, instruction: PayoutInstruction) -> Quote:
        raise PayoutProviderError.of(
            PayoutErrorCode.UNSUPPORTED_OPERATION, "the manual provider cannot quote", provider="manual"
        )

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        return ProviderPayoutResult(
            status=ProviderPayoutStatus.PENDING,
            idempotency_key=instruction.idempotency_key,
            provider_ref=f"manual-{instruction.payout_id}",
            raw_status="awaiting_operator",
        )

    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        return ProviderPayoutResult(
            status=ProviderPayoutStatus.PENDING,
            idempotency_key=lookup.idempotency_key,
            provider_ref=lookup.provider_ref or f"manual-{lookup.payout_id}",
            raw_status="awaiting_operator",
        )

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        # Nothing left the platform until an operator says so; cancelling only takes it off their list.
        return ProviderPayoutResult(
            status=ProviderPayoutStatus.CANCELLED,
            idempotency_key=lookup.idempotency_key,
            provider_ref=lookup.provider_ref,
            raw_status="withdrawn",
        )

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise PayoutProviderError.of(
            PayoutErrorCode.UNSUPPORTED_OPERATION, "the manual provider has no webhooks", provider="manual"
        )


class _EvidenceRows:
    """The evidence query in one transaction (`bind`: a unit of work's session)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def read(self, params: dict[str, Any]) -> Sequence[Any]:
        return (await self.session.execute(_EVIDENCE, params)).mappings().all()


class SqlManualEvidence:
    """`ManualEvidence` on the payouts database (the service's pool, through the runtime's unit of work: read-only
    here)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._uow = unit_of_work(engine, _EvidenceRows)

    async def recorded(
        self, provider: str, since: datetime, until: datetime, after: tuple[datetime, str], limit: int
    ) -> Sequence[Evidence]:
        params = {"provider": provider, "since": since, "until": until, "after_at": after[0], "after_id": after[1],
                  "limit": limit}  # fmt: skip
        async with self._uow() as evidence:
            rows = await evidence.read(params)
        return [
            Evidence(
                payout_id=r["payout_id"],
                event=r["event"],
                at=r["at"],
                idempotency_key=r["idempotency_key"],
                reference=r["reference"],
                asset=r["asset"],
                amount=int(r["amount"]),
                destination=r["destination"],
            )
            for r in rows
        ]


def _line(e: Evidence) -> StatementLine:
    returned = e.event == "returned"
    return StatementLine(
        line_id=e.line_id,
        kind=StatementLineKind.REVERSAL if returned else StatementLineKind.PAYOUT,
        occurred_at=e.at,
        asset=e.asset,
        amount=e.amount,
        reference=e.idempotency_key,
        provider_ref=e.reference or None,
        destination=e.destination,
        raw_type="returned" if returned else "marked paid by an operator",
    )


def _decode(cursor: str | None, since: datetime) -> tuple[datetime, str]:
    if cursor is None:
        return since, ""
    at, sep, line_id = cursor.partition("|")
    if not sep or not line_id:
        raise ValueError(cursor)
    when = datetime.fromisoformat(at)
    if when.tzinfo is None:
        raise ValueError(cursor)
    return when, line_id


# Nobody polls it: an operator reports the outcome through the admin API.
TERMS: Final = RailTerms(cancels=True, quotes=False, webhooks=False, confirms_later=True, polls_status=False)


def manual_rail(provider: ManualPayoutProvider) -> Rail:
    return Rail(
        payouts=provider, terms=TERMS, errors=StableErrors(provider.name), statement=provider, database=provider
    )


def build_manual(spec: ProviderSpec, context: ProviderContext) -> Rail:
    if spec.options:
        raise ProviderConfigError(f"provider {spec.name!r}: the manual provider takes no options")
    return manual_rail(ManualPayoutProvider(name=spec.name))


__all__ = [
    "PAGE_SIZE",
    "TERMS",
    "Evidence",
    "ManualEvidence",
    "ManualPayoutProvider",
    "SqlManualEvidence",
    "build_manual",
    "manual_rail",
]
