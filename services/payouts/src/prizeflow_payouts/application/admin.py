"""Admin use cases on a payout's way: approve, reject, cancel, retry, and quote a payout before it is asked for.

Refusals are `AdminError`s (a `UseCaseError`: stable code, `ErrorKind`), rendered once by the HTTP app.
Each decision is audited (AdminActionRecorded: who, roles, why, correlation id, before/after) in the same
transaction as the change and its payout events (`OperatorDecisions`). What a person settles outside the rails
(a manual payout's outcome, a contradiction, an envelope signed out of band) is `SettleOutOfBand`'s.
"""

from __future__ import annotations

from prizeflow_contracts.envelope import Envelope, OutgoingEvent
from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.payouts import (
    REQUIRED_APPROVERS,
    PayoutApproved,
    PayoutCancelled,
    PayoutRejected,
)
from prizeflow_contracts.holds import payout_hold
from prizeflow_contracts.providers import (
    PayoutInstruction,
    ProviderPayoutStatus,
    ProviderType,
    Quote,
)
from prizeflow_payouts.application.actors import Actor, AdminError
from prizeflow_payouts.application.decisions import OperatorDecisions
from prizeflow_payouts.application.events import payout_event
from prizeflow_payouts.application.holds import hold_code, release_hold
from prizeflow_payouts.application.registry import NoRouteError
from prizeflow_payouts.domain.approval import ApprovalRefusedError, check_decider, record_approval
from prizeflow_payouts.domain.gate import (
    GateDecision,
)
from prizeflow_payouts.domain.payout import Change, Payout
from prizeflow_payouts.domain.retry import UNKNOWN_OUTCOME_CODES
from prizeflow_payouts.domain.state import CANCELLABLE_LOCALLY, PayoutState
from prizeflow_runtime.errors import ErrorKind

S = PayoutState


_REFUSAL_KIND = {"approver_role_required": ErrorKind.FORBIDDEN, "self_approval": ErrorKind.FORBIDDEN}


class PayoutAdmin(OperatorDecisions):
    # -- approvals --------------------------------------------------------------------------------------------
    async def approve(self, payout_id: str, actor: Actor, reason: str | None) -> str:
        if self.gate is not None:
            await self.gate.catch_up()  # a release is gated against the newest stored lists
        now = self.clock()
        async with self.uow() as books:
            rec = await self._locked(books, payout_id, state=S.PENDING_APPROVAL)
            kind = payout_hold(rec.hold_code)
            if rec.hold_code is not None and kind is None:
                # A kind a newer release added (a rolling deploy, a rollback): who may release it, and what its gate
                # checks, this build does not know. Fail closed: a pod that knows it decides; it may be rejected.
                self._refused("unknown_hold")
                raise AdminError(
                    ErrorKind.CONFLICT, "unknown_hold", f"held as {rec.hold_code!r}, a kind this build does not know"
                )
            if kind is not None and kind.refused_with is not None:
                # A hold people may not release (the player's verification, the re-screen): its kind says why.
                self._refused(kind.refused_with)
                raise AdminError(ErrorKind.CONFLICT, kind.refused_with, kind.refusal_detail or kind.label)
            approvers = await books.payouts.approvers(rec.id)
            try:
                complete = record_approval(
                    policy=rec.approval_policy,
                    user_id=actor.user_id,
                    roles=actor.roles,
                    requested_by=rec.requested_by,
                    beneficiary=rec.player_id,
                    approvers=approvers,
                )
            except ApprovalRefusedError as err:
                raise self._refusal(err) from err
            if not await books.payouts.add_approval(
                rec.id, actor.user_id, reason=reason, correlation_id=actor.correlation_id, at=now
            ):
                self._refused("already_approved")
                raise AdminError(
                    ErrorKind.CONFLICT, "already_approved", f"{actor.user_id} already approved this payout"
                )
            approved_by = [*approvers, actor.user_id]
            progress = f"{len(approved_by)}/{REQUIRED_APPROVERS[rec.approval_policy]}"
            still: GateDecision | None = None
            if complete and rec.hold_code is not None:
                still = await release_hold(self.gate, books, rec, approved_by, now)
                complete = still is None
                if still is not None:
                    progress = f"released by {len(approved_by)}, held again: {hold_code(still).value}"
            target = S.APPROVED if complete else S.PENDING_APPROVAL

            def approved(audit: Envelope[AdminActionRecorded]) -> list[OutgoingEvent]:
                if not complete:
                    return []
                return [
                    payout_event(
                        rec,
                        PayoutApproved,
                        source=self.source,
                        causation_id=audit.id,
                        approval_policy=rec.approval_policy,
                        approved_by=approved_by,
                        approved_at=now,
                        # a payout approved before a send-time hold was approved once already
                        key=(rec.held_at.isoformat(),) if rec.held_at is not None else (),
                    )
                ]

            await self._decide(
                books,
                rec,
                actor,
                "payout.approve",
                to=target,
                reason=reason,
                now=now,
                after={"state": target.value, "approvals": progress},
                history_reason=f"approval {progress}",
                follow=approved,
                available_at=now,
            )
            return target.value

    async def reject(self, payout_id: str, actor: Actor, reason: str) -> str:
        now = self.clock()
        async with self.uow() as books:
            rec = await self._locked(books, payout_id, state=S.PENDING_APPROVAL)
            try:
                check_decider(
                    user_id=actor.user_id, roles=actor.roles, requested_by=rec.requested_by, beneficiary=rec.player_id
                )
            except ApprovalRefusedError as err:
                raise self._refusal(err) from err
            await self._decide(
                books,
                rec,
                actor,
                "payout.reject",
                to=S.REJECTED,
                reason=reason,
                now=now,
                follow=lambda audit: [
                    payout_event(
                        rec,
                        PayoutRejected,
                        source=self.source,
                        causation_id=audit.id,
                        rejected_by=actor.user_id,
                        reason=reason,
                        rejected_at=now,
                    )
                ],
                finished_at=now,
            )
            return S.REJECTED.value

    def _refused(self, code: str) -> None:
        if self.metrics is not None:
            self.metrics.approvals_refused.labels(code).inc()

    def _refusal(self, err: ApprovalRefusedError) -> AdminError:
        self._refused(err.code)
        return AdminError(_REFUSAL_KIND.get(err.code, ErrorKind.CONFLICT), err.code, err.detail)

    # -- cancel -----------------------------------------------------------------------------------------------
    async def cancel(self, payout_id: str, actor: Actor, reason: str) -> str:
        async with self.uow() as books:
            rec = await books.payouts.get(payout_id)
        if rec is None:
            raise AdminError(ErrorKind.NOT_FOUND, "payout_not_found", f"no payout {payout_id}")
        _refuse_final(rec, "cancelled: there is nothing left to cancel")
        # Only a submitted payout, or one whose last answer was "unknown", may be held by the provider.
        ask_provider = rec.state is S.SUBMITTED or (
            rec.state is S.FAILED and rec.last_error_code in {c.value for c in UNKNOWN_OUTCOME_CODES}
        )
        # A submitted payout under a lease is being synced, and a sync may send it (the upi rail creates a payout
        # that waited for its destination's validation): the provider's "nothing here" would not hold.
        if rec.state is S.SUBMITTING or (rec.state is S.SUBMITTED and rec.lease_token is not None):
            raise AdminError(
                ErrorKind.CONFLICT, "in_flight", "a worker is talking to the provider right now; try again shortly"
            )
        if not ask_provider and rec.state not in CANCELLABLE_LOCALLY and rec.state is not S.FAILED:
            raise AdminError(ErrorKind.CONFLICT, "not_cancellable", f"payout {rec.id} is {rec.state.value}")
        confirmed = False  # the provider itself says it cancelled the payout: nothing of it can be paid any more
        if ask_provider:
            entry = self.registry.get(rec.provider_name)
            if not entry.rail.terms.cancels:
                raise AdminError(ErrorKind.CONFLICT, "not_cancellable", f"provider {entry.name} cannot cancel a payout")
            try:
                result = await entry.provider.cancel(rec.lookup())
            except PayoutProviderError as err:
                if err.code is not PayoutErrorCode.PAYOUT_NOT_FOUND:
                    kind = ErrorKind.CONFLICT if err.code is PayoutErrorCode.NOT_CANCELLABLE else ErrorKind.UNAVAILABLE
                    raise AdminError(kind, err.code.value, err.error.message) from err
            else:
                if result.status is not ProviderPayoutStatus.CANCELLED:
                    raise AdminError(
                        ErrorKind.CONFLICT, "not_cancellable", f"the provider says the payout is {result.status.value}"
                    )
                confirmed = True
        now = self.clock()
        async with self.uow() as books:
            current = await self._locked(books, payout_id)
            if ask_provider and current.state is S.CANCELLED:
                # The provider's report of this very cancel (a status sync, its webhook) got here first: what the
                # person asked for is done. Their request is on record all the same; nothing moves twice.
                audit = self._audit(
                    actor, "payout.cancel", current, reason=reason, after={"state": "cancelled"}, now=now
                )
                await self._commit(
                    books, Change(record=current, expected=current.state, to=current.state, events=[audit]), now
                )
                return S.CANCELLED.value
            # The same state is not enough: a retry that ran (and failed again) while we asked the provider left the
            # state as it was but made a new attempt the provider may still pay. Nothing may have happened since.
            # Nor is it enough without the syncs: one that claimed the payout meanwhile (its lease) or sent it and
            # recorded the answer (its polls, its reference) may have left it submitted, and at the provider.
            # A cancel the provider confirmed stands whatever a sync recorded meanwhile: only "nothing here" can be
            # outdated by a sync that sent the payout.
            seen: tuple[object, ...] = (current.state, current.attempts, current.last_error_code)
            was: tuple[object, ...] = (rec.state, rec.attempts, rec.last_error_code)
            if not confirmed:
                seen += (current.lease_token, current.sync_polls, current.provider_ref)
                was += (rec.lease_token, rec.sync_polls, rec.provider_ref)
            if seen != was:
                raise AdminError(
                    ErrorKind.CONFLICT, "concurrent_change", f"payout moved to {current.state.value}; try again"
                )
            _refuse_final(current, "cancelled: there is nothing left to cancel")  # it may have failed again meanwhile
            await self._decide(
                books,
                current,
                actor,
                "payout.cancel",
                to=S.CANCELLED,
                reason=reason,
                now=now,
                follow=lambda audit: [
                    payout_event(
                        current,
                        PayoutCancelled,
                        source=self.source,
                        causation_id=audit.id,
                        cancelled_by=actor.user_id,
                        reason=reason,
                        cancelled_at=now,
                    )
                ],
                finished_at=now,
            )
        return S.CANCELLED.value

    # -- retry ------------------------------------------------------------------------------------------------
    async def retry(self, payout_id: str, actor: Actor, reason: str) -> str:
        """A retryable failure (waiting for its backoff) back to approved now, with one more attempt allowed (the
        worker syncs first). A final failure is refused: its reservation is void, an attempt would pay twice."""
        now = self.clock()
        async with self.uow() as books:
            rec = await self._locked(books, payout_id, state=S.FAILED)
            _refuse_final(rec, "retried: the player can claim again")
            await self._decide(
                books,
                rec,
                actor,
                "payout.retry",
                to=S.APPROVED,
                reason=reason,
                now=now,
                available_at=now,
                sync_first=True,
                max_attempts=max(rec.max_attempts, rec.attempts + 1),
            )
        return S.APPROVED.value

    # -- quote ------------------------------------------------------------------------------------------------
    async def quote(self, instruction: PayoutInstruction, preferred: ProviderType | None) -> tuple[str, Quote]:
        try:
            entry = self.registry.route(
                instruction.amount.asset, instruction.destination.type, preferred, instruction.amount.amount
            )
        except NoRouteError as err:
            raise AdminError(ErrorKind.INVALID, "no_provider", str(err)) from err
        if not entry.rail.terms.quotes:
            raise AdminError(ErrorKind.INVALID, "unsupported_operation", f"provider {entry.name} cannot quote")
        try:
            return entry.name, await entry.provider.quote(instruction)
        except PayoutProviderError as err:
            kind = ErrorKind.UNAVAILABLE if err.retryable else ErrorKind.INVALID
            raise AdminError(kind, err.code.value, err.error.message) from err


def _refuse_final(rec: Payout, cannot_be: str) -> None:
    """A final failure is settled downstream: `PayoutFailed(final=True)` made rewards void the claim's reservation,
    so the money is back in the player's wallet. Another attempt would pay the player twice; a cancel would
    publish a second outcome (a provider's later word about it is a disagreement a person decides)."""
    if rec.failed_for_good:
        raise AdminError(
            ErrorKind.CONFLICT,
            "failure_final",
            f"payout {rec.id} failed for good ({rec.last_error_code}); the reservation went back to the player's "
            f"wallet, so it cannot be {cannot_be}",
        )


__all__ = ["Actor", "AdminError", "PayoutAdmin"]
