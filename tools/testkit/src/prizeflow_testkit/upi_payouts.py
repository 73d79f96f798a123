"""The upi rail's providers-file entry for tests and the local stack, and a signed `payout.*` delivery of an event
the emulator recorded. Imported by tests only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from prizeflow_contracts.upi import RAZORPAY_EVENT_ID_HEADER, RAZORPAY_SIGNATURE_HEADER, razorpay_signature
from prizeflow_testkit.upi import ACCOUNT_NUMBER

DEFAULT_LIMITS: Final = {"UPI": 10_000_000, "IMPS": 50_000_000, "NEFT": 200_000_000}


def upi_provider_doc(
    *,
    name: str = "upi",
    api_base: str,
    key_id_env: str = "UPI_KEY_ID",
    key_secret_env: str = "UPI_KEY_SECRET",  # noqa: S107 - the name of a variable, not a value
    webhook_secret_env: str | None = "UPI_WEBHOOK_SECRET",  # noqa: S107 - likewise
    **options: Any,
) -> dict[str, Any]:
    """A providers-file entry for the upi rail (options override the defaults)."""
    secrets = {"key_id": key_id_env, "key_secret": key_secret_env}
    if webhook_secret_env is not None:
        secrets["webhook_secret"] = webhook_secret_env
    return {
        "name": name,
        "type": "upi",
        "assets": ["INR"],
        "destination_types": ["upi"],
        "secrets": secrets,
        "options": {
            "api_base": api_base,
            "account_number": ACCOUNT_NUMBER,
            "limits": dict(DEFAULT_LIMITS),
            "timeout_s": 2.0,
            **options,
        },
    }


def signed_delivery(event: Mapping[str, Any], secret: str) -> tuple[dict[str, str], bytes]:
    """An event as `UpiAdmin.events()` lists it, as RazorpayX delivers it: headers and the raw body."""
    body = json.dumps(event["body"]).encode()
    headers = {
        RAZORPAY_SIGNATURE_HEADER: razorpay_signature(secret, body),
        RAZORPAY_EVENT_ID_HEADER: str(event["id"]),
        "content-type": "application/json",
    }
    return headers, body


__all__ = ["DEFAULT_LIMITS", "signed_delivery", "upi_provider_doc"]
