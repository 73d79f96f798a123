"""Reconciliation kinds are rows, and they are payouts' own tables: a kind, severity or resolution that payouts'
reconciliation decides with and the console or the ops CLI would not know fails here (until payouts reads these
rows itself, the test is what keeps the two one)."""

from __future__ import annotations

from prizeflow_contracts.reconciliation import (
    RECON_ACTIONS,
    RECON_KINDS,
    ExceptionKind,
    ExceptionState,
    ReconAction,
    Severity,
    recon_action,
    recon_kind,
)
from prizeflow_reconciliation import domain as payouts


def test_every_code_has_exactly_one_row() -> None:
    assert list(RECON_KINDS) == list(ExceptionKind)
    assert list(RECON_ACTIONS) == list(ReconAction)
    assert all(code is row.code for code, row in RECON_KINDS.items())
    assert all(code is row.code for code, row in RECON_ACTIONS.items())


def test_the_codes_are_payouts_codes_in_payouts_order() -> None:
    assert [k.value for k in ExceptionKind] == [k.value for k in payouts.ExceptionKind]
    assert [s.value for s in Severity] == [s.value for s in payouts.Severity]
    assert [a.value for a in ReconAction] == [a.value for a in payouts.Action]
    assert [s.value for s in ExceptionState] == [s.value for s in payouts.ExceptionState]


def test_severities_and_resolutions_are_payouts_tables() -> None:
    assert {k.code.value: k.severity.value for k in RECON_KINDS.values()} == {
        k.value: s.value for k, s in payouts.SEVERITY.items()
    }
    assert {k.code.value: tuple(a.value for a in k.actions) for k in RECON_KINDS.values()} == {
        k.value: tuple(a.value for a in actions) for k, actions in payouts.ACTIONS.items()
    }
    assert {a.code.value for a in RECON_ACTIONS.values() if a.moves_money} == {a.value for a in payouts.MONEY_ACTIONS}


def test_every_kind_may_be_acknowledged_and_names_its_difference_in_words() -> None:
    for row in RECON_KINDS.values():
        assert row.actions[0] is ReconAction.ACKNOWLEDGE, row.code
        assert row.label, row.code
        assert row.code.value not in row.label, row.code
    labels = [a.label for a in RECON_ACTIONS.values()]
    assert len(set(labels)) == len(labels)


def test_a_stored_code_this_build_does_not_know_is_no_row() -> None:
    assert recon_kind("overpaid") is RECON_KINDS[ExceptionKind.OVERPAID]
    assert recon_kind("brand_new") is None
    assert recon_kind(None) is None
    assert recon_action("settle_found") is RECON_ACTIONS[ReconAction.SETTLE_FOUND]
    assert recon_action("settle_found").params == ("withdrawal_id",)  # type: ignore[union-attr]
    assert recon_action("teleport") is None
