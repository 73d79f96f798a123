"""Approval policy: thresholds per asset and who may decide."""

from __future__ import annotations

import pytest

from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_payouts.domain.approval import (
    ApprovalBook,
    ApprovalRefusedError,
    ApprovalRule,
    check_decider,
    record_approval,
)

RULE = ApprovalRule("USDC", auto_below=100, dual_from=1000)


@pytest.mark.parametrize(
    ("amount", "policy"),
    [
        (1, ApprovalPolicy.AUTO),
        (99, ApprovalPolicy.AUTO),
        (100, ApprovalPolicy.SINGLE),
        (999, ApprovalPolicy.SINGLE),
        (1000, ApprovalPolicy.DUAL),
        (10**12, ApprovalPolicy.DUAL),
    ],
)
def test_thresholds(amount: int, policy: ApprovalPolicy) -> None:
    assert RULE.policy_for(amount) is policy


def test_unlisted_asset_needs_one_approver_and_none_thresholds() -> None:
    book = ApprovalBook({"USDC": RULE, "XLM": ApprovalRule("XLM", None, None)})
    assert book.policy_for("USD", 1) is ApprovalPolicy.SINGLE
    assert book.policy_for("XLM", 1) is ApprovalPolicy.SINGLE
    assert book.policy_for("XLM", 10**15) is ApprovalPolicy.SINGLE


def test_dual_below_auto_is_refused() -> None:
    with pytest.raises(ValueError, match="dual_from"):
        ApprovalRule("USDC", auto_below=1000, dual_from=10)


def _approve(user: str, roles: set[str], approvers: list[str], policy: ApprovalPolicy = ApprovalPolicy.DUAL) -> bool:
    return record_approval(
        policy=policy, user_id=user, roles=roles, requested_by="alice", beneficiary="p-1", approvers=approvers
    )


def test_two_distinct_approvers_complete_dual() -> None:
    assert _approve("bob", {"approver"}, []) is False
    assert _approve("carol", {"approver"}, ["bob"]) is True


def test_single_completes_with_one() -> None:
    assert _approve("bob", {"approver"}, [], ApprovalPolicy.SINGLE) is True


@pytest.mark.parametrize(
    ("user", "roles", "approvers", "code"),
    [
        ("alice", {"approver", "admin"}, [], "self_approval"),
        ("p-1", {"approver"}, [], "self_approval"),
        ("p-1", {"approver", "player"}, ["bob"], "self_approval"),
        ("bob", {"approver"}, ["bob"], "already_approved"),
        ("pete", {"player"}, [], "approver_role_required"),
        ("olga", {"ops"}, [], "approver_role_required"),
        ("adam", {"admin"}, [], "approver_role_required"),
    ],
)
def test_refusals(user: str, roles: set[str], approvers: list[str], code: str) -> None:
    with pytest.raises(ApprovalRefusedError) as err:
        _approve(user, roles, approvers)
    assert err.value.code == code


def test_auto_needs_no_approval() -> None:
    with pytest.raises(ApprovalRefusedError, match="no_approval_needed"):
        _approve("bob", {"approver"}, [], ApprovalPolicy.AUTO)


def test_requester_cannot_reject_either() -> None:
    with pytest.raises(ApprovalRefusedError, match="self_approval"):
        check_decider(user_id="alice", roles={"approver"}, requested_by="alice", beneficiary="p-1")


def test_the_paid_player_cannot_decide_either() -> None:
    with pytest.raises(ApprovalRefusedError, match="self_approval"):
        check_decider(user_id="p-1", roles={"approver"}, requested_by="ops-reviewer", beneficiary="p-1")
