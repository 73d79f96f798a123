"""A tiny synchronous JSON-RPC client for the emulator (tests, scripts, the payouts test-suite)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class EmulatorError(RuntimeError):
    """A JSON-RPC error object returned by the server."""


class Rpc:
    """Calls `method(params)` and returns `result`, or raises EmulatorError."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the emulator is reached over http(s), got {url!r}")
        self.url = url
        self._id = 0

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 10) -> Any:
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or {}}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})  # noqa: S310 - http(s) only, checked above
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
            doc = json.loads(resp.read())
        if "error" in doc:
            raise EmulatorError(doc["error"])
        return doc["result"]

    def discrepancy(self, body: dict[str, Any], *, timeout: float = 10) -> str | None:
        """`POST /_emulator/discrepancies`: the statement line id it created or changed (None for `missing`)."""
        base = self.url.removesuffix("/").removesuffix("/rpc")
        req = urllib.request.Request(  # noqa: S310 - http(s) only, checked in __init__
            f"{base}/_emulator/discrepancies", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
                line_id: str | None = json.loads(resp.read())["line_id"]
        except urllib.error.HTTPError as err:
            raise EmulatorError(f"{err.code}: {err.read().decode(errors='replace')}") from err
        return line_id


__all__ = ["EmulatorError", "Rpc"]
