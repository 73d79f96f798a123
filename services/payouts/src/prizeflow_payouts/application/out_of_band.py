"""What a person settles outside the rails, each audited with the change it makes: a manual payout's outcome
(paid with the bank's reference, or failed with its code), a provider's contradiction of a payout's final state
acknowledged (no money moves), and an envelope signed out of band handed in (build-only and external signing)."""

from __future__ import annotations

import hashlib
from typing import Any

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_contracts.providers import (
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
)
from prizeflow_payouts.application.actors import Actor, AdminError
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.decisions import OperatorDecisions
from prizeflow_payouts.application.rail import ExternalSigning
from prizeflow_payouts.domain.payout import HistoryEntry, Payout
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.audit import admin_action
from prizeflow_runtime.errors import ErrorKind

S = PayoutState


class SettleOutOfBand(OperatorDecisions):
    # -- manual provider outcomes -----------------------------------------------------------------------------
    async def _manual(self, books: Books, payout_id: str, actor: Actor) -> Payout:
        rec = await self._locked(books, payout_id)
        if self.registry.get(rec.provider_name).type is not ProviderType.MANUAL:
            raise AdminError(
                ErrorKind.CONFLICT, "not_manual", f"payout {rec.id} is paid by {rec.provider_name}, not by hand"
            )
        if actor.user_id == rec.player_id:  # paid by hand, then marked failed: the wallet would get it back too
            raise AdminError(
                ErrorKind.FORBIDDEN, "self_review", "nobody reports the outcome of a payout that pays them"
            )
        if rec.state is not S.SUBMITTED:
            raise AdminError(ErrorKind.CONFLICT, "not_submitted", f"payout {rec.id} is {rec.state.value}")
        return rec

    async def mark_paid(self, payout_id: str, actor: Actor, reference: str, reason: str | None) -> str:
        now = self.clock()
        async with self.uow() as books:
            rec = await self._manual(books, payout_id, actor)
            audit = self._audit(
                actor, "payout.mark_paid", rec, reason=reason, after={"state": "paid", "reference": reference}, now=now
            )
            result = ProviderPayoutResult(
                status=ProviderPayoutStatus.PAID, idempotency_key=rec.idempotency_key, provider_ref=reference
            )
            change = self.builder.from_result(
                rec,
                S.SUBMITTED,
                result,
                now=now,
                actor=actor.user_id,
                token=None,
                polls_status=False,
                cause=audit.id,
            )
            assert change is not None
            change.events.insert(0, audit)
            await self._commit(books, change, now)
        return S.PAID.value

    async def mark_failed(self, payout_id: str, actor: Actor, reason: str, code: PayoutErrorCode) -> str:
        now = self.clock()
        async with self.uow() as books:
            rec = await self._manual(books, payout_id, actor)
            error = PayoutError.of(code, reason, provider=rec.provider_name)
            change = self.builder.from_error(rec, S.SUBMITTED, error, now=now, actor=actor.user_id, token=None)
            audit = self._audit(
                actor, "payout.mark_failed", rec, reason=reason, after={"state": change.to.value}, now=now
            )
            change.events.insert(0, audit)
            await self._commit(books, change, now)
        return change.to.value

    # -- a provider that contradicts a payout's final state ---------------------------------------------------
    async def acknowledge_contradiction(self, disagreement_id: int, actor: Actor, reason: str) -> dict[str, Any]:
        """A person's decision on a contradiction between a provider and a payout's final state, on record (audited
        with the reason: what was found and done). It moves no money and no payout: correcting the books is a
        transfer of its own (docs/runbooks/final-state-contradicted.md)."""
        now = self.clock()
        async with self.uow() as books:
            row = await books.disagreements.acknowledge_disagreement(
                disagreement_id, by=actor.user_id, reason=reason, at=now
            )
            if row is None:
                raise AdminError(
                    ErrorKind.CONFLICT,
                    "not_a_contradiction",
                    f"disagreement {disagreement_id} is not a contradiction waiting for a person",
                )
            rec = await self._locked(books, row["payout_id"])
            if actor.user_id == rec.player_id:
                raise AdminError(ErrorKind.FORBIDDEN, "self_review", "nobody decides on a payout that pays them")
            audit = admin_action(
                actor_user_id=actor.user_id,
                actor_roles=actor.roles,
                action="payout.contradiction_acknowledged",
                target_type="payout",
                target_id=rec.id,
                reason=reason,
                before={
                    "state": rec.state.value,
                    "disagreement": str(disagreement_id),
                    "reported": row["reported"],
                    "provider_status_now": str(row["provider_status_now"]),
                },
                after={"disagreement": "acknowledged"},
                service=self.service,
                source=self.source,
                correlation_id=rec.correlation_id,
                occurred_at=now,
            )
            history = HistoryEntry(rec.state, rec.state, actor.user_id, reason=f"contradiction acknowledged: {reason}")
            await books.payouts.add_history([(rec.id, history)], at=now)
            await books.payouts.add_events([audit])
        return {"id": disagreement_id, "payout_id": rec.id, "status": "acknowledged"}

    # -- out-of-band signing (build-only and external signing) -----------------------------------------------
    async def _external_signing(self, payout_id: str) -> ExternalSigning:
        async with self.uow() as books:
            rec = await books.payouts.get(payout_id)
        if rec is None:
            raise AdminError(ErrorKind.NOT_FOUND, "payout_not_found", f"no payout {payout_id}")
        provider = self.registry.get(rec.provider_name).rail.external
        if provider is None:
            raise AdminError(
                ErrorKind.CONFLICT, "unsupported_operation", "this payout's provider has no transactions to sign"
            )
        return provider

    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any]:
        """The envelope built for this payout, to be signed out of band."""
        out = await (await self._external_signing(payout_id)).unsigned_transaction(payout_id)
        if out is None:
            raise AdminError(ErrorKind.NOT_FOUND, "payout_not_found", f"the provider holds no payout {payout_id}")
        return out

    async def submit_signed(self, payout_id: str, signed_xdr: str, actor: Actor) -> Any:
        """Hand an externally signed envelope to the provider; it raises `ExternalSigningError` (a
        `UseCaseError`) when it refuses it.

        The hand-in is audited first, in a transaction of its own (the rails mark the envelope signed in theirs):
        no signature reaches the network without a record of who handed it in, and a refused one is on record as
        an attempt. The audit names the envelope by its SHA-256, never the envelope itself."""
        signing = await self._external_signing(payout_id)
        now = self.clock()
        async with self.uow() as books:
            rec = await self._locked(books, payout_id)
            envelope = hashlib.sha256(signed_xdr.encode()).hexdigest()
            await books.payouts.add_events(
                [
                    self._audit(
                        actor, "payout.submit_signed", rec, reason=None, after={"envelope_sha256": envelope}, now=now
                    )
                ]
            )
        return await signing.submit_signed(payout_id, signed_xdr)


__all__ = ["SettleOutOfBand"]
