"""Stripe error objects: `{"error": {"type", "code"?, "message", "param"?}}` with the HTTP status Stripe uses."""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An API refusal. `status` is the HTTP status; the body is `{"error": body()}`."""

    def __init__(
        self, status: int, type_: str, message: str, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            out["code"] = self.code
        if self.param is not None:
            out["param"] = self.param
        return out

    @classmethod
    def invalid(cls, message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
        return cls(
            400, "invalid_request_error", message, code=code or ("parameter_invalid" if param else None), param=param
        )

    @classmethod
    def missing_param(cls, param: str) -> StripeError:
        return cls(
            400, "invalid_request_error", f"Missing required param: {param}.", code="parameter_missing", param=param
        )

    @classmethod
    def unknown_param(cls, param: str) -> StripeError:
        return cls(
            400, "invalid_request_error", f"Received unknown parameter: {param}", code="parameter_unknown", param=param
        )

    @classmethod
    def no_such(cls, kind: str, oid: str, *, param: str = "id") -> StripeError:
        return cls(404, "invalid_request_error", f"No such {kind}: '{oid}'", code="resource_missing", param=param)

    @classmethod
    def balance_insufficient(cls) -> StripeError:
        return cls(
            400,
            "invalid_request_error",
            "You have insufficient available funds in your Stripe account. Try adding funds directly to your "
            "available balance by creating Top-ups.",
            code="balance_insufficient",
        )


__all__ = ["StripeError"]
