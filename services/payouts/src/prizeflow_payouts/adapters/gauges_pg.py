"""`SqlPayoutGauges`: what the payout gauges count, read in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_payouts.application.ports import (
    STUCK_KINDS,
)

T = TypeVar("T")

_STUCK = text(
    """
    SELECT p.provider_name,
        count(*) FILTER (WHERE p.state = 'submitting' AND p.lease_until < now()) AS stale_leases,
        count(*) FILTER (WHERE p.state = 'submitted' AND p.submitted_at < now() - make_interval(secs => :s))
            AS unconfirmed,
        count(*) FILTER (WHERE p.outcome_unknown_since < now() - make_interval(
            secs => coalesce(t.after_s, CAST(:default_after AS float8)))) AS unknown_outcome
    FROM payouts p
    LEFT JOIN unnest(CAST(:names AS text[]), CAST(:afters AS float8[])) AS t(name, after_s)
        ON t.name = p.provider_name
    WHERE p.state IN ('submitting', 'submitted') OR p.outcome_unknown_since IS NOT NULL
    GROUP BY p.provider_name
    """
)


class SqlPayoutGauges:
    """`PayoutGauges` in the transaction of `session`."""

    __slots__ = ("session",)

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def counts(self) -> list[tuple[str, str, int]]:
        rows = await self.session.execute(
            text("SELECT state, provider_name, count(*) FROM payouts GROUP BY state, provider_name")
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

    async def queue_length(self) -> int:
        value = await self.session.scalar(
            text(
                "SELECT count(*) FROM payouts WHERE (state = 'approved' AND available_at <= now()) "
                "OR (state = 'failed' AND next_attempt_at <= now())"
            )
        )
        return int(value or 0)

    async def stuck(
        self, *, submitted_older_s: float, operator_after_s: Mapping[str, float], default_operator_after_s: float
    ) -> list[tuple[str, str, int]]:
        """One statement over the rows in flight (the leases and submissions) and the few in doubt (partial index
        `payouts_outcome_unknown`), never the settled history."""
        rows = await self.session.execute(
            _STUCK,
            {
                "s": submitted_older_s,
                "names": list(operator_after_s),
                "afters": [float(v) for v in operator_after_s.values()],
                "default_after": float(default_operator_after_s),
            },
        )
        return [(kind, r.provider_name, int(getattr(r, kind))) for r in rows for kind in STUCK_KINDS]


__all__ = ["SqlPayoutGauges"]
