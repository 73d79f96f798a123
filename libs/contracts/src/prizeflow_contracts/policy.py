"""The risk policy operators set (docs/adr/0012-pay-only-whom-you-may.md), and the ONE function that applies it.

A policy is a versioned document of rules. Payouts keeps its versions (an admin proposes, a second admin approves,
both audited) and publishes the active one (`RiskPolicyActivated`); rewards evaluates it before a claim reserves
money, payouts again before a payout leaves. Both call `evaluate` with the facts they hold, so a rule means the
same thing in both places and a policy tightened between the two is honoured by the second.

Pure: no I/O. Money is integers of minor units. A fact the caller cannot know is `None`, and a rule that needs it
is left to the place that can (the claim does not know its rail; only payouts knows a verified player's country):
`Verdict.deferred` names them, so a test can prove the second evaluation covers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prizeflow_contracts.money import INT64_MAX, AssetCode
from prizeflow_contracts.providers import DestinationType, ProviderType

MAX_WINDOW_S: Final = 366 * 86_400
MAX_RULES: Final = 200

WindowSeconds = Annotated[int, Field(strict=True, ge=60, le=MAX_WINDOW_S, description="rolling window, seconds")]
Amount = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX, description="minor units")]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]


class VerificationStatus(StrEnum):
    """A player's identity verification, as the only fact that leaves the verification records."""

    NOT_STARTED = "not_started"
    PENDING = "pending"  # started, or submitted and under review
    RETRY = "retry"  # the vendor asks the player to resubmit: claims keep waiting
    VERIFIED = "verified"
    FAILED = "failed"  # final: claims waiting for it are refused, their reservations voided


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AmountInWindow(_Model):
    amount: Amount
    window_s: WindowSeconds


class CountInWindow(_Model):
    count: Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
    window_s: WindowSeconds


class PolicyScope(_Model):
    """Which requests a rule applies to; an unset field matches everything."""

    asset: AssetCode | None = None
    rail: ProviderType | None = None  # known at the payout gate only
    destination_type: DestinationType | None = None


class PolicyRule(_Model):
    scope: PolicyScope = Field(default_factory=PolicyScope)
    # Identity verification is required once the player's claims in the window, this one included, exceed `amount`.
    kyc_above: AmountInWindow | None = None
    # Refused once the player's (destination's) claims in the window, this one included, exceed `amount`.
    player_limit: AmountInWindow | None = None
    destination_limit: AmountInWindow | None = None
    # Held for a person once the player made `count` claims in the window (this one not included).
    velocity: CountInWindow | None = None
    # Held for a person while the destination is younger than this (first used by this player).
    new_destination_cooldown_s: Annotated[int, Field(strict=True, ge=0, le=MAX_WINDOW_S)] | None = None
    allowed_rails: Annotated[list[ProviderType], Field(min_length=1, max_length=20)] | None = None
    # Countries (of the verified identity) whose players may be paid; an unverified player's country is unknown,
    # so a rule with `allowed_countries` also requires verification.
    allowed_countries: Annotated[list[CountryCode], Field(min_length=1, max_length=300)] | None = None

    def windows(self) -> set[int]:
        return {w.window_s for w in (self.kyc_above, self.player_limit, self.destination_limit, self.velocity) if w}


class RiskPolicy(_Model):
    """One version of the rules. Version 0 is the empty policy a fresh install starts with."""

    version: Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]
    rules: Annotated[list[PolicyRule], Field(max_length=MAX_RULES)] = Field(default_factory=list)
    note: Annotated[str, Field(max_length=500)] = ""

    @model_validator(mode="after")
    def _check(self) -> RiskPolicy:
        if self.version == 0 and self.rules:
            raise ValueError("version 0 is the empty policy")
        return self

    def windows(self) -> set[int]:
        """Every window length the rules read: the caller reads its totals for these, once per request."""
        return {w for r in self.rules for w in r.windows()}


EMPTY_POLICY: Final = RiskPolicy(version=0)


class Finding(StrEnum):
    """Why a rule stops a request. Staff see the finding and its detail; a player sees `player_message` only."""

    KYC_REQUIRED = "kyc_required"
    KYC_FAILED = "kyc_failed"
    PLAYER_LIMIT = "player_limit"
    DESTINATION_LIMIT = "destination_limit"
    VELOCITY = "velocity"
    NEW_DESTINATION = "new_destination"
    RAIL_NOT_ALLOWED = "rail_not_allowed"
    COUNTRY_NOT_ALLOWED = "country_not_allowed"


class Action(StrEnum):
    ALLOW = "allow"
    HOLD = "hold"  # waits: for a person, or (kyc_required alone) for the player's verification
    REFUSE = "refuse"


ACTION_OF: Final[Mapping[Finding, Action]] = {
    Finding.KYC_REQUIRED: Action.HOLD,
    Finding.KYC_FAILED: Action.REFUSE,
    Finding.PLAYER_LIMIT: Action.REFUSE,
    Finding.DESTINATION_LIMIT: Action.REFUSE,
    Finding.VELOCITY: Action.HOLD,
    Finding.NEW_DESTINATION: Action.HOLD,
    Finding.RAIL_NOT_ALLOWED: Action.REFUSE,
    Finding.COUNTRY_NOT_ALLOWED: Action.REFUSE,
}

# What a player is told: what to do next, never a threshold, a window, a count or a score.
PLAYER_MESSAGE: Final[Mapping[Finding, str]] = {
    Finding.KYC_REQUIRED: "Verify your identity to withdraw.",
    Finding.KYC_FAILED: "We could not verify your identity, so this withdrawal cannot be paid. Contact support.",
    Finding.PLAYER_LIMIT: "This withdrawal is over your current limit. Try a smaller amount later.",
    Finding.DESTINATION_LIMIT: "This destination cannot receive more right now. Try another one later.",
    Finding.VELOCITY: "Your withdrawal is being reviewed. No action is needed.",
    Finding.NEW_DESTINATION: "Your withdrawal to a new destination is being reviewed. No action is needed.",
    Finding.RAIL_NOT_ALLOWED: "This payout method is not available for this withdrawal. Choose another one.",
    Finding.COUNTRY_NOT_ALLOWED: "Withdrawals are not available in your country.",
}

# What staff read for a finding (console, ops CLI), beside its rule and detail: never shown to a player.
FINDING_LABEL: Final[Mapping[Finding, str]] = {
    Finding.KYC_REQUIRED: "identity verification required",
    Finding.KYC_FAILED: "identity verification failed",
    Finding.PLAYER_LIMIT: "over the player's limit",
    Finding.DESTINATION_LIMIT: "over the destination's limit",
    Finding.VELOCITY: "too many requests in the window",
    Finding.NEW_DESTINATION: "new destination (cooldown)",
    Finding.RAIL_NOT_ALLOWED: "rail not allowed",
    Finding.COUNTRY_NOT_ALLOWED: "country not allowed",
}


class GateFinding(StrEnum):
    """A reason the payouts gate records beside the policy's findings: sanctions screening, or a rule it could not
    decide (a payout's gate decision lists both kinds under `finding`)."""

    SCREENING_HIT = "screening_hit"
    SCREENING_PENDING = "screening_pending"
    SCREENING_UNAVAILABLE = "screening_unavailable"
    UNDECIDED = "undecided"


GATE_FINDING_LABEL: Final[Mapping[GateFinding, str]] = {
    GateFinding.SCREENING_HIT: "sanctions screening hit",
    GateFinding.SCREENING_PENDING: "screened against older lists: re-screening pending",
    GateFinding.SCREENING_UNAVAILABLE: "screening not possible",
    GateFinding.UNDECIDED: "undecided",
}


_LABELS: Final[Mapping[str, str]] = {str(k): v for k, v in (*FINDING_LABEL.items(), *GATE_FINDING_LABEL.items())}


def finding_label(code: str) -> str | None:
    """What staff read for a recorded finding, the policy's or the gate's (None: a code this build does not know)."""
    return _LABELS.get(code)


@dataclass(frozen=True, slots=True)
class Hit:
    finding: Finding
    rule: int  # index in `RiskPolicy.rules`
    detail: str  # for staff: names the rule's numbers; never shown to a player

    @property
    def action(self) -> Action:
        return ACTION_OF[self.finding]


@dataclass(frozen=True, slots=True)
class PolicyFacts:
    """What the caller knows about one request. Totals and counts exclude the request itself and are keyed by
    window length in seconds (`RiskPolicy.windows()`); a missing window reads as unknown (the rule is deferred)."""

    asset: str
    amount: int
    destination_type: DestinationType
    verification: VerificationStatus
    rail: ProviderType | None = None
    country: str | None = None
    player_totals: Mapping[int, int] = field(default_factory=dict)
    destination_totals: Mapping[int, int] = field(default_factory=dict)
    player_counts: Mapping[int, int] = field(default_factory=dict)
    destination_age_s: float | None = None  # None: never used by this player
    destination_age_known: bool = True


@dataclass(frozen=True, slots=True)
class Verdict:
    policy_version: int
    hits: tuple[Hit, ...] = ()
    deferred: tuple[str, ...] = ()  # "rule 3: allowed_rails" — left to the evaluation that knows the fact

    @property
    def action(self) -> Action:
        actions = {h.action for h in self.hits}
        if Action.REFUSE in actions:
            return Action.REFUSE
        if Action.HOLD in actions:
            return Action.HOLD
        return Action.ALLOW

    @property
    def first(self) -> Hit | None:
        """The hit that decides: the first refusal, else the first hold."""
        for wanted in (Action.REFUSE, Action.HOLD):
            for h in self.hits:
                if h.action is wanted:
                    return h
        return None

    @property
    def waits_for_verification_only(self) -> bool:
        """Held, and verification alone would release it (the player's own action, no person needed)."""
        return bool(self.hits) and all(h.finding is Finding.KYC_REQUIRED for h in self.hits)

    def reasons(self) -> list[dict[str, object]]:
        """Staff-facing record of the decision (stored with it, shown to staff with the right role)."""
        return [{"finding": h.finding.value, "rule": h.rule, "detail": h.detail} for h in self.hits]


def _applies(scope: PolicyScope, facts: PolicyFacts) -> bool | None:
    """True/False, or None when the scope names a fact the caller does not know (the rail at claim time)."""
    if scope.asset is not None and scope.asset != facts.asset:
        return False
    if scope.destination_type is not None and scope.destination_type is not facts.destination_type:
        return False
    if scope.rail is not None:
        if facts.rail is None:
            return None
        return scope.rail is facts.rail
    return True


def evaluate(policy: RiskPolicy, facts: PolicyFacts) -> Verdict:
    """Every rule whose scope matches the request, applied to the caller's facts: the hits, and what was deferred."""
    hits: list[Hit] = []
    deferred: list[str] = []
    for i, rule in enumerate(policy.rules):
        applies = _applies(rule.scope, facts)
        if applies is None:
            deferred.append(f"rule {i}: scoped to rail {rule.scope.rail}")
        elif applies:
            _apply(i, rule, facts, hits, deferred)
    return Verdict(policy.version, tuple(hits), tuple(deferred))


def _apply(  # noqa: PLR0912, PLR0915 - one branch per kind of rule reads as the list of rules it is
    i: int, rule: PolicyRule, facts: PolicyFacts, hits: list[Hit], deferred: list[str]
) -> None:
    verified = facts.verification is VerificationStatus.VERIFIED
    asset = facts.asset

    def total(window: AmountInWindow, totals: Mapping[int, int], what: str) -> int | None:
        seen = totals.get(window.window_s)
        if seen is None:
            deferred.append(f"rule {i}: {what} over {window.window_s}s")
            return None
        return seen + facts.amount

    if rule.kyc_above is not None and not verified:
        so_far = total(rule.kyc_above, facts.player_totals, "kyc_above")
        if so_far is not None and so_far > rule.kyc_above.amount:
            failed = facts.verification is VerificationStatus.FAILED
            detail = (
                f"{so_far} {asset} in {rule.kyc_above.window_s}s exceeds the verification threshold "
                f"{rule.kyc_above.amount}; verification is {facts.verification.value}"
            )
            hits.append(Hit(Finding.KYC_FAILED if failed else Finding.KYC_REQUIRED, i, detail))
    if rule.player_limit is not None:
        so_far = total(rule.player_limit, facts.player_totals, "player_limit")
        if so_far is not None and so_far > rule.player_limit.amount:
            detail = (
                f"{so_far} {asset} in {rule.player_limit.window_s}s exceeds the player limit {rule.player_limit.amount}"
            )
            hits.append(Hit(Finding.PLAYER_LIMIT, i, detail))
    if rule.destination_limit is not None:
        limit = rule.destination_limit
        so_far = total(limit, facts.destination_totals, "destination_limit")
        if so_far is not None and so_far > limit.amount:
            detail = f"{so_far} {asset} to this destination in {limit.window_s}s exceeds the limit {limit.amount}"
            hits.append(Hit(Finding.DESTINATION_LIMIT, i, detail))
    if rule.velocity is not None:
        made = facts.player_counts.get(rule.velocity.window_s)
        if made is None:
            deferred.append(f"rule {i}: velocity over {rule.velocity.window_s}s")
        elif made >= rule.velocity.count:
            detail = f"{made} requests in {rule.velocity.window_s}s (at most {rule.velocity.count} pass unreviewed)"
            hits.append(Hit(Finding.VELOCITY, i, detail))
    cooldown = rule.new_destination_cooldown_s
    if cooldown:
        age = facts.destination_age_s
        if not facts.destination_age_known:
            deferred.append(f"rule {i}: new_destination_cooldown_s")
        elif age is None or age < cooldown:
            first = "never before" if age is None else f"{age:.0f}s ago"
            hits.append(Hit(Finding.NEW_DESTINATION, i, f"destination first used {first} (cooldown {cooldown}s)"))
    if rule.allowed_rails is not None:
        if facts.rail is None:
            deferred.append(f"rule {i}: allowed_rails")
        elif facts.rail not in rule.allowed_rails:
            hits.append(Hit(Finding.RAIL_NOT_ALLOWED, i, f"rail {facts.rail.value} is not in the allowed rails"))
    if rule.allowed_countries is not None:
        if facts.verification is VerificationStatus.FAILED:
            hits.append(Hit(Finding.KYC_FAILED, i, "a country rule needs a verified identity; verification failed"))
        elif not verified:
            hits.append(Hit(Finding.KYC_REQUIRED, i, "a country rule needs a verified identity"))
        elif facts.country is None:
            deferred.append(f"rule {i}: allowed_countries")
        elif facts.country not in rule.allowed_countries:
            hits.append(Hit(Finding.COUNTRY_NOT_ALLOWED, i, f"country {facts.country} is not allowed"))


def check_two_people(proposed_by: str, approved_by: str) -> None:
    """A policy version takes effect only with a second person's approval."""
    if proposed_by == approved_by:
        raise ValueError("a policy change needs a second person: the proposer cannot approve it")


__all__ = [
    "ACTION_OF",
    "EMPTY_POLICY",
    "FINDING_LABEL",
    "GATE_FINDING_LABEL",
    "PLAYER_MESSAGE",
    "Action",
    "AmountInWindow",
    "CountInWindow",
    "CountryCode",
    "Finding",
    "GateFinding",
    "Hit",
    "PolicyFacts",
    "PolicyRule",
    "PolicyScope",
    "RiskPolicy",
    "Verdict",
    "VerificationStatus",
    "check_two_people",
    "evaluate",
    "finding_label",
]
