"""What a consumed Kafka record says about itself, decoded or not: the event type its `ce_type` header names, the
ids a record that did not decode still shows, the offsets after a poll, and the dead letter it becomes when refused
(`prizeflow_runtime.consumer` decides when; this module only reads the record)."""

from __future__ import annotations

import json
import re
import traceback
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from prizeflow_contracts.envelope import CORRELATION_ID_PATTERN, HEADER_TYPE, Envelope, EventPayload, is_known_type
from prizeflow_contracts.errors import EventRefusal
from prizeflow_runtime.dead_letters import DeadLetter
from prizeflow_runtime.redaction import redact

_CORRELATION_ID_RE = re.compile(CORRELATION_ID_PATTERN)


def type_header(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The event type the record's `ce_type` header names, None without one (or one that is not text)."""
    for key, value in record.headers or ():
        if key == HEADER_TYPE:
            if value is None:  # a null header value: decoded and judged by its body
                return None
            try:
                return bytes(value).decode()
            except (TypeError, UnicodeDecodeError):
                return None
    return None


def to_read(
    records: Sequence[ConsumerRecord[bytes, bytes]], acts_on: frozenset[str] | None
) -> tuple[Sequence[ConsumerRecord[bytes, bytes]], dict[str, int]]:
    """The records of a poll to decode: all but those whose header names a type this code knows and the handler does
    not act on (`acts_on`; None: it reads everything); and how many were left unread, by topic."""
    if acts_on is None:
        return records, {}
    kept: list[ConsumerRecord[bytes, bytes]] = []
    skipped: dict[str, int] = {}
    for record in records:
        kind = type_header(record)
        if kind is None or kind in acts_on or not is_known_type(kind):
            kept.append(record)
        else:
            skipped[record.topic] = skipped.get(record.topic, 0) + 1
    return kept, skipped


def readable_ids(value: bytes) -> tuple[uuid.UUID | None, str | None, str | None, datetime | None]:
    """Best effort on a record that did not decode: its event id, type, correlation id and time, if it names them."""
    try:
        doc = json.loads(value)
    except (UnicodeDecodeError, ValueError):
        return None, None, None, None
    if not isinstance(doc, dict):
        return None, None, None, None
    try:
        event_id = uuid.UUID(str(doc.get("id")))
    except ValueError:
        event_id = None
    event_type = doc.get("type") if isinstance(doc.get("type"), str) else None
    correlation = doc.get("correlationid")
    valid = isinstance(correlation, str) and _CORRELATION_ID_RE.fullmatch(correlation) is not None
    try:
        occurred_at: datetime | None = datetime.fromisoformat(str(doc.get("time")))
    except ValueError:
        occurred_at = None
    if occurred_at is not None and occurred_at.tzinfo is None:
        occurred_at = None
    return event_id, (event_type or "")[:255] or None, correlation if valid else None, occurred_at


def dead_letter_of(
    record: ConsumerRecord[bytes, bytes],
    envelope: Envelope[EventPayload] | None,
    *,
    consumer: str,
    digest: bytes,
    reason: str,
    err: BaseException,
    attempts: int,
    remembered: Callable[[datetime], bool],
) -> DeadLetter:
    """The letter a refused record becomes: its bytes as consumed, the refusal (an `EventRefusal`'s own detail, any
    other error's message redacted), and the ids it names, decoded or read as best it can. Its time is kept only if
    `remembered` says the inbox can still hold it."""
    detail = (
        err.detail if isinstance(err, EventRefusal) else redact("".join(traceback.format_exception_only(err)).strip())
    )
    event_id, event_type, correlation_id, occurred_at = (
        (envelope.id, envelope.type, envelope.correlationid, envelope.time)
        if envelope is not None
        else readable_ids(record.value or b"")
    )
    if occurred_at is not None and not remembered(occurred_at):
        occurred_at = None
    return DeadLetter(
        consumer=consumer,
        digest=digest,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value or b"",
        headers=tuple((k, bytes(v) if v is not None else b"") for k, v in (record.headers or ())),
        reason=reason,
        detail=detail,
        error_type=type(err).__name__,
        attempts=attempts,
        event_id=event_id,
        event_type=event_type,
        correlation_id=correlation_id,
        occurred_at=occurred_at,
    )


def next_offsets(records: Sequence[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the last of `records`: what a settled poll commits."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    return offsets
