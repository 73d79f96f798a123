"""A later word against a final state (pure): what it is, and the late words that are one.

A top-up that expired or failed is never credited later, and a claim that was paid, returned or voided never moves
on a payout's later outcome. Such a word is not absorbed silently nor dead-lettered (a redrive could only be refused
again): it is recorded once per source event and raised for a person, and no money moves on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prizeflow_rewards.domain.claims import ClaimStatus
from prizeflow_rewards.domain.topups import TopUpStatus


@dataclass(frozen=True, slots=True)
class Contradiction:
    subject: str  # topup | claim
    aggregate_id: str
    state: str  # the final state it is in
    reported: str  # what the later word said: paid, failed, cancelled, rejected, returned
    source_ref: str  # the event (or request) that said it
    detail: str


# (subject, final state, reported): every late word that contradicts a final state. The metric's series, from 0.
KNOWN: Final = (
    *(("topup", s.value, "paid") for s in (TopUpStatus.EXPIRED, TopUpStatus.FAILED)),
    ("claim", ClaimStatus.VOIDED.value, "paid"),
    ("claim", ClaimStatus.VOIDED.value, "returned"),
    *(
        ("claim", s.value, r)
        for s in (ClaimStatus.PAID, ClaimStatus.RETURNED)
        for r in ("failed", "cancelled", "rejected", "refused")
    ),
)

# What a payout outcome says, as a contradiction's `reported`.
PAYOUT_WORDS: Final = {
    "PayoutPaid": "paid",
    "PayoutReturned": "returned",
    "PayoutFailed": "failed",
    "PayoutCancelled": "cancelled",
    "PayoutRejected": "rejected",
    "PayoutRequestRefused": "refused",
}


def against_claim(status: ClaimStatus, outcome: str) -> str | None:
    """The reported word if a payout outcome (`PAYOUT_WORDS` key; a failure only when final) contradicts a claim in
    `status`, else None (it applies, or it is a replay of what the claim already shows)."""
    word = PAYOUT_WORDS.get(outcome)
    if word is None:
        return None
    if status is ClaimStatus.VOIDED and word in ("paid", "returned"):
        return word  # the reservation went back to the wallet: paying it too would pay twice
    if status in (ClaimStatus.PAID, ClaimStatus.RETURNED) and word in ("failed", "cancelled", "rejected", "refused"):
        return word  # paid (and perhaps returned): a later failure would give the reservation back a second time
    return None


__all__ = ["KNOWN", "PAYOUT_WORDS", "Contradiction", "against_claim"]
