"""An admin action is audited with the roles its actor holds: an actor holding none is refused, never recorded
as an admin (the fallback that used to fill in `admin` is gone)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from settlement_fakes import SettlementFakes

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.game import EntryRecorded, Placement, RoundClosed, RoundOpened
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_settlement.application import ApplyRoundEvents
from prizeflow_settlement.application.admin import Actor, ResolveRound, VoidRound
from prizeflow_testkit.events import example_payload


async def open_round() -> tuple[SettlementFakes, VoidRound]:
    fakes = SettlementFakes()
    await ApplyRoundEvents(source="/s")(
        fakes.books, [new_event(example_payload(RoundOpened), source="/g", correlation_id="r-1")]
    )
    fakes.outbox.events.clear()
    return fakes, VoidRound(uow=fakes.uow, source="/prizeflow/settlement", service="settlement")


@pytest.mark.parametrize("roles", [(), ("superuser",)])
async def test_an_actor_without_a_known_role_is_refused_and_nothing_changes(roles: tuple[str, ...]) -> None:
    fakes, void = await open_round()
    with pytest.raises(ValidationError, match="actor_roles"):
        await void("r-1", reason="no role", actor=Actor(user_id="ghost", roles=roles))
    assert fakes.rounds.saved["r-1"].state == "open"
    assert fakes.outbox.events == []


async def test_the_audit_names_the_roles_the_actor_holds() -> None:
    fakes, void = await open_round()
    await void("r-1", reason="server crashed", actor=Actor(user_id="olga", roles=("ops", "admin", "nope")))
    staged = fakes.outbox.events
    audits = [e.data for e in staged if isinstance(e, Envelope) and isinstance(e.data, AdminActionRecorded)]
    assert [(a.actor_user_id, a.actor_roles) for a in audits] == [("olga", ["admin", "ops"])]


async def played_round(*, require_entry: bool = True) -> SettlementFakes:
    """A closed round `r-1` that `ada` (an admin who also plays) entered, with `p-2`, waiting for results."""
    fakes = SettlementFakes()
    events = [
        example_payload(RoundOpened, placements_require_entry=require_entry),
        example_payload(EntryRecorded, entry_id="e-1", player_id="ada"),
        example_payload(EntryRecorded, entry_id="e-2", player_id="p-2"),
        example_payload(RoundClosed, entry_count=2),
    ]
    await ApplyRoundEvents(source="/s")(
        fakes.books, [new_event(e, source="/g", correlation_id="r-1", subject="r-1") for e in events]
    )
    fakes.outbox.events.clear()
    return fakes


ADA = Actor(user_id="ada", roles=("admin",))


@pytest.mark.parametrize("action", ["void", "resolve_for_herself", "resolve_for_the_other"])
async def test_nobody_decides_a_round_they_play_in(action: str) -> None:
    """Self-dealing, as for held claims and risk flags: an admin who entered a round resolved it in her own favour,
    or voided it once it was lost to get her entry fee back."""
    fakes = await played_round()
    void = VoidRound(uow=fakes.uow, source="/prizeflow/settlement", service="settlement")
    resolve = ResolveRound(uow=fakes.uow, source="/prizeflow/settlement", service="settlement")
    first = [Placement(player_id="ada", rank=1, score=10), Placement(player_id="p-2", rank=2, score=5)]
    with pytest.raises(UseCaseError) as refused:
        if action == "void":
            await void("r-1", reason="lost anyway", actor=ADA)
        else:
            placements = first if action == "resolve_for_herself" else first[1:]
            await resolve("r-1", placements=placements, reason="reviewed", actor=ADA)
    assert (refused.value.kind, refused.value.code) == (ErrorKind.FORBIDDEN, "self_review")
    assert fakes.rounds.saved["r-1"].state == "closed"
    assert fakes.outbox.events == []
    done = await resolve("r-1", placements=first, reason="reviewed", actor=Actor(user_id="olga", roles=("admin",)))
    assert done.state != "closed"  # a colleague may


async def test_nobody_places_themselves_in_a_round_that_needs_no_entry() -> None:
    fakes = await played_round(require_entry=False)
    resolve = ResolveRound(uow=fakes.uow, source="/prizeflow/settlement", service="settlement")
    olga = Actor(user_id="olga", roles=("admin",))
    with pytest.raises(UseCaseError) as refused:
        await resolve("r-1", placements=[Placement(player_id="olga", rank=1, score=99)], reason="x", actor=olga)
    assert refused.value.code == "self_review"
    assert fakes.outbox.events == []
