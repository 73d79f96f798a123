"""The PayPal emulator (tools/paypal-emulator) as a real process on a free port, an async client of its `/_emulator`
admin API, and a providers-file entry of the PayPal rail. Imported by tests only.

    with paypal_emulator(tmp_path / "paypal.log") as em:
        async with em.admin() as admin:
            await admin.advance(1)                    # the batch's items are processed now
            item = (await admin.items(sender_item_id=key))[0]
            await admin.item(item["payout_item_id"], "refund")   # the receiver sends it back
"""

from __future__ import annotations

import json
import secrets
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx

from prizeflow_contracts.rails.paypal import paypal_signature
from prizeflow_paypal_emulator.signing import SigningKey, generate, private_pem
from prizeflow_testkit.processes import Process, free_port

TEST_CLIENT_ID: Final = "AZkit-prizeflow-paypal-client"
WEBHOOK_ID: Final = "8PT597110X687430LKGECATA"


@dataclass
class PayPalEmulator:
    url: str
    client_id: str
    client_secret: str
    process: Process
    signing: SigningKey  # what its webhooks are signed under: a receiver pins `cert_pem`
    webhook_id: str

    @property
    def cert_pem(self) -> str:
        return self.signing.cert_pem.decode()

    def admin(self) -> PayPalAdmin:
        return PayPalAdmin(self.url)

    def signed_delivery(self, event: Mapping[str, Any], *, at: datetime | None = None) -> tuple[dict[str, str], bytes]:
        """An event as `PayPalAdmin.events()` lists it, as PayPal delivers it: its headers and raw body, signed for
        this emulator's webhook under its certificate."""
        body = json.dumps(event["body"]).encode()
        transmission_id, sent = str(uuid.uuid4()), (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {
            "paypal-transmission-id": transmission_id,
            "paypal-transmission-time": sent,
            "paypal-transmission-sig": paypal_signature(
                self.signing.private_key, transmission_id, sent, self.webhook_id, body
            ),
            "paypal-cert-url": f"{self.url}/v1/notifications/certs/{self.signing.cert_id}",
            "paypal-auth-algo": "SHA256withRSA",
            "content-type": "application/json",
        }
        return headers, body


@contextmanager
def paypal_emulator(
    log: Path, *, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> Iterator[PayPalEmulator]:
    """Start the emulator with a fresh signing key and certificate, yield it, stop it (SIGTERM)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = secrets.token_hex(20)
    signing = generate()
    proc = Process(
        [sys.executable, "-m", "prizeflow_paypal_emulator"],
        {
            "PAYPAL_EMULATOR_SIGNING_KEY": private_pem(signing).decode(),
            "PAYPAL_EMULATOR_SIGNING_CERT": signing.cert_pem.decode(),
            "PAYPAL_EMULATOR_PORT": str(port),
            "PAYPAL_EMULATOR_CLIENTS": f"{TEST_CLIENT_ID}:{secret}",
            "PAYPAL_EMULATOR_WEBHOOK_RETRY_BASE_MS": "50",
            "PAYPAL_EMULATOR_PROCESS_MS": "300",
            **(env or {}),
        },
        log,
        url + "/_emulator/health",
    )
    proc.start(timeout=timeout)
    try:
        yield PayPalEmulator(url, TEST_CLIENT_ID, secret, proc, signing, WEBHOOK_ID)
    finally:
        proc.stop(timeout=10)


class PayPalAdminError(AssertionError):
    """The admin API refused a call."""


class PayPalAdmin:
    """Async client of `/_emulator/...` (tools/paypal-emulator/README.md "Admin")."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/") + "/_emulator", timeout=timeout)

    async def __aenter__(self) -> PayPalAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, query: Mapping[str, str] | None = None
    ) -> Any:
        resp = await self._http.request(method, path, json=body, params=dict(query or {}) or None)
        if resp.status_code >= 400:
            raise PayPalAdminError(f"{method} /_emulator{path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def advance(self, seconds: float) -> None:
        """The emulator's clock moved on; what came due (processing, a 30-day return) is done before the answer."""
        await self._call("POST", "/clock/advance", {"seconds": seconds})

    async def fault(
        self, kind: str, *, method: str = "*", path_prefix: str = "/v1/", count: int = 1, delay_ms: int = 30_000
    ) -> None:
        body = {"kind": kind, "method": method, "path_prefix": path_prefix, "count": count, "delay_ms": delay_ms}
        await self._call("POST", "/faults", body)

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def requests(self, *, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        query = {k: v for k, v in {"method": method, "path": path}.items() if v is not None}
        found: list[dict[str, Any]] = (await self._call("GET", "/requests", query=query))["requests"]
        return found

    async def items(self, **query: str) -> list[dict[str, Any]]:
        """Items as the API shows them (`sender_item_id`, `status`, `receiver`), answered during an outage too."""
        doc = await self._call("GET", "/items", query=query)
        found: list[dict[str, Any]] = doc["items"] if isinstance(doc, dict) else doc
        return found

    async def item(self, payout_item_id: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """`release`, `refund`, `reverse`, `return` or `fail` an item now."""
        found: dict[str, Any] = await self._call("POST", f"/items/{payout_item_id}/{action}", body or {})
        return found

    async def events(self, **query: str) -> list[dict[str, Any]]:
        """Events as sent (`event_type`, `subject_id`)."""
        doc = await self._call("GET", "/events", query=query)
        found: list[dict[str, Any]] = doc["events"] if isinstance(doc, dict) else doc
        return found

    async def webhooks(self, **settings: Any) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("POST", "/webhooks", settings)
        return found


def paypal_provider_doc(
    *,
    name: str = "paypal",
    assets: tuple[str, ...] = ("USD",),
    client_id_env: str = "PAYPAL_CLIENT_ID",
    client_secret_env: str = "PAYPAL_CLIENT_SECRET",  # noqa: S107 - a variable's name
    webhook_id_env: str | None = "PAYPAL_WEBHOOK_ID",
    webhook_cert_env: str | None = "PAYPAL_WEBHOOK_CERT",
    **options: Any,
) -> dict[str, Any]:
    """A providers-file entry of the PayPal rail (options override the defaults)."""
    keys = {"client_id": client_id_env, "client_secret": client_secret_env}
    if webhook_id_env is not None and webhook_cert_env is not None:
        keys |= {"webhook_id": webhook_id_env, "webhook_cert": webhook_cert_env}
    return {
        "name": name,
        "type": "paypal",
        "assets": list(assets),
        "destination_types": ["paypal"],
        "secrets": keys,
        "options": {"api_base": "http://paypal-api", "timeout_s": 2.0, "statement_lag_s": 0, **options},
    }


__all__ = [
    "TEST_CLIENT_ID",
    "WEBHOOK_ID",
    "PayPalAdmin",
    "PayPalAdminError",
    "PayPalEmulator",
    "paypal_emulator",
    "paypal_provider_doc",
]
