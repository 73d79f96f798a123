"""Turning a provider's answer (or an operator's word) into a guarded `Change` with its events and history.

Shared by the worker, the webhook consumer and the admin API, so a `paid` means the same thing whoever says it.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_contracts.events.payouts import (
    PayoutCancelled,
    PayoutFailed,
    PayoutPaid,
    PayoutReturned,
    PayoutSubmitted,
)
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutResult, ProviderPayoutStatus
from prizeflow_payouts.application.events import payout_event
from prizeflow_payouts.domain.payout import Change, HistoryEntry, Payout
from prizeflow_payouts.domain.retry import UNKNOWN_OUTCOME_CODES, AfterFailure, backoff_seconds, plan_after_failure
from prizeflow_payouts.domain.state import PayoutState, check_transition, steps_for_provider_status

S = PayoutState


@dataclass(frozen=True)
class RetryPolicy:
    base_ms: int = 1000
    max_ms: int = 300_000
    confirm_poll_ms: int = 2500
    confirm_max_polls: int = 20
    reconcile_interval_ms: int = 60_000


class ChangeBuilder:
    def __init__(self, *, source: str, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.source = source
        self.policy = policy
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def _change(
        self, rec: Payout, expected: PayoutState, steps: tuple[PayoutState, ...], actor: str, **kw: Any
    ) -> Change:
        src = expected
        history = []
        reason = kw.pop("reason", None)
        code = kw.get("error_code")
        for step in steps:
            check_transition(src, step)
            history.append(HistoryEntry(src, step, actor, reason=reason, error_code=code, attempt=rec.attempts or None))
            src = step
        return Change(record=rec, expected=expected, to=steps[-1], history=history, **kw)

    def poll_at(self, now: datetime, polls: int, *, polls_status: bool) -> datetime | None:
        if not polls_status:
            return None
        if polls >= self.policy.confirm_max_polls:
            return now + timedelta(milliseconds=self.policy.reconcile_interval_ms)  # the reconciler's pace
        return now + timedelta(milliseconds=self.policy.confirm_poll_ms)

    def from_result(
        self,
        rec: Payout,
        expected: PayoutState,
        result: ProviderPayoutResult,
        *,
        now: datetime,
        actor: str,
        token: uuid.UUID | None,
        polls_status: bool,
        cause: str | uuid.UUID | None = None,
        returns: bool = False,
    ) -> Change | None:
        """None: nothing to change (a stale or duplicate report) — except a pending answer to a sync, which
        re-arms the next poll. `returns`: the rail's paid payouts can come back (a `failed` after `paid` is a
        return)."""
        steps = steps_for_provider_status(expected, result.status, returns=returns)
        if not steps:
            if expected is S.SUBMITTED and result.status not in (ProviderPayoutStatus.PAID,):
                polls = rec.sync_polls + 1
                return Change(
                    record=rec,
                    expected=expected,
                    to=S.SUBMITTED,
                    token=token,
                    sync_polls=polls,
                    next_sync_at=self.poll_at(now, polls, polls_status=polls_status),
                    outcome_unknown=False,  # the provider answered: it holds the payout
                )
            return None
        final = steps[-1]
        if final is S.FAILED:
            assert result.error is not None
            return self.from_error(rec, expected, result.error, now=now, actor=actor, token=token, cause=cause)
        common: dict[str, Any] = {
            "token": token,
            "provider_ref": result.provider_ref,
            "tx_hash": result.tx_hash,
            "outcome_unknown": False,
        }
        if final is S.SUBMITTED:
            change = self._change(
                rec,
                expected,
                steps,
                actor,
                **common,
                submitted_at=now,
                next_sync_at=self.poll_at(now, 0, polls_status=polls_status),
            )
            change.events.append(
                payout_event(
                    rec,
                    PayoutSubmitted,
                    source=self.source,
                    time=now,
                    key=(rec.attempts,),
                    causation_id=cause,
                    attempt=max(rec.attempts, 1),
                    provider_ref=result.provider_ref,
                    tx_hash=result.tx_hash,
                    submitted_at=now,
                )
            )
            return change
        if final is S.CANCELLED:
            change = self._change(
                rec, expected, steps, actor, **common, finished_at=now, reason="cancelled by provider"
            )
            change.events.append(
                payout_event(
                    rec,
                    PayoutCancelled,
                    source=self.source,
                    time=now,
                    causation_id=cause,
                    cancelled_by=_identifier(actor),
                    reason="cancelled at the provider",
                    cancelled_at=now,
                )
            )
            return change
        # paid, or paid then returned
        change = self._change(
            rec,
            expected,
            steps,
            actor,
            **common,
            fee=result.fee,
            paid_at=now if S.PAID in steps else None,  # None keeps the stored paid_at of a returned payout
            finished_at=now if final is S.RETURNED else None,
        )
        if S.PAID in steps:  # already paid (a return of a paid payout): PayoutPaid was published then
            change.events.append(
                self.paid_event(
                    rec, provider_ref=result.provider_ref, tx_hash=result.tx_hash, fee=result.fee, now=now, cause=cause
                )
            )
        if final is S.RETURNED:
            change.events.append(
                payout_event(
                    rec,
                    PayoutReturned,
                    source=self.source,
                    time=now,
                    causation_id=cause,
                    returned_amount=rec.money,
                    provider_ref=result.provider_ref,
                    reason=_return_reason(result),
                    returned_at=now,
                )
            )
        return change

    def paid_event(
        self,
        rec: Payout,
        *,
        provider_ref: str | None,
        tx_hash: str | None,
        fee: Money | None,
        now: datetime,
        cause: str | uuid.UUID | None,
    ) -> Any:
        return payout_event(
            rec,
            PayoutPaid,
            source=self.source,
            time=now,
            causation_id=cause,
            provider_ref=provider_ref,
            tx_hash=tx_hash,
            fee=fee,
            paid_at=now,
        )

    def from_error(
        self,
        rec: Payout,
        expected: PayoutState,
        error: PayoutError,
        *,
        now: datetime,
        actor: str,
        token: uuid.UUID | None,
        cause: str | uuid.UUID | None = None,
    ) -> Change:
        attempt = max(rec.attempts, 1)
        plan = plan_after_failure(
            code=error.code, retryable=error.retryable, attempts=rec.attempts, max_attempts=rec.max_attempts
        )
        common: dict[str, Any] = {
            "token": token,
            "error_code": error.code.value,
            "error_detail": error.message[:1000],
            "sync_first": True,
            # Unknown: the doubt starts (or goes on); any other code is a known outcome (not made, refused...).
            "outcome_unknown": error.code in UNKNOWN_OUTCOME_CODES,
        }
        if plan.after is AfterFailure.AWAIT_CONFIRMATION:
            # The provider may hold it: never fail it blind. Keep asking at the reconciler's pace.
            if expected is S.SUBMITTED:
                return Change(
                    record=rec,
                    expected=expected,
                    to=S.SUBMITTED,
                    sync_polls=rec.sync_polls + 1,
                    next_sync_at=now + timedelta(milliseconds=self.policy.reconcile_interval_ms),
                    **common,
                )
            change = self._change(
                rec,
                expected,
                (S.SUBMITTED,),
                actor,
                **common,
                submitted_at=now,
                sync_polls=self.policy.confirm_max_polls,
                next_sync_at=now + timedelta(milliseconds=self.policy.reconcile_interval_ms),
                reason="outcome unknown after the last attempt: awaiting confirmation",
            )
            change.events.append(
                payout_event(
                    rec,
                    PayoutSubmitted,
                    source=self.source,
                    time=now,
                    key=(rec.attempts,),
                    causation_id=cause,
                    attempt=attempt,
                    provider_ref=rec.provider_ref,
                    submitted_at=now,
                )
            )
            return change
        retry = plan.after is AfterFailure.RETRY
        next_at = now + timedelta(
            seconds=backoff_seconds(attempt, base_ms=self.policy.base_ms, max_ms=self.policy.max_ms, rng=self.rng)
        )
        change = self._change(
            rec,
            expected,
            (S.FAILED,),
            actor,
            **common,
            next_attempt_at=next_at if retry else None,
            finished_at=None if retry else now,
            reason=error.message[:1000],
        )
        change.events.append(
            payout_event(
                rec,
                PayoutFailed,
                source=self.source,
                time=now,
                key=(attempt, expected.value),
                causation_id=cause,
                attempt=attempt,
                code=error.code,
                retryable=plan.retryable,
                final=not retry,
                detail=error.message[:1000],
                provider_code=error.provider_code,
                next_attempt_at=next_at if retry else None,
                failed_at=now,
            )
        )
        return change


def _return_reason(result: ProviderPayoutResult) -> str:
    if result.error is not None:  # a `failed` after `paid`: the provider's failure code says why it came back
        return f"returned by the provider after it was paid: {result.error.code.value}"[:500]
    return "returned by the provider"


def _identifier(actor: str) -> str:
    return actor.replace(" ", "_")[:128]


def error_of(code: PayoutErrorCode, message: str, provider: str | None = None) -> PayoutError:
    return PayoutError.of(code, message, provider=provider)


__all__ = ["ChangeBuilder", "RetryPolicy", "error_of"]
