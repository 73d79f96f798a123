"""A console session held on the server, and when it is over (pure).

The cookie carries an unguessable session id and nothing else that counts; the store keeps its SHA-256, the person,
their roles and the access token. A session is over once it was ended (signed out, or ended by an admin), once it
idled past `idle_s` or lived past `absolute_s`, and once its access token expired (then the person signs in again,
which reads their roles from the identity provider anew: a role removed there takes effect by then at the latest).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from prizeflow_console.domain.viewer import Viewer

# A session's last-seen time is written again once it is this old: not on every request (a write each), and well
# inside the idle timeout.
TOUCH_AFTER: Final = timedelta(seconds=60)


class EndReason(StrEnum):
    SIGNED_OUT = "signed_out"
    ENDED_BY_ADMIN = "ended_by_admin"
    EXPIRED_IDLE = "expired_idle"
    EXPIRED_ABSOLUTE = "expired_absolute"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id_hash: bytes
    viewer: Viewer
    access_token: str
    token_expires_at: datetime
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None = None
    end_reason: EndReason | None = None


@dataclass(frozen=True, slots=True)
class Timeouts:
    idle: timedelta
    absolute: timedelta


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def id_hash(session_id: str) -> bytes:
    """What the store keeps of a session id: a leak of the table gives nobody a cookie."""
    return hashlib.sha256(session_id.encode()).digest()


def judge(record: SessionRecord, *, now: datetime, timeouts: Timeouts) -> str | None:
    """Why the session cannot be used now (a `prizeflow_console_refused_total` reason), or None if it can."""
    if record.ended_at is not None:
        return "session_revoked"
    if now - record.created_at >= timeouts.absolute:
        return "session_expired_absolute"
    if now - record.last_seen_at >= timeouts.idle:
        return "session_expired_idle"
    if record.token_expires_at <= now + timedelta(seconds=5):
        return "session_token_expired"
    return None


def expiry_of(reason: str) -> EndReason | None:
    """The end a refusal records on the row (a timeout is recorded once, when a request finds it)."""
    return {"session_expired_absolute": EndReason.EXPIRED_ABSOLUTE, "session_expired_idle": EndReason.EXPIRED_IDLE}.get(
        reason
    )


def needs_touch(record: SessionRecord, now: datetime) -> bool:
    return now - record.last_seen_at >= TOUCH_AFTER


__all__ = [
    "TOUCH_AFTER",
    "EndReason",
    "SessionRecord",
    "Timeouts",
    "expiry_of",
    "id_hash",
    "judge",
    "needs_touch",
    "new_session_id",
]
