"""The emulator's books, without I/O: applicants (one per external user id), their review, the hosted-flow links
handed out, and the webhook events each change emits. Every method is synchronous and runs on the event loop: no
locks needed.

An applicant's `review.reviewStatus` follows Sumsub's documented life cycle: `init` (documents requested) →
`pending` (submitted, under review) → `completed` with `reviewResult.reviewAnswer` GREEN, or RED with
`reviewRejectType` RETRY (the player may resubmit: back to `pending` on the next submission) or FINAL; `onHold`
(paused for a person); a reset returns it to `init` with its documents inactive.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final

INIT: Final = "init"
PENDING: Final = "pending"
ON_HOLD: Final = "onHold"
COMPLETED: Final = "completed"
_ALPHA3: Final = re.compile(r"^[A-Z]{3}$")


def _hex(n: int) -> str:
    return secrets.token_hex(n)


def _ms_time(ms: int) -> str:
    """`createdAtMs` as Sumsub writes it: `2024-02-21 13:23:19.002` (UTC)."""
    at = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{at:%Y-%m-%d %H:%M:%S}.{ms % 1000:03d}"


def _sumsub_time(at: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if at is None else at, UTC).strftime("%Y-%m-%d %H:%M:%S")


class AutoReview(StrEnum):
    """What a submitted applicant comes to by itself, `review_delay_ms` after it is submitted."""

    GREEN = "green"
    RED_RETRY = "red_retry"
    RED_FINAL = "red_final"
    NONE = "none"  # stays pending until a test (or an operator) reviews it through /_emulator


class ApiError(Exception):
    """An API refusal in Sumsub's shape: `{"description", "code", "correlationId"}`."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description

    def to_json(self) -> dict[str, Any]:
        return {"description": self.description, "code": self.status, "correlationId": uuid.uuid4().hex}


@dataclass
class Info:
    """The identity the applicant submitted (emulator memory only; a real vendor reads it off the documents)."""

    first_name: str
    last_name: str
    dob: date
    country: str  # ISO 3166-1 alpha-3, as Sumsub gives it
    id_doc_number: str = ""
    id_doc_type: str = "PASSPORT"

    def to_json(self) -> dict[str, Any]:
        return {
            "firstName": self.first_name,
            "firstNameEn": self.first_name,
            "lastName": self.last_name,
            "lastNameEn": self.last_name,
            "dob": self.dob.isoformat(),
            "country": self.country,
            "idDocs": [
                {
                    "idDocType": self.id_doc_type,
                    "country": self.country,
                    "firstName": self.first_name,
                    "lastName": self.last_name,
                    "dob": self.dob.isoformat(),
                    "number": self.id_doc_number,
                }
            ],
        }

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> Info:
        """From `{firstName, lastName, dob (YYYY-MM-DD), country (alpha-3), number?}`; ValueError naming the field."""
        first, last = str(doc.get("firstName", "")).strip(), str(doc.get("lastName", "")).strip()
        if not first or not last or len(first) > 100 or len(last) > 100:
            raise ValueError("firstName and lastName are required (1-100 characters)")
        try:
            dob = date.fromisoformat(str(doc.get("dob", "")))
        except ValueError:
            raise ValueError("dob is a date, YYYY-MM-DD") from None
        country = str(doc.get("country", "")).strip().upper()
        if not _ALPHA3.fullmatch(country):
            raise ValueError("country is an ISO 3166-1 alpha-3 code, e.g. DEU")
        number = str(doc.get("number", doc.get("idDocNumber", ""))).strip()[:64]
        return cls(first, last, dob, country, number)


@dataclass
class Review:
    status: str = INIT
    answer: str | None = None  # GREEN or RED once completed
    reject_type: str | None = None  # RETRY or FINAL on RED
    reject_labels: list[str] = field(default_factory=list)
    attempt_id: str = field(default_factory=lambda: _hex(5))
    attempt_cnt: int = 0
    create_date: str = field(default_factory=_sumsub_time)
    review_date: str | None = None

    def result_json(self) -> dict[str, Any] | None:
        if self.answer is None:
            return None
        result: dict[str, Any] = {"reviewAnswer": self.answer}
        if self.answer == "RED":
            result |= {"rejectLabels": list(self.reject_labels), "reviewRejectType": self.reject_type}
        return result


@dataclass
class Applicant:
    id: str
    inspection_id: str
    external_user_id: str
    level_name: str
    created_at: str
    review: Review = field(default_factory=Review)
    info: Info | None = None

    def status_json(self) -> dict[str, Any]:
        """`GET /resources/applicants/{id}/status` (and `review` inside `/one`)."""
        r = self.review
        doc: dict[str, Any] = {
            "reviewId": f"{self.id[:5]}{r.attempt_id}",
            "attemptId": r.attempt_id,
            "attemptCnt": r.attempt_cnt,
            "levelName": self.level_name,
            "createDate": r.create_date,
            "reviewStatus": r.status,
            "priority": 0,
        }
        if r.review_date is not None:
            doc["reviewDate"] = r.review_date
        if (result := r.result_json()) is not None:
            doc["reviewResult"] = result
        return doc

    def to_json(self) -> dict[str, Any]:
        """`GET /resources/applicants/{id}/one`."""
        doc: dict[str, Any] = {
            "id": self.id,
            "createdAt": self.created_at,
            "key": "EMULATOR",
            "clientId": "prizeflow",
            "inspectionId": self.inspection_id,
            "externalUserId": self.external_user_id,
            "levelName": self.level_name,
            "type": "individual",
            "review": self.status_json(),
        }
        if self.info is not None:
            doc["info"] = self.info.to_json()
        return doc


@dataclass
class Event:
    """One webhook, as Sumsub sends it: names the applicant and what happened, never the person."""

    type: str
    applicant: Applicant
    correlation_id: str
    created_at_ms: int
    review_status: str
    review_result: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        a = self.applicant
        doc: dict[str, Any] = {
            "applicantId": a.id,
            "inspectionId": a.inspection_id,
            "correlationId": self.correlation_id,
            "externalUserId": a.external_user_id,
            "levelName": a.level_name,
            "type": self.type,
            "sandboxMode": True,
            "reviewStatus": self.review_status,
            "createdAt": datetime.fromtimestamp(self.created_at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S+0000"),
            "createdAtMs": _ms_time(self.created_at_ms),
            "clientId": "prizeflow",
        }
        if self.review_result is not None:
            doc["reviewResult"] = self.review_result
        return doc


@dataclass(frozen=True)
class Link:
    token: str
    level_name: str
    external_user_id: str
    expires_at: float


class Store:
    def __init__(
        self,
        *,
        levels: tuple[str, ...],
        auto_review: AutoReview,
        review_delay_ms: int,
        listener: Callable[[Event], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.levels = levels
        self.auto_review = auto_review
        self.review_delay_ms = review_delay_ms
        self.listener = listener
        self.clock = clock
        self.applicants: dict[str, Applicant] = {}
        self.by_user: dict[str, str] = {}
        self.links: dict[str, Link] = {}
        self.events: list[Event] = []
        self.due: dict[str, tuple[float, AutoReview]] = {}  # applicant id → when and how it is reviewed

    # -- the API ----------------------------------------------------------------------------------------------
    def create(self, level_name: str, external_user_id: str) -> Applicant:
        """A new applicant, 409 when one exists for that external user id (as Sumsub answers)."""
        self._level(level_name)
        if not external_user_id or len(external_user_id) > 255:
            raise ApiError(400, "externalUserId is required (1-255 characters)")
        if (known := self.by_user.get(external_user_id)) is not None:
            raise ApiError(409, f"Applicant with external user id '{external_user_id}' already exists: {known}")
        applicant = Applicant(
            id=_hex(12), inspection_id=_hex(12), external_user_id=external_user_id, level_name=level_name,
            created_at=_sumsub_time(self.clock()),
        )  # fmt: skip
        self.applicants[applicant.id] = applicant
        self.by_user[external_user_id] = applicant.id
        self._emit("applicantCreated", applicant)
        return applicant

    def get(self, applicant_id: str) -> Applicant:
        found = self.applicants.get(applicant_id)
        if found is None:
            raise ApiError(404, f"Applicant not found: {applicant_id}")
        return found

    def by_external(self, external_user_id: str) -> Applicant:
        found = self.by_user.get(external_user_id)
        if found is None:
            raise ApiError(404, f"Applicant with external user id '{external_user_id}' not found")
        return self.applicants[found]

    def link(self, level_name: str, external_user_id: str, ttl_s: int) -> Link:
        self._level(level_name)
        if not external_user_id:
            raise ApiError(400, "userId is required")
        if not 60 <= ttl_s <= 30 * 86_400:
            raise ApiError(400, "ttlInSecs is within [60, 2592000]")
        made = Link(_hex(16), level_name, external_user_id, self.clock() + ttl_s)
        self.links[made.token] = made
        return made

    def open_link(self, token: str) -> Applicant:
        """The applicant a hosted-flow link is for (the WebSDK creates it on first use)."""
        found = self.links.get(token)
        if found is None or found.expires_at < self.clock():
            raise ApiError(404, "This link is invalid or has expired")
        if found.external_user_id in self.by_user:
            return self.by_external(found.external_user_id)
        return self.create(found.level_name, found.external_user_id)

    # -- the player and the reviewer ------------------------------------------------------------------------------
    def submit(self, applicant_id: str, info: Info) -> Applicant:
        """The player submitted their data: pending, reviewed by itself per `auto_review`."""
        applicant = self.get(applicant_id)
        r = applicant.review
        if r.status == COMPLETED and not (r.answer == "RED" and r.reject_type == "RETRY"):
            raise ApiError(409, "The applicant's review is completed; it cannot be resubmitted")
        applicant.info = info
        applicant.review = Review(status=PENDING, attempt_cnt=r.attempt_cnt + 1)
        self._emit("applicantPending", applicant)
        if self.auto_review is not AutoReview.NONE:
            self.due[applicant.id] = (self.clock() + self.review_delay_ms / 1000, self.auto_review)
        return applicant

    def complete(
        self, applicant_id: str, answer: str, *, reject_type: str | None = None, labels: list[str] | None = None
    ) -> Applicant:
        if answer not in ("GREEN", "RED"):
            raise ApiError(400, "reviewAnswer is GREEN or RED")
        if answer == "RED" and reject_type not in ("RETRY", "FINAL"):
            raise ApiError(400, "a RED review has reviewRejectType RETRY or FINAL")
        applicant = self.get(applicant_id)
        self.due.pop(applicant_id, None)
        r = applicant.review
        r.status, r.answer = COMPLETED, answer
        r.reject_type = reject_type if answer == "RED" else None
        r.reject_labels = list(labels or (["DOCUMENT_DAMAGED"] if answer == "RED" else []))
        r.review_date = _sumsub_time(self.clock())
        self._emit("applicantReviewed", applicant)
        return applicant

    def hold(self, applicant_id: str) -> Applicant:
        applicant = self.get(applicant_id)
        self.due.pop(applicant_id, None)
        applicant.review.status, applicant.review.answer = ON_HOLD, None
        self._emit("applicantOnHold", applicant)
        return applicant

    def reset(self, applicant_id: str) -> Applicant:
        applicant = self.get(applicant_id)
        self.due.pop(applicant_id, None)
        applicant.review = Review(status=INIT, attempt_cnt=applicant.review.attempt_cnt)
        applicant.info = None
        self._emit("applicantReset", applicant)
        return applicant

    def advance(self) -> None:
        """Reviews that came due (the emulated provider's clock)."""
        now = self.clock()
        for applicant_id, (at, outcome) in list(self.due.items()):
            if at > now:
                continue
            del self.due[applicant_id]
            if outcome is AutoReview.GREEN:
                self.complete(applicant_id, "GREEN")
            elif outcome is AutoReview.RED_RETRY:
                self.complete(applicant_id, "RED", reject_type="RETRY", labels=["BAD_PROOF_OF_IDENTITY"])
            elif outcome is AutoReview.RED_FINAL:
                self.complete(applicant_id, "RED", reject_type="FINAL", labels=["FORGERY"])

    def _level(self, level_name: str) -> None:
        if level_name not in self.levels:
            raise ApiError(404, f"Level '{level_name}' not found")

    def _emit(self, kind: str, applicant: Applicant) -> None:
        event = Event(
            type=kind,
            applicant=applicant,
            correlation_id=f"req-{uuid.uuid4()}",
            created_at_ms=int(self.clock() * 1000),
            review_status=applicant.review.status,
            review_result=applicant.review.result_json(),
        )
        self.events.append(event)
        self.listener(event)


__all__ = ["COMPLETED", "INIT", "ON_HOLD", "PENDING", "ApiError", "Applicant", "AutoReview", "Event", "Info", "Store"]
