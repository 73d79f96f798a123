"""Two-person ledger corrections: propose, approve (another person: one compensating transfer), reject; and the
ledger's transfers by flow or account, to find what to correct. Every decision is audited with its change.

Never an edited row: a mistake in the ledger is compensated by a new transfer (kind `correction`) in the ledger's
normal rules, once one person proposed it and a second approved it (`domain/corrections.py`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.common import Clock, audit, count_transfers, ledger_refusal, utcnow
from prizeflow_rewards.application.ports import TransferRecord
from prizeflow_rewards.domain.corrections import (
    AccountNameError,
    Correction,
    CorrectionStatus,
    account_name,
    parse_account,
)
from prizeflow_rewards.domain.ledger import AccountKind, AccountRef, LedgerError, TransferFlags
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.principal import Principal
from prizeflow_runtime.uow import UnitOfWork


class CorrectionError(UseCaseError):
    """A correction that cannot be proposed or decided; `code` is stable (problem details)."""


def correction_not_found(correction_id: str) -> CorrectionError:
    return CorrectionError(ErrorKind.NOT_FOUND, "correction_not_found", f"no ledger correction {correction_id}")


def _account(name: str, asset: str) -> AccountRef:
    try:
        return parse_account(name, asset)
    except AccountNameError as err:
        raise CorrectionError(ErrorKind.INVALID, "invalid_account", str(err)) from err


@dataclass(frozen=True, slots=True)
class Proposal:
    debit_account: str
    credit_account: str
    asset: str
    amount: int
    reason: str
    reference: str
    corrects_transfer_id: uuid.UUID | None = None


@dataclass
class ProposeCorrection:
    """Propose a compensating transfer. The same reference proposes once: again with the same body it answers
    the correction it made; with another body it is refused (`reference_conflict`)."""

    uow: UnitOfWork[Books]
    source: str
    clock: Clock = utcnow

    async def __call__(self, actor: Principal, proposal: Proposal, *, correlation_id: str) -> tuple[Correction, bool]:
        async def propose(books: Books) -> tuple[Correction, bool]:
            return await self._propose(books, actor, proposal, correlation_id=correlation_id)

        return await self.uow.run(propose)

    async def _propose(
        self, books: Books, actor: Principal, proposal: Proposal, *, correlation_id: str
    ) -> tuple[Correction, bool]:
        p = proposal
        debit, credit = _account(p.debit_account, p.asset), _account(p.credit_account, p.asset)
        if debit == credit:
            raise CorrectionError(ErrorKind.INVALID, "same_account", "a correction moves money between two accounts")
        flow = correlation_id
        if p.corrects_transfer_id is not None:
            corrected = await books.ledger_book.transfer(p.corrects_transfer_id)
            if corrected is None:
                raise CorrectionError(
                    ErrorKind.INVALID, "unknown_transfer", f"no ledger transfer {p.corrects_transfer_id} to correct"
                )
            if corrected.asset != p.asset:
                raise CorrectionError(
                    ErrorKind.INVALID,
                    "asset_mismatch",
                    f"transfer {corrected.id} is in {corrected.asset}, the correction in {p.asset}",
                )
            flow = corrected.correlation_id or flow  # the correction joins the story of what it corrects
        proposed = Correction(
            id=f"lc-{uuid.uuid4().hex}",
            reference=p.reference,
            debit=debit,
            credit=credit,
            amount=p.amount,
            reason=p.reason,
            corrects_transfer_id=p.corrects_transfer_id,
            correlation_id=flow,
            proposed_by=actor.user_id,
            proposed_at=self.clock(),
        )
        existing = await books.corrections.by_reference(p.reference)
        if existing is None:
            missing = {debit.id, credit.id} - await books.ledger_book.existing([debit, credit])
            if missing:
                names = sorted(account_name(r) for r in (debit, credit) if r.id in missing)
                raise CorrectionError(
                    ErrorKind.CONFLICT, "unknown_account", f"no such account in {p.asset}: {', '.join(names)}"
                )
            if await books.corrections.add(proposed):
                await audit(
                    books.outbox,
                    source=self.source,
                    actor=actor,
                    action="ledger_correction.propose",
                    target_type="ledger_correction",
                    target_id=proposed.id,
                    correlation_id=proposed.correlation_id,
                    reason=p.reason,
                    after=_summary(proposed),
                )
                return proposed, True
            existing = await books.corrections.by_reference(p.reference)  # proposed meanwhile
            assert existing is not None, "a reference the database refused exists"
        if not existing.same_proposal(proposed):
            raise CorrectionError(
                ErrorKind.CONFLICT,
                "reference_conflict",
                f"reference {p.reference} already proposed correction {existing.id} with another body",
            )
        return existing, False


@dataclass
class DecideCorrection:
    """Approve (a different person than the proposer: ONE compensating transfer, in the ledger's normal rules)
    or reject a proposed correction. The correction row is locked first, then its accounts: two approvals at once
    apply it once; the same approver asking again gets the applied correction back."""

    uow: UnitOfWork[Books]
    source: str
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def approve(self, actor: Principal, correction_id: str, *, reason: str | None) -> Correction:
        async def approve(books: Books) -> Correction:
            return await self._approve(books, actor, correction_id, reason=reason)

        return await self.uow.run(approve)

    async def reject(self, actor: Principal, correction_id: str, *, reason: str) -> Correction:
        async def reject(books: Books) -> Correction:
            return await self._reject(books, actor, correction_id, reason=reason)

        return await self.uow.run(reject)

    async def _approve(self, books: Books, actor: Principal, correction_id: str, *, reason: str | None) -> Correction:
        c = await _locked(books, correction_id)
        if c.status is CorrectionStatus.APPLIED and c.approved_by == actor.user_id:
            return c  # a retry of this approval
        self._check(c, actor, CorrectionStatus.APPLIED)
        transfer = c.transfer()
        # Accounts never disappear, but the ledger creates the ones it locks: check first, then lock.
        missing = {c.debit.id, c.credit.id} - await books.ledger_book.existing([c.debit, c.credit])
        if missing:
            raise CorrectionError(ErrorKind.CONFLICT, "unknown_account", f"correction {c.id}: an account is gone")
        await books.ledger.declare([c.debit, c.credit])
        try:
            result = await books.ledger.apply([transfer])
        except LedgerError as err:  # e.g. `exceeds_credits`: the correction would overdraw a wallet or a pool
            refusal = ledger_refusal(err)
            raise CorrectionError(refusal.kind, refusal.code, f"correction {c.id}: {refusal.detail}") from err
        count_transfers(self.metrics, result)
        applied = replace(
            c,
            status=CorrectionStatus.APPLIED,
            approved_by=actor.user_id,
            approved_at=self.clock(),
            decision_reason=reason,
            transfer_id=transfer.id,
        )
        await books.corrections.decide(applied)
        await self._audit(books, actor, applied, "approve", reason)
        return applied

    async def _reject(self, books: Books, actor: Principal, correction_id: str, *, reason: str) -> Correction:
        c = await _locked(books, correction_id)
        self._check(c, actor, CorrectionStatus.REJECTED)
        rejected = replace(
            c,
            status=CorrectionStatus.REJECTED,
            rejected_by=actor.user_id,
            rejected_at=self.clock(),
            decision_reason=reason,
        )
        await books.corrections.decide(rejected)
        await self._audit(books, actor, rejected, "reject", reason)
        return rejected

    @staticmethod
    def _check(c: Correction, actor: Principal, target: CorrectionStatus) -> None:
        refusal = c.refusal_to_decide(actor.user_id, target)
        if refusal is not None:
            code, detail = refusal
            kind = ErrorKind.FORBIDDEN if code in {"same_person", "own_account"} else ErrorKind.CONFLICT
            raise CorrectionError(kind, code, detail, correction_status=c.status.value)

    async def _audit(self, books: Books, actor: Principal, c: Correction, verb: str, reason: str | None) -> None:
        await audit(
            books.outbox,
            source=self.source,
            actor=actor,
            action=f"ledger_correction.{verb}",
            target_type="ledger_correction",
            target_id=c.id,
            correlation_id=c.correlation_id,
            reason=reason,
            before={"status": CorrectionStatus.PROPOSED.value},
            after={"status": c.status.value, "transfer_id": c.transfer_id or ""},
        )


async def _locked(books: Books, correction_id: str) -> Correction:
    c = await books.corrections.get(correction_id, lock=True)
    if c is None:
        raise correction_not_found(correction_id)
    return c


def _summary(c: Correction) -> dict[str, object]:
    return {
        "debit_account": account_name(c.debit),
        "credit_account": account_name(c.credit),
        "asset": c.asset,
        "amount": c.amount,
        "reference": c.reference,
        "corrects_transfer_id": c.corrects_transfer_id or "",
    }


@dataclass
class LedgerReads:
    """Corrections and transfers, for operators: each read in one transaction of its own."""

    uow: UnitOfWork[Books]

    async def correction(self, correction_id: str) -> Correction:
        async with self.uow() as books:
            c = await books.corrections.get(correction_id)
        if c is None:
            raise correction_not_found(correction_id)
        return c

    async def list_corrections(self, *, status: CorrectionStatus | None, limit: int) -> list[Correction]:
        async with self.uow() as books:
            return await books.corrections.list(status=status, limit=limit)

    async def transfers(
        self, *, correlation_id: str | None, account: str | None, before_seq: int | None, limit: int
    ) -> list[TransferRecord]:
        """Newest first. `account`: `<kind>:<owner>` (every asset of it)."""
        owner: tuple[AccountKind, str] | None = None
        if account is not None:
            ref = _account(account, "-")  # the asset is not part of the filter
            owner = (ref.kind, ref.owner)
        async with self.uow() as books:
            return await books.ledger_book.transfers(
                correlation_id=correlation_id, account=owner, before_seq=before_seq, limit=limit
            )


def transfer_view(t: TransferRecord) -> dict[str, Any]:
    flags = TransferFlags(t.flags)
    state = (
        "pending"
        if flags & TransferFlags.PENDING
        else "post"
        if flags & TransferFlags.POST_PENDING
        else "void"
        if flags & TransferFlags.VOID_PENDING
        else "posted"
    )
    return {
        "transfer_id": str(t.id),
        "seq": t.seq,
        "kind": t.kind,
        "debit_account": account_name(t.debit),
        "credit_account": account_name(t.credit),
        "asset": t.asset,
        "amount": t.amount,
        "state": state,
        "pending_id": str(t.pending_id) if t.pending_id else None,
        "business_key": t.business_key,
        "correlation_id": t.correlation_id,
        "created_at": t.created_at.isoformat(),
    }


__all__ = [
    "CorrectionError",
    "DecideCorrection",
    "LedgerReads",
    "Proposal",
    "ProposeCorrection",
    "correction_not_found",
    "transfer_view",
]
