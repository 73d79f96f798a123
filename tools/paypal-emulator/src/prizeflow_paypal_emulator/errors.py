"""PayPal's error objects. The REST APIs answer `{"name", "message", "debug_id", "information_link", "details":
[{"field", "location", "issue", ...}], "links"}` (`details` only where there are some, as PayPal does); the OAuth2
layer answers `{"error", "error_description"}` (RFC 6749) — for a bad client on `/v1/oauth2/token` and for a missing,
unknown or expired bearer token on every other route."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final

PAYOUTS_ERRORS: Final = "https://developer.paypal.com/docs/api/payments.payouts-batch/#errors"
REPORTING_ERRORS: Final = "https://developer.paypal.com/docs/api/transaction-search/#errors"
WEBHOOKS_ERRORS: Final = "https://developer.paypal.com/docs/api/webhooks/#errors"


def debug_id() -> str:
    """PayPal's correlation id of an answer (13 hex characters)."""
    return secrets.token_hex(7)[:13]


class PayPalError(Exception):
    """An API refusal; nothing was carried out."""

    def __init__(
        self,
        status: int,
        name: str,
        message: str,
        *,
        details: Sequence[Mapping[str, Any]] = (),
        information_link: str = PAYOUTS_ERRORS,
    ) -> None:
        super().__init__(f"{name}: {message}")
        self.status = status
        self.name = name
        self.message = message
        self.details = [dict(d) for d in details]
        self.information_link = information_link

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "message": self.message,
            "debug_id": debug_id(),
            "information_link": self.information_link,
        }
        if self.details:
            doc["details"] = self.details
        doc["links"] = []
        return doc

    @classmethod
    def validation(cls, details: Sequence[Mapping[str, Any]], *, link: str = PAYOUTS_ERRORS) -> PayPalError:
        """400 VALIDATION_ERROR, each detail naming the field (`items[0].amount.value`) and the issue."""
        return cls(400, "VALIDATION_ERROR", "Invalid request - see details.", details=details, information_link=link)

    @classmethod
    def invalid_request(cls, details: Sequence[Mapping[str, Any]], *, link: str = REPORTING_ERRORS) -> PayPalError:
        """400 INVALID_REQUEST: what Transaction Search answers for a bad query."""
        return cls(400, "INVALID_REQUEST", "Invalid request - see details.", details=details, information_link=link)

    @classmethod
    def malformed(cls) -> PayPalError:
        return cls(400, "MALFORMED_REQUEST", "Incoming JSON request does not map to API request")

    @classmethod
    def not_found(cls) -> PayPalError:
        return cls(404, "INVALID_RESOURCE_ID", "Requested resource ID was not found.")

    @classmethod
    def rate_limited(cls) -> PayPalError:
        return cls(429, "RATE_LIMIT_REACHED", "Too many requests. Blocked due to rate limiting.")

    @classmethod
    def internal(cls) -> PayPalError:
        return cls(500, "INTERNAL_SERVICE_ERROR", "An internal service error has occurred.")


def detail(field: str, issue: str, *, location: str = "body", **extra: Any) -> dict[str, Any]:
    return {"field": field, "location": location, "issue": issue, **extra}


class OAuthError(Exception):
    """An OAuth2 refusal: `{"error", "error_description"}`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


__all__ = [
    "PAYOUTS_ERRORS",
    "REPORTING_ERRORS",
    "WEBHOOKS_ERRORS",
    "OAuthError",
    "PayPalError",
    "debug_id",
    "detail",
]
