"""Helpers the use cases share: the clock, audit events, counting applied transfers, ledger refusals."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_rewards.application.ports import Outbox
from prizeflow_rewards.domain.ledger import BatchResult, LedgerError
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.audit import admin_action as audit_event
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.principal import Principal

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def count_transfers(metrics: RewardsMetrics | None, result: BatchResult) -> None:
    if metrics is not None:
        for t in result.applied:
            metrics.transfers.labels(t.kind.value).inc()


def ledger_refusal(err: LedgerError) -> UseCaseError:
    """A batch the ledger refused, as a request's refusal: nothing of it, nor of the request, is kept."""
    kind = ErrorKind.INVALID if err.code == "amount_out_of_range" else ErrorKind.CONFLICT
    return UseCaseError(kind, err.code, err.detail)


@contextmanager
def ledger_refusals() -> Iterator[None]:
    """Around a use case a request runs: a `LedgerError` (or the `EventRefusal` an event path it shares made of
    one) it lets through becomes the request's refusal, a 409/422 instead of a 500."""
    try:
        yield
    except LedgerError as err:
        raise ledger_refusal(err) from err
    except EventRefusal as err:  # a ledger refusal a shared event path already named (a round's prizes)
        raise UseCaseError(ErrorKind.CONFLICT, err.reason, err.detail) from err


def admin_action(
    *,
    source: str,
    actor: Principal,
    action: str,
    target_type: str,
    target_id: str,
    correlation_id: str,
    reason: str | None = None,
    before: Mapping[str, object] | None = None,
    after: Mapping[str, object] | None = None,
    at: datetime | None = None,
) -> Envelope[AdminActionRecorded]:
    """An AdminActionRecorded with the roles the actor holds (an actor without one is refused by the event's
    contract, and the action with it: no role is ever assumed)."""
    return audit_event(
        actor_user_id=actor.user_id,
        actor_roles=actor.roles,
        action=action,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
        before=before,
        after=after,
        service="rewards",
        source=source,
        correlation_id=correlation_id,
        occurred_at=at or utcnow(),
    )


async def audit(
    outbox: Outbox,
    *,
    source: str,
    actor: Principal,
    action: str,
    target_type: str,
    target_id: str,
    correlation_id: str,
    reason: str | None = None,
    before: Mapping[str, object] | None = None,
    after: Mapping[str, object] | None = None,
) -> None:
    """Stage the `admin_action` in the transaction of the action itself."""
    event = admin_action(
        source=source,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        correlation_id=correlation_id,
        reason=reason,
        before=before,
        after=after,
    )
    await outbox.stage([event])
