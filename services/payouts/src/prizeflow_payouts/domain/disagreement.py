"""A provider's report that contradicts where a payout is, and how checking it with the provider concludes.

A webhook is a snapshot, perhaps an old one: a `paid` may arrive after the `failed` that followed it. Such a report
never moves a payout in a final state (`state.judge_report`). It is recorded as a disagreement, and the worker reads
the provider's current status of the payout: if that agrees with us, the report was stale; if not, the provider's
books and ours truly differ about money, and a person decides (alert `PrizeflowFinalStateContradicted`), never code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.providers import ProviderPayoutStatus
from prizeflow_payouts.domain.payout import Payout
from prizeflow_payouts.domain.state import PayoutState, provider_agrees

# Asked this many times without an answer, the provider's books cannot be read: a person looks instead.
MAX_CHECKS: Final = 12
FIRST_RECHECK_S: Final = 5.0
MAX_RECHECK_S: Final = 600.0
NOT_FOUND: Final = "not_found"
UNKNOWN: Final = "unknown"


class DisagreementStatus(StrEnum):
    CHECKING = "checking"  # the provider's current status is still to be read
    STALE = "stale"  # it agrees with us: the report was an old snapshot
    CONTRADICTION = "contradiction"  # it does not: raised for a person
    ACKNOWLEDGED = "acknowledged"  # that person's decision is on record (audited)


@dataclass(frozen=True, slots=True)
class Disagreement:
    id: int
    payout: Payout  # as it is now
    provider: str
    payout_state: PayoutState  # where it was when the report came
    reported: ProviderPayoutStatus
    source_ref: str | None
    checks: int  # asked so far, this one included (a fence: a conclusion is written only for this check)
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Conclusion:
    disagreement: Disagreement
    status: DisagreementStatus  # CHECKING: ask again at `next_check_at`
    provider_status_now: str | None
    detail: str
    next_check_at: datetime | None = None


def conclude(
    d: Disagreement,
    payout: Payout,
    *,
    status_now: ProviderPayoutStatus | None,
    error: PayoutErrorCode | None,
    now: datetime,
) -> Conclusion:
    """The check of `d` given the provider's answer about `payout` (as it is at the conclusion): its current status
    (`None` with no error: it has no such payout), or the error that kept it from saying."""
    seen = f"{d.reported.value} reported while {d.payout_state.value}"
    if error is not None and error is not PayoutErrorCode.PAYOUT_NOT_FOUND:
        if error is PayoutErrorCode.UNSUPPORTED_OPERATION or d.checks >= MAX_CHECKS:
            why = "cannot tell its current status" if error is PayoutErrorCode.UNSUPPORTED_OPERATION else "no answer"
            return Conclusion(
                d, DisagreementStatus.CONTRADICTION, UNKNOWN, f"{seen}; the provider {why} ({error.value})"
            )
        wait = min(FIRST_RECHECK_S * 2 ** (d.checks - 1), MAX_RECHECK_S)
        return Conclusion(
            d, DisagreementStatus.CHECKING, None, f"{seen}; asked, {error.value}", now + timedelta(seconds=wait)
        )
    now_word = status_now.value if status_now is not None else NOT_FOUND
    agrees = provider_agrees(payout.state, status_now, failed_for_good=payout.failed_for_good)
    here = f"{seen}; the provider says {now_word} now, the payout is {payout.state.value}"
    if agrees is None:
        return Conclusion(d, DisagreementStatus.STALE, now_word, f"{here} (in flight: its own sync settles it)")
    if agrees:
        return Conclusion(d, DisagreementStatus.STALE, now_word, f"{here}: agrees, the report was stale")
    return Conclusion(d, DisagreementStatus.CONTRADICTION, now_word, f"{here}: a person decides")


__all__ = ["MAX_CHECKS", "NOT_FOUND", "UNKNOWN", "Conclusion", "Disagreement", "DisagreementStatus", "conclude"]
