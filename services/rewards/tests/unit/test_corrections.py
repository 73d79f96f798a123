"""Two-person ledger corrections and closing a campaign, on in-memory ports: the rules, not the SQL.

A correction is proposed once per reference, approved by someone else than its proposer, applied as ONE
compensating transfer in the ledger's normal rules (never overdrawing a wallet), and final once decided. Closing a
campaign sweeps what its pool still holds back to the treasury, once, and is refused while money is promised
from the pool."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rewards_fakes import Fakes

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.settlement import RoundSettled
from prizeflow_rewards.application.campaigns import CloseCampaign, CreateCampaign, FundCampaign
from prizeflow_rewards.application.corrections import DecideCorrection, LedgerReads, Proposal, ProposeCorrection
from prizeflow_rewards.application.ports import HeldRound
from prizeflow_rewards.application.timeline import ledger_entry
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import CampaignStatus
from prizeflow_rewards.domain.corrections import AccountNameError, Correction, account_label, parse_account
from prizeflow_rewards.domain.ledger import AccountKind, Transfer, TransferFlags, TransferKind
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.errors import UseCaseError
from prizeflow_testkit.events import example_payload

OPS = Principal("ops-1", frozenset({Role.OPS}))
APPROVER = Principal("approver-1", frozenset({Role.APPROVER}))
OTHER_APPROVER = Principal("approver-2", frozenset({Role.APPROVER}))
ADMIN = Principal("admin-1", frozenset({Role.ADMIN}))


class World:
    def __init__(self) -> None:
        self.f = Fakes()
        uow = self.f.uow
        self.propose_ = ProposeCorrection(uow, "/test")
        self.decide = DecideCorrection(uow, "/test")
        self.reads = LedgerReads(uow)
        self.close_ = CloseCampaign(uow, "/test")
        self.create = CreateCampaign(uow, "/test")
        self.fund = FundCampaign(uow, "/test")

    async def campaign(self, funded: int) -> None:
        await self.create(ADMIN, campaign_id="camp-1", name="c", asset="USDC", low_threshold=None, correlation_id="c")
        await self.fund(ADMIN, campaign_id="camp-1", amount=funded, reference="wire-1", correlation_id="c")

    async def over_allocate(self, amount: int) -> Transfer:
        """A prize paid to p-1 by mistake (from the pool, in round r-1's flow)."""
        t = Transfer.of(
            accounts.pool("camp-1", "USDC"),
            accounts.wallet("p-1", "USDC"),
            amount,
            TransferKind.REWARD,
            "r-1",
            "p-1",
            correlation_id="round-r-1",
        )
        await self.f.ledger.apply([t])
        return t

    async def propose(self, amount: int, reference: str = "fix-1", **overrides: Any) -> tuple[Correction, bool]:
        body: dict[str, object] = {
            "debit_account": "player_wallet:p-1",
            "credit_account": "campaign_pool:camp-1",
            "asset": "USDC",
            "amount": amount,
            "reason": "r-1 paid p-1 twice the prize",
            "reference": reference,
        }
        body.update(overrides)
        return await self.propose_(OPS, Proposal(**body), correlation_id="admin-flow")  # type: ignore[arg-type]

    def audits(self) -> list[str]:
        return [e.data.action for e in self.f.outbox.events if isinstance(e.data, AdminActionRecorded)]

    def wallet(self) -> int:
        return self.f.ledger.of(accounts.wallet("p-1", "USDC")).posted


async def test_an_over_allocation_is_compensated_by_one_transfer_a_second_person_approves() -> None:
    w = World()
    await w.campaign(1_000)
    paid = await w.over_allocate(400)
    c, created = await w.propose(200, corrects_transfer_id=paid.id)
    assert created
    assert (c.status.value, c.correlation_id) == ("proposed", "round-r-1")  # joins the flow it corrects
    assert w.wallet() == 400  # nothing moves on a proposal

    applied = await w.decide.approve(APPROVER, c.id, reason="checked the round's results")
    assert (applied.status.value, applied.approved_by) == ("applied", "approver-1")
    assert w.wallet() == 200
    assert w.f.ledger.of(accounts.pool("camp-1", "USDC")).available == 800
    corrections = [t for t in w.f.ledger.transfers.values() if t.kind is TransferKind.CORRECTION]
    assert [(t.id, t.amount, t.correlation_id) for t in corrections] == [(applied.transfer_id, 200, "round-r-1")]
    assert w.audits()[-2:] == ["ledger_correction.propose", "ledger_correction.approve"]

    # The same approver asking again gets it back; nobody applies it twice.
    again = await w.decide.approve(APPROVER, c.id, reason=None)
    assert again.transfer_id == applied.transfer_id
    with pytest.raises(UseCaseError) as err:
        await w.decide.approve(OTHER_APPROVER, c.id, reason=None)
    assert (err.value.status, err.value.code) == (409, "not_proposed")
    assert w.wallet() == 200


async def test_the_proposer_cannot_approve_their_own_correction() -> None:
    w = World()
    await w.campaign(1_000)
    await w.over_allocate(400)
    c, _ = await w.propose(200)
    same = Principal("ops-1", frozenset({Role.OPS, Role.APPROVER}))
    with pytest.raises(UseCaseError) as err:
        await w.decide.approve(same, c.id, reason=None)
    assert (err.value.status, err.value.code) == (403, "same_person")
    assert w.wallet() == 400
    assert (await w.reads.correction(c.id)).status.value == "proposed"


async def test_nobody_approves_a_correction_of_their_own_account() -> None:
    """As for payouts (nobody decides on a payout that pays them): a player id and a staff subject are the same
    kind of subject, so an approver whose subject owns a player account of the correction may not approve it."""
    w = World()
    await w.campaign(1_000)
    own = accounts.wallet("approver-1", "USDC")
    await w.f.ledger.apply([Transfer.of(accounts.external("x", "USDC"), own, 1, TransferKind.TOP_UP, "x")])
    c, _ = await w.propose(300, debit_account="campaign_pool:camp-1", credit_account="player_wallet:approver-1")
    with pytest.raises(UseCaseError) as err:
        await w.decide.approve(APPROVER, c.id, reason=None)
    assert (err.value.status, err.value.code) == (403, "own_account")
    assert w.f.ledger.of(own).posted == 1
    assert (await w.reads.correction(c.id)).status.value == "proposed"
    applied = await w.decide.approve(OTHER_APPROVER, c.id, reason=None)  # somebody else may
    assert applied.status.value == "applied"


async def test_a_correction_never_overdraws_a_wallet_and_stays_proposed_when_refused() -> None:
    w = World()
    await w.campaign(1_000)
    await w.over_allocate(400)
    c, _ = await w.propose(500)
    with pytest.raises(UseCaseError) as err:
        await w.decide.approve(APPROVER, c.id, reason=None)
    assert (err.value.status, err.value.code) == (409, "exceeds_credits")
    assert w.wallet() == 400
    assert not [t for t in w.f.ledger.transfers.values() if t.kind is TransferKind.CORRECTION]


async def test_one_reference_proposes_once() -> None:
    w = World()
    await w.campaign(1_000)
    await w.over_allocate(400)
    first, created = await w.propose(200)
    again, created_again = await w.propose(200)
    assert (created, created_again, again.id) == (True, False, first.id)
    with pytest.raises(UseCaseError) as err:
        await w.propose(300)
    assert (err.value.status, err.value.code) == (409, "reference_conflict")
    assert len(await w.reads.list_corrections(status=None, limit=10)) == 1


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"debit_account": "wallet-of-p-1"}, 422, "invalid_account"),
        ({"debit_account": "piggy_bank:p-1"}, 422, "invalid_account"),
        ({"credit_account": "player_wallet:p-1"}, 422, "same_account"),
        ({"credit_account": "campaign_pool:nobody"}, 409, "unknown_account"),
        ({"asset": "XLM"}, 409, "unknown_account"),  # p-1 has no XLM wallet
        ({"corrects_transfer_id": uuid.uuid4()}, 422, "unknown_transfer"),
    ],
)
async def test_a_proposal_names_existing_accounts_in_its_asset(
    overrides: dict[str, Any], status: int, code: str
) -> None:
    w = World()
    await w.campaign(1_000)
    await w.over_allocate(400)
    with pytest.raises(UseCaseError) as err:
        await w.propose(100, **overrides)
    assert (err.value.status, err.value.code) == (status, code)
    assert not w.f.corrections.rows


async def test_a_rejected_correction_is_final() -> None:
    w = World()
    await w.campaign(1_000)
    await w.over_allocate(400)
    c, _ = await w.propose(200)
    rejected = await w.decide.reject(OPS, c.id, reason="wrong round")  # the proposer may withdraw it
    assert (rejected.status.value, rejected.rejected_by, rejected.decision_reason) == (
        "rejected",
        "ops-1",
        "wrong round",
    )
    with pytest.raises(UseCaseError) as err:
        await w.decide.approve(APPROVER, c.id, reason=None)
    assert err.value.code == "not_proposed"
    assert w.wallet() == 400


async def test_transfers_are_found_by_flow_and_by_account_in_any_asset() -> None:
    w = World()
    await w.campaign(1_000)
    paid = await w.over_allocate(400)
    by_flow = await w.reads.transfers(correlation_id="round-r-1", account=None, before_seq=None, limit=10)
    assert [t.id for t in by_flow] == [paid.id]
    by_account = await w.reads.transfers(correlation_id=None, account="campaign_pool:camp-1", before_seq=None, limit=10)
    assert [t.kind for t in by_account] == ["reward", "campaign_funding"]
    with pytest.raises(UseCaseError) as err:
        await w.reads.transfers(correlation_id=None, account="pool", before_seq=None, limit=10)
    assert err.value.code == "invalid_account"
    entry = ledger_entry(by_flow[0])
    assert entry.summary == "reward: 400 USDC moved, campaign_pool:camp-1 → player_wallet"  # the player stays out


def test_account_names_are_kind_and_owner() -> None:
    assert parse_account("entry_escrow:round:2026:1", "USDC") == accounts.escrow("round:2026:1", "USDC")
    assert account_label(accounts.wallet("p-1", "USDC")) == "player_wallet"
    assert account_label(accounts.treasury("USDC")) == "treasury:platform"
    with pytest.raises(AccountNameError):
        parse_account("treasury", "USDC")
    assert {k.value for k in AccountKind} >= {"treasury", "campaign_pool", "player_wallet"}


async def test_closing_sweeps_the_free_remainder_to_the_treasury_once() -> None:
    w = World()
    await w.campaign(1_000)
    await w.over_allocate(300)
    closed = await w.close_(ADMIN, campaign_id="camp-1", reason="season over", correlation_id="admin-c")
    assert (closed.swept, closed.changed, closed.campaign.status) == (700, True, CampaignStatus.CLOSED)
    sweeps = [t for t in w.f.ledger.transfers.values() if t.kind is TransferKind.POOL_SWEEP]
    assert [(t.id, t.debit, t.credit, t.amount) for t in sweeps] == [
        (closed.transfer_id, accounts.pool("camp-1", "USDC"), accounts.treasury("USDC"), 700)
    ]
    assert w.f.ledger.of(accounts.pool("camp-1", "USDC")).available == 0
    assert w.audits()[-1] == "campaign.close"
    close_audit = w.f.outbox.of(AdminActionRecorded)[-1]
    assert (close_audit.reason, close_audit.after["swept"]) == ("season over", "700")

    again = await w.close_(ADMIN, campaign_id="camp-1", reason="again", correlation_id="admin-c2")
    assert (again.swept, again.transfer_id, again.changed) == (700, closed.transfer_id, False)
    assert len([t for t in w.f.ledger.transfers.values() if t.kind is TransferKind.POOL_SWEEP]) == 1


async def test_closing_an_empty_pool_moves_nothing() -> None:
    w = World()
    await w.create(ADMIN, campaign_id="camp-1", name="c", asset="USDC", low_threshold=None, correlation_id="c")
    closed = await w.close_(ADMIN, campaign_id="camp-1", reason="never used", correlation_id="admin-c")
    assert (closed.swept, closed.transfer_id, closed.campaign.status) == (0, None, CampaignStatus.CLOSED)


async def test_closing_is_refused_while_rounds_wait_for_the_pool() -> None:
    w = World()
    await w.campaign(1_000)
    settled = example_payload(RoundSettled)
    env = new_event(settled, source="/test", correlation_id="round-r-9")
    await w.f.allocations.hold(HeldRound("r-9", "camp-1", "USDC", 5_000, "pool_exhausted", env))
    with pytest.raises(UseCaseError) as err:
        await w.close_(ADMIN, campaign_id="camp-1", reason="season over", correlation_id="admin-c")
    assert (err.value.status, err.value.code, err.value.extra) == (
        409,
        "reservations_pending",
        {"reserved": 0, "held_rounds": 1},
    )
    assert (await w.f.campaigns.get("camp-1")).status is CampaignStatus.ACTIVE  # type: ignore[union-attr]
    assert w.f.ledger.of(accounts.pool("camp-1", "USDC")).available == 1_000


async def test_closing_is_refused_while_the_pool_has_reservations() -> None:
    w = World()
    await w.campaign(1_000)
    pending = Transfer.of(
        accounts.pool("camp-1", "USDC"), accounts.clearing("USDC"), 100, TransferKind.CLAIM_RESERVE, "x",
        flags=TransferFlags.PENDING,
    )  # fmt: skip
    await w.f.ledger.apply([pending])
    with pytest.raises(UseCaseError) as err:
        await w.close_(ADMIN, campaign_id="camp-1", reason="season over", correlation_id="admin-c")
    assert (err.value.code, err.value.extra["reserved"]) == ("reservations_pending", 100)
