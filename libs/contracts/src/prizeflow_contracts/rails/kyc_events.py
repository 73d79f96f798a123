"""Identity-verification vendor callbacks (Sumsub-shaped), normalized. Pure.

A Sumsub user-verification webhook names an applicant and what happened to it:

    {"applicantId": "…", "inspectionId": "…", "correlationId": "…", "externalUserId": "<our player id>",
     "levelName": "…", "type": "applicantReviewed", "reviewStatus": "completed",
     "reviewResult": {"reviewAnswer": "GREEN"}, "createdAtMs": "2024-02-21 13:23:19.002", …}

What is published is who and what kind, never the answer: the review result is dropped (a webhook's say-so is not
believed; payouts fetches the applicant's status from the vendor), and the vendor sends no personal data. The
delivery carries no event id, so its dedup key is `<applicantId>:<type>:<createdAtMs digits>`: a redelivery of the
same event has the same key, two events of one applicant differ in type or time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from prizeflow_contracts.events.webhooks import VerificationEventReceived
from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_contracts.kyc import VerificationVendor
from prizeflow_contracts.rails.reading import IgnoredReason, NormalizationError, Normalized

_APPLICANT_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KIND_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_PLAYER_RE: Final = re.compile(IDENTIFIER_PATTERN)
_KIND_LABEL_RE: Final = re.compile(r"^[A-Z0-9_]{1,64}$")  # a reject label is a code (DOCUMENT_PAGE_MISSING)
_CREATED_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?$")
# The webhook types that may follow a change of the applicant's verification: payouts fetches the status back on
# each. Other types (tags, video ident media, transaction monitoring, ...) are stored and ignored.
STATUS_KINDS: Final = frozenset(
    {
        "applicantCreated",
        "applicantPending",
        "applicantReviewed",
        "applicantOnHold",
        "applicantReset",
        "applicantActionReviewed",
        "applicantPersonalInfoChanged",
        "applicantLevelChanged",
        "applicantWorkflowCompleted",
        "applicantDeactivated",
        "applicantActivated",
        "applicantDeleted",
    }
)


# What a stored delivery keeps of the vendor's body: what identifies the event and the answer's codes. Everything
# else is dropped (a moderator's `moderationComment` / `clientComment` is free text: a name read off a document,
# a date of birth); the delivery's sha256 stays the received body's, so the signed original can still be matched.
KEPT_FIELDS: Final = (
    "applicantId",
    "inspectionId",
    "correlationId",
    "externalUserId",
    "levelName",
    "previousLevelName",
    "type",
    "sandboxMode",
    "reviewStatus",
    "createdAt",
    "createdAtMs",
    "clientId",
    "applicantType",
    "applicantActionId",
    "externalApplicantActionId",
)
KEPT_REVIEW_FIELDS: Final = ("reviewAnswer", "reviewRejectType")


def kept_body(doc: Mapping[str, Any]) -> bytes:
    """The delivery body Prizeflow keeps (see `KEPT_FIELDS`): no free text, no personal data."""
    kept: dict[str, Any] = {k: doc[k] for k in KEPT_FIELDS if isinstance(doc.get(k), str | int | float | bool)}
    review = doc.get("reviewResult")
    if isinstance(review, Mapping):
        result: dict[str, Any] = {k: review[k] for k in KEPT_REVIEW_FIELDS if isinstance(review.get(k), str)}
        labels = review.get("rejectLabels")
        if isinstance(labels, list):
            result["rejectLabels"] = [x for x in labels if isinstance(x, str) and _KIND_LABEL_RE.fullmatch(x)]
        kept["reviewResult"] = result
    return json.dumps(kept, separators=(",", ":"), sort_keys=True).encode()


def normalize(
    doc: Mapping[str, Any],
    *,
    provider: VerificationVendor,
    provider_name: str,
    digest: str,
    received_at: datetime,
) -> Normalized:
    """The delivery's dedup key, kind and event (or why it is ignored); NormalizationError when it is not a
    Sumsub applicant webhook at all."""
    applicant, kind, created = doc.get("applicantId"), doc.get("type"), doc.get("createdAtMs")
    if not isinstance(applicant, str) or not _APPLICANT_RE.fullmatch(applicant):
        raise NormalizationError("applicantId: 1-64 characters of [A-Za-z0-9_-]")
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise NormalizationError("type: a webhook type such as applicantReviewed")
    if not isinstance(created, str) or not _CREATED_RE.fullmatch(created):
        raise NormalizationError("createdAtMs: the event's time, YYYY-MM-DD hh:mm:ss.SSS")
    event_id = f"{applicant}:{kind}:{''.join(c for c in created if c.isdigit())}"
    if kind not in STATUS_KINDS:
        return Normalized(event_id, kind, None, None, IgnoredReason.KIND_NOT_HANDLED)
    player = doc.get("externalUserId")
    if not isinstance(player, str) or not _PLAYER_RE.fullmatch(player):
        # An applicant made elsewhere (the vendor's dashboard, another integration): no player of ours.
        return Normalized(event_id, kind, None, None, IgnoredReason.NOT_A_PLAYER)
    try:
        event = VerificationEventReceived(
            provider=provider,
            provider_name=provider_name,
            provider_event_id=event_id,
            applicant_ref=applicant,
            player_id=player,
            kind=kind,
            received_at=received_at,
            payload_digest=digest,
        )
    except ValidationError as err:  # pragma: no cover - every field was checked above
        raise NormalizationError(f"not a verification event ({err.error_count()} errors)") from None
    return Normalized(event_id, kind, None, event)


__all__ = ["KEPT_FIELDS", "KEPT_REVIEW_FIELDS", "STATUS_KINDS", "kept_body", "normalize"]
