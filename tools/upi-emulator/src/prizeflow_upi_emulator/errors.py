"""Razorpay's error object: `{"error": {"code", "description", "source", "step", "reason", "metadata", "field"}}`
(docs: api/x/error-codes, errors/x). `code` is the error type (`BAD_REQUEST_ERROR`, `SERVER_ERROR`), `field` names the
request parameter at fault, `reason` is what a client branches on (`input_validation_failed`, `insufficient_funds`)."""

from __future__ import annotations

from typing import Any, Final

BAD_REQUEST: Final = "BAD_REQUEST_ERROR"
SERVER_ERROR: Final = "SERVER_ERROR"


class RazorpayError(Exception):
    """An API refusal; nothing was carried out."""

    def __init__(
        self,
        status: int,
        description: str,
        *,
        field: str | None = None,
        code: str = BAD_REQUEST,
        source: str = "business",
        reason: str = "input_validation_failed",
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.field = field
        self.code = code
        self.source = source
        self.reason = reason

    def to_json(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "description": self.description,
                "source": self.source,
                "step": "NA",
                "reason": self.reason,
                "metadata": {},
                "field": self.field,
            }
        }

    @classmethod
    def invalid(cls, description: str, field: str | None = None) -> RazorpayError:
        return cls(400, description, field=field)

    @classmethod
    def no_such_id(cls, field: str = "id") -> RazorpayError:
        """Razorpay answers an unknown id with a 400, not a 404."""
        return cls(400, "The id provided does not exist", field=field)

    @classmethod
    def server_error(cls, status: int = 500) -> RazorpayError:
        return cls(
            status,
            "We are facing some trouble completing your request at the moment. Please try again shortly.",
            code=SERVER_ERROR,
            source="internal",
            reason="server_error",
        )


__all__ = ["BAD_REQUEST", "SERVER_ERROR", "RazorpayError"]
