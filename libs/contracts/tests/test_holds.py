"""Hold kinds are rows: every code has one, and what people read comes from the row."""

from __future__ import annotations

from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_contracts.holds import (
    CLAIM_HOLD_KINDS,
    PAYOUT_HOLD_KINDS,
    ClaimHoldCode,
    PayoutHoldCode,
    ReleasedBy,
    claim_hold,
    claim_hold_label,
    payout_hold,
    payout_hold_label,
)


def test_every_hold_code_has_exactly_one_row() -> None:
    assert set(PAYOUT_HOLD_KINDS) == set(PayoutHoldCode)
    assert set(CLAIM_HOLD_KINDS) == set(ClaimHoldCode)
    assert all(code is kind.code for code, kind in PAYOUT_HOLD_KINDS.items())
    assert all(code is kind.code for code, kind in CLAIM_HOLD_KINDS.items())


def test_people_release_only_what_waits_for_people() -> None:
    for kind in PAYOUT_HOLD_KINDS.values():
        by_people = kind.released_by is ReleasedBy.APPROVERS
        assert (kind.approval is not None) is by_people, kind.code
        assert (kind.refused_with is None) is by_people, kind.code
        assert kind.in_backlog is by_people, kind.code
        assert kind.swept is not by_people, kind.code
    assert PAYOUT_HOLD_KINDS[PayoutHoldCode.SCREENING_HIT].approval is ApprovalPolicy.DUAL


def test_a_stored_code_this_build_does_not_know_is_no_kind() -> None:
    assert payout_hold("screening_hit") is PAYOUT_HOLD_KINDS[PayoutHoldCode.SCREENING_HIT]
    assert payout_hold("not_a_hold") is None
    assert payout_hold(None) is None
    assert claim_hold("kyc_required") is CLAIM_HOLD_KINDS[ClaimHoldCode.KYC_REQUIRED]
    assert claim_hold("nope") is None


def test_staff_read_a_kinds_label_and_an_unknown_code_is_still_named() -> None:
    assert payout_hold_label("policy") == PAYOUT_HOLD_KINDS[PayoutHoldCode.POLICY].label
    assert payout_hold_label("new_code") == "Held by the compliance gate (new_code)"
    assert claim_hold_label("velocity") == CLAIM_HOLD_KINDS[ClaimHoldCode.VELOCITY].label
    assert claim_hold_label("brand_new") == "Held for review (brand_new)."
    assert claim_hold_label(None) == "Held for review (no reason recorded)."
