"""In-memory fakes of the rewards ports, for unit tests of the use cases: the rules, not the SQL.

The fake ledger keeps the ledger's contract (idempotent transfer ids, pending → post/void once, all-or-nothing
batches, debits never above credits on the accounts that say so); it takes no locks (one test, one task) but
remembers what was declared. The transaction handed to the use cases is ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prizeflow_contracts.envelope import Envelope, StagedEvent, decode
from prizeflow_contracts.events.payouts import PayoutRoutesPublished, PlayerVerificationChanged, RiskPolicyActivated
from prizeflow_contracts.policy import EMPTY_POLICY, RiskPolicy, VerificationStatus
from prizeflow_rewards.application.ports import (
    CheckoutRefusedError,
    CheckoutRequest,
    CheckoutSession,
    CheckoutUnavailableError,
    ClaimDecision,
    ClaimHistory,
    FirstUse,
    HeldRound,
    IntakeFacts,
    IntakeQuery,
    Stores,
    TransferRecord,
    WalletMovement,
)
from prizeflow_rewards.domain.campaigns import Campaign, CampaignStatus
from prizeflow_rewards.domain.claims import Claim, ClaimStatus
from prizeflow_rewards.domain.contradictions import Contradiction
from prizeflow_rewards.domain.corrections import Correction, CorrectionStatus
from prizeflow_rewards.domain.ledger import (
    RESOLVING_BITS,
    AccountKind,
    AccountRef,
    Balance,
    BatchResult,
    LedgerError,
    Transfer,
    TransferFlags,
    TransferKind,
    deltas,
)
from prizeflow_rewards.domain.topups import Adjustment, AdjustmentStatus, TopUp, TopUpStatus


class FakeLedger:
    def __init__(self) -> None:
        self.accounts: dict[uuid.UUID, AccountRef] = {}
        self.balance: dict[uuid.UUID, Balance] = {}
        self.transfers: dict[uuid.UUID, Transfer] = {}
        self.resolved: dict[uuid.UUID, uuid.UUID] = {}  # pending id → the post/void that resolved it
        self.declared: list[set[AccountRef]] = []
        self.busy: set[AccountRef] = set()  # held by another transaction (`lock_unless_busy` skips them)
        self.waited: list[set[AccountRef]] = []  # what `wait_free` waited for

    def _open(self, ref: AccountRef) -> Balance:
        self.accounts.setdefault(ref.id, ref)
        return self.balance.setdefault(ref.id, Balance(flags=int(ref.flags)))

    async def apply(self, tx: object, transfers: Sequence[Transfer]) -> BatchResult:
        batch: dict[uuid.UUID, Transfer] = {}
        for t in transfers:
            if t.id in batch and batch[t.id].body() != t.body():
                raise LedgerError("transfer_conflict", f"{t.business_key}: twice in one batch with different bodies")
            batch[t.id] = t
        new: list[Transfer] = []
        duplicates: list[Transfer] = []
        resolving: set[uuid.UUID] = set()
        for t in batch.values():
            stored = self.transfers.get(t.id)
            if stored is not None:
                if stored.body() != t.body():
                    raise LedgerError("transfer_conflict", f"{t.business_key}: id {t.id} exists with a different body")
                duplicates.append(t)
                continue
            if t.bits & RESOLVING_BITS:
                assert t.pending_id is not None
                pending = self.transfers.get(t.pending_id)
                if pending is None:
                    raise LedgerError("pending_not_found", f"{t.business_key}: no pending transfer {t.pending_id}")
                if not pending.bits & TransferFlags.PENDING:
                    raise LedgerError("not_pending", f"{t.business_key}: transfer {t.pending_id} is not pending")
                if (pending.debit, pending.credit, pending.amount) != (t.debit, t.credit, t.amount):
                    raise LedgerError("pending_mismatch", f"{t.business_key}: accounts/amount differ from the pending")
                if t.pending_id in self.resolved or t.pending_id in resolving:
                    raise LedgerError("pending_already_resolved", "the pending transfer was already posted or voided")
                resolving.add(t.pending_id)
            new.append(t)
        after: dict[uuid.UUID, Balance] = {}
        for account_id, d in deltas(new).items():
            ref = next(r for t in new for r in (t.debit, t.credit) if r.id == account_id)
            b = self.balance.get(account_id, Balance(flags=int(ref.flags))).apply(d)
            if b.violates_flags():
                raise LedgerError("exceeds_credits", f"the database refused: debits would exceed credits on {ref}")
            after[account_id] = b
        for t in new:  # all or nothing: only once every account is known to accept the batch
            self._open(t.debit)
            self._open(t.credit)
            self.transfers[t.id] = t
            if t.pending_id is not None:
                self.resolved[t.pending_id] = t.id
        self.balance.update(after)
        debited = {t.debit.id for t in new}
        return BatchResult(
            applied=new,
            duplicates=duplicates,
            balances={i: replace(b) for i, b in after.items() if i in debited},
        )

    async def declare(self, tx: object, refs: Iterable[AccountRef]) -> None:
        refs = set(refs)
        for r in refs:
            self._open(r)
        self.declared.append(refs)

    async def lock(self, tx: object, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        refs = list(refs)
        await self.declare(tx, refs)
        return {r: replace(self.balance[r.id]) for r in refs}

    async def lock_unless_busy(
        self, tx: object, refs: Iterable[AccountRef], *, unless_busy: Iterable[AccountRef]
    ) -> tuple[dict[AccountRef, Balance], set[AccountRef]]:
        """As the database does it; `busy` (accounts another transaction holds) is the test's to set."""
        balances = await self.lock(tx, refs)
        busy: set[AccountRef] = set()
        for r in unless_busy:
            if r in self.busy:
                busy.add(r)
            elif r not in balances:
                known = self.balance.get(r.id)
                balances[r] = replace(known) if known is not None else Balance(flags=int(r.flags))
        self.declared.append(set(balances))
        return balances, busy

    async def wait_free(self, tx: object, refs: Iterable[AccountRef]) -> None:
        self.waited.append(set(refs))
        self.busy -= set(refs)  # the other transaction ended meanwhile

    async def balances(self, tx: object, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        return {r: replace(self.balance.get(r.id, Balance(flags=int(r.flags)))) for r in refs}

    async def resolved_by(self, tx: object, pending_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return {self.resolved[p] for p in pending_ids if p in self.resolved}

    async def recorded(self, tx: object, transfer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        return {i: self.transfers[i].amount for i in transfer_ids if i in self.transfers}

    # What the tests read back.
    def of(self, ref: AccountRef) -> Balance:
        return replace(self.balance.get(ref.id, Balance(flags=int(ref.flags))))


@dataclass
class _Row:
    claim: Claim
    decided_at: datetime | None = None
    decided_by: str | None = None
    settled: bool = False


class FakeClaims:
    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}
        # What `intake_facts` reads besides claims (the database joins them; `Fakes` links them).
        self.players = FakePlayers()
        self.routes = FakeRoutes()

    async def get(self, tx: object, claim_id: str, *, lock: bool = False) -> Claim | None:
        row = self.rows.get(claim_id)
        return row.claim if row is not None else None

    async def held(self, tx: object, *, limit: int) -> list[Claim]:
        held = [r.claim for r in self.rows.values() if r.claim.status is ClaimStatus.HELD]
        return sorted(held, key=lambda c: c.created_at)[:limit]

    async def of_player(self, tx: object, player_id: str, *, limit: int) -> list[Claim]:
        mine = [r.claim for r in self.rows.values() if r.claim.player_id == player_id]
        return sorted(mine, key=lambda c: (c.created_at, c.id), reverse=True)[:limit]

    async def find(self, tx: object, claim_ids: Iterable[str]) -> dict[str, Claim]:
        return {i: r.claim for i in claim_ids if (r := self.rows.get(i))}

    async def lock_many(self, tx: object, claim_ids: Iterable[str]) -> dict[str, Claim]:
        return {i: r.claim for i in sorted(claim_ids) if (r := self.rows.get(i))}

    async def intake_facts(
        self,
        tx: object,
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
                existing=await self.get(tx, q.claim_id),
                history=self.history(q.player_id, q.asset, day=day, velocity=velocity, window=window),
                destination_first_seen=self.players.destinations.get((q.player_id, q.destination_key)),
                risk_flagged=self.players.flags.get(q.player_id, False),
                routable=self.routes.routable(q.asset, q.destination_type, q.amount),
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

    async def waiting_for_verification(self, tx: object, player_ids: Sequence[str]) -> list[Claim]:
        return sorted(
            (
                r.claim
                for r in self.rows.values()
                if r.claim.player_id in player_ids
                and r.claim.status is ClaimStatus.HELD
                and r.claim.hold_code == "kyc_required"
            ),
            key=lambda c: c.id,
        )

    async def rehold(self, tx: object, claim_id: str, *, code: str, detail: str, policy_version: int) -> None:
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

    async def add_many(self, tx: object, claims: Sequence[Claim], destinations: Sequence[FirstUse]) -> None:
        for claim in claims:
            assert claim.id not in self.rows
            held = claim.status is ClaimStatus.HELD
            self.rows[claim.id] = _Row(claim, decided_at=None if held else claim.created_at)
        for d in destinations:
            self.players.destinations.setdefault((d.player_id, d.destination_key), d.at)

    async def decide(self, tx: object, claim_id: str, decision: ClaimDecision) -> None:
        row = self.rows[claim_id]
        row.claim = replace(row.claim, status=decision.status, rejection_code=decision.rejection_code)
        row.decided_at, row.decided_by = decision.at, decision.by

    async def record_outcomes(
        self, tx: object, bound: Sequence[tuple[str, str]], settled: Sequence[tuple[str, ClaimStatus]]
    ) -> None:
        for claim_id, payout_id in bound:
            row = self.rows[claim_id]
            row.claim = replace(row.claim, payout_id=payout_id)
        for claim_id, status in settled:
            row = self.rows[claim_id]
            row.claim = replace(row.claim, status=status)
            row.settled = True


class FakeCompliance:
    """The policy and verification projections (only higher versions and sequences replace); no locks."""

    def __init__(self) -> None:
        self.policy: RiskPolicy = EMPTY_POLICY
        self.verifications: dict[str, tuple[VerificationStatus, int]] = {}
        self.locked: list[list[str]] = []
        self.busy: set[str] = set()  # players whose verification lock a change holds (the test sets them)

    async def intake(self, tx: object, player_ids: Sequence[str]) -> tuple[RiskPolicy, dict[str, VerificationStatus]]:
        self.busy -= set(player_ids)  # waited for: the verification change ended meanwhile
        return self.policy, {p: self.status(p) for p in player_ids}

    async def intake_unless_busy(
        self, tx: object, player_ids: Sequence[str]
    ) -> tuple[RiskPolicy, dict[str, VerificationStatus], set[str]]:
        busy = {p for p in player_ids if p in self.busy}
        return self.policy, {p: self.status(p) for p in player_ids if p not in busy}, busy

    def status(self, player_id: str) -> VerificationStatus:
        return self.verifications.get(player_id, (VerificationStatus.NOT_STARTED, 0))[0]

    async def lock_players(self, tx: object, player_ids: Sequence[str]) -> None:
        self.locked.append(sorted(player_ids))

    async def activate(self, tx: object, event: RiskPolicyActivated) -> bool:
        if event.policy.version <= self.policy.version:
            return False
        self.policy = event.policy
        return True

    async def record_verification(self, tx: object, event: PlayerVerificationChanged) -> bool:
        if event.sequence <= self.verifications.get(event.player_id, (None, 0))[1]:
            return False
        self.verifications[event.player_id] = (event.status, event.sequence)
        return True


class FakePlayers:
    def __init__(self) -> None:
        self.destinations: dict[tuple[str, str], datetime] = {}
        self.flags: dict[str, bool] = {}

    async def set_risk_flag(self, tx: object, player_id: str, *, flagged: bool, reason: str | None, by: str) -> None:
        self.flags[player_id] = flagged


class FakeRoutes:
    def __init__(self) -> None:
        self.sequence: int | None = None
        self.routes: set[tuple[str, str, str]] = set()
        self.amounts: dict[tuple[str, str, str], tuple[int, ...]] = {}  # routes that pay fixed amounts only

    def routable(self, asset: str, destination_type: str, amount: int) -> bool:
        return any(
            (a, d) == (asset, destination_type) and amount in self.amounts.get((a, d, p), (amount,))
            for a, d, p in self.routes
        )

    async def lock(self, tx: object) -> None:
        return None

    async def publish(self, tx: object, announcement: PayoutRoutesPublished) -> None:
        if self.sequence is not None and self.sequence >= announcement.sequence:
            return
        self.sequence = announcement.sequence
        self.routes = {(r.asset, r.destination_type.value, r.provider.value) for r in announcement.routes}
        self.amounts = {
            (r.asset, r.destination_type.value, r.provider.value): r.amounts for r in announcement.routes if r.amounts
        }

    async def all(self, tx: object) -> list[dict[str, Any]]:
        return [{"asset": a, "destination_type": d, "provider": p} for a, d, p in sorted(self.routes)]


class FakeCampaigns:
    def __init__(self) -> None:
        self.rows: dict[str, Campaign] = {}

    async def get(self, tx: object, campaign_id: str, *, lock: bool = False) -> Campaign | None:
        return self.rows.get(campaign_id)

    async def all(self, tx: object) -> list[Campaign]:
        return list(self.rows.values())

    async def create(self, tx: object, campaign: Campaign, *, created_by: str) -> bool:
        if campaign.id in self.rows:
            return False
        self.rows[campaign.id] = campaign
        return True

    async def set_status(self, tx: object, campaign_id: str, status: CampaignStatus) -> None:
        self.rows[campaign_id] = replace(self.rows[campaign_id], status=status)


@dataclass
class FakeAllocations:
    outcomes: dict[str, str] = field(default_factory=dict)
    held: dict[str, HeldRound] = field(default_factory=dict)  # in the order they were held
    released: dict[str, str] = field(default_factory=dict)  # round id → by

    async def record_outcomes(self, tx: object, outcomes: Sequence[tuple[str, str]]) -> None:
        for round_id, outcome in outcomes:
            self.outcomes.setdefault(round_id, outcome)

    async def voided(self, tx: object, round_id: str) -> bool:
        return self.outcomes.get(round_id) == "voided"

    async def is_held(self, tx: object, round_id: str) -> bool:
        return round_id in self.held

    async def held_among(self, tx: object, round_ids: Sequence[str]) -> set[str]:
        return {r for r in round_ids if r in self.held}

    async def hold(self, tx: object, held: HeldRound) -> None:
        self.held.setdefault(held.round_id, held)

    async def lock_held(self, tx: object, campaign_id: str) -> list[HeldRound]:
        return [h for r, h in self.held.items() if h.campaign_id == campaign_id and r not in self.released]

    async def mark_released(self, tx: object, round_id: str, *, by: str) -> None:
        self.released[round_id] = by

    async def held_totals(self, tx: object) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for r, h in self.held.items():
            if r not in self.released:
                n, total = out.get(h.campaign_id, (0, 0))
                out[h.campaign_id] = (n + 1, total + h.total)
        return out


class FakeWallets:
    """Reads the fake ledger, as the PostgreSQL queries read the ledger's tables."""

    def __init__(self, ledger: FakeLedger) -> None:
        self.ledger = ledger

    async def balances(self, tx: object, player_id: str) -> list[tuple[str, Balance]]:
        return sorted(
            (ref.asset, self.ledger.of(ref))
            for ref in self.ledger.accounts.values()
            if ref.kind is AccountKind.PLAYER_WALLET and ref.owner == player_id and self.ledger.of(ref) != Balance()
        )

    async def wallet_ids(self, tx: object, player_id: str, *, asset: str | None) -> list[uuid.UUID]:
        return [
            ref.id
            for ref in self.ledger.accounts.values()
            if ref.kind is AccountKind.PLAYER_WALLET and ref.owner == player_id and asset in (None, ref.asset)
        ]

    async def movements(
        self,
        tx: object,
        wallet_ids: Sequence[uuid.UUID],
        *,
        kind: TransferKind | None,
        before_seq: int | None,
        limit: int,
    ) -> list[WalletMovement]:
        raise NotImplementedError("no unit test reads wallet history")


class FakeOutbox:
    def __init__(self) -> None:
        self.events: list[Envelope[Any]] = []
        self.writes = 0  # calls to `stage`: one write each in PostgreSQL

    async def stage(self, tx: object, events: Sequence[Envelope[Any] | StagedEvent]) -> None:
        """Encoded events (`stage_event`) are kept as the consumer will read them (`decode`)."""
        self.writes += 1
        self.events.extend(decode(e.payload) if isinstance(e, StagedEvent) else e for e in events)

    def of(self, cls: type[Any]) -> list[Any]:
        """The staged payloads of one event type, in order."""
        return [e.data for e in self.events if isinstance(e.data, cls)]


class FakeTopUps:
    """Top-ups and adjustments with the database's rules: one credit, one adjustment per (provider, kind, ref),
    final states final, an adjustment applied once and only to a credited top-up."""

    def __init__(self) -> None:
        self.rows: dict[str, TopUp] = {}
        self.adj: dict[tuple[str, str, str], tuple[str, Adjustment]] = {}  # (provider, kind, ref) → (provider, adj)
        self._seq = 0
        self.player_locks: list[str] = []

    async def get(self, tx: object, top_up_id: str, *, lock: bool = False) -> TopUp | None:
        return self.rows.get(top_up_id)

    async def lock_player(self, tx: object, player_id: str) -> None:
        self.player_locks.append(player_id)

    async def open_or_credited_since(self, tx: object, player_id: str, asset: str, *, since: datetime) -> int:
        return sum(
            t.amount
            for t in self.rows.values()
            if t.player_id == player_id
            and t.asset == asset
            and t.created_at > since
            and (t.status is TopUpStatus.CREDITED or (t.status is TopUpStatus.CREATED and t.expires_at > since))
        )

    async def add(self, tx: object, top_up: TopUp) -> bool:
        if top_up.id in self.rows:
            return False
        if any((t.provider, t.session_ref) == (top_up.provider, top_up.session_ref) for t in self.rows.values()):
            raise AssertionError("top_ups_one_session")
        self.rows[top_up.id] = top_up
        return True

    async def lock_matching(
        self, tx: object, *, top_up_ids: Sequence[str], session_refs: Sequence[str], payment_refs: Sequence[str]
    ) -> list[TopUp]:
        return sorted(
            (
                t
                for t in self.rows.values()
                if t.id in top_up_ids or t.session_ref in session_refs or t.payment_ref in payment_refs
            ),
            key=lambda t: t.id,
        )

    async def find(
        self, tx: object, *, top_up_id: str | None, session_ref: str | None, payment_ref: str | None
    ) -> TopUp | None:
        rows = self.rows.values()
        by_id = [t for t in rows if t.id == top_up_id]
        by_session = [t for t in rows if session_ref is not None and t.session_ref == session_ref]
        by_payment = [t for t in rows if payment_ref is not None and t.payment_ref == payment_ref]
        found = by_id or by_session or by_payment
        return found[0] if found else None

    async def set_status(self, tx: object, top_up_id: str, status: TopUpStatus) -> None:
        current = self.rows[top_up_id]
        assert current.status is TopUpStatus.CREATED or current.status is status, "top_ups_transition"
        self.rows[top_up_id] = replace(current, status=status)

    async def mark_credited(
        self, tx: object, top_up_id: str, *, payment_ref: str | None, transfer_id: uuid.UUID, at: datetime
    ) -> None:
        current = self.rows[top_up_id]
        assert current.status is TopUpStatus.CREATED, "top_ups_transition"
        assert all(t.credit_transfer_id != transfer_id for t in self.rows.values()), "top_ups_one_credit"
        self.rows[top_up_id] = replace(
            current,
            status=TopUpStatus.CREDITED,
            payment_ref=payment_ref or current.payment_ref,
            credit_transfer_id=transfer_id,
            credited_at=at,
        )

    async def adjustments(self, tx: object, top_up_id: str) -> list[Adjustment]:
        return sorted((a for _, a in self.adj.values() if a.top_up_id == top_up_id), key=lambda a: a.seq)

    async def record_adjustment(
        self, tx: object, provider: str, adjustment: Adjustment, *, provider_event_id: str
    ) -> None:
        key = (provider, adjustment.kind.value, adjustment.adjustment_ref)
        assert key not in self.adj, "top_up_adjustments_once"
        assert self.rows[adjustment.top_up_id].provider == provider, "top_up_adjustments_of_top_up"
        self._seq += 1
        self.adj[key] = (provider, replace(adjustment, status=AdjustmentStatus.PENDING, seq=self._seq))

    async def find_adjustment(self, tx: object, provider: str, kind: str, adjustment_ref: str) -> Adjustment | None:
        found = self.adj.get((provider, kind, adjustment_ref))
        return found[1] if found else None

    async def mark_applied(self, tx: object, adjustment: Adjustment) -> None:
        key = next(
            k
            for k, (_, a) in self.adj.items()
            if (a.top_up_id, a.kind, a.adjustment_ref)
            == (adjustment.top_up_id, adjustment.kind, adjustment.adjustment_ref)
        )
        provider, current = self.adj[key]
        assert current.status is AdjustmentStatus.PENDING, "top_up_adjustments_apply_once"
        assert self.rows[current.top_up_id].status is TopUpStatus.CREDITED, "top_up_adjustments_apply_once"
        assert adjustment.debited + adjustment.receivable + adjustment.credited == current.amount, "split"
        self.adj[key] = (provider, replace(adjustment, seq=current.seq, status=AdjustmentStatus.APPLIED))


class FakeCheckout:
    """A checkout provider in memory, Stripe-shaped: idempotent on the top-up id; `pay`/`expire` are the payer."""

    currency_scheme = "stripe"

    def __init__(self, name: str = "stripe") -> None:
        self.name = name
        self.sessions: dict[str, CheckoutSession] = {}
        self.by_top_up: dict[str, str] = {}
        self.requests: list[CheckoutRequest] = []
        self.down = False
        self.refuse: str | None = None

    async def create_session(self, request: CheckoutRequest) -> CheckoutSession:
        self.requests.append(request)
        if self.down:
            raise CheckoutUnavailableError(self.name, "APIConnectionError (http None)")
        if self.refuse:
            raise CheckoutRefusedError(self.name, self.refuse, "http 400")
        ref = self.by_top_up.get(request.top_up_id)
        if ref is None:
            ref = f"cs_test_{len(self.sessions) + 1}"
            self.by_top_up[request.top_up_id] = ref
            self.sessions[ref] = CheckoutSession(
                session_ref=ref,
                url=f"https://checkout.test/{ref}",
                status="open",
                payment_status="unpaid",
                amount_total=request.amount,
                currency=request.currency,
                payment_ref=None,
                expires_at=datetime(2030, 1, 1, tzinfo=UTC),
                top_up_id=request.top_up_id,
            )
        return self.sessions[ref]

    async def retrieve_session(self, session_ref: str) -> CheckoutSession:
        if self.down:
            raise CheckoutUnavailableError(self.name, "APIConnectionError (http None)")
        return self.sessions[session_ref]

    def pay(self, session_ref: str) -> str:
        payment = "pi_" + session_ref.removeprefix("cs_")
        self.sessions[session_ref] = replace(
            self.sessions[session_ref], status="complete", payment_status="paid", payment_ref=payment
        )
        return payment

    def expire(self, session_ref: str) -> None:
        self.sessions[session_ref] = replace(self.sessions[session_ref], status="expired")


class FakeLedgerBook:
    """Reads the fake ledger as `PgLedgerBook` reads the ledger's tables."""

    def __init__(self, ledger: FakeLedger) -> None:
        self.ledger = ledger

    def _record(self, seq: int, t: Transfer) -> TransferRecord:
        return TransferRecord(
            seq, t.id, t.kind.value, t.debit, t.credit, t.amount, t.bits, t.pending_id, t.business_key,
            t.correlation_id, datetime(2026, 1, 1, tzinfo=UTC),
        )  # fmt: skip

    async def transfers(
        self,
        tx: object,
        *,
        correlation_id: str | None,
        account: tuple[AccountKind, str] | None,
        before_seq: int | None,
        limit: int,
    ) -> list[TransferRecord]:
        found = [
            self._record(seq, t)
            for seq, t in enumerate(self.ledger.transfers.values(), start=1)
            if (correlation_id is None or t.correlation_id == correlation_id)
            and (account is None or account in {(t.debit.kind, t.debit.owner), (t.credit.kind, t.credit.owner)})
            and (before_seq is None or seq < before_seq)
        ]
        return found[::-1][:limit]

    async def transfer(self, tx: object, transfer_id: uuid.UUID) -> TransferRecord | None:
        for seq, t in enumerate(self.ledger.transfers.values(), start=1):
            if t.id == transfer_id:
                return self._record(seq, t)
        return None

    async def existing(self, tx: object, refs: Iterable[AccountRef]) -> set[uuid.UUID]:
        return {r.id for r in refs if r.id in self.ledger.accounts}


class FakeCorrections:
    """Keeps the rules the database keeps: one per reference, two people, a decision is final."""

    def __init__(self) -> None:
        self.rows: dict[str, Correction] = {}

    async def add(self, tx: object, correction: Correction) -> bool:
        if any(c.reference == correction.reference for c in self.rows.values()):
            return False
        self.rows[correction.id] = correction
        return True

    async def by_reference(self, tx: object, reference: str) -> Correction | None:
        return next((c for c in self.rows.values() if c.reference == reference), None)

    async def get(self, tx: object, correction_id: str, *, lock: bool = False) -> Correction | None:
        return self.rows.get(correction_id)

    async def list(self, tx: object, *, status: CorrectionStatus | None, limit: int) -> list[Correction]:
        return [c for c in reversed(self.rows.values()) if status is None or c.status is status][:limit]

    async def decide(self, tx: object, correction: Correction) -> None:
        before = self.rows[correction.id]
        assert before.status is CorrectionStatus.PROPOSED, "a decided correction never changes (the database)"
        assert correction.approved_by != correction.proposed_by, "two people (the database's CHECK)"
        self.rows[correction.id] = correction


class FakeContradictions:
    """`Contradictions` in memory: once per (subject, aggregate, source)."""

    def __init__(self) -> None:
        self.rows: list[Contradiction] = []

    async def record(self, tx: Any, contradiction: Contradiction) -> bool:
        key = (contradiction.subject, contradiction.aggregate_id, contradiction.source_ref)
        if any((c.subject, c.aggregate_id, c.source_ref) == key for c in self.rows):
            return False
        self.rows.append(contradiction)
        return True

    async def recent(self, tx: Any, *, limit: int) -> list[dict[str, Any]]:
        return [vars_of(c) for c in reversed(self.rows)][:limit]


def vars_of(c: Contradiction) -> dict[str, Any]:
    return {k: getattr(c, k) for k in ("subject", "aggregate_id", "state", "reported", "source_ref", "detail")}


@dataclass
class Fakes:
    ledger: FakeLedger = field(default_factory=FakeLedger)
    claims: FakeClaims = field(default_factory=FakeClaims)
    campaigns: FakeCampaigns = field(default_factory=FakeCampaigns)
    allocations: FakeAllocations = field(default_factory=FakeAllocations)
    routes: FakeRoutes = field(default_factory=FakeRoutes)
    players: FakePlayers = field(default_factory=FakePlayers)
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    top_ups: FakeTopUps = field(default_factory=FakeTopUps)
    contradictions: FakeContradictions = field(default_factory=FakeContradictions)
    compliance: FakeCompliance = field(default_factory=FakeCompliance)

    def __post_init__(self) -> None:
        self.claims.players, self.claims.routes = self.players, self.routes

    @property
    def stores(self) -> Stores:
        return Stores(
            claims=self.claims,
            campaigns=self.campaigns,
            allocations=self.allocations,
            routes=self.routes,
            players=self.players,
            wallets=FakeWallets(self.ledger),
            outbox=self.outbox,
            top_ups=self.top_ups,
            contradictions=self.contradictions,
            compliance=self.compliance,
        )
