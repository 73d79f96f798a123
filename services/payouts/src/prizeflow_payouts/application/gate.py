"""`PayoutGate`: the risk policy and sanctions screening applied to payouts (docs/adr/0012-pay-only-whom-you-may.md).

Run in the caller's transaction, over a batch: at request time (CreatePayouts, with the insert), at send time (the
worker, with the claim of approved payouts no provider has seen), when people release a hold (PayoutAdmin.approve)
and when a player's verification changes (`ResumeVerifiedPayouts`). One read each of the active policy, the
players' verification, the clearances and the window facts (one query for the batch), the destinations screened in
memory; every decision recorded (`compliance_decisions`) with the policy and list versions it was made with.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from prizeflow_compliance.facts import ComplianceStores, PlayerCompliance, SanctionsScreen
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_contracts.holds import PAYOUT_HOLD_KINDS
from prizeflow_contracts.policy import Action, PolicyFacts, RiskPolicy, VerificationStatus, evaluate
from prizeflow_contracts.providers import DestinationType, PayoutDestination, ProviderType, destination_key
from prizeflow_payouts.domain.gate import (
    Clearance,
    GateDecision,
    GateInput,
    HoldCode,
    Release,
    Screening,
    Stage,
    SubjectKind,
    decide,
    people_release,
)
from prizeflow_payouts.domain.payout import Payout

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FactsQuery:
    """One payout whose window facts the gate needs (the payout itself is left out of its own sums)."""

    payout_id: str
    player_id: str
    destination_key: str
    asset: str


@dataclass(frozen=True, slots=True)
class WindowFacts:
    """Per window length (seconds): the player's totals (this asset) and counts (any asset), the destination's
    totals (this asset, every player), and when this player first used this destination (None: never). Payouts that
    ended without paying (a final failure, cancelled, rejected) count for nothing."""

    player_totals: Mapping[int, int] = field(default_factory=dict)
    player_counts: Mapping[int, int] = field(default_factory=dict)
    destination_totals: Mapping[int, int] = field(default_factory=dict)
    first_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    payout_id: str
    claim_id: str
    player_id: str
    stage: Stage
    decision: GateDecision
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class Hold:
    payout_id: str
    code: HoldCode
    detail: str
    approval_policy: str
    policy_version: int  # the policy version and findings the hold shows (what people who release it decide)
    findings: tuple[str, ...]

    @classmethod
    def of(cls, payout_id: str, code: HoldCode, decision: GateDecision, approval_policy: str) -> Hold:
        """The hold `decision` puts on a payout, with what it shows approvers."""
        return cls(
            payout_id,
            code,
            decision.detail or code.value,
            approval_policy,
            decision.policy_version,
            decision.findings,
        )


class GateStore(Protocol):
    """What the gate reads and writes in the payouts transaction (`books.holds`, `adapters.holds_pg.SqlHoldStore`)."""

    async def gate_facts(
        self, queries: Sequence[FactsQuery], windows: Sequence[int], *, now: datetime, lock: bool
    ) -> dict[str, WindowFacts]:
        """One query for the batch. `lock`: serialise concurrent requests of one player, and of any players to one
        destination (transaction-scoped advisory locks, taken in one order), so two of them cannot both pass a limit
        the sum of them breaks: each is decided counting the ones before it. The send stage's decisions take them
        too (`PayoutGate.decide`)."""
        ...

    async def clearances(self, subjects: Sequence[tuple[SubjectKind, str]]) -> list[Clearance]: ...

    async def add_clearances(
        self, clearances: Sequence[Clearance], *, cleared_by: tuple[str, str], payout_id: str, at: datetime
    ) -> None: ...

    async def record_decisions(self, records: Sequence[DecisionRecord]) -> None: ...

    async def hold(self, holds: Sequence[Hold], *, at: datetime) -> None:
        """Write each payout's hold (code, staff detail, from now, the approval it needs, the policy version and
        findings it shows)."""
        ...

    async def latest_decision(self, payout_id: str) -> DecisionRecord | None: ...

    async def release_holds(self, payout_ids: Sequence[str]) -> None:
        """Pending payouts no longer on hold (they wait for approvers only)."""
        ...

    async def approvals_of(self, payout_ids: Sequence[str]) -> dict[str, list[str]]:
        """Everyone who approved each payout, in order, whatever hold came since."""
        ...

    async def held_payouts(self, player_ids: Sequence[str], code: HoldCode, *, limit: int) -> list[Payout]:
        """Pending payouts held with `code` (of these players; all players when empty), locked, skipping locked."""
        ...

    async def players_with_holds(self, code: HoldCode, *, limit: int) -> list[str]: ...

    async def held_counts(self) -> dict[str, int]:
        """Payouts on hold (pending_approval) by hold code."""
        ...

    async def lock_due_for_submit(self, *, limit: int) -> list[Payout]:
        """The payouts `claim_for_submit` would claim, locked (skip locked), not yet claimed."""
        ...

    async def claim_locked(self, locked: Sequence[Payout], *, owner: str, lease_s: float) -> list[Payout]:
        """Claim these payouts, as `lock_due_for_submit` returned them in this transaction, as `claim_for_submit`
        does (each knows its `previous_state`); one this transaction has moved since (a hold) is not claimed."""
        ...


class GateBooks(Protocol):
    """What the gate runs on: the payouts transaction's books (`application.books.Books`), its holds and the
    compliance facts bound to that one transaction (docs/adr/0012)."""

    @property
    def holds(self) -> GateStore: ...

    @property
    def compliance(self) -> ComplianceStores: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """A payout to decide on (at request time not stored yet)."""

    payout: Payout
    released: Release | None = None  # what people decided by releasing its earlier `policy` hold

    @classmethod
    def stored(cls, payout: Payout) -> Candidate:
        """A stored payout, with what people decided by releasing its `policy` hold (the version and findings the
        hold showed them), if they did."""
        return cls(payout, people_release(payout.hold_code, payout.hold_policy_version, payout.hold_findings))

    @property
    def destination(self) -> PayoutDestination:
        return self.payout.destination


class PayoutGate:
    def __init__(
        self,
        *,
        screen: SanctionsScreen,
        sources: Sequence[str] = (),
        metrics: ComplianceMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ready_wait_s: float = 30.0,
        catch_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.screen = screen
        self.sources = tuple(sources)  # the configured sanctions lists: one not loaded holds everything
        self.metrics = metrics
        self.clock = clock
        self.ready_wait_s = ready_wait_s
        # Loads the newest stored lists when this process's are older (`RefreshSanctionsLists.catch_up`): called
        # before a batch is gated, outside its transaction.
        self._catch_up = catch_up

    async def catch_up(self) -> None:
        """Gate against the newest stored lists: a process still on an older version (its hourly refresh not due
        yet) loads the newer one first, so it holds the players that version makes stale. A failure to look is
        logged; the loaded lists stay (the next batch looks again)."""
        if self._catch_up is None:
            return
        try:
            await self._catch_up()
        except Exception:
            log.exception("sanctions lists: could not look for newer stored versions; gating with the loaded ones")

    @property
    def screen_ready(self) -> bool:
        """Every configured list is loaded in this process (a screen without the notion is always ready)."""
        return bool(getattr(self.screen, "ready", True))

    async def wait_ready(self) -> bool:
        wait = getattr(self.screen, "wait_ready", None)
        if wait is None:
            return self.screen_ready
        return bool(await wait(self.ready_wait_s))

    async def decide(
        self,
        books: GateBooks,
        candidates: Sequence[Candidate],
        stage: Stage,
        *,
        extra_cleared: Sequence[Clearance] = (),
    ) -> list[GateDecision]:
        """One decision per candidate, in order; nothing written. At request time, candidates of one batch count
        towards each other's sums in order (as if inserted one after the other)."""
        if not candidates:
            return []
        if stage is Stage.REQUEST and not self.screen_ready:
            # A process just started loads its lists in the background while its consumers already read: a
            # request waits for them a while rather than be held for two people only because it came first.
            await self.wait_ready()
        now = self.clock()
        compliance = books.compliance.facts
        policy = await compliance.active_policy()
        players = await compliance.players(sorted({c.payout.player_id for c in candidates}))
        destinations = [c.destination for c in candidates]  # a model built from the row's columns: once each
        keys = [destination_key(d) for d in destinations]
        windows = sorted(policy.windows())
        facts: Mapping[str, WindowFacts] = {}
        if reads_history(policy):
            # Only a rule that sums a window or asks a destination's first use reads the payouts before this one
            # (and only then do concurrent requests of one player, or to one destination, need ordering): a policy
            # with neither costs no statement here. The send stage takes the same locks: a payout it decides again
            # (held and released, or requested under a policy that locked nothing) may have been stored after an
            # open request to its player or destination read its facts; waiting for that request's commit, it counts
            # it, where that request's allow will stand at send without counting this one (`standing`).
            facts = await books.holds.gate_facts(
                [
                    FactsQuery(c.payout.id, c.payout.player_id, k, c.payout.asset)
                    for c, k in zip(candidates, keys, strict=True)
                ],
                windows,
                now=now,
                lock=stage in (Stage.REQUEST, Stage.SEND),
            )
        subjects: list[tuple[SubjectKind, str]] = sorted(
            {(SubjectKind.DESTINATION, k) for k in keys}
            | {(SubjectKind.PLAYER, c.payout.player_id) for c in candidates}
        )
        cleared = [*await books.holds.clearances(subjects), *extra_cleared]
        versions = self._versions()
        missing = tuple(s for s in self.sources if s not in versions)
        current = self.current_versions(versions)
        siblings = _Siblings()
        stamps: dict[str, str] = {}  # per player: what an allow at request is made with
        out: list[GateDecision] = []
        for cand, key, destination in zip(candidates, keys, destinations, strict=True):
            rec = cand.payout
            player = players.get(rec.player_id) or PlayerCompliance(rec.player_id, VerificationStatus.NOT_STARTED)
            window = facts.get(rec.id, WindowFacts())
            if stage is Stage.REQUEST:
                window = siblings.add(rec, key, window, windows, now)
            verdict = evaluate(policy, _policy_facts(rec, player, window, windows, now))
            decision = decide(
                GateInput(
                    stage=stage,
                    player_id=rec.player_id,
                    player_screening_hit=player.screening_hit,
                    player_matches=player.screening_matches,
                    player_screening_stale=player.screening_stale(current),
                    destination_key=key,
                    verdict=verdict,
                    screening=self._screen(destination),
                    cleared=cleared,
                    missing_lists=missing,
                    released=cand.released,
                )
            )
            if stage is Stage.REQUEST and decision.action is Action.ALLOW:
                if rec.player_id not in stamps:
                    stamps[rec.player_id] = stamp(policy.version, current, player)
                decision = replace(decision, stamp=stamps[rec.player_id])
            out.append(decision)
        return out

    async def standing(self, books: GateBooks, payouts: Sequence[Payout]) -> dict[str, GateDecision]:
        """The send stage's short way: of these approved payouts no provider has seen, those whose request-time
        allow still stands — the same active policy version, the same loaded list versions and the same stored
        verification and screening of the player as when it was made (`gate_stamp`) — each with its allow to record
        again at send (`STANDS`). Two reads for the batch (the policy, the players); no window sum is recomputed
        (the request counted this payout with every one before it of its player and of its destination, and later
        requests counted it in theirs: requests are serialised per player and per destination), no
        clearance read (they only ever add), the destination not screened again (same lists, same answer). Any
        other payout (held or released since, a version or a player's facts changed, a list not loaded), and every
        payout under a policy reading an earlier payout's fate (`settled_by_stamp`), is left for `decide`."""
        stamped = [p for p in payouts if p.gate_stamp]
        if not stamped or not self.screen_ready:
            return {}
        versions = self._versions()
        if any(s not in versions for s in self.sources):
            return {}  # a list not loaded: `decide` holds (screening unavailable)
        current = self.current_versions(versions)
        compliance = books.compliance.facts
        policy = await compliance.active_policy()
        if not settled_by_stamp(policy):
            return {}  # a fact of other payouts that can turn against this one since its request: `decide`
        players = await compliance.players(sorted({p.player_id for p in stamped}))
        unknown = VerificationStatus.NOT_STARTED
        stamps = {
            pid: stamp(policy.version, current, players.get(pid) or PlayerCompliance(pid, unknown))
            for pid in {p.player_id for p in stamped}
        }
        stands = GateDecision(Action.ALLOW, reasons=(STANDS,), list_versions=current, policy_version=policy.version)
        return {p.id: stands for p in stamped if p.gate_stamp == stamps[p.player_id]}

    async def standing_at_once(
        self, books: GateBooks, decisions: Mapping[str, GateDecision]
    ) -> dict[str, GateDecision]:
        """Of request-time decisions this transaction has just made (by payout id), those that already stand at send,
        each with the send-stage allow `standing` would record at the payout's first pass (`STANDS`): an allow with
        its stamp, under the policy still active and the lists still loaded that it was made with, when that policy's
        allows stand on their stamp (`settled_by_stamp`). Such a payout can go straight to its worker. One read (the
        active policy)."""
        allowed = {pid: d for pid, d in decisions.items() if d.action is Action.ALLOW and d.stamp}
        if not allowed or not self.screen_ready:
            return {}
        # The lists this process has loaded: they catch up with a newer stored version at each worker pass (at most
        # once a second, `catch_up`, outside any transaction) and at their refresh; not here, where a load would hold
        # the request's locks.
        versions = self._versions()
        if any(s not in versions for s in self.sources):
            return {}
        current = self.current_versions(versions)
        policy = await books.compliance.facts.active_policy()
        if not settled_by_stamp(policy):
            return {}
        stands = GateDecision(Action.ALLOW, reasons=(STANDS,), list_versions=current, policy_version=policy.version)
        return {
            pid: stands
            for pid, d in allowed.items()
            if d.policy_version == policy.version and dict(d.list_versions) == current
        }

    def count(self, stage: Stage, decisions: Sequence[GateDecision]) -> None:
        if self.metrics is None:
            return
        # One labelled child lookup per label set of the batch, not one per decision.
        actions = Counter(d.action.value for d in decisions)
        for action, n in actions.items():
            self.metrics.gate_decisions.labels(stage.value, action).inc(n)
        for d in decisions:
            if d.hold is HoldCode.SCREENING_HIT and (d.matches or d.player_hit):
                for subject in ("destination",) * bool(d.matches) + ("player",) * d.player_hit:
                    self.metrics.screening_hits.labels(subject).inc()

    async def refresh_held(self, books: GateBooks) -> dict[str, int]:
        """The `payouts_held` gauge from the database (every replica exports the same figures)."""
        counts = await books.holds.held_counts()
        if self.metrics is not None:
            for code in PAYOUT_HOLD_KINDS:
                self.metrics.payouts_held.labels(code.value).set(counts.get(code.value, 0))
        return counts

    def current_versions(self, versions: Mapping[str, str] | None = None) -> dict[str, str]:
        """The loaded versions of the configured sources: what a verified player's screening must have been made
        against (`PlayerCompliance.screening_stale`). A configured source not loaded is not here: the gate holds
        everything for it anyway (unavailable)."""
        loaded = self._versions() if versions is None else versions
        return {s: loaded[s] for s in self.sources if s in loaded}

    def _versions(self) -> Mapping[str, str]:
        try:
            return dict(self.screen.versions())
        except Exception:
            log.exception("sanctions screen: versions unavailable")
            return {}

    def _screen(self, destination: PayoutDestination) -> Screening | None:
        try:
            result = self.screen.screen_destination(destination)
        except Exception as err:  # noqa: BLE001 - a list not loaded, or a fault: held, never allowed
            log.warning("sanctions screen unavailable (%s): the payout is held", type(err).__name__)
            return None
        if self.metrics is not None:
            self.metrics.screenings.labels("destination", "hit" if result.hit else "clear").inc()
        return Screening(tuple(result.matches), dict(result.versions))


# The reason a send-stage decision records when the request's allow stood (`PayoutGate.standing`).
STANDS: Mapping[str, object] = {
    "finding": "request_decision_stands",
    "detail": "the request's allow, made with this policy version, these lists and the player's facts as they are now",
}


# How a request that stamps its allow was decided: 2, under locks on its players and its destinations (0522c5a).
# A stamp of an earlier form (players locked only: another player's request to the destination may have been decided
# at the same time, neither counting the other) never equals one computed now, so it never stands at send.
STAMP_FORM = 2


def stamp(policy_version: int, lists: Mapping[str, str], player: PlayerCompliance) -> str:
    """What an allow was made with: the policy version, the loaded lists' versions and the player's stored facts
    (verification, country, screening versions and matched entries), and how the request was decided
    (`STAMP_FORM`), as one string (`payouts.gate_stamp`)."""
    screened = None if player.screening_versions is None else sorted(player.screening_versions.items())
    facts = [
        STAMP_FORM,
        sorted(lists.items()),
        player.player_id,
        player.verification.value,
        player.country,
        screened,
        sorted((m.source, m.entry_uid, m.kind, m.score) for m in player.screening_matches),
    ]
    digest = hashlib.sha256(json.dumps(facts, separators=(",", ":")).encode()).hexdigest()[:40]
    return f"v{policy_version}:{digest}"


def settled_by_stamp(policy: RiskPolicy) -> bool:
    """Whether a request's allow under `policy` can stand at send on its stamp alone. Not when a rule reads a fact
    of other payouts that can turn against this one after its request, which the stamp cannot name: a destination's
    first use (the earlier payout that made it old may end unpaid since, counting for nothing: the destination is new
    again). A player's sums and counts, and a destination's sum over every player, only grow by later requests that
    counted this payout (requests are serialised per player and per destination: `GateStore.gate_facts`'s lock),
    and only shrink as payouts end unpaid or leave the window."""
    return not any(r.new_destination_cooldown_s for r in policy.rules)


def reads_history(policy: RiskPolicy) -> bool:
    """Whether deciding by `policy` needs the payouts before this one: a window's sums or counts, or a
    destination's first use (`new_destination_cooldown_s`)."""
    return bool(policy.windows()) or any(r.new_destination_cooldown_s for r in policy.rules)


def _policy_facts(
    rec: Payout, player: PlayerCompliance, window: WindowFacts, windows: Sequence[int], now: datetime
) -> PolicyFacts:
    first = window.first_used_at
    return PolicyFacts(
        asset=rec.asset,
        amount=rec.amount,
        destination_type=DestinationType(rec.destination_type),
        verification=player.verification,
        rail=ProviderType(rec.provider_type),
        country=player.country,
        player_totals={w: int(window.player_totals.get(w, 0)) for w in windows},
        destination_totals={w: int(window.destination_totals.get(w, 0)) for w in windows},
        player_counts={w: int(window.player_counts.get(w, 0)) for w in windows},
        destination_age_s=None if first is None else max(0.0, (now - first).total_seconds()),
    )


class _Siblings:
    """Requests earlier in one batch, as if already stored: a batch cannot split an amount past a limit. Running
    sums per player, player and asset, and destination and asset: each request costs the same whatever its place in
    the batch (it used to rescan every earlier one: quadratic in the batch's size)."""

    def __init__(self) -> None:
        self.any = False
        self.player_amounts: dict[tuple[str, str], int] = {}  # (player, asset) → sum
        self.player_counts: dict[str, int] = {}  # player → requests, any asset
        self.destination_amounts: dict[tuple[str, str], int] = {}  # (destination key, asset) → sum
        self.used: set[tuple[str, str]] = set()  # (player, destination key)

    def add(self, rec: Payout, key: str, base: WindowFacts, windows: Sequence[int], now: datetime) -> WindowFacts:
        before = self.any
        player_sum = self.player_amounts.get((rec.player_id, rec.asset), 0)
        player_count = self.player_counts.get(rec.player_id, 0)
        destination_sum = self.destination_amounts.get((key, rec.asset), 0)
        used = (rec.player_id, key) in self.used
        self.any = True
        self.player_amounts[(rec.player_id, rec.asset)] = player_sum + rec.amount
        self.player_counts[rec.player_id] = player_count + 1
        self.destination_amounts[(key, rec.asset)] = destination_sum + rec.amount
        self.used.add((rec.player_id, key))
        if not before:
            return base
        return WindowFacts(
            player_totals={w: base.player_totals.get(w, 0) + player_sum for w in windows},
            player_counts={w: base.player_counts.get(w, 0) + player_count for w in windows},
            destination_totals={w: base.destination_totals.get(w, 0) + destination_sum for w in windows},
            first_used_at=base.first_used_at or (now if used else None),
        )


__all__ = [
    "STANDS",
    "Candidate",
    "DecisionRecord",
    "FactsQuery",
    "GateBooks",
    "GateStore",
    "Hold",
    "PayoutGate",
    "WindowFacts",
    "stamp",
]
