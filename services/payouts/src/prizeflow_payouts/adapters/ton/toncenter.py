"""`ToncenterClient`: the TON HTTP API calls a sender needs (toncenter v2 shape), every failure classified.

A failure is a `TonApiError` with a stable `PayoutErrorCode`: `rate_limited` (429), `authentication_failed`
(401/403), `provider_unavailable` (5xx other than a refused message, connection errors), `timeout_unknown_outcome`
(no answer in time: for sendBoc the message may have been accepted), `tx_bad_seq` / `tx_expired` (the wallet
refused the external message: exit code 33 / 36), `signature_refused` (exit code 35/34: not our key or
subwallet), `invalid_request` (4xx).

How fresh the node's view is (what a "never landed" verdict needs, see `masterchain_time`): toncenter v2's
`getMasterchainInfo` answers `{"@type": "blocks.masterchainInfo", "last": <ton.blockIdExt>, "init": ...,
"state_root_hash": ...}` where a `ton.blockIdExt` is `{"workchain", "shard" (a decimal string), "seqno",
"root_hash", "file_hash" (base64)}`; `getBlockHeader?workchain=&shard=&seqno=[&root_hash=&file_hash=]` answers a
`blocks.header` whose `gen_utime` (unix seconds) is the block's time; a `runGetMethod` answer (`smc.runResult`)
carries `block_id` (a `ton.blockIdExt`) and `last_transaction_id` besides `gas_used`, `stack`, `exit_code`.
Sources: docs.ton.org "Get masterchain info" (ecosystem/api/toncenter/v2/blocks), the toncenter v2 pages of
QuickNode (getMasterchainInfo, getBlockHeader, runGetMethod: `block_id` in the result) and Chainstack
(getBlockHeader parameters), ton4j's toncenter `MasterchainInfoResponse` / `BlockHeaderResponse`. Not confirmed:
whether `block_id` of a get-method answer names the masterchain block or the account's shard block; either way
its `gen_utime` is the time of the state the answer was read from, so it is read with `getBlockHeader` and never
taken for anything else (conservative: a missing or unreadable `block_id` proves nothing, the masterchain time
read before it is relied on instead).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import aiohttp

from prizeflow_contracts.errors import PayoutErrorCode

C = PayoutErrorCode
T = TypeVar("T")
_EXIT_CODE: Final = re.compile(r"exit ?code[=: ]+(-?\d+)", re.IGNORECASE)
_EXIT_CODES: Final = {33: C.TX_BAD_SEQ, 36: C.TX_EXPIRED, 35: C.SIGNATURE_REFUSED, 34: C.SIGNATURE_REFUSED}
# What a `tryLocate*` answer says when the transaction is not (yet) there: ton-http-api raises "Tx not found"
# when none of the blocks after `created_lt` holds it, and a lookup of a block past the node's last answers
# "... not in db". Anything else is a failure like any other call's.
_NOT_LOCATED: Final = re.compile(r"not found|not in db", re.IGNORECASE)
_NOT_LOCATED_STATUSES: Final = frozenset({404, 500, 503, 504})  # never 401/403/429: those are refusals


class TonApiError(Exception):
    """`code` is read as wallet v4r2's exit codes; `exit_code` is the wallet's own number (a highload wallet v3
    numbers its refusals differently: its driver reads that)."""

    def __init__(
        self, code: PayoutErrorCode, message: str, *, status: int | None = None, exit_code: int | None = None
    ) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.exit_code = exit_code


def api_error(status: int, error: str) -> TonApiError:
    """The stable code of a toncenter error answer."""
    if status == 429:
        return TonApiError(C.RATE_LIMITED, "rate limited", status=status)
    if status in (401, 403):
        return TonApiError(C.AUTHENTICATION_FAILED, "the TON API refused the API key", status=status)
    match = _EXIT_CODE.search(error)
    exit_code = int(match.group(1)) if match is not None else None
    if exit_code is not None and exit_code in _EXIT_CODES:
        code = _EXIT_CODES[exit_code]
        return TonApiError(
            code, f"external message not accepted (exit code {exit_code})", status=status, exit_code=exit_code
        )
    if status >= 500:
        return TonApiError(C.PROVIDER_UNAVAILABLE, f"TON API {status}", status=status, exit_code=exit_code)
    return TonApiError(C.INVALID_REQUEST, f"TON API {status}: {error[:200]}", status=status, exit_code=exit_code)


@dataclass(frozen=True, slots=True)
class ChainMessage:
    hash: str  # hex
    source: str
    destination: str
    value: int
    body: str = ""  # base64 BOC of the message body (`msg_data.body` of a `msg.dataRaw`), "" when none shown
    created_lt: int = 0  # the logical time the message was created at (0: not shown, e.g. an external message)
    comment: str = ""  # a text comment (`message`, or a `msg.dataText`'s text), "" when none


@dataclass(frozen=True, slots=True)
class ChainTx:
    lt: int
    hash: str  # hex
    utime: int
    in_msg: ChainMessage | None
    out_msgs: tuple[ChainMessage, ...]
    fee: int = 0  # nanotons the account paid (`fee`: total fees)


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()


def _message(doc: Any) -> ChainMessage | None:
    if not isinstance(doc, dict) or not doc.get("hash"):
        return None
    data = doc.get("msg_data")
    body = str(data.get("body") or "") if isinstance(data, dict) and data.get("@type") == "msg.dataRaw" else ""
    comment = doc.get("message") if isinstance(doc.get("message"), str) else ""
    if not comment and isinstance(data, dict) and data.get("@type") == "msg.dataText":
        try:
            comment = base64.b64decode(str(data.get("text") or "")).decode()
        except (ValueError, UnicodeDecodeError):
            comment = ""
    return ChainMessage(
        hash=_hex(str(doc["hash"])),
        source=str(doc.get("source") or ""),
        destination=str(doc.get("destination") or ""),
        value=int(doc.get("value") or 0),
        body=body,
        created_lt=int(doc.get("created_lt") or 0),
        comment=str(comment),
    )


def _tx(doc: dict[str, Any]) -> ChainTx:
    tid = doc.get("transaction_id") or {}
    outs = tuple(m for m in (_message(o) for o in doc.get("out_msgs") or []) if m is not None)
    return ChainTx(
        lt=int(tid.get("lt", 0)),
        hash=_hex(str(tid.get("hash", ""))),
        utime=int(doc.get("utime", 0)),
        in_msg=_message(doc.get("in_msg")),
        out_msgs=outs,
        fee=int(doc.get("fee") or 0),
    )


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A `ton.blockIdExt`: the block a node answered from (hashes base64, as toncenter shows them)."""

    workchain: int
    shard: str
    seqno: int
    root_hash: str = ""
    file_hash: str = ""


@dataclass(frozen=True, slots=True)
class StateRead(Generic[T]):
    """A get-method's value and the `gen_utime` of the block its answer names (None: it names none)."""

    value: T
    block_time: int | None


def block_ref(doc: Any) -> BlockRef | None:
    """A `ton.blockIdExt` document, or None when it is not one."""
    if not isinstance(doc, dict):
        return None
    try:
        return BlockRef(
            workchain=int(doc["workchain"]),
            shard=str(int(str(doc["shard"]))),
            seqno=int(doc["seqno"]),
            root_hash=str(doc.get("root_hash") or ""),
            file_hash=str(doc.get("file_hash") or ""),
        )
    except (KeyError, TypeError, ValueError):
        return None


def last_block(info: Any) -> BlockRef:
    """The `last` masterchain block of a `getMasterchainInfo` answer."""
    last = block_ref(info.get("last")) if isinstance(info, dict) else None
    if last is None or last.workchain != -1:
        raise TonApiError(C.PROVIDER_UNAVAILABLE, "getMasterchainInfo answered no masterchain block")
    return last


def gen_utime(header: Any, block: BlockRef) -> int:
    """The `gen_utime` of a `getBlockHeader` answer, checked to be the block asked for."""
    if not isinstance(header, dict):
        raise TonApiError(C.PROVIDER_UNAVAILABLE, "getBlockHeader answered no header")
    shown = block_ref(header.get("id"))
    if shown is not None and (shown.workchain, shown.seqno) != (block.workchain, block.seqno):
        raise TonApiError(C.PROVIDER_UNAVAILABLE, "getBlockHeader answered another block")
    try:
        t = int(header["gen_utime"])
    except (KeyError, TypeError, ValueError):
        raise TonApiError(C.PROVIDER_UNAVAILABLE, "getBlockHeader answered no gen_utime") from None
    if t <= 0:
        raise TonApiError(C.PROVIDER_UNAVAILABLE, "getBlockHeader answered no gen_utime")
    return t


def get_method_stack(result: Any, method: str) -> list[Any]:
    """The stack of a successful `smc.runResult`."""
    if not isinstance(result, dict) or int(result.get("exit_code", 0)) != 0:
        code = result.get("exit_code") if isinstance(result, dict) else None
        raise TonApiError(C.PROVIDER_UNAVAILABLE, f"{method} get-method exited {code}")
    stack = result.get("stack")
    if not isinstance(stack, list) or not stack:
        raise TonApiError(C.PROVIDER_UNAVAILABLE, f"{method} get-method answered an empty stack")
    return stack


def stack_int(entry: Any) -> int:
    if not isinstance(entry, list) or len(entry) != 2 or entry[0] != "num":
        raise TonApiError(C.PROVIDER_UNAVAILABLE, "a get-method answered a non-number")
    return int(str(entry[1]), 16)


class ToncenterClient:
    def __init__(self, base_url: str, *, api_key: str | None, timeout_s: float) -> None:
        self.base_url = base_url
        self._headers = {"X-API-Key": api_key} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers, trust_env=True)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, *, unknown_outcome: bool, absent: re.Pattern[str] | None = None, **kw: Any
    ) -> Any:
        """The `result` of an ok answer; with `absent`, None for an error answer (`ok: false`, a status in
        `_NOT_LOCATED_STATUSES`) whose text matches it: "nothing there", not a failure."""
        await self.start()
        assert self._session is not None
        try:
            async with self._session.request(method, f"{self.base_url}/api/v2/{path}", **kw) as resp:
                try:
                    doc = await resp.json(content_type=None)
                except ValueError:
                    doc = None
                if resp.status == 200 and isinstance(doc, dict) and doc.get("ok"):
                    return doc.get("result")
                error = str(doc.get("error", "")) if isinstance(doc, dict) else ""
                if (
                    absent is not None
                    and isinstance(doc, dict)
                    and doc.get("ok") is False
                    and resp.status in _NOT_LOCATED_STATUSES
                    and absent.search(error)
                ):
                    return None
                err = api_error(resp.status, error)
                if unknown_outcome and resp.status in (502, 504):
                    raise TonApiError(C.TIMEOUT_UNKNOWN_OUTCOME, f"TON API {resp.status} after sending", status=502)
                raise err
        except TimeoutError as e:
            code = C.TIMEOUT_UNKNOWN_OUTCOME if unknown_outcome else C.PROVIDER_UNAVAILABLE
            raise TonApiError(code, f"no answer from the TON API in {self._timeout.total}s") from e
        except aiohttp.ClientError as e:
            code = C.TIMEOUT_UNKNOWN_OUTCOME if unknown_outcome else C.PROVIDER_UNAVAILABLE
            raise TonApiError(code, f"TON API unreachable ({type(e).__name__})") from e

    async def send_boc(self, boc: str) -> str:
        """Send an external message; returns its hash (hex). The same message may be sent again."""
        result = await self._call("POST", "sendBocReturnHash", json={"boc": boc}, unknown_outcome=True)
        return _hex(str(result["hash"]))

    async def _run_get_method(self, address: str, method: str, stack: list[Any]) -> Any:
        return await self._call(
            "POST",
            "runGetMethod",
            json={"address": address, "method": method, "stack": stack},
            unknown_outcome=False,
        )

    async def _read(self, result: Any, value: T) -> StateRead[T]:
        block = block_ref(result.get("block_id")) if isinstance(result, dict) else None
        return StateRead(value, await self.block_time(block) if block is not None else None)

    async def seqno(self, address: str) -> int:
        """The wallet's seqno (no block time read: for building, not for a verdict)."""
        return stack_int(get_method_stack(await self._run_get_method(address, "seqno", []), "seqno")[0])

    async def seqno_at(self, address: str) -> StateRead[int]:
        """The wallet's seqno and the time of the block the answer was read from (`block_id`, when named)."""
        result = await self._run_get_method(address, "seqno", [])
        return await self._read(result, stack_int(get_method_stack(result, "seqno")[0]))

    async def processed(self, address: str, query_id: int) -> bool:
        """`processed?` without the block time (see `processed_at`)."""
        result = await self._run_get_method(address, "processed?", [["num", hex(query_id)], ["num", "0x0"]])
        return stack_int(get_method_stack(result, "processed?")[0]) != 0

    async def processed_at(self, address: str, query_id: int) -> StateRead[bool]:
        """A highload wallet v3's `processed?(query_id, need_clean = false)`: is the query id in its stored
        processed sets (a message with it landed and was not rotated out yet); with the time of the block the
        answer was read from (`block_id`, when named)."""
        result = await self._run_get_method(address, "processed?", [["num", hex(query_id)], ["num", "0x0"]])
        return await self._read(result, stack_int(get_method_stack(result, "processed?")[0]) != 0)

    async def block_time(self, block: BlockRef) -> int:
        """`gen_utime` of a block (`getBlockHeader`)."""
        params = {"workchain": str(block.workchain), "shard": block.shard, "seqno": str(block.seqno)}
        if block.root_hash and block.file_hash:
            params |= {"root_hash": block.root_hash, "file_hash": block.file_hash}
        header = await self._call("GET", "getBlockHeader", params=params, unknown_outcome=False)
        return gen_utime(header, block)

    async def masterchain_time(self) -> int:
        """The `gen_utime` of the node's latest masterchain block (`getMasterchainInfo`, then `getBlockHeader`):
        everything the node answers after this is read from a state at least that recent (a node never goes
        backwards). Behind the chain by a stuck liteserver or a lagging load-balanced backend: this shows it."""
        last = last_block(await self._call("GET", "getMasterchainInfo", unknown_outcome=False))
        return await self.block_time(last)

    async def transactions(
        self, address: str, *, limit: int = 20, lt: int | None = None, tx_hash: str | None = None
    ) -> list[ChainTx]:
        """Newest first; with `lt` and `tx_hash` (hex), from that transaction (inclusive) back."""
        params = {"address": address, "limit": str(limit)}
        if lt is not None and tx_hash is not None:
            params |= {"lt": str(lt), "hash": tx_hash}
        result = await self._call("GET", "getTransactions", params=params, unknown_outcome=False)
        return [_tx(t) for t in result or []]

    async def locate_result(self, source: str, destination: str, created_lt: int) -> ChainTx | None:
        """The transaction of `destination` that processed the message `source` sent it, created at logical time
        `created_lt` (toncenter v2 `tryLocateResultTx`: it looks in the blocks from that lt on, O(1) in the
        destination's history); None while it is not found. A failure (unreachable, 5xx other than "not found",
        rate limited) is a TonApiError as for every call. Not confirmed: the exact status toncenter answers "not
        found" with (ton-http-api raises "Tx not found"; the status its error handler gives it is not documented),
        hence the match on the text. Either way nothing is concluded from a None or an error: the caller waits."""
        params = {"source": source, "destination": destination, "created_lt": str(created_lt)}
        result = await self._call("GET", "tryLocateResultTx", params=params, unknown_outcome=False, absent=_NOT_LOCATED)
        if not isinstance(result, dict) or result.get("@type", "raw.transaction") != "raw.transaction":
            return None
        return _tx(result)


__all__ = [
    "BlockRef",
    "ChainMessage",
    "ChainTx",
    "StateRead",
    "TonApiError",
    "ToncenterClient",
    "api_error",
    "block_ref",
    "gen_utime",
    "get_method_stack",
    "last_block",
    "stack_int",
]
