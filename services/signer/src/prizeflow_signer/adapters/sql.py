"""The signer's stores in PostgreSQL, each on the caller's session: append-only audit and spend rows, stored results
(one per request id), the last transaction signed per payout, and the runtime's outbox."""

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


class SqlResultStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, request_id: str) -> str | None:
        row = await self.session.execute(
            text("SELECT envelope FROM signer_results WHERE request_id = :r"), {"r": request_id}
        )
        value = row.scalar_one_or_none()
        return str(value) if value is not None else None

    async def save(self, request_id: str, outcome: str, envelope: str) -> None:
        await self.session.execute(
            text("INSERT INTO signer_results (request_id, outcome, envelope) VALUES (:r, :o, :e)"),
            {"r": request_id, "o": outcome, "e": envelope},
        )


class SqlSpendStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self) -> None:
        await self.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SPEND_LOCK_KEY})

    async def spent_in_window(self, assets: Sequence[str]) -> dict[str, int]:
        rows = await self.session.execute(
            text(
                "SELECT asset, coalesce(sum(amount), 0) FROM signer_spend "
                "WHERE asset = ANY(:assets) AND signed_at > now() - interval '24 hours' GROUP BY asset"
            ),
            {"assets": list(assets)},
        )
        return {str(asset): int(total) for asset, total in rows}

    async def record(self, request_id: str, amounts: Mapping[str, int]) -> None:
        if amounts:
            await self.session.execute(
                text("INSERT INTO signer_spend (request_id, asset, amount) VALUES (:r, :a, :n)"),
                [{"r": request_id, "a": asset, "n": amount} for asset, amount in amounts.items()],
            )


class SqlSignatureStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def live(self, payout_ids: Sequence[str]) -> dict[str, LiveSignature]:
        rows = await self.session.execute(
            text("SELECT payout_id, tx_hash, max_time FROM signer_payout_signatures WHERE payout_id = ANY(:ids)"),
            {"ids": list(payout_ids)},
        )
        return {str(p): LiveSignature(str(h), int(m)) for p, h, m in rows}

    async def record(
        self, *, request_id: str, tx_hash: str, max_time: int, payout_ids: Sequence[str], now: int
    ) -> None:
        """Upsert per payout; the table's trigger refuses replacing a transaction that can still land."""
        await self.session.execute(
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


class SqlAuditStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, record: AuditRecord) -> None:
        await self.session.execute(
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


class SqlOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def stage(self, envelope: Envelope[Any]) -> None:
        await add_event(self.session, envelope)

    async def stage_again(self, envelope: Envelope[Any]) -> None:
        """A row still in the outbox is still to go out; else the event is staged anew."""
        pending = await self.session.scalar(text("SELECT 1 FROM outbox WHERE event_id = :id"), {"id": envelope.id})
        if pending is None:
            await add_event(self.session, envelope)


__all__ = ["SPEND_LOCK_KEY", "SqlAuditStore", "SqlOutbox", "SqlResultStore", "SqlSignatureStore", "SqlSpendStore"]
