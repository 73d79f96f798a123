"""Small synchronous clients of the emulator (tests, scripts, benches, the payouts test-suite): `Rpc` speaks the
Soroban JSON-RPC; its `admin` drives the emulator through `/_emulator/...` (the emulator kit's admin routes)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from prizeflow_emulator_kit.client import AdminCallError, AdminClient


class EmulatorError(RuntimeError):
    """A JSON-RPC error object returned by the server, or an admin route's refusal."""


class SorobanAdmin:
    """`/_emulator/...`: accounts, faults, the payments applied, the ledger clock, statistics, discrepancies."""

    def __init__(self, url: str, *, timeout: float = 10) -> None:
        self._client = AdminClient(url.rstrip("/").removesuffix("/rpc"), timeout=timeout)

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, query: dict[str, str] | None = None
    ) -> Any:
        try:
            return self._client.call(method, path, body, query=query)
        except AdminCallError as err:
            raise EmulatorError(str(err)) from err

    def create_account(
        self,
        account: str,
        *,
        balances: dict[str, str] | None = None,
        signers: dict[str, int] | None = None,
        master_weight: int | None = None,
        med_threshold: int | None = None,
        sequence: int | None = None,
    ) -> dict[str, Any]:
        """Create or top up `account`: `balances` per asset code (a key creates the trustline), `signers` (weight 0
        removes one)."""
        optional = {
            "signers": signers,
            "masterWeight": master_weight,
            "medThreshold": med_threshold,
            "sequence": sequence,
        }
        body = {"account": account, "balances": balances or {}, **{k: v for k, v in optional.items() if v is not None}}
        created: dict[str, Any] = self._call("POST", "/accounts", body)
        return created

    def account(self, account: str) -> dict[str, Any] | None:
        """Sequence, balances (stroops) and signers; None when there is no such account."""
        try:
            found: dict[str, Any] = self._client.call("GET", f"/accounts/{account}")
        except AdminCallError as err:
            if err.status == 404:
                return None
            raise EmulatorError(str(err)) from err
        return found

    def set_faults(self, **knobs: Any) -> dict[str, Any]:
        """Change any subset of the fault knobs (all checked first); the knobs in force."""
        changed: dict[str, Any] = self._call("POST", "/faults", knobs)
        return changed

    def faults(self) -> dict[str, Any]:
        knobs: dict[str, Any] = self._call("GET", "/faults")
        return knobs

    def payments(
        self, *, destination: str | None = None, tx_hash: str | None = None, asset: str | None = None
    ) -> list[dict[str, Any]]:
        """Every movement the ledger applied (optionally to `destination`, of `tx_hash`, in `asset`)."""
        query = {k: v for k, v in {"destination": destination, "txHash": tx_hash, "asset": asset}.items() if v}
        paid: list[dict[str, Any]] = self._call("GET", "/payments", query=query)
        return paid

    def close_ledger(self) -> dict[str, Any]:
        """Close one ledger now: its sequence and how many transactions it included."""
        closed: dict[str, Any] = self._call("POST", "/ledgers/close")
        return closed

    def set_ledger_interval(self, ms: int) -> dict[str, Any]:
        changed: dict[str, Any] = self._call("POST", "/ledgers/interval", {"ms": ms})
        return changed

    def stats(self) -> dict[str, Any]:
        """The ledger's sequence, the mempool's size, counters (statuses, faults fired, ledgers closed)."""
        stats: dict[str, Any] = self._call("GET", "/stats")
        return stats

    def discrepancy(self, body: dict[str, Any]) -> str | None:
        """`POST /_emulator/discrepancies`: the statement line id it created or changed (None for `missing`)."""
        line_id: str | None = self._call("POST", "/discrepancies", body)["line_id"]
        return line_id


class Rpc:
    """Calls `method(params)` and returns `result`, or raises EmulatorError."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the emulator is reached over http(s), got {url!r}")
        self.url = url
        self.admin = SorobanAdmin(url)
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


__all__ = ["EmulatorError", "Rpc", "SorobanAdmin"]
