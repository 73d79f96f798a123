"""The sandbox rail's statement (its `statement` part): the money movements the sandbox executed, as reconciliation
reads a rail's own books."""

# ruff: noqa: S608 - SQL names only the configured schema, validated as an identifier; values are bound

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import DestinationType, StatementLine, StatementLineKind, StatementPage
from prizeflow_payouts.adapters.providers.sandbox import NAME, SandboxPayoutProvider


@dataclass(frozen=True, slots=True)
class SandboxStatement:
    provider: SandboxPayoutProvider

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """One PAYOUT line per money movement the sandbox executed in [since, until) (`sandbox.transfers`): line id
        `sbx-transfer-<id>`, `reference` = our idempotency key, `provider_ref` = the sandbox's payout reference,
        `destination` = the payout's address. No fees (the sandbox charges none on a payout) and no reversals (it
        never reverses one). Keyset-paged by (executed_at, id)."""
        try:
            after = _decode(cursor, since)
        except ValueError:
            raise PayoutProviderError.of(
                PayoutErrorCode.INVALID_REQUEST, "sandbox: not a cursor of this statement", provider=NAME
            ) from None
        pool = await self.provider.pool()
        transfers, payouts = self.provider.table("transfers"), self.provider.table("payouts")
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT t.id, t.asset, t.amount, t.executed_at, t.idempotency_key, p.provider_ref, p.destination
                    FROM {transfers} t JOIN {payouts} p USING (idempotency_key)
                    WHERE t.executed_at >= $1 AND t.executed_at < $2 AND (t.executed_at, t.id) > ($3, $4)
                    ORDER BY t.executed_at, t.id
                    LIMIT $5""",
                since,
                until,
                after[0],
                after[1],
                self.provider.statement_page_size,
            )
        lines = tuple(
            StatementLine(
                line_id=f"sbx-transfer-{r['id']}",
                kind=StatementLineKind.PAYOUT,
                occurred_at=r["executed_at"],
                asset=r["asset"],
                amount=int(r["amount"]),
                reference=r["idempotency_key"],
                provider_ref=r["provider_ref"],
                destination=_address(r["destination"]),
                raw_type="transfer",
            )
            for r in rows
        )
        last = rows[-1] if len(rows) >= self.provider.statement_page_size else None
        return StatementPage(
            lines=lines, next_cursor=f"{last['executed_at'].isoformat()}|{last['id']}" if last is not None else None
        )


def _address(stored: str) -> str:
    """The payout's destination address out of the sandbox's `<type>:<address>[:<memo>]`. A `sandbox` address may
    hold colons itself (`<scenario>:...`): it is kept whole (a memo on one would stay in it); any other type's
    address has none, so what follows one is the memo."""
    kind, _, rest = stored.partition(":")
    return rest if kind == DestinationType.SANDBOX.value else rest.partition(":")[0]


def _decode(cursor: str | None, since: datetime) -> tuple[datetime, int]:
    if cursor is None:
        return since, 0
    at, sep, last = cursor.partition("|")
    when = datetime.fromisoformat(at)
    if not sep or not last.isdigit() or when.tzinfo is None:
        raise ValueError(cursor)
    return when, int(last)


__all__ = ["SandboxStatement"]
