"""`getTransactions`: the network's transactions in application order, paged by cursor, as Stellar RPC lists them.

Stellar RPC (protocol 22) answers `{"transactions": [...], "latestLedger", "latestLedgerCloseTimestamp",
"oldestLedger", "oldestLedgerCloseTimestamp", "cursor"}`; each transaction has `status`, `txHash`,
`applicationOrder` (1-based, within its ledger), `feeBump`, `envelopeXdr`, `resultXdr`, `resultMetaXdr`, `ledger`
and `createdAt` (the ledger's close time, unix seconds). A request names `startLedger` or
`pagination.cursor` (not both) and `pagination.limit` (default 50, at most 200). The cursor is the TOID of the last
transaction returned: `ledger << 32 | applicationOrder << 12`.
"""

from __future__ import annotations

import bisect
from typing import Any, Final

from stellar_sdk import xdr

from prizeflow_soroban_emulator.ledger import Ledger, Outcome, RpcError

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200


def toid(ledger: int, order: int) -> int:
    return (ledger << 32) | (order << 12)


def _listed_result(outcome: Outcome) -> str:
    if not outcome.listed_fee_extra:
        return outcome.result_xdr
    result = xdr.TransactionResult.from_xdr(outcome.result_xdr)
    result.fee_charged = xdr.Int64(result.fee_charged.int64 + outcome.listed_fee_extra)
    return str(result.to_xdr())


def _entry(tx_hash: str, outcome: Outcome, order: int) -> dict[str, Any]:
    return {
        "status": outcome.status.value,
        "txHash": tx_hash,
        "applicationOrder": order,
        "feeBump": False,
        "envelopeXdr": outcome.listed_envelope_xdr or outcome.envelope_xdr,
        "resultXdr": _listed_result(outcome),
        "resultMetaXdr": "",
        "ledger": outcome.ledger,
        "createdAt": outcome.created_at,
    }


def _ordered(ledger: Ledger) -> list[tuple[int, int, str, Outcome]]:
    """Every landed transaction as (ledger, application order in it, hash, outcome); outcomes are kept in the
    order they were applied, ledger after ledger."""
    out: list[tuple[int, int, str, Outcome]] = []
    last, order = 0, 0
    for tx_hash, outcome in ledger.outcomes.items():
        order = order + 1 if outcome.ledger == last else 1
        last = outcome.ledger
        out.append((outcome.ledger, order, tx_hash, outcome))
    return out


def transactions_page(ledger: Ledger, params: dict[str, Any]) -> dict[str, Any]:
    pagination = params.get("pagination") or {}
    if not isinstance(pagination, dict):
        raise RpcError(-32602, "pagination must be an object")
    limit = pagination.get("limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise RpcError(-32602, f"limit must be between 1 and {MAX_LIMIT}")
    cursor = pagination.get("cursor")
    start = params.get("startLedger")
    oldest, latest = ledger.oldest_ledger(), ledger.sequence
    rows = _ordered(ledger)
    keys = [toid(led, order) for led, order, _, _ in rows]
    if cursor is not None:
        if start is not None:
            raise RpcError(-32602, "startLedger and cursor cannot both be set")
        try:
            after = int(str(cursor))
        except ValueError as err:
            raise RpcError(-32602, f"invalid cursor {cursor!r}") from err
        first = bisect.bisect_right(keys, after)
    else:
        if not isinstance(start, int) or isinstance(start, bool):
            raise RpcError(-32602, "startLedger or pagination.cursor is required")
        if not oldest <= start <= latest:
            raise RpcError(
                -32600, f"start ledger must be between the oldest ledger: {oldest} and the latest ledger: {latest}"
            )
        first = bisect.bisect_left(keys, toid(start, 0))
    page = [r for r in rows[first:] if r[0] >= oldest and not r[3].hidden][:limit]
    if page:
        next_cursor = str(toid(page[-1][0], page[-1][1]))
    elif cursor is not None:
        next_cursor = str(cursor)
    else:
        next_cursor = str(toid(start, 0))  # type: ignore[arg-type]  # start is an int here
    return {
        "transactions": [_entry(h, o, order) for _, order, h, o in page],
        "latestLedger": latest,
        "latestLedgerCloseTimestamp": ledger.close_time,
        "oldestLedger": oldest,
        "oldestLedgerCloseTimestamp": ledger.ledger_time(oldest),
        "cursor": next_cursor,
    }


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "toid", "transactions_page"]
