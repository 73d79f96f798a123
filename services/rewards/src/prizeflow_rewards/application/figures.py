"""What the API shows of a campaign's pool and a player's wallets, read through a transaction's books: the reads
the queries make, and the writes that answer with what they changed (funding a pool, crediting a wallet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prizeflow_contracts.money import ASSETS
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import Campaign, PoolFigures

Figures = dict[str, Any]


async def pool_figures(books: Books, campaigns: Sequence[Campaign]) -> dict[str, Figures]:
    """Each campaign with its pool's figures and its held rounds, in two reads whatever their number."""
    refs = {c.id: accounts.pool(c.id, c.asset) for c in campaigns}
    balances = await books.ledger.balances(refs.values())
    held = await books.allocations.held_totals()
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


async def campaign_figures(books: Books, campaign: Campaign) -> Figures:
    return (await pool_figures(books, [campaign]))[campaign.id]


async def wallet_balances(books: Books, player_id: str) -> list[Figures]:
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
        for asset, b in await books.wallets.balances(player_id)
    ]


async def receivables(books: Books, player_id: str) -> list[Figures]:
    """What the player owes per asset (refunds/disputes of top-ups their wallet could not cover)."""
    owed = await books.ledger.balances([accounts.receivable(player_id, a) for a in ASSETS])
    return [{"asset": ref.asset, "owed": -b.posted} for ref, b in owed.items() if b.posted != 0]


__all__ = ["Figures", "campaign_figures", "pool_figures", "receivables", "wallet_balances"]
