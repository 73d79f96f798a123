"""A verified player's screening made against older lists (`screening_pending`): where it sits in the gate's order,
what it adds (no approvals), what the player is told (nothing of a list), and when a player's screening is stale."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from prizeflow_compliance.application.ports import PlayerCompliance
from prizeflow_compliance.application.rescreen import RescreenReport, RescreenVerifiedPlayers
from prizeflow_compliance.application.sanctions import ListsScreen, ListVersion, RefreshSanctionsLists
from prizeflow_compliance.domain.sanctions import EntryKind, ListEntry
from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_contracts.policy import Action, Finding, Hit, Verdict, VerificationStatus
from prizeflow_payouts.domain.gate import (
    PENDING_DETAIL,
    GateInput,
    HoldCode,
    Screening,
    Stage,
    decide,
    people_release,
)
from prizeflow_runtime.jobs import Scheduler

KEY = "e" * 64
LOADED = {"ofac_sdn": "2026-11-25+aaaaaaaaaaaa"}
CLEAR = Screening((), LOADED)


@dataclass(frozen=True)
class Match:
    source: str = "ofac_sdn"
    entry_uid: str = "SDN-5"
    entry_name: str = "Listed Person"
    kind: str = "name"
    score: int = 940


def gate(
    *,
    stale: bool = True,
    stage: Stage = Stage.SEND,
    hits: tuple[Hit, ...] = (),
    player_matches: tuple[Match, ...] = (),
    screening: Screening | None = CLEAR,
) -> GateInput:
    return GateInput(
        stage=stage,
        player_id="p-9",
        player_screening_hit=bool(player_matches),
        destination_key=KEY,
        verdict=Verdict(3, hits),
        screening=screening,
        player_matches=player_matches,
        player_screening_stale=stale,
    )


@pytest.mark.parametrize("stage", list(Stage))
def test_a_stale_screening_holds_for_the_rescreen_with_no_approval_added(stage: Stage) -> None:
    d = decide(gate(stage=stage))
    assert (d.action, d.hold, d.approval_policy) == (Action.HOLD, HoldCode.SCREENING_PENDING, None)
    assert d.detail == PENDING_DETAIL
    assert {"finding": "screening_pending", "subject": "player"} in [dict(r) for r in d.reasons]
    assert d.player_message is None  # as for a screening hit: the player is never told of a list
    assert people_release(d.hold, d.policy_version, d.findings) is None  # nobody's release: the re-screen's
    assert decide(gate(stale=False, stage=stage)).action is Action.ALLOW


def test_a_hit_and_an_unavailable_screen_come_first() -> None:
    hit = decide(gate(player_matches=(Match(),)))
    assert (hit.hold, hit.approval_policy) == (HoldCode.SCREENING_HIT, ApprovalPolicy.DUAL)
    unavailable = decide(gate(screening=None))
    assert (unavailable.hold, unavailable.approval_policy) == (HoldCode.SCREENING_HIT, ApprovalPolicy.DUAL)


def test_the_policy_comes_after() -> None:
    findings = (Hit(Finding.VELOCITY, 0, "3 in 1h"), Hit(Finding.KYC_REQUIRED, 1, "above 100"))
    assert decide(gate(hits=findings)).hold is HoldCode.SCREENING_PENDING
    assert decide(gate(hits=findings, stale=False)).hold is HoldCode.POLICY


def test_stale_means_a_verified_player_screened_against_other_versions() -> None:
    verified = PlayerCompliance("p-9", VerificationStatus.VERIFIED, screening_versions=dict(LOADED))
    assert not verified.screening_stale(LOADED)
    assert verified.screening_stale({"ofac_sdn": "2026-11-26+bbbbbbbbbbbb"})
    assert verified.screening_stale({**LOADED, "eu": "2026-11-20+cccccccccccc"})  # a list configured since
    assert not verified.screening_stale({})  # no list configured: never stale
    # Screened against a version published after the one loaded here: stale too, as the re-screen's SQL says (a
    # process loads the newest stored lists before it gates, so a later one loaded nowhere is one since removed).
    assert verified.screening_stale({"ofac_sdn": "2026-11-24+dddddddddddd"})
    assert verified.screening_stale({"ofac_sdn": "2026-11-25+dddddddddddd"})  # the same day, another file: behind
    unreadable = PlayerCompliance("p-9", VerificationStatus.VERIFIED, screening_versions={"ofac_sdn": "v7"})
    assert unreadable.screening_stale({"ofac_sdn": "v6"})  # no publisher's date to compare: fail closed
    never_screened = PlayerCompliance("p-9", VerificationStatus.VERIFIED)
    assert never_screened.screening_stale(LOADED)  # fail closed
    for status in (VerificationStatus.PENDING, VerificationStatus.FAILED, VerificationStatus.NOT_STARTED):
        assert not PlayerCompliance("p-9", status).screening_stale(LOADED)  # nothing of theirs was screened


# -- what starts a re-screen ---------------------------------------------------------------------------------------
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class OneListStore:
    """The newest stored version of one list (`SanctionsListStore.latest` / `entries`, what `load` reads)."""

    def __init__(self) -> None:
        self.version = ListVersion("ofac_sdn", "2026-11-24+aaaaaaaaaaaa", NOW, NOW, "a" * 64, 1)

    async def latest(self) -> list[ListVersion]:
        return [self.version]

    async def entries(self, source: str, version: str) -> list[ListEntry]:
        return [ListEntry("1", EntryKind.INDIVIDUAL, ("Some Listed Person",))]


async def test_a_load_that_changes_the_versions_wakes_the_rescreen() -> None:
    screen = ListsScreen(["ofac_sdn"], threshold=920)
    store = OneListStore()
    refresh = RefreshSanctionsLists(urls={}, source=None, store=store, screen=screen)  # type: ignore[arg-type]
    woken: list[dict[str, str]] = []
    refresh.on_loaded = lambda: woken.append(dict(screen.versions()))
    await refresh.load()
    await refresh.load()  # the same version: nothing new
    store.version = ListVersion("ofac_sdn", "2026-11-25+bbbbbbbbbbbb", NOW, NOW, "b" * 64, 1)
    await refresh.load()
    assert woken == [{"ofac_sdn": "2026-11-24+aaaaaaaaaaaa"}, {"ofac_sdn": "2026-11-25+bbbbbbbbbbbb"}]


async def test_the_rescreen_runs_at_once_when_woken_and_stops() -> None:
    runs: asyncio.Queue[str] = asyncio.Queue()

    class Counted(RescreenVerifiedPlayers[Any]):
        async def execute(self) -> RescreenReport:
            runs.put_nowait("run")
            return RescreenReport()

    job = Counted(uow=None, kyc=None, screen=None, sources=())  # type: ignore[arg-type]
    jobs = Scheduler()
    scheduled = jobs.every(3600, job, name="kyc-rescreen", cancel_on_stop=True)
    await jobs.start()
    assert await asyncio.wait_for(runs.get(), 5) == "run"  # at start
    scheduled.wake()
    assert await asyncio.wait_for(runs.get(), 5) == "run"  # at once, not an hour later
    await asyncio.wait_for(jobs.stop(), 5)
    assert not scheduled.running
    with pytest.raises(ValueError, match="at least one"):
        RescreenVerifiedPlayers(uow=None, kyc=None, screen=None, sources=(), batch=0)  # type: ignore[arg-type]


async def test_a_full_batch_runs_the_next_at_once_and_a_failing_one_waits_for_the_tick() -> None:
    """100 000 verified players at one batch per tick would be re-screened over hours: a full, answered batch goes
    straight on; a batch with errors (a vendor outage) waits for the tick instead of walking every stale player."""
    runs: asyncio.Queue[str] = asyncio.Queue()
    reports = [RescreenReport(claimed=2), RescreenReport(claimed=2), RescreenReport(claimed=2, errors=1)]

    class Scripted(RescreenVerifiedPlayers[Any]):
        async def execute(self) -> RescreenReport:
            runs.put_nowait("run")
            return reports.pop(0) if reports else RescreenReport()

    job = Scripted(uow=None, kyc=None, screen=None, sources=(), batch=2)  # type: ignore[arg-type]
    jobs = Scheduler()
    scheduled = jobs.every(3600, job, name="kyc-rescreen", cancel_on_stop=True)
    await jobs.start()
    for _ in range(3):  # two full batches, each followed at once; then the failing one
        assert await asyncio.wait_for(runs.get(), 5) == "run"
    for _ in range(20):  # yields, not a timing: a loop going straight on would have run again by now
        await asyncio.sleep(0)
    assert runs.empty()  # the failing batch waits for the hour's tick
    assert reports == []
    scheduled.wake()
    assert await asyncio.wait_for(runs.get(), 5) == "run"
    await asyncio.wait_for(jobs.stop(), 5)
