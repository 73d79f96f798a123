"""The Stellar rail's pure batch rules (`adapters/stellar/rules.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_payouts.adapters.stellar import rules


@dataclass(frozen=True)
class P:
    name: str
    isolate: bool = False


def test_queued_payouts_share_an_envelope_unless_the_first_must_go_alone() -> None:
    assert rules.batch([P("a"), P("b"), P("c", isolate=True)]) == [P("a"), P("b"), P("c", isolate=True)]
    assert rules.batch([P("a", isolate=True), P("b")]) == [P("a", isolate=True)]
    assert rules.batch([]) == []


def test_a_build_error_fails_a_payout_alone_and_isolates_a_batch() -> None:
    assert rules.on_build_error(1) is rules.BuildFailure.FAIL
    assert rules.on_build_error(2) is rules.BuildFailure.ISOLATE


def test_the_time_bound_follows_the_later_clock() -> None:
    assert rules.valid_until(1000.9, 0, 60) == 1060
    assert rules.valid_until(1000.0, 1500, 60) == 1560


def test_the_fee_doubles_within_the_envelope_cap_and_relaxes_to_the_base() -> None:
    fees = rules.FeeLevel(100, 10_000)
    fees.raise_for(9)  # 10_000 // 10 = 1000 per operation at most
    assert fees.current == 200
    for _ in range(5):
        fees.raise_for(9)
    assert fees.current == 1000
    fees.relax()
    assert fees.current == 500
    for _ in range(5):
        fees.relax()
    assert fees.current == 100
