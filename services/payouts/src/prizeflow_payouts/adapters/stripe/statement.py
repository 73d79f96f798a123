"""The Stripe rail's statement: the platform's balance transactions (`GET /v1/balance_transactions`), normalized.

Why balance transactions and not transfers + reversals: they are Stripe's ledger of the platform balance, the
money Prizeflow holds at Stripe. Every movement is one there (a transfer out, a reversal back, a fee, a top-up, a
dispute), each with the fee Stripe took on it (`fee`, `fee_details`), so one listing shows everything that moved
our money, and their sum is the balance movement the ledger's clearing account must equal. Listing transfers
would miss fees and anything that is not a transfer; the connected accounts' payouts are the players' money (in
`transfer_and_payout` mode a failed bank payout comes back to the platform as a transfer reversal, which is here).

Each balance transaction is asked for with its source expanded (`expand[]=data.source`, and
`data.source.transfer` for a reversal's transfer), so the transfer's `metadata.idempotency_key` (our key), its
`destination` and its id are on the line without a call per line. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from prizeflow_contracts.providers import StatementLine, StatementLineKind

K = StatementLineKind

EXPAND: Final = ("data.source", "data.source.transfer")
# Balance transaction types that are Stripe charging us (`amount` negative), with no transfer of ours behind them.
FEE_TYPES: Final = frozenset({"stripe_fee", "stripe_fx_fee", "tax_fee", "application_fee"})
# Money of a transfer of ours coming back to the platform: a reversal, a transfer that failed or was cancelled.
RETURN_TYPES: Final = frozenset({"transfer_refund", "transfer_cancel", "transfer_failure"})


def window(since: datetime, until: datetime) -> dict[str, int]:
    """Stripe's `created` filter for [since, until): `created` is whole seconds, so t >= since iff
    t >= ceil(since) and t < until iff t < ceil(until)."""
    return {"gte": math.ceil(since.timestamp()), "lt": math.ceil(until.timestamp())}


def asset_of(currency: str, currencies: Mapping[str, str]) -> str:
    """Our asset code for Stripe's currency; the currency itself (upper case) when no asset of this provider has it,
    never another asset's code: a line in a currency we do not pay must not be counted as one we do."""
    lowered = currency.lower()
    return next((asset for asset, cur in currencies.items() if cur == lowered), currency.upper())


def lines_of(bt: Mapping[str, Any], currencies: Mapping[str, str]) -> list[StatementLine]:
    """The statement lines of one balance transaction: a transfer is a PAYOUT line (plus a FEE line when Stripe
    charged a fee on it), a reversal or a failed/cancelled transfer a REVERSAL line, a Stripe fee a FEE line (a fee
    Stripe refunded a CREDIT line), and anything else a DEBIT line when it took money from the balance (a bank payout
    of it, a refund, an adjustment, a dispute), else a CREDIT line (a top-up). Amounts are positive; the kind says
    the direction."""
    bid, type_ = str(bt["id"]), str(bt.get("type") or "")
    asset = asset_of(str(bt.get("currency") or ""), currencies)
    occurred = datetime.fromtimestamp(int(bt["created"]), UTC)
    amount = int(bt["amount"])
    fee = int(bt.get("fee") or 0)
    source = bt.get("source")
    transfer = _transfer_behind(source)
    reference = _meta(transfer, "idempotency_key") or _meta(source, "idempotency_key")
    provider_ref = str(transfer["id"]) if transfer is not None else None
    destination = str(transfer["destination"]) if transfer is not None and transfer.get("destination") else None
    ours: dict[str, Any] = {"reference": reference, "provider_ref": provider_ref}
    # Each kind only with the sign it has: a transfer that added to the balance, a "return" that took from it or a
    # "fee" that paid us is money moving the other way, a CREDIT or DEBIT by its sign, never a negative line.
    if type_ == "transfer" and amount < 0:
        kind, line_amount, extra = K.PAYOUT, -amount, {**ours, "destination": destination}
    elif type_ in RETURN_TYPES and amount > 0:
        kind, line_amount, extra = K.REVERSAL, amount, {**ours, "destination": destination}
    elif type_ in FEE_TYPES and amount < 0:
        kind, line_amount, extra = K.FEE, -amount, {}
    else:
        kind = K.DEBIT if amount < 0 else K.CREDIT
        line_amount, extra = abs(amount), {"provider_ref": _id(source)}
    out = [
        StatementLine(
            line_id=bid, kind=kind, occurred_at=occurred, asset=asset, amount=line_amount, raw_type=type_, **extra
        )
    ]
    if fee > 0:
        kinds = ",".join(sorted({str(d.get("type")) for d in bt.get("fee_details") or [] if d.get("type")}))
        out.append(
            StatementLine(
                line_id=f"{bid}:fee",
                kind=K.FEE,
                occurred_at=occurred,
                asset=asset,
                amount=fee,
                raw_type=f"{type_}:fee:{kinds or 'fee'}"[:128],
                **ours,
            )
        )
    return out


def _transfer_behind(source: Any) -> Mapping[str, Any] | None:
    """The transfer a balance transaction's (expanded) source is, or belongs to (a reversal's transfer)."""
    if not isinstance(source, Mapping):
        return None
    if source.get("object") == "transfer":
        return source
    transfer = source.get("transfer")
    if source.get("object") == "transfer_reversal" and isinstance(transfer, Mapping):
        return transfer
    return None


def _meta(obj: Any, key: str) -> str | None:
    if not isinstance(obj, Mapping):
        return None
    value = (obj.get("metadata") or {}).get(key)
    return str(value)[:256] if value else None


def _id(source: Any) -> str | None:
    if isinstance(source, Mapping):
        return str(source.get("id")) if source.get("id") else None
    return str(source)[:256] if source else None


__all__ = ["EXPAND", "FEE_TYPES", "RETURN_TYPES", "asset_of", "lines_of", "window"]
