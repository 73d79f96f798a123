"""The sandbox provider: a real adapter for staging, demos and tests whose behaviour is scripted by configuration.

It stands in for an external payout rail and keeps that rail's own books in its own schema (`sandbox.*`,
reached over its own connection pool, never inside the payouts service's transactions):

- `sandbox.payouts`: one row per payout it accepted, keyed by OUR idempotency key (so a second create with the
  same key returns the first payout, as a real provider's idempotency does);
- `sandbox.transfers`: one row per money movement it executed; tests count these to prove "paid once";
- `sandbox.calls`: how many times each key was created / synced / cancelled (proves "synced, not re-created").

Its statement (the money movements it executed, for reconciliation) is `sandbox_statement.SandboxStatement`.

Scenario per payout: a `sandbox` destination whose address starts with `<scenario>:` uses that scenario, any
other destination the configured `default_scenario`. Built-in scenarios (configuration may add or override):

| scenario | behaviour |
|---|---|
| success | paid at once |
| pending | pending; `sync_status` answers pending `polls` times (default 2), then paid |
| pending_forever | pending until a webhook or an operator says otherwise |
| slow | `latency_ms` (default 500) then paid |
| flaky | provider_unavailable for the first `fail_times` (2) creates of a key, then paid |
| outage | provider_unavailable for everyone during `duration_ms` (default 2000) after its first call |
| timeout_after_success | executes the payout, then answers timeout_unknown_outcome (once per key) |
| fail_<code> | every PayoutErrorCode: retryable codes raise (nothing created), terminal ones answer failed |

A `refuse_<terminal code>:` address is refused before anything is created (`validate`), as a rail refuses a
destination it can never pay: the request ends in PayoutRequestRefused.
"""

# ruff: noqa: S608 - SQL names only the configured schema, validated as an identifier; values are bound
from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

import asyncpg

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError, is_retryable
from prizeflow_contracts.money import Money, apply_bps
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
    Quote,
    WebhookEvent,
)
from prizeflow_contracts.webhook_signatures import (
    PRIZEFLOW_SIGNATURE_HEADER,
    SignatureRefused,
    signature_header,
    verify,
)
from prizeflow_payouts.adapters.providers.sandbox_scenarios import Outcome, Scenario
from prizeflow_payouts.application.ports import CreateOutcome

NAME: Final = "sandbox"
REFUSE_PREFIX: Final = "refuse_"
# The sandbox signs its webhooks as the ingress verifies them: `Prizeflow-Signature: t=…,v1=…` (HMAC-SHA256 over
# `t.body`, prizeflow_contracts.webhook_signatures), in the Prizeflow webhook format (services/webhooks README).
SIGNATURE_HEADER: Final = PRIZEFLOW_SIGNATURE_HEADER
_SCHEMA_LOCK: Final = 0x5341_4E44_424F_5831  # "SANDBOX1"


SCHEMA_DDL: Final = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE IF NOT EXISTS {schema}.payouts (
        idempotency_key text PRIMARY KEY,
        payout_id text NOT NULL,
        provider_ref text NOT NULL UNIQUE,
        asset text NOT NULL,
        amount bigint NOT NULL CHECK (amount > 0),
        destination text NOT NULL,
        scenario text NOT NULL,
        status text NOT NULL CHECK (status IN ('pending', 'paid', 'failed', 'cancelled', 'returned')),
        error_code text,
        polls_left int NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp())""",
    """CREATE TABLE IF NOT EXISTS {schema}.transfers (
        id bigserial PRIMARY KEY,
        idempotency_key text NOT NULL,
        asset text NOT NULL,
        amount bigint NOT NULL,
        executed_at timestamptz NOT NULL DEFAULT clock_timestamp())""",
    "CREATE INDEX IF NOT EXISTS transfers_key ON {schema}.transfers (idempotency_key)",
    "CREATE INDEX IF NOT EXISTS transfers_executed ON {schema}.transfers (executed_at, id)",
    """CREATE TABLE IF NOT EXISTS {schema}.calls (
        idempotency_key text PRIMARY KEY,
        create_calls int NOT NULL DEFAULT 0,
        sync_calls int NOT NULL DEFAULT 0,
        cancel_calls int NOT NULL DEFAULT 0)""",
    "CREATE TABLE IF NOT EXISTS {schema}.windows (scenario text PRIMARY KEY, started_at timestamptz NOT NULL)",
)


def sign_webhook(secret: str, body: bytes, *, at: int | None = None) -> str:
    """The `Prizeflow-Signature` value the sandbox puts on its webhooks (and tests sign honest ones with)."""
    return signature_header(secret, int(time.time()) if at is None else at, body)


class SandboxPayoutProvider:
    """A scripted payout rail with books of its own. Idempotent per key, like the real ones it stands in for."""

    provider_type = ProviderType.SANDBOX

    def __init__(
        self,
        *,
        dsn: str,
        scenarios: Mapping[str, Scenario],
        default_scenario: str,
        fee_bps: int = 0,
        webhook_secret: str | None = None,
        schema: str = "sandbox",
        pool_size: int = 10,
        statement_page_size: int = 500,
    ) -> None:
        self._dsn = dsn
        self._scenarios = dict(scenarios)
        self._default = default_scenario
        self._fee_bps = fee_bps
        self._webhook_secret = webhook_secret
        self._schema = schema
        self._pool_size = pool_size
        self.statement_page_size = statement_page_size
        self._pool: asyncpg.Pool | None = None
        self._start_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._pool is not None:
                return
            pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_size)
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                    # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists: a
                    # service running as its runtime role (no DDL on the database) finds it made beforehand.
                    exists = await conn.fetchval("SELECT to_regnamespace($1) IS NOT NULL", self._schema)
                    for ddl in SCHEMA_DDL[1:] if exists else SCHEMA_DDL:
                        await conn.execute(ddl.format(schema=self._schema))
            except BaseException:
                await pool.close()  # a failed start (database down) is retried whole, without a leaked pool
                raise
            self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        return self._pool

    def table(self, table: str) -> str:
        return f"{self._schema}.{table}"

    def scenario_for(self, instruction: PayoutInstruction) -> Scenario:
        dest = instruction.destination
        if dest.type is DestinationType.SANDBOX:
            name = dest.address.split(":", 1)[0]
            if name in self._scenarios:
                return self._scenarios[name]
        return self._scenarios[self._default]

    def validate(self, instruction: PayoutInstruction) -> PayoutError | None:
        """A rail refuses some destinations before anything exists (a malformed account, a closed market): the
        sandbox refuses a `refuse_<terminal code>:` address with that code, so the refusal path can be driven."""
        dest = instruction.destination
        if dest.type is not DestinationType.SANDBOX or not dest.address.startswith(REFUSE_PREFIX):
            return None
        try:
            code = PayoutErrorCode(dest.address.removeprefix(REFUSE_PREFIX).split(":", 1)[0])
        except ValueError:
            return None
        if is_retryable(code):
            return None
        return PayoutError.of(code, "the sandbox refuses this destination up front", provider=NAME)

    # -- RewardPayoutProvider -------------------------------------------------------------------------------
    async def quote(self, instruction: PayoutInstruction) -> Quote:
        money = instruction.amount
        fee = apply_bps(money.amount, self._fee_bps)
        return Quote(
            quote_id=f"sbxq-{instruction.idempotency_key}"[:255],
            amount=money,
            fee=Money(asset=money.asset, amount=fee),
            receive_amount=Money(asset=money.asset, amount=money.amount - fee),
        )

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        (outcome,) = await self.create_payouts([instruction])
        if isinstance(outcome, PayoutProviderError):
            raise outcome
        return outcome

    async def create_payouts(self, instructions: Sequence[PayoutInstruction]) -> list[CreateOutcome]:  # noqa: PLR0912 - one pass over a scripted batch
        """Batch create: one round trip for the call counters, one transaction for what gets executed."""
        if not instructions:
            return []
        scenarios = [self.scenario_for(i) for i in instructions]
        latency = max((s.latency_ms for s in scenarios if s.outcome is Outcome.SLOW), default=0)
        if latency:
            await asyncio.sleep(latency / 1000)
        pool = await self.pool()
        keys = [i.idempotency_key for i in instructions]
        async with pool.acquire() as conn, conn.transaction():
            counts = dict(
                await conn.fetch(
                    f"""INSERT INTO {self.table("calls")} AS c (idempotency_key, create_calls)
                        SELECT k, count(*) FROM unnest($1::text[]) AS k GROUP BY k
                        ON CONFLICT (idempotency_key)
                        DO UPDATE SET create_calls = c.create_calls + EXCLUDED.create_calls
                        RETURNING idempotency_key, create_calls""",
                    keys,
                )
            )
            outage_open = await self._outage_windows(conn, {s for s in scenarios if s.outcome is Outcome.OUTAGE})
            existing = await self._existing(conn, keys)
            results: list[CreateOutcome | None] = [None] * len(instructions)
            to_insert: list[tuple[int, PayoutInstruction, Scenario, str, str | None, int]] = []
            for n, (instr, scenario) in enumerate(zip(instructions, scenarios, strict=True)):
                row = existing.get(instr.idempotency_key)
                if row is not None:
                    results[n] = self._replay(instr, row)
                    continue
                calls = int(counts.get(instr.idempotency_key, 1))
                decided = self._decide(instr, scenario, calls, outage_open)
                if isinstance(decided, PayoutProviderError):
                    results[n] = decided
                else:
                    status, code, polls = decided
                    to_insert.append((n, instr, scenario, status, code, polls))
            if to_insert:
                inserted = await self._insert(conn, to_insert)
                for n, instr, scenario, status, code, _ in to_insert:
                    if instr.idempotency_key not in inserted:
                        continue  # a concurrent create with the same key won; read it below
                    result = self._result(instr.idempotency_key, inserted[instr.idempotency_key], status, code)
                    if scenario.outcome is Outcome.TIMEOUT_AFTER_SUCCESS:
                        results[n] = PayoutProviderError.of(
                            PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME,
                            "sandbox: executed, then the answer was lost",
                            provider=NAME,
                        )
                    else:
                        results[n] = result
            missing = [instructions[n].idempotency_key for n, r in enumerate(results) if r is None]
            if missing:
                raced = await self._existing(conn, missing)
                for n, r in enumerate(results):
                    if r is None:
                        results[n] = self._replay(instructions[n], raced[instructions[n].idempotency_key])
        return [r for r in results if r is not None]

    def _decide(
        self, instr: PayoutInstruction, scenario: Scenario, calls: int, outage_open: set[str]
    ) -> PayoutProviderError | tuple[str, str | None, int]:
        o = scenario.outcome
        if o is Outcome.OUTAGE and scenario.name in outage_open:
            return PayoutProviderError.of(PayoutErrorCode.PROVIDER_UNAVAILABLE, "sandbox: outage", provider=NAME)
        if o is Outcome.FAILURE:
            assert scenario.code is not None
            if is_retryable(scenario.code):
                if scenario.fail_times is None or calls <= scenario.fail_times:
                    return PayoutProviderError.of(
                        scenario.code,
                        f"sandbox: scripted {scenario.code.value}",
                        provider=NAME,
                        provider_code=f"SBX_{scenario.code.value.upper()}",
                    )
            else:
                return ("failed", scenario.code.value, 0)
        if o is Outcome.PENDING:
            return ("pending", None, scenario.polls)
        return ("paid", None, 0)

    async def _outage_windows(self, conn: asyncpg.Connection, scenarios: set[Scenario]) -> set[str]:
        """Names of outage scenarios whose window (from their first call, shared by all processes) is open."""
        open_now = set()
        for s in scenarios:
            started = await conn.fetchval(
                f"""INSERT INTO {self.table("windows")} (scenario, started_at) VALUES ($1, clock_timestamp())
                    ON CONFLICT (scenario) DO UPDATE SET scenario = EXCLUDED.scenario RETURNING started_at""",
                s.name,
            )
            if (datetime.now(UTC) - started).total_seconds() * 1000 < s.duration_ms:
                open_now.add(s.name)
        return open_now

    async def _existing(self, conn: asyncpg.Connection, keys: Sequence[str]) -> dict[str, asyncpg.Record]:
        rows = await conn.fetch(
            # A join, not `= ANY(array)`: with the table's statistics behind its growth the planner scans it, and
            # an array filter over a scan costs rows x keys (72 ms a batch at 20k rows); a join is linear either way.
            f"""SELECT p.idempotency_key, p.provider_ref, p.asset, p.amount, p.destination, p.status, p.error_code
                FROM {self.table("payouts")} p JOIN unnest($1::text[]) AS k(key) ON p.idempotency_key = k.key""",
            list(keys),
        )
        return {r["idempotency_key"]: r for r in rows}

    async def _insert(
        self, conn: asyncpg.Connection, rows: Sequence[tuple[int, PayoutInstruction, Scenario, str, str | None, int]]
    ) -> dict[str, str]:
        inserted = await conn.fetch(
            f"""INSERT INTO {self.table("payouts")}
                  (idempotency_key, payout_id, provider_ref, asset, amount, destination, scenario, status,
                   error_code, polls_left)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                                     $7::text[], $8::text[], $9::text[], $10::int[])
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING idempotency_key, provider_ref, status, asset, amount""",
            [i.idempotency_key for _, i, *_ in rows],
            [i.payout_id for _, i, *_ in rows],
            [f"sbx-{hashlib.sha256(i.idempotency_key.encode()).hexdigest()[:24]}" for _, i, *_ in rows],
            [i.amount.asset for _, i, *_ in rows],
            [i.amount.amount for _, i, *_ in rows],
            [_dest(i) for _, i, *_ in rows],
            [s.name for _, _, s, *_ in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
            [r[5] for r in rows],
        )
        paid = [r for r in inserted if r["status"] == "paid"]
        if paid:
            await self._transfer(conn, paid)
        return {r["idempotency_key"]: r["provider_ref"] for r in inserted}

    async def _transfer(self, conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> None:
        """The money movement itself: exactly one row per executed payout (what "paid once" is checked on)."""
        await conn.execute(
            f"""INSERT INTO {self.table("transfers")} (idempotency_key, asset, amount)
                SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])""",
            [r["idempotency_key"] for r in rows],
            [r["asset"] for r in rows],
            [r["amount"] for r in rows],
        )

    def _replay(self, instr: PayoutInstruction, row: asyncpg.Record) -> ProviderPayoutResult:
        if (
            row["asset"] != instr.amount.asset
            or row["amount"] != instr.amount.amount
            or row["destination"] != _dest(instr)
        ):
            return ProviderPayoutResult(
                status=ProviderPayoutStatus.FAILED,
                idempotency_key=instr.idempotency_key,
                provider_ref=row["provider_ref"],
                error=PayoutError.of(
                    PayoutErrorCode.DUPLICATE_REQUEST,
                    "sandbox: this idempotency key was used for a different payout",
                    provider=NAME,
                ),
                raw_status="duplicate",
            )
        return self._result(instr.idempotency_key, row["provider_ref"], row["status"], row["error_code"])

    def _result(self, key: str, ref: str, status: str, code: str | None) -> ProviderPayoutResult:
        error = None
        if status == "failed":
            assert code is not None
            error = PayoutError.of(
                PayoutErrorCode(code), f"sandbox: scripted {code}", provider=NAME, provider_code=f"SBX_{code.upper()}"
            )
        return ProviderPayoutResult(
            status=ProviderPayoutStatus(status), idempotency_key=key, provider_ref=ref, error=error, raw_status=status
        )

    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        pool = await self.pool()
        async with pool.acquire() as conn:
            await self._count(conn, lookup.idempotency_key, "sync_calls")  # counted even when the answer is an error
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""SELECT idempotency_key, provider_ref, asset, amount, status, error_code, polls_left
                    FROM {self.table("payouts")} WHERE idempotency_key = $1 FOR UPDATE""",
                lookup.idempotency_key,
            )
            if row is None:
                raise PayoutProviderError.of(
                    PayoutErrorCode.PAYOUT_NOT_FOUND, "sandbox: no payout under this idempotency key", provider=NAME
                )
            status = row["status"]
            if status == "pending" and row["polls_left"] == 0:
                await conn.execute(
                    f"UPDATE {self.table('payouts')} SET status = 'paid', updated_at = clock_timestamp() "
                    "WHERE idempotency_key = $1",
                    lookup.idempotency_key,
                )
                await self._transfer(conn, [row])
                status = "paid"
            elif status == "pending" and row["polls_left"] > 0:
                await conn.execute(
                    f"UPDATE {self.table('payouts')} SET polls_left = polls_left - 1 WHERE idempotency_key = $1",
                    lookup.idempotency_key,
                )
        return self._result(lookup.idempotency_key, row["provider_ref"], status, row["error_code"])

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        pool = await self.pool()
        async with pool.acquire() as conn:
            await self._count(conn, lookup.idempotency_key, "cancel_calls")  # counted even when the answer is an error
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT provider_ref, status FROM {self.table('payouts')} WHERE idempotency_key = $1 FOR UPDATE",
                lookup.idempotency_key,
            )
            if row is None:
                raise PayoutProviderError.of(
                    PayoutErrorCode.PAYOUT_NOT_FOUND, "sandbox: no payout under this idempotency key", provider=NAME
                )
            if row["status"] not in ("pending", "cancelled"):
                raise PayoutProviderError.of(
                    PayoutErrorCode.NOT_CANCELLABLE, f"sandbox: payout is {row['status']}", provider=NAME
                )
            await conn.execute(
                f"UPDATE {self.table('payouts')} SET status = 'cancelled', updated_at = clock_timestamp() "
                "WHERE idempotency_key = $1",
                lookup.idempotency_key,
            )
        return self._result(lookup.idempotency_key, row["provider_ref"], "cancelled", None)

    async def _count(self, conn: asyncpg.Connection, key: str, column: str) -> None:
        await conn.execute(
            f"""INSERT INTO {self.table("calls")} AS c (idempotency_key, {column}) VALUES ($1, 1)
                ON CONFLICT (idempotency_key) DO UPDATE SET {column} = c.{column} + 1""",
            key,
        )

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify `Prizeflow-Signature` (±300 s) over the raw body, then read the Prizeflow webhook format."""
        if self._webhook_secret is None:
            raise PayoutProviderError.of(
                PayoutErrorCode.WEBHOOK_SIGNATURE_INVALID, "sandbox: no webhook secret configured", provider=NAME
            )
        try:
            verify(headers, body, header_name=SIGNATURE_HEADER, secrets=[self._webhook_secret], now=time.time())
        except SignatureRefused as err:
            raise PayoutProviderError.of(
                PayoutErrorCode.WEBHOOK_SIGNATURE_INVALID, f"sandbox: {err.reason.value}", provider=NAME
            ) from None
        try:
            doc = json.loads(body)
            status = ProviderPayoutStatus(doc["status"]) if doc.get("status") else None
            code = doc.get("error_code")
            error = PayoutError.of(PayoutErrorCode(code), f"sandbox: {code}", provider=NAME) if code else None
            return WebhookEvent(
                provider=ProviderType.SANDBOX,
                provider_event_id=doc["event_id"],
                kind=doc["kind"],
                verified=True,
                provider_payout_ref=doc.get("provider_ref"),
                idempotency_key=doc.get("idempotency_key"),
                status=status,
                error=error,
                occurred_at=doc.get("occurred_at"),
                payload_digest=hashlib.sha256(body).hexdigest(),
            )
        except (KeyError, ValueError, TypeError) as err:
            raise PayoutProviderError.of(
                PayoutErrorCode.INVALID_REQUEST, f"sandbox: malformed webhook: {type(err).__name__}", provider=NAME
            ) from err


def _dest(instruction: PayoutInstruction) -> str:
    d = instruction.destination
    return f"{d.type.value}:{d.address}" + (f":{d.memo}" if d.memo else "")


__all__ = [
    "SIGNATURE_HEADER",
    "Outcome",
    "SandboxPayoutProvider",
    "Scenario",
    "sign_webhook",
]
