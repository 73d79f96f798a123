"""Every finding a payout's gate decision may record, the policy's and the gate's own, has the words staff read."""

from __future__ import annotations

from prizeflow_contracts.policy import FINDING_LABEL, GATE_FINDING_LABEL, Finding, GateFinding, finding_label


def test_every_finding_has_a_label_and_the_two_tables_share_no_code() -> None:
    assert set(FINDING_LABEL) == set(Finding)
    assert set(GATE_FINDING_LABEL) == set(GateFinding)
    assert not {f.value for f in Finding} & {f.value for f in GateFinding}


def test_a_recorded_finding_reads_as_its_label_and_an_unknown_one_as_none() -> None:
    assert finding_label("velocity") == "too many requests in the window"
    assert finding_label("screening_hit") == "sanctions screening hit"
    assert finding_label("brand_new") is None
