"""Every integer an event carries fits the BIGINT column it lands in: an out-of-range value is refused when the
event is read (a dead letter with a reason), never a database error in a consumer's crash loop. Walks every
registered event's JSON schema, so a new unbounded integer field fails here."""

from __future__ import annotations

from typing import Any

import pytest

import prizeflow_contracts.events  # noqa: F401 - registers every event type
from prizeflow_contracts.envelope import event_types
from prizeflow_contracts.money import INT64_MAX, INT64_MIN

TYPES = event_types(include_local=True)


def _integers(schema: dict[str, Any], defs: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, schema) of every integer the schema can hold, following $refs, unions and arrays."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _integers(defs[name], defs, path)
    found: list[tuple[str, dict[str, Any]]] = []
    if schema.get("type") == "integer":
        found.append((path, schema))
    for key in ("anyOf", "oneOf", "allOf"):
        for n, sub in enumerate(schema.get(key, [])):
            found += _integers(sub, defs, f"{path}|{n}")
    if "items" in schema:
        found += _integers(schema["items"], defs, f"{path}[]")
    for name, sub in schema.get("properties", {}).items():
        found += _integers(sub, defs, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _integers(schema["additionalProperties"], defs, f"{path}{{}}")
    return found


def test_there_are_events_to_check() -> None:
    assert len(TYPES) > 20


@pytest.mark.parametrize("event_type", sorted(TYPES))
def test_every_integer_of_every_event_is_within_int64(event_type: str) -> None:
    schema = TYPES[event_type].model_json_schema()
    defs = schema.get("$defs", {})
    for path, field in _integers(schema, defs, event_type):
        low = field.get("minimum", field.get("exclusiveMinimum"))
        high = field.get("maximum", field.get("exclusiveMaximum"))
        assert low is not None, f"{path} has no lower bound"
        assert high is not None, f"{path} has no upper bound"
        assert low >= INT64_MIN, f"{path}: {low} is below int64"
        assert high <= INT64_MAX, f"{path}: {high} is past int64"
