"""`SorobanRpcClient`: the few Soroban JSON-RPC methods the Stellar provider needs, over one aiohttp session."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import aiohttp
from stellar_sdk import Keypair, StrKey, xdr


class RpcUnavailableError(Exception):
    """No usable answer (connection refused, timeout, 5xx, JSON-RPC error): the outcome of a send is unknown."""


@dataclass(frozen=True, slots=True)
class AccountInfo:
    account_id: str
    sequence: int
    signers: dict[str, int]  # ed25519 key -> weight, the master key included
    med_threshold: int


class SorobanRpcClient:
    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=True)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            await self.start()
        assert self._session is not None
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or {}}
        try:
            async with self._session.post(self.url, json=body) as resp:
                if resp.status >= 500:
                    raise RpcUnavailableError(f"{method}: HTTP {resp.status}")
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise RpcUnavailableError(f"{method}: {type(err).__name__}: {err}") from err
        if not isinstance(doc, dict):
            raise RpcUnavailableError(f"{method}: malformed answer")
        if "error" in doc:
            raise RpcUnavailableError(f"{method}: {doc['error']}")
        return doc.get("result")

    async def send_transaction(self, envelope_xdr: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("sendTransaction", {"transaction": envelope_xdr})
        return result

    async def get_transaction(self, tx_hash: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("getTransaction", {"hash": tx_hash})
        return result

    async def simulate(self, envelope_xdr: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("simulateTransaction", {"transaction": envelope_xdr})
        return result

    async def get_network(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("getNetwork")
        return result

    async def account(self, account_id: str) -> AccountInfo | None:
        """The account entry (sequence, signers, thresholds) from getLedgerEntries; None if it does not exist."""
        key = xdr.LedgerKey(
            type=xdr.LedgerEntryType.ACCOUNT,
            account=xdr.LedgerKeyAccount(account_id=Keypair.from_public_key(account_id).xdr_account_id()),
        )
        result = await self.call("getLedgerEntries", {"keys": [key.to_xdr()]})
        entries = (result or {}).get("entries") or []
        if not entries:
            return None
        data = xdr.LedgerEntryData.from_xdr(entries[0]["xdr"])
        entry = data.account
        if entry is None:
            return None
        thresholds = entry.thresholds.thresholds
        signers = {account_id: thresholds[0]} if thresholds[0] else {}
        for s in entry.signers:
            if s.key.ed25519 is not None:
                signers[StrKey.encode_ed25519_public_key(s.key.ed25519.uint256)] = s.weight.uint32
        return AccountInfo(account_id, entry.seq_num.sequence_number.int64, signers, thresholds[2])


__all__ = ["AccountInfo", "RpcUnavailableError", "SorobanRpcClient"]
