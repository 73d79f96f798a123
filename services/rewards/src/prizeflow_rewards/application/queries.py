"""The read side of the HTTP API: campaigns with their pool figures, claims, holds, routes, wallets."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from prizeflow_contracts.money import ASSETS
from prizeflow_rewards.application.campaigns import campaign_not_found
from prizeflow_rewards.application.ports import Ledger, Stores, Tx
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import Campaign, PoolFigures
from prizeflow_rewards.domain.claims import Claim
from prizeflow_rewards.domain.ledger import TransferKind
from prizeflow_rewards.domain.topups import TopUp
from prizeflow_runtime.errors import ErrorKind, UseCaseError


class CursorError(UseCaseError):
    """A history cursor this service did not hand out."""

    def __init__(self, detail: str) -> None:
        super().__init__(ErrorKind.BAD_REQUEST, "invalid_cursor", detail)


_INT64_MAX = 2**63 - 1


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, seq = raw.partition(":")
        if prefix != "seq" or not seq.isdigit() or not 0 <= int(seq) <= _INT64_MAX:
            raise ValueError("not a history cursor")
        return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise CursorError(f"invalid cursor: {err}") from err


@dataclass
class RewardsQueries:
    ledger: Ledger
    stores: Stores

    async def campaigns(self, tx: Tx) -> list[Campaign]:
        return await self.stores.campaigns.all(tx)

    async def contradictions(self, tx: Tx, *, limit: int) -> list[dict[str, Any]]:
        """Later words against a final top-up or claim, newest first (kept for a person; nothing moved)."""
        return await self.stores.contradictions.recent(tx, limit=limit)

    async def campaign(self, tx: Tx, campaign_id: str) -> Campaign:
        campaign = await self.stores.campaigns.get(tx, campaign_id)
        if campaign is None:
            raise campaign_not_found(campaign_id)
        return campaign

    async def figures(self, tx: Tx, campaigns: list[Campaign]) -> dict[str, dict[str, Any]]:
        """Each campaign with its pool's figures and its held rounds, in two reads whatever their number."""
        refs = {c.id: accounts.pool(c.id, c.asset) for c in campaigns}
        balances = await self.ledger.balances(tx, refs.values())
        held = await self.stores.allocations.held_totals(tx)
        out = {}
        for c in campaigns:
            f = PoolFigures.of(balances[refs[c.id]])
            n, total = held.get(c.id, (0, 0))
            out[c.id] = {
                "campaign_id": c.id,
                "name": c.name,
                "asset": c.asset,
                "status": c.status.value,
                "budget": f.funded,
                "funded": f.funded,
                "paid": f.paid,
                "reserved": f.reserved,
                "remaining": f.remaining,
                "low_threshold": c.low_threshold,
                "held_rounds": int(n),
                "held_amount": int(total or 0),
            }
        return out

    async def claim(self, tx: Tx, claim_id: str) -> Claim:
        claim = await self.stores.claims.get(tx, claim_id)
        if claim is None:
            raise UseCaseError(ErrorKind.NOT_FOUND, "claim_not_found", f"no claim {claim_id}")
        return claim

    async def player_claims(self, tx: Tx, player_id: str, *, limit: int) -> list[Claim]:
        return await self.stores.claims.of_player(tx, player_id, limit=limit)

    async def held_claims(self, tx: Tx, *, limit: int = 100) -> list[Claim]:
        return await self.stores.claims.held(tx, limit=limit)

    async def routes(self, tx: Tx) -> list[dict[str, Any]]:
        return await self.stores.routes.all(tx)

    async def wallet_balances(self, tx: Tx, player_id: str) -> list[dict[str, Any]]:
        """Balances per asset. A wallet no transfer ever moved is no balance: the ledger creates accounts when it
        locks them, before it knows whether money will move (a held round locks its winners' wallets)."""
        return [
            {
                "asset": asset,
                "balance": b.posted,
                "reserved": b.debits_pending,
                "available": b.available,
                "incoming_pending": b.credits_pending,
            }
            for asset, b in await self.stores.wallets.balances(tx, player_id)
        ]

    async def receivables(self, tx: Tx, player_id: str) -> list[dict[str, Any]]:
        """What the player owes per asset (refunds/disputes of top-ups their wallet could not cover)."""
        owed = await self.ledger.balances(tx, [accounts.receivable(player_id, a) for a in ASSETS])
        return [{"asset": ref.asset, "owed": -b.posted} for ref, b in owed.items() if b.posted != 0]

    async def top_up_entity(self, tx: Tx, top_up_id: str) -> TopUp | None:
        return await self.stores.top_ups.get(tx, top_up_id)

    async def top_up(self, tx: Tx, top_up_id: str) -> dict[str, Any] | None:
        """A top-up with its refunds and disputes (their split: debited, receivable, credited)."""
        top_up = await self.stores.top_ups.get(tx, top_up_id)
        if top_up is None:
            return None
        adjustments = await self.stores.top_ups.adjustments(tx, top_up_id)
        return {**top_up.view(), "adjustments": [a.view() for a in adjustments]}

    async def wallet_history(
        self,
        tx: Tx,
        player_id: str,
        *,
        asset: str | None,
        kind: TransferKind | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """Newest first; `next_cursor` continues after the last item (stable under concurrent inserts)."""
        wallets = await self.stores.wallets.wallet_ids(tx, player_id, asset=asset)
        if not wallets:
            return {"items": [], "next_cursor": None}
        before = decode_cursor(cursor) if cursor is not None else None
        rows = await self.stores.wallets.movements(tx, wallets, kind=kind, before_seq=before, limit=limit + 1)
        page = rows[:limit]
        items = [
            {
                "transfer_id": str(r.transfer_id),
                "kind": r.kind,
                "asset": r.asset,
                "amount": r.amount,
                "direction": "in" if r.incoming else "out",
                "pending": r.pending,
                "resolves": str(r.resolves) if r.resolves else None,
                "business_key": r.business_key,
                "created_at": r.created_at.isoformat(),
            }
            for r in page
        ]
        return {"items": items, "next_cursor": encode_cursor(page[-1].seq) if len(rows) > limit else None}


__all__ = ["CursorError", "RewardsQueries", "decode_cursor", "encode_cursor"]
