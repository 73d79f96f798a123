"""The read side of the HTTP API: campaigns with their pool figures, claims, holds, routes, wallets, top-ups. Each
query reads in one transaction of its own (run once: a read that loses a race is the client's to retry)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.campaigns import campaign_not_found
from prizeflow_rewards.application.figures import Figures, campaign_figures, pool_figures, receivables, wallet_balances
from prizeflow_rewards.application.ports import FxPosition, FxReconciliation
from prizeflow_rewards.domain.campaigns import Campaign
from prizeflow_rewards.domain.claims import Claim
from prizeflow_rewards.domain.fx import Quote
from prizeflow_rewards.domain.ledger import TransferKind
from prizeflow_rewards.domain.topups import TopUp
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.uow import UnitOfWork


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
    uow: UnitOfWork[Books]

    async def quote(self, quote_id: str) -> Quote | None:
        async with self.uow() as books:
            return await books.fx.get(quote_id)

    async def fx_positions(self, *, limit: int) -> tuple[list[FxPosition], list[FxReconciliation]]:
        """The FX accounts now, and their latest daily reconciliations (newest first)."""
        async with self.uow() as books:
            return await books.fx.positions(), await books.fx.reconciliations(limit=limit)

    async def campaigns(self) -> list[Figures]:
        """Every campaign with its pool's figures, oldest first."""
        async with self.uow() as books:
            campaigns = await books.campaigns.all()
            return list((await pool_figures(books, campaigns)).values())

    async def campaign(self, campaign_id: str) -> Figures:
        async with self.uow() as books:
            return await campaign_figures(books, await _campaign(books, campaign_id))

    async def contradictions(self, *, limit: int) -> list[dict[str, Any]]:
        """Later words against a final top-up or claim, newest first (kept for a person; nothing moved)."""
        async with self.uow() as books:
            return await books.contradictions.recent(limit=limit)

    async def claim(self, claim_id: str) -> Claim:
        async with self.uow() as books:
            claim = await books.claims.get(claim_id)
        if claim is None:
            raise UseCaseError(ErrorKind.NOT_FOUND, "claim_not_found", f"no claim {claim_id}")
        return claim

    async def player_claims(self, player_id: str, *, limit: int) -> list[Claim]:
        async with self.uow() as books:
            return await books.claims.of_player(player_id, limit=limit)

    async def held_claims(self, *, limit: int = 100) -> list[Claim]:
        async with self.uow() as books:
            return await books.claims.held(limit=limit)

    async def routes(self) -> list[dict[str, Any]]:
        async with self.uow() as books:
            return await books.routes.all()

    async def wallet(self, player_id: str) -> dict[str, Any]:
        """The player's balances per asset and what they owe, read together."""
        async with self.uow() as books:
            return {
                "player_id": player_id,
                "balances": await wallet_balances(books, player_id),
                "receivables": await receivables(books, player_id),
            }

    async def top_up_entity(self, top_up_id: str) -> TopUp | None:
        async with self.uow() as books:
            return await books.top_ups.get(top_up_id)

    async def top_up(self, top_up_id: str) -> dict[str, Any] | None:
        """A top-up with its refunds and disputes (their split: debited, receivable, credited)."""
        async with self.uow() as books:
            top_up = await books.top_ups.get(top_up_id)
            if top_up is None:
                return None
            adjustments = await books.top_ups.adjustments(top_up_id)
        return {**top_up.view(), "adjustments": [a.view() for a in adjustments]}

    async def wallet_history(
        self,
        player_id: str,
        *,
        asset: str | None,
        kind: TransferKind | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """Newest first; `next_cursor` continues after the last item (stable under concurrent inserts)."""
        async with self.uow() as books:
            wallets = await books.wallets.wallet_ids(player_id, asset=asset)
            if not wallets:
                return {"items": [], "next_cursor": None}
            before = decode_cursor(cursor) if cursor is not None else None
            rows = await books.wallets.movements(wallets, kind=kind, before_seq=before, limit=limit + 1)
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


async def _campaign(books: Books, campaign_id: str) -> Campaign:
    campaign = await books.campaigns.get(campaign_id)
    if campaign is None:
        raise campaign_not_found(campaign_id)
    return campaign


__all__ = ["CursorError", "RewardsQueries", "decode_cursor", "encode_cursor"]
