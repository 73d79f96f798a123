"""`PayoutGate` over in-memory fakes: the facts it builds for the policy (a batch's requests count towards each
other), the screen failing closed, and the one read per batch."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from prizeflow_compliance.application.ports import (
    ComplianceStores,
    Identity,
    PlayerCompliance,
    ScreeningMatch,
    ScreeningResult,
)
from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_contracts.policy import (
    Action,
    AmountInWindow,
    CountInWindow,
    PolicyRule,
    RiskPolicy,
    VerificationStatus,
)
from prizeflow_contracts.providers import PayoutDestination, destination_key
from prizeflow_payouts.application.gate import (
    Candidate,
    FactsQuery,
    GateStore,
    PayoutGate,
    WindowFacts,
)
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.application.worker import AWAITING_SCREENING_DETAIL, Call, PayoutWorker, WorkerConfig
from prizeflow_payouts.domain.gate import Clearance, HoldCode, Stage, SubjectKind
from prizeflow_payouts.domain.payout import Payout
from prizeflow_payouts.domain.state import PayoutState

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = 86_400
SCREENED = {"un": "v9"}  # a verified player's identity screened against the loaded list (not stale)


def payout(n: int, *, player: str = "p1", amount: int = 100, address: str = "success:a") -> Payout:
    return Payout(
        id=f"po-{n}",
        payout_request_id=f"pr-{n}",
        idempotency_key=f"k-{n}",
        request_hash="h",
        claim_id=f"cl-{n}",
        player_id=player,
        requested_by=player,
        asset="USDC",
        amount=amount,
        destination_type="sandbox",
        destination_address=address,
        destination_memo=None,
        provider_type="sandbox",
        provider_name="sandbox",
        state=PayoutState.REQUESTED,
        approval_policy=ApprovalPolicy.AUTO,
        correlation_id=f"c-{n}",
        cause_event_id=None,
        attempts=0,
        max_attempts=3,
        sync_first=False,
        sync_polls=0,
        provider_ref=None,
        tx_hash=None,
        last_error_code=None,
        created_at=NOW,
    )


@dataclass
class Store:
    facts: dict[str, WindowFacts] = field(default_factory=dict)
    cleared: list[Clearance] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def gate_facts(
        self, queries: Sequence[FactsQuery], windows: Sequence[int], *, now: datetime, lock: bool
    ) -> dict[str, WindowFacts]:
        self.calls.append(("gate_facts", (len(queries), tuple(windows), lock)))
        return {q.payout_id: self.facts.get(q.payout_id, WindowFacts()) for q in queries}

    async def clearances(self, subjects: Sequence[tuple[SubjectKind, str]]) -> list[Clearance]:
        self.calls.append(("clearances", len(subjects)))
        return list(self.cleared)


@dataclass
class Facts:
    policy: RiskPolicy
    players_: dict[str, PlayerCompliance] = field(default_factory=dict)
    asked: list[list[str]] = field(default_factory=list)

    async def active_policy(self) -> RiskPolicy:
        return self.policy

    async def players(self, player_ids: list[str]) -> Mapping[str, PlayerCompliance]:
        self.asked.append(player_ids)
        return {p: self.players_.get(p) or PlayerCompliance(p, VerificationStatus.NOT_STARTED) for p in player_ids}


@dataclass
class Screen:
    listed: set[str] = field(default_factory=set)
    fail: bool = False

    def screen_destination(self, destination: PayoutDestination) -> ScreeningResult:
        if self.fail:
            raise RuntimeError("lists not loaded")
        hit = destination.address in self.listed
        matches = (ScreeningMatch("un", "UN-1", "Listed", "address", 1000),) if hit else ()
        return ScreeningResult(matches, {"un": "v9"}, 900)

    def screen_person(self, identity: Identity) -> ScreeningResult:
        return ScreeningResult((), {"un": "v9"}, 900)

    def versions(self) -> Mapping[str, str]:
        return {} if self.fail else {"un": "v9"}


@dataclass(frozen=True)
class Books:
    """The gate's books: the fakes' holds and facts, as the payouts transaction's `Books` carries them."""

    holds: GateStore
    compliance: ComplianceStores


def on(store: Store, facts: Facts) -> Books:
    return Books(
        cast("GateStore", store), ComplianceStores(records=cast("Any", None), rescreen=cast("Any", None), facts=facts)
    )


def gate_with(
    policy: RiskPolicy, screen: Screen | None = None, **players: PlayerCompliance
) -> tuple[PayoutGate, Facts]:
    facts = Facts(policy, dict(players))
    return PayoutGate(screen=screen or Screen(), sources=("un",), clock=lambda: NOW), facts


async def test_a_batch_cannot_split_an_amount_past_a_limit() -> None:
    policy = RiskPolicy(version=1, rules=[PolicyRule(player_limit=AmountInWindow(amount=250, window_s=DAY))])
    gate, facts = gate_with(policy)
    store = Store()
    batch = [Candidate(payout(n)) for n in range(3)] + [Candidate(payout(9, player="p2"))]
    decisions = await gate.decide(on(store, facts), batch, Stage.REQUEST)
    assert [d.action for d in decisions] == [Action.ALLOW, Action.ALLOW, Action.HOLD, Action.ALLOW]
    assert decisions[2].hold is HoldCode.POLICY
    assert "300" in decisions[2].detail
    # One read of each kind for the whole batch; the players' requests serialised at request time.
    assert store.calls == [("gate_facts", (4, (DAY,), True)), ("clearances", 3)]
    assert facts.asked == [["p1", "p2"]]


def test_a_batchs_running_sums_are_what_a_rescan_of_the_earlier_requests_gives() -> None:
    """Per player and asset, per player, per destination and asset, and first use by this player: each request sees
    exactly the earlier ones of its batch (running sums, not a rescan per request)."""
    import random

    from prizeflow_payouts.application.gate import _Siblings

    rng = random.Random(46)
    windows = (3600, DAY)
    base = WindowFacts(player_totals={DAY: 7}, player_counts={3600: 1}, destination_totals={DAY: 5})
    siblings = _Siblings()
    before: list[tuple[Payout, str]] = []
    for n in range(300):
        rec = replace(
            payout(n, player=f"p{rng.randrange(5)}", amount=rng.randrange(1, 500)), asset=rng.choice(["USDC", "XLM"])
        )
        key = f"d{rng.randrange(7)}"
        got = siblings.add(rec, key, base, windows, NOW)
        if not before:
            assert got is base
        else:
            same_asset = [p for p, _ in before if p.player_id == rec.player_id and p.asset == rec.asset]
            same_dest = [p for p, k in before if k == key and p.asset == rec.asset]
            count = len([p for p, _ in before if p.player_id == rec.player_id])
            used = any(p.player_id == rec.player_id and k == key for p, k in before)
            assert got.player_totals == {
                w: base.player_totals.get(w, 0) + sum(p.amount for p in same_asset) for w in windows
            }
            assert got.player_counts == {w: base.player_counts.get(w, 0) + count for w in windows}
            assert got.destination_totals == {
                w: base.destination_totals.get(w, 0) + sum(p.amount for p in same_dest) for w in windows
            }
            assert got.first_used_at == (NOW if used else None)
        before.append((rec, key))


async def test_stored_totals_count_at_send_under_the_requests_locks() -> None:
    policy = RiskPolicy(version=2, rules=[PolicyRule(velocity=CountInWindow(count=2, window_s=3600))])
    gate, facts = gate_with(policy)
    store = Store(facts={"po-1": WindowFacts(player_counts={3600: 2})})
    [d] = await gate.decide(on(store, facts), [Candidate(replace(payout(1), state=PayoutState.APPROVED))], Stage.SEND)
    assert (d.action, d.hold, d.policy_version) == (Action.HOLD, HoldCode.POLICY, 2)
    assert store.calls[0] == ("gate_facts", (1, (3600,), True))  # a request's locks (`..._requests_in_flight_...`)


async def test_an_allow_stands_at_send_while_nothing_it_was_made_with_changed() -> None:
    """An allow at request carries its stamp; at send, with the same policy version, lists and player facts, it
    stands with two reads for the batch (policy, players) and no window sum, clearance or screening; a new policy
    version, list version, or any change of the player's verification or screening decides it again."""
    policy = RiskPolicy(version=4, rules=[PolicyRule(player_limit=AmountInWindow(amount=250, window_s=DAY))])
    verified = PlayerCompliance("p1", VerificationStatus.VERIFIED, "GB", screening_versions=SCREENED)
    screen = Screen()
    gate, facts = gate_with(policy, screen, p1=verified)
    store = Store()
    allowed, held = await gate.decide(
        on(store, facts), [Candidate(payout(1, amount=200)), Candidate(payout(2, amount=100))], Stage.REQUEST
    )
    assert (allowed.action, held.action) == (Action.ALLOW, Action.HOLD)
    assert allowed.stamp is not None
    assert allowed.stamp.startswith("v4:")
    assert held.stamp is None  # only an allow is stamped
    approved = replace(payout(1, amount=200), state=PayoutState.APPROVED, gate_stamp=allowed.stamp)
    unstamped = replace(payout(3), state=PayoutState.APPROVED)

    store.calls.clear()
    stood = await gate.standing(on(store, facts), [approved, unstamped])
    assert list(stood) == ["po-1"]
    assert (stood["po-1"].action, stood["po-1"].policy_version, dict(stood["po-1"].list_versions)) == (
        Action.ALLOW,
        4,
        {"un": "v9"},
    )
    assert stood["po-1"].reasons[0]["finding"] == "request_decision_stands"
    assert store.calls == []  # no window facts, no clearances

    changed_player = [
        replace(verified, verification=VerificationStatus.FAILED),
        replace(verified, country="FR"),
        replace(verified, screening_versions={"un": "v8"}),
        replace(verified, screening_matches=(ScreeningMatch("un", "UN-7", "Listed", "name", 950),)),
    ]
    for player in changed_player:
        facts.players_["p1"] = player
        assert await gate.standing(on(store, facts), [approved]) == {}, player
    facts.players_["p1"] = verified
    facts.policy = policy.model_copy(update={"version": 5})
    assert await gate.standing(on(store, facts), [approved]) == {}
    facts.policy = policy
    screen.fail = True  # the list not loaded: decided again (and held by `decide`)
    assert await gate.standing(on(store, facts), [approved]) == {}
    screen.fail = False
    assert list(await gate.standing(on(store, facts), [approved])) == ["po-1"]


async def test_a_new_destination_is_held_unless_used_before() -> None:
    policy = RiskPolicy(version=3, rules=[PolicyRule(new_destination_cooldown_s=3600)])
    gate, facts = gate_with(policy)
    old = datetime(2026, 11, 20, tzinfo=UTC)
    store = Store(facts={"po-2": WindowFacts(first_used_at=old)})
    d1, d2 = await gate.decide(on(store, facts), [Candidate(payout(1)), Candidate(payout(2, player="p2"))], Stage.SEND)
    assert (d1.hold, d2.action) == (HoldCode.POLICY, Action.ALLOW)


async def test_a_policy_that_reads_no_history_costs_no_history_statement() -> None:
    """The window sums, the first-use lookup and the per-player lock are read only for a policy that needs them:
    the empty policy (a fresh install, the bench) and a rails-only rule cost none of them, at request or at send;
    a cooldown alone still reads first use."""
    for policy in (RiskPolicy(version=0), RiskPolicy(version=6, rules=[PolicyRule(allowed_rails=["sandbox"])])):
        gate, facts = gate_with(policy)
        store = Store()
        for stage in (Stage.REQUEST, Stage.SEND):
            decisions = await gate.decide(on(store, facts), [Candidate(payout(1)), Candidate(payout(2))], stage)
            assert {d.action for d in decisions} == {Action.ALLOW}
        assert [c for c, _ in store.calls] == ["clearances", "clearances"]
    gate, facts = gate_with(RiskPolicy(version=7, rules=[PolicyRule(new_destination_cooldown_s=60)]))
    store = Store()
    await gate.decide(on(store, facts), [Candidate(payout(1))], Stage.REQUEST)
    assert store.calls[0] == ("gate_facts", (1, (), True))


async def test_a_screen_that_cannot_answer_holds_everything() -> None:
    gate, facts = gate_with(RiskPolicy(version=0), Screen(fail=True))
    decisions = await gate.decide(on(Store(), facts), [Candidate(payout(n)) for n in range(3)], Stage.SEND)
    assert {(d.action, d.hold) for d in decisions} == {(Action.HOLD, HoldCode.SCREENING_HIT)}


async def test_a_listed_destination_is_held_and_a_clearance_of_it_releases_it() -> None:
    gate, facts = gate_with(RiskPolicy(version=0), Screen(listed={"success:bad"}))
    store = Store()
    [held] = await gate.decide(on(store, facts), [Candidate(payout(1, address="success:bad"))], Stage.REQUEST)
    assert (held.hold, held.approval_policy, dict(held.list_versions)) == (
        HoldCode.SCREENING_HIT,
        ApprovalPolicy.DUAL,
        {"un": "v9"},
    )
    key = destination_key(PayoutDestination.model_validate({"type": "sandbox", "address": "success:bad"}))
    store.cleared.append(Clearance(SubjectKind.DESTINATION, key, "un", "UN-1"))
    [again] = await gate.decide(on(store, facts), [Candidate(payout(1, address="success:bad"))], Stage.SEND)
    assert again.action is Action.ALLOW


async def test_a_verified_player_passes_a_verification_rule() -> None:
    policy = RiskPolicy(version=4, rules=[PolicyRule(kyc_above=AmountInWindow(amount=10, window_s=DAY))])
    gate, facts = gate_with(
        policy, p1=PlayerCompliance("p1", VerificationStatus.VERIFIED, country="DE", screening_versions=SCREENED)
    )
    d1, d2 = await gate.decide(
        on(Store(), facts), [Candidate(payout(1)), Candidate(payout(2, player="p2"))], Stage.REQUEST
    )
    assert d1.action is Action.ALLOW
    assert (d2.hold, d2.player_message) == (HoldCode.KYC_REQUIRED, "Verify your identity to withdraw.")


async def test_a_country_rule_for_a_verified_player_without_a_country_is_never_allowed() -> None:
    """Payouts is the last gate: a rule it cannot decide (the vendor verified the player but named no country, or
    one we do not know) is a person's call, never a pass."""
    policy = RiskPolicy(version=5, rules=[PolicyRule(allowed_countries=["DE"])])
    gate, facts = gate_with(
        policy,
        p1=PlayerCompliance("p1", VerificationStatus.VERIFIED, country=None, screening_versions=SCREENED),
        p2=PlayerCompliance("p2", VerificationStatus.VERIFIED, country="DE", screening_versions=SCREENED),
    )
    for stage in (Stage.REQUEST, Stage.SEND, Stage.VERIFICATION):
        unknown, known = await gate.decide(
            on(Store(), facts), [Candidate(payout(1)), Candidate(payout(2, player="p2"))], stage
        )
        assert (unknown.action, unknown.hold, unknown.approval_policy) == (
            Action.HOLD,
            HoldCode.POLICY,
            ApprovalPolicy.SINGLE,
        )
        assert "allowed_countries" in unknown.detail
        assert known.action is Action.ALLOW


def test_a_retry_waiting_for_its_screening_never_ends_for_good() -> None:
    """Not created while its screening waits: a retryable failure due after the backoff, on its last attempt too
    (the attempt its claim took is given back), never a final failure that would void its reservation."""
    worker = PayoutWorker(
        uow=cast("Any", None),
        registry=cast("Any", None),
        builder=ChangeBuilder(source="/prizeflow/payouts", policy=RetryPolicy()),
        config=WorkerConfig(),
    )
    error = PayoutError.of(PayoutErrorCode.PAYOUT_NOT_FOUND, AWAITING_SCREENING_DETAIL)
    call = Call("create", NOW, NOW, error=error, deferred=True)
    last = replace(
        payout(1), state=PayoutState.SUBMITTING, attempts=3, max_attempts=3, previous_state=PayoutState.FAILED
    )
    for rec, kept in (
        (last, 4),
        (replace(last, previous_state=PayoutState.SUBMITTING), 4),
        (replace(last, attempts=1), 4),
    ):
        change = worker._deferred(rec, call, NOW)
        assert (change.expected, change.to, change.finished_at, change.max_attempts) == (
            PayoutState.SUBMITTING,
            PayoutState.FAILED,
            None,
            kept,
        )
        assert change.next_attempt_at is not None
        assert change.next_attempt_at > NOW
        assert not change.outcome_unknown


async def test_under_a_destination_limit_the_request_locks_its_destinations_and_the_allow_stands_at_send() -> None:
    """Two players' requests to one destination are serialised at request (the lock covers destinations as well as
    players, `test_gate_facts_sql.py` proves it on PostgreSQL), so the later one counted the earlier: an allow under
    a destination limit was made with every payout before it to that destination, and later ones counted it in
    theirs. It stands at send, with no window sum read again."""
    policy = RiskPolicy(version=7, rules=[PolicyRule(destination_limit=AmountInWindow(amount=150, window_s=DAY))])
    gate, facts = gate_with(policy)
    a, b = payout(1, player="p1", address="success:shared"), payout(2, player="p2", address="success:shared")
    store = Store()
    [allow_a] = await gate.decide(on(store, facts), [Candidate(a)], Stage.REQUEST)
    assert store.calls[0] == ("gate_facts", (1, (DAY,), True))  # the request locks (players and destinations)
    counted = Store(facts={b.id: WindowFacts(destination_totals={DAY: 100})})  # b waited for a, and counts it
    [held_b] = await gate.decide(on(counted, facts), [Candidate(b)], Stage.REQUEST)
    assert (allow_a.action, held_b.action, held_b.hold) == (Action.ALLOW, Action.HOLD, HoldCode.POLICY)
    approved = replace(a, state=PayoutState.APPROVED, gate_stamp=allow_a.stamp)
    store.calls.clear()
    stood = await gate.standing(on(store, facts), [approved])
    assert stood[a.id].reasons[0]["finding"] == "request_decision_stands"
    assert store.calls == []


async def test_a_send_stage_decision_waits_for_the_requests_in_flight_it_would_not_see() -> None:
    """A payout decided again at send (held and released, or requested under another policy version: the empty
    policy before the first one with a destination limit, which locks nothing) takes the request's locks before it
    sums its windows. Otherwise, with a request of another player to its destination still open (locked, its
    facts read before this payout was stored, so not counting it), the send stage counts nothing of that request and
    allows this payout; the request's allow then stands at send on its stamp, and both are paid past the limit a
    send-stage recomputation of either would hold."""
    policy = RiskPolicy(version=9, rules=[PolicyRule(destination_limit=AmountInWindow(amount=150, window_s=DAY))])
    gate, facts = gate_with(policy)
    store = Store()
    unstamped = replace(payout(2, player="p2", address="success:shared"), state=PayoutState.APPROVED)
    await gate.decide(on(store, facts), [Candidate.stored(unstamped)], Stage.SEND)
    assert store.calls[0] == ("gate_facts", (1, (DAY,), True))


async def test_an_allow_stamped_before_requests_locked_destinations_is_decided_again_at_send() -> None:
    """An allow stamped by a build whose requests locked players only (before 0522c5a: a pod of it during a rolling
    deploy, or a payout it allowed that still waits for approvers) was made without counting another player's
    request to its destination decided at the same time. Its stamp names the same policy version, lists and player
    facts as one made now: it would stand under a destination limit, and both payouts be paid past it. A stamp
    names the form it was made in; one of the earlier form is decided again at send."""
    policy = RiskPolicy(version=7, rules=[PolicyRule(destination_limit=AmountInWindow(amount=150, window_s=DAY))])
    gate, facts = gate_with(policy)
    lists = [["un", "v9"]]
    player: list[object] = ["p1", VerificationStatus.NOT_STARTED.value, None, None, []]  # id, verification, ...
    earlier = "v7:" + hashlib.sha256(json.dumps([lists, *player], separators=(",", ":")).encode()).hexdigest()[:40]
    [allowed] = await gate.decide(on(Store(), facts), [Candidate(payout(1, address="success:shared"))], Stage.REQUEST)
    assert allowed.stamp is not None
    assert allowed.stamp.startswith("v7:")
    old = replace(payout(1, address="success:shared"), state=PayoutState.APPROVED, gate_stamp=earlier)
    new = replace(payout(2, address="success:shared"), state=PayoutState.APPROVED, gate_stamp=allowed.stamp)
    assert list(await gate.standing(on(Store(), facts), [old, new])) == [new.id]


async def test_a_destinations_first_use_that_ended_unpaid_is_decided_again_at_send() -> None:
    """A request to a destination first used (by an earlier payout of this player) longer ago than the cooldown is
    allowed and stamped; that earlier payout is then rejected (it counts for nothing: the destination was never
    paid). At send the destination is new again: the send stage decides it again and holds it, rather than letting
    the request's allow stand on a first use that no longer exists."""
    policy = RiskPolicy(version=8, rules=[PolicyRule(new_destination_cooldown_s=3600)])
    gate, facts = gate_with(policy)
    later = payout(2)
    used = Store(facts={later.id: WindowFacts(first_used_at=NOW - timedelta(hours=2))})
    [allowed] = await gate.decide(on(used, facts), [Candidate(later)], Stage.REQUEST)
    assert allowed.action is Action.ALLOW
    approved = replace(later, state=PayoutState.APPROVED, gate_stamp=allowed.stamp)
    books = on(Store(), facts)  # the earlier payout rejected: no first use counts any more
    stood = await gate.standing(books, [approved])
    [decided] = [stood[approved.id]] if stood else await gate.decide(books, [Candidate.stored(approved)], Stage.SEND)
    assert (decided.action, decided.hold) == (Action.HOLD, HoldCode.POLICY)
