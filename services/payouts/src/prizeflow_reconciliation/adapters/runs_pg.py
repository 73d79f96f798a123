"""A run's tables on PostgreSQL (migrations 0017, 0024): `RunStore` in the transaction of the unit of work."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.providers import StatementLine
from prizeflow_reconciliation.application.ports import Run
from prizeflow_reconciliation.domain import Chain, ExceptionKind, Finding, OurPayout, Outcome

_CLAIM_RUN = text(
    """
    INSERT INTO recon_runs (id, provider, since, until, requested_by, started_at, lease_owner, lease_until)
    VALUES (:id, :provider, :since, :until, :by, :at, :owner,
            CAST(:at AS timestamptz) + make_interval(secs => :lease))
    ON CONFLICT (id) DO UPDATE SET
        lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until,
        state = 'running', finished_at = NULL, error = NULL
    WHERE recon_runs.state <> 'completed'
      AND (recon_runs.lease_until IS NULL OR recon_runs.lease_until < EXCLUDED.started_at
           OR recon_runs.lease_owner = EXCLUDED.lease_owner AND recon_runs.state = 'failed')
    RETURNING id
    """
)

_RUN_COLUMNS = "id, provider, since, until, state, cursor, fetched, pages"

_OUR_PAYOUTS = text(
    """
    SELECT p.id, p.idempotency_key, p.provider_ref, p.state, p.asset, p.amount, p.destination_address, p.fee_asset,
           p.fee_amount, p.paid_at, p.outcome_unknown_since IS NOT NULL AND p.state = 'submitting' AS unknown_outcome,
           p.outcome_unknown_since,
           (SELECT CAST(sum(CASE l.kind WHEN 'payout' THEN l.amount WHEN 'return' THEN -l.amount ELSE 0 END) AS bigint)
            FROM ledger_postings l WHERE l.payout_id = p.id AND l.kind <> 'adjustment') AS ledger
    FROM payout_facts p
    WHERE provider_name = :provider AND (
        (state IN ('paid', 'returned') AND paid_at >= :since AND paid_at < :until)
        OR idempotency_key = ANY(CAST(:keys AS text[]))
        OR id = ANY(CAST(:keys AS text[]))
        OR (provider_ref IS NOT NULL AND provider_ref = ANY(CAST(:refs AS text[])))
        OR (outcome_unknown_since IS NOT NULL AND state = 'submitting' AND outcome_unknown_since < :until)
        OR (state IN ('failed', 'cancelled', 'rejected', 'returned') AND updated_at >= :since AND updated_at < :until
            AND EXISTS (SELECT 1 FROM recon_payout_lines l WHERE l.payout_id = p.id AND l.provider = :provider))
    )
    """
)

# One provider's chains are read and extended by one transaction at a time (the trigger of 0024 takes the same lock
# for every insert): two runs over overlapping windows never both claim the same money.
_LOCK_CHAINS = text("SELECT pg_advisory_xact_lock(hashtextextended('prizeflow-recon-exceptions:' || :provider, 0))")

_CHAINS = text(
    """
    SELECT kind, coalesce(about, subject) AS about, count(*) AS links, coalesce(sum(amount), 0) AS amount
    FROM recon_exceptions
    WHERE provider = :provider
      AND (payout_id = ANY(CAST(:payout_ids AS text[]))
           OR (payout_id IS NULL AND subject = ANY(CAST(:subjects AS text[]))))
    GROUP BY kind, coalesce(about, subject)
    """
)

# A link already there (the same difference found again) is nothing; 0024's trigger refuses one that does not claim
# exactly what its chain does not hold.
_OPEN_EXCEPTIONS = text(
    """
    INSERT INTO recon_exceptions (provider, kind, subject, about, link, absorbed, severity, run_id, payout_id, asset,
                                  amount, detail, ours, theirs, correlation_id, opened_at, updated_at)
    SELECT :provider, f.kind, f.subject, f.about, f.link, f.absorbed, f.severity, :run_id, f.payout_id, f.asset,
           f.amount, f.detail, CAST(f.ours AS jsonb), CAST(f.theirs AS jsonb),
           coalesce((SELECT correlation_id FROM payout_facts WHERE id = f.payout_id), 'recon-' || :run_id), :at, :at
    FROM unnest(CAST(:kind AS text[]), CAST(:subject AS text[]), CAST(:about AS text[]), CAST(:link AS integer[]),
                CAST(:absorbed AS bigint[]), CAST(:severity AS text[]), CAST(:payout_id AS text[]),
                CAST(:asset AS text[]), CAST(:amount AS bigint[]), CAST(:detail AS text[]), CAST(:ours AS text[]),
                CAST(:theirs AS text[]))
         AS f(kind, subject, about, link, absorbed, severity, payout_id, asset, amount, detail, ours, theirs)
    ON CONFLICT DO NOTHING
    RETURNING id
    """
)

_ANSWER = text(
    """
    UPDATE recon_exceptions SET state = 'resolved', resolution = 'acknowledge', resolution_reason = :reason,
        resolved_by = ARRAY['reconciliation'], resolved_at = :at, updated_at = :at,
        owner = coalesce(owner, 'reconciliation')
    WHERE provider = :provider AND state <> 'resolved' AND (kind, coalesce(about, subject)) IN (
        SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:abouts AS text[])))
    RETURNING id
    """
)


def _line_json(line: StatementLine) -> dict[str, Any]:
    return line.model_dump(mode="json")


def _ours_json(p: OurPayout | None) -> str | None:
    if p is None:
        return None
    doc = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(p).items()}
    return json.dumps(doc)


class SqlRunStore:
    """`RunStore` in the transaction of `session`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim_run(
        self,
        run_id: str,
        provider: str,
        since: datetime,
        until: datetime,
        *,
        owner: str,
        lease_s: float,
        at: datetime,
        by: str,
    ) -> Run | None:
        claimed = (
            await self.session.execute(
                _CLAIM_RUN,
                {
                    "id": run_id,
                    "provider": provider,
                    "since": since,
                    "until": until,
                    "owner": owner,
                    "by": by,
                    "at": at,
                    "lease": lease_s,
                },
            )
        ).first()
        row = (
            (await self.session.execute(text(f"SELECT {_RUN_COLUMNS} FROM recon_runs WHERE id = :id"), {"id": run_id}))  # noqa: S608
            .mappings()
            .one()
        )
        if claimed is None and row["state"] != "completed":
            return None
        return Run(
            row["id"],
            row["provider"],
            row["since"],
            row["until"],
            row["state"],
            row["cursor"],
            row["fetched"],
            row["pages"],
        )

    async def stage_page(
        self,
        run_id: str,
        page: int,
        lines: Sequence[StatementLine],
        next_cursor: str | None,
        *,
        owner: str,
        lease_s: float,
        at: datetime,
    ) -> bool:
        held = (
            await self.session.execute(
                text(
                    "UPDATE recon_runs SET cursor = :cursor, fetched = :fetched, pages = :page, "
                    "lease_until = CAST(:at AS timestamptz) + make_interval(secs => :lease) "
                    "WHERE id = :id AND lease_owner = :owner AND state = 'running' RETURNING id"
                ),
                {
                    "id": run_id,
                    "cursor": next_cursor,
                    "fetched": next_cursor is None,
                    "page": page,
                    "owner": owner,
                    "lease": lease_s,
                    "at": at,
                },
            )
        ).first()
        if held is None:
            return False  # another replica took the run over: its pages, not ours
        if lines:
            await self.session.execute(
                text(
                    """
                    INSERT INTO recon_run_lines (run_id, line_id, page, line)
                    SELECT :run_id, l.line_id, :page, CAST(l.line AS jsonb)
                    FROM unnest(CAST(:ids AS text[]), CAST(:lines AS text[])) AS l(line_id, line)
                    ON CONFLICT (run_id, line_id) DO NOTHING
                    """
                ),
                {
                    "run_id": run_id,
                    "page": page,
                    "ids": [line.line_id for line in lines],
                    "lines": [json.dumps(_line_json(line)) for line in lines],
                },
            )
        return True

    async def staged_lines(self, run_id: str) -> list[StatementLine]:
        rows = await self.session.execute(
            text("SELECT line FROM recon_run_lines WHERE run_id = :id ORDER BY page, line_id"), {"id": run_id}
        )
        return [StatementLine.model_validate(r[0]) for r in rows]

    async def our_payouts(
        self,
        provider: str,
        since: datetime,
        until: datetime,
        keys: Sequence[str],
        refs: Sequence[str],
        *,
        with_ledger: bool,
    ) -> list[OurPayout]:
        # Planned for these keys every time: a generic plan (PostgreSQL's choice after five executions on one
        # connection) checks every payout against tens of thousands of keys one by one (docs/capacity.md).
        await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        rows = await self.session.execute(
            _OUR_PAYOUTS, {"provider": provider, "since": since, "until": until, "keys": list(keys), "refs": list(refs)}
        )
        return [
            OurPayout(
                payout_id=r.id,
                idempotency_key=r.idempotency_key,
                provider_ref=r.provider_ref,
                state=r.state,
                asset=r.asset,
                amount=r.amount,
                destination=r.destination_address,
                fee_asset=r.fee_asset,
                fee_amount=r.fee_amount,
                paid_at=r.paid_at,
                unknown_outcome=r.unknown_outcome,
                unknown_since=r.outcome_unknown_since,
                ledger=int(r.ledger) if with_ledger and r.ledger is not None else None,
            )
            for r in rows
        ]

    async def remembered(self, provider: str, payout_ids: Sequence[str]) -> list[StatementLine]:
        if not payout_ids:
            return []
        rows = await self.session.execute(
            text(
                "SELECT line FROM recon_payout_lines "
                "WHERE provider = :provider AND payout_id = ANY(CAST(:ids AS text[])) ORDER BY occurred_at, line_id"
            ),
            {"provider": provider, "ids": list(payout_ids)},
        )
        return [StatementLine.model_validate(r[0]) for r in rows]

    async def remember(self, provider: str, named: Sequence[tuple[str, StatementLine]]) -> None:
        if not named:
            return
        await self.session.execute(
            text(
                """
                INSERT INTO recon_payout_lines (provider, line_id, payout_id, occurred_at, line)
                SELECT :provider, n.line_id, n.payout_id, n.occurred_at, CAST(n.line AS jsonb)
                FROM unnest(CAST(:line_ids AS text[]), CAST(:payout_ids AS text[]), CAST(:ats AS timestamptz[]),
                            CAST(:lines AS text[])) AS n(line_id, payout_id, occurred_at, line)
                ON CONFLICT (provider, line_id) DO UPDATE SET occurred_at = EXCLUDED.occurred_at, line = EXCLUDED.line
                WHERE recon_payout_lines.line IS DISTINCT FROM EXCLUDED.line
                """
            ),
            {
                "provider": provider,
                "line_ids": [line.line_id for _, line in named],
                "payout_ids": [payout_id for payout_id, _ in named],
                "ats": [line.occurred_at for _, line in named],
                "lines": [json.dumps(_line_json(line)) for _, line in named],
            },
        )

    async def ledger_adjustments(self, provider: str, since: datetime, until: datetime) -> dict[str, int]:
        rows = await self.session.execute(
            text(
                """
                SELECT l.asset, sum(l.amount) FROM ledger_postings l
                JOIN recon_exceptions e ON e.adjustment_id = l.adjustment_id
                WHERE l.kind = 'adjustment' AND e.provider = :provider AND l.posted_at >= :since
                  AND l.posted_at < :until
                GROUP BY l.asset
                """
            ),
            {"provider": provider, "since": since, "until": until},
        )
        return {r[0]: int(r[1]) for r in rows}

    async def chains(
        self, provider: str, payout_ids: Sequence[str], subjects: Sequence[str]
    ) -> dict[tuple[ExceptionKind, str], Chain]:
        await self.session.execute(_LOCK_CHAINS, {"provider": provider})
        rows = await self.session.execute(
            _CHAINS, {"provider": provider, "payout_ids": list(payout_ids), "subjects": list(subjects)}
        )
        return {(ExceptionKind(r.kind), r.about): Chain(int(r.links), int(r.amount)) for r in rows}

    async def open_exceptions(self, run_id: str, provider: str, findings: Sequence[Finding], at: datetime) -> int:
        if not findings:
            return 0
        rows = await self.session.execute(
            _OPEN_EXCEPTIONS,
            {
                "provider": provider,
                "run_id": run_id,
                "at": at,
                "kind": [f.kind.value for f in findings],
                "subject": [f.key for f in findings],
                "about": [f.subject for f in findings],
                "link": [f.link for f in findings],
                "absorbed": [f.absorbed for f in findings],
                "severity": [f.severity.value for f in findings],
                "payout_id": [f.payout_id for f in findings],
                "asset": [f.asset for f in findings],
                "amount": [f.amount for f in findings],
                "detail": [f.detail for f in findings],
                "ours": [_ours_json(f.ours) for f in findings],
                "theirs": [json.dumps([_line_json(line) for line in f.theirs]) for f in findings],
            },
        )
        ids = [r[0] for r in rows]
        if ids:
            await self.session.execute(
                text(
                    "INSERT INTO recon_exception_history (exception_id, at, actor, what, reason) "
                    "SELECT i, :at, 'reconciliation', 'open', :run FROM unnest(CAST(:ids AS bigint[])) AS i"
                ),
                {"ids": ids, "at": at, "run": f"run {run_id}"},
            )
        return len(ids)

    async def answer(
        self, run_id: str, provider: str, answered: Sequence[tuple[ExceptionKind, str]], at: datetime
    ) -> int:
        if not answered:
            return 0
        rows = await self.session.execute(
            _ANSWER,
            {
                "provider": provider,
                "at": at,
                "reason": f"the provider lists it: matched by run {run_id}",
                "kinds": [kind.value for kind, _ in answered],
                "abouts": [about for _, about in answered],
            },
        )
        ids = [r[0] for r in rows]
        if ids:
            await self.session.execute(
                text(
                    "INSERT INTO recon_exception_history (exception_id, at, actor, what, reason) "
                    "SELECT i, :at, 'reconciliation', 'acknowledge', :reason FROM unnest(CAST(:ids AS bigint[])) AS i"
                ),
                {"ids": ids, "at": at, "reason": f"the provider lists it: matched by run {run_id}"},
            )
        return len(ids)

    async def finish_run(self, run_id: str, outcome: Outcome, opened: int, at: datetime, *, owner: str) -> bool:
        totals = [
            {
                "asset": asset,
                "ours_paid": t.ours_paid,
                "theirs_paid": t.theirs_paid,
                "fees": t.fees,
                "reversals": t.reversals,
                "debits": t.debits,
                "credits": t.credits,
                "provider_movement": t.provider_movement,
                "ledger_movement": t.ledger,
            }
            for asset, t in sorted(outcome.totals.items())
        ]
        done = await self.session.execute(
            text(
                """
                UPDATE recon_runs SET state = 'completed', finished_at = :at, lines = :lines, matched = :matched,
                    exceptions = :exceptions, totals = CAST(:totals AS jsonb), lease_until = NULL, cursor = NULL
                WHERE id = :id AND lease_owner = :owner AND state = 'running'
                RETURNING id
                """
            ),
            {
                "owner": owner,
                "id": run_id,
                "at": at,
                "lines": outcome.lines,
                "matched": outcome.matched,
                "exceptions": len(outcome.findings),
                "totals": json.dumps(totals),
            },
        )
        if done.first() is None:
            return False
        await self.session.execute(text("DELETE FROM recon_run_lines WHERE run_id = :id"), {"id": run_id})
        return True

    async def fail_run(self, run_id: str, error: str, at: datetime, *, owner: str) -> None:
        await self.session.execute(
            text(
                "UPDATE recon_runs SET state = 'failed', finished_at = :at, error = :error, lease_until = NULL "
                "WHERE id = :id AND state = 'running' AND lease_owner = :owner"
            ),
            {"id": run_id, "at": at, "error": error, "owner": owner},
        )

    async def last_completed(self) -> list[tuple[str, datetime]]:
        rows = await self.session.execute(
            text("SELECT provider, max(finished_at) FROM recon_runs WHERE state = 'completed' GROUP BY provider")
        )
        return [(r[0], r[1]) for r in rows]


__all__ = ["SqlRunStore"]
