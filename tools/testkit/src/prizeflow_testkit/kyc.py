"""The identity-verification emulator (tools/kyc-emulator, Sumsub-shaped) as a real process on a free port, and an
async client of its `/_emulator` test controls. Imported by tests only.

    with kyc_emulator(tmp_path / "kyc.log") as em:
        async with em.admin() as admin:
            await admin.submit(applicant_id, first_name="Ann", last_name="Lee", dob="1990-01-02", country="DEU")
            await admin.review(applicant_id, "RED", reject_type="RETRY")
            ...
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from prizeflow_testkit.processes import Process, free_port

# The emulator's fixed test pair (not credentials: the emulator accepts whatever it is started with).
TEST_APP_TOKEN = "sbx:prizeflow-kyc-emulator-app-token"  # noqa: S105
TEST_SECRET_KEY = "prizeflow-kyc-emulator-secret-key"  # noqa: S105
TEST_LEVEL = "basic-kyc-level"


@dataclass
class KycEmulator:
    url: str
    app_token: str
    secret_key: str
    level: str
    process: Process

    def admin(self) -> KycAdmin:
        return KycAdmin(self.url)


@contextmanager
def kyc_emulator(
    log: Path,
    *,
    app_token: str = TEST_APP_TOKEN,
    secret_key: str = TEST_SECRET_KEY,
    level: str = TEST_LEVEL,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[KycEmulator]:
    """Start the emulator (no review by itself unless `env` sets KYC_EMULATOR_AUTO_REVIEW), yield it, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        [sys.executable, "-m", "prizeflow_kyc_emulator"],
        {
            "KYC_EMULATOR_PORT": str(port),
            "KYC_EMULATOR_APP_TOKEN": app_token,
            "KYC_EMULATOR_SECRET_KEY": secret_key,
            "KYC_EMULATOR_LEVELS": level,
            "KYC_EMULATOR_AUTO_REVIEW": "none",
            "KYC_EMULATOR_WEBHOOK_RETRY_BASE_MS": "50",
            **(env or {}),
        },
        log,
        url + "/_emulator/health",
    )
    proc.start(timeout=timeout)
    try:
        yield KycEmulator(url, app_token, secret_key, level, proc)
    finally:
        proc.stop(timeout=10)


class KycAdminError(AssertionError):
    """The test controls refused a call."""


class KycAdmin:
    """Async client of `/_emulator/...` (see tools/kyc-emulator/README.md)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/") + "/_emulator", timeout=timeout)

    async def __aenter__(self) -> KycAdmin:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, query: dict[str, str] | None = None
    ) -> Any:
        resp = await self._http.request(method, path, json=body, params=query or None)
        if resp.status_code >= 400:
            raise KycAdminError(f"{method} /_emulator{path}: {resp.status_code} {resp.text}")
        return resp.json()

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def applicants(self, external_user_id: str | None = None) -> list[dict[str, Any]]:
        query = {"externalUserId": external_user_id} if external_user_id else None
        result: list[dict[str, Any]] = (await self._call("GET", "/applicants", query=query))["applicants"]
        return result

    async def submit(
        self,
        applicant_id: str,
        *,
        first_name: str,
        last_name: str,
        dob: str,
        country: str,
        number: str = "X1234567",
        review: bool = True,
    ) -> dict[str, Any]:
        """The player's identity submitted, as the hosted flow does (pending; `review=False`: no auto review)."""
        body = {
            "firstName": first_name,
            "lastName": last_name,
            "dob": dob,
            "country": country,
            "number": number,
            "review": review,
        }
        result: dict[str, Any] = await self._call("POST", f"/applicants/{applicant_id}/identity", body)
        return result

    async def review(
        self, applicant_id: str, answer: str, *, reject_type: str | None = None, labels: list[str] | None = None
    ) -> dict[str, Any]:
        """GREEN, or RED with reject_type RETRY or FINAL."""
        body: dict[str, Any] = {"answer": answer, "reject_type": reject_type}
        if labels is not None:
            body["labels"] = labels
        result: dict[str, Any] = await self._call("POST", f"/applicants/{applicant_id}/review", body)
        return result

    async def hold(self, applicant_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/applicants/{applicant_id}/hold")
        return result

    async def reset_applicant(self, applicant_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/applicants/{applicant_id}/reset")
        return result

    async def auto_review(self, outcome: str, *, delay_ms: int = 0) -> None:
        """green, red_retry, red_final or none, for applicants submitted from now on."""
        await self._call("POST", "/auto_review", {"outcome": outcome, "delay_ms": delay_ms})

    async def fault(
        self, kind: str, *, method: str = "*", path_prefix: str = "/resources/", count: int = 1, delay_ms: int = 30_000
    ) -> dict[str, Any]:
        """server_error, rate_limit, connection_reset or timeout_after_success for the next `count` calls."""
        body = {"kind": kind, "method": method, "path_prefix": path_prefix, "count": count, "delay_ms": delay_ms}
        result: dict[str, Any] = await self._call("POST", "/faults", body)
        return result

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def requests(self, *, method: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (
            await self._call("GET", "/requests", query={"method": method} if method else None)
        )["requests"]
        return result

    async def events(self, *, type: str | None = None, applicant_id: str | None = None) -> list[dict[str, Any]]:
        query = {k: v for k, v in {"type": type, "applicantId": applicant_id}.items() if v is not None}
        result: list[dict[str, Any]] = (await self._call("GET", "/events", query=query))["events"]
        return result

    async def redeliver(self, correlation_id: str) -> None:
        await self._call("POST", f"/events/{correlation_id}/deliver")

    async def webhooks(
        self, *, url: str | None = None, secret: str | None = None, alg: str | None = None, enabled: bool | None = None
    ) -> dict[str, Any]:
        """Where webhooks go, signed how; `enabled=False` keeps events, `True` sends what was kept."""
        body = {
            k: v for k, v in {"url": url, "secret": secret, "alg": alg, "enabled": enabled}.items() if v is not None
        }
        result: dict[str, Any] = await self._call("POST", "/webhooks", body)
        return result

    async def deliveries(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/webhooks")
        return result


__all__ = [
    "TEST_APP_TOKEN",
    "TEST_LEVEL",
    "TEST_SECRET_KEY",
    "KycAdmin",
    "KycAdminError",
    "KycEmulator",
    "kyc_emulator",
]
