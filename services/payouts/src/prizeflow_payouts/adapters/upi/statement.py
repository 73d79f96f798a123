"""The upi rail's statement: RazorpayX's account statement (`GET /v1/transactions`), normalized. Pure: no I/O.

- a `payout` transaction (its `source` the payout) is a PAYOUT line of the payout's amount under our reference
  (`reference_id`, the payout id we sent) and RazorpayX's payout id, to the fund account's destination; when the
  payout carries fees (GST included), a FEE line `<txn id>:fee` of them (for a payout without our reference too:
  under RazorpayX's payout id, it is in the unrequested payout's finding);
- a `reversal` transaction (money back: a failure after processing, or a bank return after processed) is a
  REVERSAL line of the payout's amount under RazorpayX's payout id, and a CREDIT line `<txn id>:fee` for the fees
  it gives back;
- anything else is our balance's, no payout's: a CREDIT line for money in (a top-up), a DEBIT line for money out
  (a validation's penny drop, an adjustment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from prizeflow_contracts.providers import StatementLine, StatementLineKind
from prizeflow_contracts.upi import ASSET

K = StatementLineKind


def when(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def lines_of(txn: Mapping[str, Any], destinations: Mapping[str, str]) -> list[StatementLine]:
    """The lines of one transaction; `destinations` maps fund account ids to their destination's spelling."""
    tid = str(txn["id"])
    occurred = when(txn["created_at"])
    source = txn.get("source") or {}
    entity = str(source.get("entity") or "")
    if entity == "payout":
        ref = str(source["id"])
        reference = source.get("reference_id")
        common: dict[str, Any] = {
            "occurred_at": occurred,
            "asset": ASSET,
            "reference": str(reference)[:256] if reference else None,
            "provider_ref": ref,
        }
        lines = [
            StatementLine(
                line_id=tid,
                kind=K.PAYOUT,
                amount=int(source["amount"]),
                destination=destinations.get(str(source.get("fund_account_id") or "")),
                raw_type=f"payout:{source.get('mode') or '-'}/{source.get('status') or '-'}"[:128],
                **common,
            )
        ]
        fees = int(source.get("fees") or 0)
        if fees > 0:
            # A payout nobody of ours asked for (no reference) is one finding, `unrequested`, with its fee in it
            # (reconciliation rides it on the payout line by RazorpayX's payout id), not a second one.
            lines.append(StatementLine(line_id=f"{tid}:fee", kind=K.FEE, amount=fees, raw_type="payout:fees", **common))
        return lines
    if entity == "reversal":
        payout_ref = str(source["payout_id"])
        lines = [
            StatementLine(
                line_id=tid,
                kind=K.REVERSAL,
                occurred_at=occurred,
                asset=ASSET,
                amount=int(source["amount"]),
                provider_ref=payout_ref,
                raw_type="reversal",
            )
        ]
        fees = int(source.get("fees") or 0)
        if fees > 0:
            lines.append(
                StatementLine(
                    line_id=f"{tid}:fee",
                    kind=K.CREDIT,
                    occurred_at=occurred,
                    asset=ASSET,
                    amount=fees,
                    provider_ref=payout_ref,
                    raw_type="reversal:fees",
                )
            )
        return lines
    credit, debit = int(txn.get("credit") or 0), int(txn.get("debit") or 0)
    return [
        StatementLine(
            line_id=tid,
            kind=K.CREDIT if credit > debit else K.DEBIT,
            occurred_at=occurred,
            asset=ASSET,
            amount=abs(credit - debit),
            raw_type=entity[:128] or None,
        )
    ]


def fund_account_ids(txns: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(
        {
            str(t["source"]["fund_account_id"])
            for t in txns
            if isinstance(t.get("source"), Mapping)
            and t["source"].get("entity") == "payout"
            and t["source"].get("fund_account_id")
        }
    )


__all__ = ["ASSET", "fund_account_ids", "lines_of", "when"]
