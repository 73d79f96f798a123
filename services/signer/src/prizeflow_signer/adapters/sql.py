"""The signer's tables: append-only audit and spend rows, stored results (one per request id), and the last
transaction signed per payout."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_runtime.outbox import add_event
from prizeflow_signer.application.ports import AuditRecord
from prizeflow_signer.domain.policy import LiveSignature

SPEND_LOCK_KEY = 0x5349_474E_4341_5053  # "SIGNCAPS": one cap decision at a time across signer replicas


class SqlSignerStore:
    async def stored_result(self, session: AsyncSession, request_id: str) -> str | None:
        row = await session.execute(
            text("SELECT envelope FROM signer_results WHERE request_id = :r"), {"r": request_id}
        )
        value = row.scalar_one_or_none()
        return str(value) if value is not None else None

    async def save_result(self, session: AsyncSession, request_id: str, outcome: str, envelope: str) -> None:
        await session.execute(
            text("INSERT INTO signer_results (request_id, outcome, envelope) VALUES (:r, :o, :e)"),
            {"r": request_id, "o": outcome, "e": envelope},
        )

    async def lock_spending(self, session: AsyncSession) -> None:
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SPEND_LOCK_KEY})

    async def spent_in_window(self, session: AsyncSession, assets: Sequence[str]) -> dict[str, int]:
        rows = await session.execute(
            text(
                "SELECT asset, coalesce(sum(amount), 0) FROM signer_spend "
                "WHERE asset = ANY(:assets) AND signed_at > now() - interval '24 hours' GROUP BY asset"
            ),
            {"assets": list(assets)},
        )
        return {str(asset): int(total) for asset, total in rows}

    async def record_spend(self, session: AsyncSession, request_id: str, amounts: Mapping[str, int]) -> None:
        if amounts:
            await session.execute(
                text("INSERT INTO signer_spend (request_id, asset, amount) VALUES (:r, :a, :n)"),
                [{"r": request_id, "a": asset, "n": amount} for asset, amount in amounts.items()],
            )

    async def live_signatures(self, session: AsyncSession, payout_ids: Sequence[str]) -> dict[str, LiveSignature]:
        rows = await session.execute(
            text("SELECT payout_id, tx_hash, max_time FROM signer_payout_signatures WHERE payout_id = ANY(:ids)"),
            {"ids": list(payout_ids)},
        )
        return {str(p): LiveSignature(str(h), int(m)) for p, h, m in rows}

    async def record_signature(
        self,
        session: AsyncSession,
        *,
        request_id: str,
        tx_hash: str,
        max_time: int,
        payout_ids: Sequence[str],
        now: int,
    ) -> None:
        """Upsert per payout; the table's trigger refuses replacing a transaction that can still land."""
        await session.execute(
            text(
                """
                INSERT INTO signer_payout_signatures (payout_id, tx_hash, max_time, request_id, signed_at_epoch)
                SELECT p, :h, :m, :r, :now FROM unnest(CAST(:ids AS text[])) AS p
                ON CONFLICT (payout_id) DO UPDATE SET
                    tx_hash = EXCLUDED.tx_hash, max_time = EXCLUDED.max_time, request_id = EXCLUDED.request_id,
                    signed_at_epoch = EXCLUDED.signed_at_epoch, updated_at = now()
                WHERE signer_payout_signatures.tx_hash <> EXCLUDED.tx_hash
                """
            ),
            {"ids": list(payout_ids), "h": tx_hash, "m": max_time, "r": request_id, "now": now},
        )

    async def emit(self, session: AsyncSession, envelope: Envelope[Any]) -> None:
        await add_event(session, envelope)

    async def reemit(self, session: AsyncSession, envelope: Envelope[Any]) -> None:
        """Publish the event again: a row still in the outbox is still to go out; else stage it anew."""
        pending = await session.scalar(text("SELECT 1 FROM outbox WHERE event_id = :id"), {"id": envelope.id})
        if pending is None:
            await add_event(session, envelope)

    async def audit(self, session: AsyncSession, record: AuditRecord) -> None:
        await session.execute(
            text(
                """
                INSERT INTO signer_audit (request_id, event_id, correlation_id, decision, code, detail, tx_hash,
                                          source_account, signed_by, backend, amounts, payout_ids)
                VALUES (:request_id, CAST(:event_id AS uuid), :correlation_id, :decision, :code, :detail, :tx_hash,
                        :source_account, :signed_by, :backend, CAST(:amounts AS jsonb), :payout_ids)
                """
            ),
            {
                "request_id": record.request_id,
                "event_id": record.event_id,
                "correlation_id": record.correlation_id,
                "decision": record.decision,
                "code": record.code,
                "detail": record.detail[:2000] if record.detail else None,
                "tx_hash": record.tx_hash,
                "source_account": record.source_account,
                "signed_by": record.signed_by,
                "backend": record.backend,
                "amounts": json.dumps(dict(record.amounts)),
                "payout_ids": list(record.payout_ids),
            },
        )


__all__ = ["SPEND_LOCK_KEY", "SqlSignerStore"]
