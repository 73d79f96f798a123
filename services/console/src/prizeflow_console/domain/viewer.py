"""Who is looking, and what their roles let the console show them. The services enforce every rule again: the
console only decides what to offer (a button a person may not use is never drawn)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Role(StrEnum):
    PLAYER = "player"
    OPS = "ops"
    ADMIN = "admin"
    APPROVER = "approver"


class Page(StrEnum):
    APPROVALS = "approvals"
    HOLDS = "holds"
    ROUNDS = "rounds"
    CAMPAIGNS = "campaigns"
    DEAD_LETTERS = "dead-letters"
    TIMELINE = "timeline"
    RECONCILIATION = "reconciliation"
    EXCEPTIONS = "exceptions"
    EXPORTS = "exports"
    COMPLIANCE = "compliance"
    FX = "fx"
    WALLET = "wallet"


class Action(StrEnum):
    DECIDE_PAYOUT = "decide_payout"  # approve / reject (approvers; never one's own)
    REVIEW_HOLD = "review_hold"  # release / reject a held claim
    DECIDE_ROUND = "decide_round"  # void / resolve a disputed round
    MANAGE_POOL = "manage_pool"  # fund / pause / resume / close
    REDRIVE = "redrive"  # redrive / discard a dead letter
    USE_WALLET = "use_wallet"  # top up, claim
    RUN_RECONCILIATION = "run_reconciliation"  # run a provider's window on demand
    WORK_EXCEPTION = "work_exception"  # take, acknowledge, propose a money action
    APPROVE_EXCEPTION = "approve_exception"  # confirm another person's proposed money action
    MANAGE_COMPLIANCE = "manage_compliance"  # propose / approve / reject a risk policy; refresh sanctions lists
    RECONCILE_FX = "reconcile_fx"  # reconcile the FX accounts now


STAFF: Final = frozenset({Role.OPS, Role.ADMIN})
# Reconciliation's readers and first hands (docs/adr and the payouts admin API: read = ops/approver/admin).
FINANCE: Final = frozenset({Role.OPS, Role.APPROVER, Role.ADMIN})
# Players' verification, screening and the gate's decisions (payouts: staff views are admin or approver).
COMPLIANCE: Final = frozenset({Role.ADMIN, Role.APPROVER})

PAGE_ROLES: Final[dict[Page, frozenset[Role]]] = {
    Page.APPROVALS: frozenset({Role.APPROVER, Role.OPS, Role.ADMIN}),
    Page.HOLDS: STAFF,
    Page.ROUNDS: STAFF,
    Page.CAMPAIGNS: STAFF,
    Page.DEAD_LETTERS: STAFF,
    Page.TIMELINE: frozenset({Role.OPS, Role.ADMIN, Role.APPROVER}),
    Page.RECONCILIATION: FINANCE,
    Page.EXCEPTIONS: FINANCE,
    Page.EXPORTS: FINANCE,
    Page.COMPLIANCE: COMPLIANCE,
    Page.FX: STAFF,
    Page.WALLET: frozenset({Role.PLAYER}),
}

# The same roles the services' guards name (services/*/entrypoints/http.py): the console never offers more.
ACTION_ROLES: Final[dict[Action, frozenset[Role]]] = {
    Action.DECIDE_PAYOUT: frozenset({Role.APPROVER}),
    Action.REVIEW_HOLD: STAFF,
    Action.DECIDE_ROUND: frozenset({Role.ADMIN}),
    Action.MANAGE_POOL: frozenset({Role.ADMIN}),
    Action.REDRIVE: STAFF,
    Action.USE_WALLET: frozenset({Role.PLAYER}),
    Action.RUN_RECONCILIATION: FINANCE,
    Action.WORK_EXCEPTION: FINANCE,
    # The second person of a money action: an approver or an admin, never the proposer (payouts refuses both).
    Action.APPROVE_EXCEPTION: frozenset({Role.APPROVER, Role.ADMIN}),
    # A policy version: proposed by one admin, approved by another (payouts refuses the proposer).
    Action.MANAGE_COMPLIANCE: frozenset({Role.ADMIN}),
    Action.RECONCILE_FX: STAFF,
}

PAGE_TITLES: Final[dict[Page, str]] = {
    Page.APPROVALS: "Approvals",
    Page.HOLDS: "Held claims",
    Page.ROUNDS: "Rounds",
    Page.CAMPAIGNS: "Campaigns and pools",
    Page.DEAD_LETTERS: "Dead letters",
    Page.TIMELINE: "Timeline",
    Page.RECONCILIATION: "Reconciliation",
    Page.EXCEPTIONS: "Exceptions",
    Page.EXPORTS: "Exports",
    Page.COMPLIANCE: "Compliance",
    Page.FX: "FX desk",
    Page.WALLET: "Wallet",
}


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in person: the token's subject, display name and known roles (unknown ones are dropped)."""

    user_id: str
    name: str
    roles: frozenset[Role]

    @classmethod
    def of(cls, user_id: str, name: str | None, roles: Iterable[str]) -> Viewer:
        known = frozenset(Role(r) for r in roles if r in Role._value2member_map_)
        return cls(user_id=user_id, name=name or user_id, roles=known)

    def may_see(self, page: Page) -> bool:
        return bool(self.roles & PAGE_ROLES[page])

    def may(self, action: Action) -> bool:
        return bool(self.roles & ACTION_ROLES[action])

    @property
    def pages(self) -> list[Page]:
        return [p for p in Page if self.may_see(p)]

    def may_decide_payout(self, *, player_id: str | None, requested_by: str | None, approved_by: Iterable[str]) -> bool:
        """An approver may approve or reject a payout unless it pays them, they asked for it, or they approved it
        already (dual approval needs a second person). ADR 0005: the payouts API refuses the same."""
        if not self.may(Action.DECIDE_PAYOUT):
            return False
        if self.user_id in {player_id, requested_by}:
            return False
        return self.user_id not in set(approved_by)


__all__ = ["ACTION_ROLES", "COMPLIANCE", "FINANCE", "PAGE_ROLES", "PAGE_TITLES", "Action", "Page", "Role", "Viewer"]
