"""Payouts' announced routes on PostgreSQL (`PayoutRoutes`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_contracts.events.payouts import PayoutRoutesPublished

Conn = AsyncSession | AsyncConnection

_LOCK = text("SELECT sequence FROM payout_routes_version FOR UPDATE")


class PgPayoutRoutes:
    async def lock(self, tx: Conn) -> None:
        await tx.execute(_LOCK)

    async def publish(self, tx: Conn, announcement: PayoutRoutesPublished) -> None:
        """Under the version row's lock: replaced only by a newer announcement (an older one changes nothing)."""
        data = announcement
        current = (await tx.execute(_LOCK)).scalar()
        if current is not None and current >= data.sequence:
            return
        await tx.execute(
            text(
                "INSERT INTO payout_routes_version (id, sequence, published_at) VALUES (true, :s, :t) "
                "ON CONFLICT (id) DO UPDATE SET sequence = :s, published_at = :t"
            ),
            {"s": data.sequence, "t": data.published_at},
        )
        await tx.execute(text("DELETE FROM payout_routes"))
        routes = {(r.asset, r.destination_type.value, r.provider.value): r.amounts for r in data.routes}
        for (asset, dtype, provider), amounts in sorted(routes.items()):
            await tx.execute(
                text(
                    "INSERT INTO payout_routes (asset, destination_type, provider, published_at, amounts) "
                    "VALUES (:a, :d, :p, :t, CAST(:n AS bigint[]))"
                ),
                {
                    "a": asset,
                    "d": dtype,
                    "p": provider,
                    "t": data.published_at,
                    "n": list(amounts) if amounts else None,
                },
            )

    async def all(self, tx: Conn) -> list[dict[str, Any]]:
        rows = await tx.execute(
            text("SELECT asset, destination_type, provider, published_at, amounts FROM payout_routes ORDER BY 1, 2, 3")
        )
        return [
            {
                "asset": r.asset,
                "destination_type": r.destination_type,
                "provider": r.provider,
                "published_at": r.published_at,
                "amounts": list(r.amounts) if r.amounts is not None else None,
            }
            for r in rows
        ]


async def publish_routes(conn: Conn, data: PayoutRoutesPublished) -> None:
    """Tell rewards payouts' routes directly, as a consumed PayoutRoutesPublished would (tests, tools)."""
    await PgPayoutRoutes().publish(conn, data)


__all__ = ["PgPayoutRoutes", "publish_routes"]
