"""Payouts' announced routes on PostgreSQL (`PayoutRoutes`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_contracts.events.payouts import PayoutRoutesPublished

Conn = AsyncSession | AsyncConnection

_LOCK = text("SELECT sequence FROM payout_routes_version FOR UPDATE")


class SqlPayoutRoutes:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def lock(self) -> None:
        await self.session.execute(_LOCK)

    async def publish(self, announcement: PayoutRoutesPublished) -> None:
        """Under the version row's lock: replaced only by a newer announcement (an older one changes nothing)."""
        data = announcement
        current = (await self.session.execute(_LOCK)).scalar()
        if current is not None and current >= data.sequence:
            return
        await self.session.execute(
            text(
                "INSERT INTO payout_routes_version (id, sequence, published_at) VALUES (true, :s, :t) "
                "ON CONFLICT (id) DO UPDATE SET sequence = :s, published_at = :t"
            ),
            {"s": data.sequence, "t": data.published_at},
        )
        await self.session.execute(text("DELETE FROM payout_routes"))
        routes = {(r.asset, r.destination_type.value, r.provider.value): r.amounts for r in data.routes}
        for (asset, dtype, provider), amounts in sorted(routes.items()):
            await self.session.execute(
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

    async def all(self) -> list[dict[str, Any]]:
        rows = await self.session.execute(
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
    await SqlPayoutRoutes(conn).publish(data)


__all__ = ["SqlPayoutRoutes", "publish_routes"]
