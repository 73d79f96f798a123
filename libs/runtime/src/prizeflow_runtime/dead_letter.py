"""A record a consumer will not apply, and why (the value type; pure: handlers and use cases import it).

The store, the DLQ copy and the operators' decisions are `prizeflow_runtime.dead_letters`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record a consumer will not apply, and why."""

    consumer: str
    digest: bytes
    topic: str  # the physical topic it was read from (with the deployment's suffix)
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    reason: str
    detail: str
    error_type: str
    attempts: int
    event_id: uuid.UUID | None = None
    event_type: str | None = None
    correlation_id: str | None = None
    # The event's own time when the inbox can remember the refusal under it (None: no readable time, or one outside
    # the dedup horizon, whose partition may not exist; the letter is still kept once per digest).
    occurred_at: datetime | None = None

    def readable(self) -> dict[str, Any] | None:
        """The record as a JSON object, if it is one (a malformed record may still name its request)."""
        try:
            doc = json.loads(self.value)
        except (UnicodeDecodeError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None


__all__ = ["DeadLetter"]
