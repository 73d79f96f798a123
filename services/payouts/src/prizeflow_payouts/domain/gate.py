"""The compliance gate's rule (docs/adr/0012-pay-only-whom-you-may.md): what a payout may do, given the risk
policy's verdict, the player's verification and the sanctions screening. Pure: the use case reads the facts.

A sanctioned destination or player is never allowed: an uncleared screening match holds the payout for two people
(ApprovalPolicy DUAL), and a screen that cannot answer (a configured list never loaded) holds it too (fail closed).
A verified player whose identity screening predates the loaded lists (`screening_pending`) waits for the re-screen
(`application.compliance.rescreen`), which releases it or turns it into a screening hit. The verdict's holds wait:
for the player's verification alone (`kyc_required`, released by the verification itself) or for a person (`policy`).
A refusal of the policy refuses the request at request time when it is a failed verification (the reservation is
voided); any other refusal, and every refusal at send time, is a person's call.

People who release a `policy` hold decide what it showed them: its findings (`policy_findings`), under its policy
version (`Release`). That decision stands while the policy in force finds nothing else: a version activated since
that refuses the payout (for any reason, the same rule tightened included) or a finding they were not shown holds it
again for people (issue 43: a release under version N sent a payout that N+1 refused).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol

from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_contracts.holds import PAYOUT_HOLD_KINDS, PayoutHoldCode, payout_hold
from prizeflow_contracts.policy import PLAYER_MESSAGE, Action, Finding, Verdict

# Findings never a person's to decide: verification is the player's (and the vendor's).
_NOT_PEOPLES: Final = (Finding.KYC_REQUIRED, Finding.KYC_FAILED)


# Why the gate holds a payout, and everything each kind means (who releases it, how many people, the refusal of an
# approval, whether the resume sweep looks again, the label staff read): one row per kind in
# `prizeflow_contracts.holds.PAYOUT_HOLD_KINDS`, read here, by approvals, the resume sweep, metrics, the console and
# the ops CLI; the database keeps the codes in its reference table `payout_hold_kinds` (migration 0026).
HoldCode = PayoutHoldCode


class Stage(StrEnum):
    REQUEST = "request"  # CreatePayouts, in the transaction that inserts the payout
    SEND = "send"  # the worker, in the transaction that claims an approved payout no provider has seen
    APPROVAL = "approval"  # the approval that releases a hold, again with what is true now
    VERIFICATION = "verification"  # a player's verification changed: their kyc_required holds, again


class SubjectKind(StrEnum):
    DESTINATION = "destination"
    PLAYER = "player"


# Before per-entry player clearances, two approvers cleared "the player's stored hit" wholesale as one entry of this
# pseudo-source. Such a legacy row in screening_clearances clears nothing now (fail closed): a player is cleared only
# entry by entry, so an old false positive's clearance never clears a later, different, real hit. The pair is still
# what a player hit without named entries is recorded as (it never matches a stored entry either).
PLAYER_SCREENING_SOURCE: Final = "player_screening"
PLAYER_SCREENING_ENTRY: Final = "identity"
PENDING_DETAIL: Final = (
    "the player's identity screening predates the loaded sanctions lists: held until it is re-screened"
)
UNAVAILABLE_DETAIL: Final = "sanctions screening unavailable (a configured list is not loaded): held, fail closed"


class ScreeningMatch(Protocol):
    """A list entry a subject matched (`application.compliance.ports.ScreeningMatch` has this shape)."""

    @property
    def source(self) -> str: ...
    @property
    def entry_uid(self) -> str: ...
    @property
    def entry_name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def score(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Screening:
    """The destination's screening: its matches and the list versions it was screened against."""

    matches: tuple[ScreeningMatch, ...]
    versions: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Clearance:
    """A screening match two approvers cleared for this subject (list entry by its source and uid)."""

    kind: SubjectKind
    key: str
    source: str
    entry_uid: str


def policy_findings(verdict: Verdict) -> tuple[str, ...]:
    """What a verdict holds a payout for, as a hold records it (`payouts.hold_findings`): each hit as
    `<finding>@<rule>` and each rule deferred as `undecided@<what>` (a rule's index names it within one version)."""
    found = {f"{h.finding.value}@{h.rule}" for h in verdict.hits} | {f"undecided@{d}" for d in verdict.deferred}
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class Release:
    """What people decided by releasing a `policy` hold: the findings it showed them, under the policy version it
    showed them (`payouts.hold_policy_version`, `hold_findings`)."""

    policy_version: int
    findings: frozenset[str]

    def covers(self, verdict: Verdict) -> bool:
        """Every finding of `verdict` that is a person's to decide was decided: the same version, and nothing it
        finds now that they were not shown. A later version decides anew whatever it finds."""
        if verdict.policy_version != self.policy_version:
            return False
        theirs = {f"{h.finding.value}@{h.rule}" for h in verdict.hits if h.finding not in _NOT_PEOPLES}
        theirs |= {f"undecided@{d}" for d in verdict.deferred}
        return theirs <= self.findings


def people_release(
    hold_code: str | None, policy_version: int | None, findings: Collection[str] | None
) -> Release | None:
    """The decision people made by releasing a hold with this code, version and findings (`GateInput.released`).
    Only a `policy` hold shows its approvers the policy's findings: two people who release a screening hit decided
    the match, never a limit or a country they were not shown (the gate asks about those again, as a `policy` hold),
    and verification is never a person's. A hold recorded without its version (by the release before migration
    0024, during a rollout) decided nothing the gate can name: people are asked again (fail closed)."""
    kind = payout_hold(hold_code)
    if kind is None or not kind.decides_policy or policy_version is None or findings is None:
        return None
    return Release(policy_version, frozenset(findings))


@dataclass(frozen=True, slots=True)
class GateInput:
    stage: Stage
    player_id: str
    player_screening_hit: bool  # the player's stored identity screening matched a list
    destination_key: str
    verdict: Verdict
    screening: Screening | None  # the destination's; None: the screen could not answer (unavailable)
    cleared: Collection[Clearance] = ()
    missing_lists: tuple[str, ...] = ()  # configured sources the screen has not loaded
    released: Release | None = None  # people released an earlier `policy` hold of this payout: what they decided
    # The list entries the player's stored screening matched: each cleared by two approvers (a clearance of this
    # player and entry), or the payout is held. A hit without named entries is never cleared (fail closed).
    player_matches: tuple[ScreeningMatch, ...] = ()
    # The player's stored screening was made against list versions other than the loaded ones (a verified player,
    # screened before a list changed): held `screening_pending` until the re-screen answers.
    player_screening_stale: bool = False


@dataclass(frozen=True, slots=True)
class GateDecision:
    action: Action
    hold: HoldCode | None = None
    detail: str = ""  # staff only: findings, rule numbers, list entries (never the player's data)
    reasons: tuple[Mapping[str, object], ...] = ()
    matches: tuple[ScreeningMatch, ...] = ()  # the uncleared destination matches (what approvers would clear)
    player_hit: bool = False  # the player's own stored screening hit, uncleared
    player_matches: tuple[ScreeningMatch, ...] = ()  # its uncleared entries (what approvers would clear)
    refusal: Finding | None = None  # at request time: why the request is refused
    # The approvals the hold adds: DUAL for a screening hit, SINGLE for a policy hold, None for kyc_required (the
    # verification releases it; the payout keeps the approvals it needed anyway).
    approval_policy: ApprovalPolicy | None = None
    list_versions: Mapping[str, str] = field(default_factory=dict)
    policy_version: int = 0
    findings: tuple[str, ...] = ()  # `policy_findings` of the verdict: what a `policy` hold shows its approvers
    # An allow at request time: what it was made with (`PayoutGate.stamp`), stored with the payout (`gate_stamp`).
    stamp: str | None = None

    @property
    def player_message(self) -> str | None:
        """What the player may be told (never a threshold, list or entry)."""
        if self.refusal is not None:
            return PLAYER_MESSAGE[self.refusal]
        if self.hold is HoldCode.KYC_REQUIRED:
            return PLAYER_MESSAGE[Finding.KYC_REQUIRED]
        return None


def _uncleared(result: Screening | None, key: str, cleared: Collection[Clearance]) -> tuple[ScreeningMatch, ...]:
    if result is None:
        return ()
    done = {(c.source, c.entry_uid) for c in cleared if c.kind is SubjectKind.DESTINATION and c.key == key}
    return tuple(m for m in result.matches if (m.source, m.entry_uid) not in done)


def _uncleared_player(
    player_id: str, matches: Sequence[ScreeningMatch], cleared: Collection[Clearance]
) -> tuple[ScreeningMatch, ...]:
    done = {(c.source, c.entry_uid) for c in cleared if c.kind is SubjectKind.PLAYER and c.key == player_id}
    return tuple(m for m in matches if (m.source, m.entry_uid) not in done)


def player_cleared(player_id: str, matches: Sequence[ScreeningMatch], cleared: Collection[Clearance]) -> bool:
    """Every entry the player's stored screening matched is cleared for this player. No entry named: not cleared
    (a hit nobody can name is never waved through), and a legacy wholesale `identity` clearance clears no entry."""
    return bool(matches) and not _uncleared_player(player_id, matches, cleared)


def _match_reason(m: ScreeningMatch, subject: str = "destination") -> dict[str, object]:
    return {
        "finding": "screening_hit",
        "subject": subject,
        "source": m.source,
        "entry_uid": m.entry_uid,
        "entry_name": m.entry_name,
        "kind": m.kind,
        "score": m.score,
    }


def _player_reasons(uncleared: Sequence[ScreeningMatch], *, hit: bool) -> list[Mapping[str, object]]:
    """One reason per uncleared entry of the player's screening; a hit without named entries is one legacy reason
    (fail closed: nothing can clear it)."""
    reasons: list[Mapping[str, object]] = [_match_reason(m, "player") for m in uncleared]
    if hit and not uncleared:
        reasons.append(
            {
                "finding": "screening_hit",
                "subject": "player",
                "source": PLAYER_SCREENING_SOURCE,
                "entry_uid": PLAYER_SCREENING_ENTRY,
            }
        )
    return reasons


def _named(matches: Sequence[ScreeningMatch], player: Sequence[ScreeningMatch], *, player_hit: bool) -> str:
    named = [f"{m.source}:{m.entry_uid} ({m.kind}, score {m.score})" for m in matches]
    named += [f"the player's identity: {m.source}:{m.entry_uid} ({m.kind}, score {m.score})" for m in player]
    if player_hit and not player:
        named.append("the player's verified identity matched a list")
    return "screening hit: " + "; ".join(named)


def decide(g: GateInput) -> GateDecision:  # noqa: PLR0911 - one return per outcome reads as the rule it is
    """The gate's decision on one payout (see the module docstring for the order of the rules)."""
    verdict = g.verdict
    reasons: list[Mapping[str, object]] = list(verdict.reasons())
    versions = dict(g.screening.versions) if g.screening is not None else {}
    matches = _uncleared(g.screening, g.destination_key, g.cleared)
    player_matches = _uncleared_player(g.player_id, g.player_matches, g.cleared) if g.player_screening_hit else ()
    player_hit = g.player_screening_hit and not player_cleared(g.player_id, g.player_matches, g.cleared)
    reasons.extend(_match_reason(m) for m in matches)
    reasons.extend(_player_reasons(player_matches, hit=player_hit))
    pending = g.player_screening_stale and not player_hit
    if pending:
        reasons.append({"finding": "screening_pending", "subject": "player"})
    if verdict.deferred:  # payouts is the last gate: a rule it cannot decide is a person's call, never a pass
        reasons.append({"finding": "undecided", "detail": "; ".join(verdict.deferred)[:500]})
    unavailable = g.screening is None or bool(g.missing_lists)
    if unavailable:
        reasons.append({"finding": "screening_unavailable", "missing": list(g.missing_lists)})
    reasons_t = tuple(reasons)
    findings = policy_findings(verdict)

    def held(code: HoldCode, detail: str) -> GateDecision:
        """Held with `code`: the approvals its kind takes (none for a hold the player's own step releases)."""
        return GateDecision(
            Action.HOLD,
            code,
            detail[:2000],
            reasons_t,
            matches,
            player_hit,
            player_matches,
            approval_policy=PAYOUT_HOLD_KINDS[code].approval,
            list_versions=versions,
            policy_version=verdict.policy_version,
            findings=findings,
        )

    def allowed() -> GateDecision:
        return GateDecision(
            Action.ALLOW,
            reasons=reasons_t,
            list_versions=versions,
            policy_version=verdict.policy_version,
            findings=findings,
        )

    # 1. A failed verification refuses the request (as the deny list does): nothing will ever pay it.
    refusals = [h for h in verdict.hits if h.action is Action.REFUSE]
    if g.stage is Stage.REQUEST and any(h.finding is Finding.KYC_FAILED for h in refusals):
        return GateDecision(
            Action.REFUSE,
            None,
            "; ".join(h.detail for h in refusals)[:2000],
            reasons_t,
            matches,
            player_hit,
            player_matches,
            refusal=Finding.KYC_FAILED,
            list_versions=versions,
            policy_version=verdict.policy_version,
            findings=findings,
        )
    # 2. Screening: a hit (or no answer) is for two people, whatever the policy says.
    if matches or player_hit:
        return held(HoldCode.SCREENING_HIT, _named(matches, player_matches, player_hit=player_hit))
    if unavailable:
        missing = f" ({', '.join(g.missing_lists)})" if g.missing_lists else ""
        return held(HoldCode.SCREENING_HIT, UNAVAILABLE_DETAIL + missing)
    # 2b. A verified player screened against older lists: the re-screen decides (no person's approval added).
    if pending:
        return held(HoldCode.SCREENING_PENDING, PENDING_DETAIL)
    # 3. The policy (a rule deferred here, e.g. a country rule for a player verified without a country, holds).
    if verdict.action is Action.ALLOW and not verdict.deferred:
        return allowed()
    if verdict.waits_for_verification_only:  # the player's own action releases it: no person's approval added
        return held(HoldCode.KYC_REQUIRED, _details(verdict))
    kyc = [h for h in verdict.hits if h.finding in _NOT_PEOPLES]
    decided = g.released is not None and g.released.covers(verdict)
    if decided and not kyc:
        # People released this payout's hold with exactly these findings before them, under this very version.
        return allowed()
    if decided and all(h.finding is Finding.KYC_REQUIRED for h in kyc):
        # Verification still missing: it waits for the player, the rest was decided by people.
        return held(HoldCode.KYC_REQUIRED, _details(verdict))
    return held(HoldCode.POLICY, _details(verdict))


def _details(verdict: Verdict) -> str:
    found = [f"{h.finding.value}: {h.detail}" for h in verdict.hits]
    found += [f"undecided ({d}): a fact the rule needs is unknown" for d in verdict.deferred]
    return f"policy v{verdict.policy_version}: " + "; ".join(found)


def stricter(a: ApprovalPolicy, b: ApprovalPolicy) -> ApprovalPolicy:
    order = (ApprovalPolicy.AUTO, ApprovalPolicy.SINGLE, ApprovalPolicy.DUAL)
    return max(a, b, key=order.index)


def clearances_from_reasons(
    reasons: Sequence[Mapping[str, object]], *, player_id: str, destination: str
) -> list[Clearance]:
    """The matches a recorded screening hold named (`GateDecision.reasons`), as clearances of its subjects."""
    out: list[Clearance] = []
    for r in reasons:
        if r.get("finding") != "screening_hit":
            continue
        if r.get("subject") == "destination":
            out.append(Clearance(SubjectKind.DESTINATION, destination, str(r["source"]), str(r["entry_uid"])))
        elif r.get("subject") == "player":
            # Per entry. A reason without one (recorded before per-entry clearances) becomes the legacy wholesale
            # pair, which clears nothing (`player_cleared`): the gate asks about the player's entries again.
            source = str(r.get("source") or PLAYER_SCREENING_SOURCE)
            entry = str(r.get("entry_uid") or PLAYER_SCREENING_ENTRY)
            out.append(Clearance(SubjectKind.PLAYER, player_id, source, entry))
    return out


def clearances_for(
    decision_matches: Sequence[ScreeningMatch],
    *,
    player_id: str,
    player_matches: Sequence[ScreeningMatch] = (),
    destination: str,
) -> list[Clearance]:
    """What two approvers clear by releasing a screening hold: each destination and player entry it named."""
    out = [Clearance(SubjectKind.DESTINATION, destination, m.source, m.entry_uid) for m in decision_matches]
    out += [Clearance(SubjectKind.PLAYER, player_id, m.source, m.entry_uid) for m in player_matches]
    return out


__all__ = [
    "PENDING_DETAIL",
    "PLAYER_SCREENING_ENTRY",
    "PLAYER_SCREENING_SOURCE",
    "UNAVAILABLE_DETAIL",
    "Clearance",
    "GateDecision",
    "GateInput",
    "HoldCode",
    "Release",
    "Screening",
    "ScreeningMatch",
    "Stage",
    "SubjectKind",
    "clearances_for",
    "clearances_from_reasons",
    "decide",
    "people_release",
    "player_cleared",
    "policy_findings",
    "stricter",
]
