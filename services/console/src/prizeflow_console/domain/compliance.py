"""Compliance as staff read it: a risk policy's rules in words (amounts in the asset's units, windows in days and
hours), a gate decision's reasons (each finding's words from `prizeflow_contracts.policy`), and what the console
may offer this person on a policy proposal.

Pure: no I/O. The payouts service decides everything again (ADR 0007): two different admins for a policy version,
two different approvers for a screening hit. What is shown here is staff-only: a player never sees a threshold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from prizeflow_console.domain.money import format_minor
from prizeflow_console.domain.viewer import Action, Viewer
from prizeflow_contracts.policy import finding_label

PROPOSED: Final = "proposed"
PROPOSAL_STATES: Final = ("proposed", "active", "superseded", "rejected")
VERIFICATION_STATES: Final = ("not_started", "pending", "retry", "verified", "failed")

_UNITS: Final = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def duration_words(seconds: Any) -> str:
    """`86400` → `1 day`, `93600` → `1 day 2 hours`, `90` → `1 minute 30 seconds` (the two largest units)."""
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
        return f"{seconds} s"
    if seconds == 0:
        return "0 seconds"
    parts: list[str] = []
    left = seconds
    for name, size in _UNITS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts[:2])


def amount_words(amount: Any, asset: str | None) -> str:
    """An amount of a rule: in the scope's asset when the rule names one, else as the minor units of each asset."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        return str(amount)
    if asset:
        return format_minor(amount, asset)
    return f"{amount:,} minor units of the request's asset"


def scope_words(scope: Any) -> str:
    if not isinstance(scope, Mapping):
        return "Every request"
    named = [
        f"{label} {scope[key]}"
        for key, label in (("asset", "asset"), ("rail", "rail"), ("destination_type", "destination type"))
        if scope.get(key)
    ]
    return "Requests of " + ", ".join(named) if named else "Every request"


def _window(value: Any) -> tuple[Any, Any]:
    if isinstance(value, Mapping):
        return value.get("amount", value.get("count")), value.get("window_s")
    return None, None


def rule_lines(rule: Mapping[str, Any]) -> list[str]:
    """What one rule does, a line per clause, as an operator checks it before approving a version."""
    scope = rule.get("scope")
    asset = scope.get("asset") if isinstance(scope, Mapping) else None
    lines: list[str] = []
    if rule.get("kyc_above"):
        amount, window = _window(rule["kyc_above"])
        lines.append(
            f"Identity verification required once the player's claims exceed {amount_words(amount, asset)} "
            f"in {duration_words(window)}"
        )
    if rule.get("player_limit"):
        amount, window = _window(rule["player_limit"])
        lines.append(f"Refused above {amount_words(amount, asset)} per player in {duration_words(window)}")
    if rule.get("destination_limit"):
        amount, window = _window(rule["destination_limit"])
        lines.append(f"Refused above {amount_words(amount, asset)} per destination in {duration_words(window)}")
    if rule.get("velocity"):
        count, window = _window(rule["velocity"])
        lines.append(f"Held for a person after {count} requests in {duration_words(window)}")
    if rule.get("new_destination_cooldown_s"):
        lines.append(
            f"A destination is held for a person for {duration_words(rule['new_destination_cooldown_s'])} "
            "after the player first uses it"
        )
    if rule.get("allowed_rails"):
        lines.append("Only these rails: " + ", ".join(str(r) for r in rule["allowed_rails"]))
    if rule.get("allowed_countries"):
        lines.append("Only players verified in: " + ", ".join(str(c) for c in rule["allowed_countries"]))
    return lines or ["No limit (the rule names no clause)"]


@dataclass(frozen=True, slots=True)
class RuleView:
    number: int
    scope: str
    lines: tuple[str, ...]


def policy_rules(policy: Any) -> list[RuleView]:
    """A policy document's rules, numbered as decisions name them (`rule 0` is the first)."""
    rules = policy.get("rules") if isinstance(policy, Mapping) else None
    if not isinstance(rules, list):
        return []
    return [
        RuleView(i, scope_words(r.get("scope")), tuple(rule_lines(r)))
        for i, r in enumerate(rules)
        if isinstance(r, Mapping)
    ]


@dataclass(frozen=True, slots=True)
class ProposalOffer:
    """Whether to draw approve/reject on a proposal for this person, or the sentence saying why not."""

    decide: bool
    note: str | None


def proposal_offer(viewer: Viewer, proposal: Mapping[str, Any]) -> ProposalOffer:
    if proposal.get("status") != PROPOSED:
        return ProposalOffer(decide=False, note=None)
    if not viewer.may(Action.MANAGE_COMPLIANCE):
        return ProposalOffer(decide=False, note="An admin other than its proposer approves or rejects it.")
    if proposal.get("proposed_by") == viewer.user_id:
        return ProposalOffer(decide=False, note="You proposed it: another admin approves or rejects it.")
    return ProposalOffer(decide=True, note=None)


def _match_words(reason: Mapping[str, Any]) -> str:
    """A screening hit's match as staff check it: `destination: ofac_sdn sdn-36524 "NAME" (address, score 0.93)`."""
    entry = " ".join(str(reason[k]) for k in ("source", "entry_uid") if reason.get(k))
    if reason.get("entry_name"):
        entry += f' "{reason["entry_name"]}"'
    extra = ", ".join(
        f"score {reason[k]}" if k == "score" else str(reason[k]) for k in ("kind", "score") if reason.get(k) is not None
    )
    words = f"{reason['subject']}: {entry}" if reason.get("subject") else entry
    return f"{words} ({extra})" if extra else words


def reason_words(reason: Any) -> str:
    """One reason of a gate decision: `{"finding", "rule", "detail"}` from the policy, a screening hit's match
    (`subject`, `source`, `entry_uid`, `entry_name`, `kind`, `score`), lists missing; or whatever payouts wrote."""
    if isinstance(reason, Mapping):
        finding = str(reason.get("finding") or reason.get("code") or "")
        words = finding_label(finding) or finding.replace("_", " ")
        rule = reason.get("rule")
        head = f"{words} (rule {rule})" if isinstance(rule, int) and not isinstance(rule, bool) else words
        detail = reason.get("detail")
        if not detail and any(reason.get(k) for k in ("subject", "source", "entry_uid")):
            detail = _match_words(reason)
        if not detail and isinstance(reason.get("missing"), list):
            detail = "lists not loaded: " + ", ".join(str(m) for m in reason["missing"])
        return f"{head}: {detail}" if detail else head
    return str(reason)


def versions_words(versions: Any) -> str:
    """`{"ofac_sdn": "2026-11-24", "un": "..."}` → `ofac_sdn 2026-11-24, un ...`; none: `none`."""
    if isinstance(versions, Mapping) and versions:
        return ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    if isinstance(versions, Sequence) and not isinstance(versions, str) and versions:
        return ", ".join(str(v) for v in versions)
    return "none"


__all__ = [
    "PROPOSAL_STATES",
    "PROPOSED",
    "VERIFICATION_STATES",
    "ProposalOffer",
    "RuleView",
    "amount_words",
    "duration_words",
    "policy_rules",
    "proposal_offer",
    "reason_words",
    "rule_lines",
    "scope_words",
    "versions_words",
]
