"""Dead letters: every record a consumer refused or gave up on is remembered, published to `<topic>.dlq`, and
decided by an operator (redrive or discard), audited.

A refusal is an outcome, like an application: the event's inbox row says `refused` and a `dead_letters` row
says why, with the record's bytes, in ONE transaction that also stages the DLQ copy in the outbox. So a
redelivery or a replay of the topic from offset 0 finds the event processed and changes nothing, where it
used to be applied against whatever state the service was in by then (a results event refused because its
round was still open would settle the round on replay). Records without a readable event id are remembered
by the digest of their bytes. Re-applying a refused event is an explicit, audited operator action:
`redrive` runs the consumer's own handler on the stored record in one transaction with its audit event,
and either the effects commit or nothing does.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_contracts.envelope import StagedEvent, decode
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.topics import DLQ_SUFFIX
from prizeflow_runtime.audit import admin_action
from prizeflow_runtime.dead_letter import DeadLetter
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.inbox import REFUSED, Delivery, claim_many
from prizeflow_runtime.outbox import add_events

if TYPE_CHECKING:
    from prizeflow_contracts.envelope import Envelope
    from prizeflow_runtime.auth import Principal

log = logging.getLogger(__name__)

DLQ_REASON = "x-dlq-reason"
DLQ_ERROR = "x-dlq-error"
DLQ_ERROR_TYPE = "x-dlq-error-type"
DLQ_ATTEMPTS = "x-dlq-attempts"
DLQ_CONSUMER = "x-dlq-consumer"
DLQ_ID = "x-dlq-id"
DLQ_ORIGINAL_TOPIC = "x-original-topic"
DLQ_ORIGINAL_PARTITION = "x-original-partition"
DLQ_ORIGINAL_OFFSET = "x-original-offset"
DLQ_AT = "x-dlq-at"
MAX_ERROR_LEN = 4000
# Reasons whose records can never be applied as they are: an operator may only discard them.
# (`beyond_dedup_horizon`: the inbox may have forgotten the event; applying it could apply it twice.)
NOT_REDRIVABLE = frozenset({"event_id_reused", "malformed_json", "invalid_envelope", "beyond_dedup_horizon"})


# Runs in the transaction that records a new dead letter, with the consumer's `books` bound to it: a service may
# answer the refused request (the signer refuses a signing request it cannot read, so payouts hears at once instead
# of at its timeout).
RefusalHook = Callable[[Any, DeadLetter], Awaitable[None]]


class DeadLetterStore(Protocol):
    async def record(self, session: AsyncSession, letter: DeadLetter, *, dlq_topic: str) -> int | None:
        """Remember the refusal (and mark its event processed); the row id if new, None if already known."""
        ...


_RECORD = text(
    """
    INSERT INTO dead_letters (consumer, digest, event_id, event_type, correlation_id, topic, partition, "offset",
                              key, value, headers, reason, detail, error_type, attempts)
    VALUES (:consumer, :digest, :event_id, :event_type, :correlation_id, :topic, :partition, :offset,
            :key, :value, CAST(:headers AS jsonb), :reason, :detail, :error_type, :attempts)
    ON CONFLICT (consumer, digest) DO UPDATE SET
        status = 'open', reason = EXCLUDED.reason, detail = EXCLUDED.detail, error_type = EXCLUDED.error_type,
        attempts = EXCLUDED.attempts, topic = EXCLUDED.topic, partition = EXCLUDED.partition,
        "offset" = EXCLUDED."offset", created_at = now(), decided_at = NULL, decided_by = NULL,
        decision_reason = NULL
    -- A record refused again after a redrive is open again; one refused and still open (or discarded) is not
    -- recorded twice.
    WHERE dead_letters.status = 'redriven'
    RETURNING id
    """
)


class SqlDeadLetters:
    """`dead_letters` + the inbox row + the DLQ copy in the outbox, in the caller's transaction."""

    async def record(self, session: AsyncSession, letter: DeadLetter, *, dlq_topic: str) -> int | None:
        if letter.event_id is not None and letter.occurred_at is not None and letter.reason != "event_id_reused":
            delivery = Delivery(
                letter.event_id, letter.topic, letter.partition, letter.offset, letter.occurred_at, letter.digest
            )
            claimed = await claim_many(session, letter.consumer, [delivery], outcome=REFUSED)
            if letter.event_id not in claimed.fresh:
                return None  # processed meanwhile (another replica), or refused before: nothing to add
        row = (
            await session.execute(
                _RECORD,
                {
                    "consumer": letter.consumer,
                    "digest": letter.digest,
                    "event_id": letter.event_id,
                    "event_type": letter.event_type,
                    "correlation_id": letter.correlation_id,
                    "topic": letter.topic,
                    "partition": letter.partition,
                    "offset": letter.offset,
                    "key": letter.key,
                    "value": letter.value,
                    "headers": json.dumps(_text_headers(letter.headers)),
                    "reason": letter.reason,
                    "detail": letter.detail[:MAX_ERROR_LEN],
                    "error_type": letter.error_type[:128],
                    "attempts": letter.attempts,
                },
            )
        ).first()
        if row is None:
            return None
        dead_letter_id = int(row[0])
        await add_events(session, [dlq_record(letter, dead_letter_id, dlq_topic)])
        return dead_letter_id


def dlq_topic_for(physical_topic: str, suffix: str) -> str:
    """The contract name of the DLQ sibling (the outbox relay appends the deployment's suffix)."""
    base = physical_topic.removesuffix(suffix) if suffix else physical_topic
    return base + DLQ_SUFFIX


def dlq_record(letter: DeadLetter, dead_letter_id: int, dlq_topic: str) -> StagedEvent:
    """The DLQ copy: the original bytes, key and headers, plus why (as `x-dlq-*` headers)."""
    headers = {k: v for k, v in _text_headers(letter.headers).items() if not k.startswith("x-dlq-")}
    headers.update(
        {
            DLQ_REASON: letter.reason,
            DLQ_ERROR: letter.detail[:MAX_ERROR_LEN],
            DLQ_ERROR_TYPE: letter.error_type,
            DLQ_ATTEMPTS: str(letter.attempts),
            DLQ_CONSUMER: letter.consumer,
            DLQ_ID: str(dead_letter_id),
            DLQ_ORIGINAL_TOPIC: letter.topic,
            DLQ_ORIGINAL_PARTITION: str(letter.partition),
            DLQ_ORIGINAL_OFFSET: str(letter.offset),
            DLQ_AT: datetime.now(UTC).isoformat(),
        }
    )
    return StagedEvent(
        id=uuid.uuid4(),
        type=letter.event_type or "unreadable",
        topic=dlq_topic,
        key=letter.key or b"",
        headers_json=json.dumps(headers),
        payload=letter.value,
    )


def _text_headers(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    return {k: bytes(v).decode("utf-8", "replace") for k, v in headers}


# --- the operator's side ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    consumer: str | None = None
    status: str | None = "open"
    reason: str | None = None
    after_id: int | None = None
    limit: int = 100


_SUMMARY = (
    'id, consumer, event_id, event_type, correlation_id, topic, partition, "offset", reason, detail, error_type, '
    "attempts, status, created_at, decided_at, decided_by, decision_reason"
)


def _summary(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["event_id"] = str(out["event_id"]) if out["event_id"] is not None else None
    return out


class Redrives(Protocol):
    """A consumer as the dead letters' admin sees it (`prizeflow_runtime.consumer.ReliableConsumer`): it applies a
    stored record an operator redrives, in the caller's transaction."""

    async def apply_redrive(self, session: AsyncSession, envelope: Envelope[Any], delivery: Delivery) -> None: ...


class DeadLetterAdmin:
    """List, inspect, redrive and discard dead letters of this service's consumers (ops and admins)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        consumers: Callable[[], Mapping[str, Redrives]],
        service: str,
        source: str,
    ) -> None:
        self.sessions = sessions
        self.consumers = consumers
        self.service = service
        self.source = source

    async def list(self, f: DeadLetterFilter) -> list[dict[str, Any]]:
        where: list[str] = ["true"]
        params: dict[str, Any] = {"limit": f.limit}
        for column, value in (("consumer", f.consumer), ("status", f.status), ("reason", f.reason)):
            if value is not None:
                where.append(f"{column} = :{column}")
                params[column] = value
        if f.after_id is not None:
            where.append("id > :after_id")
            params["after_id"] = f.after_id
        # Column names are constants; values are bound.
        query = text(f"SELECT {_SUMMARY} FROM dead_letters WHERE {' AND '.join(where)} ORDER BY id LIMIT :limit")  # noqa: S608
        async with self.sessions() as session:
            return [_summary(row) for row in await session.execute(query, params)]

    async def get(self, dead_letter_id: int) -> dict[str, Any]:
        async with self.sessions() as session:
            row = (
                await session.execute(
                    text(f"SELECT {_SUMMARY}, value, headers FROM dead_letters WHERE id = :id"),  # noqa: S608
                    {"id": dead_letter_id},
                )
            ).first()
        if row is None:
            raise UseCaseError(ErrorKind.NOT_FOUND, "dead_letter_not_found", f"no dead letter {dead_letter_id}")
        out = _summary(row)
        out["value"] = bytes(out["value"]).decode("utf-8", "replace")
        return out

    async def redrive(
        self, dead_letter_id: int, *, actor: Principal, reason: str, correlation_id: str
    ) -> dict[str, Any]:
        """Apply the stored record now, with the consumer's own handler: its effects and this decision's audit
        commit together, or (refused again, failed) nothing changes and the letter stays open."""
        async with self.sessions() as session, session.begin():
            row = await self._locked(session, dead_letter_id)
            if row.reason in NOT_REDRIVABLE or row.event_id is None:
                raise UseCaseError(
                    ErrorKind.CONFLICT,
                    "not_redrivable",
                    f"a {row.reason} record can never apply as it is; discard it (and fix the producer)",
                )
            consumer = self.consumers().get(row.consumer)
            if consumer is None:
                raise UseCaseError(
                    ErrorKind.CONFLICT, "consumer_not_here", f"consumer {row.consumer} does not run in this service"
                )
            for table in ("inbox", "inbox_legacy"):
                await session.execute(
                    text(f"DELETE FROM {table} WHERE consumer = :c AND event_id = :e AND outcome = 'refused'"),  # noqa: S608
                    {"c": row.consumer, "e": row.event_id},
                )
            try:
                envelope = decode(bytes(row.value))
                delivery = Delivery(
                    row.event_id, row.topic, row.partition, row.offset, envelope.time, bytes(row.digest)
                )
                async with session.begin_nested():
                    await consumer.apply_redrive(session, envelope, delivery)
            except EventRefusal as refusal:
                raise UseCaseError(
                    ErrorKind.CONFLICT,
                    "still_refused",
                    f"the consumer refuses it again ({refusal.reason}): {refusal.detail}",
                    refusal_reason=refusal.reason,
                ) from refusal
            await self._decide(session, row, "redriven", actor=actor, reason=reason, correlation_id=correlation_id)
        return {"id": dead_letter_id, "status": "redriven", "event_id": str(row.event_id)}

    async def discard(
        self, dead_letter_id: int, *, actor: Principal, reason: str, correlation_id: str
    ) -> dict[str, Any]:
        """Close the letter without applying it: the event stays processed as refused."""
        async with self.sessions() as session, session.begin():
            row = await self._locked(session, dead_letter_id)
            await self._decide(session, row, "discarded", actor=actor, reason=reason, correlation_id=correlation_id)
        return {"id": dead_letter_id, "status": "discarded"}

    async def _locked(self, session: AsyncSession, dead_letter_id: int) -> Any:
        row = (
            await session.execute(
                text(
                    'SELECT id, consumer, digest, event_id, correlation_id, topic, partition, "offset", value, '
                    "reason, status FROM dead_letters WHERE id = :id FOR UPDATE"
                ),
                {"id": dead_letter_id},
            )
        ).first()
        if row is None:
            raise UseCaseError(ErrorKind.NOT_FOUND, "dead_letter_not_found", f"no dead letter {dead_letter_id}")
        if row.status != "open":
            raise UseCaseError(ErrorKind.CONFLICT, "not_open", f"dead letter {dead_letter_id} is {row.status}")
        return row

    async def _decide(
        self, session: AsyncSession, row: Any, status: str, *, actor: Principal, reason: str, correlation_id: str
    ) -> None:
        now = datetime.now(UTC)
        await session.execute(
            text(
                "UPDATE dead_letters SET status = :s, decided_at = :t, decided_by = :by, decision_reason = :why "
                "WHERE id = :id"
            ),
            {"s": status, "t": now, "by": actor.user_id, "why": reason, "id": row.id},
        )
        audit = admin_action(
            actor_user_id=actor.user_id,
            actor_roles=actor.roles,
            action="dead_letter.redrive" if status == "redriven" else "dead_letter.discard",
            target_type="dead_letter",
            target_id=f"{self.service}-{row.id}",
            reason=reason,
            before={"status": "open", "refusal": row.reason, "consumer": row.consumer},
            after={"status": status, "event_id": str(row.event_id) if row.event_id else ""},
            service=self.service,
            source=self.source,
            # the refused event's own flow when it is known: the decision joins its story
            correlation_id=row.correlation_id or correlation_id,
            occurred_at=now,
        )
        await add_events(session, [audit])


__all__ = [
    "DLQ_AT",
    "DLQ_ATTEMPTS",
    "DLQ_CONSUMER",
    "DLQ_ERROR",
    "DLQ_ERROR_TYPE",
    "DLQ_ID",
    "DLQ_ORIGINAL_OFFSET",
    "DLQ_ORIGINAL_PARTITION",
    "DLQ_ORIGINAL_TOPIC",
    "DLQ_REASON",
    "NOT_REDRIVABLE",
    "DeadLetter",
    "DeadLetterAdmin",
    "DeadLetterFilter",
    "DeadLetterStore",
    "RefusalHook",
    "SqlDeadLetters",
    "dlq_record",
    "dlq_topic_for",
]
