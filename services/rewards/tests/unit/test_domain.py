"""Pure rules: ledger deltas and ids, claim assessment, claim state transitions."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prizeflow_contracts.events.rewards import HoldCode
from prizeflow_contracts.holds import CLAIM_HOLD_KINDS
from prizeflow_contracts.transitions import IllegalTransition, Transitions
from prizeflow_rewards.application.queries import CursorError, decode_cursor, encode_cursor
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import TRANSITIONS as CAMPAIGN_TRANSITIONS
from prizeflow_rewards.domain.campaigns import CampaignStatus
from prizeflow_rewards.domain.claims import (
    RESUMED_BY_VERIFICATION,
    REVIEWED,
    TRANSITIONS,
    Approve,
    ClaimFacts,
    ClaimLimits,
    ClaimStatus,
    Hold,
    RefusalCode,
    Refuse,
    assess,
    next_step,
)
from prizeflow_rewards.domain.corrections import TRANSITIONS as CORRECTION_TRANSITIONS
from prizeflow_rewards.domain.ledger import (
    COUNTER_MAX,
    Balance,
    Transfer,
    TransferFlags,
    TransferKind,
    deltas,
    pending_room,
    post_of,
    void_of,
)
from prizeflow_rewards.domain.topups import TRANSITIONS as TOP_UP_TRANSITIONS

W = accounts.wallet("p", "USDC")
C = accounts.clearing("USDC")
LIMITS = ClaimLimits(
    min_claim=100,
    daily_limit=10_000,
    review_threshold=5_000,
    velocity_max_claims=3,
    new_destination_cooldown_s=3600,
    rejection_rate_bps=5_000,
    rejection_rate_min_claims=4,
)
OK = ClaimFacts(
    asset="USDC",
    redeemable=True,
    amount=1_000,
    available=2_000,
    claimed_today=0,
    claims_in_velocity_window=0,
    destination_age_s=7200.0,
    risk_flagged=False,
    recent_decided=0,
    recent_failed=0,
)


def test_ids_are_deterministic_from_the_business_key() -> None:
    a = Transfer.of(W, C, 5, TransferKind.CLAIM_RESERVE, "cl-1", flags=TransferFlags.PENDING)
    b = Transfer.of(W, C, 5, TransferKind.CLAIM_RESERVE, "cl-1", flags=TransferFlags.PENDING)
    assert a.id == b.id
    assert a.id != Transfer.of(W, C, 5, TransferKind.CLAIM_RESERVE, "cl-2").id
    assert post_of(a).id != void_of(a).id


def test_invalid_transfers_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Transfer.of(W, C, 0, TransferKind.TOP_UP, "x")
    with pytest.raises(ValueError, match="same"):
        Transfer.of(W, W, 1, TransferKind.TOP_UP, "x")
    with pytest.raises(ValueError, match="different assets"):
        Transfer.of(W, accounts.clearing("XLM"), 1, TransferKind.TOP_UP, "x")
    with pytest.raises(ValueError, match="pending_id"):
        Transfer.of(W, C, 1, TransferKind.PAYOUT_POST, "x", flags=TransferFlags.POST_PENDING)


@given(st.lists(st.integers(1, 10**9), min_size=1, max_size=20), st.booleans())
def test_reserve_then_resolve_nets_out(amounts: list[int], post: bool) -> None:
    pend = [
        Transfer.of(W, C, a, TransferKind.CLAIM_RESERVE, i, flags=TransferFlags.PENDING) for i, a in enumerate(amounts)
    ]
    resolve = [post_of(p) if post else void_of(p) for p in pend]
    d = deltas(pend + resolve)
    total = sum(amounts)
    assert (d[W.id].debits_pending, d[C.id].credits_pending) == (0, 0)
    assert (d[W.id].debits_posted, d[C.id].credits_posted) == ((total, total) if post else (0, 0))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"redeemable": False, "asset": "SP"}, Refuse(RefusalCode.ASSET_NOT_REDEEMABLE, "")),
        ({"amount": 99}, Refuse(RefusalCode.BELOW_MINIMUM, "")),
        ({"amount": 2_001}, Refuse(RefusalCode.INSUFFICIENT_BALANCE, "")),
        ({"claimed_today": 9_500}, Refuse(RefusalCode.DAILY_LIMIT_EXCEEDED, "")),
        ({"risk_flagged": True}, Hold(HoldCode.RISK_SCORE, "")),
        # A restore's review window: a claim the rules would approve waits for a person; a bad one is still refused.
        ({"review_all": True}, Hold(HoldCode.MANUAL_REVIEW, "")),
        ({"review_all": True, "amount": 2_001}, Refuse(RefusalCode.INSUFFICIENT_BALANCE, "")),
        ({"recent_decided": 4, "recent_failed": 2}, Hold(HoldCode.REJECTION_RATE, "")),
        ({"recent_decided": 4, "recent_failed": 1}, Approve()),
        ({"claims_in_velocity_window": 3}, Hold(HoldCode.VELOCITY, "")),
        ({"destination_age_s": None}, Hold(HoldCode.NEW_DESTINATION, "")),
        ({"destination_age_s": 10.0}, Hold(HoldCode.NEW_DESTINATION, "")),
        ({"amount": 1_999, "available": 10_000, "review": 1_000}, Hold(HoldCode.AMOUNT_OVER_THRESHOLD, "")),
        ({}, Approve()),
    ],
)
def test_assess(change: dict[str, object], expected: object) -> None:
    review = change.pop("review", None)
    limits = LIMITS
    if isinstance(review, int):
        limits = dataclasses.replace(LIMITS, review_threshold=review)
    facts = dataclasses.replace(OK, **change)  # type: ignore[arg-type]
    got = assess(facts, limits)
    assert type(got) is type(expected)
    if isinstance(got, Refuse | Hold):
        assert isinstance(expected, Refuse | Hold)
        assert got.code == expected.code


def test_a_held_claims_next_step_and_whether_verification_resumes_it_are_its_kinds_row() -> None:
    """The player's words and the verification hook read `CLAIM_HOLD_KINDS`: a kind's row decides, no code does."""
    for code, kind in CLAIM_HOLD_KINDS.items():
        assert next_step(ClaimStatus.HELD, code.value, None) == (kind.next_step or REVIEWED)
    assert next_step(ClaimStatus.HELD, "a_kind_this_build_does_not_know", None) == REVIEWED
    assert {c for c, k in CLAIM_HOLD_KINDS.items() if k.resumed_by_verification} == {HoldCode.KYC_REQUIRED}
    assert {HoldCode.KYC_REQUIRED.value} == RESUMED_BY_VERIFICATION


def test_every_state_machine_is_one_transitions_table() -> None:
    """Claims, campaigns, top-ups and corrections: one `Transitions` each, refusing with the one error."""
    for table in (TRANSITIONS, CAMPAIGN_TRANSITIONS, TOP_UP_TRANSITIONS, CORRECTION_TRANSITIONS):
        assert isinstance(table, Transitions)
    with pytest.raises(IllegalTransition):
        CAMPAIGN_TRANSITIONS.check(CampaignStatus.CLOSED, CampaignStatus.ACTIVE)
    assert TRANSITIONS.finals == {ClaimStatus.REJECTED, ClaimStatus.VOIDED, ClaimStatus.RETURNED}
    assert TRANSITIONS.sources_of(ClaimStatus.VOIDED) == {ClaimStatus.HELD, ClaimStatus.APPROVED}


def test_claim_transitions() -> None:
    assert TRANSITIONS.allows(ClaimStatus.HELD, ClaimStatus.APPROVED)
    assert TRANSITIONS.allows(ClaimStatus.APPROVED, ClaimStatus.VOIDED)
    assert not TRANSITIONS.allows(ClaimStatus.REJECTED, ClaimStatus.APPROVED)
    assert not TRANSITIONS.allows(ClaimStatus.VOIDED, ClaimStatus.PAID)
    assert TRANSITIONS.allows(ClaimStatus.PAID, ClaimStatus.RETURNED)


@pytest.mark.parametrize("raw", ["seq:99999999999999999999999", "seq:-1", "seq:", "seq:1e3", "pos:5"])
def test_a_history_cursor_past_int64_or_not_ours_is_invalid_never_a_500(raw: str) -> None:
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    with pytest.raises(CursorError):
        decode_cursor(cursor)


def test_a_history_cursor_names_the_seq_it_was_made_from() -> None:
    assert decode_cursor(encode_cursor(2**63 - 1)) == 2**63 - 1


COUNTERS = st.integers(0, COUNTER_MAX)


@given(COUNTERS, COUNTERS, st.integers(1, COUNTER_MAX))
def test_a_claim_whose_reservation_would_take_a_counter_past_int64_is_out_of_range_and_only_then(
    wallet_pending: int, clearing_pending: int, amount: int
) -> None:
    """The reservation raises the wallet's pending debits and the clearing account's pending credits: refused
    `amount_out_of_range` exactly when one of them would pass int64 (what the database would refuse), with no
    number in the player's words; the balance check comes first."""
    room = pending_room(Balance(debits_pending=wallet_pending), Balance(credits_pending=clearing_pending))
    overflows = wallet_pending + amount > COUNTER_MAX or clearing_pending + amount > COUNTER_MAX
    facts = dataclasses.replace(OK, amount=amount, available=COUNTER_MAX, room=room)
    decision = assess(facts, dataclasses.replace(LIMITS, min_claim=1, daily_limit=COUNTER_MAX))
    out_of_range = isinstance(decision, Refuse) and decision.code is RefusalCode.AMOUNT_OUT_OF_RANGE
    assert out_of_range == overflows
    if out_of_range:
        assert isinstance(decision, Refuse)
        assert not any(ch.isdigit() for ch in decision.detail.replace("int64", ""))
    short = assess(dataclasses.replace(facts, available=amount - 1), LIMITS)
    assert isinstance(short, Refuse)
    assert short.code is not RefusalCode.AMOUNT_OUT_OF_RANGE
