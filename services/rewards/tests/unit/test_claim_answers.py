"""Every answer of a claim batch is derived from what the batch writes (issue 43), on in-memory ports: a claim the
ledger did not take (another transaction committed its key first, or the ledger refused its reservation) answers
its request and every request naming it from what happened to it; what counted on it is decided again; a request
whose player's rows another transaction holds is deferred, and decided when they are free; after a lost COMMIT
each request is answered by what the database holds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from rewards_fakes import FakeClaims, FakeLedger, Fakes

from prizeflow_contracts.providers import DestinationType, PayoutDestination, destination_key
from prizeflow_rewards.application.claims import ClaimPolicy, SubmitClaim, claim_id_for
from prizeflow_rewards.application.claims.submit import ClaimOutcome, ClaimRequest, Deferred
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.claims import Claim, ClaimStatus
from prizeflow_rewards.domain.ledger import COUNTER_MAX, BatchResult, LedgerError, Transfer, TransferKind
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.group_commit import Culprits

KEY = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
DEST = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=KEY)
INTERNAL = ("claim_reserve", "cl-", "transfer")


class Interleaved(FakeLedger):
    """The fake ledger with another transaction committing just before this one's next batch (`meanwhile`), and
    reservations it refuses (`refuse`: transfer id → the ledger's error)."""

    def __init__(self, claims: FakeClaims) -> None:
        super().__init__()
        self.claims = claims
        self.meanwhile: list[Claim] = []  # claims another transaction commits (reservation and row)
        self.refuse: dict[uuid.UUID, LedgerError] = {}
        self.calls = 0

    async def apply(self, transfers: Sequence[Transfer]) -> BatchResult:
        self.calls += 1
        while self.meanwhile:
            other = self.meanwhile.pop(0)
            await super().apply([other.pending])
            await self.claims.add_many([other], [])
        for t in transfers:
            if t.id in self.refuse:
                raise self.refuse[t.id]
        return await super().apply(transfers)


class World:
    def __init__(self) -> None:
        claims = FakeClaims()
        self.ledger = Interleaved(claims)
        self.f = Fakes(ledger=self.ledger, claims=claims)
        self.f.routes.routes = {("USDC", "stellar_account", "stellar"), ("XLM", "stellar_account", "stellar")}
        policy = ClaimPolicy(
            min_claim={"USDC": 1, "XLM": 1},
            daily_limit={"USDC": COUNTER_MAX, "XLM": COUNTER_MAX},
            review_threshold={"USDC": COUNTER_MAX, "XLM": COUNTER_MAX},
            velocity_max_claims=1_000,
            new_destination_cooldown_s=0,
        )
        self.submit = SubmitClaim(policy, "/test")

    async def fund(self, player: str, amount: int, asset: str = "USDC") -> None:
        wallet = accounts.wallet(player, asset)
        await self.ledger.apply(
            [Transfer.of(accounts.external("stripe", asset), wallet, amount, TransferKind.TOP_UP, player, asset)]
        )

    async def decide(self, requests: Sequence[ClaimRequest], *, wait: bool = False) -> list[ClaimOutcome]:
        return await self.submit.decide(self.f.books, requests, wait=wait)

    def made(self, request: ClaimRequest) -> Claim:
        """The claim `request` would make, as another transaction would have committed it."""
        claim_id = claim_id_for(request.player_id, request.idempotency_key)
        return Claim(
            id=claim_id,
            player_id=request.player_id,
            asset=request.asset,
            amount=request.amount,
            destination=request.destination.model_dump(mode="json"),
            status=ClaimStatus.APPROVED,
            hold_code=None,
            hold_detail=None,
            rejection_code=None,
            payout_request_id=f"pr-{claim_id}",
            correlation_id=claim_id,
            created_at=datetime(2026, 3, 1, tzinfo=UTC),
            destination_key=destination_key(request.destination),
        )


def ask(player: str, amount: int, key: str | None, asset: str = "USDC") -> ClaimRequest:
    return ClaimRequest(Principal(player, frozenset({Role.PLAYER})), player, asset, amount, DEST, key)


def said(outcome: ClaimOutcome | None) -> tuple[object, ...]:
    if outcome is None:
        return ("not written",)
    if isinstance(outcome, Deferred):
        return ("deferred", outcome.player_id)
    if isinstance(outcome, UseCaseError):
        assert not any(word in outcome.detail for word in INTERNAL), outcome.detail
        return (outcome.kind, outcome.code)
    claim, created = outcome
    return (claim.id, claim.asset, created)


async def test_a_key_another_transaction_committed_first_answers_every_request_under_it_from_that_claim() -> None:
    w = World()
    for asset in ("USDC", "XLM"):
        await w.fund("p", 10_000, asset)
    await w.fund("q", 10_000)
    usdc = ask("p", 1_000, "K")
    w.ledger.meanwhile.append(w.made(usdc))  # another replica commits K in USDC while this batch decides K in XLM
    key_id = claim_id_for("p", "K")
    other = ask("q", 500, "k-q")
    outcomes = await w.decide([ask("p", 1_000, "K", "XLM"), ask("p", 1_000, "K", "XLM"), usdc, other])
    conflict = (ErrorKind.CONFLICT, "idempotency_key_reused")
    assert [said(o) for o in outcomes] == [
        conflict,
        conflict,
        (key_id, "USDC", False),  # the same request as the committed claim: it, not created by this request
        (claim_id_for("q", "k-q"), "USDC", True),
    ]
    assert w.ledger.of(accounts.wallet("p", "XLM")).debits_pending == 0
    assert {c.id: c.asset for c in (r.claim for r in w.f.claims.rows.values())} == {
        key_id: "USDC",
        claim_id_for("q", "k-q"): "USDC",
    }


@pytest.mark.parametrize(
    ("error", "code"),
    [("exceeds_credits", "insufficient_balance"), ("amount_out_of_range", "amount_out_of_range")],
)
async def test_a_reservation_the_ledger_refuses_answers_its_request_and_repeats_and_defers_what_counted_on_it(
    error: str, code: str
) -> None:
    w = World()
    await w.fund("p", 1_000)
    await w.fund("q", 1_000)
    first = ask("p", 800, "a")
    w.ledger.refuse[w.made(first).pending.id] = LedgerError(error, f"claim_reserve|{claim_id_for('p', 'a')}: no")
    outcomes = await w.decide(
        [
            ask("q", 100, "before"),  # decided before the refused claim: nothing it saw changes
            first,
            first,  # the same request again: the same refusal
            ask("p", 700, "a"),  # another body under the key: decided again (no claim holds the key)
            ask("p", 300, "b"),  # refused for the 800 that was never reserved: decided again
            ask("q", 200, "after"),  # written all the same
        ]
    )
    refused = (ErrorKind.INVALID, code)
    assert [said(o) for o in outcomes] == [
        (claim_id_for("q", "before"), "USDC", True),
        refused,
        refused,
        ("deferred", "p"),
        ("deferred", "p"),
        (claim_id_for("q", "after"), "USDC", True),
    ]
    assert w.ledger.of(accounts.wallet("p", "USDC")).debits_pending == 0
    assert sorted(r.claim.player_id for r in w.f.claims.rows.values()) == ["q", "q"]
    w.ledger.refuse.clear()
    again = await w.decide([ask("p", 700, "a"), ask("p", 300, "b")], wait=True)
    assert [said(o)[1:] for o in again] == [("USDC", True), ("USDC", True)]


async def test_a_ledger_error_that_is_no_refusal_of_the_claim_fails_the_batch_naming_its_request() -> None:
    w = World()
    await w.fund("p", 1_000)
    await w.fund("q", 1_000)
    first, second = ask("q", 100, "ok"), ask("p", 800, "a")
    fault = LedgerError("asset_mismatch", "a bug, not the player's")
    w.ledger.refuse[w.made(second).pending.id] = fault
    with pytest.raises(Culprits) as err:
        await w.decide([first, second])
    assert err.value.failed == {1: fault}  # its position in the batch: the group commit answers it, the rest again


async def test_a_player_whose_wallet_or_verification_another_transaction_holds_is_deferred_then_decided() -> None:
    w = World()
    for player in ("stuck", "free", "verifying"):
        await w.fund(player, 1_000)
    await w.fund("stuck", 1_000, "XLM")
    w.ledger.busy.add(accounts.wallet("stuck", "USDC"))
    w.f.compliance.busy.add("verifying")
    requests = [
        ask("stuck", 100, "s1"),
        ask("free", 100, "f1"),
        ask("stuck", 100, "s2", "XLM"),  # every request of the player: theirs stay in arrival order
        ask("verifying", 100, "v1"),
    ]
    outcomes = await w.decide(requests)
    assert [said(o) for o in outcomes] == [
        ("deferred", "stuck"),
        (claim_id_for("free", "f1"), "USDC", True),
        ("deferred", "stuck"),
        ("deferred", "verifying"),
    ]
    assert w.f.ledger.of(accounts.wallet("stuck", "USDC")).debits_pending == 0
    decided = await w.decide([requests[0], requests[2]], wait=True)  # waits for their rows, then decides
    assert [said(o)[1:] for o in decided] == [("USDC", True), ("XLM", True)]
    assert w.ledger.waited == [{accounts.wallet("stuck", "USDC"), accounts.wallet("stuck", "XLM")}]


async def test_claims_whose_reservations_would_take_the_clearing_counter_past_int64_are_refused_in_arrival_order() -> (
    None
):
    w = World()
    for player in ("a", "b"):
        await w.fund(player, COUNTER_MAX, "XLM")
    half = 2**62
    outcomes = await w.decide(
        [ask("a", half, "a", "XLM"), ask("b", half, "b", "XLM"), ask("b", half, "b", "XLM"), ask("b", 5, "c", "XLM")]
    )
    out_of_range = (ErrorKind.INVALID, "amount_out_of_range")
    assert [said(o) for o in outcomes] == [
        (claim_id_for("a", "a"), "XLM", True),
        out_of_range,
        out_of_range,  # the same request again: refused the same way, nothing made in between
        (claim_id_for("b", "c"), "XLM", True),
    ]
    assert w.ledger.calls == 3  # the two top-ups and one ledger batch: no refusal reached the ledger


async def test_after_a_lost_commit_each_request_is_answered_by_what_the_database_holds() -> None:
    w = World()
    await w.fund("p", 10_000)
    requests = [ask("p", 100, "k1"), ask("p", 100, "k1"), ask("p", 99_999, "big"), ask("p", 200, "k2")]
    decided = await w.submit.decide(w.f.books, requests)
    assert [said(o)[2:] for o in decided] == [(True,), (False,), (), (True,)]
    written = await w.submit.confirm(w.f.books, requests, decided)
    assert [said(o) for o in written] == [said(o) for o in decided]
    # Nothing of the batch was written (the COMMIT never reached the server): no claim to answer with.
    w.f.claims.rows.clear()
    lost = await w.submit.confirm(w.f.books, requests, decided)
    assert [said(o) for o in lost] == [
        ("not written",),
        ("not written",),
        (ErrorKind.INVALID, "insufficient_balance"),  # a refusal wrote nothing: it stands
        ("not written",),
    ]
    # Another request holds the key by now: the idempotency rule, not a guess.
    await w.f.claims.add_many([w.made(ask("p", 150, "k1"))], [])
    taken = await w.submit.confirm(w.f.books, requests, decided)
    assert said(taken[0]) == (ErrorKind.CONFLICT, "idempotency_key_reused")
