"""A small synchronous client of an emulator's `/_emulator/...` routes (tests, harnesses, benches and scripts call
them between awaits)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from prizeflow_emulator_kit.admin import PREFIX


class AdminCallError(RuntimeError):
    """The admin route refused the call: its status and its answer."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class AdminClient:
    def __init__(self, url: str, *, timeout: float = 10) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the emulator is reached over http(s), got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, query: Mapping[str, str] | None = None
    ) -> Any:
        """`method /_emulator<path>?query` with a JSON body; the JSON answer, or AdminCallError."""
        target = f"{self.url}{PREFIX}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(target, data, {"Content-Type": "application/json"}, method=method)  # noqa: S310 - http(s) only, checked in __init__
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) only, checked in __init__
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise AdminCallError(err.code, err.read().decode(errors="replace")) from err


__all__ = ["AdminCallError", "AdminClient"]
