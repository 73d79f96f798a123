"""`CreatePayouts`: from PayoutRequested (or the admin API) to a stored payout, idempotently, in batches."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import event_id_for
from prizeflow_contracts.events.payouts import ApprovalPolicy, PayoutApproved, PayoutCreated
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import PayoutDestination, ProviderType
from prizeflow_payouts.adapters.repository import SqlPayoutRepository
from prizeflow_payouts.application.events import payout_event
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.application.model import Change, HistoryEntry, PayoutRecord
from prizeflow_payouts.application.registry import ProviderRegistry
from prizeflow_payouts.domain.approval import ApprovalBook
from prizeflow_payouts.domain.state import PayoutState


@dataclass(frozen=True, slots=True)
class CreatePayoutCommand:
    payout_request_id: str
    claim_id: str
    player_id: str
    amount: Money
    destination: PayoutDestination
    idempotency_key: str
    requested_by: str
    provider: ProviderType | None
    correlation_id: str
    cause_event_id: str | None = None

    def body_hash(self) -> str:
        """What makes two requests "the same": every business field, not the envelope around them."""
        doc = {
            "payout_request_id": self.payout_request_id,
            "claim_id": self.claim_id,
            "player_id": self.player_id,
            "amount": self.amount.model_dump(mode="json"),
            "destination": self.destination.model_dump(mode="json"),
            "idempotency_key": self.idempotency_key,
            "requested_by": self.requested_by,
            "provider": self.provider.value if self.provider else None,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class PayoutConflictError(Exception):
    """The idempotency key or request id already names a payout with a different body."""

    def __init__(self, key: str, existing_id: str, detail: str) -> None:
        super().__init__(detail)
        self.key = key
        self.existing_id = existing_id
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Created:
    payout_id: str
    created: bool  # False: the request named an existing payout (same body), which is returned


def payout_id_for(idempotency_key: str) -> str:
    """Deterministic: racing creators of one key compute the same id, and the same id every retry."""
    return "po-" + event_id_for("payout-id", idempotency_key).hex


class CreatePayouts:
    def __init__(
        self,
        *,
        repo: SqlPayoutRepository,
        registry: ProviderRegistry,
        approvals: ApprovalBook,
        max_attempts: int,
        source: str,
        metrics: PayoutMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.repo = repo
        self.registry = registry
        self.approvals = approvals
        self.max_attempts = max_attempts
        self.source = source
        self.metrics = metrics
        self.clock = clock

    async def execute(
        self, session: AsyncSession, commands: Sequence[CreatePayoutCommand], *, channel: str = "kafka"
    ) -> list[Created]:
        """Raises `PayoutConflictError` (different body under a used key) or `NoRouteError` (nobody pays it)."""
        now = self.clock()
        hashes = {id(c): c.body_hash() for c in commands}
        firsts: dict[str, CreatePayoutCommand] = {}
        by_request: dict[str, CreatePayoutCommand] = {}
        for cmd in commands:
            for index, value in ((firsts, cmd.idempotency_key), (by_request, cmd.payout_request_id)):
                seen = index.get(value)
                if seen is None:
                    index[value] = cmd
                elif hashes[id(seen)] != hashes[id(cmd)]:
                    self._refused(channel)
                    raise PayoutConflictError(
                        cmd.idempotency_key,
                        payout_id_for(seen.idempotency_key),
                        f"idempotency key {cmd.idempotency_key!r} / request {cmd.payout_request_id!r} "
                        "was used twice with different bodies",
                    )
        unique = list(firsts.values())
        existing = await self.repo.find_existing(
            session, [c.idempotency_key for c in unique], [c.payout_request_id for c in unique]
        )
        outcome: dict[str, Created] = {}
        fresh = []
        for cmd in unique:
            match = self._match(cmd, hashes[id(cmd)], existing, channel)
            if match is not None:
                outcome[cmd.idempotency_key] = match
            else:
                fresh.append(cmd)
        rows, records, changes = [], {}, []
        for cmd in fresh:
            entry = self.registry.route(cmd.amount.asset, cmd.destination.type, cmd.provider)
            policy = self.approvals.policy_for(cmd.amount.asset, cmd.amount.amount)
            state = PayoutState.APPROVED if policy is ApprovalPolicy.AUTO else PayoutState.PENDING_APPROVAL
            row = self._row(
                cmd,
                hashes[id(cmd)],
                provider_name=entry.name,
                provider_type=entry.type,
                policy=policy,
                state=state,
                now=now,
            )
            rows.append(row)
            records[row["id"]] = PayoutRecord.from_row(
                {**row, "sync_polls": 0, "provider_ref": None, "tx_hash": None, "last_error_code": None}
            )
        inserted = await self.repo.insert_new(session, rows) if rows else set()
        by_key = {c.idempotency_key: c for c in fresh}
        for row in rows:
            rec = records[row["id"]]
            cmd = by_key[rec.idempotency_key]
            if rec.id not in inserted:  # a concurrent creator won the race: judge against what it stored
                again = await self.repo.find_existing(session, [cmd.idempotency_key], [cmd.payout_request_id])
                match = self._match(cmd, hashes[id(cmd)], again, channel)
                assert match is not None
                outcome[cmd.idempotency_key] = match
                continue
            changes.append(self._created_change(rec, now))
            outcome[cmd.idempotency_key] = Created(rec.id, created=True)
        await self.repo.stage(session, changes, at=now)
        if self.metrics is not None:
            for ch in changes:
                self.metrics.transitions.labels(ch.to.value, ch.record.provider_name).inc()
        return [outcome[c.idempotency_key] for c in commands]

    def _match(
        self, cmd: CreatePayoutCommand, body_hash: str, existing: Sequence[PayoutRecord], channel: str
    ) -> Created | None:
        for rec in existing:
            if rec.idempotency_key == cmd.idempotency_key or rec.payout_request_id == cmd.payout_request_id:
                if rec.request_hash != body_hash:
                    self._refused(channel)
                    raise PayoutConflictError(
                        cmd.idempotency_key,
                        rec.id,
                        f"payout {rec.id} already exists for idempotency key {rec.idempotency_key!r} / request "
                        f"{rec.payout_request_id!r} with a different body",
                    )
                if self.metrics is not None:
                    self.metrics.duplicates_replayed.labels(channel).inc()
                return Created(rec.id, created=False)
        return None

    def _refused(self, channel: str) -> None:
        if self.metrics is not None:
            self.metrics.duplicates_refused.labels(channel).inc()

    def _row(
        self,
        cmd: CreatePayoutCommand,
        body_hash: str,
        *,
        provider_name: str,
        provider_type: ProviderType,
        policy: ApprovalPolicy,
        state: PayoutState,
        now: datetime,
    ) -> dict[str, Any]:
        return {
            "id": payout_id_for(cmd.idempotency_key),
            "payout_request_id": cmd.payout_request_id,
            "idempotency_key": cmd.idempotency_key,
            "request_hash": body_hash,
            "claim_id": cmd.claim_id,
            "player_id": cmd.player_id,
            "requested_by": cmd.requested_by,
            "asset": cmd.amount.asset,
            "amount": cmd.amount.amount,
            "destination_type": cmd.destination.type.value,
            "destination_address": cmd.destination.address,
            "destination_memo": cmd.destination.memo,
            "provider_type": provider_type.value,
            "provider_name": provider_name,
            "state": state.value,
            "approval_policy": policy.value,
            "correlation_id": cmd.correlation_id,
            "cause_event_id": cmd.cause_event_id,
            "attempts": 0,
            "max_attempts": self.max_attempts,
            "available_at": now,
            "sync_first": False,
            "created_at": now,
            "updated_at": now,
        }

    def _created_change(self, rec: PayoutRecord, now: datetime) -> Change:
        change = Change(
            record=rec,
            expected=PayoutState.REQUESTED,
            to=rec.state,
            history=[HistoryEntry(PayoutState.REQUESTED, rec.state, "system", reason=f"policy {rec.approval_policy}")],
        )
        change.events.append(
            payout_event(
                rec,
                PayoutCreated,
                source=self.source,
                destination=rec.destination,
                approval_policy=rec.approval_policy,
                created_at=now,
            )
        )
        if rec.state is PayoutState.APPROVED:
            change.events.append(
                payout_event(
                    rec,
                    PayoutApproved,
                    source=self.source,
                    approval_policy=rec.approval_policy,
                    approved_by=[],
                    approved_at=now,
                )
            )
        return change


def new_correlation_id(prefix: str = "admin") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


__all__ = [
    "CreatePayoutCommand",
    "CreatePayouts",
    "Created",
    "PayoutConflictError",
    "new_correlation_id",
    "payout_id_for",
]
