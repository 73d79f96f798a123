"""The sandbox checkout provider: no external service, no money. Its sessions live in rewards' own table
(`sandbox_checkout_sessions`) with a sandbox URL; nothing completes one but `complete`, which only the dev
profile exposes (`POST /sandbox/checkout/{session_ref}/complete`). It takes Stripe's currency codes, behaves
like Stripe Checkout (idempotent on the top-up id, open → complete/paid or expired) and its payments are
reported the way Stripe's are read back by a verify call; it never sends webhooks.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_rewards.application.common import Clock, utcnow
from prizeflow_rewards.application.ports import (
    CheckoutRefusedError,
    CheckoutRequest,
    CheckoutSession,
    CheckoutUnavailableError,
)

_NS = uuid.UUID("5d0c6f0e-2a1b-4e59-9a7e-3c1f0b9d2e77")
_SELECT = text(
    "SELECT id, top_up_id, amount, currency, status, payment_status, payment_ref, expires_at "
    "FROM sandbox_checkout_sessions WHERE id = :id"
)
_INSERT = text(
    "INSERT INTO sandbox_checkout_sessions (id, top_up_id, amount, currency, status, payment_status, metadata, "
    "expires_at) VALUES (:id, :t, :a, :c, 'open', 'unpaid', CAST(:m AS jsonb), :e) ON CONFLICT (top_up_id) DO NOTHING"
)
SANDBOX_TTL = timedelta(hours=24)  # as Stripe Checkout's default


def session_ref_for(top_up_id: str) -> str:
    return "sbx_cs_" + uuid.uuid5(_NS, top_up_id).hex


class SandboxCheckout:
    name = "sandbox"
    currency_scheme = "stripe"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, base_url: str, clock: Clock = utcnow) -> None:
        self._sessions = sessions
        self._base_url = base_url.rstrip("/")
        self._clock = clock

    def _url(self, ref: str) -> str:
        return f"{self._base_url}/sandbox/checkout/{ref}"

    async def create_session(self, request: CheckoutRequest) -> CheckoutSession:
        ref = session_ref_for(request.top_up_id)
        metadata = {
            "top_up_id": request.top_up_id,
            "player_id": request.player_id,
            "correlation_id": request.correlation_id,
        }
        try:
            async with self._sessions() as s, s.begin():
                await s.execute(
                    _INSERT,
                    {
                        "id": ref,
                        "t": request.top_up_id,
                        "a": request.amount,
                        "c": request.currency,
                        "m": json.dumps(metadata),
                        "e": self._clock() + SANDBOX_TTL,
                    },
                )
                row = (await s.execute(_SELECT, {"id": ref})).one()
        except (OSError, DBAPIError) as err:
            raise CheckoutUnavailableError(self.name, type(err).__name__) from err
        return self._session(row)

    async def retrieve_session(self, session_ref: str) -> CheckoutSession:
        try:
            async with self._sessions() as s:
                row = (await s.execute(_SELECT, {"id": session_ref})).first()
        except (OSError, DBAPIError) as err:
            raise CheckoutUnavailableError(self.name, type(err).__name__) from err
        if row is None:
            raise CheckoutRefusedError(self.name, "resource_missing", f"no sandbox session {session_ref}")
        return self._session(row)

    async def complete(self, session_ref: str, outcome: Literal["paid", "expired"]) -> CheckoutSession:
        """What a player does on the sandbox's checkout page (dev profile only): pay, or let it expire. A session
        that is no longer open stays as it is."""
        async with self._sessions() as s, s.begin():
            if outcome == "paid":
                await s.execute(
                    text(
                        "UPDATE sandbox_checkout_sessions SET status = 'complete', payment_status = 'paid', "
                        "payment_ref = :p WHERE id = :id AND status = 'open'"
                    ),
                    {"id": session_ref, "p": "sbx_pi_" + uuid.uuid5(_NS, session_ref).hex},
                )
            else:
                await s.execute(
                    text("UPDATE sandbox_checkout_sessions SET status = 'expired' WHERE id = :id AND status = 'open'"),
                    {"id": session_ref},
                )
        return await self.retrieve_session(session_ref)

    def _session(self, row: Any) -> CheckoutSession:
        expires_at: datetime = row.expires_at
        return CheckoutSession(
            session_ref=row.id,
            url=self._url(row.id),
            status=row.status,
            payment_status=row.payment_status,
            amount_total=row.amount,
            currency=row.currency,
            payment_ref=row.payment_ref,
            expires_at=expires_at,
            top_up_id=row.top_up_id,
        )


__all__ = ["SandboxCheckout", "session_ref_for"]
