"""Every payout outcome against every claim state: which ones contradict a final state (kept for a person, never
applied), as the README's table says. The rest apply, are replays, or are refused by the use case as before."""

from __future__ import annotations

import itertools

import pytest

from prizeflow_rewards.domain.claims import ClaimStatus
from prizeflow_rewards.domain.contradictions import KNOWN, PAYOUT_WORDS, against_claim

C = ClaimStatus
# claim state → the outcomes that contradict it (every other pair: None).
CONTRADICTS = {
    C.HELD: set(),
    C.APPROVED: set(),
    C.PAID: {"PayoutFailed", "PayoutCancelled", "PayoutRejected", "PayoutRequestRefused"},
    C.RETURNED: {"PayoutFailed", "PayoutCancelled", "PayoutRejected", "PayoutRequestRefused"},
    C.VOIDED: {"PayoutPaid", "PayoutReturned"},
    C.REJECTED: set(),
}


def test_every_claim_state_is_in_the_table() -> None:
    assert set(CONTRADICTS) == set(ClaimStatus)


@pytest.mark.parametrize(("status", "outcome"), list(itertools.product(ClaimStatus, [*PAYOUT_WORDS, "PayoutCreated"])))
def test_which_late_outcome_contradicts_which_claim_state(status: ClaimStatus, outcome: str) -> None:
    word = against_claim(status, outcome)
    if outcome in CONTRADICTS[status]:
        assert word == PAYOUT_WORDS[outcome]
        assert ("claim", status.value, word) in KNOWN  # its counter series exists from start-up
    else:
        assert word is None
