"""A `payouts` row and the domain's `Payout`: the mapping every payouts store reads and inserts with."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any, TypeVar

from sqlalchemy import Result, text

from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_contracts.providers import DestinationType, PayoutDestination, destination_key
from prizeflow_payouts.domain.payout import Payout
from prizeflow_payouts.domain.state import PayoutState

T = TypeVar("T")

PAYOUT_COLUMNS = (
    ("id", "text"), ("payout_request_id", "text"), ("idempotency_key", "text"), ("request_hash", "text"),
    ("claim_id", "text"), ("player_id", "text"), ("requested_by", "text"), ("asset", "text"), ("amount", "bigint"),
    ("destination_type", "text"), ("destination_address", "text"), ("destination_memo", "text"),
    ("provider_type", "text"), ("provider_name", "text"), ("state", "text"), ("approval_policy", "text"),
    ("correlation_id", "text"), ("cause_event_id", "text"), ("attempts", "int"), ("max_attempts", "int"),
    ("available_at", "timestamptz"), ("sync_first", "boolean"), ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"), ("hold_code", "text"), ("hold_detail", "text"), ("held_at", "timestamptz"),
    ("destination_key", "text"), ("hold_policy_version", "bigint"), ("hold_findings", "jsonb"),
    ("gate_stamp", "text"), ("lease_owner", "text"), ("lease_token", "uuid"), ("lease_until", "timestamptz"),
)  # fmt: skip
INSERT_PAYOUTS = text(
    f"INSERT INTO payouts ({', '.join(c for c, _ in PAYOUT_COLUMNS)}) "  # noqa: S608 - fixed column list
    f"SELECT * FROM unnest({', '.join(f'CAST(:a_{c} AS {t}[])' for c, t in PAYOUT_COLUMNS)}) "
    "ON CONFLICT DO NOTHING RETURNING id"
)


def payouts_from(result: Result[Any]) -> list[Payout]:
    """Every row of `result` as a payout, each read as a plain dict (the result's keys taken once): SQLAlchemy's row
    mappings cost a keyed lookup through the result's metadata for each of the ~40 columns, more than the rest of
    building the payout."""
    keys = tuple(result.keys())
    return [payout_from_row(dict(zip(keys, row, strict=True))) for row in result]


def payout_from_row(row: Mapping[Any, Any]) -> Payout:
    """A `payouts` row (with `previous_state` when a claim returned it) as the domain's payout."""
    prev = row.get("previous_state")
    return Payout(
        id=row["id"],
        payout_request_id=row["payout_request_id"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        claim_id=row["claim_id"],
        player_id=row["player_id"],
        requested_by=row["requested_by"],
        asset=row["asset"],
        amount=int(row["amount"]),
        destination_type=row["destination_type"],
        destination_address=row["destination_address"],
        destination_memo=row["destination_memo"],
        provider_type=row["provider_type"],
        provider_name=row["provider_name"],
        state=PayoutState(row["state"]),
        approval_policy=ApprovalPolicy(row["approval_policy"]),
        correlation_id=row["correlation_id"],
        cause_event_id=row["cause_event_id"],
        attempts=int(row["attempts"]),
        max_attempts=int(row["max_attempts"]),
        sync_first=bool(row["sync_first"]),
        sync_polls=int(row["sync_polls"]),
        provider_ref=row["provider_ref"],
        tx_hash=row["tx_hash"],
        last_error_code=row["last_error_code"],
        created_at=row["created_at"],
        submitted_at=row.get("submitted_at"),
        finished_at=row.get("finished_at"),
        lease_token=row.get("lease_token"),
        previous_state=PayoutState(prev) if prev else None,
        hold_code=row.get("hold_code"),
        hold_detail=row.get("hold_detail"),
        held_at=row.get("held_at"),
        hold_policy_version=row.get("hold_policy_version"),
        hold_findings=stored_findings(row.get("hold_findings")),
        gate_stamp=row.get("gate_stamp"),
        lease_owner=row.get("lease_owner"),
        lease_until=row.get("lease_until"),
    )


def stored_findings(stored: Any) -> tuple[str, ...] | None:
    """`payouts.hold_findings` (jsonb: decoded by the driver, or its text where a statement reads it raw)."""
    if stored is None:
        return None
    return tuple(str(f) for f in (json.loads(stored) if isinstance(stored, str) else stored))


def insert_columns(payouts: Sequence[Payout]) -> dict[str, list[Any]]:
    """The INSERT's arrays, one per column (each built in one pass over the batch). A new payout is available, and
    last updated, when created."""
    cols: dict[str, list[Any]] = {}
    for col, _ in PAYOUT_COLUMNS:
        values: list[Any]
        if col in {"available_at", "updated_at"}:
            values = [p.created_at for p in payouts]
        elif col in {"state", "approval_policy"}:
            values = [getattr(p, col).value for p in payouts]
        elif col == "destination_key":  # the trigger stores the database's own (payouts_destination_key): the same
            values = [_destination_key(p.destination_type, p.destination_address, p.destination_memo) for p in payouts]
        elif col == "hold_findings":
            values = [None if p.hold_findings is None else json.dumps(list(p.hold_findings)) for p in payouts]
        else:
            values = list(map(attrgetter(col), payouts))
        cols[f"a_{col}"] = values
    return cols


@functools.lru_cache(maxsize=4096)
def _destination_key(type_: str, address: str, memo: str | None) -> str:
    """A destination's key, remembered: a player's payouts go to the same few destinations."""
    return destination_key(PayoutDestination(type=DestinationType(type_), address=address, memo=memo))


__all__ = ["INSERT_PAYOUTS", "PAYOUT_COLUMNS", "insert_columns", "payout_from_row", "payouts_from", "stored_findings"]
