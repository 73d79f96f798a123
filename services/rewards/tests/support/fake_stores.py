"""In-memory stores of rewards but the ledger and the top-ups, for the use cases' unit tests; each keeps what its
PostgreSQL store keeps (`tests/integration/test_store_contracts.py` holds them together)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fake_ledger import Shared

from prizeflow_contracts.envelope import Envelope, StagedEvent, decode
from prizeflow_contracts.events.payouts import PayoutRoutesPublished, PlayerVerificationChanged, RiskPolicyActivated
from prizeflow_contracts.policy import EMPTY_POLICY, RiskPolicy, VerificationStatus
from prizeflow_rewards.application.ports import (
    ClaimDecision,
    ClaimHistory,
    ClaimTrail,
    FirstUse,
    FxPosition,
    FxReconciliation,
    HeldRound,
    HeldRoundTrail,
    IntakeFacts,
    IntakeQuery,
)
from prizeflow_rewards.domain.campaigns import Campaign, CampaignStatus
from prizeflow_rewards.domain.claims import RESUMED_BY_VERIFICATION, Claim, ClaimStatus
from prizeflow_rewards.domain.contradictions import Contradiction
from prizeflow_rewards.domain.corrections import Correction, CorrectionStatus
from prizeflow_rewards.domain.fx import Quote


@dataclass
class _Row:
    claim: Claim
    decided_at: datetime | None = None
    decided_by: str | None = None
    settled_at: datetime | None = None


class FakeClaims(Shared):
    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}
        # What `intake_facts` reads besides claims (the database joins them; `Fakes` links them).
        self.players = FakePlayers()
        self.routes = FakeRoutes()

    async def get(self, claim_id: str, *, lock: bool = False) -> Claim | None:
        row = self.rows.get(claim_id)
        return row.claim if row is not None else None

    async def held(self, *, limit: int) -> list[Claim]:
        held = [r.claim for r in self.rows.values() if r.claim.status is ClaimStatus.HELD]
        return sorted(held, key=lambda c: c.created_at)[:limit]

    async def of_player(self, player_id: str, *, limit: int) -> list[Claim]:
        mine = [r.claim for r in self.rows.values() if r.claim.player_id == player_id]
        return sorted(mine, key=lambda c: (c.created_at, c.id), reverse=True)[:limit]

    async def find(self, claim_ids: Iterable[str]) -> dict[str, Claim]:
        return {i: r.claim for i in claim_ids if (r := self.rows.get(i))}

    async def lock_many(self, claim_ids: Iterable[str]) -> dict[str, Claim]:
        return {i: r.claim for i in sorted(claim_ids) if (r := self.rows.get(i))}

    async def intake_facts(
        self,
        queries: Sequence[IntakeQuery],
        *,
        day: datetime,
        velocity: datetime,
        window: datetime,
        now: datetime,
        windows: Sequence[int] = (),
    ) -> list[IntakeFacts]:
        return [
            IntakeFacts(
                existing=await self.get(q.claim_id),
                history=self.history(q.player_id, q.asset, day=day, velocity=velocity, window=window),
                destination_first_seen=self.players.destinations.get((q.player_id, q.destination_key)),
                risk_flagged=self.players.flags.get(q.player_id, False),
                routable=self.routes.routable(
                    q.payout_asset or q.asset, q.destination_type, q.payout_amount or q.amount
                ),
                **self.sums(q, now, windows),
            )
            for q in queries
        ]

    def sums(self, q: IntakeQuery, now: datetime, windows: Sequence[int]) -> dict[str, dict[int, int]]:
        """As the database sums them: live claims' amounts in the asset, claims in any asset, the destination's."""
        live = {ClaimStatus.HELD, ClaimStatus.APPROVED, ClaimStatus.PAID}
        others = [r.claim for r in self.rows.values()]
        out: dict[str, dict[int, int]] = {"player_totals": {}, "player_counts": {}, "destination_totals": {}}
        for w in windows:
            since = now - timedelta(seconds=w)
            inside = [c for c in others if c.created_at > since]
            mine = [c for c in inside if c.player_id == q.player_id]
            out["player_totals"][w] = sum(c.amount for c in mine if c.asset == q.asset and c.status in live)
            out["player_counts"][w] = len(mine)
            out["destination_totals"][w] = sum(
                c.amount
                for c in inside
                if c.destination_key == q.destination_key and c.asset == q.asset and c.status in live
            )
        return out

    async def waiting_for_verification(self, player_ids: Sequence[str]) -> list[Claim]:
        return sorted(
            (
                r.claim
                for r in self.rows.values()
                if r.claim.player_id in player_ids
                and r.claim.status is ClaimStatus.HELD
                and r.claim.hold_code in RESUMED_BY_VERIFICATION
            ),
            key=lambda c: c.id,
        )

    async def rehold(self, claim_id: str, *, code: str, detail: str, policy_version: int) -> None:
        row = self.rows[claim_id]
        if row.claim.status is ClaimStatus.HELD:
            row.claim = replace(row.claim, hold_code=code, hold_detail=detail, policy_version=policy_version)

    def history(
        self, player_id: str, asset: str, *, day: datetime, velocity: datetime, window: datetime
    ) -> ClaimHistory:
        mine = [r.claim for r in self.rows.values() if r.claim.player_id == player_id]
        live = {ClaimStatus.HELD, ClaimStatus.APPROVED, ClaimStatus.PAID}
        failed = {ClaimStatus.REJECTED, ClaimStatus.VOIDED, ClaimStatus.RETURNED}
        recent = [c for c in mine if c.created_at > window]
        return ClaimHistory(
            claimed_today=sum(c.amount for c in mine if c.asset == asset and c.created_at > day and c.status in live),
            recent=sum(1 for c in mine if c.created_at > velocity),
            decided=sum(1 for c in recent if c.status in failed | {ClaimStatus.PAID}),
            failed=sum(1 for c in recent if c.status in failed),
        )

    async def add_many(self, claims: Sequence[Claim], destinations: Sequence[FirstUse]) -> None:
        for claim in claims:
            assert claim.id not in self.rows
            held = claim.status is ClaimStatus.HELD
            self.rows[claim.id] = _Row(claim, decided_at=None if held else claim.created_at)
        for d in destinations:
            self.players.destinations.setdefault((d.player_id, d.destination_key), d.at)

    async def decide(self, claim_id: str, decision: ClaimDecision) -> None:
        row = self.rows[claim_id]
        row.claim = replace(row.claim, status=decision.status, rejection_code=decision.rejection_code)
        row.decided_at, row.decided_by = decision.at, decision.by

    async def record_outcomes(
        self, bound: Sequence[tuple[str, str]], settled: Sequence[tuple[str, ClaimStatus]]
    ) -> None:
        for claim_id, payout_id in bound:
            row = self.rows[claim_id]
            row.claim = replace(row.claim, payout_id=payout_id)
        for claim_id, status in settled:
            row = self.rows[claim_id]
            row.claim = replace(row.claim, status=status)
            row.settled_at = datetime.now(UTC)

    async def stats(self) -> tuple[int, int, int]:
        since = datetime.now(UTC) - timedelta(days=1)
        decided = [
            r.claim.status
            for r in self.rows.values()
            if r.decided_at is not None and r.decided_at > since and r.claim.status in _DONE
        ]
        held = sum(1 for r in self.rows.values() if r.claim.status is ClaimStatus.HELD)
        return held, len(decided), sum(1 for s in decided if s is not ClaimStatus.PAID)


_DONE = frozenset({ClaimStatus.PAID, ClaimStatus.REJECTED, ClaimStatus.VOIDED, ClaimStatus.RETURNED})


class FakeFxQuotes:
    """Quotes by id; a quote is locked once (the database's trigger: a second claim is an error)."""

    def __init__(self) -> None:
        self.quotes: dict[str, Quote] = {}
        self.runs: dict[tuple[date, str], FxReconciliation] = {}
        self.positions_now: list[FxPosition] = []

    async def add(self, quote: Quote) -> None:
        assert quote.id not in self.quotes
        self.quotes[quote.id] = quote

    async def get(self, quote_id: str) -> Quote | None:
        return self.quotes.get(quote_id)

    async def lock_many(self, quote_ids: Iterable[str]) -> dict[str, Quote]:
        return {i: self.quotes[i] for i in sorted(set(quote_ids)) if i in self.quotes}

    async def bind_many(self, locks: Sequence[tuple[str, str]], *, at: datetime) -> None:
        for quote_id, claim_id in locks:
            quote = self.quotes[quote_id]
            if quote.claim_id not in (None, claim_id):
                raise AssertionError(f"fx quote {quote_id} is locked by claim {quote.claim_id}")
            self.quotes[quote_id] = replace(quote, claim_id=claim_id)

    async def positions(self) -> list[FxPosition]:
        return list(self.positions_now)

    async def record_reconciliation(self, day: date, positions: Sequence[FxPosition], *, at: datetime) -> None:
        for p in positions:
            self.runs[(day, p.asset)] = FxReconciliation(day, p.asset, p.ledger, p.booked, p.difference, at)

    async def reconciliations(self, *, limit: int) -> list[FxReconciliation]:
        return sorted(self.runs.values(), key=lambda r: (r.day, r.asset), reverse=True)[:limit]


class FakeCompliance:
    """The policy and verification projections (only higher versions and sequences replace); no locks."""

    def __init__(self) -> None:
        self.policy: RiskPolicy = EMPTY_POLICY
        self.verifications: dict[str, tuple[VerificationStatus, int]] = {}
        self.locked: list[list[str]] = []
        self.busy: set[str] = set()  # players whose verification lock a change holds (the test sets them)

    async def intake(self, player_ids: Sequence[str]) -> tuple[RiskPolicy, dict[str, VerificationStatus]]:
        self.busy -= set(player_ids)  # waited for: the verification change ended meanwhile
        return self.policy, {p: self.status(p) for p in player_ids}

    async def intake_unless_busy(
        self, player_ids: Sequence[str]
    ) -> tuple[RiskPolicy, dict[str, VerificationStatus], set[str]]:
        busy = {p for p in player_ids if p in self.busy}
        return self.policy, {p: self.status(p) for p in player_ids if p not in busy}, busy

    def status(self, player_id: str) -> VerificationStatus:
        return self.verifications.get(player_id, (VerificationStatus.NOT_STARTED, 0))[0]

    async def lock_players(self, player_ids: Sequence[str]) -> None:
        self.locked.append(sorted(player_ids))

    async def activate(self, event: RiskPolicyActivated) -> bool:
        if event.policy.version <= self.policy.version:
            return False
        self.policy = event.policy
        return True

    async def record_verification(self, event: PlayerVerificationChanged) -> bool:
        if event.sequence <= self.verifications.get(event.player_id, (None, 0))[1]:
            return False
        self.verifications[event.player_id] = (event.status, event.sequence)
        return True


class FakePlayers(Shared):
    def __init__(self) -> None:
        self.destinations: dict[tuple[str, str], datetime] = {}
        self.flags: dict[str, bool] = {}

    async def set_risk_flag(self, player_id: str, *, flagged: bool, reason: str | None, by: str) -> None:
        self.flags[player_id] = flagged


class FakeRoutes(Shared):
    def __init__(self) -> None:
        self.sequence: int | None = None
        self.published_at: datetime | None = None
        self.routes: set[tuple[str, str, str]] = set()
        self.amounts: dict[tuple[str, str, str], tuple[int, ...]] = {}  # routes that pay fixed amounts only

    def routable(self, asset: str, destination_type: str, amount: int) -> bool:
        return any(
            (a, d) == (asset, destination_type) and amount in self.amounts.get((a, d, p), (amount,))
            for a, d, p in self.routes
        )

    async def lock(self) -> None:
        return None

    async def publish(self, announcement: PayoutRoutesPublished) -> None:
        if self.sequence is not None and self.sequence >= announcement.sequence:
            return
        self.sequence, self.published_at = announcement.sequence, announcement.published_at
        self.routes = {(r.asset, r.destination_type.value, r.provider.value) for r in announcement.routes}
        self.amounts = {
            (r.asset, r.destination_type.value, r.provider.value): r.amounts for r in announcement.routes if r.amounts
        }

    async def all(self) -> list[dict[str, Any]]:
        return [
            {
                "asset": a,
                "destination_type": d,
                "provider": p,
                "published_at": self.published_at,
                "amounts": list(self.amounts[(a, d, p)]) if (a, d, p) in self.amounts else None,
            }
            for a, d, p in sorted(self.routes)
        ]


class FakeCampaigns:
    def __init__(self) -> None:
        self.rows: dict[str, Campaign] = {}

    async def get(self, campaign_id: str, *, lock: bool = False) -> Campaign | None:
        return self.rows.get(campaign_id)

    async def all(self) -> list[Campaign]:
        return list(self.rows.values())

    async def create(self, campaign: Campaign, *, created_by: str) -> bool:
        if campaign.id in self.rows:
            return False
        self.rows[campaign.id] = campaign
        return True

    async def set_status(self, campaign_id: str, status: CampaignStatus) -> None:
        self.rows[campaign_id] = replace(self.rows[campaign_id], status=status)


@dataclass
class FakeAllocations(Shared):
    outcomes: dict[str, str] = field(default_factory=dict)
    held: dict[str, HeldRound] = field(default_factory=dict)  # in the order they were held
    released: dict[str, str] = field(default_factory=dict)  # round id → by

    async def record_outcomes(self, outcomes: Sequence[tuple[str, str]]) -> None:
        for round_id, outcome in outcomes:
            self.outcomes.setdefault(round_id, outcome)

    async def voided(self, round_id: str) -> bool:
        return self.outcomes.get(round_id) == "voided"

    async def voided_among(self, round_ids: Sequence[str]) -> set[str]:
        return {r for r in round_ids if self.outcomes.get(r) == "voided"}

    async def is_held(self, round_id: str) -> bool:
        return round_id in self.held

    async def held_among(self, round_ids: Sequence[str]) -> set[str]:
        return {r for r in round_ids if r in self.held}

    async def hold(self, held: HeldRound) -> None:
        self.held.setdefault(held.round_id, held)

    async def lock_held(self, campaign_id: str) -> list[HeldRound]:
        return [h for r, h in self.held.items() if h.campaign_id == campaign_id and r not in self.released]

    async def mark_released(self, round_id: str, *, by: str) -> None:
        self.released[round_id] = by

    async def held_totals(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for r, h in self.held.items():
            if r not in self.released:
                n, total = out.get(h.campaign_id, (0, 0))
                out[h.campaign_id] = (n + 1, total + h.total)
        return out


class FakeOutbox:
    def __init__(self) -> None:
        self.events: list[Envelope[Any]] = []
        self.writes = 0  # calls to `stage`: one write each in PostgreSQL

    async def stage(self, events: Sequence[Envelope[Any] | StagedEvent]) -> None:
        """Encoded events (`stage_event`) are kept as the consumer will read them (`decode`)."""
        self.writes += 1
        self.events.extend(decode(e.payload) if isinstance(e, StagedEvent) else e for e in events)

    def of(self, cls: type[Any]) -> list[Any]:
        """The staged payloads of one event type, in order."""
        return [e.data for e in self.events if isinstance(e.data, cls)]


class FakeCorrections:
    """Keeps the rules the database keeps: one per reference, two people, a decision is final."""

    def __init__(self) -> None:
        self.rows: dict[str, Correction] = {}

    async def add(self, correction: Correction) -> bool:
        if any(c.reference == correction.reference for c in self.rows.values()):
            return False
        self.rows[correction.id] = correction
        return True

    async def by_reference(self, reference: str) -> Correction | None:
        return next((c for c in self.rows.values() if c.reference == reference), None)

    async def get(self, correction_id: str, *, lock: bool = False) -> Correction | None:
        return self.rows.get(correction_id)

    async def list(self, *, status: CorrectionStatus | None, limit: int) -> list[Correction]:
        return [c for c in reversed(self.rows.values()) if status is None or c.status is status][:limit]

    async def decide(self, correction: Correction) -> None:
        before = self.rows[correction.id]
        assert before.status is CorrectionStatus.PROPOSED, "a decided correction never changes (the database)"
        assert correction.approved_by != correction.proposed_by, "two people (the database's CHECK)"
        self.rows[correction.id] = correction


class FakeContradictions:
    """`Contradictions` in memory: once per (subject, aggregate, source)."""

    def __init__(self) -> None:
        self.rows: list[Contradiction] = []
        self.recorded_at: list[datetime] = []

    async def record(self, contradiction: Contradiction) -> bool:
        key = (contradiction.subject, contradiction.aggregate_id, contradiction.source_ref)
        if any((c.subject, c.aggregate_id, c.source_ref) == key for c in self.rows):
            return False
        self.rows.append(contradiction)
        self.recorded_at.append(datetime.now(UTC))
        return True

    async def recent(self, *, limit: int) -> list[dict[str, Any]]:
        """As the table's rows: their id (in recording order) and when, with the contradiction."""
        rows = [
            {"id": i, **vars_of(c), "recorded_at": at}
            for i, (c, at) in enumerate(zip(self.rows, self.recorded_at, strict=True), start=1)
        ]
        return rows[::-1][:limit]


def vars_of(c: Contradiction) -> dict[str, Any]:
    return {k: getattr(c, k) for k in ("subject", "aggregate_id", "state", "reported", "source_ref", "detail")}


class FakeFlows:
    """Reads the claims, held rounds and top-ups of one flow, as the PostgreSQL queries read their tables."""

    def __init__(self, claims: FakeClaims, allocations: FakeAllocations, top_ups: Any) -> None:
        self.claims, self.allocations, self.top_ups = claims, allocations, top_ups

    async def claims_of(self, correlation_id: str, *, limit: int) -> list[ClaimTrail]:
        rows = sorted(
            (r for r in self.claims.rows.values() if r.claim.correlation_id == correlation_id),
            key=lambda r: (r.claim.created_at, r.claim.id),
        )
        return [
            ClaimTrail(
                r.claim.id,
                r.claim.asset,
                r.claim.amount,
                r.claim.status.value,
                r.claim.hold_code,
                r.claim.rejection_code,
                r.claim.created_at,
                r.decided_at,
                r.settled_at,
                r.claim.payout_id,
            )
            for r in rows[:limit]
        ]

    async def held_rounds_of(self, correlation_id: str, *, limit: int) -> list[HeldRoundTrail]:
        return [
            HeldRoundTrail(
                h.round_id,
                h.campaign_id,
                h.asset,
                h.total,
                h.reason,
                AT,
                AT if r in self.allocations.released else None,
            )
            for r, h in self.allocations.held.items()
            if h.event.correlationid == correlation_id
        ][:limit]

    async def top_ups_of(self, correlation_id: str, *, limit: int) -> list[Any]:
        found = [t for t in self.top_ups.rows.values() if t.correlation_id == correlation_id]
        return sorted(found, key=lambda t: (t.created_at, t.id))[:limit]


class FakeBackend:
    """The one backend of the fakes' one transaction at a time."""

    def __init__(self, pid: int = 4242) -> None:
        self.server_pid = pid

    async def pid(self) -> int:
        return self.server_pid


class FakeLostCommits:
    """Records the backends it was asked to end; `fail` makes the database out of reach."""

    def __init__(self) -> None:
        self.ended: list[int] = []
        self.fail: Exception | None = None

    async def end(self, pid: int) -> None:
        if self.fail is not None:
            raise self.fail
        self.ended.append(pid)


AT = datetime(2026, 1, 1, tzinfo=UTC)  # when the fakes say a round was held or released (they keep no clock)

__all__ = [
    "FakeAllocations",
    "FakeBackend",
    "FakeCampaigns",
    "FakeClaims",
    "FakeCompliance",
    "FakeContradictions",
    "FakeCorrections",
    "FakeFlows",
    "FakeLostCommits",
    "FakeOutbox",
    "FakePlayers",
    "FakeRoutes",
    "vars_of",
]
