"""The CloudEvents 1.0 envelope every Prizeflow event travels in (docs/architecture.md §2).

Structured JSON mode: the attributes `id`, `type`, `source`, `specversion`, `time`, `subject`,
`datacontenttype`, the extensions `correlationid`, `causationid`, `schemaversion`, and `data`, the payload.
Payload classes register themselves by subclassing `EventPayload`, so decoding needs no other table.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, Generic, Literal, NamedTuple, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.ids import IDENTIFIER_PATTERN, is_identifier
from prizeflow_contracts.topics import Topic

CORRELATION_ID_PATTERN: Final = IDENTIFIER_PATTERN  # a correlation id is an id: the same rule, matched whole
EVENT_TYPE_PATTERN: Final = r"^prizeflow\.[a-z]+\.[A-Z][A-Za-z]+\.v[1-9][0-9]*$"
CorrelationId = Annotated[
    str,
    Field(
        pattern=CORRELATION_ID_PATTERN,
        description="Id of the flow (round, claim, admin action); also the Kafka key",
    ),
]
# Kafka header names mirrored from the envelope so brokers, DLQ tooling and humans can filter without parsing.
HEADER_TYPE: Final = "ce_type"
HEADER_ID: Final = "ce_id"
HEADER_CORRELATION: Final = "correlation_id"


class EventPayload(BaseModel):
    """Base of every event payload: frozen, and tolerant of fields added later within a version."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)

    EVENT_NAME: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "EVENT_NAME" in cls.__dict__:
            register_event(cls)

    @classmethod
    def event_type(cls) -> str:
        """`prizeflow.<domain>.<EventName>.v<N>`, the domain being the topic's second segment."""
        cached = _EVENT_TYPES.get(cls)
        if cached is None:
            domain = cls.TOPIC.name.split(".")[1]
            cached = _EVENT_TYPES[cls] = f"prizeflow.{domain}.{cls.EVENT_NAME}.v{cls.SCHEMA_VERSION}"
        return cached


P = TypeVar("P", bound=EventPayload)

_EVENT_TYPES: dict[type[EventPayload], str] = {}  # the class attributes it is made of are constants

_REGISTRY: dict[str, type[EventPayload]] = {}
# An upcaster turns the raw `data` of an old type into (new type, new data) before validation.
Upcaster = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]
_UPCASTERS: dict[str, Upcaster] = {}


def register_event(cls: type[EventPayload]) -> type[EventPayload]:
    event_type = cls.event_type()
    if not re.match(EVENT_TYPE_PATTERN, event_type):
        raise ValueError(f"{cls.__name__}: event type {event_type!r} does not match {EVENT_TYPE_PATTERN}")
    existing = _REGISTRY.get(event_type)
    if existing is not None and existing is not cls:
        raise ValueError(f"event type {event_type} is registered twice ({existing.__name__}, {cls.__name__})")
    if cls.EVENT_NAME not in cls.TOPIC.events:
        raise ValueError(f"{cls.EVENT_NAME} is not listed among the events of topic {cls.TOPIC.name}")
    _REGISTRY[event_type] = cls
    return cls


def register_upcaster(old_type: str, upcaster: Upcaster) -> None:
    _UPCASTERS[old_type] = upcaster


def is_known_type(event_type: str) -> bool:
    """Whether this process has a payload class for the event type as it is (not an old version an upcaster
    reads, not a version newer than this code). A registered type an upcaster rewrites is not "as it is"."""
    return event_type in _REGISTRY and event_type not in _UPCASTERS


def event_types(*, include_local: bool = False) -> dict[str, type[EventPayload]]:
    """Every event type of the contract (import `prizeflow_contracts.events` first to load them all).

    `include_local` adds payloads registered outside the contract package (tests, benchmarks).
    """
    return {
        t: cls
        for t, cls in _REGISTRY.items()
        if include_local or cls.__module__.startswith("prizeflow_contracts.events")
    }


class Envelope(BaseModel, Generic[P]):
    """A CloudEvent in structured JSON mode carrying one payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    type: Annotated[str, Field(pattern=EVENT_TYPE_PATTERN)]
    source: Annotated[str, Field(min_length=1, max_length=255)]
    subject: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: CorrelationId
    causationid: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    schemaversion: Annotated[int, Field(ge=1)]
    data: P

    @property
    def key(self) -> bytes:
        """The Kafka key: the correlation id."""
        return self.correlationid.encode()

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (HEADER_TYPE, self.type.encode()),
            (HEADER_ID, str(self.id).encode()),
            (HEADER_CORRELATION, self.correlationid.encode()),
        ]

    def headers_json(self) -> str:
        """`headers()` as a JSON object, as the outbox stores them."""
        return _headers_json(self.type, self.id, self.correlationid)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    def staged(self) -> StagedEvent:
        """This envelope as the outbox row it becomes. The document is `encode()`'s, byte for byte (a test holds it
        to that for every event type), formatted around the payload's own JSON as `stage_events` does: the envelope's
        fields are validated already, and serializing the whole model costs twice as much."""
        # Checked as `stage_events` checks them: an envelope built unvalidated could carry anything.
        shared = _shared_attributes(self.source, self.subject, self.time, self.correlationid, self.causationid)
        id_text = str(self.id)
        return StagedEvent(
            self.id,
            self.type,
            self.data.TOPIC.name,
            self.key,
            _headers_json(self.type, id_text, self.correlationid),
            _document(id_text, self.type, shared, self.schemaversion, self.data.model_dump_json()),
        )


class StagedEvent(NamedTuple):
    """An event encoded for the outbox: exactly the columns `add_events` writes (a named tuple: immutable,
    and a fifth of the cost of a frozen dataclass to build, which the hot paths do per event)."""

    id: uuid.UUID
    type: str
    topic: str
    key: bytes
    headers_json: str
    payload: bytes


def _headers_json(event_type: str, event_id: uuid.UUID | str, correlation_id: str) -> str:
    # Every value is plain ASCII without quotes or backslashes (an event type and a correlation id matching
    # their patterns, a UUID): formatting them needs no escaping and beats json.dumps on the hot path.
    return f'{{"{HEADER_TYPE}":"{event_type}","{HEADER_ID}":"{event_id}","{HEADER_CORRELATION}":"{correlation_id}"}}'


def new_event(
    payload: P,
    *,
    source: str,
    correlation_id: str,
    causation_id: str | uuid.UUID | None = None,
    subject: str | None = None,
    event_id: uuid.UUID | None = None,
    time: datetime | None = None,
) -> Envelope[P]:
    """Wrap a payload. Pass a deterministic `event_id` (see `event_id_for`) when a retry must not mint
    a new one."""
    return draft_event(
        payload,
        source=source,
        correlation_id=correlation_id,
        causation_id=causation_id,
        subject=subject,
        event_id=event_id,
        time=time,
    ).envelope()


_UTC_SUFFIX: Final = "+00:00"
# json.dumps with a non-default option builds a new encoder per call; this one is built once.
_JSON_STRING: Final = json.JSONEncoder(ensure_ascii=False).encode  # pydantic writes UTF-8 too


def _json_time(at: datetime) -> str:
    """RFC 3339 as pydantic writes it (`Z` for UTC). The last one is remembered: a batch stamps its events
    with one `datetime` object."""
    last = _LAST_TIME[0]
    if last[0] is at:
        return last[1]
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("an event time must carry its UTC offset")
    text = at.isoformat()
    text = text[: -len(_UTC_SUFFIX)] + "Z" if text.endswith(_UTC_SUFFIX) else text
    _LAST_TIME[0] = (at, text)
    return text


_LAST_TIME: list[tuple[datetime | None, str]] = [(None, "")]


def _json_str(value: str, field: str, max_length: int) -> str:
    if not 1 <= len(value) <= max_length:
        raise ValueError(f"{field} must be 1 to {max_length} characters")
    if _PLAIN_JSON_STRING.fullmatch(value) is not None:
        return f'"{value}"'  # ids, UUIDs, paths: nothing to escape (json.dumps would write the same)
    return _JSON_STRING(value)


# Characters a JSON string holds as they are (no escape, ASCII): what ids, UUIDs and sources are made of.
_PLAIN_JSON_STRING: Final = re.compile(r"[A-Za-z0-9:_.\-/ ]+")


@functools.lru_cache(maxsize=64)
def _json_source(source: str) -> str:
    """A service's CloudEvents source, as JSON: one per process, encoded once."""
    return _json_str(source, "source", 255)


def stage_event(
    payload: EventPayload,
    *,
    source: str,
    correlation_id: str,
    causation_id: str | uuid.UUID | None = None,
    subject: str | None = None,
    event_id: uuid.UUID | None = None,
    time: datetime | None = None,
) -> StagedEvent:
    """`new_event(...).staged()` without building and re-validating an `Envelope` (the payload is already a
    validated model): the JSON document is the same CloudEvent, and `decode` reads it back equal to the
    envelope `new_event` would have made (a test holds it to that for every event type). For producers that
    emit thousands of events per poll."""
    return stage_events(
        ((payload, event_id),),
        source=source,
        correlation_id=correlation_id,
        causation_id=causation_id,
        subject=subject,
        time=time,
    )[0]


def stage_events(
    payloads: Iterable[tuple[EventPayload, uuid.UUID | None]],
    *,
    source: str,
    correlation_id: str,
    causation_id: str | uuid.UUID | None = None,
    subject: str | None = None,
    time: datetime | None = None,
) -> list[StagedEvent]:
    """`stage_event` for events that share their envelope (one cause, one subject, one time: what one
    command emits): the shared attributes are checked and formatted once. Each payload comes with its
    event id (None: a random one)."""
    shared = _shared_attributes(source, subject, time or datetime.now(UTC), correlation_id, causation_id)
    key = correlation_id.encode()
    staged: list[StagedEvent] = []
    for payload, given_id in payloads:
        event_id = given_id or uuid.uuid4()
        id_text = str(event_id)
        event_type = payload.event_type()
        staged.append(
            StagedEvent(
                event_id,
                event_type,
                payload.TOPIC.name,
                key,
                _headers_json(event_type, id_text, correlation_id),
                _document(id_text, event_type, shared, payload.SCHEMA_VERSION, payload.model_dump_json()),
            )
        )
    return staged


def _shared_attributes(
    source: str, subject: str | None, time: datetime, correlation_id: str, causation_id: str | uuid.UUID | None
) -> str:
    """The envelope attributes between `type` and `schemaversion`, checked and formatted once for every event that
    shares them (the correlation id is written into the JSON as is: a newline would corrupt it)."""
    if not is_identifier(correlation_id):
        raise ValueError(f"invalid correlation id {correlation_id!r}")
    causation = "null" if causation_id is None else _json_str(str(causation_id), "causationid", 128)
    return (
        f'"source":{_json_source(source)},'
        f'"subject":{"null" if subject is None else _json_str(subject, "subject", 255)},'
        f'"time":"{_json_time(time)}","datacontenttype":"application/json",'
        f'"correlationid":"{correlation_id}","causationid":{causation},"schemaversion":'
    )


def _document(id_text: str, event_type: str, shared: str, schema_version: int, data_json: str) -> bytes:
    """The envelope's JSON, byte for byte what `Envelope.encode()` gives (a test holds it for every event type)."""
    return (
        f'{{"specversion":"1.0","id":"{id_text}","type":"{event_type}",{shared}{schema_version},"data":{data_json}}}'
    ).encode()


class EventDraft(NamedTuple, Generic[P]):
    """An event as `new_event` would wrap it, not validated into an `Envelope` (the hot paths build thousands a poll,
    and most are only ever staged): its attributes read as an envelope's, `staged()` checks and formats it as
    `stage_events` does (the bytes `new_event(...).staged()` would give: a test holds them equal for every event
    type), and `envelope()` builds the validated `Envelope`. A correlation id, source, subject or cause an envelope
    would refuse is refused when it is staged, inside the transaction that writes it."""

    id: uuid.UUID
    data: P
    source: str
    correlationid: str
    causationid: str | None
    subject: str | None
    time: datetime

    @property
    def type(self) -> str:
        return self.data.event_type()

    @property
    def schemaversion(self) -> int:
        return self.data.SCHEMA_VERSION

    @property
    def key(self) -> bytes:
        """The Kafka key: the correlation id."""
        return self.correlationid.encode()

    def staged(self) -> StagedEvent:
        return stage_events(
            ((self.data, self.id),),
            source=self.source,
            correlation_id=self.correlationid,
            causation_id=self.causationid,
            subject=self.subject,
            time=self.time,
        )[0]

    def encode(self) -> bytes:
        return self.staged().payload

    def envelope(self) -> Envelope[P]:
        return _GENERIC_ENVELOPE(  # type: ignore[no-any-return]
            id=self.id,
            type=self.type,
            source=self.source,
            subject=self.subject,
            time=self.time,
            correlationid=self.correlationid,
            causationid=self.causationid,
            schemaversion=self.schemaversion,
            data=self.data,
        )


# What a use case hands to the outbox: an envelope, or an event not yet validated into one.
OutgoingEvent = Envelope[Any] | EventDraft[Any]


def draft_event(
    payload: P,
    *,
    source: str,
    correlation_id: str,
    causation_id: str | uuid.UUID | None = None,
    subject: str | None = None,
    event_id: uuid.UUID | None = None,
    time: datetime | None = None,
) -> EventDraft[P]:
    """The event `new_event` wraps, as an `EventDraft` (its defaults: a random id, now): nothing validated until it
    is staged or made an `Envelope`."""
    return EventDraft(
        event_id or uuid.uuid4(),
        payload,
        source,
        correlation_id,
        str(causation_id) if causation_id is not None else None,
        subject,
        time or datetime.now(UTC),
    )


# `Envelope[P]` looked up once: pydantic resolves a parametrization through a cache keyed by the type
# arguments, which costs more than validating the envelope itself.
_GENERIC_ENVELOPE: Final[Any] = Envelope[P]  # type: ignore[valid-type]


def follow(
    cause: Envelope[Any],
    payload: P,
    *,
    source: str,
    subject: str | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope[P]:
    """An event caused by `cause`: same correlation id, causation id = the cause's id."""
    return new_event(
        payload,
        source=source,
        correlation_id=cause.correlationid,
        causation_id=cause.id,
        subject=subject,
        event_id=event_id,
    )


_EVENT_ID_NAMESPACE: Final = uuid.UUID("6d1c0a0e-6b3f-4c55-9d0e-7f1f5a8e2b10")
_NAMESPACE_BYTES: Final = _EVENT_ID_NAMESPACE.bytes
# RFC 4122 name-based SHA-1 (version 5): clear the version and variant bits, then set version 5, variant 10.
_UUID5_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID5_SET: Final = (5 << 76) | (0x8000 << 48)


def event_id_for(*business_key: object) -> uuid.UUID:
    """A deterministic event id for a business key, so a re-emitted event dedups downstream.

    Exactly `uuid.uuid5(namespace, "|".join(key))` (a test holds it to that), computed in half the time:
    the settlement hot path mints three per round.
    """
    name = "|".join(map(str, business_key)).encode()
    digest = hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()
    return uuid.UUID(int=(int.from_bytes(digest[:16], "big") & _UUID5_CLEAR) | _UUID5_SET)


def decode(raw: bytes | str) -> Envelope[EventPayload]:
    """Parse and validate an envelope and its payload.

    Raises `EventRefusal` with a stable reason code: malformed_json, invalid_envelope,
    unknown_event_type or invalid_payload.
    """
    try:
        doc = from_json(raw)  # pydantic-core's parser: about twice as fast as json.loads
    except ValueError:
        try:  # the standard library's verdict (and message), and its UTF-16/32 detection
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise EventRefusal("malformed_json", f"not a JSON document: {err}") from err
    if not isinstance(doc, dict):
        raise EventRefusal("invalid_envelope", "an event must be a JSON object")
    event_type = doc.get("type")
    data = doc.get("data")
    if isinstance(event_type, str) and event_type in _UPCASTERS and isinstance(data, dict):
        event_type, data = _UPCASTERS[event_type](data)
        doc = {**doc, "type": event_type, "data": data}
    payload_cls = _REGISTRY.get(event_type) if isinstance(event_type, str) else None
    if payload_cls is None:
        raise EventRefusal("unknown_event_type", f"unknown event type {event_type!r}")
    try:
        env: Envelope[EventPayload] = _envelope_of(payload_cls).model_validate(doc)
    except ValidationError as err:
        where = "invalid_payload" if all(e["loc"][:1] == ("data",) for e in err.errors()) else "invalid_envelope"
        raise EventRefusal(where, _describe(err)) from err
    return env


_ENVELOPE_CLASSES: dict[type[EventPayload], type[Envelope[Any]]] = {}


def _envelope_of(payload_cls: type[EventPayload]) -> type[Envelope[Any]]:
    """`Envelope[payload_cls]`, built once: parametrizing a pydantic generic per call costs ~0.5 ms."""
    cls = _ENVELOPE_CLASSES.get(payload_cls)
    if cls is None:
        cls = _ENVELOPE_CLASSES[payload_cls] = Envelope[payload_cls]  # type: ignore[valid-type]
    return cls


def _describe(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors(include_url=False)
    )
